/**
 * Quantize / dequantize one weight matrix in a `WeightFormat`, and the stored tensors it becomes
 * (which the compiler needs before any weight exists).
 * @module
 */
import type { WeightFormat } from "../codegen/contract.ts";
import { denseShapes, dequantizeDense, quantizeDense } from "./no_quant.ts";
import { dequantizeGroup, groupShapes, quantizeGroup } from "./group_quant.ts";
import type { StoredShape, StoredTensor } from "./types.ts";

function checkArgs(format: WeightFormat, N: number, K: number): void {
  if (!Number.isInteger(N) || N < 1 || !Number.isInteger(K) || K < 1) {
    throw new RangeError(`weight shape [${N}, ${K}] must be two positive integers`);
  }
  if (format?.kind === "dense") {
    if (format.dtype !== "f32" && format.dtype !== "f16") {
      throw new TypeError(`dense dtype "${format.dtype}" is not "f32" or "f16"`);
    }
    return;
  }
  if (format?.kind === "group") {
    if (format.bits !== 3 && format.bits !== 4) {
      throw new TypeError(`group format bits ${format.bits} is not 3 or 4`);
    }
    if (!Number.isInteger(format.groupSize) || format.groupSize < 1) {
      throw new RangeError(`group size ${format.groupSize} must be a positive integer`);
    }
    if (format.scaleDtype !== "f32" && format.scaleDtype !== "f16") {
      throw new TypeError(`scale dtype "${format.scaleDtype}" is not "f32" or "f16"`);
    }
    return;
  }
  throw new TypeError(`unknown weight format ${JSON.stringify(format)}`);
}

/** The tensors `quantizeWeight(format, w, N, K)` would produce, without data. */
export function storedShapes(format: WeightFormat, N: number, K: number): StoredShape[] {
  checkArgs(format, N, K);
  return format.kind === "dense" ? denseShapes(format, N, K) : groupShapes(format, N, K);
}

/**
 * Stores w [N, K] (row-major f32) in `format`: dense → [weight]; group → [q_weight, q_scale],
 * bit-identical to MLC's convert_weight for the same input in the model dtype.
 *
 * @example
 * ```ts
 * import { quantizeWeight } from "./weight.ts";
 * const w = new Float32Array(64).fill(0.5); // [2, 32]
 * const [qw, qs] = quantizeWeight({ kind: "group", bits: 4, groupSize: 32, scaleDtype: "f16" }, w, 2, 32);
 * if (qw.shape.join() !== "2,4" || qs.shape.join() !== "2,1") throw new Error("shape");
 * ```
 */
export function quantizeWeight(
  format: WeightFormat,
  w: Float32Array, // [N, K]
  N: number,
  K: number,
): StoredTensor[] {
  checkArgs(format, N, K);
  if (!(w instanceof Float32Array) || w.length !== N * K) {
    throw new RangeError(
      `weight has ${w?.length} elements, expected a Float32Array of N*K = ${N}*${K} = ${N * K}`,
    );
  }
  return format.kind === "dense" ? quantizeDense(format, w, N, K) : quantizeGroup(format, w, N, K);
}

/** Reads stored tensors back to f32 [N, K]: the values MLC's dequantize yields, widened. */
export function dequantizeWeight(
  format: WeightFormat,
  parts: StoredTensor[],
  N: number,
  K: number,
): Float32Array { // [N, K]
  checkArgs(format, N, K);
  return format.kind === "dense"
    ? dequantizeDense(format, parts, N, K)
    : dequantizeGroup(format, parts, N, K);
}
