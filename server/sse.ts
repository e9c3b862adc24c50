/**
 * `sseResponse()`: a Server-Sent Events response pulled from an async iterable, one `data:`
 * event per value, ending with `data: [DONE]`. Cancelling the body (client gone) calls `onCancel`.
 * @module
 */

const encoder = new TextEncoder();

export interface SseOptions {
  /** Sent after the last event; null sends nothing (default "[DONE]"). */
  readonly done?: string | null;
  /** While no event comes for this long, send a `: ping` comment (keeps proxies from timing out). */
  readonly heartbeatMs?: number;
}

/** Stream `events` as SSE. Strings are sent as they are; other values as JSON. */
export function sseResponse(
  events: AsyncIterable<unknown>,
  onCancel: () => void,
  opts: SseOptions = {},
): Response {
  const done = opts.done === undefined ? "[DONE]" : opts.done;
  const it = events[Symbol.asyncIterator]();
  let finished = false;
  // the client went away while a pull awaited the next event: nothing more may be enqueued
  let cancelled = false;
  let next: Promise<IteratorResult<unknown>> | null = null;
  const send = (c: ReadableStreamDefaultController<Uint8Array>, text: string) =>
    c.enqueue(encoder.encode(text));
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        next ??= it.next();
        if (opts.heartbeatMs) {
          let timer: ReturnType<typeof setTimeout> | undefined;
          const tick = new Promise<"tick">((
            r,
          ) => (timer = setTimeout(() => r("tick"), opts.heartbeatMs)));
          const first = await Promise.race([next, tick]);
          clearTimeout(timer);
          if (cancelled) return;
          if (first === "tick") return send(controller, ": ping\n\n");
        }
        const r = await next;
        next = null;
        if (cancelled) return;
        if (r.done) {
          if (done !== null) send(controller, `data: ${done}\n\n`);
          finished = true;
          controller.close();
          return;
        }
        send(
          controller,
          `data: ${typeof r.value === "string" ? r.value : JSON.stringify(r.value)}\n\n`,
        );
      } catch (e) {
        if (cancelled) return; // (the iterator's end after a cancel: no one to tell)
        // Headers are out: report the failure as a last event, then close.
        console.error("kiln server: a stream failed:", e);
        finished = true;
        const message = (e as Error)?.message ?? String(e);
        const error = { message, type: "server_error", param: null, code: "stream_error" };
        send(controller, `data: ${JSON.stringify({ error })}\n\n`);
        controller.close();
      }
    },
    async cancel() {
      cancelled = true;
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
