import assert, { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { join } from "node:path";
import OpenAI from "openai";
import { ConfigError } from "../../compiler/errors.ts";
import type {
  Prewarmer,
  PrewarmOutcome,
  PrewarmProgress,
  PrewarmRequest,
} from "../../server/prewarmer.ts";
import { API_KEY, startToyServer } from "./harness.ts";

/** TEST DOUBLE: a prewarmer that reports scripted progress and waits for `release()`. */
class GatedPrewarmer implements Prewarmer {
  readonly requests: PrewarmRequest[] = [];
  #release: () => void = () => {};
  readonly #gate = new Promise<void>((r) => (this.#release = r));
  release(): void {
    this.#release();
  }
  async run(
    req: PrewarmRequest,
    onProgress: (e: PrewarmProgress) => void,
  ): Promise<PrewarmOutcome> {
    this.requests.push(req);
    if (req.model.endsWith("broken")) {
      throw new ConfigError(`${req.model}/config.json is malformed`);
    }
    onProgress({ stage: "detect", status: "done", message: "cpu", ms: 1 });
    onProgress({
      stage: "compile",
      status: "start",
      message: "compile started",
      key: "k".repeat(64),
    });
    await this.#gate;
    onProgress({
      stage: "compile",
      status: "done",
      message: "compile finished",
      ms: 1500,
      key: "k".repeat(64),
    });
    return {
      key: "k".repeat(64),
      origin: "compiled",
      weightsOrigin: "converted",
      weightsKey: null,
    };
  }
}

async function sseEvents(res: Response): Promise<unknown[]> {
  const text = await res.text();
  return text.split("\n\n").filter((b) => b.startsWith("data: ")).map((b) => b.slice(6))
    .map((d) => (d === "[DONE]" ? d : JSON.parse(d)));
}

Deno.test("POST /v1/prewarm runs a job whose progress can be polled and streamed", async () => {
  const root = await Deno.makeTempDir({ prefix: "kiln_roots_" });
  await Deno.mkdir(join(root, "m1"));
  const pw = new GatedPrewarmer();
  const t = await startToyServer({ prewarm: pw, modelRoots: [root] });
  try {
    const started = await t.client.post<{ id: string; key: string | null; state: string }>(
      "/prewarm",
      { body: { model: "m1", quantization: "q4f16_1", overrides: { context_window_size: 512 } } },
    );
    assert(started.id.startsWith("pw-"));
    assert(["queued", "running"].includes(started.state));
    const headers = { authorization: `Bearer ${API_KEY}` };
    const streamed = fetch(`${t.baseUrl}/v1/prewarm/${started.id}?stream=true`, { headers });
    // Poll until the job is waiting at the gate with its key known.
    let job: Record<string, unknown> = {};
    for (let i = 0; i < 100 && job.key == null; i++) {
      job = await (await fetch(`${t.baseUrl}/v1/prewarm/${started.id}`, { headers })).json();
      if (job.key == null) await new Promise((r) => setTimeout(r, 10));
    }
    assertEquals(job.state, "running");
    assertEquals(job.key, "k".repeat(64));
    pw.release();
    const events = await sseEvents(await streamed);
    assertEquals(events.at(-1), "[DONE]");
    const final = events.at(-2) as Record<string, unknown>;
    assertEquals(final.state, "done");
    assertEquals((final.result as PrewarmOutcome).origin, "compiled");
    assertEquals(events.slice(0, 3).map((e) => (e as PrewarmProgress).stage), [
      "detect",
      "compile",
      "compile",
    ]);
    assertEquals(pw.requests[0], {
      model: await Deno.realPath(join(root, "m1")),
      quantization: "q4f16_1",
      overrides: "context_window_size=512",
      opt: null,
    });
    const metrics = await (await fetch(`${t.baseUrl}/metrics`, { headers })).text();
    assert(metrics.includes('kiln_prewarm_jobs_total{state="done"} 1'));
    assert(metrics.includes('kiln_library_resolutions_total{origin="compiled"} 1'));
    assert(metrics.includes("kiln_compile_seconds_total 1.5"));
  } finally {
    await t.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("POST /v1/prewarm refuses models outside the roots (403) and reports failures", async () => {
  const root = await Deno.makeTempDir({ prefix: "kiln_roots_" });
  const outside = await Deno.makeTempDir({ prefix: "kiln_outside_" });
  await Deno.mkdir(join(root, "broken"));
  await Deno.symlink(outside, join(root, "escape"));
  const pw = new GatedPrewarmer();
  pw.release();
  const t = await startToyServer({ prewarm: pw, modelRoots: [root] });
  try {
    const prewarm = (model: string) => t.client.post("/prewarm", { body: { model } });
    const denied = (e: unknown) => e instanceof OpenAI.PermissionDeniedError && e.status === 403;
    await rejects(prewarm("../" + outside.split("/").at(-1)), denied);
    await rejects(prewarm("escape"), denied); // a symlink out of the root
    await rejects(prewarm(outside), denied); // an absolute path elsewhere
    await rejects(prewarm("/no/such/dir"), denied); // outside, whether it exists or not
    await rejects(prewarm("missing"), (e) => e instanceof OpenAI.NotFoundError);
    await rejects(
      t.client.get("/prewarm/pw-unknown"),
      (e) => e instanceof OpenAI.NotFoundError,
    );
    assertEquals(pw.requests.length, 0);
    const started = await t.client.post<{ id: string }>("/prewarm", { body: { model: "broken" } });
    const headers = { authorization: `Bearer ${API_KEY}` };
    const events = await sseEvents(
      await fetch(`${t.baseUrl}/v1/prewarm/${started.id}?stream=true`, { headers }),
    );
    const final = events.at(-2) as { state: string; error: { code: string; message: string } };
    assertEquals(final.state, "failed");
    assertEquals(final.error.code, "config_error");
    assert(final.error.message.includes("malformed"));
  } finally {
    await t.close();
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});
