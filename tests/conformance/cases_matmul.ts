/**
 * Conformance cases of matmul: every weight format (dense f32/f16, q4 g32 with f16 and f32
 * scales, q3 g40), K that is and is not a multiple of the group, each bias dtype and epilogue,
 * split weights (rowStart > 0), R of 1 (GEMV), of a ragged 37, and past one tile in N, K and R,
 * row counts that are not a multiple of 4, f16 scales in the subnormal range, and K split across
 * workgroups (`kSplit`, one range empty), x read and out written as `quantize_q8` rows (`xCodes`,
 * `outCodes`).
 * @module
 */
import { type DenseDtype, q8RowWords, type WeightFormat } from "../../compiler/codegen/contract.ts";
import { quantizeQ8Rows } from "../../compiler/codegen/cpu/matmul.ts";
import { type ConformanceCase, TOL } from "./case.ts";
import { PACKED_DOT } from "../../compiler/codegen/contract.ts";
import { F16, F32, Q3, Q4, Q4S32, sentinel } from "./cases_dense.ts";
import { denseBuffer, formatLabel, padded, randomWeight, Rng } from "./helpers.ts";

type Epilogue = "none" | "silu_mul" | "add";

interface MatmulShape {
  weight: WeightFormat;
  N: number;
  K: number;
  R: number;
  maxRows: number;
  bias: DenseDtype | null;
  epilogue: "none" | "silu_mul" | "add";
  rowStart?: number;
  rows?: number;
  /** Group scale magnitude (1e-5 puts f16 scales in the subnormal range). */
  scaleMagnitude?: number;
  /** q8 activations (the spec's `xq8`). */
  xq8?: boolean;
  /** A folded RMSNorm read (the spec's `norm`, eps 1e-5): x weighted, x_ssq its chunks. */
  norm?: boolean;
  /** A folded RMSNorm written (the spec's `normOut`, norm weight of this dtype). */
  normOut?: DenseDtype;
  /** x (and x_ssq) read unit-major (the spec's `xUnits`). */
  xUnits?: boolean;
  /** out (silu_mul) or out_w and out_ssq (normOut) written unit-major (`outUnits`). */
  outUnits?: boolean;
  /** K split across workgroups (the spec's `kSplit`): out holds each range's partial sums. */
  kSplit?: number;
  /** The K ranges by the dispatch's rows (the spec's `kSplitRows`): the partials past them
   * not written. */
  kSplitRows?: number;
  /** x given as `quantize_q8` rows (the spec's `xCodes`, with xq8). */
  xCodes?: boolean;
  /** out written as `quantize_q8` rows (the spec's `outCodes`). */
  outCodes?: boolean;
}

function matmulCase(rng: Rng, m: MatmulShape): ConformanceCase {
  const rowStart = m.rowStart ?? 0, rows = m.rows ?? m.N;
  const outWidth = m.epilogue === "silu_mul" ? m.N / 2 : m.N;
  // with a folded norm: x (a weighted row) and x_ssq, the squares of some row u by 4s
  const x = rng.normals(m.R * m.K, 3);
  const xs = [m.xCodes ? quantizeQ8Rows(x, m.R, m.K) : padded(x)];
  if (m.norm) {
    const u = rng.normals(m.R * m.K, 3), C = Math.ceil(m.K / 4);
    const ssq = new Float32Array(m.R * C); // [R, C]
    u.forEach((v, i) => ssq[Math.floor(i / m.K) * C + ((i % m.K) >> 2)] += v * v);
    xs.push(padded(ssq));
  }
  const inputs = [...xs, ...randomWeight(rng, m.weight, rows, m.K, m.scaleMagnitude)];
  if (m.bias) inputs.push(denseBuffer(rng.normals(m.N, 0.5), m.bias));
  if (m.epilogue === "add") inputs.push(padded(rng.normals(m.R * m.N)));
  if (m.normOut) inputs.push(denseBuffer(rng.normals(m.N, 0.5), m.normOut));
  inputs.push(
    sentinel(m.outCodes ? m.R * q8RowWords(outWidth) : m.R * outWidth * (m.kSplit ?? 1)),
  );
  if (m.normOut) inputs.push(sentinel(m.R * m.N), sentinel(m.R * Math.ceil(m.N / 4)));
  const split = (rows !== m.N ? ` rows=[${rowStart},${rowStart + rows})` : "") +
    (m.scaleMagnitude ? ` scales~${m.scaleMagnitude}` : "") + (m.xq8 ? " xq8" : "") +
    (m.norm ? " norm" : "") + (m.normOut ? ` normOut(w ${m.normOut})` : "") +
    (m.xUnits ? " xUnits" : "") + (m.outUnits ? " outUnits" : "") +
    (m.kSplit ? ` kSplit=${m.kSplit}` : "") +
    (m.kSplitRows ? ` kSplitRows=${m.kSplitRows}` : "") + (m.xCodes ? " xCodes" : "") +
    (m.outCodes ? " outCodes" : "");
  return {
    name: `matmul ${formatLabel(m.weight)} N=${m.N} K=${m.K}${split} bias=${m.bias ?? "none"} ` +
      `epilogue=${m.epilogue} R=${m.R} maxRows=${m.maxRows}`,
    spec: {
      op: "matmul",
      N: m.N,
      K: m.K,
      rowStart,
      rows,
      weight: m.weight,
      bias: m.bias,
      epilogue: m.epilogue,
      maxRows: m.maxRows,
      ...(m.xq8 ? { xq8: true } : {}),
      ...(m.norm ? { norm: { eps: 1e-5 } } : {}),
      ...(m.normOut ? { normOut: { weightDtype: m.normOut } } : {}),
      ...(m.xUnits ? { xUnits: true } : {}),
      ...(m.outUnits ? { outUnits: true } : {}),
      ...(m.kSplit ? { kSplit: m.kSplit } : {}),
      ...(m.kSplitRows ? { kSplitRows: m.kSplitRows } : {}),
      ...(m.xCodes ? { xCodes: true } : {}),
      ...(m.outCodes ? { outCodes: true } : {}),
    },
    rows: m.R,
    inputs,
    tol: m.outCodes ? TOL.q8Written : m.xq8 ? TOL.q8 : TOL.f32,
    ...(m.xq8 ? { requires: PACKED_DOT } : {}),
  };
}

function matmulCasesOf(rng: Rng): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  const formats: [WeightFormat, number[]][] = [
    [F32, [64, 72]],
    [F16, [64, 72]],
    [Q4, [128, 80]], // 80 is not a multiple of 32
    [Q4S32, [96]],
    [Q3, [120, 100]], // 100 is not a multiple of 40
  ];
  const variants: [DenseDtype | null, "none" | "silu_mul" | "add"][] = [
    [null, "none"],
    ["f16", "silu_mul"],
    ["f32", "add"],
  ];
  for (const [weight, Ks] of formats) {
    for (const K of Ks) {
      for (const [bias, epilogue] of variants) {
        for (const [R, maxRows] of [[1, 1], [37, 64]]) {
          out.push(matmulCase(rng, { weight, N: 40, K, R, maxRows, bias, epilogue }));
        }
      }
    }
  }
  // Special shapes, one per line:
  // weight, N, K, R, maxRows, bias, epilogue, [rowStart, rows] (split), group scale magnitude.
  type Row = [
    WeightFormat,
    number,
    number,
    number,
    number,
    DenseDtype | null,
    Epilogue,
    number[]?,
    number?,
  ];
  const special: Row[] = [
    // Split weights: this kernel computes output columns [rowStart, rowStart + rows) only.
    [F16, 64, 64, 5, 8, "f16", "none", [16, 24]],
    [Q4, 72, 80, 37, 64, "f32", "add", [40, 32]],
    [Q3, 50, 100, 1, 1, null, "none", [10, 20]],
    [Q4S32, 30, 64, 1, 1, null, "add", [5, 13]],
    // Two rows on a group format; row counts that are not a multiple of 4 on the decode path.
    [Q3, 44, 100, 2, 2, "f16", "add"],
    [Q4, 42, 80, 1, 1, "f32", "silu_mul"],
    [F32, 37, 64, 1, 1, "f16", "none"],
    [F16, 22, 40, 1, 1, null, "silu_mul"],
    // K shorter than one group.
    [Q4, 24, 20, 5, 8, null, "none"],
    [Q3, 24, 30, 1, 1, null, "silu_mul"],
    // Prefill tiles: N, K and R each past one tile, none a multiple of 16.
    [Q4, 164, 288, 100, 128, "f16", "none"],
    [F16, 130, 200, 67, 128, null, "silu_mul"],
    // f16 scales in the subnormal range (tiny weights): must not be flushed to zero.
    [Q4, 40, 64, 1, 1, null, "none", undefined, 2e-5],
    [Q4, 40, 64, 9, 16, null, "none", undefined, 2e-5],
    // Decode-sized GEMV, a prefill past one 64-row block, a short silu_mul.
    [Q4, 256, 512, 1, 1, null, "none"],
    [F16, 128, 256, 2, 4, "f16", "silu_mul"],
    [Q4, 48, 96, 70, 128, null, "add"],
    [Q3, 34, 40, 3, 4, "f16", "silu_mul"],
  ];
  for (const [weight, N, K, R, maxRows, bias, epilogue, split, scaleMagnitude] of special) {
    const [rowStart, rows] = split ?? [0, N];
    out.push(
      matmulCase(rng, { weight, N, K, R, maxRows, bias, epilogue, rowStart, rows, scaleMagnitude }),
    );
  }
  // q8 activations: K a multiple of the 32-element block and not, shorter than one block, not
  // a multiple of 4; every epilogue, split weights, f32 scales, rows past one row block.
  const q8: Row[] = [
    [Q4, 40, 128, 1, 1, null, "none"],
    [Q4, 256, 512, 1, 1, "f16", "add"],
    [Q4, 42, 80, 3, 4, null, "silu_mul"],
    [Q4S32, 30, 96, 1, 1, "f32", "add", [5, 13]],
    [Q4, 72, 80, 13, 16, "f32", "add", [40, 32]],
    [Q4, 24, 20, 2, 2, null, "none"],
    [Q4, 34, 70, 5, 8, "f16", "silu_mul"],
    // prefill-sized (the tiled q8 shape): rows past a tile, K a part block, a row slice
    [Q4, 48, 96, 70, 128, "f16", "add"],
    [Q4, 70, 224, 40, 64, null, "silu_mul"],
    [Q4S32, 40, 100, 37, 64, "f32", "none", [5, 13]],
  ];
  for (const [weight, N, K, R, maxRows, bias, epilogue, split] of q8) {
    const [rowStart, rows] = split ?? [0, N];
    out.push(
      matmulCase(rng, { weight, N, K, R, maxRows, bias, epilogue, rowStart, rows, xq8: true }),
    );
  }
  // q8 with a folded RMSNorm, read (norm), written (normOut: N not a multiple of 4 too) or
  // both; f16 and f32 norm weights, ragged K, several rows, a bias, the add epilogue
  const folded: [Row, boolean, DenseDtype | null][] = [
    [[Q4, 40, 128, 1, 1, null, "none"], true, null],
    [[Q4, 42, 96, 1, 1, null, "silu_mul"], true, null],
    [[Q4, 30, 80, 3, 4, "f32", "add"], true, "f32"],
    [[Q4S32, 34, 70, 2, 2, "f16", "none"], false, "f16"],
    [[Q4, 256, 512, 1, 1, null, "add"], false, "f16"],
    [[Q4, 128, 256, 1, 1, null, "add"], true, "f32"],
  ];
  for (const [[weight, N, K, R, maxRows, bias, epilogue], norm, normOut] of folded) {
    out.push(matmulCase(rng, {
      weight,
      N,
      K,
      R,
      maxRows,
      bias,
      epilogue,
      xq8: true,
      norm,
      ...(normOut ? { normOut } : {}),
    }));
  }
  // unit-major rows: x read (with and without a folded norm, several rows), out written by
  // silu_mul (the q8 GEMV, the f32 GEMV and the tiled kernel) and by normOut
  const units: [Row, { norm?: boolean; normOut?: DenseDtype; xq8: boolean; x: boolean }][] = [
    [[Q4, 40, 128, 1, 1, null, "none"], { xq8: true, x: true }],
    [[Q4, 30, 96, 3, 4, "f32", "add"], { xq8: true, x: true, norm: true }],
    [[Q4, 128, 96, 1, 1, null, "silu_mul"], { xq8: true, x: true, norm: true }],
    [[Q4, 128, 80, 2, 2, "f16", "silu_mul"], { xq8: false, x: false }],
    [[Q4, 192, 40, 37, 64, null, "silu_mul"], { xq8: false, x: false }],
    [[Q4, 256, 512, 1, 1, null, "add"], { xq8: true, x: false, normOut: "f16" }],
    [[Q4, 128, 256, 3, 4, null, "add"], { xq8: true, x: true, norm: true, normOut: "f32" }],
  ];
  for (const [[weight, N, K, R, maxRows, bias, epilogue], u] of units) {
    out.push(matmulCase(rng, {
      weight,
      N,
      K,
      R,
      maxRows,
      bias,
      epilogue,
      xq8: u.xq8,
      norm: u.norm,
      xUnits: u.x,
      outUnits: epilogue === "silu_mul" || !!u.normOut,
      ...(u.normOut ? { normOut: u.normOut } : {}),
    }));
  }
  // K split across workgroups (batched decode's few-row weights): ranges of 96, 96 and 32; of
  // 32 each; and four ranges of 32 over K 96 (the last one empty).
  // With q8 activations (the few-rows kernel's packed-int8 form, x quantised a step at a time
  // by the workgroup): 3 ranges and 2.
  for (
    const [weight, N, K, R, maxRows, kSplit, xq8] of [
      [Q4, 70, 224, 5, 32, 3, false],
      [Q4, 130, 64, 17, 32, 2, false],
      [Q4S32, 40, 96, 9, 16, 4, false],
      [Q4, 70, 224, 19, 32, 3, true],
      [Q4, 130, 128, 16, 32, 2, true],
    ] as const
  ) {
    out.push(
      matmulCase(rng, { weight, N, K, R, maxRows, bias: null, epilogue: "none", kSplit, xq8 }),
    );
  }
  // x as quantize_q8 rows (`xCodes`): the few-rows kernel (several rows, silu_mul, K split),
  // the tiled q8 shape (prefill rows, a bias, add, a row slice); the products of given codes
  // need no q8 tolerance
  const codes: [MatmulShape, number][] = [
    [{ weight: Q4, N: 70, K: 192, R: 19, maxRows: 32, bias: null, epilogue: "silu_mul" }, 0],
    [{ weight: Q4S32, N: 130, K: 128, R: 9, maxRows: 16, bias: null, epilogue: "none" }, 2],
    [{ weight: Q4, N: 48, K: 128, R: 70, maxRows: 128, bias: "f16", epilogue: "add" }, 0],
    [{
      weight: Q4,
      N: 40,
      K: 64,
      R: 37,
      maxRows: 64,
      bias: "f32",
      epilogue: "none",
      rowStart: 5,
      rows: 13,
    }, 0],
  ];
  for (const [m, kSplit] of codes) {
    const c = matmulCase(rng, { ...m, xq8: true, xCodes: true, ...(kSplit ? { kSplit } : {}) });
    out.push({ ...c, tol: TOL.f32 });
  }
  // the q8 tiles' K split by the dispatch's rows (`kSplitRows` 96): 2 ranges at 40 rows, 1 at
  // 100 (the second partial not written: its sentinel stays)
  for (const R of [40, 100]) {
    const m: MatmulShape = {
      weight: Q4,
      N: 130,
      K: 320,
      R,
      maxRows: 128,
      bias: null,
      epilogue: "none",
    };
    const c = matmulCase(rng, { ...m, xq8: true, xCodes: true, kSplit: 2, kSplitRows: 96 });
    out.push({ ...c, tol: TOL.f32 });
  }
  // out written as quantize_q8 rows (`outCodes`, the few-rows kernel: batched gate_up): rows
  // past a 16-row block, a bias, blocks of the last column block past the end (I = 192 in
  // 64-column blocks; N = 192 in 128-column ones), 8-row blocks
  for (
    const m of [
      { weight: Q4, N: 256, K: 192, R: 19, maxRows: 32, bias: null, epilogue: "silu_mul" },
      { weight: Q4S32, N: 384, K: 128, R: 5, maxRows: 16, bias: "f16", epilogue: "silu_mul" },
      { weight: Q4, N: 192, K: 256, R: 9, maxRows: 16, bias: null, epilogue: "none" },
    ] as MatmulShape[]
  ) {
    out.push(matmulCase(rng, { ...m, xq8: true, xCodes: true, outCodes: true }));
  }
  // quantize_q8: blocks whose max is 127 x 2^e and whose other elements are multiples of
  // 2^(e-1) (so x * 127 / max is exact in f32 and float64: ties at .5 must go to even), a
  // block of zeros, negative maxima; compared bit for bit
  for (const [K, R] of [[64, 1], [192, 5], [128, 17]]) {
    const x = new Float32Array(R * K);
    for (let b = 0; b < R * K / 32; b++) {
      const e = (b % 5) - 2, zero = b % 7 === 3;
      for (let i = 0; i < 32; i++) {
        x[32 * b + i] = zero ? 0 : (Math.round(rng.normals(1, 60)[0] * 2) / 2) * 2 ** e;
        x[32 * b + i] = Math.max(-126.5 * 2 ** e, Math.min(126.5 * 2 ** e, x[32 * b + i]));
      }
      if (!zero) x[32 * b + (b % 32)] = (b % 2 ? -127 : 127) * 2 ** e;
    }
    out.push({
      name: `quantize_q8 K=${K} R=${R}`,
      spec: { op: "quantize_q8", K },
      rows: R,
      inputs: [padded(x), sentinel(R * q8RowWords(K))],
      tol: TOL.exact,
    });
  }
  return out;
}

/** Matmul cases, generated from `seed`. */
export function matmulCases(seed: number): ConformanceCase[] {
  return matmulCasesOf(new Rng(seed));
}
