/**
 * `MetricsRegistry`: the server's counters and histograms, rendered as Prometheus text
 * (exposition format 0.0.4) together with the engine's and the prewarmer's numbers.
 * @module
 */
import type { EngineStats } from "../engine/types.ts";

const TTFT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const ITL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1];

/** A cumulative Prometheus histogram. */
class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) if (v <= this.bounds[i]) this.counts[i]++;
  }
  lines(name: string): string[] {
    const out = this.bounds.map((b, i) => `${name}_bucket{le="${b}"} ${this.counts[i]}`);
    out.push(`${name}_bucket{le="+Inf"} ${this.count}`, `${name}_sum ${this.sum}`);
    out.push(`${name}_count ${this.count}`);
    return out;
  }
}

/** Counters a prewarmer (or the JIT) reports; see `PrewarmJobs.counters()`. */
export interface PrewarmCounters {
  /** Jobs by final or current state. */
  jobs: Readonly<Record<string, number>>;
  /** Library resolutions by origin ("cache" hit or "compiled"). */
  libraries: Readonly<Record<string, number>>;
  /** Total seconds spent in compile stages. */
  compileSeconds: number;
  /** Weight conversions finished. */
  weightConversions: number;
}

export class MetricsRegistry {
  readonly #requests = new Map<string, number>();
  #promptTokens = 0;
  #generatedTokens = 0;
  readonly #ttft = new Histogram(TTFT_BUCKETS);
  readonly #itl = new Histogram(ITL_BUCKETS);

  /** Count one finished request (streams count when their headers go out). */
  countRequest(endpoint: string, status: number): void {
    const key = `endpoint="${escapeLabel(endpoint)}",status="${status}"`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
  }

  addTokens(prompt: number, generated: number): void {
    this.#promptTokens += prompt;
    this.#generatedTokens += generated;
  }

  /** Seconds from request arrival to a generation's first token. */
  observeTtft(seconds: number): void {
    this.#ttft.observe(seconds);
  }

  /** Seconds between consecutive tokens of one generation. */
  observeItl(seconds: number): void {
    this.#itl.observe(seconds);
  }

  /** Prometheus text of everything, with the engine's stats and the prewarm counters. */
  render(engine: EngineStats, prewarm: PrewarmCounters | null, extra = ""): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string, lines: string[]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
    };
    const requests = [...this.#requests].map(([k, v]) => `kiln_http_requests_total{${k}} ${v}`);
    family(
      "kiln_http_requests_total",
      "counter",
      "HTTP requests by endpoint and status.",
      requests,
    );
    family("kiln_prompt_tokens_total", "counter", "Prompt tokens of served requests.", [
      `kiln_prompt_tokens_total ${this.#promptTokens}`,
    ]);
    family("kiln_generated_tokens_total", "counter", "Tokens generated for served requests.", [
      `kiln_generated_tokens_total ${this.#generatedTokens}`,
    ]);
    family(
      "kiln_time_to_first_token_seconds",
      "histogram",
      "Seconds from request arrival to the first generated token.",
      this.#ttft.lines("kiln_time_to_first_token_seconds"),
    );
    family(
      "kiln_inter_token_latency_seconds",
      "histogram",
      "Seconds between consecutive generated tokens of one sequence.",
      this.#itl.lines("kiln_inter_token_latency_seconds"),
    );
    const gauge = (name: string, help: string, v: number) =>
      family(name, "gauge", help, [`${name} ${v}`]);
    gauge("kiln_kv_pages_used", "KV cache pages in use.", engine.kvPagesUsed);
    gauge("kiln_kv_pages_total", "KV cache pages in the pool.", engine.kvPagesTotal);
    gauge("kiln_running_sequences", "Sequences being generated.", engine.runningSequences);
    gauge("kiln_waiting_requests", "Requests waiting to be scheduled.", engine.waitingRequests);
    gauge("kiln_batch_size", "Sequences in the last decode step.", engine.lastBatchSize);
    gauge("kiln_batch_size_max", "Largest decode batch so far.", engine.maxBatchSize);
    family("kiln_engine_steps_total", "counter", "Engine steps run.", [
      `kiln_engine_steps_total ${engine.stepsTotal}`,
    ]);
    if (prewarm) {
      const labelled = (name: string, label: string, rec: Readonly<Record<string, number>>) =>
        Object.entries(rec).map(([k, v]) => `${name}{${label}="${escapeLabel(k)}"} ${v}`);
      family(
        "kiln_prewarm_jobs_total",
        "counter",
        "Prewarm jobs by state.",
        labelled("kiln_prewarm_jobs_total", "state", prewarm.jobs),
      );
      family(
        "kiln_library_resolutions_total",
        "counter",
        "Model libraries resolved, by origin (cache hit or compiled).",
        labelled("kiln_library_resolutions_total", "origin", prewarm.libraries),
      );
      family("kiln_compile_seconds_total", "counter", "Seconds spent compiling libraries.", [
        `kiln_compile_seconds_total ${prewarm.compileSeconds}`,
      ]);
      family("kiln_weight_conversions_total", "counter", "Weight folders converted.", [
        `kiln_weight_conversions_total ${prewarm.weightConversions}`,
      ]);
    }
    return out.join("\n") + "\n" + (extra ? extra.replace(/\n?$/, "\n") : "");
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
