/**
 * What the endpoint handlers share: the engine, the served model's id, the metrics registry,
 * the prewarm jobs and the model roots. Built once by `createApp()`.
 * @module
 */
import type { Context } from "hono";
import type { Engine } from "../engine/types.ts";
import { badRequest } from "./errors.ts";
import type { MetricsRegistry } from "./metrics_registry.ts";
import type { PrewarmJobs } from "./prewarm_jobs.ts";

export interface ServerDeps {
  readonly engine: Engine;
  readonly modelId: string;
  readonly metrics: MetricsRegistry;
  /** null when the app was built without a prewarmer (the prewarm routes then answer 501). */
  readonly prewarm: PrewarmJobs | null;
  /** Real paths of the folders models may be named in (prewarm). */
  readonly modelRoots: readonly string[];
  /** Extra Prometheus text appended to /metrics (e.g. the JIT's own counters). */
  readonly extraMetrics: (() => string) | null;
}

/** Bindings `serve()` passes to `app.fetch()`: aborted when the server shuts down. */
export interface ServerEnv {
  shutdown?: AbortSignal;
}

/** The request's JSON body, or a 400 naming the problem. */
export async function readJson(c: Context): Promise<unknown> {
  const text = await c.req.text();
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badRequest(`the request body is not valid JSON: ${(e as Error).message}`);
  }
}

/** A signal aborted by client disconnect, server shutdown or `controller.abort()`. */
export function requestSignal(c: Context): { signal: AbortSignal; controller: AbortController } {
  const controller = new AbortController();
  const signals = [controller.signal, c.req.raw.signal];
  const shutdown = (c.env as ServerEnv | undefined)?.shutdown;
  if (shutdown) signals.push(shutdown);
  return { signal: AbortSignal.any(signals), controller };
}
