/**
 * CPU causal paged attention with grouped-query heads and an optional sliding window.
 * Query row r, head h attends to positions lo..positions[r] of its sequence (tok_seq[r]), with
 * lo = window > 0 ? max(0, p - window + 1) : 0, reading K/V of kv head h / (H / KV) from the
 * paged cache [numPages, 2, kvHeads, PAGE_SIZE, headDim] (f32, or f16 with `kvDtype`). Softmax
 * in f64.
 * @module
 */
import { type CpuKernel, type KernelSpec, PAGE_SIZE } from "../contract.ts";
import { kvAccess, type KvElements } from "./half.ts";

type AttentionSpec = Extract<KernelSpec, { op: "attention" }>;

/**
 * Softmax-weighted sum (f64) of the values of keys `begin` .. `end - 1` for the query at
 * `q[qo .. qo + D)` (D = `acc.length`): `acc` gets the sum of exp(score - max) * v, `scores`
 * (at least end - begin long) the scores; returns the max score and the sum of the exps.
 * `at(j, kv)` is the cache offset of key j's K (kv 0) or V (kv 1) row in `cache`.
 */
export function attendRange(
  q: Float32Array,
  qo: number,
  cache: KvElements,
  at: (j: number, kv: number) => number,
  begin: number,
  end: number,
  scale: number,
  scores: Float64Array,
  acc: Float64Array,
): { max: number; sum: number } {
  const D = acc.length;
  const { data, table } = cache;
  let max = -Infinity;
  for (let j = begin; j < end; j++) {
    const ko = at(j, 0);
    let t = 0;
    if (table) { for (let d = 0; d < D; d++) t += q[qo + d] * table[data[ko + d]]; }
    else for (let d = 0; d < D; d++) t += q[qo + d] * data[ko + d];
    t *= scale;
    scores[j - begin] = t;
    if (t > max) max = t;
  }
  let sum = 0;
  acc.fill(0);
  for (let j = begin; j < end; j++) {
    const e = Math.exp(scores[j - begin] - max);
    sum += e;
    const vo = at(j, 1);
    if (table) { for (let d = 0; d < D; d++) acc[d] += e * table[data[vo + d]]; }
    else for (let d = 0; d < D; d++) acc[d] += e * data[vo + d];
  }
  return { max, sum };
}

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
    const cache = kvAccess(bufs[5], spec.kvDtype); // [pages, 2, KV, PAGE_SIZE, D]
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
        const { sum } = attendRange(q, qo, cache, at, lo, p + 1, scale, scores, acc);
        const oo = r * H * D + h * D;
        for (let d = 0; d < D; d++) out[oo + d] = acc[d] / sum;
      }
    }
  };
}
