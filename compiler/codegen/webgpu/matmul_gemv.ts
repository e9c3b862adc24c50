/**
 * The GEMV matmul shape (decode, few rows): each workgroup computes `COLS` output columns for
 * up to 4 rows of x. The threads of a column split K and read the weight in wide units (a
 * vec4<u32> of packed codes, or a vec4 of dense values) so each weight byte is read once per
 * row block; partial sums meet in workgroup memory.
 * @module
 */
import { groupLayout, type TargetInfo, type WeightFormat, type WgslKernel } from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  denseReader,
  entry,
  pow2Floor,
  reductionThreads,
  totalGroups,
  weightBindingBytes,
} from "./common.ts";
import { matmulPlan, type MatmulSpec } from "./matmul_epilogue.ts";

interface Unit {
  /** Weight elements per unit. */
  elems: number;
  /** Units per weight row (covering the padded K for group formats). */
  units: number;
  types: Record<string, string>;
  /** `fn load_unit(c: u32, u: u32) -> array<f32, elems>` and what it needs. */
  code: string;
}

/** How a row of a weight in format `w` is read, one wide unit at a time. */
function weightUnit(w: WeightFormat, K: number): Unit {
  const fn = (elems: number, body: string) =>
    `fn load_unit(c: u32, u: u32) -> array<f32, ${elems}> {
  var o: array<f32, ${elems}>;
  ${body}
  return o;
}`;
  if (w.kind === "group") {
    const g = groupLayout(w, K);
    const E = g.elemsPerWord;
    const mask = (1 << w.bits) - 1;
    const wide = g.wordsPerRow % 4 === 0 && w.groupSize % (4 * E) === 0;
    const words = wide ? 4 : 1;
    const elems = words * E;
    const decode = (word: string, at: string) =>
      `for (var e = 0u; e < ${E}u; e++) {
    o[${at} + e] = (f32((${word} >> (e * ${w.bits}u)) & ${mask}u) - ${g.maxInt}.0) * s;
  }`;
    const load = wide
      ? `let q = q_weight[c * ${g.wordsPerRow / 4}u + u];
  for (var j = 0u; j < 4u; j++) {
  ${decode("q[j]", `j * ${E}u`)}
  }`
      : `let q = q_weight[c * ${g.wordsPerRow}u + u];
  ${decode("q", "0u")}`;
    return {
      elems,
      units: g.wordsPerRow / words,
      types: { q_weight: wide ? "array<vec4<u32>>" : "array<u32>" },
      code: `${denseReader("q_scale", w.scaleDtype)}
${
        fn(
          elems,
          `let s = q_scale_at(c * ${g.groups}u + (u * ${elems}u) / ${w.groupSize}u);\n  ${load}`,
        )
      }`,
    };
  }
  if (w.dtype === "f32") {
    if (K % 4 === 0) {
      return {
        elems: 4,
        units: K / 4,
        types: { weight: "array<vec4<f32>>" },
        code: fn(
          4,
          `let v = weight[c * ${K / 4}u + u];\n  o[0] = v.x; o[1] = v.y; o[2] = v.z; o[3] = v.w;`,
        ),
      };
    }
    return {
      elems: 1,
      units: K,
      types: { weight: "array<f32>" },
      code: fn(1, `o[0] = weight[c * ${K}u + u];`),
    };
  }
  if (K % 8 === 0) {
    return {
      elems: 8,
      units: K / 8,
      types: { weight: "array<vec4<u32>>" },
      code: fn(
        8,
        `let v = weight[c * ${K / 8}u + u];
  for (var j = 0u; j < 4u; j++) { let h = unpack2x16float(v[j]); o[2u * j] = h.x; o[2u * j + 1u] = h.y; }`,
      ),
    };
  }
  if (K % 2 === 0) {
    return {
      elems: 2,
      units: K / 2,
      types: { weight: "array<u32>" },
      code: fn(2, `let h = unpack2x16float(weight[c * ${K / 2}u + u]);\n  o[0] = h.x; o[1] = h.y;`),
    };
  }
  return {
    elems: 1,
    units: K,
    types: { weight: "array<u32>" },
    code: `${denseReader("weight", "f16")}
${fn(1, `o[0] = weight_at(c * ${K}u + u);`)}`,
  };
}

/** WGSL for a GEMV-shaped `matmul` (best for R <= 4; correct for any R). */
export function matmulGemv(spec: MatmulSpec, target: TargetInfo): WgslKernel {
  const plan = matmulPlan(spec);
  const K = spec.K;
  const NW = plan.weightRowsPerOut;
  const OUT = plan.outCols;
  const unit = weightUnit(spec.weight, K);
  const UE = unit.elems;
  const RB = Math.max(1, Math.min(spec.maxRows, 4));
  const A = RB * NW;
  const T = reductionThreads(target, 256);
  const TPC = Math.min(32, T, 2 ** Math.ceil(Math.log2(unit.units)));
  const COLS = pow2Floor(T / TPC);
  checkTarget(spec, target, {
    workgroupSize: T,
    sharedBytes: 4 * A * T,
    largestBinding: weightBindingBytes(spec.weight, spec.rows, K),
  });
  const blocks = Math.ceil(OUT / COLS);
  const guard = unit.units * UE > K;
  const xAt = guard
    ? `select(0.0, x[xb + min(k0 + e, ${K - 1}u)], k0 + e < ${K}u)`
    : `x[xb + k0 + e]`;
  const code = `${declareBindings(spec, { ...plan.types, ...unit.types })}
${unit.code}
${plan.prelude}
var<workgroup> red: array<f32, ${A * T}>; // [A, T]

${entry(T, totalGroups(RB, blocks))}
  let r0 = (wg / ${blocks}u) * ${RB}u;
  let t = lid % ${TPC}u;
  let col = (wg % ${blocks}u) * ${COLS}u + lid / ${TPC}u;
  var acc: array<f32, ${A}>;
  if (col < ${OUT}u && lid < ${COLS * TPC}u) {
    for (var u = t; u < ${unit.units}u; u += ${TPC}u) {
      let k0 = u * ${UE}u;
      let w0 = load_unit(col, u);
      ${NW === 2 ? `let w1 = load_unit(${OUT}u + col, u);` : ""}
      for (var rr = 0u; rr < ${RB}u; rr++) {
        let r = r0 + rr;
        if (r < R.x) {
          let xb = r * ${K}u;
          var s0 = 0.0;
          var s1 = 0.0;
          for (var e = 0u; e < ${UE}u; e++) {
            let xv = ${xAt};
            s0 += w0[e] * xv;
            ${NW === 2 ? "s1 += w1[e] * xv;" : ""}
          }
          acc[rr] += s0;
          ${NW === 2 ? `acc[${RB}u + rr] += s1;` : ""}
        }
      }
    }
  }
  for (var i = 0u; i < ${A}u; i++) { red[i * ${T}u + lid] = acc[i]; }
  workgroupBarrier();
  for (var s = ${TPC >> 1}u; s > 0u; s = s >> 1u) {
    if (t < s) {
      for (var i = 0u; i < ${A}u; i++) { red[i * ${T}u + lid] += red[i * ${T}u + lid + s]; }
    }
    workgroupBarrier();
  }
  if (t == 0u && col < ${OUT}u && lid < ${COLS * TPC}u) {
    for (var rr = 0u; rr < ${RB}u; rr++) {
      let r = r0 + rr;
      if (r < R.x) {
        ${plan.store("r", "col", `red[rr * ${T}u + lid]`, `red[(${RB}u + rr) * ${T}u + lid]`)}
      }
    }
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: RB, groupsPerRowBlock: blocks };
}
