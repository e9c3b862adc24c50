/**
 * Single-row (decode) matmuls of 4-bit group weights get q8 activations (`xq8`): x is rounded
 * through int8 codes per 32 elements and the products become packed int8 dot products, a
 * quarter of the f32 decode's instructions, so the GEMV can run at the weights' read
 * bandwidth. So does the 8-32-row gate_up+silu of the few-rows kernel (batched decode, short
 * prompts; see BATCHED_Q8). Prefill-shaped matmuls keep f32 activations.
 * @module
 */
import { hasPackedDot, q8Eligible } from "../codegen/contract.ts";
import type { Node } from "../ir/graph.ts";
import { type Pass, rewrite } from "./pass.ts";
import { rowsShapeWins } from "../codegen/webgpu/matmul_rows.ts";

/** The largest `maxRows` that gets q8 activations: single-row decode. At 16 rows the q8 GEMV
 * (codes in registers) spills, and a variant with the codes in workgroup memory (tried and
 * removed) re-quantised all of x in every workgroup: both lost to the f32 GEMV on the H100
 * (BENCHMARKS.md). Prefill chunks keep f32 activations too. */
export const Q8_MAX_ROWS = 1;

/* BATCHED_Q8: measured in the 8B batch-16 step on the H100 (BENCHMARKS.md), q8 activations
 * in the few-rows kernel took gate_up+silu from 6,191 to 5,026 µs a step (16-row blocks), but
 * made down (3,281 → 3,558, K split in 4) and lm_head (808 → 865) slower and qkv and o_proj
 * barely faster (8-row blocks: the per-step quantisation and its two barriers weigh twice as
 * much): only gate_up takes them. The kernel and the contract keep xq8 with kSplit. */

/** Whether a matmul spec is a q8 GEMV (single-row decode with q8 activations): what the norm
 * fold and the unit-major rows act on (the batched functions' q8 matmuls quantise x in the
 * few-rows kernel and read plain rows). */
export function isQ8Gemv(s: Node["spec"]): boolean {
  return s.op === "matmul" && !!s.xq8 && s.maxRows <= Q8_MAX_ROWS;
}

export const q8Activations: Pass = {
  name: "q8_activations",
  flag: "q8_activations",
  run(fn, ctx) {
    if (!hasPackedDot(ctx.target)) return fn;
    const replace = new Map<number, Node>();
    fn.nodes.forEach((n, i) => {
      const s = n.spec;
      if (s.op !== "matmul" || !q8Eligible(s.weight) || s.xq8) return;
      // and the 8-32-row gate_up (silu_mul) the few-rows kernel takes, which quantises x a
      // step of units at a time in each workgroup (BATCHED_Q8)
      const batched = s.epilogue === "silu_mul" && rowsShapeWins(s);
      if (s.maxRows > Q8_MAX_ROWS && !batched) return;
      replace.set(i, { ...n, spec: { ...s, xq8: true } });
    });
    return replace.size ? rewrite(fn, replace, new Set()) : fn;
  },
};
