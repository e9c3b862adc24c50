/**
 * `createApp()`: the Hono app of an OpenAI-compatible server over one engine.
 * @module
 */
import { Hono } from "hono";
import type { Engine } from "../engine/types.ts";
import { apiKeyAuth } from "./auth.ts";
import { requestBodyLimit } from "./body_limit.ts";
import { chatCompletions } from "./chat_completions.ts";
import { completions } from "./completions.ts";
import type { ServerDeps, ServerEnv } from "./context.ts";
import { type CorsOptions, corsPolicy } from "./cors.ts";
import { ApiError, onError } from "./errors.ts";
import { health } from "./health.ts";
import { metrics } from "./metrics.ts";
import { MetricsRegistry } from "./metrics_registry.ts";
import { models } from "./models.ts";
import { getPrewarm, startPrewarm } from "./prewarm.ts";
import { PrewarmJobs } from "./prewarm_jobs.ts";
import type { Prewarmer } from "./prewarmer.ts";

export interface AppOptions {
  readonly engine: Engine;
  /** The name clients use in `model` (default: the engine's modelId). */
  readonly modelId?: string;
  /** When set, every route but /health needs `Authorization: Bearer <apiKey>`. */
  readonly apiKey?: string;
  readonly cors?: CorsOptions;
  /** Largest request body in bytes (default 4 MiB). */
  readonly bodyLimit?: number;
  /** Enables /v1/prewarm. */
  readonly prewarm?: Prewarmer;
  /** Folders prewarm may name models in. */
  readonly modelRoots?: readonly string[];
  /** Extra Prometheus text for /metrics (e.g. the JIT's counters of the served model). */
  readonly extraMetrics?: () => string;
}

const ENDPOINTS = ["/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/prewarm"];

/**
 * Build the app. Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models,
 * POST /v1/prewarm, GET /v1/prewarm/:id, GET /health, GET /metrics.
 *
 * @example
 * ```ts
 * const app = createApp({ engine, apiKey: "secret", modelRoots: ["/models"] });
 * const server = serve({ app, port: 8000 });
 * ```
 */
export function createApp(opts: AppOptions): Hono<{ Bindings: ServerEnv }> {
  const deps: ServerDeps = Object.freeze({
    engine: opts.engine,
    modelId: opts.modelId ?? opts.engine.modelId,
    metrics: new MetricsRegistry(),
    prewarm: opts.prewarm ? new PrewarmJobs(opts.prewarm) : null,
    modelRoots: Object.freeze([...(opts.modelRoots ?? [])]),
    extraMetrics: opts.extraMetrics ?? null,
  });
  const app = new Hono<{ Bindings: ServerEnv }>();
  app.onError(onError);
  app.notFound((c) => {
    const e = new ApiError(404, `no route ${c.req.method} ${c.req.path}`, "invalid_request_error");
    return c.json({ error: { message: e.message, type: e.type, param: null, code: null } }, 404);
  });
  app.use("*", async (c, next) => {
    await next();
    const path = c.req.path;
    const endpoint = path.startsWith("/v1/prewarm/")
      ? "/v1/prewarm/{id}"
      : ENDPOINTS.includes(path) || path === "/health" || path === "/metrics"
      ? path
      : "other";
    deps.metrics.countRequest(endpoint, c.res.status);
  });
  if (opts.cors) app.use("*", corsPolicy(opts.cors));
  if (opts.apiKey !== undefined) app.use("*", apiKeyAuth(opts.apiKey));
  app.use("*", requestBodyLimit(opts.bodyLimit ?? 4 * 1024 * 1024));

  app.get("/health", health(deps));
  app.get("/metrics", metrics(deps));
  app.get("/v1/models", models(deps));
  app.post("/v1/chat/completions", chatCompletions(deps));
  app.post("/v1/completions", completions(deps));
  app.post("/v1/prewarm", startPrewarm(deps));
  app.get("/v1/prewarm/:id", getPrewarm(deps));
  return app;
}
