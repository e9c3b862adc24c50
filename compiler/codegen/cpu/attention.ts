/**
 * CPU causal paged attention with grouped-query heads and an optional sliding window.
 * Query row r, head h attends to positions lo..positions[r] of its sequence (tok_seq[r]), with
 * lo = window > 0 ? max(0, p - window + 1) : 0, reading K/V of kv head h / (H / KV) from the
 * paged cache f32 [numPages, 2, kvHeads, PAGE_SIZE, headDim]. Softmax in f64.
 * @module
 */
import { type CpuKernel, type KernelSpec, PAGE_SIZE } from "../contract.ts";

type AttentionSpec = Extract<KernelSpec, { op: "attention" }>;

/** The CPU kernel of an `attention` spec. Bindings: q, positions, tok_seq, page_indptr,
 * page_indices, cache, out [R, H * D]. */
export function attentionKernel(spec: AttentionSpec): CpuKernel {
  const { heads: H, kvHeads: KV, headDim: D, qStride, window, scale } = spec;
  if (H % KV !== 0) throw new RangeError(`attention heads ${H} is not a multiple of kvHeads ${KV}`);
  const group = H / KV;
  let scores = new Float64Array(256); // [context] grows on demand
  const acc = new Float64Array(D); // [D]
  const pageStride = 2 * KV * PAGE_SIZE * D;
  return (bufs, R) => {
    const q = new Float32Array(bufs[0]); // [R, qStride]
    const positions = new Uint32Array(bufs[1]); // [R]
    const tokSeq = new Uint32Array(bufs[2]); // [R]
    const indptr = new Uint32Array(bufs[3]); // [b + 1]
    const indices = new Uint32Array(bufs[4]); // [total pages]
    const cache = new Float32Array(bufs[5]); // [pages, 2, KV, PAGE_SIZE, D]
    const out = new Float32Array(bufs[6]); // [R, H * D]
    for (let r = 0; r < R; r++) {
      const p = positions[r];
      const lo = window > 0 ? Math.max(0, p - window + 1) : 0;
      const pages = indptr[tokSeq[r]];
      if (scores.length < p + 1) scores = new Float64Array(2 * (p + 1));
      for (let h = 0; h < H; h++) {
        const qo = r * qStride + h * D;
        const kvh = Math.floor(h / group);
        // Offset of K (kv = 0) or V (kv = 1) of position j.
        const at = (j: number, kv: number) =>
          indices[pages + Math.floor(j / PAGE_SIZE)] * pageStride +
          ((kv * KV + kvh) * PAGE_SIZE + (j % PAGE_SIZE)) * D;
        let max = -Infinity;
        for (let j = lo; j <= p; j++) {
          const ko = at(j, 0);
          let s = 0;
          for (let d = 0; d < D; d++) s += q[qo + d] * cache[ko + d];
          s *= scale;
          scores[j] = s;
          if (s > max) max = s;
        }
        let denom = 0;
        acc.fill(0);
        for (let j = lo; j <= p; j++) {
          const e = Math.exp(scores[j] - max);
          denom += e;
          const vo = at(j, 1);
          for (let d = 0; d < D; d++) acc[d] += e * cache[vo + d];
        }
        const oo = r * H * D + h * D;
        for (let d = 0; d < D; d++) out[oo + d] = acc[d] / denom;
      }
    }
  };
}
