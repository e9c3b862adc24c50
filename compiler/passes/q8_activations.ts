/**
 * Single-row (decode) matmuls of 4-bit group weights get q8 activations (`xq8`): x is rounded through int8 codes per 32 elements and the products become packed
 * int8 dot products, a quarter of the f32 decode's instructions, so the GEMV can run at the
 * weights' read bandwidth. Prefill-shaped matmuls keep f32 activations.
 * @module
 */
import { hasPackedDot, q8Eligible } from "../codegen/contract.ts";
import type { Node } from "../ir/graph.ts";
import { type Pass, rewrite } from "./pass.ts";

/** The largest `maxRows` that gets q8 activations: single-row decode. At 16 rows the q8 GEMV
 * (codes in registers) spills, and a variant with the codes in workgroup memory (tried and
 * removed) re-quantised all of x in every workgroup: both lost to the f32 GEMV on the H100
 * (BENCHMARKS.md). Prefill chunks keep f32 activations too. */
export const Q8_MAX_ROWS = 1;

export const q8Activations: Pass = {
  name: "q8_activations",
  flag: "q8_activations",
  run(fn, ctx) {
    if (!hasPackedDot(ctx.target)) return fn;
    const replace = new Map<number, Node>();
    fn.nodes.forEach((n, i) => {
      const s = n.spec;
      if (s.op !== "matmul" || !q8Eligible(s.weight) || s.xq8) return;
      if (s.maxRows > Q8_MAX_ROWS) return;
      replace.set(i, { ...n, spec: { ...s, xq8: true } });
    });
    return replace.size ? rewrite(fn, replace, new Set()) : fn;
  },
};
