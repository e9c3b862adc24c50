/**
 * Kiln's OpenAI-compatible HTTP server (Hono): chat and text completions (streaming too),
 * models, prewarm, health and Prometheus metrics over one `Engine`.
 *
 * ```ts
 * import { createApp, jitPrewarmer, serve } from "./server/mod.ts";
 * const app = createApp({ engine, apiKey, modelRoots: ["/models"], prewarm: jitPrewarmer({ cacheRoot }) });
 * const server = serve({ app, port: 8000 });
 * await server.finished;
 * ```
 * @module
 */
export { createApp } from "./app.ts";
export type { AppOptions } from "./app.ts";
export { serve } from "./serve.ts";
export type { RunningServer, ServeOptions } from "./serve.ts";
export { jitPrewarmer } from "./prewarmer.ts";
export type {
  JitPrewarmerOptions,
  Prewarmer,
  PrewarmOutcome,
  PrewarmProgress,
  PrewarmRequest,
} from "./prewarmer.ts";
export type { CorsOptions } from "./cors.ts";
export { ApiError } from "./errors.ts";
