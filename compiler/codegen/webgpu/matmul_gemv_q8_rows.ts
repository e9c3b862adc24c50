/**
 * The q8 GEMV for several rows (batch decode): the same arithmetic as `matmul_gemv_q8.ts`
 * (x rounded to int8 per 32 elements, `dot4I8Packed` on the 4-bit codes), but the x codes of
 * all RB rows of a workgroup live in workgroup memory, one chunk of KC units (32 elements
 * each) at a time, so the weights are read once for up to 16 rows without the registers
 * spilling. Per chunk: the chunk's weight loads are issued, the workgroup quantises the RB rows'
 * x of the chunk into workgroup memory, then each thread (TPC = KC threads a column) dots its
 * unit with every row's codes. The partial sums meet as in the single-row kernel.
 *
 * Measured on the H100 at 16 rows it lost to the f32 GEMV (o_proj 92 vs 52 µs, down 190 vs
 * 139; gate_up+silu 199 vs ~306): every workgroup quantises all 16 rows of x again, about as
 * much work as its dot products. The compiler does not emit 16-row q8 matmuls for that reason
 * (`Q8_MAX_ROWS`); x codes produced once upstream would remove that cost.
 * @module
 */
import { groupLayout, type TargetInfo, type WgslKernel } from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  denseReader,
  entry,
  lit,
  pow2Floor,
  reductionThreads,
  totalGroups,
  weightBindingBytes,
} from "./common.ts";
import { matmulPlan, type MatmulSpec } from "./matmul_epilogue.ts";
import { q8GemvApplies, q8Reduction } from "./matmul_gemv_q8.ts";

/** Tuning of the multi-row q8 GEMV. */
export interface Q8RowsTuning {
  /** Units (32 elements) of K a chunk, = threads a column (a power of two). */
  chunkUnits: number;
  /** Columns a lane (a power of two). */
  colsPerThread: number;
  /** Rows a workgroup (a power of two, <= 32). */
  rowsPerGroup: number;
}

const UE = 32;

/** Defaults: 16 rows (weights read once at batch 16), one column a lane, chunks of 16 units
 * (narrower where the codes and the reduction would not fit the workgroup storage). */
export function q8RowsDefaults(spec: MatmulSpec, target: TargetInfo): Q8RowsTuning {
  const NW = matmulPlan(spec).weightRowsPerOut;
  const RB = Math.min(16, pow2Floor(Math.max(1, Math.min(spec.maxRows, 32))));
  const T = reductionThreads(target, 256);
  const units = Math.ceil(spec.K / UE);
  // 16-unit chunks were the fastest of 16 / 32 / 64 on the H100
  let KC = Math.min(16, 2 ** Math.ceil(Math.log2(units)));
  const bytes = (kc: number) => RB * kc * 40 + 4 * (T * (RB * NW + 1) + T);
  while (KC > 1 && (bytes(KC) > target.limits.maxComputeWorkgroupStorageSize || RB * NW > KC)) {
    KC /= 2;
  }
  return { chunkUnits: Math.max(KC, NW), colsPerThread: 1, rowsPerGroup: RB };
}

/** WGSL for a q4 `matmul` with q8 activations over several rows. */
export function matmulGemvQ8Rows(
  spec: MatmulSpec,
  target: TargetInfo,
  tune: Q8RowsTuning = q8RowsDefaults(spec, target),
): WgslKernel {
  if (!q8GemvApplies(spec, target) || spec.norm) {
    throw new RangeError(
      "matmulGemvQ8Rows: needs 4-bit group weights, packed dot products, no norm",
    );
  }
  const w = spec.weight as Extract<MatmulSpec["weight"], { kind: "group" }>;
  const plan = matmulPlan(spec);
  const K = spec.K, NW = plan.weightRowsPerOut, OUT = plan.outCols;
  const g = groupLayout(w, K);
  const UN = Math.ceil(K / UE);
  const unitsPerGroup = w.groupSize / UE;
  const T = reductionThreads(target, 256);
  let KC = Math.max(NW, Math.min(pow2Floor(tune.chunkUnits), T)); // = TPC
  let RB = pow2Floor(Math.max(1, Math.min(tune.rowsPerGroup, 32)));
  let CPT = pow2Floor(Math.max(1, tune.colsPerThread));
  // within the target: accumulators <= threads a column, codes + reduction in workgroup storage
  const bytes = () => 4 * (RB * KC * 10 + T * (CPT * RB * NW + 1) + T);
  while (
    (CPT * RB * NW > KC || bytes() > target.limits.maxComputeWorkgroupStorageSize) &&
    (CPT > 1 || RB > 1 || KC > NW)
  ) {
    if (CPT > 1) CPT /= 2;
    else if (KC > 2 * RB * NW && bytes() > target.limits.maxComputeWorkgroupStorageSize) KC /= 2;
    else RB /= 2;
  }
  const L = T / KC;
  const A = CPT * RB * NW;
  const NCH = Math.ceil(UN / KC);
  const COLS = L * CPT;
  const blocks = Math.ceil(OUT / COLS);
  const xWords = RB * KC * 10; // per (row, unit): 8 code words, d, c
  const sharedBytes = 4 * (xWords + T * (A + 1) + T);
  checkTarget(spec, target, {
    workgroupSize: T,
    sharedBytes,
    largestBinding: weightBindingBytes(w, spec.rows, K),
  });
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const vecX = K % 4 === 0;
  const reduce = q8Reduction({ T, TPC: KC, CPT, RB, NW, OUT, COLS, blocks, plan });

  const halves = w.scaleDtype === "f16" && g.groups % 2 === 0;
  const gi = unitsPerGroup === 1 ? "u" : `(u / ${unitsPerGroup}u)`;
  const scale = (c: string) =>
    halves
      ? `unpack2x16float(q_scale[${c} * ${
        g.groups / 2
      }u + (${gi} >> 1u)] >> ((${gi} & 1u) * 16u)).x`
      : `q_scale_at(${c} * ${g.groups}u + ${gi})`;

  // quantisation of (row qr, chunk unit qu) by thread lid, for the RB * KC pairs of a chunk
  const xv = (j: number) => {
    const kv = `${UE / 4}u * qunit + ${j}u`;
    if (vecX) return `select(vec4<f32>(0.0), x[xrow + ${kv}], 4u * (${kv}) < ${K}u)`;
    return `vec4<f32>(${
      [0, 1, 2, 3].map((l) => {
        const k = `4u * (${kv}) + ${l}u`;
        return `select(0.0, x[xrow + min(${k}, ${K - 1}u)], ${k} < ${K}u)`;
      }).join(", ")
    })`;
  };
  const quantise = `for (var qi = lid; qi < ${RB * KC}u; qi += ${T}u) {
      let qr = qi / ${KC}u;
      let qunit = min(ch * ${KC}u + qi % ${KC}u, ${UN - 1}u);
      let on = select(0.0, 1.0, ch * ${KC}u + qi % ${KC}u < ${UN}u);
      let xrow = min(r0 + qr, R.x - 1u) * ${vecX ? K / 4 : K}u;
      ${range(8).map((j) => `let v${j} = ${xv(j)} * on;`).join(" ")}
      let vm = max(max(max(abs(v0), abs(v1)), max(abs(v2), abs(v3))), max(max(abs(v4), abs(v5)), max(abs(v6), abs(v7))));
      let va = max(max(vm.x, vm.y), max(vm.z, vm.w));
      let vinv = select(0.0, 127.0 / va, va > 0.0);
      ${range(8).map((j) => `let q${j} = vec4<i32>(round(v${j} * vinv));`).join(" ")}
      let base = qi * 10u;
      ${
    range(4).map((wd) => {
      const a = `q${2 * wd}`, b = `q${2 * wd + 1}`;
      return `xs[base + ${wd}u] = pack4xI8(vec4<i32>(${a}.x, ${a}.z, ${b}.x, ${b}.z)); xs[base + ${
        4 + wd
      }u] = pack4xI8(vec4<i32>(${a}.y, ${a}.w, ${b}.y, ${b}.w));`;
    }).join("\n      ")
  }
      xs[base + 8u] = bitcast<u32>(va * ${lit(1 / 127)});
      xs[base + 9u] = bitcast<u32>(${g.maxInt} * dot(((q0 + q1) + (q2 + q3)) + ((q4 + q5) + (q6 + q7)), vec4<i32>(1)));
    }`;

  // the chunk's weight units: loaded before the quantisation, used after it
  const loads = range(CPT).flatMap((j) =>
    range(NW).map((n) => {
      const c = n ? `(${OUT}u + c${j})` : `c${j}`;
      return `let w${j}_${n} = q_weight[${c} * ${UN}u + u]; let s${j}_${n} = ${scale(c)};`;
    })
  );
  const nibbles = range(CPT).flatMap((j) =>
    range(NW).map((n) => {
      const q = `w${j}_${n}`;
      return range(4).map((wd) => {
        const l = "xyzw"[wd];
        return `let ${q}l${wd} = ${q}.${l} & 0x0f0f0f0fu; let ${q}h${wd} = (${q}.${l} >> 4u) & 0x0f0f0f0fu;`;
      }).join(" ");
    })
  );
  const rows = range(RB).map((rr) => {
    const xb = `(${rr * KC}u + t) * 10u`;
    const dots = range(CPT).flatMap((j) =>
      range(NW).map((n) => {
        const q = `w${j}_${n}`;
        const d = range(4).map((wd) =>
          `dot4I8Packed(${q}l${wd}, xl${rr}[${wd}]) + dot4I8Packed(${q}h${wd}, xh${rr}[${wd}])`
        ).join(" + ");
        const a = `a${(j * RB + rr) * NW + n}`;
        return `${a} = fma(f32((${d}) - xc${rr}), s${j}_${n} * xd${rr}, ${a});`;
      })
    );
    return `{
      let xb${rr} = ${xb};
      let xl${rr} = vec4<u32>(xs[xb${rr}], xs[xb${rr} + 1u], xs[xb${rr} + 2u], xs[xb${rr} + 3u]);
      let xh${rr} = vec4<u32>(xs[xb${rr} + 4u], xs[xb${rr} + 5u], xs[xb${rr} + 6u], xs[xb${rr} + 7u]);
      let xd${rr} = bitcast<f32>(xs[xb${rr} + 8u]);
      let xc${rr} = bitcast<i32>(xs[xb${rr} + 9u]);
      ${dots.join("\n      ")}
    }`;
  });

  const types = {
    ...plan.types,
    x: vecX ? "array<vec4<f32>>" : "array<f32>",
    q_weight: "array<vec4<u32>>",
  };
  const code = `${declareBindings(spec, types)}
${halves ? "" : denseReader("q_scale", w.scaleDtype)}
${plan.prelude}
var<workgroup> xs: array<u32, ${xWords}>; // [RB][KC][10]: lo codes, hi codes, d, c
${reduce.decls}

${entry(T, totalGroups(RB, blocks))}
  let r0 = (wg / ${blocks}u) * ${RB}u;
  let lane = lid / ${KC}u;
  let t = lid % ${KC}u;
  let col0 = (wg % ${blocks}u) * ${COLS}u + lane * ${CPT}u;
  ${range(CPT).map((j) => `let c${j} = min(col0 + ${j}u, ${OUT - 1}u);`).join(" ")}
  ${range(A).map((i) => `var a${i} = 0.0;`).join(" ")}
  for (var ch = 0u; ch < ${NCH}u; ch++) {
    let u = min(ch * ${KC}u + t, ${UN - 1}u);
    ${loads.join("\n    ")}
    workgroupBarrier(); // the previous chunk's codes are used up
    ${quantise}
    workgroupBarrier();
    ${nibbles.join("\n    ")}
    ${rows.join("\n    ")}
  }
  ${reduce.code}
}
`;
  return { code, entryPoint: "main", rowsPerGroup: RB, groupsPerRowBlock: blocks };
}
