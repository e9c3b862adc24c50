import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import { startToyServer, toyGreedy } from "./harness.ts";
import { TOY_SCRIPT } from "./toy_engine.ts";

const messages = [
  { role: "system" as const, content: "Be brief." },
  { role: "user" as const, content: "Tell me about kilns." },
];
// The Llama 3 template's output, written by hand from its definition.
const h = (role: string) => `<|start_header_id|>${role}<|end_header_id|>\n\n`;
const PROMPT_TEXT = `<|begin_of_text|>${h("system")}Be brief.<|eot_id|>` +
  `${h("user")}Tell me about kilns.<|eot_id|>${h("assistant")}`;

Deno.test("POST /v1/chat/completions answers with the toy model's greedy continuation", async () => {
  const t = await startToyServer();
  try {
    const prompt = t.engine.tokenizer.encode(PROMPT_TEXT, { addSpecialTokens: false });
    const ref = toyGreedy(t.engine, t.engine.tokenizer, prompt, 12);
    const r = await t.client.chat.completions.create({
      model: "toy-llama3",
      messages,
      max_tokens: 12,
      temperature: 0,
    });
    assertEquals(r.object, "chat.completion");
    assertEquals(r.choices.length, 1);
    assertEquals(r.choices[0].message.role, "assistant");
    assertEquals(r.choices[0].message.content, ref.text);
    assertEquals(r.choices[0].finish_reason, ref.finish);
    assertEquals(r.usage, {
      prompt_tokens: prompt.length,
      completion_tokens: ref.ids.length,
      total_tokens: prompt.length + ref.ids.length,
    });
    // The engine got the hand-written prompt's tokens.
    assertEquals([...t.engine.records[0].options.prompt], prompt);
  } finally {
    await t.close();
  }
});

Deno.test("POST /v1/chat/completions streams deltas that join to the whole text, with usage", async () => {
  const t = await startToyServer();
  try {
    const prompt = t.engine.tokenizer.encode(PROMPT_TEXT, { addSpecialTokens: false });
    const ref = toyGreedy(t.engine, t.engine.tokenizer, prompt, 40);
    assertEquals(ref.finish, "stop"); // reaches <|eot_id|>
    assert(ref.text.includes("😀"), "the reference passes the emoji split across two tokens");
    const stream = await t.client.chat.completions.create({
      model: "toy-llama3",
      messages,
      max_tokens: 40,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let role = "";
    let finish: string | null = null;
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        if (c.delta.role) role = c.delta.role;
        const piece = c.delta.content ?? "";
        assert(!piece.includes("\uFFFD"), "no broken UTF-8 in a delta");
        text += piece;
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    assertEquals(role, "assistant");
    assertEquals(text, ref.text);
    assertEquals(finish, "stop");
    assertEquals(usage, {
      prompt_tokens: prompt.length,
      completion_tokens: ref.ids.length,
      total_tokens: prompt.length + ref.ids.length,
    });
  } finally {
    await t.close();
  }
});

Deno.test("POST /v1/chat/completions stops at a stop string and never sends it, streamed or not", async () => {
  const t = await startToyServer();
  try {
    const prompt = t.engine.tokenizer.encode(PROMPT_TEXT, { addSpecialTokens: false });
    const stop = ["ery 😀 wh"]; // spans several tokens, the emoji's two among them
    const ref = toyGreedy(t.engine, t.engine.tokenizer, prompt, 40, stop);
    assertEquals(ref.finish, "stop");
    assertEquals(ref.text, TOY_SCRIPT.slice(0, TOY_SCRIPT.indexOf(stop[0])));
    const base = { model: "toy-llama3", messages, max_tokens: 40, temperature: 0, stop };
    const r = await t.client.chat.completions.create(base);
    assertEquals(r.choices[0].message.content, ref.text);
    assertEquals(r.choices[0].finish_reason, "stop");
    let streamed = "";
    for await (const chunk of await t.client.chat.completions.create({ ...base, stream: true })) {
      streamed += chunk.choices[0]?.delta.content ?? "";
    }
    assertEquals(streamed, ref.text);
  } finally {
    await t.close();
  }
});

Deno.test("POST /v1/chat/completions with n > 1 runs n seeded generations with logprobs", async () => {
  const t = await startToyServer();
  try {
    const r = await t.client.chat.completions.create({
      model: "toy-llama3",
      messages,
      max_tokens: 6,
      n: 3,
      temperature: 1.5,
      seed: 7,
      logprobs: true,
      top_logprobs: 2,
    });
    assertEquals(r.choices.map((c) => c.index), [0, 1, 2]);
    assertEquals(t.engine.records.map((rec) => rec.options.sampling.seed), [7, 8, 9]);
    for (const c of r.choices) {
      const lps = c.logprobs!.content!;
      assert(lps.length >= 1 && lps.length <= 6);
      const shown = lps.filter((l) => l.token !== "<|eot_id|>").map((l) => l.token).join("");
      assertEquals(shown, c.message.content);
      for (const l of lps) {
        assertEquals(l.top_logprobs.length, 2);
        // Toy logits are 4, 2, 0…: the top two logprobs are known in closed form.
        const L = t.engine.vocab.length;
        const lse = Math.log(Math.exp(4) + Math.exp(2) + (L - 2));
        assert(Math.abs(l.top_logprobs[0].logprob - (4 - lse)) < 1e-12);
        assert(Math.abs(l.top_logprobs[1].logprob - (2 - lse)) < 1e-12);
      }
    }
    // Same seed → same choices.
    const again = await t.client.chat.completions.create({
      model: "toy-llama3",
      messages,
      max_tokens: 6,
      n: 3,
      temperature: 1.5,
      seed: 7,
    });
    assertEquals(
      again.choices.map((c) => c.message.content),
      r.choices.map((c) => c.message.content),
    );
  } finally {
    await t.close();
  }
});

Deno.test("POST /v1/chat/completions passes the validated sampling parameters to the engine", async () => {
  const t = await startToyServer();
  try {
    const first = t.engine.vocab[0];
    await t.client.chat.completions.create({
      model: "toy-llama3",
      messages,
      max_completion_tokens: 3,
      temperature: 0.5,
      top_p: 0.9,
      presence_penalty: 0.5,
      frequency_penalty: -0.5,
      logit_bias: { [String(first)]: -100 },
      seed: 11,
      stop: "zz",
      // Extensions (vLLM's names), sent as extra body fields.
      ...({ top_k: -1, repetition_penalty: 1.1, ignore_eos: true } as object),
    });
    const o = t.engine.records[0].options;
    assertEquals(o.maxTokens, 3);
    assertEquals(o.sampling, {
      temperature: 0.5,
      top_p: 0.9,
      top_k: 0,
      presence_penalty: 0.5,
      frequency_penalty: -0.5,
      repetition_penalty: 1.1,
      logit_bias: new Map([[first, -100]]),
      seed: 11,
    });
    assertEquals(o.stop, ["zz"]);
    assertEquals(o.ignoreEos, true);
    assertEquals(o.logprobs, null);
    assert(o.signal instanceof AbortSignal);
  } finally {
    await t.close();
  }
});

Deno.test("CORS preflight is answered when the app is configured with origins", async () => {
  const t = await startToyServer({ cors: { origins: ["https://app.example"] } });
  try {
    const res = await fetch(`${t.baseUrl}/v1/chat/completions`, {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type",
      },
    });
    await res.body?.cancel();
    assert(res.status === 204 || res.status === 200);
    assertEquals(res.headers.get("access-control-allow-origin"), "https://app.example");
    assert(
      res.headers.get("access-control-allow-headers")!.toLowerCase().includes("authorization"),
    );
  } finally {
    await t.close();
  }
});
