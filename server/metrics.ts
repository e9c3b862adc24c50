/**
 * `GET /metrics`: Prometheus text of the server's, the engine's and the prewarmer's numbers.
 * @module
 */
import type { Context } from "hono";
import type { ServerDeps } from "./context.ts";

/** The handler of `GET /metrics`. */
export function metrics(deps: ServerDeps): (c: Context) => Response {
  return (c) => {
    const text = deps.metrics.render(
      deps.engine.stats(),
      deps.prewarm?.counters() ?? null,
      deps.extraMetrics?.() ?? "",
    );
    return c.body(text, 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
  };
}
