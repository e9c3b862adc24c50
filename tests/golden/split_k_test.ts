/**
 * The `split_k` pass and the few-rows kernel end to end: a model whose batched matmuls take
 * the few-rows kernel, as is (gate_up) or with K split across workgroups (the "wide" variant:
 * K of 1,024 and 8,192), compiled for the WebGPU adapter with and without the
 * pass (f32 activations), run over a 12-token prompt (the `_small` forward, 32-row matmuls),
 * against the float64 reference on the de-quantised weights (2e-2 × max|logit|, the golden q4
 * tolerance) and against each other (the same products added in another order: 1e-4); and the
 * O2 library, whose few-rows matmuls take q8 activations where the adapter has the packed dot
 * product (4e-2, the golden q8 tolerance).
 */
import { ok } from "node:assert/strict";
import { compile } from "../../compiler/compile.ts";
import { resolveTarget } from "../../compiler/target.ts";
import { Model } from "../../engine/model.ts";
import { makeModel } from "../../examples/make_model.ts";
import { referenceLogits } from "../reference/llama_f64.ts";
import { relMaxError } from "../assert.ts";
import { dequantizedWeights } from "./dequantized.ts";
import { adapter, packedDot, Q8_TOL } from "./q8.ts";

Deno.test({
  name:
    "split_k: batched matmuls with K split across workgroups match the float64 reference and the unsplit library",
  ignore: !adapter,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "kiln-split-k-" });
    try {
      await makeModel({ out: `${dir}/model`, variant: "wide", seed: 21, dtype: "f32" });
      const target = await resolveTarget("auto");
      const logits = async (opt: string) => {
        await compile({
          config: `${dir}/model`,
          quantization: "q4f16_1",
          target,
          opt,
          output: `${dir}/lib-${opt}`,
          warn: () => {},
        });
        const model = await Model.load({
          lib: `${dir}/lib-${opt}`,
          weights: `${dir}/model`,
          numPages: 8,
        });
        const split = model.lib.plan.kernels.filter((k) =>
          k.spec.op === "sum_splits" || (k.spec.op === "matmul" && k.spec.kSplit)
        ).length;
        // q8 activations in the few-rows kernel: xq8 matmuls of more than one row
        const q8Rows = model.lib.plan.kernels.filter((k) =>
          k.spec.op === "matmul" && k.spec.xq8 && k.spec.maxRows > 1
        ).length;
        const rows = await model.forward([{ seq: 1, tokens: TOKENS, start: 0 }], { all: true });
        const V = model.metadata.vocab_size;
        const out = new Float32Array(TOKENS.length * V);
        rows.forEach((r, j) =>
          out.set(r, j * V)
        );
        return { out, split, q8Rows };
      };
      // f32 activations, split and not; then O2 (q8 activations where the adapter has the
      // packed dot product: in the decode step)
      const on = await logits("q8_activations=0");
      const off = await logits("split_k=0;q8_activations=0");
      const o2 = await logits("O2");
      ok(on.split >= 6, `expected kSplit matmuls and sum_splits with split_k on, got ${on.split}`);
      ok(off.split === 0, `expected none with split_k off, got ${off.split}`);
      const weights = await dequantizedWeights(`${dir}/model`, "q4f16_1");
      const ref = await referenceLogits(`${dir}/model`, TOKENS, { weights });
      const e = relMaxError(on.out, ref);
      ok(e.rel <= 2e-2, `split_k on vs float64: ${e.rel.toExponential(2)} × max|logit|`);
      const d = relMaxError(on.out, off.out);
      ok(d.rel <= 1e-4, `split_k on vs off: ${d.rel.toExponential(2)} × max|logit|`);
      ok(
        (o2.q8Rows > 0) === packedDot && on.q8Rows === 0,
        `xq8 matmuls of 8-32 rows: O2 ${o2.q8Rows}, q8_activations=0 ${on.q8Rows}`,
      );
      const q = relMaxError(o2.out, ref);
      const tol = packedDot ? Q8_TOL : 2e-2;
      ok(q.rel <= tol, `O2 vs float64: ${q.rel.toExponential(2)} × max|logit|`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const TOKENS = [5, 17, 300, 42, 7, 99, 256, 3, 411, 18, 64, 2];
