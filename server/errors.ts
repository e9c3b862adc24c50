/**
 * The server's errors and its one `onError`: every failure becomes an OpenAI-style body
 * `{ error: { message, type, param, code } }` with the matching HTTP status.
 * @module
 */
import type { Context } from "hono";

/** An error with an HTTP status and the fields of an OpenAI error body. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 422 | 500 | 501 | 503,
    message: string,
    readonly type: string = "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A 400 invalid_request_error naming the offending parameter. */
export function badRequest(message: string, param: string | null = null, code?: string): ApiError {
  return new ApiError(400, message, "invalid_request_error", param, code ?? null);
}

/** The request was cancelled (client gone or server shutting down) before it finished. */
export function cancelled(): ApiError {
  return new ApiError(503, "the request was cancelled", "server_error", null, "cancelled");
}

/** Status, type and code for Kiln's named domain errors (by `name`, so no import cycle). */
const NAMED: Record<string, [ApiError["status"], string, string]> = {
  ConfigError: [400, "invalid_request_error", "config_error"],
  NotImplementedError: [501, "not_implemented_error", "not_implemented"],
  CacheMissError: [409, "invalid_request_error", "cache_miss"],
  IntegrityError: [500, "server_error", "integrity_error"],
  LockTimeoutError: [503, "server_error", "lock_timeout"],
  TargetError: [503, "server_error", "no_target"],
  WeightError: [500, "server_error", "weight_error"],
  CompileError: [500, "server_error", "compile_error"],
  KvCacheFullError: [503, "server_error", "kv_cache_full"],
};

/** The OpenAI-style body and status for any thrown value. */
export function errorBody(err: unknown): {
  status: ApiError["status"];
  body: { error: { message: string; type: string; param: string | null; code: string | null } };
} {
  if (err instanceof ApiError) {
    return {
      status: err.status,
      body: { error: { message: err.message, type: err.type, param: err.param, code: err.code } },
    };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  const named = NAMED[e.name];
  if (named) {
    const [status, type, code] = named;
    return { status, body: { error: { message: e.message, type, param: null, code } } };
  }
  return {
    status: 500,
    body: {
      error: {
        message: `internal error: ${e.message}`,
        type: "server_error",
        param: null,
        code: "internal_error",
      },
    },
  };
}

/** Hono `onError`: log unexpected failures, answer with the OpenAI-style body. */
export function onError(err: Error, c: Context): Response {
  const { status, body } = errorBody(err);
  if (status >= 500 && body.error.code !== "cancelled") {
    console.error(`kiln server: ${c.req.method} ${c.req.path}:`, err);
  }
  return c.json(body, status);
}
