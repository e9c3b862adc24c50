/**
 * `POST /v1/prewarm` → 202 `{id, key, state}`: compile (and convert weights) ahead of traffic.
 * `GET /v1/prewarm/{id}` → the job's state and progress; `?stream=true` streams the progress
 * events as SSE, ending with the job's final state. Models may only be named inside the
 * configured model roots (403 otherwise).
 * @module
 */
import type { Context } from "hono";
import { readJson, requestSignal, type ServerDeps } from "./context.ts";
import { ApiError } from "./errors.ts";
import { realRoots, resolveModelPath } from "./model_path.ts";
import type { PrewarmJobs } from "./prewarm_jobs.ts";
import { sseResponse } from "./sse.ts";
import { validatePrewarmRequest } from "./validate.ts";

/** The handler of `POST /v1/prewarm`. */
export function startPrewarm(deps: ServerDeps): (c: Context) => Promise<Response> {
  return async (c) => {
    const jobs = enabled(deps);
    const body = validatePrewarmRequest(await readJson(c));
    const model = await resolveModelPath(body.model, await realRoots(deps.modelRoots));
    const job = jobs.start({ ...body, model });
    return c.json({ id: job.id, key: job.key, state: job.state }, 202);
  };
}

/** The handler of `GET /v1/prewarm/{id}`. */
export function getPrewarm(deps: ServerDeps): (c: Context) => Response {
  return (c) => {
    const jobs = enabled(deps);
    const id = c.req.param("id") ?? "";
    const stream = c.req.query("stream");
    if (stream === "true" || stream === "1") {
      const { signal, controller } = requestSignal(c);
      const events = jobs.watch(id, signal);
      if (events === null) throw notFound(id);
      return sseResponse(events, () => controller.abort(), { heartbeatMs: 15_000 });
    }
    const job = jobs.get(id);
    if (job === null) throw notFound(id);
    return c.json(job);
  };
}

function enabled(deps: ServerDeps): PrewarmJobs {
  if (deps.prewarm === null) {
    throw new ApiError(
      501,
      "prewarm is not enabled on this server (it was started without a prewarmer)",
      "not_implemented_error",
      null,
      "prewarm_disabled",
    );
  }
  return deps.prewarm;
}

function notFound(id: string): ApiError {
  return new ApiError(
    404,
    `no prewarm job '${id}'`,
    "invalid_request_error",
    "id",
    "prewarm_not_found",
  );
}
