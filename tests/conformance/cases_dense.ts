/**
 * Conformance cases of the row-wise kernels: embed, matmul, dequantize, norms, add, silu_mul.
 * Every weight format (dense f32/f16, q4 g32 with f16 and f32 scales, q3 g40), K that is and is
 * not a multiple of the group, each bias dtype and epilogue, split tables (rowStart > 0), and
 * R of 1, of a ragged 37 and past one 64-row block.
 * @module
 */
import type { DenseDtype, WeightFormat } from "../../compiler/codegen/contract.ts";
import { type ConformanceCase, TOL } from "./case.ts";
import { denseBuffer, formatLabel, padded, randomWeight, Rng } from "./helpers.ts";

const F32: WeightFormat = { kind: "dense", dtype: "f32" };
const F16: WeightFormat = { kind: "dense", dtype: "f16" };
const Q4: WeightFormat = { kind: "group", bits: 4, groupSize: 32, scaleDtype: "f16" };
const Q4S32: WeightFormat = { kind: "group", bits: 4, groupSize: 32, scaleDtype: "f32" };
const Q3: WeightFormat = { kind: "group", bits: 3, groupSize: 40, scaleDtype: "f16" };

/** Work tolerance of decoding a weight: f16/f32 is exact, group decode is one multiply. */
const decodeTol = (f: WeightFormat) => (f.kind === "dense" ? TOL.exact : TOL.oneRounding);

/** A starting output buffer of n f32 values filled with a sentinel pattern. */
function sentinel(n: number): ArrayBuffer {
  const v = new Float32Array(n); // [n]
  for (let i = 0; i < n; i++) v[i] = -1000 - (i % 97);
  return padded(v);
}

function embedCases(rng: Rng): ConformanceCase[] {
  const table: [WeightFormat, number, number, number, number, number][] = [
    // format, vocab, hidden, rowStart, rows, R
    [F32, 50, 64, 0, 50, 7],
    [F16, 50, 48, 0, 50, 37],
    [Q4, 60, 80, 0, 60, 5], // hidden not a multiple of 32
    [Q4S32, 40, 64, 0, 40, 1],
    [Q3, 45, 100, 0, 45, 9], // hidden not a multiple of 40
    [F16, 50, 48, 20, 30, 23], // split: ids outside [20, 50) leave rows untouched
    [Q4, 64, 96, 32, 32, 16],
    [Q3, 30, 120, 10, 12, 11],
  ];
  return table.map(([weight, vocab, hidden, rowStart, rows, R]) => {
    const ids = new Uint32Array(R); // [R]
    for (let r = 0; r < R; r++) ids[r] = rng.int(vocab);
    ids[0] = rowStart; // first and last rows of the table are always exercised
    if (R > 1) ids[R - 1] = rowStart + rows - 1;
    return {
      name: `embed ${formatLabel(weight)} vocab=${vocab} H=${hidden} rows=[${rowStart},${
        rowStart + rows
      }) R=${R}`,
      spec: { op: "embed", vocab, hidden, rowStart, rows, weight },
      rows: R,
      inputs: [padded(ids), ...randomWeight(rng, weight, rows, hidden), sentinel(R * hidden)],
      tol: decodeTol(weight),
    };
  });
}

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
}

function matmulCase(rng: Rng, m: MatmulShape): ConformanceCase {
  const rowStart = m.rowStart ?? 0, rows = m.rows ?? m.N;
  const outWidth = m.epilogue === "silu_mul" ? m.N / 2 : m.N;
  const inputs = [
    padded(rng.normals(m.R * m.K)),
    ...randomWeight(rng, m.weight, rows, m.K, m.scaleMagnitude),
  ];
  if (m.bias) inputs.push(denseBuffer(rng.normals(m.N, 0.5), m.bias));
  if (m.epilogue === "add") inputs.push(padded(rng.normals(m.R * m.N)));
  inputs.push(sentinel(m.R * outWidth));
  const split = (rows !== m.N ? ` rows=[${rowStart},${rowStart + rows})` : "") +
    (m.scaleMagnitude ? ` scales~${m.scaleMagnitude}` : "");
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
    },
    rows: m.R,
    inputs,
    tol: TOL.f32,
  };
}

function matmulCases(rng: Rng): ConformanceCase[] {
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
  // Split weights: this kernel computes output columns [rowStart, rowStart + rows) only.
  out.push(
    matmulCase(rng, {
      weight: F16,
      N: 64,
      K: 64,
      R: 5,
      maxRows: 8,
      bias: "f16",
      epilogue: "none",
      rowStart: 16,
      rows: 24,
    }),
  );
  out.push(
    matmulCase(rng, {
      weight: Q4,
      N: 72,
      K: 80,
      R: 37,
      maxRows: 64,
      bias: "f32",
      epilogue: "add",
      rowStart: 40,
      rows: 32,
    }),
  );
  out.push(
    matmulCase(rng, {
      weight: Q3,
      N: 50,
      K: 100,
      R: 1,
      maxRows: 1,
      bias: null,
      epilogue: "none",
      rowStart: 10,
      rows: 20,
    }),
  );
  // Row counts that are not a multiple of 4 on the decode (R = 1) path.
  out.push(
    matmulCase(rng, {
      weight: Q4,
      N: 42,
      K: 80,
      R: 1,
      maxRows: 1,
      bias: "f32",
      epilogue: "silu_mul",
    }),
  );
  out.push(
    matmulCase(rng, { weight: F32, N: 37, K: 64, R: 1, maxRows: 1, bias: "f16", epilogue: "none" }),
  );
  out.push(
    matmulCase(rng, {
      weight: Q4S32,
      N: 30,
      K: 64,
      R: 1,
      maxRows: 1,
      bias: null,
      epilogue: "add",
      rowStart: 5,
      rows: 13,
    }),
  );
  out.push(
    matmulCase(rng, {
      weight: F16,
      N: 22,
      K: 40,
      R: 1,
      maxRows: 1,
      bias: null,
      epilogue: "silu_mul",
    }),
  );
  // Prefill tiles: N, K and R each past one tile, none a multiple of 16.
  out.push(
    matmulCase(rng, {
      weight: Q4,
      N: 164,
      K: 288,
      R: 100,
      maxRows: 128,
      bias: "f16",
      epilogue: "none",
    }),
  );
  out.push(
    matmulCase(rng, {
      weight: F16,
      N: 130,
      K: 200,
      R: 67,
      maxRows: 128,
      bias: null,
      epilogue: "silu_mul",
    }),
  );
  // f16 scales in the subnormal range (tiny weights): must not be flushed to zero.
  out.push(
    matmulCase(rng, {
      weight: Q4,
      N: 40,
      K: 64,
      R: 1,
      maxRows: 1,
      bias: null,
      epilogue: "none",
      scaleMagnitude: 2e-5,
    }),
  );
  out.push(
    matmulCase(rng, {
      weight: Q4,
      N: 40,
      K: 64,
      R: 9,
      maxRows: 16,
      bias: null,
      epilogue: "none",
      scaleMagnitude: 2e-5,
    }),
  );
  // Decode-sized GEMV and a prefill past one 64-row block.
  out.push(
    matmulCase(rng, { weight: Q4, N: 256, K: 512, R: 1, maxRows: 1, bias: null, epilogue: "none" }),
  );
  out.push(
    matmulCase(rng, {
      weight: F16,
      N: 128,
      K: 256,
      R: 2,
      maxRows: 4,
      bias: "f16",
      epilogue: "silu_mul",
    }),
  );
  out.push(
    matmulCase(rng, { weight: Q4, N: 48, K: 96, R: 70, maxRows: 128, bias: null, epilogue: "add" }),
  );
  out.push(
    matmulCase(rng, {
      weight: Q3,
      N: 34,
      K: 40,
      R: 3,
      maxRows: 4,
      bias: "f16",
      epilogue: "silu_mul",
    }),
  );
  return out;
}

function dequantizeCases(rng: Rng): ConformanceCase[] {
  const table: [WeightFormat, number, number][] = [[Q4, 24, 80], [Q4S32, 16, 128], [Q3, 20, 100], [
    Q3,
    8,
    120,
  ], [F16, 12, 72]];
  return table.map(([weight, N, K]) => ({
    name: `dequantize ${formatLabel(weight)} N=${N} K=${K}`,
    spec: { op: "dequantize", N, K, weight },
    rows: N,
    inputs: [...randomWeight(rng, weight, N, K), sentinel(N * K)],
    tol: decodeTol(weight),
  }));
}

function normCases(rng: Rng): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  const table: [number, number, DenseDtype, number, number][] = [
    // hidden, eps, w dtype, R, x scale (the small one makes eps matter)
    [64, 1e-5, "f32", 1, 3],
    [96, 1e-6, "f16", 37, 3],
    [100, 1e-5, "f16", 5, 3],
    [256, 1e-6, "f32", 3, 3],
    [64, 1e-5, "f32", 4, 0.003],
    [1000, 1e-5, "f16", 2, 1], // wider than one workgroup
  ];
  for (const [hidden, eps, weightDtype, R, scale] of table) {
    const w = new Float32Array(hidden).map(() => 1 + 0.2 * rng.normal()); // [H]
    out.push({
      name: `rms_norm H=${hidden} eps=${eps} w=${weightDtype} |x|~${scale} R=${R}`,
      spec: { op: "rms_norm", hidden, eps, weightDtype },
      rows: R,
      inputs: [
        padded(rng.normals(R * hidden, scale)),
        denseBuffer(w, weightDtype),
        sentinel(R * hidden),
      ],
      tol: TOL.f32,
    });
    out.push({
      name: `add_rms_norm H=${hidden} eps=${eps} w=${weightDtype} |x|~${scale} R=${R}`,
      spec: { op: "add_rms_norm", hidden, eps, weightDtype },
      rows: R,
      inputs: [
        padded(rng.normals(R * hidden, scale)),
        padded(rng.normals(R * hidden, scale)),
        denseBuffer(w, weightDtype),
        sentinel(R * hidden),
        sentinel(R * hidden),
      ],
      tol: TOL.f32,
    });
  }
  return out;
}

function elementwiseCases(rng: Rng): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  for (const [width, R] of [[64, 1], [100, 37], [7, 3]]) {
    out.push({
      name: `add width=${width} R=${R}`,
      spec: { op: "add", width },
      rows: R,
      inputs: [padded(rng.normals(R * width)), padded(rng.normals(R * width)), sentinel(R * width)],
      tol: TOL.oneRounding,
    });
  }
  for (const [inter, R] of [[64, 1], [88, 37], [5, 2]]) {
    out.push({
      name: `silu_mul inter=${inter} R=${R}`,
      spec: { op: "silu_mul", inter },
      rows: R,
      inputs: [padded(rng.normals(R * 2 * inter, 3)), sentinel(R * inter)],
      tol: TOL.f32,
    });
  }
  return out;
}

/** Cases of the row-wise kernels, generated from `seed`. */
export function denseCases(seed: number): ConformanceCase[] {
  const rng = new Rng(seed);
  return [
    ...embedCases(rng),
    ...matmulCases(rng),
    ...dequantizeCases(rng),
    ...normCases(rng),
    ...elementwiseCases(rng),
  ];
}
