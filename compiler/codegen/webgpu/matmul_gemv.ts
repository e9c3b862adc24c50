/**
 * The GEMV matmul shape (decode, few rows): each workgroup computes `COLS` output columns for
 * up to 4 rows of x. The threads of a column split K and read the weight in wide units (a
 * vec4<u32> of packed codes, or vec4s of dense values), decoded into vec4<f32> registers and
 * dotted with vec4s of x; partial sums meet in workgroup memory. The code is unrolled by the
 * generator (no local arrays, which GPUs would spill).
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
import { type MatmulSpec, matmulPlan } from "./matmul_epilogue.ts";

interface Unit {
  /** Real weight elements per unit (vec4 lanes past them are zero). */
  elems: number;
  /** Units per weight row (covering the padded K for group formats). */
  units: number;
  types: Record<string, string>;
  helpers: string;
  /** Statements defining vec4<f32> `${p}0..` (unit values) and f32 `${p}s` (their scale). */
  decode(c: string, u: string, p: string): string;
}

const lanes = ["x", "y", "z", "w"];

/** vec4<f32> expressions for `n` elements given one expression per element ("" = zero). */
function vec4s(n: number, elem: (e: number) => string): string[] {
  const out: string[] = [];
  for (let e0 = 0; e0 < n; e0 += 4) {
    const parts = [0, 1, 2, 3].map((i) => (e0 + i < n ? elem(e0 + i) : "0.0"));
    out.push(`vec4<f32>(${parts.join(", ")})`);
  }
  return out;
}

/** How a row of a weight in format `w` is read, one wide unit at a time. */
function weightUnit(w: WeightFormat, K: number): Unit {
  const lets = (p: string, exprs: string[], scale: string) =>
    exprs.map((x, i) => `let ${p}${i} = ${x};`).join("\n      ") + `\n      let ${p}s = ${scale};`;
  if (w.kind === "group") {
    const g = groupLayout(w, K);
    const E = g.elemsPerWord, bits = w.bits, mask = (1 << bits) - 1;
    const wide = g.wordsPerRow % 4 === 0 && w.groupSize % (4 * E) === 0;
    const words = wide ? 4 : 1;
    const elems = words * E;
    return {
      elems,
      units: g.wordsPerRow / words,
      types: { q_weight: wide ? "array<vec4<u32>>" : "array<u32>" },
      helpers: denseReader("q_scale", w.scaleDtype),
      decode: (c, u, p) => {
        const word = (e: number) => (wide ? `${p}q.${lanes[Math.floor(e / E)]}` : `${p}q`);
        const vecs: string[] = [];
        for (let e0 = 0; e0 < elems; e0 += 4) {
          const n = Math.min(4, elems - e0);
          const sameWord = n === 4 && Math.floor(e0 / E) === Math.floor((e0 + 3) / E);
          if (sameWord) {
            const sh = [0, 1, 2, 3].map((i) => `${((e0 + i) % E) * bits}u`).join(", ");
            vecs.push(
              `vec4<f32>((vec4<u32>(${word(e0)}) >> vec4<u32>(${sh})) & vec4<u32>(${mask}u)) - ${g.maxInt}.0`,
            );
          } else {
            vecs.push(...vecs4Scalar(e0, n));
          }
        }
        function vecs4Scalar(e0: number, n: number): string[] {
          return vec4s(n, (i) => {
            const e = e0 + i;
            return `f32((${word(e)} >> ${(e % E) * bits}u) & ${mask}u) - ${g.maxInt}.0`;
          });
        }
        return `let ${p}q = q_weight[${c} * ${g.wordsPerRow / words}u + ${u}];
      ${lets(p, vecs, `q_scale_at(${c} * ${g.groups}u + (${u} * ${elems}u) / ${w.groupSize}u)`)}`;
      },
    };
  }
  if (w.dtype === "f32") {
    if (K % 4 === 0) {
      return {
        elems: 4,
        units: K / 4,
        types: { weight: "array<vec4<f32>>" },
        helpers: "",
        decode: (c, u, p) => lets(p, [`weight[${c} * ${K / 4}u + ${u}]`], "1.0"),
      };
    }
    return {
      elems: 1,
      units: K,
      types: { weight: "array<f32>" },
      helpers: "",
      decode: (c, u, p) => lets(p, vec4s(1, () => `weight[${c} * ${K}u + ${u}]`), "1.0"),
    };
  }
  if (K % 8 === 0) {
    return {
      elems: 8,
      units: K / 8,
      types: { weight: "array<vec4<u32>>" },
      helpers: "",
      decode: (c, u, p) =>
        `let ${p}v = weight[${c} * ${K / 8}u + ${u}];
      ${
          lets(p, [
            `vec4<f32>(unpack2x16float(${p}v.x), unpack2x16float(${p}v.y))`,
            `vec4<f32>(unpack2x16float(${p}v.z), unpack2x16float(${p}v.w))`,
          ], "1.0")
        }`,
    };
  }
  if (K % 2 === 0) {
    return {
      elems: 2,
      units: K / 2,
      types: { weight: "array<u32>" },
      helpers: "",
      decode: (c, u, p) =>
        lets(p, [`vec4<f32>(unpack2x16float(weight[${c} * ${K / 2}u + ${u}]), 0.0, 0.0)`], "1.0"),
    };
  }
  return {
    elems: 1,
    units: K,
    types: { weight: "array<u32>" },
    helpers: denseReader("weight", "f16"),
    decode: (c, u, p) => lets(p, vec4s(1, () => `weight_at(${c} * ${K}u + ${u})`), "1.0"),
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
  const nv = Math.ceil(UE / 4); // vec4s per unit
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
  const vecX = !guard && K % 4 === 0 && UE % 4 === 0;
  // The i-th vec4 of x for row r at this unit.
  const xVec = (r: string, i: number) => {
    if (vecX) return `x[${r} * ${K / 4}u + u * ${UE / 4}u + ${i}u]`;
    return `vec4<f32>(${
      [0, 1, 2, 3].map((l) => {
        const e = 4 * i + l;
        if (e >= UE) return "0.0";
        const k = `k0 + ${e}u`;
        return guard
          ? `select(0.0, x[${r} * ${K}u + min(${k}, ${K - 1}u)], ${k} < ${K}u)`
          : `x[${r} * ${K}u + ${k}]`;
      }).join(", ")
    })`;
  };
  const dots = (p: string) =>
    `${p}s * (${Array.from({ length: nv }, (_, i) => `dot(${p}${i}, xv${i})`).join(" + ")})`;
  const rows: string[] = [];
  for (let rr = 0; rr < RB; rr++) {
    rows.push(`if (r0 + ${rr}u < R.x) {
        ${Array.from({ length: nv }, (_, i) => `let xv${i} = ${xVec(`(r0 + ${rr}u)`, i)};`).join("\n        ")}
        a${rr} += ${dots("wa")};
        ${NW === 2 ? `a${RB + rr} += ${dots("wb")};` : ""}
      }`);
  }
  const accs = Array.from({ length: A }, (_, i) => i);
  const stores = Array.from({ length: RB }, (_, rr) =>
    `if (r0 + ${rr}u < R.x) {
      ${
      plan.store(`(r0 + ${rr}u)`, "col", `red[${rr * T}u + lid]`, `red[${(RB + rr) * T}u + lid]`)
    }
    }`);
  const types = { ...plan.types, ...unit.types, x: vecX ? "array<vec4<f32>>" : "array<f32>" };
  const code = `${declareBindings(spec, types)}
${unit.helpers}
${plan.prelude}
var<workgroup> red: array<f32, ${A * T}>; // [A, T]

${entry(T, totalGroups(RB, blocks))}
  let r0 = (wg / ${blocks}u) * ${RB}u;
  let t = lid % ${TPC}u;
  let col = (wg % ${blocks}u) * ${COLS}u + lid / ${TPC}u;
  ${accs.map((i) => `var a${i} = 0.0;`).join(" ")}
  if (col < ${OUT}u && lid < ${COLS * TPC}u) {
    for (var u = t; u < ${unit.units}u; u += ${TPC}u) {
      let k0 = u * ${UE}u;
      ${unit.decode("col", "u", "wa")}
      ${NW === 2 ? unit.decode(`(${OUT}u + col)`, "u", "wb") : ""}
      ${rows.join("\n      ")}
    }
  }
  ${accs.map((i) => `red[${i * T}u + lid] = a${i};`).join(" ")}
  workgroupBarrier();
  for (var s = ${TPC >> 1}u; s > 0u; s = s >> 1u) {
    if (t < s) {
      ${accs.map((i) => `red[${i * T}u + lid] += red[${i * T}u + lid + s];`).join("\n      ")}
    }
    workgroupBarrier();
  }
  if (t == 0u && col < ${OUT}u && lid < ${COLS * TPC}u) {
    ${stores.join("\n    ")}
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: RB, groupsPerRowBlock: blocks };
}
