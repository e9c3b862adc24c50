/**
 * The tiled matmul shape (prefill): a workgroup of 16x16 threads computes a 64-row x 64-column
 * output tile, staging 16-wide K slices of x and of the dequantised weight rows in workgroup
 * memory; each thread accumulates 4x4 outputs (x2 for silu_mul's gate and up) in f32.
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

const BM = 64;
const BN = 64;
const BK = 16;
const T = 256;

/** WGSL for a tiled `matmul`. */
export function matmulTiled(spec: MatmulSpec, target: TargetInfo): WgslKernel {
  const plan = matmulPlan(spec);
  const NW = plan.weightRowsPerOut;
  const K = spec.K;
  const OUT = plan.outCols;
  const WS = NW * BN; // weight rows staged per tile
  checkTarget(spec, target, {
    workgroupSize: T,
    sharedBytes: 4 * BK * (BM + WS),
    largestBinding: weightBindingBytes(spec.weight, spec.rows, K),
  });
  const blocks = Math.ceil(OUT / BN);
  const wrow = NW === 2 ? `select(${OUT}u + c0 + n - ${BN}u, c0 + n, n < ${BN}u)` : "c0 + n";
  const stores: string[] = [];
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      const a1 = NW === 2 ? `acc[${16 + i * 4 + j}]` : "";
      stores.push(`{
    let r = r0 + ty + ${16 * i}u;
    let c = c0 + tx + ${16 * j}u;
    if (r < R.x && c < ${OUT}u) { ${plan.store("r", "c", `acc[${i * 4 + j}]`, a1)} }
  }`);
    }
  }
  const code = `${declareBindings(spec, plan.types)}
${weightReader(spec.weight, K)}
${plan.prelude}
var<workgroup> xs: array<f32, ${BK * BM}>; // [BK, BM]
var<workgroup> ws: array<f32, ${BK * WS}>; // [BK, WS]

${entry(T, totalGroups(BM, blocks))}
  let r0 = (wg / ${blocks}u) * ${BM}u;
  let c0 = (wg % ${blocks}u) * ${BN}u;
  let ty = lid / 16u;
  let tx = lid % 16u;
  var acc: array<f32, ${16 * NW}>;
  for (var k0 = 0u; k0 < ${K}u; k0 += ${BK}u) {
    for (var i = lid; i < ${BM * BK}u; i += ${T}u) {
      let m = i / ${BK}u;
      let k = k0 + i % ${BK}u;
      let r = r0 + m;
      var v = 0.0;
      if (r < R.x && k < ${K}u) { v = x[r * ${K}u + k]; }
      xs[(i % ${BK}u) * ${BM}u + m] = v;
    }
    for (var i = lid; i < ${WS * BK}u; i += ${T}u) {
      let n = i / ${BK}u;
      let k = k0 + i % ${BK}u;
      var v = 0.0;
      if (c0 + n % ${BN}u < ${OUT}u && k < ${K}u) { v = w_at(${wrow}, k); }
      ws[(i % ${BK}u) * ${WS}u + n] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
      var a: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { a[i] = xs[kk * ${BM}u + ty + 16u * i]; }
      for (var j = 0u; j < 4u; j++) {
        let b = ws[kk * ${WS}u + tx + 16u * j];
        ${NW === 2 ? `let b2 = ws[kk * ${WS}u + ${BN}u + tx + 16u * j];` : ""}
        for (var i = 0u; i < 4u; i++) {
          acc[i * 4u + j] += a[i] * b;
          ${NW === 2 ? "acc[16u + i * 4u + j] += a[i] * b2;" : ""}
        }
      }
    }
    workgroupBarrier();
  }
  ${stores.join("\n  ")}
}
`;
  return { code, entryPoint: "main", rowsPerGroup: BM, groupsPerRowBlock: blocks };
}
