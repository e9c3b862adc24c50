/**
 * The tiled matmul shape (prefill): a workgroup of 16x16 threads computes a 128-row tile of x
 * against 128 staged weight rows (128 output columns, or 64 for silu_mul: their gate and up
 * rows), staging 16-wide K slices of x and of the dequantised weight in workgroup memory.
 * Each thread accumulates 8 rows x 8 weight rows in f32 registers, reading its operands from
 * workgroup memory as vec4s (rows ty*4.. and 64+ty*4.., weight rows tx*4.. and 64+tx*4..);
 * the next K slice is loaded into registers while the current one is multiplied.
 * @module
 */
import type { TargetInfo, WgslKernel } from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  entry,
  totalGroups,
  weightBindingBytes,
  weightReader,
} from "./common.ts";
import { matmulPlan, type MatmulSpec } from "./matmul_epilogue.ts";

const BM = 128; // x rows per workgroup
const WS = 128; // weight rows staged per workgroup
const BK = 16;
const T = 256;
/** Padding of a staged K slice's stride (floats), against bank conflicts, where storage allows. */
const PAD = 4;

/** WGSL for a tiled `matmul`. */
export function matmulTiled(spec: MatmulSpec, target: TargetInfo): WgslKernel {
  const plan = matmulPlan(spec);
  const silu = plan.weightRowsPerOut === 2;
  const K = spec.K;
  const OUT = plan.outCols;
  const BN = silu ? WS / 2 : WS; // output columns per workgroup
  // the padded strides need 16.5 KiB of workgroup storage; the WebGPU default limit is 16 KiB
  const pad = 4 * BK * (BM + WS + 2 * PAD) <= target.limits.maxComputeWorkgroupStorageSize
    ? PAD
    : 0;
  const XP = BM + pad; // stride of a staged K slice of x (floats)
  const WP = WS + pad; // and of the weight
  checkTarget(spec, target, {
    workgroupSize: T,
    sharedBytes: 4 * BK * (XP + WP),
    largestBinding: weightBindingBytes(spec.weight, spec.rows, K),
  });
  const blocks = Math.ceil(OUT / BN);
  // Thread-local rows i (0..8) and weight rows j (0..8) as tile offsets.
  const rowOff = (i: number) => `${(i >> 2) * 64 + (i & 3)}u + ty * 4u`;
  const colOff = (j: number) => `${(j >> 2) * 64 + (j & 3)}u + tx * 4u`;
  const lane = ["x", "y", "z", "w"];
  const acc = (i: number, j: number) => `a${i}_${j}`;
  const decls: string[] = [];
  const fmas: string[] = [];
  for (let i = 0; i < 8; i++) {
    for (let j = 0; j < 8; j++) {
      decls.push(`var ${acc(i, j)} = 0.0;`);
      fmas.push(
        `${acc(i, j)} = fma(xa${i >> 2}.${lane[i & 3]}, wb${j >> 2}.${lane[j & 3]}, ${acc(i, j)});`,
      );
    }
  }
  const stores: string[] = [];
  for (let i = 0; i < 8; i++) {
    const r = `(r0 + ${rowOff(i)})`;
    const cols = silu ? 4 : 8;
    for (let j = 0; j < cols; j++) {
      const c = `(c0 + ${colOff(j)})`;
      stores.push(
        `if (${r} < R.x && ${c} < ${OUT}u) { ${
          plan.store(r, c, acc(i, j), silu ? acc(i, j + 4) : "")
        } }`,
      );
    }
  }
  // Staging: thread (kk = lid % 16, q = lid / 16) holds x rows / weight rows 4 * (q + 16e) + l
  // (e < 2, l < 4) at k0 + kk in registers, prefetched a K slice ahead, and stores each four
  // as one vec4 (conflict-free: the padded stride is 33 vec4s).
  const loads: string[] = [];
  const storesX: string[] = [];
  for (let e = 0; e < 2; e++) {
    for (let l = 0; l < 4; l++) {
      const v = 4 * e + l;
      const m = `(4u * (q + ${16 * e}u) + ${l}u)`;
      loads.push(
        `px${v} = 0.0; if (r0 + ${m} < R.x && k < ${K}u) { px${v} = x[(r0 + ${m}) * ${K}u + k]; }`,
      );
      const n = m;
      const col = silu ? `(${n} % ${BN}u)` : n;
      const row = silu
        ? `select(c0 + ${n}, ${OUT}u + c0 + ${n} - ${BN}u, ${n} >= ${BN}u)`
        : `c0 + ${n}`;
      loads.push(
        `pw${v} = 0.0; if (c0 + ${col} < ${OUT}u && k < ${K}u) { pw${v} = w_at(${row}, k); }`,
      );
    }
    const xsv = [0, 1, 2, 3].map((l) => `px${4 * e + l}`).join(", ");
    const wsv = [0, 1, 2, 3].map((l) => `pw${4 * e + l}`).join(", ");
    storesX.push(`xs[kk * ${XP / 4}u + q + ${16 * e}u] = vec4<f32>(${xsv});`);
    storesX.push(`ws[kk * ${WP / 4}u + q + ${16 * e}u] = vec4<f32>(${wsv});`);
  }
  const load = (k0: string) =>
    `{
      let k = ${k0} + kk;
      ${loads.join("\n      ")}
    }`;
  const regs = Array.from({ length: 8 }, (_, v) => `var px${v} = 0.0; var pw${v} = 0.0;`);
  const code = `${declareBindings(spec, plan.types)}
${weightReader(spec.weight, K)}
${plan.prelude}
var<workgroup> xs: array<vec4<f32>, ${(BK * XP) / 4}>; // [BK, XP]
var<workgroup> ws: array<vec4<f32>, ${(BK * WP) / 4}>; // [BK, WP]

${entry(T, totalGroups(BM, blocks))}
  let r0 = (wg / ${blocks}u) * ${BM}u;
  let c0 = (wg % ${blocks}u) * ${BN}u;
  let ty = lid / 16u;
  let tx = lid % 16u;
  let kk = lid % ${BK}u;
  let q = lid / ${BK}u;
  ${decls.join(" ")}
  ${regs.join(" ")}
  ${load("0u")}
  for (var k0 = 0u; k0 < ${K}u; k0 += ${BK}u) {
    ${storesX.join("\n    ")}
    workgroupBarrier();
    if (k0 + ${BK}u < ${K}u) ${load(`(k0 + ${BK}u)`)}
    for (var j = 0u; j < ${BK}u; j++) {
      let xa0 = xs[j * ${XP / 4}u + ty];
      let xa1 = xs[j * ${XP / 4}u + 16u + ty];
      let wb0 = ws[j * ${WP / 4}u + tx];
      let wb1 = ws[j * ${WP / 4}u + 16u + tx];
      ${fmas.join("\n      ")}
    }
    workgroupBarrier();
  }
  ${stores.join("\n  ")}
}
`;
  return { code, entryPoint: "main", rowsPerGroup: BM, groupsPerRowBlock: blocks };
}
