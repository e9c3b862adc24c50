/**
 * `GET /v1/models`: the one served model. `checkModel()`: 404 for any other model name.
 * @module
 */
import type { Context } from "hono";
import type { ServerDeps } from "./context.ts";
import { ApiError } from "./errors.ts";

const startedAt = Math.floor(Date.now() / 1000);

/** The handler of `GET /v1/models`. */
export function models(deps: ServerDeps): (c: Context) => Response {
  return (c) =>
    c.json({
      object: "list",
      data: [{
        id: deps.modelId,
        object: "model",
        created: startedAt,
        owned_by: "kiln",
        max_model_len: deps.engine.contextWindow,
      }],
    });
}

/** Throw a 404 `model_not_found` unless `model` names the served model. */
export function checkModel(deps: ServerDeps, model: string): void {
  if (model !== deps.modelId) {
    throw new ApiError(
      404,
      `the model '${model}' does not exist; this server serves '${deps.modelId}' (see /v1/models)`,
      "invalid_request_error",
      "model",
      "model_not_found",
    );
  }
}
