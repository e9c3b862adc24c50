import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import { sseResponse } from "./sse.ts";

Deno.test("sseResponse() writes one data event per value and a final [DONE]", async () => {
  async function* events() {
    yield { a: 1 };
    yield "raw";
  }
  const res = sseResponse(events(), () => {});
  assertEquals(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
  assertEquals(await res.text(), 'data: {"a":1}\n\ndata: raw\n\ndata: [DONE]\n\n');
});

Deno.test("sseResponse() pings while waiting and ends a failing stream with an error event", async () => {
  async function* slow() {
    await new Promise((r) => setTimeout(r, 60));
    yield 1;
    throw new Error("boom");
  }
  const res = sseResponse(slow(), () => {}, { heartbeatMs: 20, done: null });
  const text = await res.text();
  const parts = text.split("\n\n").filter((p) => p !== "");
  assert(parts.filter((p) => p === ": ping").length >= 1, text);
  assertEquals(parts.filter((p) => p !== ": ping"), [
    "data: 1",
    'data: {"error":{"message":"boom","type":"server_error","param":null,"code":"stream_error"}}',
  ]);
});

Deno.test("sseResponse() calls onCancel and closes the source when the reader cancels", async () => {
  let cancelled = false;
  let closed = false;
  async function* forever() {
    try {
      for (let i = 0;; i++) yield i;
    } finally {
      closed = true;
    }
  }
  const res = sseResponse(forever(), () => (cancelled = true));
  const reader = res.body!.getReader();
  await reader.read();
  await reader.cancel();
  assertEquals([cancelled, closed], [true, true]);
});
