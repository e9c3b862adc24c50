/**
 * CPU rotary embedding and paged KV-cache append: `rope`, `kv_append`, `rope_kv_append`.
 * Rotation follows HF's rotate_half: pairs (i, i + D/2) turn by positions[r] * invFreq[i].
 * Cache layout: [numPages, 2, kvHeads, PAGE_SIZE, headDim] (K at index 0, V at 1), f32 or f16
 * (`kvDtype`).
 * @module
 */
import { type CpuKernel, type KernelSpec, PAGE_SIZE } from "../contract.ts";
import { kvAccess } from "./half.ts";

type RopeSpec = Extract<KernelSpec, { op: "rope" }>;
type KvAppendSpec = Extract<KernelSpec, { op: "kv_append" }>;
type RopeKvAppendSpec = Extract<KernelSpec, { op: "rope_kv_append" }>;

/** Rotates one head of D values from src[so..] into dst[dOff..] (in-place safe). */
export function rotator(headDim: number, invFreq: number[]) {
  const half = headDim / 2;
  if (!Number.isInteger(half) || invFreq.length !== half) {
    throw new RangeError(
      `rope needs an even headDim and headDim/2 inverse frequencies (got headDim ${headDim}, ${invFreq.length} frequencies)`,
    );
  }
  const cos = new Float64Array(half); // [D/2]
  const sin = new Float64Array(half); // [D/2]
  let cached = -1;
  return (src: Float32Array, so: number, dst: Float32Array, dOff: number, pos: number) => {
    if (pos !== cached) {
      for (let i = 0; i < half; i++) {
        const a = pos * invFreq[i];
        cos[i] = Math.cos(a);
        sin[i] = Math.sin(a);
      }
      cached = pos;
    }
    for (let i = 0; i < half; i++) {
      const x0 = src[so + i], x1 = src[so + half + i];
      dst[dOff + i] = x0 * cos[i] - x1 * sin[i];
      dst[dOff + half + i] = x1 * cos[i] + x0 * sin[i];
    }
  };
}

/** Offset of (token position, kv index, head) in the paged cache. */
function cacheSlot(
  kvHeads: number,
  headDim: number,
  bufs: ArrayBuffer[],
) {
  const positions = new Uint32Array(bufs[1]); // [R]
  const tokSeq = new Uint32Array(bufs[2]); // [R]
  const indptr = new Uint32Array(bufs[3]); // [b + 1]
  const indices = new Uint32Array(bufs[4]); // [total pages]
  return (r: number, kv: number, h: number): number => {
    const p = positions[r];
    const page = indices[indptr[tokSeq[r]] + Math.floor(p / PAGE_SIZE)];
    return (((page * 2 + kv) * kvHeads + h) * PAGE_SIZE + (p % PAGE_SIZE)) * headDim;
  };
}

/** The CPU kernel of a `rope` spec. Bindings: x [R, (H + 2KV) * D], positions [R], out. */
export function ropeKernel(spec: RopeSpec): CpuKernel {
  const { heads: H, kvHeads: KV, headDim: D } = spec;
  const rotate = rotator(D, spec.invFreq);
  const width = (H + 2 * KV) * D;
  return (bufs, R) => {
    const x = new Float32Array(bufs[0]); // [R, width]
    const positions = new Uint32Array(bufs[1]); // [R]
    const out = new Float32Array(bufs[2]); // [R, width]
    for (let r = 0; r < R; r++) {
      const o = r * width;
      for (let h = 0; h < H + KV; h++) rotate(x, o + h * D, out, o + h * D, positions[r]);
      for (let i = (H + KV) * D; i < width; i++) out[o + i] = x[o + i];
    }
  };
}

/** The CPU kernel of a `kv_append` spec. Bindings: qkv, positions, tok_seq, page_indptr,
 * page_indices, cache. */
export function kvAppendKernel(spec: KvAppendSpec): CpuKernel {
  const { heads: H, kvHeads: KV, headDim: D } = spec;
  const width = (H + 2 * KV) * D;
  return (bufs, R) => {
    const qkv = new Float32Array(bufs[0]); // [R, width]
    const slot = cacheSlot(KV, D, bufs);
    const cache = kvAccess(bufs[5], spec.kvDtype); // [pages, 2, KV, PAGE_SIZE, D]
    for (let r = 0; r < R; r++) {
      for (let kv = 0; kv < 2; kv++) {
        for (let h = 0; h < KV; h++) {
          const src = r * width + (H + kv * KV + h) * D, dst = slot(r, kv, h);
          for (let d = 0; d < D; d++) cache.set(dst + d, qkv[src + d]);
        }
      }
    }
  };
}

/** The CPU kernel of a `rope_kv_append` spec. Bindings: qkv, positions, tok_seq, page_indptr,
 * page_indices, cache, q_out [R, H * D]. */
export function ropeKvAppendKernel(spec: RopeKvAppendSpec): CpuKernel {
  const { heads: H, kvHeads: KV, headDim: D } = spec;
  const rotate = rotator(D, spec.invFreq);
  const width = (H + 2 * KV) * D;
  return (bufs, R) => {
    const qkv = new Float32Array(bufs[0]); // [R, width]
    const positions = new Uint32Array(bufs[1]); // [R]
    const slot = cacheSlot(KV, D, bufs);
    const cache = kvAccess(bufs[5], spec.kvDtype); // [pages, 2, KV, PAGE_SIZE, D]
    const qOut = new Float32Array(bufs[6]); // [R, H * D]
    const k = new Float32Array(D); // [D] a rotated key
    for (let r = 0; r < R; r++) {
      const o = r * width;
      const p = positions[r];
      for (let h = 0; h < H; h++) rotate(qkv, o + h * D, qOut, r * H * D + h * D, p);
      for (let h = 0; h < KV; h++) {
        rotate(qkv, o + (H + h) * D, k, 0, p);
        const ko = slot(r, 0, h), vo = slot(r, 1, h), v = o + (H + KV + h) * D;
        for (let d = 0; d < D; d++) cache.set(ko + d, k[d]), cache.set(vo + d, qkv[v + d]);
      }
    }
  };
}
