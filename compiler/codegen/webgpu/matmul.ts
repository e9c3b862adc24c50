/**
 * `matmul`: picks the GEMV shape when the kernel sees few rows (decode), the few-rows shape
 * for 8 to 32 rows of 4-bit weights with many rows (batched decode's gate_up and lm_head; with
 * `kSplit`, any but the q8 tiles'), and the tiled shape otherwise (prefill); q8 activations
 * (`xq8`) take the packed-int8 GEMV, the few-rows shape's packed-int8 form where it is chosen,
 * or the tiled shape's (`matmul_tiled_q8.ts`, also with `kSplit`) beyond 32 rows; x given as
 * `quantize_q8` rows (`xCodes`) goes to the few-rows or the q8 tiled shape. The GEMV and tiled
 * shapes handle dense f32/f16 and group-quantised q3/q4 weights; all handle the bias, add and
 * silu_mul epilogues, for any R.
 * @module
 */
import { pow2Floor, splitsPerRow, type TargetInfo, type WgslKernel } from "../contract.ts";
import type { MatmulSpec } from "./matmul_epilogue.ts";
import { matmulGemv } from "./matmul_gemv.ts";
import { matmulGemvQ8 } from "./matmul_gemv_q8.ts";
import { matmulTiled } from "./matmul_tiled.ts";
import { matmulTiledQ8, tiledQ8Defaults } from "./matmul_tiled_q8.ts";
import { matmulRows, rowsShapeWins } from "./matmul_rows.ts";

/** Largest `maxRows` that gets the GEMV shape. */
export const GEMV_MAX_ROWS = 32;

/** Whether an `xq8` matmul takes the tiled q8 shape (prefill-sized, plain rows, K % 4 == 0);
 * the q8 GEMV serves any other (correct at any R, slow at many). */
export function tiledQ8Takes(spec: MatmulSpec): boolean {
  return !!spec.xq8 && spec.maxRows > GEMV_MAX_ROWS && spec.K % 4 === 0 && !spec.norm &&
    !spec.normOut && !spec.xUnits && !spec.outUnits;
}

/** Whether `matmulKernel` takes the few-rows kernel (`matmul_rows.ts`) for this spec: the one
 * shape that writes `outCodes`, and the one for a K split but the q8 tiles'. */
export function rowsKernelTakes(spec: MatmulSpec): boolean {
  if (spec.kSplit) return !tiledQ8Takes(spec);
  if (spec.xCodes) return spec.maxRows <= GEMV_MAX_ROWS;
  if (spec.xq8) {
    return !tiledQ8Takes(spec) && !spec.norm && !spec.normOut && !spec.xUnits &&
      rowsShapeWins(spec);
  }
  return spec.maxRows <= GEMV_MAX_ROWS && rowsShapeWins(spec);
}

/** WGSL for `matmul`. */
export function matmulKernel(spec: MatmulSpec, target: TargetInfo): WgslKernel {
  if (spec.norm && !spec.xq8) {
    throw new RangeError("matmul: the RMSNorm prologue needs q8 activations (xq8)");
  }
  if (rowsKernelTakes(spec)) return matmulRows(spec, target);
  if (spec.outCodes) {
    throw new RangeError(
      `matmul outCodes: only the few-rows kernel (8-${GEMV_MAX_ROWS} rows, 4-bit groups) writes codes (maxRows ${spec.maxRows}, N ${spec.N}, K ${spec.K})`,
    );
  }
  // x as quantize_q8 rows beyond the few-rows kernel: the q8 tiles
  if (spec.xCodes) return matmulTiledQ8(spec, target);
  if (spec.xq8) {
    return tiledQ8Takes(spec) ? matmulTiledQ8(spec, target) : matmulGemvQ8(spec, target);
  }
  return spec.maxRows > GEMV_MAX_ROWS ? matmulTiled(spec, target) : matmulGemv(spec, target);
}

/** Blocks of K a range keeps at least under `tiledSplit`. */
const MIN_SPLIT_BLOCKS = 4;
/** The most K ranges `tiledSplit` gives a matmul. */
const MAX_SPLITS = 4;

/**
 * The K split of a tiled q8 matmul whose tile grid leaves compute units idle at a few row
 * blocks (weights of few rows for their K: qkv, o_proj and down of prefill and of the batch
 * function), or null: K ranges by the dispatch's rows (`kSplitRows`), so that its row blocks x
 * column blocks x ranges about fill the units once (kSplitRows = rows a tile x units / column
 * blocks), at most MAX_SPLITS ranges of at least MIN_SPLIT_BLOCKS blocks each. A tile's
 * workgroup runs its whole K loop; at one or two row blocks such a grid ran on a quarter to
 * half of the H100's units, about as slowly as at four.
 */
export function tiledSplit(
  spec: MatmulSpec,
  target: TargetInfo,
): { kSplit: number; kSplitRows: number } | null {
  if (!tiledQ8Takes(spec) || spec.epilogue === "silu_mul" || spec.kSplit) return null;
  if (spec.rowStart !== 0 || spec.rows !== spec.N) return null;
  const w = spec.weight;
  if (w.kind !== "group" || w.bits !== 4 || w.groupSize % 32 !== 0) return null;
  const units = target.computeUnits;
  if (!units) return null;
  const t = tiledQ8Defaults(spec, target);
  const kSplitRows = Math.floor((t.rows * units) / Math.ceil(spec.N / t.wrows));
  // at most the ranges of a dispatch of one full row block (the partials past a dispatch's
  // ranges are neither written nor read: more ranges cost only their buffer's memory)
  const at = (R: number) => splitsPerRow({ splits: MAX_SPLITS, splitRows: kSplitRows }, R);
  const kSplit = Math.min(
    MAX_SPLITS,
    pow2Floor(Math.ceil(spec.K / 32) / MIN_SPLIT_BLOCKS),
    pow2Floor(at(Math.min(t.rows, spec.maxRows))),
  );
  return kSplit >= 2 ? { kSplit, kSplitRows } : null;
}
