import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import { startToyServer, toyGreedy } from "./harness.ts";
import { TOY_SCRIPT } from "./toy_engine.ts";

Deno.test("POST /v1/completions takes token-id prompts and returns integer logprobs", async () => {
  const t = await startToyServer();
  try {
    const tok = t.engine.tokenizer;
    // "Kiln fires" continues the script: the next tokens are " clay into pottery…".
    const prompt = tok.encode(" Kiln fires", { addSpecialTokens: false });
    const ref = toyGreedy(t.engine, tok, prompt, 5);
    assert(ref.text.startsWith(" clay"));
    const r = await t.client.completions.create({
      model: "toy-llama3",
      prompt,
      max_tokens: 5,
      temperature: 0,
      logprobs: 3,
    });
    assertEquals(r.object, "text_completion");
    assertEquals(r.choices[0].text, ref.text);
    assertEquals(r.choices[0].finish_reason, "length");
    const lp = r.choices[0].logprobs!;
    assertEquals(lp.tokens, ref.ids.map((id) => tok.decode([id])));
    assertEquals(lp.tokens!.join(""), ref.text);
    // Offsets are where each token's text starts in the returned text.
    let off = 0;
    assertEquals(lp.text_offset, lp.tokens!.map((s) => ((off += s.length), off - s.length)));
    const L = t.engine.vocab.length;
    const lse = Math.log(Math.exp(4) + Math.exp(2) + (L - 2));
    for (const [i, v] of lp.token_logprobs!.entries()) {
      assert(Math.abs(v - (4 - lse)) < 1e-12, `greedy token ${i} has the top logprob`);
      assertEquals(Object.keys(lp.top_logprobs![i]).length, 3);
    }
    assertEquals(r.usage?.prompt_tokens, prompt.length);
    assertEquals(r.usage?.completion_tokens, 5);
  } finally {
    await t.close();
  }
});

Deno.test("POST /v1/completions echoes text prompts, batches prompts × n and streams", async () => {
  const t = await startToyServer();
  try {
    const tok = t.engine.tokenizer;
    const prompts = [" Kiln", "Hello"];
    const r = await t.client.completions.create({
      model: "toy-llama3",
      prompt: prompts,
      n: 2,
      max_tokens: 4,
      temperature: 0,
      echo: true,
    });
    assertEquals(r.choices.map((c) => c.index), [0, 1, 2, 3]);
    for (const c of r.choices) {
      const p = prompts[Math.floor(c.index / 2)];
      const ref = toyGreedy(t.engine, tok, tok.encode(p), 4);
      assertEquals(c.text, p + ref.text);
    }
    // A text prompt gets BOS only as the tokenizer's config says (this one adds none).
    assertEquals([...t.engine.records[0].options.prompt], tok.encode(" Kiln"));
    const texts = ["", ""];
    let usage = null;
    const stream = await t.client.completions.create({
      model: "toy-llama3",
      prompt: [tok.encode(" Kiln", { addSpecialTokens: false }), [128000]],
      max_tokens: 60,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) texts[c.index] += c.text;
    }
    assertEquals(texts[0], TOY_SCRIPT.slice(" Kiln".length));
    assertEquals(texts[1], TOY_SCRIPT);
    assertEquals(usage?.prompt_tokens, tok.encode(" Kiln", { addSpecialTokens: false }).length + 1);
  } finally {
    await t.close();
  }
});
