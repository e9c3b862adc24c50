/**
 * Conformance cases of the row-wise kernels: embed, dequantize, norms, add, silu_mul (matmul is in
 * `cases_matmul.ts`).
 * Every weight format (dense f32/f16, q4 g32 with f16 and f32 scales, q3 g40), hidden sizes that
 * are not a multiple of the group, split tables (rowStart > 0), and R of 1 and ragged counts.
 * @module
 */
import { type DenseDtype, q8RowWords, type WeightFormat } from "../../compiler/codegen/contract.ts";
import { type ConformanceCase, TOL } from "./case.ts";
import { denseBuffer, formatLabel, padded, randomWeight, Rng, unwritten } from "./helpers.ts";

export const F32: WeightFormat = { kind: "dense", dtype: "f32" };
export const F16: WeightFormat = { kind: "dense", dtype: "f16" };
export const Q4: WeightFormat = { kind: "group", bits: 4, groupSize: 32, scaleDtype: "f16" };
export const Q4S32: WeightFormat = { kind: "group", bits: 4, groupSize: 32, scaleDtype: "f32" };
export const Q3: WeightFormat = { kind: "group", bits: 3, groupSize: 40, scaleDtype: "f16" };

/** Work tolerance of decoding a weight: f16/f32 is exact, group decode is one multiply. */
const decodeTol = (f: WeightFormat) => (f.kind === "dense" ? TOL.exact : TOL.oneRounding);

/** A starting output buffer of n f32 values filled with a sentinel pattern. */
export function sentinel(n: number): ArrayBuffer {
  const v = new Float32Array(n); // [n]
  for (let i = 0; i < n; i++) v[i] = -1000 - (i % 97);
  return padded(v);
}

function embedCases(rng: Rng): ConformanceCase[] {
  // with normOut (the first layer's norm folded in; its weight's dtype, unit-major rows or not)
  type Norm = { dtype: DenseDtype; units: boolean };
  const table: [WeightFormat, number, number, number, number, number, Norm?][] = [
    // format, vocab, hidden, rowStart, rows, R
    [F32, 50, 64, 0, 50, 7],
    [F16, 50, 48, 0, 50, 37],
    [Q4, 60, 80, 0, 60, 5], // hidden not a multiple of 32
    [Q4S32, 40, 64, 0, 40, 1],
    [Q3, 45, 100, 0, 45, 9], // hidden not a multiple of 40
    [F16, 50, 48, 20, 30, 23], // split: ids outside [20, 50) leave rows untouched
    [Q4, 64, 96, 32, 32, 16],
    [Q3, 30, 120, 10, 12, 11],
    [Q4, 60, 64, 0, 60, 5, { dtype: "f16", units: true }],
    [Q4, 64, 96, 32, 32, 16, { dtype: "f16", units: true }], // split, unit-major
    [F32, 50, 66, 0, 50, 7, { dtype: "f32", units: false }], // a ragged last chunk of 4
    [Q3, 30, 120, 10, 12, 11, { dtype: "f16", units: false }],
  ];
  return table.map(([weight, vocab, hidden, rowStart, rows, R, norm]) => {
    const ids = new Uint32Array(R); // [R]
    for (let r = 0; r < R; r++) ids[r] = rng.int(vocab);
    ids[0] = rowStart; // first and last rows of the table are always exercised
    if (R > 1) ids[R - 1] = rowStart + rows - 1;
    const normOut = norm ? { normOut: { weightDtype: norm.dtype }, outUnits: norm.units } : {};
    const C = Math.ceil(hidden / 4);
    return {
      name: `embed ${formatLabel(weight)} vocab=${vocab} H=${hidden} rows=[${rowStart},${
        rowStart + rows
      }) R=${R}${norm ? ` normOut=${norm.dtype}${norm.units ? " outUnits" : ""}` : ""}`,
      spec: { op: "embed", vocab, hidden, rowStart, rows, weight, ...normOut },
      rows: R,
      inputs: [
        padded(ids),
        ...randomWeight(rng, weight, rows, hidden),
        ...(norm ? [denseBuffer(rng.normals(hidden, 0.5), norm.dtype)] : []),
        sentinel(R * hidden),
        ...(norm ? [sentinel(R * hidden), sentinel(R * C)] : []),
      ],
      tol: decodeTol(weight),
      // (out_w: one more rounding; out_ssq: a sum of 4 squares, a few)
      ...(norm ? { tols: { out_w: TOL.oneRounding, out_ssq: TOL.oneRounding } } : {}),
    };
  });
}

function dequantizeCases(rng: Rng): ConformanceCase[] {
  const table: [WeightFormat, number, number][] = [
    [Q4, 24, 80],
    [Q4S32, 16, 128],
    [Q3, 20, 100],
    [Q3, 8, 120],
    [F16, 12, 72],
    [Q4, 6, 20], // K shorter than one group
    [Q3, 5, 25],
  ];
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
    [8, 1e-5, "f32", 70000, 1], // more rows than 65535 workgroups: a 2-D grid
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
  // b as a kSplit matmul's partial sums (a folded sum_splits) and out as quantize_q8 rows:
  // blocks one a thread, fewer blocks than threads, two a thread
  const folded: [number, number, number, boolean, DenseDtype][] = [
    // hidden, R, splits (0: none), outCodes, w dtype
    [100, 3, 3, false, "f16"],
    [1000, 2, 2, false, "f32"],
    [64, 3, 0, true, "f32"],
    [640, 5, 4, true, "f16"],
    [4096, 2, 4, true, "f32"],
    [16384, 1, 2, true, "f16"],
  ];
  for (const [hidden, R, splits, outCodes, weightDtype] of folded) {
    const w = denseBuffer(new Float32Array(hidden).map(() => 1 + 0.2 * rng.normal()), weightDtype);
    const outLen = R * (outCodes ? q8RowWords(hidden) : hidden);
    const what = `H=${hidden}${splits ? ` splits=${splits}` : ""}${outCodes ? " outCodes" : ""}`;
    const tol = outCodes ? TOL.q8Written : TOL.f32;
    if (!splits) {
      out.push({
        name: `rms_norm ${what} w=${weightDtype} R=${R}`,
        spec: { op: "rms_norm", hidden, eps: 1e-5, weightDtype, outCodes },
        rows: R,
        inputs: [padded(rng.normals(R * hidden, 2)), w, sentinel(outLen)],
        tol,
      });
    }
    // with splits, also the dispatch's first splits only (`splitRows`: S_R = splits - 1, the
    // last partial of each row NaN, as a kSplitRows matmul leaves it unwritten)
    for (const splitRows of splits ? [undefined, (splits - 1) * R] : [undefined]) {
      out.push({
        name: `add_rms_norm ${what}${
          splitRows ? ` splitRows=${splitRows}` : ""
        } w=${weightDtype} R=${R}`,
        spec: {
          op: "add_rms_norm",
          hidden,
          eps: 1e-5,
          weightDtype,
          ...(outCodes ? { outCodes } : {}),
          ...(splits ? { splits } : {}),
          ...(splitRows ? { splitRows } : {}),
        },
        rows: R,
        inputs: [
          padded(rng.normals(R * hidden, 2)),
          padded(
            unwritten(rng.normals(R * hidden * Math.max(1, splits)), R, splits, hidden, splitRows),
          ),
          w,
          sentinel(R * hidden),
          sentinel(outLen),
        ],
        tol,
      });
    }
  }
  return out;
}

function elementwiseCases(rng: Rng): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  for (const [width, R] of [[64, 1], [100, 37], [7, 3], [4, 70000]]) {
    out.push({
      name: `add width=${width} R=${R}`,
      spec: { op: "add", width },
      rows: R,
      inputs: [padded(rng.normals(R * width)), padded(rng.normals(R * width)), sentinel(R * width)],
      tol: TOL.oneRounding,
    });
  }
  // (splitRows: the dispatch's first clamp(floor(splitRows / R), 1, splits) partials only,
  // the others NaN: 2 of 4 at 5 rows, 3 of 4 at 3, 1 of 3 at 17)
  for (
    const [width, splits, bias, residual, R, splitRows] of [
      [70, 3, "f16", true, 5, undefined],
      [33, 2, null, false, 17, undefined],
      [130, 4, "f32", false, 1, undefined],
      [64, 2, null, true, 32, undefined],
      [70, 4, "f16", true, 5, 10],
      [130, 4, null, false, 3, 10],
      [33, 3, "f32", true, 17, 10],
    ] as const
  ) {
    const inputs = [
      padded(unwritten(rng.normals(R * splits * width), R, splits, width, splitRows)),
    ];
    if (bias) inputs.push(denseBuffer(rng.normals(width, 0.5), bias));
    if (residual) inputs.push(padded(rng.normals(R * width)));
    inputs.push(sentinel(R * width));
    out.push({
      name: `sum_splits width=${width} splits=${splits}${
        splitRows ? ` splitRows=${splitRows}` : ""
      } bias=${bias ?? "none"} residual=${residual} R=${R}`,
      spec: {
        op: "sum_splits",
        width,
        splits,
        bias,
        residual,
        ...(splitRows ? { splitRows } : {}),
      },
      rows: R,
      inputs,
      tol: TOL.oneRounding * (splits + 1), // one f32 rounding an addition
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
    ...dequantizeCases(rng),
    ...normCases(rng),
    ...elementwiseCases(rng),
  ];
}
