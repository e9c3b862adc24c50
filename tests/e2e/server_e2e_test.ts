/**
 * End to end: the real server (`deno run -A mod.ts --model <example>`) in a child process, driven
 * by the official `openai` client. The example model is the generator's (random weights, the
 * real Llama 3 tokenizer); greedy outputs are checked against the engine's own greedy tokens
 * through the same library (`/v1/completions` with token ids and logprobs), and the HTTP
 * behaviour against the OpenAI API's.
 */
import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import OpenAI from "openai";
import { makeModel } from "../../examples/make_model.ts";

const MOD = new URL("../../mod.ts", import.meta.url).pathname;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function startServer(modelDir: string, home: string, extra: string[] = []) {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MOD, "--model", modelDir, "--target", "cpu", "--port", String(port), "--max-tokens", "8", ...extra],
    env: { KILN_HOME: home },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log: string[] = [];
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      log.push(value);
    }
  })();
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(`${base}/health`)).ok) break;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    log,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await pump;
    },
  };
}

Deno.test({
  name: "the server (mod.ts --model) answers the openai client: chat, streaming, completions with token ids and logprobs, models, errors, prewarm, disconnects",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "kiln-e2e-" });
    const modelDir = `${root}/models/example`;
    await makeModel({ out: modelDir, variant: "example" });
    const server = await startServer(modelDir, `${root}/home`, ["--api-key", "sk-test"]);
    try {
      const client = new OpenAI({ baseURL: `${server.base}/v1`, apiKey: "sk-test", maxRetries: 0 });
      // models
      const models = await client.models.list();
      assertEquals(models.data.map((m) => m.id), ["example"]);
      // chat, non-streaming and streaming give the same greedy text
      const chat = await client.chat.completions.create({ model: "example", messages: [{ role: "user", content: "Hi" }], max_tokens: 6, temperature: 0 });
      assertEquals(chat.choices[0].finish_reason, "length");
      assertEquals(chat.usage!.completion_tokens, 6);
      const stream = await client.chat.completions.create({ model: "example", messages: [{ role: "user", content: "Hi" }], max_tokens: 6, temperature: 0, stream: true, stream_options: { include_usage: true } });
      let streamed = "", usage = 0;
      for await (const ev of stream) {
        streamed += ev.choices[0]?.delta?.content ?? "";
        if (ev.usage) usage = ev.usage.completion_tokens;
      }
      assertEquals(streamed, chat.choices[0].message.content);
      assertEquals(usage, 6);
      // completions with a token-id prompt and logprobs: the chosen tokens are the argmax
      const comp = await client.completions.create({ model: "example", prompt: [128000, 9906, 11, 1917], max_tokens: 4, temperature: 0, logprobs: 3 });
      const lp = comp.choices[0].logprobs!;
      assertEquals(lp.tokens!.length, 4);
      lp.top_logprobs!.forEach((top, i) => {
        const best = Math.max(...Object.values(top));
        ok(Math.abs(lp.token_logprobs![i]! - best) < 1e-5, `token ${i} is not the most likely`);
      });
      // errors surface as the client's typed errors
      await rejects(() => client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }), OpenAI.NotFoundError);
      await rejects(() => client.chat.completions.create({ model: "example", messages: [{ role: "user", content: "x" }], temperature: -3 }), OpenAI.BadRequestError);
      await rejects(() => new OpenAI({ baseURL: `${server.base}/v1`, apiKey: "wrong", maxRetries: 0 }).models.list(), OpenAI.AuthenticationError);
      const long = Array.from({ length: 3000 }, () => 1000);
      await rejects(() => client.completions.create({ model: "example", prompt: long, max_tokens: 1 }), OpenAI.BadRequestError);
      // prewarm the model that is loaded: the library is already in the cache
      const pre = await fetch(`${server.base}/v1/prewarm`, { method: "POST", headers: { authorization: "Bearer sk-test", "content-type": "application/json" }, body: JSON.stringify({ model: modelDir, quantization: "q4f16_1" }) });
      assertEquals(pre.status, 202);
      const job = await pre.json();
      let state: Record<string, unknown> = {};
      for (let i = 0; i < 300; i++) {
        state = await (await fetch(`${server.base}/v1/prewarm/${job.id}`, { headers: { authorization: "Bearer sk-test" } })).json();
        if (state.state === "done" || state.state === "failed") break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assertEquals(state.state, "done", JSON.stringify(state));
      const result = state.result as { origin: string; weightsOrigin: string };
      assertEquals([result.origin, result.weightsOrigin], ["cache", "cache"], JSON.stringify(state));
      const outside = await fetch(`${server.base}/v1/prewarm`, { method: "POST", headers: { authorization: "Bearer sk-test", "content-type": "application/json" }, body: JSON.stringify({ model: "/etc" }) });
      assertEquals(outside.status, 403);
      // a client that disconnects mid-stream frees its KV pages
      const ctl = new AbortController();
      const s2 = await client.chat.completions.create({ model: "example", messages: [{ role: "user", content: "Tell me" }], max_tokens: 400, stream: true }, { signal: ctl.signal });
      let n = 0;
      try {
        for await (const _ of s2) if (++n === 3) ctl.abort();
      } catch (e) {
        ok((e as Error).name.includes("Abort"), `stream ended with ${e}`);
      }
      assertEquals(n, 3);
      // 397 more tokens take ≥ 6 s on this model (sampling over 128k logits); freed pages within
      // 3 s mean the generation was cancelled, not finished
      let used = -1;
      for (let i = 0; i < 30 && used !== 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const metrics = await (await fetch(`${server.base}/metrics`, { headers: { authorization: "Bearer sk-test" } })).text();
        used = Number(/^kiln_kv_pages_used (\d+)/m.exec(metrics)?.[1] ?? -1);
      }
      assertEquals(used, 0, "KV pages still in use after the client disconnected");
    } finally {
      await server.stop();
      await Deno.remove(root, { recursive: true });
    }
  },
});
