import assert, { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { startToyServer } from "./harness.ts";
import type { ToyEngine } from "./toy_engine.ts";

const messages = [{ role: "user" as const, content: "go" }];

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

function settled(engine: ToyEngine): boolean {
  return engine.records.every((r) => r.finish !== null) && engine.stats().runningSequences === 0;
}

Deno.test("a client that abandons a stream cancels the engine's generation", async () => {
  const t = await startToyServer({ delayMs: 20 });
  try {
    const stream = await t.client.chat.completions.create({
      model: "toy-llama3",
      messages,
      max_tokens: 200,
      temperature: 0,
      stream: true,
      n: 2,
    });
    let chunks = 0;
    for await (const _ of stream) if (++chunks === 6) break; // break closes the connection
    await until(() => settled(t.engine));
    assertEquals(t.engine.records.map((r) => r.finish), ["abort", "abort"]);
    assert(t.engine.records.every((r) => r.tokens < 50), "stopped long before max_tokens");
  } finally {
    await t.close();
  }
});

Deno.test("a client that aborts a non-streaming request cancels the engine's generation", async () => {
  const t = await startToyServer({ delayMs: 20 });
  try {
    const ctl = new AbortController();
    const pending = t.client.completions.create(
      { model: "toy-llama3", prompt: "go", max_tokens: 200, temperature: 0 },
      { signal: ctl.signal },
    );
    await until(() => (t.engine.records[0]?.tokens ?? 0) >= 3);
    ctl.abort();
    await rejects(pending);
    await until(() => settled(t.engine));
    assertEquals(t.engine.records[0].finish, "abort");
    assert(t.engine.records[0].tokens < 50);
  } finally {
    await t.close();
  }
});

Deno.test("serve().shutdown() lets a stream run for the grace period, then cancels it", async () => {
  const t = await startToyServer({ delayMs: 20, graceMs: 150 });
  try {
    const stream = await t.client.completions.create({
      model: "toy-llama3",
      prompt: "go",
      max_tokens: 250,
      temperature: 0,
      stream: true,
    });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    const t0 = performance.now();
    const stopping = t.server.shutdown();
    let text = "";
    for (let r = await it.next(); !r.done; r = await it.next()) {
      text += r.value.choices[0]?.text ?? "";
    }
    await stopping;
    const waited = performance.now() - t0;
    assert(waited >= 100 && waited < 2000, `shutdown took ${waited} ms`);
    assert(text.length > 0, "the stream kept going during the grace period");
    assertEquals(t.engine.records[0].finish, "abort");
    await rejects(fetch(`${t.baseUrl}/health`)); // no longer accepting
  } finally {
    await t.close();
  }
});
