/**
 * MLC's group quantization (GroupQuantize, NK layout: q3f16_1, q4f16_1, q4f32_1), bit for bit.
 *
 * For a weight W [N, K] (rows are output channels; K is the reduced axis), each row is split into
 * groups of G consecutive elements along K (the last group is padded). With maxInt = 2^(bits-1)-1
 * and every step computed in the model dtype `md` (the scale dtype: f16 or f32), rounding after
 * each operation as MLC's compiled TIR does:
 *
 *   w'     = md(w)                                  (the loader casts the weight to md first)
 *   scale  = md(max_{k in group} |w'| / maxInt)      (padding is left out of the max)
 *   q      = min(max(round(md(md(w' / scale) + maxInt)), 0), 2 * maxInt)
 *            round() is half away from zero (llvm.round / CUDA roundf); a NaN (0 / 0 in an
 *            all-zero group) becomes 0, as max(NaN, 0) selects 0 in MLC's lowering
 *   word j of a row holds elements j*E .. j*E+E-1, element i at bits [i*bits, (i+1)*bits),
 *   E = floor(32 / bits) (8 for int4, 10 for int3 whose top two bits stay 0); elements past K
 *   are stored as 0 bits, so they decode to -maxInt * scale, not 0: a kernel must leave k >= K
 *   out (or multiply them by a zero-padded x).
 *   dequantized value = md((q - maxInt) * scale)
 *
 * The all-zero group (scale 0) stores q = 0 as MLC does on CPU (LLVM) and CUDA; its values
 * dequantize to -0.
 *
 * Stored: `q_weight` uint32 [N, ceil(K/G) * G / E] and `q_scale` md [N, ceil(K/G)].
 * @module
 */
import { type DenseDtype, groupLayout } from "../codegen/contract.ts";
import { WeightError } from "../errors.ts";
import { f16ToF32, f32ToF16 } from "../weights/dtype.ts";
import type { StoredShape, StoredTensor } from "./types.ts";

/** A group-quantised weight format (the "group" member of `WeightFormat`). */
export interface GroupFormat {
  kind: "group";
  bits: 3 | 4;
  groupSize: number;
  scaleDtype: DenseDtype;
}

const scaleStored = (d: DenseDtype) => (d === "f16" ? "float16" : "float32");

/** Rounds to the model dtype (the per-operation rounding of MLC's f16 / f32 arithmetic). */
function rounder(d: DenseDtype): (x: number) => number {
  return d === "f16" ? Math.f16round : Math.fround;
}

/** Round half away from zero (TVM's tir.round on CPU and CUDA); NaN and ±Inf pass through. */
function roundHalfAway(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/** The tensors `quantizeGroup` produces for an [N, K] weight, without data. */
export function groupShapes(f: GroupFormat, N: number, K: number): StoredShape[] {
  const { groups, wordsPerRow } = groupLayout(f, K);
  return [
    { suffix: "q_weight", dtype: "uint32", shape: [N, wordsPerRow] },
    { suffix: "q_scale", dtype: scaleStored(f.scaleDtype), shape: [N, groups] },
  ];
}

/** Quantises w [N, K] (row-major) as MLC does; returns [q_weight, q_scale]. */
export function quantizeGroup(
  f: GroupFormat,
  w: Float32Array, // [N, K]
  N: number,
  K: number,
): StoredTensor[] {
  const { elemsPerWord: E, groups, wordsPerRow, maxInt } = groupLayout(f, K);
  const G = f.groupSize;
  const md = rounder(f.scaleDtype);
  const qMax = 2 * maxInt;
  // Fast path: x = w/scale + maxInt in float64 rounds to the same integer as MLC's model-dtype
  // arithmetic unless x is within the roundings' reach (< 2^-9 + 2^-8 in f16) of a half-integer;
  // only those elements take the exact path. Values past the clamp range clamp either way.
  const margin = f.scaleDtype === "f16" ? 2 ** -6 : 2 ** -18;
  const words = new Uint32Array(N * wordsPerRow); // [N, wordsPerRow]
  const scales = new Float32Array(N * groups); // [N, groups], values exact in md
  const cast = f.scaleDtype === "f16" ? new Float16Array(K) : null; // [K] one row in f16
  for (let n = 0; n < N; n++) {
    const src = w.subarray(n * K, n * K + K); // [K]
    let row: Float16Array | Float32Array = src;
    if (cast) {
      cast.set(src);
      row = cast;
    }
    for (let g = 0; g < groups; g++) {
      const k0 = g * G, k1 = Math.min(k0 + G, K);
      let maxAbs = 0;
      for (let k = k0; k < k1; k++) {
        const v = Math.abs(row[k]);
        if (!(v < Infinity)) {
          throw new WeightError(
            `weight element [${n}, ${k}] = ${src[k]} is not finite in ${f.scaleDtype}; group ` +
              `quantization needs finite values (check the checkpoint, or use a f32 scheme if ` +
              `the value overflows f16)`,
          );
        }
        if (v > maxAbs) maxAbs = v;
      }
      const scale = md(maxAbs / maxInt);
      scales[n * groups + g] = scale;
      // Word j of the row holds elements j*E .. j*E+E-1 (G is a multiple of E).
      for (let j = k0 / E; j * E < k1; j++) {
        let word = 0;
        for (let i = 0, k = j * E; i < E && k < k1; i++, k++) {
          const x = row[k] / scale + maxInt;
          const r = Math.abs(x - Math.floor(x) - 0.5) < margin
            ? roundHalfAway(md(md(row[k] / scale) + maxInt))
            : Math.floor(x + 0.5);
          const lo = r > 0 ? r : 0; // NaN (0 / 0) → 0
          word |= (lo < qMax ? lo : qMax) << (i * f.bits);
        }
        words[n * wordsPerRow + j] = word >>> 0;
      }
    }
  }
  const [qwShape, qsShape] = groupShapes(f, N, K);
  const scaleBytes = f.scaleDtype === "f16" ? f32ToF16(scales) : scales;
  return [
    { ...qwShape, data: new Uint8Array(words.buffer) },
    {
      ...qsShape,
      data: new Uint8Array(scaleBytes.buffer, scaleBytes.byteOffset, scaleBytes.byteLength),
    },
  ];
}

function findPart(parts: StoredTensor[], want: StoredShape): StoredTensor {
  const p = parts.find((t) => t.suffix === want.suffix);
  const bytesPer = want.dtype === "float16" ? 2 : 4;
  const count = want.shape.reduce((a, b) => a * b, 1);
  if (!p) {
    throw new WeightError(
      `group-quantised weight has no "${want.suffix}" tensor (got ${
        parts.map((t) => t.suffix).join(", ") || "none"
      }); it needs q_weight and q_scale`,
    );
  }
  if (
    p.dtype !== want.dtype || p.shape.join(",") !== want.shape.join(",") ||
    p.data.byteLength !== count * bytesPer
  ) {
    throw new WeightError(
      `"${want.suffix}" is ${p.dtype} [${p.shape}] with ${p.data.byteLength} bytes, expected ` +
        `${want.dtype} [${want.shape}] with ${count * bytesPer} bytes; the weights were ` +
        `quantised with another scheme or for another model shape`,
    );
  }
  return p;
}

/** Dequantises [q_weight, q_scale] back to [N, K] (values exact in the model dtype). */
export function dequantizeGroup(
  f: GroupFormat,
  parts: StoredTensor[],
  N: number,
  K: number,
): Float32Array { // [N, K]
  const { elemsPerWord: E, groups, wordsPerRow, maxInt } = groupLayout(f, K);
  const [qwShape, qsShape] = groupShapes(f, N, K);
  const qw = findPart(parts, qwShape), qs = findPart(parts, qsShape);
  const words = new Uint32Array(qw.data.slice().buffer); // [N, wordsPerRow] (copy: alignment)
  const sBytes = qs.data.slice().buffer;
  const scales = f.scaleDtype === "f16" // [N, groups]
    ? f16ToF32(new Uint16Array(sBytes))
    : new Float32Array(sBytes);
  const md = rounder(f.scaleDtype);
  const mask = (1 << f.bits) - 1;
  const out = new Float32Array(N * K); // [N, K]
  const table = new Float32Array(1 << f.bits); // value of each q in the current group
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      const scale = scales[n * groups + g];
      for (let q = 0; q < table.length; q++) table[q] = md((q - maxInt) * scale);
      for (let k = g * f.groupSize; k < Math.min((g + 1) * f.groupSize, K); k++) {
        const q = (words[n * wordsPerRow + Math.floor(k / E)] >>> ((k % E) * f.bits)) & mask;
        out[n * K + k] = table[q];
      }
    }
  }
  return out;
}
