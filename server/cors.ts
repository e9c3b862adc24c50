/**
 * `corsPolicy()`: CORS for browser clients, off unless configured.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";

export interface CorsOptions {
  /** Allowed origins, or "*" for any. */
  readonly origins: "*" | readonly string[];
  /** Seconds a preflight may be cached (default 600). */
  readonly maxAge?: number;
}

/** A CORS middleware allowing `origins` the OpenAI API's methods and headers. */
export function corsPolicy(opts: CorsOptions): MiddlewareHandler {
  return cors({
    origin: opts.origins === "*" ? "*" : [...opts.origins],
    allowMethods: ["GET", "POST", "OPTIONS"],
    allowHeaders: ["Authorization", "Content-Type", "OpenAI-Organization", "OpenAI-Project"],
    maxAge: opts.maxAge ?? 600,
  });
}
