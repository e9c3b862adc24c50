/**
 * IEEE half decoding for the CPU kernels: a lazily built 65536-entry table (256 KiB), so that a
 * half is one indexed load. No runtime Float16Array is needed, so the bundle runs anywhere.
 * @module
 */

let table: Float32Array | null = null;

/** The f32 value of every half bit pattern, indexed by the pattern. */
export function halfTable(): Float32Array {
  if (table) return table;
  const t = new Float32Array(65536); // [65536]
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const man = h & 0x3ff;
    if (exp === 0) t[h] = sign * man * 2 ** -24;
    else if (exp === 31) t[h] = man === 0 ? sign * Infinity : NaN;
    else t[h] = sign * (1 + man / 1024) * 2 ** (exp - 15);
  }
  table = t;
  return t;
}

/** A reader of element i of a dense f32 or f16 (two halves per u32, low half first) buffer. */
export function denseReader(buf: ArrayBuffer, dtype: "f32" | "f16"): (i: number) => number {
  if (dtype === "f32") {
    const f = new Float32Array(buf);
    return (i) => f[i];
  }
  const h = new Uint16Array(buf);
  const t = halfTable();
  return (i) => t[h[i]];
}

/** Decodes a whole dense f32/f16 vector of `n` elements into a new Float32Array. */
export function denseVector(buf: ArrayBuffer, dtype: "f32" | "f16", n: number): Float32Array {
  if (dtype === "f32") return new Float32Array(buf, 0, n).slice();
  const h = new Uint16Array(buf, 0, n);
  const t = halfTable();
  const out = new Float32Array(n); // [n]
  for (let i = 0; i < n; i++) out[i] = t[h[i]];
  return out;
}

const f32Word = new Float32Array(1);
const u32Word = new Uint32Array(f32Word.buffer);

/** The IEEE half bit pattern nearest to x (ties to even; overflow to infinity, NaN kept). */
export function halfBits(x: number): number {
  f32Word[0] = x;
  const b = u32Word[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let man = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 112; // the half's exponent field
  if (e >= 31) return sign | 0x7c00;
  let shift = 13, bits = e << 10;
  if (e <= 0) {
    // a half subnormal: m x 2^-24 with m = the 24-bit significand >> (14 - e)
    if (e < -10) return sign;
    man |= 0x800000;
    shift = 14 - e;
    bits = 0;
  }
  const kept = man >>> shift, rem = man & ((1 << shift) - 1), mid = 1 << (shift - 1);
  // a carry out of the significand moves into the exponent, as it should
  return sign | ((bits | kept) + (rem > mid || (rem === mid && (kept & 1)) ? 1 : 0));
}

/** A KV-cache buffer as its elements: f32, or f16 (two halves a u32, low first) where the
 * kernel's `kvDtype` says so. `data` is the typed array itself (the attention loops read it
 * directly, through `table` for halves); `set` writes one element (halves round to nearest
 * even). */
export function kvAccess(
  buf: ArrayBuffer,
  dtype: "f32" | "f16" | undefined,
): KvElements {
  if (dtype !== "f16") {
    const f = new Float32Array(buf);
    return { data: f, table: null, set: (i, v) => void (f[i] = v) };
  }
  const h = new Uint16Array(buf);
  return { data: h, table: halfTable(), set: (i, v) => void (h[i] = halfBits(v)) };
}

/** A KV cache's elements (`kvAccess`): element i is `data[i]` (f32) or `table[data[i]]` (f16). */
export type KvElements =
  | { data: Float32Array; table: null; set: (i: number, v: number) => void }
  | { data: Uint16Array; table: Float32Array; set: (i: number, v: number) => void };
