/**
 * Decode matmuls of 4-bit group weights (single-row ones anywhere, and those of the
 * one-row-per-sequence functions) get q8 activations (`xq8`): x is rounded through int8 codes per 32 elements and the products become packed
 * int8 dot products, a quarter of the f32 decode's instructions, so the GEMV can run at the
 * weights' read bandwidth. Prefill-shaped matmuls keep f32 activations.
 * @module
 */
import { PACKED_DOT, q8Eligible } from "../codegen/contract.ts";
import type { Node } from "../ir/graph.ts";
import { type Pass, rewrite } from "./pass.ts";

/** The largest `maxRows` that gets q8 activations: single-row matmuls anywhere, and in the
 * decode functions (one row per sequence) up to 32 rows (the GEMV shape's limit). Prefill
 * chunks of up to 32 tokens keep f32 activations: they are checked against the prefill
 * tolerance, which the q8 rounding uses up on small models. */
export const Q8_MAX_ROWS = 32;

export const q8Activations: Pass = {
  name: "q8_activations",
  flag: "q8_activations",
  run(fn, ctx) {
    if (!(ctx.target.backend === "webgpu" && ctx.target.features.includes(PACKED_DOT))) return fn;
    const replace = new Map<number, Node>();
    fn.nodes.forEach((n, i) => {
      const s = n.spec;
      if (s.op !== "matmul" || !q8Eligible(s.weight) || s.xq8) return;
      if (s.maxRows > (fn.rowPerSequence ? Q8_MAX_ROWS : 1)) return;
      replace.set(i, { ...n, spec: { ...s, xq8: true } });
    });
    return replace.size ? rewrite(fn, replace, new Set()) : fn;
  },
};
