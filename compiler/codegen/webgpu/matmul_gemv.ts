/**
 * The GEMV matmul shape (decode, few rows). Each thread owns `C` output columns and a strided
 * share of K for a block of `RB` rows of x: per loop iteration it issues the loads of `U` wide
 * weight units of all its columns (C * U * 2 for silu_mul, independent, before any use),
 * reads each vec4 of x once and dots it with all C columns' decoded units. Accumulators live
 * in registers (RB * C * weight rows per column); the code is unrolled by the generator (no
 * local arrays, which GPUs spill) and has no bounds checks in the hot loop (column and row
 * indices are clamped outside it; K is compile-time, so the last partial iteration is masked
 * only when the units do not divide evenly). The threads of a column meet in a tree
 * reduction in workgroup memory, in chunks that fit the target's workgroup storage.
 * @module
 */
import type { TargetInfo, WgslKernel } from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  entry,
  pow2Floor,
  range,
  reductionPass,
  reductionThreads,
  totalGroups,
  weightBindingBytes,
} from "./common.ts";
import { matmulPlan, type MatmulSpec } from "./matmul_epilogue.ts";
import { weightUnit } from "./matmul_gemv_unit.ts";

/** Tuning knobs of the GEMV shape (defaults: `gemvDefaults`). */
export interface GemvTuning {
  /** Threads sharing one output column's K (a power of two). */
  threadsPerCol: number;
  /** Output columns per thread: each x vec4 read serves all of them. */
  colsPerThread: number;
  /** Rows of x per workgroup (1..32): the weights are read once per block of rows. */
  rowsPerGroup: number;
  /** Weight units per column each thread loads per loop iteration (1..4). */
  unroll: number;
  /** Group formats: code words per unit (u32, vec2<u32> or vec4<u32>). One word keeps
   * neighbouring threads' x reads contiguous (32 bytes each). */
  codeWords: 1 | 2 | 4;
}

/** Accumulators a thread may hold (rows x columns x weight rows per column). */
const MAX_ACCS = 32;
/** Registers (of ~128 that let two 256-thread workgroups share an SM) for accumulators and
 * in-flight loads (code word + scale per weight unit); the rest hold x, addresses, temps. */
const LOAD_BUDGET = 48;
/** With several rows (the `_small` functions) and large weights (K >= 4096, >= 16 MiB),
 * more accumulators and loads in flight a thread. Measured inside the 8B batch-16 step on
 * the H100: gate_up, down and lm_head 12-21% faster; qkv and o_proj (9-14 MB) 14-24% slower,
 * and the 1B / 0.5B steps ~20% slower (BENCHMARKS.md). */
const ROOMY_BYTES = 16 << 20;
const MAX_ACCS_ROWS = 64;
const LOAD_BUDGET_ROWS = 128;
/** Workgroups wanted per dispatch (about two per SM of an H100's 132; the q8 GEMV, tuned
 * separately, aims for 264). */
const WANT_GROUPS = 256;
/** Cache (x reads) to DRAM (weight reads) bandwidth ratio assumed when picking the tile. */
const CACHE_RATIO = 8;

/**
 * Default tuning from a cost model: for R rows, a tile of RB rows x C columns reads the
 * weights ceil(R / RB) times from DRAM and x R * K * 4 / C bytes per column from cache; the
 * tile minimising the larger of the two (cache at CACHE_RATIO x DRAM bandwidth) is chosen
 * within MAX_ACCS registers, and C is cut where fewer than WANT_GROUPS workgroups would run.
 * Threads per column then fill a 256-thread workgroup (at least 32 where K allows).
 */
export function gemvDefaults(spec: MatmulSpec, target?: TargetInfo): GemvTuning {
  const plan = matmulPlan(spec);
  const NW = plan.weightRowsPerOut, OUT = plan.outCols, K = spec.K;
  const units = weightUnit(spec.weight, K, 1).units;
  const R = Math.max(1, Math.min(spec.maxRows, 32));
  const wBytes = weightBindingBytes(spec.weight, spec.rows, K);
  const roomy = R > 1 && K >= 4096 && wBytes >= ROOMY_BYTES;
  let best = { cost: Infinity, RB: 1, C: 1 };
  for (let RB = R; RB >= 1; RB = RB === 1 ? 0 : Math.ceil(RB / 2)) {
    for (const C of [8, 4, 2, 1]) {
      if (RB * C * NW > (roomy ? MAX_ACCS_ROWS : MAX_ACCS) && C > 1) continue;
      const cost = Math.max(
        Math.ceil(R / RB) * wBytes,
        (R * OUT * K * 4) / C / CACHE_RATIO,
      );
      if (cost < best.cost * 0.999) best = { cost, RB, C };
    }
  }
  const rowBlocks = Math.ceil(R / best.RB);
  const C = Math.max(1, Math.min(best.C, pow2Floor((OUT * rowBlocks) / WANT_GROUPS)));
  const T = target ? reductionThreads(target, 256) : 256;
  const unitsP2 = 2 ** Math.ceil(Math.log2(units));
  const CG = Math.min(
    pow2Floor(Math.max(1, (OUT * rowBlocks) / (WANT_GROUPS * C))),
    Math.max(1, T / Math.min(32, unitsP2)),
  );
  const TPC = Math.max(1, Math.min(T / CG, unitsP2));
  const A = best.RB * C * NW;
  const U = Math.max(
    1,
    Math.min(
      4,
      Math.floor(((roomy ? LOAD_BUDGET_ROWS : LOAD_BUDGET) - A) / (2 * C * NW)),
      Math.ceil(units / TPC),
    ),
  );
  return { threadsPerCol: TPC, colsPerThread: C, rowsPerGroup: best.RB, unroll: U, codeWords: 1 };
}

/** WGSL for a GEMV-shaped `matmul` (best for R <= 32; correct for any R). */
export function matmulGemv(
  spec: MatmulSpec,
  target: TargetInfo,
  tune: GemvTuning = gemvDefaults(spec, target),
): WgslKernel {
  const plan = matmulPlan(spec);
  const K = spec.K;
  const NW = plan.weightRowsPerOut;
  const OUT = plan.outCols;
  const RB = Math.max(1, Math.min(Math.floor(tune.rowsPerGroup), 32));
  const C = Math.max(1, Math.floor(tune.colsPerThread));
  // in-place decoding saves ~6 shifts per code word and column, costs ~6 multiplies per x
  // vec4 pair and row
  const unit = weightUnit(spec.weight, K, tune.codeWords, RB <= C * NW);
  const UE = unit.elems, UN = unit.units;
  const nv = Math.ceil(UE / 4); // vec4s per unit
  const U = Math.max(1, Math.min(Math.floor(tune.unroll), 4));
  const A = RB * C * NW;
  const T = reductionThreads(target, 256);
  const TPC = Math.min(pow2Floor(tune.threadsPerCol), T, 2 ** Math.ceil(Math.log2(UN)));
  const CG = T / TPC; // column groups per workgroup
  const COLS = CG * C; // output columns per workgroup
  const budget = target.limits.maxComputeWorkgroupStorageSize;
  // accumulators reduced per pass: whole (column, row) outputs, within workgroup storage
  const P = reductionPass("matmulGemv", A, NW, T, budget);
  checkTarget(spec, target, {
    workgroupSize: T,
    sharedBytes: 4 * P * T,
    largestBinding: weightBindingBytes(spec.weight, spec.rows, K),
  });
  const blocks = Math.ceil(OUT / COLS);
  const guard = UN * UE > K;
  const vecX = !guard && K % 4 === 0 && UE % 4 === 0;
  const exact = UN % (TPC * U) === 0;
  // accumulator index of (column c, row rr, weight row n)
  const acc = (c: number, rr: number, n: number) => (c * RB + rr) * NW + n;
  // The i-th vec4 of x for block row rr at unit `u` (first element k0).
  const xVec = (rr: number, i: number, u: string, k0: string) => {
    if (vecX) return `x[xr${rr} + ${u} * ${UE / 4}u + ${i}u]`;
    return `vec4<f32>(${
      [0, 1, 2, 3].map((l) => {
        const e = 4 * i + l;
        if (e >= UE) return "0.0";
        const k = `${k0} + ${e}u`;
        return guard
          ? `select(0.0, x[xr${rr} + min(${k}, ${K - 1}u)], ${k} < ${K}u)`
          : `x[xr${rr} + ${k}]`;
      }).join(", ")
    })`;
  };
  const body: string[] = [];
  const wp = (j: number, c: number, n: number) => `w${j}_${c}_${n}_`;
  // every weight load of the iteration first: U * C * NW independent loads in flight
  for (let j = 0; j < U; j++) {
    const masked = j > 0 && !exact;
    body.push(
      j === 0
        ? `let u0 = u;`
        : masked
        ? `let u${j} = min(u + ${j * TPC}u, ${UN - 1}u);`
        : `let u${j} = u + ${j * TPC}u;`,
      `let k${j} = u${j} * ${UE}u;`,
      unit.prep(`u${j}`, j),
    );
    for (let c = 0; c < C; c++) {
      for (let n = 0; n < NW; n++) {
        const p = wp(j, c, n);
        body.push(unit.load(`cw${c}_${n}`, `u${j}`, p, j));
        body.push(
          masked
            ? `let ${p}m = select(0.0, ${p}s, u + ${j * TPC}u < ${UN}u);`
            : `let ${p}m = ${p}s;`,
        );
      }
    }
  }
  // then the arithmetic, keeping the smaller of (x vec4s of all rows, decoded units of all
  // columns) live
  const xLets = (j: number, rr: number) =>
    range(nv).map((i) => {
      const sc = unit.xScale[i];
      return `let x${j}_${rr}_${i} = ${xVec(rr, i, `u${j}`, `k${j}`)}${sc ? ` * ${sc}` : ""};`;
    }).join(" ");
  // With several rows, scaled units feed plain fma chains (8 instead of 10 per 8 elements).
  const prescale = RB >= 4;
  const values = (j: number, c: number, n: number) => {
    const p = wp(j, c, n);
    const v = unit.values(p);
    return prescale
      ? `${v}\n    ${range(nv).map((i) => `let ${p}f${i} = ${p}${i} * ${p}m;`).join(" ")}`
      : v;
  };
  const fma = (j: number, c: number, n: number, rr: number) => {
    const p = wp(j, c, n);
    const a = `a${acc(c, rr, n)}`;
    if (prescale) {
      let e = a;
      for (let i = 0; i < nv; i++) {
        for (const l of ["x", "y", "z", "w"]) {
          e = `fma(${p}f${i}.${l}, x${j}_${rr}_${i}.${l}, ${e})`;
        }
      }
      return `${a} = ${e};`;
    }
    const dots = range(nv).map((i) => `dot(${p}${i}, x${j}_${rr}_${i})`).join(" + ");
    return `${a} = fma(${p}m, ${dots}, ${a});`;
  };
  const cols = range(C * NW).map((cn) => [Math.floor(cn / NW), cn % NW]);
  for (let j = 0; j < U; j++) {
    if (RB < C * NW) {
      for (let rr = 0; rr < RB; rr++) body.push(xLets(j, rr));
      for (const [c, n] of cols) {
        body.push(values(j, c, n), ...range(RB).map((rr) => fma(j, c, n, rr)));
      }
    } else {
      for (const [c, n] of cols) body.push(values(j, c, n));
      for (let rr = 0; rr < RB; rr++) {
        body.push(xLets(j, rr), ...cols.map(([c, n]) => fma(j, c, n, rr)));
      }
    }
  }
  // the reduction, P accumulators (P / NW outputs) per pass
  const passes: string[] = [];
  for (let a0 = 0; a0 < A; a0 += P) {
    const n = Math.min(P, A - a0);
    const stores: string[] = [];
    for (let a = a0; a < a0 + n; a += NW) {
      const rr = Math.floor(a / NW) % RB, c = Math.floor(a / NW / RB);
      const red = (k: number) => `red[${(a - a0 + k) * T}u + lid]`;
      stores.push(`if (r0 + ${rr}u < R.x && col0 + ${c}u < ${OUT}u) {
      ${plan.store(`(r0 + ${rr}u)`, `(col0 + ${c}u)`, red(0), NW === 2 ? red(1) : "")}
    }`);
    }
    passes.push(
      `${a0 > 0 ? "workgroupBarrier();\n  " : ""}${
        range(n).map((i) => `red[${i * T}u + lid] = a${a0 + i};`).join(" ")
      }
  workgroupBarrier();
  for (var s = ${TPC >> 1}u; s > 0u; s = s >> 1u) {
    if (t < s) {
      ${range(n).map((i) => `red[${i * T}u + lid] += red[${i * T}u + lid + s];`).join("\n      ")}
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    ${stores.join("\n    ")}
  }`,
    );
  }
  const types = { ...plan.types, ...unit.types, x: vecX ? "array<vec4<f32>>" : "array<f32>" };
  const xStride = vecX ? K / 4 : K;
  const code = `${declareBindings(spec, types)}
${unit.helpers}
${plan.prelude}
var<workgroup> red: array<f32, ${P * T}>; // [P, T]

${entry(T, totalGroups(RB, blocks))}
  let r0 = (wg / ${blocks}u) * ${RB}u;
  let t = lid % ${TPC}u;
  let col0 = (wg % ${blocks}u) * ${COLS}u + (lid / ${TPC}u) * ${C}u;
  // rows and columns past the end are clamped (read valid data) and never stored
  ${range(RB).map((rr) => `let xr${rr} = min(r0 + ${rr}u, R.x - 1u) * ${xStride}u;`).join("\n  ")}
  ${
    range(C).map((c) =>
      range(NW).map((n) =>
        `let cw${c}_${n} = ${n ? `${OUT}u + ` : ""}min(col0 + ${c}u, ${OUT - 1}u);`
      ).join(" ")
    ).join("\n  ")
  }
  ${range(A).map((i) => `var a${i} = 0.0;`).join(" ")}
  ${
    exact // a compile-time trip count: the compiler may unroll and hoist the next loads
      ? `for (var it = 0u; it < ${UN / (TPC * U)}u; it++) {
    let u = t + it * ${TPC * U}u;`
      : `for (var u = t; u < ${UN}u; u += ${TPC * U}u) {`
  }
    ${body.join("\n    ")}
  }
  ${passes.join("\n  ")}
}
`;
  return { code, entryPoint: "main", rowsPerGroup: RB, groupsPerRowBlock: blocks };
}
