/**
 * `fuse_norm_matmul` at the decode step's ends, end to end: in the single-sequence `decode`
 * function with q8 activations the first layer's RMSNorm is folded into the embedding (which
 * writes the weighted row and its squares) and the first qkv, and the final one into the last
 * down and lm_head, as every other norm is. The O2 library's decode logits are checked against
 * the float64 reference on the de-quantised weights (the golden q8 tolerance) and against the
 * library without the fold (1e-2 × max|logit|, as the other folds: a q8 code may move at a
 * tie; a norm folded wrong, say a weight applied twice or a unit-major row read row-major, is
 * far off). Needs the packed int8 dot product (the folds exist with q8 activations only).
 */
import { ok } from "node:assert/strict";
import { referenceLogits } from "../reference/llama_f64.ts";
import { relMaxError } from "../assert.ts";
import { dequantizedWeights } from "./dequantized.ts";
import { packedDot, Q8_TOL } from "./q8.ts";
import { compiledModel, withRandomModel } from "./fold_models.ts";

const TOKENS = [5, 17, 300, 42, 7, 99, 256, 3, 411, 18];
/** Tokens prefilled before the decode steps (the rest are decoded one at a time). */
const PROMPT = 4;

/** The decode steps' logits (rows PROMPT - 1 .. of the sequence) of the model in `dir`
 * compiled at `opt`, and the library's kernels. */
async function decodeSteps(dir: string, opt: string) {
  const model = await compiledModel(dir, opt, 8);
  try {
    const V = model.metadata.vocab_size;
    const rows: Float32Array[] = [];
    rows.push(...await model.forward([{ seq: 1, tokens: TOKENS.slice(0, PROMPT), start: 0 }]));
    for (let p = PROMPT; p < TOKENS.length; p++) {
      rows.push(...await model.forward([{ seq: 1, tokens: [TOKENS[p]], start: p }]));
    }
    const out = new Float32Array(rows.length * V);
    rows.forEach((r, j) => out.set(r, j * V));
    return { out, V, kernels: model.lib.plan.kernels.map((k) => k.spec) };
  } finally {
    model.destroy();
  }
}

Deno.test({
  name:
    "fuse_norm_matmul: decode with the first and final norms folded (embed normOut, lm_head norm) matches the float64 reference and the library without the fold",
  ignore: !packedDot,
  fn: async () => {
    await withRandomModel("kiln-norm-fold-", "wide_llama", 29, async (dir) => {
      const folded = await decodeSteps(dir, "O2");
      const apart = await decodeSteps(dir, "fuse_norm_matmul=0");
      ok(
        folded.kernels.some((s) => s.op === "embed" && !!s.normOut),
        "no embed with normOut in the O2 library",
      );
      ok(!apart.kernels.some((s) => s.op === "embed" && !!s.normOut));
      const V = folded.V;
      const weights = await dequantizedWeights(`${dir}/model`, "q4f16_1");
      const all = await referenceLogits(`${dir}/model`, TOKENS, { weights });
      const ref = all.subarray((PROMPT - 1) * V); // the rows the decode steps give
      for (const [what, r] of [["folded", folded], ["apart", apart]] as const) {
        const e = relMaxError(r.out, ref);
        ok(e.rel <= Q8_TOL, `${what} vs float64: ${e.rel.toExponential(2)} × max|logit|`);
      }
      const d = relMaxError(folded.out, apart.out);
      ok(d.rel <= 1e-2, `folded vs apart: ${d.rel.toExponential(2)} × max|logit|`);
    });
  },
});
