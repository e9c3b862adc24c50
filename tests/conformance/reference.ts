/**
 * An independent float64 reference for every kernel of the contract: plain loops over
 * DataView reads, f16 decoded from its IEEE formula, group-quantised codes extracted with
 * division and modulo. Shares nothing with the backends but `bindings()` (the binding order).
 * @module
 */
import {
  attentionMergeOf,
  bindings,
  type KernelSpec,
  kSplitLen,
  kSplitsAt,
  kvF16,
  PAGE_SIZE,
  q8OutWidth,
  q8RowWords,
  splitsRead,
  TOP_P_BUCKETS,
  TOP_P_SLICE,
  type WeightFormat,
} from "../../compiler/codegen/contract.ts";

/** Expected full contents of every written binding, by binding name. */
export type RefOutputs = Record<string, Float64Array | Uint32Array>;

function half(h: number): number {
  const sign = h >= 0x8000 ? -1 : 1;
  const exp = Math.floor(h / 1024) % 32;
  const man = h % 1024;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man === 0 ? sign * Infinity : NaN;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

const views = new WeakMap<ArrayBuffer, DataView>();
function view(b: ArrayBuffer): DataView {
  let v = views.get(b);
  if (!v) views.set(b, v = new DataView(b));
  return v;
}
const f32 = (b: ArrayBuffer, i: number) => view(b).getFloat32(4 * i, true);
const u32 = (b: ArrayBuffer, i: number) => view(b).getUint32(4 * i, true);
const dense = (b: ArrayBuffer, dtype: "f32" | "f16", i: number) =>
  dtype === "f32" ? f32(b, i) : half(view(b).getUint16(2 * i, true));
const silu = (g: number) => g / (1 + Math.exp(-g));
/** Where element k of a row of W lies when the row is unit-major (`layout` true): the row is
 * 8 slices of W / 32 vec4s, vec4 j of 32-element unit u in slice j at place u. */
const unitPos = (layout: boolean | undefined, k: number, W: number) =>
  layout ? (((k % 32) - (k % 4)) / 4 * (W / 32) + Math.floor(k / 32)) * 4 + (k % 4) : k;
/** Where sum q (of elements 4q..4q+3) of a row of W lies in its row of W / 4 sums. */
const chunkPos = (layout: boolean | undefined, q: number, W: number) =>
  layout ? (q % 8) * (W / 32) + Math.floor(q / 8) : q;

/** W[n, k] of an [*, K] weight stored in `format` in `bufs` (1 buffer dense, 2 group). */
function weightAt(f: WeightFormat, bufs: ArrayBuffer[], K: number, n: number, k: number): number {
  if (f.kind === "dense") return dense(bufs[0], f.dtype, n * K + k);
  const perWord = Math.floor(32 / f.bits);
  const groups = Math.ceil(K / f.groupSize);
  const wordsPerRow = (groups * f.groupSize) / perWord;
  const word = u32(bufs[0], n * wordsPerRow + Math.floor(k / perWord));
  const code = Math.floor(word / 2 ** (f.bits * (k % perWord))) % 2 ** f.bits;
  const scale = dense(bufs[1], f.scaleDtype, n * groups + Math.floor(k / f.groupSize));
  return (code - (2 ** (f.bits - 1) - 1)) * scale;
}

/** The expected outputs of one dispatch of `spec` over `rows` rows on `inputs` (in binding
 * order; written bindings hold their starting contents, which untouched parts keep). */
export function reference(spec: KernelSpec, inputs: ArrayBuffer[], rows: number): RefOutputs {
  const names = bindings(spec);
  const buf: Record<string, ArrayBuffer> = {};
  const out: RefOutputs = {};
  const weights: ArrayBuffer[] = [];
  names.forEach((b, i) => {
    buf[b.name] = inputs[i];
    if (b.name === "weight" || b.name === "q_weight" || b.name === "q_scale") {
      weights.push(inputs[i]);
    }
    if (b.access === "read_write" && b.name === "cache" && kvF16(spec)) {
      out.cache = halvesOf(inputs[i]); // an f16 cache
    } else if (b.access === "read_write") {
      const n = inputs[i].byteLength / 4;
      const isU32 = spec.op === "argmax" || spec.op === "sample_top_p" ||
        spec.op === "top_p_hist" || (spec.op === "softmax_stats" && b.name === "idx") ||
        (spec.op === "top_p_gather" && b.name === "out") ||
        b.name === "counts";
      out[b.name] = isU32 ? new Uint32Array(n) : new Float64Array(n);
      for (let j = 0; j < n; j++) out[b.name][j] = isU32 ? u32(inputs[i], j) : f32(inputs[i], j);
    }
  });
  const R = rows;
  const x = (name: string, i: number) => f32(buf[name], i);
  const ids = (name: string, i: number) => u32(buf[name], i);
  // a folded sum_splits: the partial sums added up first (rounded once to f32, as the
  // sum_splits it replaces stores them)
  if (spec.op === "attention_decode" && (spec.qkvSplits || spec.qkvBias)) {
    const { qkvBias } = spec; // (with the bias, added before the one rounding)
    const S = spec.qkvSplits ?? 1;
    buf.qkv = summedSplits(
      buf.qkv,
      R,
      S,
      splitsRead(S, spec.qkvSplitRows, R),
      (spec.heads + 2 * spec.kvHeads) * spec.headDim,
      qkvBias ? (c) => dense(buf.qkv_bias, qkvBias, c) : undefined,
    );
  }
  if (spec.op === "add_rms_norm" && spec.splits) {
    const used = splitsRead(spec.splits, spec.splitRows, R);
    buf.b = summedSplits(buf.b, R, spec.splits, used, spec.hidden);
  }
  // out as quantize_q8 rows (a writer's outCodes): the values computed in float64, then
  // rounded and compared decoded, as for quantize_q8
  const codesK = spec.op === "quantize_q8" ? null : q8OutWidth(spec);
  if (codesK !== null) out.out = new Float64Array(R * codesK);

  switch (spec.op) {
    case "embed": {
      const H = spec.hidden;
      for (let r = 0; r < R; r++) {
        const id = ids("ids", r);
        if (id < spec.rowStart || id >= spec.rowStart + spec.rows) continue;
        for (let h = 0; h < H; h++) {
          out.out[r * H + h] = weightAt(spec.weight, weights, H, id - spec.rowStart, h);
        }
        if (spec.normOut) {
          const dt = spec.normOut.weightDtype;
          normOutRow(out, r, H, (c) => dense(buf.norm_w, dt, c), spec.outUnits);
        }
      }
      break;
    }
    case "matmul": {
      const { N, K } = spec;
      // a folded RMSNorm: x arrives weighted, its row's sum of squares in chunks of 4
      // (x and x_ssq unit-major with xUnits)
      const xu = spec.xUnits;
      // (xCodes: x is quantize_q8 rows, decoded: the rounding is already in them)
      let xin: ArrayLike<number> = spec.xCodes
        ? q8RowsDecoded(buf.x, R, K).values
        : Float64Array.from(
          { length: R * K },
          (_, i) => x("x", i - (i % K) + unitPos(xu, i % K, K)),
        );
      if (spec.norm) {
        const nx = new Float64Array(R * K), C = Math.ceil(K / 4);
        for (let r = 0; r < R; r++) {
          let ss = 0;
          for (let j = 0; j < C; j++) ss += x("x_ssq", r * C + chunkPos(xu, j, K));
          const rms = Math.sqrt(ss / K + spec.norm.eps);
          for (let k = 0; k < K; k++) nx[r * K + k] = xin[r * K + k] / rms;
        }
        xin = nx;
      }
      const xs = spec.xq8 && !spec.xCodes ? q8Activations(xin, R, K) : null; // [R, K]
      if (spec.kSplit) {
        // partial sums of each of the dispatch's S_R K ranges: out[r, s * N + c] (the partials
        // past S_R not written: they keep their starting contents)
        const S = spec.kSplit, SR = kSplitsAt(spec, R), L = kSplitLen(K, SR);
        for (let r = 0; r < R; r++) {
          for (let s = 0; s < SR; s++) {
            for (let c = 0; c < N; c++) {
              let acc = 0;
              for (let k = s * L; k < Math.min(K, (s + 1) * L); k++) {
                acc += (xs ?? xin)[r * K + k] * weightAt(spec.weight, weights, K, c, k);
              }
              out.out[r * S * N + s * N + c] = acc;
            }
          }
        }
        break;
      }
      const y = (r: number, n: number) => { // (x W^T + bias)[r, n] for local weight row n
        let s = 0;
        for (let k = 0; k < K; k++) {
          s += (xs ? xs[r * K + k] : xin[r * K + k]) * weightAt(spec.weight, weights, K, n, k);
        }
        const col = spec.rowStart + n;
        return s + (spec.bias ? dense(buf.bias, spec.bias, col) : 0);
      };
      for (let r = 0; r < R; r++) {
        if (spec.epilogue === "silu_mul") {
          const I = N / 2;
          for (let c = 0; c < I; c++) {
            out.out[r * I + unitPos(spec.outUnits, c, I)] = silu(y(r, c)) * y(r, I + c);
          }
          continue;
        }
        for (let c = 0; c < spec.rows; c++) {
          const o = r * N + spec.rowStart + c;
          out.out[o] = y(r, c) + (spec.epilogue === "add" ? x("residual", o) : 0);
        }
        if (spec.normOut) {
          const dt = spec.normOut.weightDtype;
          normOutRow(out, r, N, (c) => dense(buf.norm_w, dt, c), spec.outUnits);
        }
      }
      break;
    }
    case "dequantize":
      for (let n = 0; n < spec.N; n++) {
        for (let k = 0; k < spec.K; k++) {
          out.out[n * spec.K + k] = weightAt(spec.weight, weights, spec.K, n, k);
        }
      }
      break;
    case "rms_norm":
    case "add_rms_norm": {
      const H = spec.hidden;
      for (let r = 0; r < R; r++) {
        const v: number[] = [];
        for (let h = 0; h < H; h++) {
          const o = r * H + h;
          v.push(spec.op === "rms_norm" ? x("x", o) : x("a", o) + x("b", o));
          if (spec.op === "add_rms_norm") out.sum[o] = v[h];
        }
        const rms = Math.sqrt(v.reduce((s, e) => s + e * e, 0) / H + spec.eps);
        for (let h = 0; h < H; h++) {
          out.out[r * H + h] = (v[h] / rms) * dense(buf.w, spec.weightDtype, h);
        }
      }
      break;
    }
    case "quantize_q8": {
      // compared decoded (`q8RowsDecoded`): each element's d x code, and each block's code sum
      const K = spec.K;
      Object.assign(
        out,
        q8Written(Float64Array.from({ length: R * K }, (_, i) => x("x", i)), R, K),
      );
      break;
    }
    case "sum_splits": {
      // (with splitRows, the dispatch's first partials: the others are not written)
      const W = spec.width, S = spec.splits, used = splitsRead(S, spec.splitRows, R);
      for (let r = 0; r < R; r++) {
        for (let c = 0; c < W; c++) {
          let acc = 0;
          for (let s = 0; s < used; s++) acc += x("part", r * S * W + s * W + c);
          if (spec.bias) acc += dense(buf.bias, spec.bias, c);
          if (spec.residual) acc += x("residual", r * W + c);
          out.out[r * W + c] = acc;
        }
      }
      break;
    }
    case "add":
      for (let i = 0; i < R * spec.width; i++) out.out[i] = x("a", i) + x("b", i);
      break;
    case "silu_mul": {
      const I = spec.inter;
      for (let r = 0; r < R; r++) {
        for (let i = 0; i < I; i++) {
          out.out[r * I + i] = silu(x("x", r * 2 * I + i)) * x("x", r * 2 * I + I + i);
        }
      }
      break;
    }
    case "rope":
    case "kv_append":
    case "rope_kv_append":
      ropeAndAppend(spec, buf, out, R);
      break;
    case "attention":
      attention(spec, buf, out, R);
      break;
    case "attention_decode":
      if (spec.merge) {
        // the merge folded in: its out from the partials (rounded to f32 as stored), which are
        // scratch here (not compared)
        const { merge: _, ...alone } = spec;
        const parts: RefOutputs = {
          cache: out.cache,
          part_o: new Float64Array(R * spec.splits * spec.heads * spec.headDim),
          part_lse: new Float64Array(R * spec.splits * spec.heads),
        };
        attentionDecode(alone, buf, parts, R);
        const stored = {
          ...buf,
          part_o: Float32Array.from(parts.part_o).buffer,
          part_lse: Float32Array.from(parts.part_lse).buffer,
        };
        attentionMerge(attentionMergeOf(spec), stored, out, R);
      } else attentionDecode(spec, buf, out, R);
      break;
    case "attention_merge":
      attentionMerge(spec, buf, out, R);
      break;
    case "take_rows":
      for (let r = 0; r < R; r++) {
        for (let c = 0; c < spec.width; c++) {
          out.out[r * spec.width + c] = x("x", ids("idx", r) * spec.width + c);
        }
      }
      break;
    case "argmax":
      for (let r = 0; r < R; r++) out.out[r] = argmax(buf.x, r, spec.vocab);
      break;
    case "softmax_temp": {
      const V = spec.vocab, B = spec.blocks ?? 0;
      for (let r = 0; r < R; r++) {
        const t = x("temperature", r);
        // with blocks: the row's max, argmax and sum as the contract combines the stats
        const blocks = B ? statsOf(buf.stats, buf.stats_idx, r, B, t) : null;
        if (t <= 0) {
          const best = blocks ? blocks.argmax : argmax(buf.x, r, V);
          for (let c = 0; c < V; c++) out.out[r * V + c] = c === best ? 1 : 0;
          continue;
        }
        const e: number[] = [];
        for (let c = 0; c < V; c++) e.push(x("x", r * V + c) / t);
        const m = blocks ? blocks.max / t : Math.max(...e);
        const z = blocks ? blocks.sum : e.reduce((s, v) => s + Math.exp(v - m), 0);
        for (let c = 0; c < V; c++) out.out[r * V + c] = Math.exp(e[c] - m) / z;
      }
      break;
    }
    case "softmax_stats": {
      const { vocab: V, blocks: B } = spec, L = Math.ceil(V / B);
      for (let r = 0; r < R; r++) {
        const t = x("temperature", r) > 0 ? x("temperature", r) : 1;
        for (let b = 0; b < B; b++) {
          let m = -Infinity, at = 0xffffffff, s = 0;
          for (let c = b * L; c < Math.min(V, (b + 1) * L); c++) {
            if (x("x", r * V + c) > m) m = x("x", r * V + c), at = c;
          }
          for (let c = b * L; c < Math.min(V, (b + 1) * L) && m > -Infinity; c++) {
            s += Math.exp((x("x", r * V + c) - m) / t);
          }
          out.stats[(r * B + b) * 2] = m;
          out.stats[(r * B + b) * 2 + 1] = s;
          out.idx[r * B + b] = at;
        }
      }
      break;
    }
    case "logits_process":
      logitsProcess(spec.vocab, buf, out, R);
      break;
    case "top_p_hist": {
      // per slice and bucket (bits >> 20, offset so that [1, 2) is 503..510, clamped to the
      // buckets): the sum of floor(min(p, 1 - 2^-24) * 2^32) as (lo, hi) words
      const V = spec.vocab, NB = TOP_P_BUCKETS;
      const words = Math.ceil(V / TOP_P_SLICE) * NB * 2;
      for (let r = 0; r < R; r++) {
        if (x("top_p", r) >= 1) continue;
        for (let g = 0; g * TOP_P_SLICE < V; g++) {
          const mass = new Array(NB).fill(0);
          for (let c = g * TOP_P_SLICE; c < Math.min(V, (g + 1) * TOP_P_SLICE); c++) {
            const p = x("probs", r * V + c);
            if (!(p > 0)) continue;
            const key = Math.floor(u32(buf.probs, r * V + c) / 2 ** 20) - (1024 - (NB - 1));
            const b = Math.min(Math.max(key, 0), NB - 1);
            mass[b] += Math.floor(Math.min(p, 1 - 2 ** -24) * 2 ** 32);
          }
          for (let b = 0; b < NB; b++) {
            const at = r * words + (g * NB + b) * 2;
            out.out.set([mass[b] % 2 ** 32, Math.floor(mass[b] / 2 ** 32)], at);
          }
        }
      }
      break;
    }
    case "top_p_gather": {
      // the bucket from the top where the histogram's masses (integers, exact in float64)
      // reach top_p's, then each slice's elements of that bucket and the mass above it
      const V = spec.vocab, NB = TOP_P_BUCKETS, G = Math.ceil(V / TOP_P_SLICE);
      const words = 1 + G + V;
      for (let r = 0; r < R; r++) {
        const tp = x("top_p", r), o = r * words;
        let B = 0xfffffffe; // every token kept
        if (!(tp >= 1)) {
          const need = Math.max(Math.floor(Math.min(Math.max(tp, 0), 1 - 2 ** -24) * 2 ** 32), 1);
          B = 0xffffffff;
          let acc = 0;
          for (let b = NB - 1; b >= 0 && B === 0xffffffff; b--) {
            for (let g = 0; g < G; g++) {
              const at = r * G * NB * 2 + (g * NB + b) * 2;
              acc += ids("hist", at) + ids("hist", at + 1) * 2 ** 32;
            }
            if (acc >= need) B = b;
          }
        }
        out.out[o] = B;
        for (let g = 0; g < G; g++) {
          const found: number[] = [];
          let m = 0;
          for (let c = g * TOP_P_SLICE; c < Math.min(V, (g + 1) * TOP_P_SLICE); c++) {
            const p = x("probs", r * V + c);
            if (B === 0xfffffffe) m += p;
            if (B >= NB || !(p > 0)) continue;
            const key = Math.floor(u32(buf.probs, r * V + c) / 2 ** 20) - (1024 - (NB - 1));
            const b = Math.min(Math.max(key, 0), NB - 1);
            if (b > B) m += p;
            if (b === B) found.push(c);
          }
          out.out[o + 1 + g] = found.length;
          out.out.set(found, o + 1 + G + g * TOP_P_SLICE);
          out.mass[r * G + g] = m;
        }
      }
      break;
    }
    case "sample_top_p":
      for (let r = 0; r < R; r++) {
        const p = topPRow(buf.probs, r, spec.vocab, x("top_p", r), x("u", r));
        out.out[r] = p.token;
      }
      break;
  }
  if (codesK !== null) Object.assign(out, q8Written(out.out as Float64Array, R, codesK));
  return out;
}

/** A `normOut` kernel's other rows for row r of `out.out` [*, N] (norm weights `w`): the next
 * matmul's folded RMSNorm, the row weighted (`out_w`) and its squares in chunks of 4
 * (`out_ssq`), unit-major with `units`. */
function normOutRow(
  out: RefOutputs,
  r: number,
  N: number,
  w: (c: number) => number,
  units?: boolean,
): void {
  const C = Math.ceil(N / 4);
  out.out_ssq.fill(0, r * C, (r + 1) * C);
  for (let c = 0; c < N; c++) {
    const o = r * N + c;
    out.out_w[r * N + unitPos(units, c, N)] = out.out[o] * w(c);
    out.out_ssq[r * C + chunkPos(units, c >> 2, N)] += out.out[o] * out.out[o];
  }
}

/** Row r's max, argmax and sum of exp((x - max) / t) from `softmax_stats`' blocks, combined
 * in float64 as the contract states. */
function statsOf(stats: ArrayBuffer, idx: ArrayBuffer, r: number, B: number, t: number) {
  const inv = t > 0 ? 1 / t : 1;
  let max = -Infinity, argmax = 0xffffffff;
  for (let b = 0; b < B; b++) {
    const m = f32(stats, (r * B + b) * 2), i = u32(idx, r * B + b);
    if (m > max || (m === max && i < argmax)) max = m, argmax = i;
  }
  let sum = 0;
  for (let b = 0; b < B; b++) {
    const m = f32(stats, (r * B + b) * 2);
    if (m > -Infinity) sum += f32(stats, (r * B + b) * 2 + 1) * Math.exp((m - max) * inv);
  }
  return { max, argmax: argmax === 0xffffffff ? 0 : argmax, sum };
}

function argmax(b: ArrayBuffer, r: number, V: number): number {
  let best = 0;
  for (let c = 1; c < V; c++) if (f32(b, r * V + c) > f32(b, r * V + best)) best = c;
  return best;
}

/** Top-p sampling of one row: the token; `sorted`, the cumulative masses in descending-
 * probability order (ties: lower index first) up to the last kept token (empty for top_p >= 1,
 * which keeps every token); `walk`, the cumulative masses of the kept tokens in index order,
 * which the token is drawn from; `mass`, the kept mass u is scaled by. */
export function topPRow(
  probs: ArrayBuffer,
  r: number,
  V: number,
  topP: number,
  u: number,
): { token: number; sorted: number[]; walk: number[]; mass: number } {
  const p = Array.from({ length: V }, (_, c) => f32(probs, r * V + c));
  const keep = new Array<boolean>(V).fill(topP >= 1);
  const sorted: number[] = [];
  let mass = 0;
  if (topP >= 1) {
    mass = p.reduce((a, b) => a + b, 0);
  } else {
    const order = p.map((_, c) => c).sort((a, b) => (p[b] !== p[a] ? p[b] - p[a] : a - b));
    for (const c of order) {
      keep[c] = true;
      mass += p[c];
      sorted.push(mass);
      if (mass >= topP) break;
    }
  }
  const walk: number[] = [];
  let cum = 0, token = -1, last = 0;
  for (let c = 0; c < V; c++) {
    if (!keep[c]) continue;
    cum += p[c];
    walk.push(cum);
    if (p[c] > 0) last = c;
    if (token < 0 && cum > u * mass) token = c;
  }
  return { token: token >= 0 ? token : last, sorted, walk, mass };
}

type PagedSpec = Extract<
  KernelSpec,
  { op: "rope" | "kv_append" | "rope_kv_append" | "attention" | "attention_decode" }
>;

/** Every half of a buffer of f16 (two a u32 word, low first), as numbers. */
export function halvesOf(b: ArrayBuffer): Float64Array {
  const v = view(b);
  return Float64Array.from({ length: b.byteLength / 2 }, (_, i) => half(v.getUint16(2 * i, true)));
}

/** Element i of the cache as the kernel's `kvDtype` stores it (f32, or f16). */
function cacheGet(spec: PagedSpec, buf: Record<string, ArrayBuffer>, i: number): number {
  return kvF16(spec) ? half(view(buf.cache).getUint16(2 * i, true)) : f32(buf.cache, i);
}

/** v as the cache stores it: f32, or f16 rounded to nearest even (through the platform's
 * DataView.setFloat16). */
const rounder = new DataView(new ArrayBuffer(4));
function cacheValue(spec: PagedSpec, v: number): number {
  if (!kvF16(spec)) return v;
  rounder.setFloat16(0, v, true);
  return rounder.getFloat16(0, true);
}

/** Index of element d of (token row r, k-or-v, kv head h) in the paged cache. */
function cacheIndex(
  spec: PagedSpec,
  buf: Record<string, ArrayBuffer>,
  seq: number,
  pos: number,
  kv: number,
  h: number,
  d: number,
) {
  const page = u32(buf.page_indices, u32(buf.page_indptr, seq) + Math.floor(pos / PAGE_SIZE));
  return (((page * 2 + kv) * spec.kvHeads + h) * PAGE_SIZE + (pos % PAGE_SIZE)) * spec.headDim + d;
}

function ropeAndAppend(
  spec: Extract<KernelSpec, { op: "rope" | "kv_append" | "rope_kv_append" }>,
  buf: Record<string, ArrayBuffer>,
  out: RefOutputs,
  R: number,
) {
  const { heads: H, kvHeads: KV, headDim: D } = spec;
  const W = (H + 2 * KV) * D;
  const src = spec.op === "rope" ? "x" : "qkv";
  for (let r = 0; r < R; r++) {
    const pos = u32(buf.positions, r);
    const head = (hh: number): number[] => { // head hh of row r, rotated if it is q or k
      const at = r * W + hh * D;
      if (spec.op === "kv_append" || hh >= H + KV) {
        return Array.from({ length: D }, (_, d) => f32(buf[src], at + d));
      }
      return rotated(buf[src], at, D, pos, spec.invFreq);
    };
    if (spec.op === "rope") {
      for (let hh = 0; hh < H + 2 * KV; hh++) {
        head(hh).forEach((v, d) => (out.out[r * W + hh * D + d] = v));
      }
      continue;
    }
    const seq = u32(buf.tok_seq, r);
    for (let h = 0; h < KV; h++) {
      head(H + h).forEach((v, d) =>
        out.cache[cacheIndex(spec, buf, seq, pos, 0, h, d)] = cacheValue(spec, v)
      );
      head(H + KV + h).forEach((v, d) =>
        out.cache[cacheIndex(spec, buf, seq, pos, 1, h, d)] = cacheValue(spec, v)
      );
    }
    if (spec.op === "rope_kv_append") {
      for (let h = 0; h < H; h++) head(h).forEach((v, d) => (out.q_out[r * H * D + h * D + d] = v));
    }
  }
}

function attention(
  spec: Extract<KernelSpec, { op: "attention" }>,
  buf: Record<string, ArrayBuffer>,
  out: RefOutputs,
  R: number,
) {
  const { heads: H, kvHeads: KV, headDim: D } = spec;
  for (let r = 0; r < R; r++) {
    const p = u32(buf.positions, r);
    const seq = u32(buf.tok_seq, r);
    const lo = spec.window > 0 ? Math.max(0, p - spec.window + 1) : 0;
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor((h * KV) / H);
      const s: number[] = [];
      for (let j = lo; j <= p; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) {
          dot += f32(buf.q, r * spec.qStride + h * D + d) *
            cacheGet(spec, buf, cacheIndex(spec, buf, seq, j, 0, kvh, d));
        }
        s.push(dot * spec.scale);
      }
      const m = Math.max(...s);
      const z = s.reduce((a, v) => a + Math.exp(v - m), 0);
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let j = lo; j <= p; j++) {
          acc += (Math.exp(s[j - lo] - m) / z) *
            cacheGet(spec, buf, cacheIndex(spec, buf, seq, j, 1, kvh, d));
        }
        out.out[r * H * D + h * D + d] = acc;
      }
    }
  }
}

/** Head `hh` (D values from `at`) of a qkv row rotated to position `pos` (HF rotate_half). */
function rotated(b: ArrayBuffer, at: number, D: number, pos: number, invFreq: number[]): number[] {
  const v = Array.from({ length: D }, (_, d) => f32(b, at + d));
  return v.map((_, d) => {
    const a = pos * invFreq[d % (D / 2)];
    return d < D / 2
      ? v[d] * Math.cos(a) - v[d + D / 2] * Math.sin(a)
      : v[d] * Math.cos(a) + v[d - D / 2] * Math.sin(a);
  });
}

/** The splits of a decode row at p in a dispatch of R rows, from the contract's text:
 * positions lo..p in `used` splits of `len` (the last one shorter), `perRow` splits a row. */
export function splitsOf(
  spec: { window: number; splits: number; splitRows: number; splitAlign: number },
  p: number,
  R: number,
) {
  const lo = spec.window > 0 ? Math.max(0, p - spec.window + 1) : 0;
  const n = p + 1 - lo;
  const perRow = Math.min(spec.splits, Math.max(1, Math.floor(spec.splitRows / R)));
  const len = Math.ceil(Math.ceil(n / perRow) / spec.splitAlign) * spec.splitAlign;
  return { lo, len, used: Math.ceil(n / len), perRow };
}

function attentionDecode(
  spec: Extract<KernelSpec, { op: "attention_decode" }>,
  buf: Record<string, ArrayBuffer>,
  out: RefOutputs,
  R: number,
) {
  const { heads: H, kvHeads: KV, headDim: D, splits: S } = spec;
  const W = (H + 2 * KV) * D;
  for (let r = 0; r < R; r++) {
    const p = u32(buf.positions, r);
    const seq = u32(buf.tok_seq, r);
    const kNew = Array.from(
      { length: KV },
      (_, h) => rotated(buf.qkv, r * W + (H + h) * D, D, p, spec.invFreq),
    );
    const vNew = Array.from(
      { length: KV },
      (_, h) => Array.from({ length: D }, (_, d) => f32(buf.qkv, r * W + (H + KV + h) * D + d)),
    );
    for (let h = 0; h < KV; h++) {
      for (let d = 0; d < D; d++) {
        out.cache[cacheIndex(spec, buf, seq, p, 0, h, d)] = cacheValue(spec, kNew[h][d]);
        out.cache[cacheIndex(spec, buf, seq, p, 1, h, d)] = cacheValue(spec, vNew[h][d]);
      }
    }
    // key / value element d of position j (p: the new ones, as the cache stores them; below
    // p: the cache as it was)
    const key = (j: number, kvh: number, d: number) =>
      j === p
        ? cacheValue(spec, kNew[kvh][d])
        : cacheGet(spec, buf, cacheIndex(spec, buf, seq, j, 0, kvh, d));
    const value = (j: number, kvh: number, d: number) =>
      j === p
        ? cacheValue(spec, vNew[kvh][d])
        : cacheGet(spec, buf, cacheIndex(spec, buf, seq, j, 1, kvh, d));
    const { lo, len, used } = splitsOf(spec, p, R);
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor((h * KV) / H);
      const q = rotated(buf.qkv, r * W + h * D, D, p, spec.invFreq);
      for (let s = 0; s < used; s++) {
        const js: number[] = [];
        for (let j = lo + s * len; j < Math.min(lo + (s + 1) * len, p + 1); j++) js.push(j);
        const t = js.map((j) => spec.scale * q.reduce((a, qd, d) => a + qd * key(j, kvh, d), 0));
        const m = Math.max(...t);
        const lse = m + Math.log(t.reduce((a, v) => a + Math.exp(v - m), 0));
        const part = (r * S + s) * H + h;
        out.part_lse[part] = lse;
        for (let d = 0; d < D; d++) {
          out.part_o[part * D + d] = js.reduce(
            (a, j, i) => a + Math.exp(t[i] - lse) * value(j, kvh, d),
            0,
          );
        }
      }
    }
  }
}

function attentionMerge(
  spec: Extract<KernelSpec, { op: "attention_merge" }>,
  buf: Record<string, ArrayBuffer>,
  out: RefOutputs,
  R: number,
) {
  const { heads: H, headDim: D, splits: S } = spec;
  for (let r = 0; r < R; r++) {
    const { used } = splitsOf(spec, u32(buf.positions, r), R);
    for (let h = 0; h < H; h++) {
      const lse = Array.from({ length: used }, (_, s) => f32(buf.part_lse, (r * S + s) * H + h));
      const m = Math.max(...lse);
      const w = lse.map((v) => Math.exp(v - m));
      const z = w.reduce((a, b) => a + b, 0);
      for (let d = 0; d < D; d++) {
        const o = w.reduce(
          (a, ws, s) => a + ws * f32(buf.part_o, ((r * S + s) * H + h) * D + d),
          0,
        );
        out.out[r * H * D + unitPos(spec.outUnits, h * D + d, H * D)] = o / z;
      }
    }
  }
}

/** Penalties, bias and top-k mask over each row's sparse entries (4 words: token, count f32,
 * in_prompt, bias f32) with params (presence, frequency, repetition, top_k) per row. */
function logitsProcess(V: number, buf: Record<string, ArrayBuffer>, out: RefOutputs, R: number) {
  for (let r = 0; r < R; r++) {
    const row: number[] = [];
    for (let c = 0; c < V; c++) row.push(f32(buf.x, r * V + c));
    const [presence, frequency, repetition, topK] = [0, 1, 2, 3].map((i) =>
      f32(buf.params, r * 4 + i)
    );
    for (let e = u32(buf.indptr, r); e < u32(buf.indptr, r + 1); e++) {
      const token = u32(buf.entries, 4 * e), count = f32(buf.entries, 4 * e + 1);
      const inPrompt = u32(buf.entries, 4 * e + 2), bias = f32(buf.entries, 4 * e + 3);
      let l = row[token] + bias;
      if (count > 0 || inPrompt !== 0) l = l > 0 ? l / repetition : l * repetition;
      row[token] = l - (presence * (count > 0 ? 1 : 0) + frequency * count);
    }
    if (topK >= 1 && topK < V) {
      const kth = [...row].sort((a, b) => b - a)[topK - 1];
      for (let c = 0; c < V; c++) if (row[c] < kth) row[c] = -Infinity;
    }
    for (let c = 0; c < V; c++) out.out[r * V + c] = row[c];
  }
}

/** `quantize_q8` rows (u32 [R, q8RowWords(K)]) decoded: each element's d x code (values
 * [R, K]) and each block's code sum as written (sums [R, K / 32]). */
export function q8RowsDecoded(b: ArrayBuffer, R: number, K: number): {
  values: Float64Array;
  sums: Float64Array;
  scales: Float64Array;
} {
  const W = q8RowWords(K);
  const values = new Float64Array(R * K), sums = new Float64Array(R * K / 32);
  const scales = new Float64Array(R * K / 32);
  for (let r = 0; r < R; r++) {
    for (let u = 0; u < K / 32; u++) {
      const d = scales[r * K / 32 + u] = f32(b, r * W + K / 4 + 2 * u);
      sums[r * K / 32 + u] = f32(b, r * W + K / 4 + 2 * u + 1);
      for (let e = 0; e < 32; e++) {
        const word = u32(b, r * W + 8 * u + 2 * (e >> 3) + (e & 1));
        const byte = (word >>> (8 * ((e & 7) >> 1))) & 0xff;
        values[r * K + 32 * u + e] = (byte >= 128 ? byte - 256 : byte) * d;
      }
    }
  }
  return { values, sums, scales };
}

/** What a kernel writing x [R, K] as `quantize_q8` rows is compared with (decoded): `out`, each
 * element's d x code, `out_sums`, each block's code sum, and `out_scales`, each block's d. */
function q8Written(xin: Float64Array, R: number, K: number): RefOutputs {
  const values = q8Activations(xin, R, K);
  const sums = new Float64Array(R * K / 32), scales = new Float64Array(R * K / 32);
  for (let b = 0; b < R * K / 32; b++) {
    const a = Math.max(...xin.subarray(32 * b, 32 * b + 32).map(Math.abs));
    scales[b] = a / 127;
    for (let i = 32 * b; i < 32 * b + 32; i++) sums[b] += a && Math.round(values[i] / (a / 127));
  }
  return { out: values, out_sums: sums, out_scales: scales };
}

/** Rows of `splits` partial sums (f32 [R, splits * W]) added up: f32 [R, W]. */
function summedSplits(
  part: ArrayBuffer,
  R: number,
  splits: number,
  used: number,
  W: number,
  bias?: (c: number) => number,
): ArrayBuffer {
  const out = new Float32Array(R * W);
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < W; c++) {
      let acc = bias?.(c) ?? 0;
      for (let s = 0; s < used; s++) acc += f32(part, r * splits * W + s * W + c);
      out[r * W + c] = acc;
    }
  }
  return out.buffer;
}

/** x [R, K] as the contract's `xq8` rounds it: int8 codes per 32-element block, ties to even. */
function q8Activations(x: ArrayLike<number>, R: number, K: number): Float64Array {
  const out = new Float64Array(R * K);
  for (let r = 0; r < R; r++) {
    for (let b = 0; b < K; b += 32) {
      const idx = Array.from({ length: Math.min(32, K - b) }, (_, i) => r * K + b + i);
      const a = Math.max(...idx.map((i) => Math.abs(x[i])));
      for (const i of idx) {
        if (a === 0) continue;
        const v = (x[i] / a) * 127;
        const lo = Math.floor(v);
        const code = v - lo === 0.5 ? (lo % 2 === 0 ? lo : lo + 1) : Math.round(v);
        out[i] = code * (a / 127);
      }
    }
  }
  return out;
}
