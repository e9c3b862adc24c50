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
import { matmulPlan, type MatmulSpec } from "./matmul_epilogue.ts";

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
function weightUnit(w: WeightFormat, K: number, codeWords: 1 | 2 | 4): Unit {
  const lets = (p: string, exprs: string[], scale: string) =>
    exprs.map((x, i) => `let ${p}${i} = ${x};`).join("\n      ") + `\n      let ${p}s = ${scale};`;
  if (w.kind === "group") {
    const g = groupLayout(w, K);
    const E = g.elemsPerWord, bits = w.bits, mask = (1 << bits) - 1;
    const fits = g.wordsPerRow % codeWords === 0 && w.groupSize % (codeWords * E) === 0;
    const words = fits ? codeWords : 1;
    const wide = words > 1;
    const elems = words * E;
    const bias = `${2 ** 23 + g.maxInt}.0`;
    return {
      elems,
      units: g.wordsPerRow / words,
      types: { q_weight: wide ? `array<vec${words}<u32>>` : "array<u32>" },
      helpers: denseReader("q_scale", w.scaleDtype),
      decode: (c, u, p) => {
        const word = (e: number) => (wide ? `${p}q.${lanes[Math.floor(e / E)]}` : `${p}q`);
        const vecs: string[] = [];
        for (let e0 = 0; e0 < elems; e0 += 4) {
          const n = Math.min(4, elems - e0);
          const sameWord = n === 4 && Math.floor(e0 / E) === Math.floor((e0 + 3) / E);
          if (sameWord) {
            const sh = [0, 1, 2, 3].map((i) => `${((e0 + i) % E) * bits}u`).join(", ");
            // Code q as f32 via its bits: (q | 2^23's exponent) - 2^23, with maxInt folded in.
            vecs.push(
              `bitcast<vec4<f32>>(((vec4<u32>(${
                word(e0)
              }) >> vec4<u32>(${sh})) & vec4<u32>(${mask}u)) | vec4<u32>(0x4b000000u)) - ${bias}`,
            );
          } else {
            vecs.push(...vecs4Scalar(e0, n));
          }
        }
        function vecs4Scalar(e0: number, n: number): string[] {
          return vec4s(n, (i) => {
            const e = e0 + i;
            return `bitcast<f32>(((${word(e)} >> ${
              (e % E) * bits
            }u) & ${mask}u) | 0x4b000000u) - ${bias}`;
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

/** Tuning knobs of the GEMV shape (defaults: `gemvDefaults`). */
export interface GemvTuning {
  /** Threads sharing one output column (a power of two). */
  threadsPerCol: number;
  /** Stage the block's rows of x in workgroup memory when they fit. */
  sharedX: boolean;
  /** Weight units each thread loads per loop iteration (1 or 2). */
  unroll: 1 | 2;
  /** Group formats: code words a thread reads at a time (u32, vec2<u32> or vec4<u32>). Fewer
   * keep neighbouring threads' x reads closer together (one word: 32 bytes apart). */
  codeWords: 1 | 2 | 4;
}

/**
 * Default tuning, from `matmul_bench.ts --tune` on an H100 (q4f16 decode, R = 1): one code word
 * per thread was 2.5x faster than four (x reads 32 instead of 128 bytes apart) and faster than
 * two everywhere but gate_up (lm_head 58 vs 77 us, gate_up 38 vs 35 us); two loads per
 * iteration helped only where the loop is short and workgroups are few (4096x4096: 10 vs
 * 16 us) and cost a little elsewhere (4096x11008: 27 vs 24 us); staging x in workgroup
 * memory was slower everywhere (the whole of x per 8 columns).
 */
export function gemvDefaults(spec: MatmulSpec): GemvTuning {
  const plan = matmulPlan(spec);
  const unit = weightUnit(spec.weight, spec.K, 1);
  const short = unit.units / 32 <= 16 && plan.outCols <= 8192;
  return { threadsPerCol: 32, sharedX: false, unroll: short ? 2 : 1, codeWords: 1 };
}

/** WGSL for a GEMV-shaped `matmul` (best for R <= 4; correct for any R). */
export function matmulGemv(
  spec: MatmulSpec,
  target: TargetInfo,
  tune: GemvTuning = gemvDefaults(spec),
): WgslKernel {
  const plan = matmulPlan(spec);
  const K = spec.K;
  const NW = plan.weightRowsPerOut;
  const OUT = plan.outCols;
  const unit = weightUnit(spec.weight, K, tune.codeWords);
  const UE = unit.elems;
  const nv = Math.ceil(UE / 4); // vec4s per unit
  const RB = Math.max(1, Math.min(spec.maxRows, 4));
  const A = RB * NW;
  const T = reductionThreads(target, 256);
  const TPC = Math.min(pow2Floor(tune.threadsPerCol), T, 2 ** Math.ceil(Math.log2(unit.units)));
  const COLS = pow2Floor(T / TPC);
  const guard = unit.units * UE > K;
  const vecX = !guard && K % 4 === 0 && UE % 4 === 0;
  const redBytes = 4 * A * T;
  const sharedX = tune.sharedX && vecX &&
    redBytes + RB * K * 4 <= target.limits.maxComputeWorkgroupStorageSize;
  checkTarget(spec, target, {
    workgroupSize: T,
    sharedBytes: redBytes + (sharedX ? RB * K * 4 : 0),
    largestBinding: weightBindingBytes(spec.weight, spec.rows, K),
  });
  const blocks = Math.ceil(OUT / COLS);
  // The i-th vec4 of x for row r (= r0 + rr) at unit `u`.
  const xVec = (r: string, i: number, rr: number, u = "u", k0 = "k0") => {
    if (sharedX) return `xs[${rr * K / 4}u + ${u} * ${UE / 4}u + ${i}u]`;
    if (vecX) return `x[${r} * ${K / 4}u + ${u} * ${UE / 4}u + ${i}u]`;
    return `vec4<f32>(${
      [0, 1, 2, 3].map((l) => {
        const e = 4 * i + l;
        if (e >= UE) return "0.0";
        const k = `${k0} + ${e}u`;
        return guard
          ? `select(0.0, x[${r} * ${K}u + min(${k}, ${K - 1}u)], ${k} < ${K}u)`
          : `x[${r} * ${K}u + ${k}]`;
      }).join(", ")
    })`;
  };
  const dots = (p: string, xp: string) =>
    `${p}s * (${Array.from({ length: nv }, (_, i) => `dot(${p}${i}, ${xp}${i})`).join(" + ")})`;
  // Weight units of this iteration: (unit index, k0, weight prefixes [gate, up]).
  const its = [["u", "k0", "wa", "wb"], ["u1", "k1", "wc", "wd"]].slice(0, tune.unroll);
  const rows: string[] = [];
  for (let rr = 0; rr < RB; rr++) {
    const body: string[] = [];
    for (const [u, k0, p0, p1] of its) {
      const xp = `x${u}_`;
      body.push(
        ...Array.from(
          { length: nv },
          (_, i) => `let ${xp}${i} = ${xVec(`(r0 + ${rr}u)`, i, rr, u, k0)};`,
        ),
        `a${rr} += ${dots(p0, xp)};`,
      );
      if (NW === 2) body.push(`a${RB + rr} += ${dots(p1, xp)};`);
    }
    rows.push(`if (r0 + ${rr}u < R.x) {
        ${body.join("\n        ")}
      }`);
  }
  const second = tune.unroll === 2
    ? `let u1 = min(u + ${TPC}u, ${unit.units - 1}u);
      let k1 = u1 * ${UE}u;
      ${unit.decode("col", "u1", "wc0")}
      ${NW === 2 ? unit.decode(`(${OUT}u + col)`, "u1", "wd0") : ""}
      let wcs = select(0.0, wc0s, u + ${TPC}u < ${unit.units}u);
      ${NW === 2 ? `let wds = select(0.0, wd0s, u + ${TPC}u < ${unit.units}u);` : ""}
      ${Array.from({ length: nv }, (_, i) => `let wc${i} = wc0${i};`).join(" ")}
      ${NW === 2 ? Array.from({ length: nv }, (_, i) => `let wd${i} = wd0${i};`).join(" ") : ""}`
    : "";
  const accs = Array.from({ length: A }, (_, i) => i);
  const stores = Array.from({ length: RB }, (_, rr) =>
    `if (r0 + ${rr}u < R.x) {
      ${plan.store(`(r0 + ${rr}u)`, "col", `red[${rr * T}u + lid]`, `red[${(RB + rr) * T}u + lid]`)}
    }`);
  const types = { ...plan.types, ...unit.types, x: vecX ? "array<vec4<f32>>" : "array<f32>" };
  const stageX = sharedX
    ? `for (var i = lid; i < ${RB * K / 4}u; i += ${T}u) {
    let r = r0 + i / ${K / 4}u;
    var v = vec4<f32>(0.0);
    if (r < R.x) { v = x[r * ${K / 4}u + i % ${K / 4}u]; }
    xs[i] = v;
  }
  workgroupBarrier();`
    : "";
  const code = `${declareBindings(spec, types)}
${unit.helpers}
${plan.prelude}
var<workgroup> red: array<f32, ${A * T}>; // [A, T]
${sharedX ? `var<workgroup> xs: array<vec4<f32>, ${RB * K / 4}>; // [RB, K / 4]` : ""}

${entry(T, totalGroups(RB, blocks))}
  let r0 = (wg / ${blocks}u) * ${RB}u;
  let t = lid % ${TPC}u;
  let col = (wg % ${blocks}u) * ${COLS}u + lid / ${TPC}u;
  ${accs.map((i) => `var a${i} = 0.0;`).join(" ")}
  ${stageX}
  if (col < ${OUT}u && lid < ${COLS * TPC}u) {
    for (var u = t; u < ${unit.units}u; u += ${TPC * tune.unroll}u) {
      let k0 = u * ${UE}u;
      ${unit.decode("col", "u", "wa")}
      ${NW === 2 ? unit.decode(`(${OUT}u + col)`, "u", "wb") : ""}
      ${second}
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
