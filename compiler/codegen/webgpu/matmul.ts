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
import type { TargetInfo, WgslKernel } from "../contract.ts";
import type { MatmulSpec } from "./matmul_epilogue.ts";
import { matmulGemv } from "./matmul_gemv.ts";
import { matmulGemvQ8 } from "./matmul_gemv_q8.ts";
import { matmulTiled } from "./matmul_tiled.ts";
import { matmulTiledQ8 } from "./matmul_tiled_q8.ts";
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
