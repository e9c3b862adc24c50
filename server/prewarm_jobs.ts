/**
 * `PrewarmJobs`: prewarm requests run one at a time in the background; each job keeps its
 * progress events so `GET /v1/prewarm/{id}` can report and `?stream=true` can replay them.
 * @module
 */
import { errorBody } from "./errors.ts";
import type { PrewarmCounters } from "./metrics_registry.ts";
import type { Prewarmer, PrewarmOutcome, PrewarmProgress, PrewarmRequest } from "./prewarmer.ts";

export type PrewarmState = "queued" | "running" | "done" | "failed";

/** A job as the API shows it. */
export interface PrewarmJobView {
  readonly id: string;
  /** The library's cache key, once the prewarmer has named it. */
  readonly key: string | null;
  readonly state: PrewarmState;
  readonly model: string;
  readonly quantization: string | null;
  /** The latest event. */
  readonly progress: PrewarmProgress | null;
  readonly events: readonly PrewarmProgress[];
  readonly result: PrewarmOutcome | null;
  readonly error: { message: string; type: string; code: string | null } | null;
  readonly created_at: number;
  readonly finished_at: number | null;
}

interface Job {
  id: string;
  req: PrewarmRequest;
  key: string | null;
  state: PrewarmState;
  events: PrewarmProgress[];
  result: PrewarmOutcome | null;
  error: PrewarmJobView["error"];
  createdAt: number;
  finishedAt: number | null;
  /** Woken on every event and when the job ends. */
  listeners: Set<() => void>;
}

const KEEP_JOBS = 256;

export class PrewarmJobs {
  readonly #prewarmer: Prewarmer;
  readonly #jobs = new Map<string, Job>();
  #queue: Promise<void> = Promise.resolve();
  readonly #counts = {
    jobs: {} as Record<string, number>,
    libraries: {} as Record<string, number>,
  };
  #compileSeconds = 0;
  #weightConversions = 0;

  constructor(prewarmer: Prewarmer) {
    this.#prewarmer = prewarmer;
  }

  /** Queue a job; returns its view at once (state "queued" or "running"). */
  start(req: PrewarmRequest): PrewarmJobView {
    const job: Job = {
      id: `pw-${crypto.randomUUID().replaceAll("-", "")}`,
      req,
      key: null,
      state: "queued",
      events: [],
      result: null,
      error: null,
      createdAt: Math.floor(Date.now() / 1000),
      finishedAt: null,
      listeners: new Set(),
    };
    this.#jobs.set(job.id, job);
    this.#evict();
    this.#bump(this.#counts.jobs, "started");
    this.#queue = this.#queue.then(() => this.#run(job));
    return view(job);
  }

  get(id: string): PrewarmJobView | null {
    const job = this.#jobs.get(id);
    return job ? view(job) : null;
  }

  /**
   * Every event of job `id` (past ones first, then live ones) and, last, the job's final view.
   * Ends early when `signal` aborts. Null for an unknown id.
   */
  watch(id: string, signal: AbortSignal): AsyncIterable<PrewarmProgress | PrewarmJobView> | null {
    const job = this.#jobs.get(id);
    if (!job) return null;
    return (async function* () {
      let sent = 0;
      while (!signal.aborted) {
        while (sent < job.events.length) yield job.events[sent++];
        if (job.state === "done" || job.state === "failed") {
          yield view(job);
          return;
        }
        await new Promise<void>((wake) => {
          const done = () => {
            job.listeners.delete(done);
            signal.removeEventListener("abort", done);
            wake();
          };
          job.listeners.add(done);
          signal.addEventListener("abort", done, { once: true });
        });
      }
    })();
  }

  /** Counters for /metrics. */
  counters(): PrewarmCounters {
    return {
      jobs: { ...this.#counts.jobs },
      libraries: { ...this.#counts.libraries },
      compileSeconds: this.#compileSeconds,
      weightConversions: this.#weightConversions,
    };
  }

  async #run(job: Job): Promise<void> {
    job.state = "running";
    wake(job);
    try {
      job.result = await this.#prewarmer.run(job.req, (e) => {
        job.events.push(Object.freeze({ ...e }));
        if (e.key && e.stage !== "convert" && job.key === null) job.key = e.key;
        if (e.stage === "compile" && e.status === "done" && e.ms) {
          this.#compileSeconds += e.ms / 1000;
        }
        wake(job);
      });
      job.key = job.result.key;
      job.state = "done";
      this.#bump(this.#counts.libraries, job.result.origin);
      if (job.result.weightsOrigin === "converted") this.#weightConversions++;
    } catch (e) {
      const { body } = errorBody(e);
      job.error = { message: body.error.message, type: body.error.type, code: body.error.code };
      job.state = "failed";
    }
    job.finishedAt = Math.floor(Date.now() / 1000);
    this.#bump(this.#counts.jobs, job.state);
    wake(job);
  }

  #bump(rec: Record<string, number>, k: string): void {
    rec[k] = (rec[k] ?? 0) + 1;
  }

  #evict(): void {
    for (const [id, job] of this.#jobs) {
      if (this.#jobs.size <= KEEP_JOBS) return;
      if (job.state === "done" || job.state === "failed") this.#jobs.delete(id);
    }
  }
}

function wake(job: Job): void {
  for (const f of [...job.listeners]) f();
}

function view(job: Job): PrewarmJobView {
  return Object.freeze({
    id: job.id,
    key: job.key,
    state: job.state,
    model: job.req.model,
    quantization: job.req.quantization,
    progress: job.events.at(-1) ?? null,
    events: [...job.events],
    result: job.result,
    error: job.error,
    created_at: job.createdAt,
    finished_at: job.finishedAt,
  });
}
