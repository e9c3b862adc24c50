/**
 * Conformance cases of matmul: every weight format (dense f32/f16, q4 g32 with f16 and f32
 * scales, q3 g40), K that is and is not a multiple of the group, each bias dtype and epilogue,
 * split weights (rowStart > 0), R of 1 (GEMV), of a ragged 37, and past one tile in N, K and R,
 * row counts that are not a multiple of 4, and f16 scales in the subnormal range.
 * @module
 */
import type { DenseDtype, WeightFormat } from "../../compiler/codegen/contract.ts";
import { type ConformanceCase, TOL } from "./case.ts";
import { F16, F32, Q3, Q4, Q4S32, sentinel } from "./cases_dense.ts";
import { denseBuffer, formatLabel, padded, randomWeight, Rng } from "./helpers.ts";

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
  // Two rows (fused path) on a group format, and row counts that are not a multiple of 4 on the
  // decode path.
  out.push(
    matmulCase(rng, { weight: Q3, N: 44, K: 100, R: 2, maxRows: 2, bias: "f16", epilogue: "add" }),
  );
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

/** Matmul cases, generated from `seed`. */
export function matmulCases(seed: number): ConformanceCase[] {
  return matmulCasesOf(new Rng(seed));
}
