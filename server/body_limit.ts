/**
 * `requestBodyLimit()`: 413 for request bodies over a size.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { ApiError } from "./errors.ts";

/** Reject bodies over `maxBytes` with a 413 OpenAI-style error. */
export function requestBodyLimit(maxBytes: number): MiddlewareHandler {
  if (!Number.isInteger(maxBytes) || maxBytes <= 0) {
    throw new RangeError(`requestBodyLimit: maxBytes must be a positive integer, got ${maxBytes}`);
  }
  return bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new ApiError(
        413,
        `the request body is larger than ${maxBytes} bytes`,
        "invalid_request_error",
        null,
        "request_too_large",
      );
    },
  });
}
