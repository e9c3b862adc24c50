/**
 * `apiKeyAuth()`: a middleware requiring `Authorization: Bearer <api key>`; 401 otherwise.
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { ApiError } from "./errors.ts";

/** Require the bearer `apiKey` on every request except those whose path is in `open`. */
export function apiKeyAuth(
  apiKey: string,
  open: readonly string[] = ["/health"],
): MiddlewareHandler {
  if (apiKey.length === 0) throw new RangeError("apiKeyAuth: the api key must not be empty");
  const want = digest(apiKey);
  return async (c, next) => {
    if (c.req.method === "OPTIONS" || open.includes(c.req.path)) return await next();
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(.+)$/i.exec(header.trim());
    if (!m || !timingSafeEqual(digest(m[1]), want)) {
      throw new ApiError(
        401,
        m ? "incorrect API key provided" : "missing API key: send 'Authorization: Bearer <key>'",
        "invalid_request_error",
        null,
        "invalid_api_key",
      );
    }
    await next();
  };
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}
