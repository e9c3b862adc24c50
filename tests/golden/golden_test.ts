/**
 * Golden tests: compiled libraries of every Llama-family variant, on the CPU target and on
 * WebGPU (when an adapter exists), against Hugging Face transformers' float64 logits and greedy
 * continuations (tests/fixtures/golden), and, for quantized schemes, against the float64
 * reference run on the de-quantised weights.
 *
 * Tolerances (max-abs error over max |logit| of the case): q0f32 1e-3, q0f16 2e-2, q4/q3 2e-2;
 * a library with q8 activations (decode, and prefill beyond 32 rows) 4e-2 (their int8
 * rounding measured up to 2.02e-2 on these random models; `Q8_TOL`).
 * Greedy continuations must be identical for q0f32.
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { compile } from "../../compiler/compile.ts";
import { GENERIC_WEBGPU, resolveTarget } from "../../compiler/target.ts";
import { Model } from "../../engine/model.ts";
import {
  type Golden,
  GOLDEN_VARIANTS,
  type GoldenVariant,
  loadGolden,
} from "../fixtures/golden.ts";
import { referenceLogits } from "../reference/llama_f64.ts";
import { relMaxError } from "../assert.ts";
import { dequantizedWeights } from "./dequantized.ts";
import { adapter, packedDot, Q8_TOL } from "./q8.ts";

const TARGETS = ["cpu", "webgpu"] as const;
/** "webgpu-generic": compiled for the WebGPU specification's default limits (what `--target webgpu` builds without a GPU), run on the adapter. */
type TargetName = typeof TARGETS[number] | "webgpu-generic";
const NO_GPU = "no WebGPU adapter on this machine";

async function load(
  g: Golden,
  quantization: string,
  target: TargetName,
  opt = "O2",
): Promise<{ model: Model; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "kiln-golden-lib-" });
  await compile({
    config: g.modelDir,
    quantization,
    target: target === "cpu"
      ? "cpu"
      : target === "webgpu-generic"
      ? GENERIC_WEBGPU
      : await resolveTarget("auto"),
    opt,
    output: `${dir}/lib`,
    warn: () => {},
  });
  return { model: await Model.load({ lib: `${dir}/lib`, weights: g.modelDir, numPages: 32 }), dir };
}

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Logits of every position (batch_prefill path), of the last one (prefill path) and of the
 * last one as a decode step after a prefill of the rest (decode path). */
async function checkCases(
  model: Model,
  cases: { tokens: number[]; ref: Float64Array }[],
  tol: number,
  what: string,
) {
  const V = model.metadata.vocab_size;
  for (const [i, c] of cases.entries()) {
    const rows = await model.forward([{ seq: 100 + i, tokens: c.tokens, start: 0 }], { all: true });
    model.kv.release(100 + i);
    const got = new Float32Array(c.tokens.length * V);
    rows.forEach((r, j) => got.set(r, j * V));
    const all = relMaxError(got, c.ref);
    ok(
      all.rel <= tol,
      `${what}, ${c.tokens.length} tokens, all positions: error ${all.err} is ${
        all.rel.toExponential(2)
      } × max|logit| ${all.scale.toFixed(2)} > ${tol}`,
    );
    const [last] = await model.forward([{ seq: 200 + i, tokens: c.tokens, start: 0 }]);
    model.kv.release(200 + i);
    const lastRef = c.ref.subarray((c.tokens.length - 1) * V);
    const e = relMaxError(last, lastRef);
    ok(
      e.rel <= tol,
      `${what}, ${c.tokens.length} tokens, prefill last row: ${e.rel.toExponential(2)} > ${tol}`,
    );
    // the last token through the single-row decode function (q8 activations where enabled)
    await model.forward([{ seq: 300 + i, tokens: c.tokens.slice(0, -1), start: 0 }]);
    const [step] = await model.forward([{
      seq: 300 + i,
      tokens: c.tokens.slice(-1),
      start: c.tokens.length - 1,
    }]);
    model.kv.release(300 + i);
    const d = relMaxError(step, lastRef);
    if (Deno.env.get("KILN_GOLDEN_PRINT")) {
      console.log(
        `${what}, ${c.tokens.length} tokens: all ${all.rel.toExponential(2)}, last ${
          e.rel.toExponential(2)
        }, decode ${d.rel.toExponential(2)}`,
      );
    }
    ok(
      d.rel <= tol,
      `${what}, ${c.tokens.length} tokens, decode step: ${d.rel.toExponential(2)} > ${tol}`,
    );
  }
}

async function greedy(model: Model, prompt: number[], steps: number): Promise<number[]> {
  const out: number[] = [];
  let [logits] = await model.forward([{ seq: 0, tokens: prompt, start: 0 }]);
  for (let s = 0; s < steps; s++) {
    const next = argmax(logits);
    out.push(next);
    if (s + 1 < steps) {
      [logits] = await model.forward([{ seq: 0, tokens: [next], start: prompt.length + s }]);
    }
  }
  model.kv.release(0);
  return out;
}

for (const variant of GOLDEN_VARIANTS) {
  for (const target of TARGETS) {
    Deno.test({
      name:
        `golden ${variant} q0f32 ${target}: logits within 1e-3 × max|logit| of transformers, greedy identical`,
      ignore: target === "webgpu" && !adapter,
      sanitizeResources: false,
      fn: async () => {
        const g = await loadGolden(variant);
        const { model, dir } = await load(g, "q0f32", target);
        try {
          await checkCases(
            model,
            g.cases.map((c) => ({ tokens: c.tokens, ref: c.logits })),
            1e-3,
            `${variant} q0f32 ${target}`,
          );
          assertEquals(
            await greedy(model, g.greedy.prompt, g.greedy.output.length),
            g.greedy.output,
          );
        } finally {
          model.destroy();
          await Deno.remove(dir, { recursive: true });
        }
      },
    });
  }
}

/** The q8 decode with its norms as dispatches of their own (O2 folds them into the matmuls). */
const UNFUSED_NORM = "fuse_norm_matmul=0";

/** Quantized schemes, every variant; plus the unfused pipelines (O0, O1) on a few. */
const QUANT_CASES: [string, readonly GoldenVariant[], "hf" | "dequantized", number, string][] = [
  ["q0f16", GOLDEN_VARIANTS, "hf", 2e-2, "O2"],
  ["q4f16_1", GOLDEN_VARIANTS, "dequantized", 2e-2, "O2"],
  ["q4f32_1", GOLDEN_VARIANTS, "dequantized", 2e-2, "O2"],
  ["q3f16_1", GOLDEN_VARIANTS, "dequantized", 2e-2, "O2"],
  ["q4f16_1", ["llama3", "qwen2"], "dequantized", 2e-2, "O0"],
  ["q4f16_1", ["mistral", "llama3.2"], "dequantized", 2e-2, "O1"],
  // the q8 decode with the RMSNorms unfolded (WebGPU with q8 only)
  ["q4f16_1", ["llama3", "qwen2"], "dequantized", 2e-2, UNFUSED_NORM],
];

for (const [quant, variants, refKind, tol, opt] of QUANT_CASES) {
  for (const variant of variants) {
    // (the unfolded-norm case only where q8 matmuls exist: elsewhere it is O2 again)
    const targets: TargetName[] = opt === UNFUSED_NORM
      ? ["webgpu"]
      : quant === "q4f16_1" && opt === "O2" && (variant === "llama3" || variant === "qwen2")
      ? [...TARGETS, "webgpu-generic"]
      : [...TARGETS];
    for (const target of targets) {
      Deno.test({
        name:
          `golden ${variant} ${quant} ${opt} ${target}: logits within ${tol} × max|logit| (${Q8_TOL} with q8 activations) of the float64 reference${
            refKind === "dequantized" ? " on de-quantised weights" : ""
          }`,
        ignore: (target !== "cpu" && !adapter) || (opt === UNFUSED_NORM && !packedDot),
        sanitizeResources: false,
        fn: async () => {
          const g = await loadGolden(variant);
          // the two longest cases (23 and 40 tokens: past Mistral's window of 16)
          const picked = g.cases.slice(-2);
          const cases = refKind === "hf"
            ? picked.map((c) => ({ tokens: c.tokens, ref: c.logits }))
            : await (async () => {
              const weights = await dequantizedWeights(g.modelDir, quant);
              return await Promise.all(
                picked.map(async (c) => ({
                  tokens: c.tokens,
                  ref: await referenceLogits(g.modelDir, c.tokens, { weights }),
                })),
              );
            })();
          const { model, dir } = await load(g, quant, target, opt);
          try {
            // q8 activations (int8 x per 32 elements) in the matmuls add their rounding
            const q8 = model.metadata.opt?.q8_activations === true;
            if (opt === UNFUSED_NORM) {
              ok(q8, "the unfolded-norm case compiled without q8 activations");
            }
            await checkCases(
              model,
              cases,
              q8 ? Q8_TOL : tol,
              `${variant} ${quant} ${opt} ${target}`,
            );
          } finally {
            model.destroy();
            await Deno.remove(dir, { recursive: true });
          }
        },
      });
    }
  }
}

Deno.test({
  name: "golden: WebGPU cases ran (set KILN_REQUIRE_WEBGPU=1 to fail without an adapter)",
  ignore: !!adapter || Deno.env.get("KILN_REQUIRE_WEBGPU") !== "1",
  fn: () => {
    throw new Error(NO_GPU);
  },
});

for (const target of TARGETS) {
  Deno.test({
    name:
      `golden mistral q0f32 ${target}: the rolling KV cache (pages past the window given back) keeps every position's logits`,
    ignore: target === "webgpu" && !adapter,
    sanitizeResources: false,
    fn: async () => {
      const g = await loadGolden("mistral"); // sliding window 16
      const { model, dir } = await load(g, "q0f32", target);
      try {
        const c = g.cases[g.cases.length - 1]; // 40 tokens
        const V = model.metadata.vocab_size;
        let peak = 0;
        const got = new Float32Array(c.tokens.length * V);
        // one token at a time through decode: positions run 2.5 windows past the start
        for (const [i, t] of c.tokens.entries()) {
          const [row] = await model.forward([{ seq: 7, tokens: [t], start: i }]);
          got.set(row, i * V);
          peak = Math.max(peak, model.kv.usedPages);
        }
        // then 60 more (greedy, no reference): a cache that kept every page would hold 7
        let next = argmax(got.subarray((c.tokens.length - 1) * V));
        for (let i = c.tokens.length; i < 100; i++) {
          const [row] = await model.forward([{ seq: 7, tokens: [next], start: i }]);
          next = argmax(row);
          peak = Math.max(peak, model.kv.usedPages);
        }
        model.kv.release(7);
        const e = relMaxError(got, c.logits);
        ok(e.rel <= 1e-3, `error ${e.rel.toExponential(2)} × max|logit|`);
        // a window of 16 spans at most 2 pages of 16, plus the one being filled
        ok(peak <= 3, `${peak} pages held at once for a 16-token window`);
      } finally {
        model.destroy();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
