import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import type { EngineStats } from "../engine/types.ts";
import { MetricsRegistry } from "./metrics_registry.ts";

const stats: EngineStats = {
  runningSequences: 2,
  waitingRequests: 1,
  kvPagesUsed: 10,
  kvPagesTotal: 100,
  lastBatchSize: 2,
  maxBatchSize: 4,
  promptTokensTotal: 0,
  generatedTokensTotal: 0,
  stepsTotal: 9,
};

function samples(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

Deno.test("MetricsRegistry.render() writes cumulative histograms and labelled counters", () => {
  const m = new MetricsRegistry();
  m.countRequest("/v1/completions", 200);
  m.countRequest("/v1/completions", 200);
  m.countRequest('/odd"path', 404);
  for (const v of [0.003, 0.02, 0.02, 7]) m.observeTtft(v);
  m.addTokens(5, 3);
  const text = m.render(stats, {
    jobs: { done: 1 },
    libraries: { cache: 2 },
    compileSeconds: 1.5,
    weightConversions: 0,
  }, "my_extra 1");
  const s = samples(text);
  assertEquals(s.get('kiln_http_requests_total{endpoint="/v1/completions",status="200"}'), 2);
  assertEquals(s.get('kiln_http_requests_total{endpoint="/odd\\"path",status="404"}'), 1);
  // Buckets are cumulative: ≤0.005 → 1, ≤0.025 → 3, ≤5 → 3, ≤10 → 4, +Inf → 4.
  const b = (le: string) => s.get(`kiln_time_to_first_token_seconds_bucket{le="${le}"}`);
  assertEquals([b("0.005"), b("0.01"), b("0.025"), b("5"), b("10"), b("+Inf")], [1, 1, 3, 3, 4, 4]);
  assert(Math.abs(s.get("kiln_time_to_first_token_seconds_sum")! - 7.043) < 1e-12);
  assertEquals(s.get("kiln_time_to_first_token_seconds_count"), 4);
  assertEquals(s.get("kiln_inter_token_latency_seconds_count"), 0);
  assertEquals(s.get("kiln_prompt_tokens_total"), 5);
  assertEquals(s.get("kiln_kv_pages_used"), 10);
  assertEquals(s.get('kiln_library_resolutions_total{origin="cache"}'), 2);
  assertEquals(s.get("my_extra"), 1);
  // Every family has HELP and TYPE lines before its samples.
  for (
    const name of ["kiln_http_requests_total", "kiln_kv_pages_used", "kiln_compile_seconds_total"]
  ) {
    assert(text.includes(`# HELP ${name} `) && text.includes(`# TYPE ${name} `));
  }
  assert(text.endsWith("\n"));
});
