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
  const acc = (n: number, i: number, j: number) => `a${n}_${i}_${j}`;
  const stores: string[] = [];
  const decls: string[] = [];
  const fmas: string[] = [];
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      for (let n = 0; n < NW; n++) {
        decls.push(`var ${acc(n, i, j)} = 0.0;`);
        fmas.push(`${acc(n, i, j)} += x${i} * w${n}_${j};`);
      }
      stores.push(`if (r0 + ty + ${16 * i}u < R.x && c0 + tx + ${16 * j}u < ${OUT}u) {
    ${
        plan.store(
          `(r0 + ty + ${16 * i}u)`,
          `(c0 + tx + ${16 * j}u)`,
          acc(0, i, j),
          NW === 2 ? acc(1, i, j) : "",
        )
      }
  }`);
    }
  }
  const loadsX = [0, 1, 2, 3].map((i) => `let x${i} = xs[kk * ${BM}u + ty + ${16 * i}u];`);
  const loadsW: string[] = [];
  for (let n = 0; n < NW; n++) {
    for (let j = 0; j < 4; j++) {
      loadsW.push(`let w${n}_${j} = ws[kk * ${WS}u + ${n * BN + 16 * j}u + tx];`);
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
  ${decls.join(" ")}
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
      ${loadsX.join(" ")}
      ${loadsW.join("\n      ")}
      ${fmas.join("\n      ")}
    }
    workgroupBarrier();
  }
  ${stores.join("\n  ")}
}
`;
  return { code, entryPoint: "main", rowsPerGroup: BM, groupsPerRowBlock: blocks };
}
