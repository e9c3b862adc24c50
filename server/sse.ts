/**
 * `sseResponse()`: a Server-Sent Events response pulled from an async iterable, one `data:`
 * event per value, ending with `data: [DONE]`. Cancelling the body (client gone) calls `onCancel`.
 * @module
 */

const encoder = new TextEncoder();

/** Stream `events` as SSE. Strings are sent as they are; other values as JSON. */
export function sseResponse(
  events: AsyncIterable<unknown>,
  onCancel: () => void,
  done: string | null = "[DONE]",
): Response {
  const it = events[Symbol.asyncIterator]();
  let finished = false;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const r = await it.next();
        if (r.done) {
          if (done !== null) controller.enqueue(encoder.encode(`data: ${done}\n\n`));
          finished = true;
          controller.close();
          return;
        }
        const data = typeof r.value === "string" ? r.value : JSON.stringify(r.value);
        controller.enqueue(encoder.encode(`data: ${data}\n\n`));
      } catch (e) {
        // Headers are out: report the failure as a last event, then close.
        finished = true;
        const message = (e as Error)?.message ?? String(e);
        const error = { message, type: "server_error", param: null, code: "stream_error" };
        controller.enqueue(encoder.encode(`data: ${JSON.stringify({ error })}\n\n`));
        controller.close();
      }
    },
    async cancel() {
      onCancel();
      if (!finished) await it.return?.();
    },
  });
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    },
  });
}
