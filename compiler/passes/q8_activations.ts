/**
 * Matmuls of 4-bit group weights get q8 activations (`xq8`): x is rounded through int8 codes
 * per 32 elements and the products become packed int8 dot products. Single-row decode: a
 * quarter of the f32 GEMV's instructions, so the GEMV can run at the weights' read bandwidth.
 * The 8-32-row matmuls of the few-rows kernel (batched decode, short prompts; see
 * BATCHED_Q8). Prefill (beyond 32 rows, `tiledQ8Takes`): the tiled kernel's multiply-adds
 * were at the f32 FMA ceiling's 60%; as int8 dot products the 8B's 512-token prefill went
 * 202 → 154 ms on the H100 (PREFILL_Q8; 118 with x quantised once, `q8_codes`). The 2-32-row matmuls that neither kernel takes keep
 * f32 x (the q8 GEMV spills at 16 rows).
 * @module
 */
import { hasPackedDot, q8CodesError, q8Eligible } from "../codegen/contract.ts";
import type { Node } from "../ir/graph.ts";
import { type Pass, rewrite } from "./pass.ts";
import {
  ROWS_MIN,
  rowsShapeFits,
  rowsShapeWins,
  rowsSplitK,
} from "../codegen/webgpu/matmul_rows.ts";
import { GEMV_MAX_ROWS, tiledQ8Takes } from "../codegen/webgpu/matmul.ts";

/** The largest `maxRows` of a q8 GEMV: single-row decode. At 16 rows the q8 GEMV (codes in
 * registers) spills, and a variant with the codes in workgroup memory (tried and removed)
 * re-quantised all of x in every workgroup: both lost to the f32 GEMV on the H100
 * (BENCHMARKS.md). */
export const Q8_MAX_ROWS = 1;

/* BATCHED_Q8: measured in the batch-16 steps on the H100 (BENCHMARKS.md), q8 activations in
 * every matmul of the few-rows kernel: 8B 15.74 → 13.84 ms, 1B 3.86 → 2.99, 0.5B 3.73 → 3.53;
 * in gate_up alone (the only one faster by the per-kernel "in the step" figures): 14.63,
 * 3.57, 3.66. Every few-rows matmul takes them. */

/* PREFILL_Q8: the 8B's prefill matmuls at 512 rows on the H100 (`matmul_bench.ts --prefill
 * --x8`), f32 tiles → q8 tiles: gate_up 3.32 → 2.39 ms, down 1.64 → 1.20, qkv 0.69 → 0.59,
 * o_proj 0.47 → 0.35. */

/** Whether a matmul spec is a q8 GEMV (single-row decode with q8 activations): what the norm
 * fold and the unit-major rows act on (the batched functions' q8 matmuls quantise x in the
 * few-rows kernel and read plain rows). */
export function isQ8Gemv(s: Node["spec"]): boolean {
  return s.op === "matmul" && !!s.xq8 && s.maxRows <= Q8_MAX_ROWS;
}

/** Whether a q8 matmul spec can read quantize_q8 rows: the q8 tiles beyond 32 rows, the
 * few-rows kernel (which takes every `xCodes` matmul of 8-32 rows) below. */
export function readsCodes(s: Node["spec"]): boolean {
  if (s.op !== "matmul" || !s.xq8 || s.xCodes || s.maxRows <= Q8_MAX_ROWS) return false;
  if (q8CodesError({ ...s, xCodes: true })) return false;
  return s.maxRows > GEMV_MAX_ROWS
    ? tiledQ8Takes(s)
    : s.maxRows >= ROWS_MIN && rowsShapeFits(s.weight, s.K);
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
      // and the 8-32-row matmuls the few-rows kernel takes (as is, or with K split), which
      // quantise x a step of units at a time in each workgroup (BATCHED_Q8); with split_k
      // off, those that would split stay f32 (the q8 GEMV spills at 16 rows)
      const batched = rowsShapeWins(s) || (ctx.flags.split_k && rowsSplitK(s) > 1);
      const prefill = tiledQ8Takes({ ...s, xq8: true });
      // with q8_codes, every 8-32-row matmul the few-rows kernel can read codes for (those of
      // few column blocks and a K too short to split too: Qwen2.5-0.5B's qkv, o_proj, gate_up)
      const codes = ctx.flags.q8_codes && s.maxRows <= GEMV_MAX_ROWS &&
        readsCodes({ ...s, xq8: true });
      if (s.maxRows > Q8_MAX_ROWS && !batched && !prefill && !codes) return;
      replace.set(i, { ...n, spec: { ...s, xq8: true } });
    });
    return replace.size ? rewrite(fn, replace, new Set()) : fn;
  },
};
