/**
 * `GET /health`: 200 with the model id and the engine's load while the server is up (no auth).
 * @module
 */
import type { Context } from "hono";
import type { ServerDeps } from "./context.ts";

/** The handler of `GET /health`. */
export function health(deps: ServerDeps): (c: Context) => Response {
  return (c) => {
    const s = deps.engine.stats();
    return c.json({
      status: "ok",
      model: deps.modelId,
      running: s.runningSequences,
      waiting: s.waitingRequests,
    });
  };
}
