/**
 * Engine figures for the example model on this machine: time to first token, decode tokens/s
 * at batch 1, aggregate tokens/s at batch 16 — through `KilnEngine` end to end (tokenize → prefill
 * → device-side sampling → readback → detokenize), greedy, `ignoreEos` so every request makes
 * its full `maxTokens`.
 * @module
 */
import { compile } from "../compiler/compile.ts";
import { Model } from "../engine/model.ts";
import { KilnEngine } from "../engine/engine.ts";
import { loadTokenizer } from "../engine/tokenizer.ts";
import { makeModel } from "../examples/make_model.ts";
import { GREEDY } from "../engine/sampling_params.ts";

export interface EngineBenchRow {
  target: string;
  device: string;
  ttftMs: number;
  decodeTokPerSecB1: number;
  aggregateTokPerSecB16: number;
  maxBatchSize: number;
}

export async function benchEngine(
  target: "cpu" | "webgpu",
  device: string,
): Promise<EngineBenchRow> {
  const dir = await Deno.makeTempDir({ prefix: "kiln-engine-bench-" });
  try {
    await makeModel({ out: dir, variant: "example" });
    await compile({
      config: dir,
      quantization: "q4f16_1",
      target: target === "cpu" ? "cpu" : "auto",
      output: `${dir}/lib`,
      overrides: "max_batch_size=16",
      warn: () => {},
    });
    const model = await Model.load({ lib: `${dir}/lib`, weights: dir, numPages: 256 });
    const tok = await loadTokenizer(dir);
    const engine = new KilnEngine(model, tok, null, "example", { stepsAhead: 8 });
    const prompt = tok.encode("The quick brown fox jumps over the lazy dog. ".repeat(4));
    const run = async (maxTokens: number) => {
      const t0 = performance.now();
      let first = 0, n = 0;
      for await (
        const c of engine.generate({ prompt, maxTokens, sampling: GREEDY, ignoreEos: true })
      ) {
        if (n === 0 && c.tokens.length > 0) first = performance.now() - t0;
        n += c.tokens.length;
      }
      return { first, total: performance.now() - t0, n };
    };
    await run(4); // warm-up: pipelines, bind groups
    const ttft = (await run(1)).first;
    const b1 = await run(64);
    const decodeB1 = (b1.n - 1) / ((b1.total - b1.first) / 1000);
    const t0 = performance.now();
    const all = await Promise.all(Array.from({ length: 16 }, () => run(32)));
    const agg = all.reduce((a, r) => a + r.n, 0) / ((performance.now() - t0) / 1000);
    const maxBatch = engine.stats().maxBatchSize;
    await engine.close();
    return {
      target,
      device,
      ttftMs: ttft,
      decodeTokPerSecB1: decodeB1,
      aggregateTokPerSecB16: agg,
      maxBatchSize: maxBatch,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
