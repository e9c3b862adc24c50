/**
 * CPU sampling kernels: `take_rows` (gather the logits rows to sample), `argmax` (lowest index
 * wins ties), `softmax_temp` (temperature softmax; t <= 0 gives a one-hot at the argmax) and
 * `softmax_stats` (its blocks' max, argmax and sum, for a split softmax),
 * `top_p_hist` and `top_p_gather` (the histogram and the candidates `sample_top_p` may start
 * from) and `sample_top_p` (nucleus sampling with a caller-supplied uniform u per row).
 * @module
 */
import {
  type CpuKernel,
  type KernelSpec,
  TOP_P_ALL,
  TOP_P_BUCKETS,
  TOP_P_NONE,
  TOP_P_SLICE,
  topPBucket,
  topPFixed,
  topPGatherBucket,
  topPGatherWords,
  topPHistWords,
  topPSlices,
} from "../contract.ts";

type TakeRowsSpec = Extract<KernelSpec, { op: "take_rows" }>;
type ArgmaxSpec = Extract<KernelSpec, { op: "argmax" }>;
type SoftmaxTempSpec = Extract<KernelSpec, { op: "softmax_temp" }>;
type SoftmaxStatsSpec = Extract<KernelSpec, { op: "softmax_stats" }>;
type SampleTopPSpec = Extract<KernelSpec, { op: "sample_top_p" }>;
type TopPHistSpec = Extract<KernelSpec, { op: "top_p_hist" }>;
type TopPGatherSpec = Extract<KernelSpec, { op: "top_p_gather" }>;

/** The CPU kernel of a `take_rows` spec. Bindings: x [*, width], idx [R], out [R, width]. */
export function takeRowsKernel(spec: TakeRowsSpec): CpuKernel {
  const { width } = spec;
  return (bufs, R) => {
    const x = new Float32Array(bufs[0]); // [*, width]
    const idx = new Uint32Array(bufs[1]); // [R]
    const out = new Float32Array(bufs[2]); // [R, width]
    for (let r = 0; r < R; r++) {
      const s = idx[r] * width;
      if (s + width > x.length) {
        throw new RangeError(`take_rows index ${idx[r]} is past the ${x.length / width} rows of x`);
      }
      out.set(x.subarray(s, s + width), r * width);
    }
  };
}

function argmaxRow(x: Float32Array, o: number, V: number): number {
  let best = 0;
  let bestV = x[o];
  for (let c = 1; c < V; c++) {
    if (x[o + c] > bestV) bestV = x[o + c], best = c;
  }
  return best;
}

/** The CPU kernel of an `argmax` spec. Bindings: x [R, V], [part, counts], out u32 [R]. */
export function argmaxKernel(spec: ArgmaxSpec): CpuKernel {
  const V = spec.vocab;
  return (bufs, R) => {
    const x = new Float32Array(bufs[0]); // [R, V]
    // (with blocks: part and counts, a WebGPU kernel's, are left as they are: counts zero)
    const out = new Uint32Array(bufs[spec.blocks ? 3 : 1]); // [R]
    for (let r = 0; r < R; r++) out[r] = argmaxRow(x, r * V, V);
  };
}

/** The CPU kernel of a `softmax_temp` spec. Bindings: x [R, V], temperature [R], out [R, V];
 * with `blocks`, the row's max, argmax and sum come from `softmax_stats`' stats [R, blocks, 2]
 * and stats_idx u32 [R, blocks] (bindings x, temperature, stats, stats_idx, out). */
export function softmaxTempKernel(spec: SoftmaxTempSpec): CpuKernel {
  const V = spec.vocab, B = spec.blocks ?? 0;
  return (bufs, R) => {
    const x = new Float32Array(bufs[0]); // [R, V]
    const temp = new Float32Array(bufs[1]); // [R]
    const out = new Float32Array(bufs[B ? 4 : 2]); // [R, V]
    for (let r = 0; r < R; r++) {
      const o = r * V;
      const t = temp[r];
      const row = B
        ? combineStats(new Float32Array(bufs[2]), new Uint32Array(bufs[3]), r, B, t)
        : null;
      if (!(t > 0)) {
        const best = row ? row.argmax : argmaxRow(x, o, V);
        out.fill(0, o, o + V);
        out[o + best] = 1;
        continue;
      }
      // (with blocks, the row's max and sum come from the stats)
      let max = row?.max ?? -Infinity, sum = row?.sum ?? 0;
      if (!row) { for (let c = 0; c < V; c++) if (x[o + c] > max) max = x[o + c]; }
      for (let c = 0; c < V; c++) {
        const e = Math.exp((x[o + c] - max) / t);
        out[o + c] = e;
        if (!row) sum += e;
      }
      for (let c = 0; c < V; c++) out[o + c] = out[o + c] / sum;
    }
  };
}

/** Row r's max, argmax (0 where no block has one) and sum of exp((x - max) / t) from its
 * blocks' stats (the contract's combination). */
function combineStats(stats: Float32Array, idx: Uint32Array, r: number, B: number, t: number) {
  const inv = t > 0 ? 1 / t : 1;
  let max = -Infinity, argmax = 0xffffffff;
  for (let b = 0; b < B; b++) {
    const m = stats[(r * B + b) * 2], i = idx[r * B + b];
    if (m > max || (m === max && i < argmax)) max = m, argmax = i;
  }
  let sum = 0;
  for (let b = 0; b < B; b++) {
    const m = stats[(r * B + b) * 2];
    if (m > -Infinity) sum += stats[(r * B + b) * 2 + 1] * Math.exp((m - max) * inv);
  }
  return { max, argmax: argmax === 0xffffffff ? 0 : argmax, sum };
}

/** The CPU kernel of a `softmax_stats` spec. Bindings: x [R, V], temperature [R], stats
 * [R, blocks, 2], idx u32 [R, blocks]. */
export function softmaxStatsKernel(spec: SoftmaxStatsSpec): CpuKernel {
  const { vocab: V, blocks: B } = spec;
  const L = Math.ceil(V / B);
  return (bufs, R) => {
    const x = new Float32Array(bufs[0]); // [R, V]
    const temp = new Float32Array(bufs[1]); // [R]
    const stats = new Float32Array(bufs[2]); // [R, B, 2]
    const idx = new Uint32Array(bufs[3]); // [R, B]
    for (let r = 0; r < R; r++) {
      const inv = temp[r] > 0 ? 1 / temp[r] : 1;
      for (let b = 0; b < B; b++) {
        const lo = r * V + b * L, hi = r * V + Math.min(V, (b + 1) * L);
        let m = -Infinity, at = 0xffffffff;
        for (let c = lo; c < hi; c++) if (x[c] > m) m = x[c], at = c - r * V;
        let s = 0;
        if (m > -Infinity) { for (let c = lo; c < hi; c++) s += Math.exp((x[c] - m) * inv); }
        stats[(r * B + b) * 2] = m;
        stats[(r * B + b) * 2 + 1] = s;
        idx[r * B + b] = at;
      }
    }
  };
}

/** Largest vocabulary `sample_top_p` sorts with packed keys (index in the low 20 bits). */
const MAX_TOP_P_VOCAB = 1 << 20;

/** The CPU kernel of a `top_p_hist` spec. Bindings: probs [R, V], top_p [R],
 * out u32 [R, topPHistWords(V)]. The 64-bit sums are exact in f64 (a slice's < 2^45). */
export function topPHistKernel(spec: TopPHistSpec): CpuKernel {
  const V = spec.vocab;
  const words = topPHistWords(V);
  return (bufs, R) => {
    const probs = new Float32Array(bufs[0]); // [R, V]
    const bits = new Uint32Array(bufs[0]); // [R, V] the same values as bit patterns
    const topP = new Float32Array(bufs[1]); // [R]
    const out = new Uint32Array(bufs[2]); // [R, words]
    const mass = new Float64Array(TOP_P_BUCKETS); // [TOP_P_BUCKETS] of one slice
    for (let r = 0; r < R; r++) {
      if (topP[r] >= 1) continue;
      for (let g = 0; g * TOP_P_SLICE < V; g++) {
        const at = r * words + g * TOP_P_BUCKETS * 2;
        mass.fill(0);
        for (let c = g * TOP_P_SLICE; c < Math.min(V, (g + 1) * TOP_P_SLICE); c++) {
          const p = probs[r * V + c];
          if (!(p > 0)) continue;
          const b = topPBucket(bits[r * V + c]);
          mass[b] += topPFixed(p);
        }
        mass.forEach((m, b) => {
          out[at + 2 * b] = m % 2 ** 32;
          out[at + 2 * b + 1] = Math.floor(m / 2 ** 32);
        });
      }
    }
  };
}

/** The CPU kernel of a `top_p_gather` spec. Bindings: probs [R, V], top_p [R],
 * hist [R, topPHistWords(V)], out u32 [R, topPGatherWords(V)], mass [R, topPSlices(V)]. The
 * buckets' integer masses are exact in f64 (a row's < 2^53). */
export function topPGatherKernel(spec: TopPGatherSpec): CpuKernel {
  const V = spec.vocab, G = topPSlices(V), NB = TOP_P_BUCKETS;
  const words = topPGatherWords(V), histWords = topPHistWords(V);
  return (bufs, R) => {
    const probs = new Float32Array(bufs[0]); // [R, V]
    const bits = new Uint32Array(bufs[0]); // [R, V] the same values as bit patterns
    const topP = new Float32Array(bufs[1]); // [R]
    const hist = new Uint32Array(bufs[2]); // [R, G, NB, 2]
    const out = new Uint32Array(bufs[3]); // [R, words]
    const mass = new Float32Array(bufs[4]); // [R, G]
    for (let r = 0; r < R; r++) {
      const o = r * words, h = r * histWords;
      const all = topP[r] >= 1;
      const B = all ? TOP_P_ALL : topPGatherBucket((b) => {
        let m = 0;
        for (let g = 0; g < G; g++) {
          const at = h + (g * NB + b) * 2;
          m += hist[at] + hist[at + 1] * 2 ** 32;
        }
        return m;
      }, topP[r]);
      out[o] = B;
      for (let g = 0; g < G; g++) {
        let n = 0, m = 0;
        if (B !== TOP_P_NONE) {
          for (let c = g * TOP_P_SLICE; c < Math.min(V, (g + 1) * TOP_P_SLICE); c++) {
            const p = probs[r * V + c];
            if (all) m += p;
            else if (p > 0) {
              const k = topPBucket(bits[r * V + c]);
              if (k > B) m += p;
              else if (k === B) out[o + 1 + G + g * TOP_P_SLICE + n++] = c;
            }
          }
        }
        out[o + 1 + g] = n;
        mass[r * G + g] = m;
      }
    }
  };
}

/** The token of a row where the mass of the kept tokens (`kept(c)`), summed in index order,
 * first exceeds `threshold`; if none does, the last kept index of nonzero probability (or 0). */
function walkKept(
  probs: Float32Array,
  o: number,
  V: number,
  kept: (c: number) => boolean,
  threshold: number,
): number {
  let cum = 0, last = 0;
  for (let c = 0; c < V; c++) {
    if (!kept(c)) continue;
    if (probs[o + c] > 0) last = c;
    cum += probs[o + c];
    if (cum > threshold) return c;
  }
  return last;
}

/** The CPU kernel of a `sample_top_p` spec. Bindings: probs [R, V], top_p [R], u [R],
 * gathered, mass (`top_p_gather`'s: not read, the sort needs no start), out u32 [R].
 * Tokens are ordered by one native numeric sort of keys pbits * 2^20 + (2^20 - 1 - c), exact in
 * f64 (pbits < 2^31), whose descending order is probability descending, then index ascending. */
export function sampleTopPKernel(spec: SampleTopPSpec): CpuKernel {
  const V = spec.vocab;
  if (V > MAX_TOP_P_VOCAB) {
    throw new RangeError(`sample_top_p vocab ${V} exceeds the CPU kernel's ${MAX_TOP_P_VOCAB}`);
  }
  const keys = new Float64Array(V); // [V] packed (probability bits, reversed index)
  const inSet = new Uint8Array(V); // [V] 1: kept
  return (bufs, R) => {
    const probs = new Float32Array(bufs[0]); // [R, V]
    const bits = new Uint32Array(bufs[0]); // [R, V] the same values as bit patterns
    const topP = new Float32Array(bufs[1]); // [R]
    const u = new Float32Array(bufs[2]); // [R]
    const out = new Uint32Array(bufs[5]); // [R]
    for (let r = 0; r < R; r++) {
      const o = r * V;
      if (topP[r] >= 1) {
        // nothing cut: every token kept
        let total = 0;
        for (let c = 0; c < V; c++) total += probs[o + c];
        out[r] = walkKept(probs, o, V, () => true, u[r] * total);
        continue;
      }
      for (let c = 0; c < V; c++) {
        const b = probs[o + c] > 0 ? bits[o + c] : 0; // -0 and negatives sort as 0
        keys[c] = b * MAX_TOP_P_VOCAB + (MAX_TOP_P_VOCAB - 1 - c);
      }
      keys.sort();
      const token = (i: number) => MAX_TOP_P_VOCAB - 1 - (keys[V - 1 - i] % MAX_TOP_P_VOCAB);
      inSet.fill(0);
      let kept = 0, mass = 0;
      while (kept < V) {
        const t = token(kept++);
        inSet[t] = 1;
        mass += probs[o + t];
        if (mass >= topP[r]) break;
      }
      out[r] = walkKept(probs, o, V, (c) => inSet[c] === 1, u[r] * mass);
    }
  };
}
