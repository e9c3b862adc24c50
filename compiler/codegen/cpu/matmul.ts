/**
 * CPU matmul against a stored weight (dense f32/f16 or group-quantised), with optional bias and
 * the "silu_mul" / "add" epilogues. Weight rows are decoded four at a time into a scratch tile
 * (scales decoded once per group) and activation rows are dotted against the tile two at a time,
 * so each weight byte is decoded once per dispatch and the activations are streamed N/4 times.
 * One or two rows (decode) take the fused decode-and-dot path of `row_dot.ts` instead.
 * @module
 */
import {
  type CpuKernel,
  type KernelSpec,
  kSplitError,
  kSplitLen,
  kSplitsAt,
  q8CodesError,
  q8Eligible,
  q8RowWords,
  unitLayoutError,
} from "../contract.ts";
import { denseReader, denseVector } from "./half.ts";
import { rowDot } from "./row_dot.ts";
import { unitMajorRows, writeNormOut } from "./unit_major.ts";
import { weightRows } from "./weight_rows.ts";

type MatmulSpec = Extract<KernelSpec, { op: "matmul" }>;

const TILE = 4;
/** Up to this many activation rows, the fused decode-and-dot path beats decoding a tile. */
const FUSED_MAX_ROWS = 2;

/** The CPU kernel of a `matmul` spec. Bindings: x, [x_ssq], weight (1 or 2), [bias], [residual],
 * [norm_w], out, [out_w, out_ssq] (the contract's `norm` and `normOut`). */
export function matmulKernel(spec: MatmulSpec): CpuKernel {
  const { N, K, rowStart, rows, epilogue } = spec;
  if (spec.xq8 && !q8Eligible(spec.weight)) {
    throw new RangeError(
      `matmul xq8 needs 4-bit group weights in groups of 32k, got ${JSON.stringify(spec.weight)}`,
    );
  }
  if (epilogue === "silu_mul" && (rowStart !== 0 || rows !== N || N % 2 !== 0)) {
    throw new RangeError(
      `matmul silu_mul needs rowStart = 0 and rows = N = 2I (got rowStart ${rowStart}, rows ${rows}, N ${N})`,
    );
  }
  const units = unitLayoutError(spec) ?? kSplitError(spec) ?? q8CodesError(spec);
  if (units) throw new RangeError(units);
  if (spec.kSplit) return kSplitKernel(spec, spec.kSplit);
  const silu = epilogue === "silu_mul";
  // unit-major rows read (x, x_ssq) and written (silu_mul's out; normOut's out_w, out_ssq)
  const xRows = spec.xUnits ? unitMajorRows(K) : null;
  const xSums = spec.xUnits && spec.norm ? unitMajorRows(K, true) : null;
  const outRows = spec.outUnits && silu ? unitMajorRows(N / 2) : null;
  const dec = weightRows(spec.weight, K);
  const S = dec.stride;
  const tile = new Float32Array(TILE * S); // [TILE, S] decoded weight rows
  const dots = new Float64Array(2 * TILE); // [2 activation rows, TILE]
  const I = N / 2;

  // Decodes up to four local weight rows into the tile (missing ones are zero).
  function load(decode: (row: number, dst: Float32Array, off: number) => void, idx: number[]) {
    for (let t = 0; t < TILE; t++) {
      if (t < idx.length) decode(idx[t], tile, t * S);
      else tile.fill(0, t * S, (t + 1) * S);
    }
  }

  // dots[t] = x[xa .. xa+K) · tile[t] and dots[4 + t] = x[xb .. xb+K) · tile[t]: two activation
  // rows against four weight rows, eight accumulators (each loaded value is used four times).
  function dot8(x: Float32Array, xa: number, xb: number) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, r0 = 0, r1 = 0, r2 = 0, r3 = 0;
    const o1 = S, o2 = 2 * S, o3 = 3 * S;
    for (let k = 0; k < K; k++) {
      const xv = x[xa + k], yv = x[xb + k];
      const w0 = tile[k], w1 = tile[o1 + k], w2 = tile[o2 + k], w3 = tile[o3 + k];
      s0 += xv * w0, s1 += xv * w1, s2 += xv * w2, s3 += xv * w3;
      r0 += yv * w0, r1 += yv * w1, r2 += yv * w2, r3 += yv * w3;
    }
    dots[0] = s0, dots[1] = s1, dots[2] = s2, dots[3] = s3;
    dots[4] = r0, dots[5] = r1, dots[6] = r2, dots[7] = r3;
  }

  const run = (bufs: ArrayBuffer[], R: number) => {
    // bindings: x, [x_ssq], weight, [bias], [residual], [norm_w], out, [out_w, out_ssq]
    let b = 0;
    // [R, K] (xCodes: decoded from the quantize_q8 rows, already rounded)
    let x: Float32Array = spec.xCodes ? q8Decode(bufs[b++], R, K) : new Float32Array(bufs[b++]);
    if (xRows) x = xRows.from(x, R);
    if (spec.norm) {
      const ssq = new Float32Array(bufs[b++]);
      x = normRows(spec.norm.eps, x, xSums ? xSums.from(ssq, R) : ssq, R, K);
    }
    const weightBufs = bufs.slice(b, b += dec.buffers);
    const bias = spec.bias ? denseReader(bufs[b++], spec.bias) : null; // [N]
    const res = epilogue === "add" ? new Float32Array(bufs[b++]) : null; // [R, N]
    if (spec.normOut) b++; // norm_w: see the wrapper below
    if (spec.xq8 && !spec.xCodes) x = q8Rows(x, R, K);
    const out = new Float32Array(bufs[b]); // [R, N] or [R, I]

    if (R <= FUSED_MAX_ROWS) { // decode shape: fused decode-and-dot, nothing materialised
      const rd = rowDot(spec.weight, K, weightBufs);
      for (let r = 0; r < R; r++) {
        rd.prepare(x, r * K);
        if (epilogue === "silu_mul") {
          for (let c0 = 0; c0 < I; c0 += TILE) {
            const n = Math.min(TILE, I - c0);
            rd.dots(c0, n, dots);
            rd.dots(I + c0, n, dots.subarray(TILE));
            for (let t = 0; t < n; t++) {
              const g = dots[t] + (bias ? bias(c0 + t) : 0);
              const u = dots[TILE + t] + (bias ? bias(I + c0 + t) : 0);
              out[r * I + c0 + t] = (g / (1 + Math.exp(-g))) * u;
            }
          }
        } else {
          for (let c0 = 0; c0 < rows; c0 += TILE) {
            const n = Math.min(TILE, rows - c0);
            rd.dots(c0, n, dots);
            for (let t = 0; t < n; t++) {
              const o = r * N + rowStart + c0 + t;
              out[o] = dots[t] + (bias ? bias(rowStart + c0 + t) : 0) + (res ? res[o] : 0);
            }
          }
        }
      }
      return;
    }

    const decode = dec.bind(weightBufs);
    const idx: number[] = [];

    if (epilogue === "silu_mul") {
      for (let c0 = 0; c0 < I; c0 += 2) {
        const two = c0 + 1 < I;
        idx.length = 0;
        idx.push(c0, I + c0);
        if (two) idx.push(c0 + 1, I + c0 + 1);
        load(decode, idx);
        const bg0 = bias ? bias(c0) : 0, bu0 = bias ? bias(I + c0) : 0;
        const bg1 = bias && two ? bias(c0 + 1) : 0, bu1 = bias && two ? bias(I + c0 + 1) : 0;
        const store = (r: number, d: number) => {
          const g0 = dots[d] + bg0, u0 = dots[d + 1] + bu0;
          out[r * I + c0] = (g0 / (1 + Math.exp(-g0))) * u0;
          if (two) {
            const g1 = dots[d + 2] + bg1, u1 = dots[d + 3] + bu1;
            out[r * I + c0 + 1] = (g1 / (1 + Math.exp(-g1))) * u1;
          }
        };
        for (let r = 0; r < R; r += 2) {
          dot8(x, r * K, Math.min(r + 1, R - 1) * K);
          store(r, 0);
          if (r + 1 < R) store(r + 1, TILE);
        }
      }
      return;
    }

    for (let c0 = 0; c0 < rows; c0 += TILE) {
      const n = Math.min(TILE, rows - c0);
      idx.length = 0;
      for (let t = 0; t < n; t++) idx.push(c0 + t);
      load(decode, idx);
      const store = (r: number, d: number) => {
        for (let t = 0; t < n; t++) {
          const col = rowStart + c0 + t;
          const o = r * N + col;
          let v = dots[d + t];
          if (bias) v += bias(col);
          if (res) v += res[o];
          out[o] = v;
        }
      };
      for (let r = 0; r < R; r += 2) {
        dot8(x, r * K, Math.min(r + 1, R - 1) * K);
        store(r, 0);
        if (r + 1 < R) store(r + 1, TILE);
      }
    }
  };
  if (spec.outCodes) {
    // the values out would hold, in a scratch row block, then written as quantize_q8 rows
    const W = silu ? I : N;
    const write = q8RowWriter(W);
    let scratch = new ArrayBuffer(0);
    return (bufs, R) => {
      if (scratch.byteLength < R * W * 4) scratch = new ArrayBuffer(R * W * 4);
      const out = bufs[bufs.length - 1];
      run([...bufs.slice(0, -1), scratch], R);
      write(new Float32Array(scratch, 0, R * W), R, out);
    };
  }
  if (outRows && silu) {
    return (bufs, R) => {
      run(bufs, R);
      const out = new Float32Array(bufs[bufs.length - 1], 0, R * I);
      outRows.to(out.slice(), R, out);
    };
  }
  if (!spec.normOut) return run;
  const { weightDtype } = spec.normOut;
  if (epilogue === "silu_mul" || rowStart !== 0 || rows !== N) {
    throw new RangeError("matmul normOut needs the whole output (rowStart 0, rows N, no silu_mul)");
  }
  return (bufs, R) => {
    run(bufs, R);
    // the next matmul's folded RMSNorm: out weighted by norm_w, its squares in chunks of 4
    const n = bufs.length;
    const w = denseVector(bufs[n - 4], weightDtype, N);
    const out = new Float32Array(bufs[n - 3]), outW = new Float32Array(bufs[n - 2]);
    const ssq = new Float32Array(bufs[n - 1]);
    for (let r = 0; r < R; r++) writeNormOut(out, r, N, w, outW, ssq, !!spec.outUnits);
  };
}

/** The int8 codes of x[k0 .. k1) (the contract's `xq8`: c = round(x * 127 / a), ties to even,
 * a = max |x|; all zero when a = 0) into `codes`, and a. */
function q8Block(x: Float32Array, k0: number, k1: number, codes: Int32Array): number {
  let a = 0;
  for (let k = k0; k < k1; k++) a = Math.max(a, Math.abs(x[k]));
  for (let k = k0; k < k1; k++) {
    if (a === 0) {
      codes[k - k0] = 0;
      continue;
    }
    const v = (x[k] * 127) / a, f = Math.floor(v);
    codes[k - k0] = v - f > 0.5 || (v - f === 0.5 && f % 2 !== 0) ? f + 1 : f; // ties to even
  }
  return a;
}

/** Rows of x rounded through int8 codes per 32-element block (the contract's `xq8`). */
function q8Rows(x: Float32Array, R: number, K: number): Float32Array {
  const out = new Float32Array(R * K); // [R, K]
  const codes = new Int32Array(32);
  for (let r = 0; r < R; r++) {
    for (let k0 = r * K; k0 < (r + 1) * K; k0 += 32) {
      const k1 = Math.min((r + 1) * K, k0 + 32);
      const a = q8Block(x, k0, k1, codes);
      for (let k = k0; k < k1; k++) out[k] = (codes[k - k0] * a) / 127;
    }
  }
  return out;
}

/** Element e (0-31) of a block: its word (0-7) and byte in the `quantize_q8` layout. */
const q8Slot = (e: number) => ({ word: 2 * (e >> 3) + (e & 1), byte: (e & 7) >> 1 });

/** The CPU kernel of a `quantize_q8` spec. Bindings: x f32[R, K], out u32[R, q8RowWords(K)]. */
export function quantizeQ8Kernel(spec: Extract<KernelSpec, { op: "quantize_q8" }>): CpuKernel {
  const err = q8CodesError(spec);
  if (err) throw new RangeError(err);
  const write = q8RowWriter(spec.K);
  return (bufs, R) => write(new Float32Array(bufs[0]), R, bufs[1]);
}

/** A writer of `quantize_q8` rows of K elements: `(x [R, K], R, out)` fills out's first R rows
 * (u32 [R, q8RowWords(K)]); the kernels that write codes (`outCodes`) end with it. */
export function q8RowWriter(K: number): (x: Float32Array, R: number, out: ArrayBuffer) => void {
  const W = q8RowWords(K);
  const codes = new Int32Array(32);
  const words = new Uint32Array(8); // one block's code words
  return (x, R, buf) => {
    const out = new Uint32Array(buf); // [R, W]
    const meta = new Float32Array(buf); // the same words, as f32
    for (let r = 0; r < R; r++) {
      for (let u = 0; u < K / 32; u++) {
        const a = q8Block(x, r * K + 32 * u, r * K + 32 * u + 32, codes);
        words.fill(0);
        let sum = 0;
        for (let e = 0; e < 32; e++) {
          const { word, byte } = q8Slot(e);
          words[word] |= (codes[e] & 0xff) << (8 * byte);
          sum += codes[e];
        }
        out.set(words, r * W + 8 * u);
        meta[r * W + K / 4 + 2 * u] = a / 127;
        meta[r * W + K / 4 + 2 * u + 1] = sum;
      }
    }
  };
}

/** `quantize_q8` rows of x [R, K] (what the kernel writes), as a new buffer. */
export function quantizeQ8Rows(x: Float32Array, R: number, K: number): ArrayBuffer {
  const out = new ArrayBuffer(R * q8RowWords(K) * 4);
  quantizeQ8Kernel({ op: "quantize_q8", K })([x.slice(0, R * K).buffer, out], R);
  return out;
}

/** x [R, K] from `quantize_q8` rows: element 32u + e is d_u times its code. */
function q8Decode(buf: ArrayBuffer, R: number, K: number): Float32Array {
  const W = q8RowWords(K);
  const words = new Uint32Array(buf), meta = new Float32Array(buf);
  const x = new Float32Array(R * K);
  for (let r = 0; r < R; r++) {
    for (let u = 0; u < K / 32; u++) {
      const d = meta[r * W + K / 4 + 2 * u];
      for (let e = 0; e < 32; e++) {
        const { word, byte } = q8Slot(e);
        const c = (words[r * W + 8 * u + word] << (24 - 8 * byte)) >> 24; // sign-extended byte
        x[r * K + 32 * u + e] = c * d;
      }
    }
  }
  return x;
}

/** A folded RMSNorm's rows: x[r] * inv_r, inv_r = 1 / sqrt(sum of the row's x_ssq / K + eps). */
function normRows(
  eps: number,
  x: Float32Array,
  ssq: Float32Array,
  R: number,
  K: number,
): Float32Array {
  const out = new Float32Array(R * K), C = Math.ceil(K / 4); // [R, K]
  for (let r = 0; r < R; r++) {
    let s = 0;
    for (let j = 0; j < C; j++) s += ssq[r * C + j];
    const inv = 1 / Math.sqrt(s / K + eps);
    for (let k = 0; k < K; k++) out[r * K + k] = x[r * K + k] * inv;
  }
  return out;
}

/** A `kSplit` matmul: each weight row decoded once, dotted with each row of x (rounded
 * through int8 codes with xq8) over each of the dispatch's K ranges (`kSplitsAt`; the
 * partials past them not written). Bindings: x [R, K], weight (1 or 2), out [R, kSplit * N]. */
function kSplitKernel(spec: MatmulSpec, S: number): CpuKernel {
  const { N, K } = spec;
  const dec = weightRows(spec.weight, K);
  const row = new Float32Array(dec.stride);
  return (bufs, R) => {
    const SR = kSplitsAt(spec, R), L = kSplitLen(K, SR); // this dispatch's ranges
    let x: Float32Array = spec.xCodes ? q8Decode(bufs[0], R, K) : new Float32Array(bufs[0]);
    if (spec.xq8 && !spec.xCodes) x = q8Rows(x, R, K); // [R, K]
    const decode = dec.bind(bufs.slice(1, 1 + dec.buffers));
    const out = new Float32Array(bufs[1 + dec.buffers]); // [R, S * N]
    for (let c = 0; c < N; c++) {
      decode(c, row, 0);
      for (let r = 0; r < R; r++) {
        for (let s = 0; s < SR; s++) {
          let acc = 0;
          for (let k = s * L; k < Math.min(K, (s + 1) * L); k++) acc += x[r * K + k] * row[k];
          out[r * S * N + s * N + c] = acc;
        }
      }
    }
  };
}
