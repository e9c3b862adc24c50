/**
 * MLC's NoQuantize (q0f32, q0f16): a weight is stored as it is, cast to the model dtype
 * (round to nearest even), under its own name (`<param>.weight`).
 * @module
 */
import type { DenseDtype } from "../codegen/contract.ts";
import { WeightError } from "../errors.ts";
import { f16ToF32, f32ToF16 } from "../weights/dtype.ts";
import type { StoredShape, StoredTensor } from "./types.ts";

/** A dense weight format (the "dense" member of `WeightFormat`). */
export interface DenseFormat {
  kind: "dense";
  dtype: DenseDtype;
}

const stored = (d: DenseDtype) => (d === "f16" ? "float16" : "float32");

/** The tensor `quantizeDense` produces for an [N, K] weight, without data. */
export function denseShapes(f: DenseFormat, N: number, K: number): StoredShape[] {
  return [{ suffix: "weight", dtype: stored(f.dtype), shape: [N, K] }];
}

/** Casts w [N, K] to the format's dtype; returns [weight]. */
export function quantizeDense(
  f: DenseFormat,
  w: Float32Array, // [N, K]
  N: number,
  K: number,
): StoredTensor[] {
  const cast = f.dtype === "f16" ? f32ToF16(w) : w.slice();
  const data = new Uint8Array(cast.buffer, cast.byteOffset, cast.byteLength);
  return [{ ...denseShapes(f, N, K)[0], data }];
}

/** Reads a stored dense weight back as f32 [N, K]. */
export function dequantizeDense(
  f: DenseFormat,
  parts: StoredTensor[],
  N: number,
  K: number,
): Float32Array { // [N, K]
  const want = denseShapes(f, N, K)[0];
  const p = parts.find((t) => t.suffix === "weight");
  const bytes = N * K * (f.dtype === "f16" ? 2 : 4);
  if (!p || p.dtype !== want.dtype || p.shape.join(",") !== want.shape.join(",")) {
    throw new WeightError(
      `dense weight needs a "weight" tensor of ${want.dtype} [${want.shape}], got ${
        p ? `${p.dtype} [${p.shape}]` : "none"
      }; the weights were stored with another scheme or for another model shape`,
    );
  }
  if (p.data.byteLength !== bytes) {
    throw new WeightError(
      `dense weight [${want.shape}] ${want.dtype} has ${p.data.byteLength} bytes, expected ${bytes}`,
    );
  }
  const buf = p.data.slice().buffer; // copy: the source view may be unaligned
  return f.dtype === "f16" ? f16ToF32(new Uint16Array(buf)) : new Float32Array(buf);
}
