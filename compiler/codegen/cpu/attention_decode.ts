/**
 * CPU split-KV decode attention: `attention_decode` (RoPE of the row's q and new k, the KV
 * append, and one partial softmax-weighted sum with its log-sum-exp per split and head) and
 * `attention_merge` (the splits combined). The splits follow `decodeSplits` of the contract, so
 * the partials match the WebGPU kernels'. Softmax in f64.
 * @module
 */
import {
  attentionMergeOf,
  type CpuKernel,
  decodeSplits,
  foldedSplitsError,
  type KernelSpec,
  PAGE_SIZE,
  q8CodesError,
  unitLayoutError,
} from "../contract.ts";
import { sumSplitsKernel } from "./elementwise.ts";
import { kvAccess } from "./half.ts";
import { q8RowWriter } from "./matmul.ts";
import { attendRange } from "./attention.ts";
import { rotator } from "./rope.ts";
import { unitMajorRows } from "./unit_major.ts";

type DecodeSpec = Extract<KernelSpec, { op: "attention_decode" }>;
type MergeSpec = Extract<KernelSpec, { op: "attention_merge" }>;

/** The CPU kernel of an `attention_decode` spec. Bindings: qkv [R, (H + 2KV) * D] (with
 * `qkvSplits`: [R, qkvSplits * (H + 2KV) * D], added up first), [qkv_bias], positions,
 * tok_seq, page_indptr, page_indices, cache, part_o [R, S * H * D], part_lse [R, S * H]; with
 * `merge`, then counts and out (the partials are left as they were). */
export function attentionDecodeKernel(spec: DecodeSpec): CpuKernel {
  const { heads: H, kvHeads: KV, headDim: D, scale, splits: S } = spec;
  if (spec.qkvSplits !== undefined || spec.qkvBias) {
    // a folded sum_splits (its partials, its bias): the sum_splits kernel it replaces writes
    // qkv's rows, then the kernel without it reads them
    const err = foldedSplitsError(spec);
    if (err) throw new RangeError(err);
    const { qkvSplits, qkvSplitRows, qkvBias, ...plain } = spec;
    const W = (H + 2 * KV) * D;
    const sum = sumSplitsKernel({
      op: "sum_splits",
      width: W,
      splits: qkvSplits ?? 1,
      bias: qkvBias ?? null,
      residual: false,
      ...(qkvSplitRows === undefined ? {} : { splitRows: qkvSplitRows }),
    });
    const inner = attentionDecodeKernel(plain);
    const taken = qkvBias ? 2 : 1; // qkv and its bias
    let rows = new ArrayBuffer(0); // [R, W], grown on demand, kept between calls
    return (bufs, R) => {
      if (rows.byteLength < R * W * 4) rows = new ArrayBuffer(R * W * 4);
      sum([...bufs.slice(0, taken), rows], R);
      inner([rows, ...bufs.slice(taken)], R);
    };
  }
  if (spec.merge) {
    // the merge folded in: the partials (scratch by the contract) in arrays of this call's,
    // then the merge's kernel over them; counts stay zero
    const { merge: _, ...alone } = spec;
    const decode = attentionDecodeKernel(alone);
    const merge = attentionMergeKernel(attentionMergeOf(spec));
    return (bufs, R) => {
      const partO = new ArrayBuffer(R * S * H * D * 4), partLse = new ArrayBuffer(R * S * H * 4);
      decode([...bufs.slice(0, 6), partO, partLse], R);
      merge([bufs[1], partO, partLse, bufs[9]], R);
    };
  }
  if (H % KV !== 0) {
    throw new RangeError(`attention_decode heads ${H} is not a multiple of kvHeads ${KV}`);
  }
  const group = H / KV;
  const rotate = rotator(D, spec.invFreq);
  const width = (H + 2 * KV) * D;
  const pageStride = 2 * KV * PAGE_SIZE * D;
  const q = new Float32Array(H * D); // [H, D] the row's rotated q
  const k = new Float32Array(D); // [D] a rotated new key
  const acc = new Float64Array(D); // [D]
  let scores = new Float64Array(256); // [split length] grows on demand
  return (bufs, R) => {
    const qkv = new Float32Array(bufs[0]); // [R, width]
    const positions = new Uint32Array(bufs[1]); // [R]
    const tokSeq = new Uint32Array(bufs[2]); // [R]
    const indptr = new Uint32Array(bufs[3]); // [b + 1]
    const indices = new Uint32Array(bufs[4]); // [total pages]
    const cache = kvAccess(bufs[5], spec.kvDtype); // [pages, 2, KV, PAGE_SIZE, D]
    const partO = new Float32Array(bufs[6]); // [R, S, H, D]
    const partLse = new Float32Array(bufs[7]); // [R, S, H]
    for (let r = 0; r < R; r++) {
      const p = positions[r], o = r * width;
      const pages = indptr[tokSeq[r]];
      // Offset of K (kv = 0) or V (kv = 1) of KV head kvh at position j.
      const at = (j: number, kv: number, kvh: number) =>
        indices[pages + Math.floor(j / PAGE_SIZE)] * pageStride +
        ((kv * KV + kvh) * PAGE_SIZE + (j % PAGE_SIZE)) * D;
      for (let h = 0; h < H; h++) rotate(qkv, o + h * D, q, h * D, p);
      for (let kvh = 0; kvh < KV; kvh++) {
        rotate(qkv, o + (H + kvh) * D, k, 0, p);
        const ko = at(p, 0, kvh), vo = at(p, 1, kvh), v = o + (H + KV + kvh) * D;
        for (let d = 0; d < D; d++) cache.set(ko + d, k[d]), cache.set(vo + d, qkv[v + d]);
      }
      const { lo, len, used } = decodeSplits(spec, p, R);
      if (scores.length < len) scores = new Float64Array(len);
      for (let s = 0; s < used; s++) {
        const begin = lo + s * len, end = Math.min(begin + len, p + 1);
        for (let h = 0; h < H; h++) {
          const kvh = Math.floor(h / group);
          const kv = (j: number, part: number) => at(j, part, kvh);
          const { max, sum } = attendRange(q, h * D, cache, kv, begin, end, scale, scores, acc);
          const part = (r * S + s) * H + h;
          partLse[part] = max + Math.log(sum);
          for (let d = 0; d < D; d++) partO[part * D + d] = acc[d] / sum;
        }
      }
    }
  };
}

/** The CPU kernel of an `attention_merge` spec. Bindings: positions, part_o, part_lse,
 * out [R, H * D] (with `outCodes`: quantize_q8 rows). */
export function attentionMergeKernel(spec: MergeSpec): CpuKernel {
  const { heads: H, headDim: D, splits: S } = spec;
  const weight = new Float64Array(S); // [S]
  const W = H * D;
  const units = unitLayoutError(spec);
  if (units) throw new RangeError(units);
  const layout = spec.outUnits ? unitMajorRows(W) : null;
  const codesErr = q8CodesError(spec);
  if (codesErr) throw new RangeError(codesErr);
  const codes = spec.outCodes ? q8RowWriter(W) : null;
  return (bufs, R) => {
    const positions = new Uint32Array(bufs[0]); // [R]
    const partO = new Float32Array(bufs[1]); // [R, S, H, D]
    const partLse = new Float32Array(bufs[2]); // [R, S, H]
    const out = codes ? new Float32Array(R * W) : new Float32Array(bufs[3]); // [R, H * D]
    for (let r = 0; r < R; r++) {
      const { used } = decodeSplits(spec, positions[r], R);
      for (let h = 0; h < H; h++) {
        let max = -Infinity, sum = 0;
        for (let s = 0; s < used; s++) max = Math.max(max, partLse[(r * S + s) * H + h]);
        for (let s = 0; s < used; s++) {
          sum += weight[s] = Math.exp(partLse[(r * S + s) * H + h] - max);
        }
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let s = 0; s < used; s++) acc += weight[s] * partO[((r * S + s) * H + h) * D + d];
          out[r * W + h * D + d] = acc / sum;
        }
      }
    }
    if (layout) {
      const rows = new Float32Array(bufs[3], 0, R * W);
      layout.to(rows.slice(), R, rows);
    }
    codes?.(out, R, bufs[3]);
  };
}
