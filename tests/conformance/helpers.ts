/**
 * Test helpers for the kernel conformance suite: a seeded RNG and packing of test data into the
 * contract's storage formats (f16 two per u32 word; MLC group quantisation packed low bits
 * first). Written from the contract's text, independent of `compiler/quant`.
 * @module
 */
import { groupLayout, splitsRead, type WeightFormat } from "../../compiler/codegen/contract.ts";
import { f32ToF16 } from "../../compiler/weights/dtype.ts";

/** A seeded pseudo-random generator (mulberry32) with uniform, normal and integer draws. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    return Math.sqrt(-2 * Math.log(1 - this.next())) * Math.cos(2 * Math.PI * this.next());
  }
  /** n normal values times `scale`, rounded to f32. */
  normals(n: number, scale = 1): Float32Array {
    const out = new Float32Array(n); // [n]
    for (let i = 0; i < n; i++) out[i] = this.normal() * scale;
    return out;
  }
  /** A random permutation of 0..n-1. */
  permutation(n: number): number[] {
    const p = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [p[i], p[j]] = [p[j], p[i]];
    }
    return p;
  }
}

/** An ArrayBuffer of `bytes` rounded up to a multiple of 4 holding `view`'s bytes. */
export function padded(view: ArrayBufferView, bytes = view.byteLength): ArrayBuffer {
  const out = new ArrayBuffer(Math.ceil(Math.max(bytes, view.byteLength) / 4) * 4);
  new Uint8Array(out).set(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
  return out;
}

/** f32 values as an f16 buffer (two halves per u32, element i the low half when i is even). */
export function f16Buffer(values: Float32Array): ArrayBuffer {
  return padded(f32ToF16(values));
}

/** A dense f32 or f16 buffer of `values`. */
export function denseBuffer(values: Float32Array, dtype: "f32" | "f16"): ArrayBuffer {
  return dtype === "f32" ? padded(values) : f16Buffer(values);
}

/** Random weight buffers of an [N, K] matrix in `format` (1 buffer dense, 2 group); group
 * scales are drawn with magnitudes in [0.2, 1.2) x `scaleMagnitude`.
 * Group codes are drawn uniformly over [0, 2^bits); padding past K holds zero bits, as
 * `compiler/quant` and MLC write it (it decodes to -maxInt * scale, so kernels must stop at K). */
export function randomWeight(
  rng: Rng,
  format: WeightFormat,
  N: number,
  K: number,
  scaleMagnitude = 0.1,
): ArrayBuffer[] {
  if (format.kind === "dense") return [denseBuffer(rng.normals(N * K, 0.5), format.dtype)];
  const { elemsPerWord, groups, wordsPerRow } = groupLayout(format, K);
  const levels = 2 ** format.bits;
  const words = new Uint32Array(N * wordsPerRow); // [N, wordsPerRow]
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < wordsPerRow * elemsPerWord; k++) {
      const code = k < K ? rng.int(levels) : 0;
      const wi = n * wordsPerRow + Math.floor(k / elemsPerWord);
      // code * 2^(bits * slot): plain arithmetic, no shifts, so sign bits cannot leak in.
      words[wi] = words[wi] + code * 2 ** (format.bits * (k % elemsPerWord));
    }
  }
  const scales = new Float32Array(N * groups); // [N, groups]
  for (let i = 0; i < scales.length; i++) {
    scales[i] = scaleMagnitude * (0.2 + rng.next()) * (rng.next() < 0.5 ? -1 : 1);
  }
  return [padded(words), denseBuffer(scales, format.scaleDtype)];
}

/** A short label of a weight format, e.g. "q4g32/f16" or "f16". */
export function formatLabel(f: WeightFormat): string {
  return f.kind === "dense" ? f.dtype : `q${f.bits}g${f.groupSize}/${f.scaleDtype}`;
}

/** Rows of `splits` partials ([R, splits * W]) with those past a dispatch's `splitsRead`
 * (given `splitRows`) set to NaN: what a reader must not add. */
export function unwritten(
  part: Float32Array,
  R: number,
  splits: number,
  W: number,
  splitRows: number | undefined,
): Float32Array {
  const used = splitsRead(splits, splitRows, R);
  for (let r = 0; r < R; r++) part.fill(NaN, (r * splits + used) * W, (r + 1) * splits * W);
  return part;
}
