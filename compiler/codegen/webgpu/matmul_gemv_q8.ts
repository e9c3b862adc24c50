/**
 * The q8-activation GEMV for 4-bit group weights (decode, few rows): `x` is quantised in the
 * kernel to int8 per 32-element block (symmetric, d = max|x| / 127, codes round(x / d) with
 * ties to even, as llama.cpp's q8 activations), and each 32-weight unit becomes eight
 * `dot4I8Packed` of its nibbles against the packed codes:
 *   sum_i w_i x_i ~= s_w * d_x * (sum_i q_i c_i - maxInt * sum_i c_i)
 * (q_i the 4-bit codes, c_i the int8 codes of x): exact integer arithmetic inside the unit, one
 * conversion and one fma per unit and row. This is about a quarter of the instructions of the
 * f32 decode, so the kernel can keep up with the weights' read bandwidth.
 *
 * Shape: each thread owns a fixed slice of K (units t, t + TPC, ...), quantises x there once
 * (or, where a thread would read at most 2 vec4s of x, the workgroup quantises the row together
 * with coalesced reads and hands each thread its units' codes: `sharedX`), keeps the codes in
 * registers, and walks CPT columns of its lane (TPC threads a lane, T / TPC
 * lanes a workgroup); a column's TPC threads read 16 contiguous bytes each (one vec4<u32>, a
 * whole unit). The lanes' partial sums meet in workgroup memory: every thread writes its
 * accumulators, then adds up one output's slice (conflict-free: rows padded by one word), then
 * the slices' sums are added and stored through the epilogue.
 *
 * Unit-major x (`xUnits`, `q8_unit_layout`): a unit's 8 vec4s lie UN vec4s apart, so the
 * threads of a lane, one unit each, read consecutive memory (8B decode on the H100: 2.845 ->
 * 2.645 ms a step); written unit-major (`outUnits`), out_w and out_ssq (normOut) or out
 * (silu_mul) go that way for the next q8 GEMV.
 *
 * A folded RMSNorm (`fuse_norm_matmul`): reading one (`norm`), each thread also adds up the
 * x_ssq chunks of its units; lane 0's sums ride the reduction's two barriers and the stored
 * outputs are scaled by the row's 1 / rms (the codes of the weighted row are those of the
 * normalised one). Writing one (`normOut`), the storing threads also write out * norm_w and
 * their squares, added by 4s after one more barrier; the norm weight and residual they need
 * are loaded at the start. A persistent workgroup finds 1 / rms in its first block only.
 *
 * Needs the WGSL language feature packed_4x8_integer_dot_product (in the target's features).
 * @module
 */
import {
  groupLayout,
  hasPackedDot,
  PACKED_DOT,
  q8Eligible,
  type TargetInfo,
  type WgslKernel,
} from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  denseReader,
  denseType,
  entry,
  lit,
  pow2Floor,
  range,
  reductionThreads,
  totalGroups,
  unitChunk,
  unitElem,
  weightBindingBytes,
} from "./common.ts";
import { matmulPlan, type MatmulSpec } from "./matmul_epilogue.ts";
import { packEvenOdd } from "./quantize_q8.ts";

/** Elements of one unit: a vec4<u32> of 4-bit codes. */
const UE = 32;

/** Tuning of the q8 GEMV. */
export interface Q8Tuning {
  /** Threads sharing a column's K (a power of two). */
  threadsPerCol: number;
  /** Columns each lane walks (a power of two). */
  colsPerThread: number;
  /** Rows of x per workgroup (a power of two). */
  rowsPerGroup: number;
  /** Columns whose loads are issued together (a chunk). */
  loadCols: number;
  /** Persistent shape: at most this many workgroups a row block, each walking column blocks
   * (0 or absent: one workgroup a column block). */
  persistent?: number;
  /** x quantised by the whole workgroup through workgroup memory (coalesced reads) rather
   * than by each thread for its own units (one row a workgroup, K a multiple of 32, within the
   * workgroup storage; default: where a thread reads at most `SHARED_X_LOADS` vec4s of x). */
  sharedX?: boolean;
}

/** Whether the q8 GEMV can run `spec` on `target`. */
export function q8GemvApplies(spec: MatmulSpec, target: TargetInfo): boolean {
  return hasPackedDot(target) && q8Eligible(spec.weight);
}

/** Accumulators a thread may hold. */
const MAX_ACCS = 32;
/** Workgroups wanted per dispatch (H100: 132 SMs, two each); also the persistent shape's. */
const WANT_GROUPS = 264;
/** Column blocks the non-persistent shape keeps at least while its lanes widen: about two
 * per SM of an H100. Measured inside the 8B decode step there: o_proj at 8 columns a lane
 * (256 blocks) and down at 16 (256 blocks) took 33 and 70-94 µs less a step than at 4 and 8
 * (512 blocks each); fewer blocks still (down at 32 columns, 128 blocks) lost 350 µs. */
const SPREAD_GROUPS = 256;
/** x is quantised by the whole workgroup (`sharedX`) by default where that takes each thread
 * at most this many vec4 reads of x. Inside the decode step on the H100: Llama-3.2-1B (K 2048
 * and 8192) 0.909 -> 0.849 ms, Qwen2.5-0.5B (K 896 and 4864) 1.066 -> 0.955 ms, but Llama-3-8B
 * (K 4096 and 14336) 2.848 -> 3.465 ms (BENCHMARKS.md). */
const SHARED_X_LOADS = 2;
/** Weight rows a lane of the persistent shape walks at a time (columns x rows a column). */
const PERSISTENT_ROWS = 8;

/**
 * Default tuning: threads per column from K, rows from the register budget. Where lanes of 8
 * weight rows leave at least 2 x 264 column blocks (gate_up, lm_head), 264 workgroups walk
 * them (the persistent shape): 8B gate_up+silu 1,568 -> 1,145 µs a decode step against 16
 * columns a lane in 448 workgroups. Otherwise the columns a lane grow (up to 16) while
 * `SPREAD_GROUPS` (256) blocks remain; fewer, wider workgroups lost inside the decode step
 * (BENCHMARKS.md).
 */
export function q8Defaults(spec: MatmulSpec, target: TargetInfo): Q8Tuning {
  const plan = matmulPlan(spec);
  const NW = plan.weightRowsPerOut, OUT = plan.outCols;
  const units = Math.ceil(spec.K / UE);
  const T = reductionThreads(target, 256);
  const TPC = Math.min(T, Math.max(NW, 2 ** Math.ceil(Math.log2(units))));
  const GPT = Math.ceil(units / TPC);
  const L = T / TPC;
  const R = Math.max(1, Math.min(spec.maxRows, 32));
  // x codes: 10 registers a unit and row; keep them under ~40
  const RB = Math.min(pow2Floor(R), pow2Floor(Math.max(1, Math.floor(4 / GPT))));
  const rowBlocks = Math.ceil(R / RB);
  const storage = target.limits.maxComputeWorkgroupStorageSize;
  // accumulators a thread (cpt * RB * NW) within MAX_ACCS, TPC and the reduction's storage
  const fits = (cpt: number) =>
    cpt * RB * NW <= Math.min(MAX_ACCS, TPC) &&
    reductionBytes(T, cpt * RB * NW, {
        norm: !!spec.norm,
        normOut: !!spec.normOut,
        RB,
        TPC,
        COLS: L * cpt,
      }) <= storage;
  // (normOut sums its outputs' squares by 4s within a block: at least 4 columns a block)
  const least = spec.normOut ? Math.max(1, 4 / L) : 1;
  const blocksAt = (cpt: number) => Math.ceil(OUT / (L * cpt)) * rowBlocks;
  const base = { threadsPerCol: TPC, rowsPerGroup: RB };
  const walk = Math.max(1, PERSISTENT_ROWS / NW);
  if (fits(walk) && blocksAt(walk) >= 2 * WANT_GROUPS) {
    let CPT = least;
    while (CPT < walk && fits(CPT * 2)) CPT *= 2;
    return { ...base, colsPerThread: CPT, loadCols: Math.min(CPT, 8), persistent: WANT_GROUPS };
  }
  let CPT = least;
  while (CPT < 16 && fits(CPT * 2) && blocksAt(CPT * 2) >= SPREAD_GROUPS) CPT *= 2;
  return { ...base, colsPerThread: CPT, loadCols: Math.min(CPT, 8) };
}

/** WGSL for a q4 `matmul` with q8 activations. */
export function matmulGemvQ8(
  spec: MatmulSpec,
  target: TargetInfo,
  tune: Q8Tuning = q8Defaults(spec, target),
): WgslKernel {
  if (!q8GemvApplies(spec, target)) {
    throw new RangeError(`matmulGemvQ8: needs 4-bit group weights and ${PACKED_DOT}`);
  }
  const w = spec.weight as Extract<MatmulSpec["weight"], { kind: "group" }>;
  const plan = matmulPlan(spec);
  const K = spec.K, NW = plan.weightRowsPerOut, OUT = plan.outCols;
  const g = groupLayout(w, K);
  const UN = Math.ceil(K / UE); // units a row (the padded K)
  const unitsPerGroup = w.groupSize / UE;
  const T = reductionThreads(target, 256);
  const TPC = Math.max(NW, Math.min(pow2Floor(tune.threadsPerCol), T));
  const L = T / TPC;
  const GPT = Math.ceil(UN / TPC);
  let RB = pow2Floor(Math.max(1, Math.min(tune.rowsPerGroup, 32)));
  let CPT = pow2Floor(Math.max(1, tune.colsPerThread));
  // the reduction gives each output whole threads (CPT * RB * NW accumulators, at most TPC)
  // and workgroup storage for T * (accumulators + 1) + T floats
  const fold = () => ({ norm: !!spec.norm, normOut: !!spec.normOut, RB, TPC, COLS: L * CPT });
  const fits = () =>
    CPT * RB * NW <= TPC &&
    reductionBytes(T, CPT * RB * NW, fold()) <= target.limits.maxComputeWorkgroupStorageSize;
  while (!fits() && (CPT > 1 || RB > 1)) CPT > 1 ? CPT /= 2 : RB /= 2;
  const CU = Math.max(1, Math.min(tune.loadCols, CPT));
  const A = CPT * RB * NW; // accumulators a thread (q8Reduction checks A <= TPC)
  const vecX = K % 4 === 0;
  const ragged = UN * UE !== K; // the last unit runs past K
  // x quantised by the workgroup together (one row, whole units): V vec4s of x, their codes
  // in workgroup memory with a word of padding every 8 (a unit's 8 words start 9 apart, so
  // the threads reading their units hit distinct banks), and each unit's |x| max
  const V = K / 4;
  const XS = V + V / 8;
  const sharedXBytes = 4 * (XS + UN + Math.max(0, V - T * (A + 1)));
  const redBytes = reductionBytes(T, A, fold());
  const sharedX = (tune.sharedX ?? Math.ceil(V / T) <= SHARED_X_LOADS) && RB === 1 && !ragged &&
    redBytes + sharedXBytes <= target.limits.maxComputeWorkgroupStorageSize;
  const sharedBytes = redBytes + (sharedX ? sharedXBytes : 0);
  if (spec.normOut && (L * CPT) % 4 !== 0) {
    throw new RangeError(
      `matmulGemvQ8: normOut needs a multiple of 4 columns a block, got ${L * CPT}`,
    );
  }
  checkTarget(spec, target, {
    workgroupSize: T,
    sharedBytes,
    largestBinding: weightBindingBytes(w, spec.rows, K),
  });
  const COLS = L * CPT;
  const blocks = Math.ceil(OUT / COLS);
  const idle = GPT * TPC !== UN; // some threads' last unit is past the row

  // x: each owned unit of each row; with a folded norm (x arrives weighted), each thread's
  // share of the row's sum of squares too: x_ssq's 8 chunks of each of its units
  const norm = spec.norm ?? null;
  const C = Math.ceil(K / 4); // x_ssq chunks a row
  const xq: string[] = [];
  const loadsX: string[] = [];
  const normLines: string[] = [];
  // vec4 j of unit u<i> within the row (unit-major x: the row's 8 slices of UN vec4s)
  const units = !!spec.xUnits;
  const kv = (i: number, j: number) => units ? `${j * UN}u + u${i}` : `${UE / 4}u * u${i} + ${j}u`;
  const load = (rr: number, i: number, j: number) => {
    if (vecX) {
      const e = `x[xr${rr} + ${kv(i, j)}]`;
      return ragged ? `select(vec4<f32>(0.0), ${e}, 4u * (${kv(i, j)}) < ${K}u)` : e;
    }
    return `vec4<f32>(${
      [0, 1, 2, 3].map((l) => {
        const k = `4u * (${kv(i, j)}) + ${l}u`;
        return `select(0.0, x[xr${rr} + min(${k}, ${K - 1}u)], ${k} < ${K}u)`;
      }).join(", ")
    })`;
  };
  if (norm) normLines.push(range(RB).map((rr) => `var ss${rr} = 0.0;`).join(" "));
  if (sharedX) xq.push(sharedQuantise({ V, UN, T, TPC, GPT, idle, maxInt: g.maxInt, units }));
  for (let rr = 0; rr < RB; rr++) {
    loadsX.push(`let xr${rr} = min(r0 + ${rr}u, R.x - 1u) * ${vecX ? K / 4 : K}u;`);
    for (let i = 0; i < GPT; i++) {
      const v = `v${rr}_${i}_`;
      const live = idle && i === GPT - 1 ? `t + ${i * TPC}u < ${UN}u` : "";
      const on = live ? ` * select(0.0, 1.0, ${live})` : "";
      if (!sharedX) {
        loadsX.push(range(8).map((j) => `let ${v}${j} = ${load(rr, i, j)}${on};`).join(" "));
      }
      if (norm) {
        const chunks = range(8).map((j) => {
          const q = kv(i, j); // (x_ssq's chunks are x's vec4s)
          return `select(0.0, x_ssq[min(r0 + ${rr}u, R.x - 1u) * ${C}u + min(${q}, ${
            C - 1
          }u)], ${q} < ${C}u)`;
        }).join(" + ");
        normLines.push(live ? `if (${live}) { ss${rr} += ${chunks}; }` : `ss${rr} += ${chunks};`);
      }
    }
  }
  for (let rr = 0; rr < (sharedX ? 0 : RB); rr++) {
    for (let i = 0; i < GPT; i++) {
      const v = `v${rr}_${i}_`;
      xq.push(
        `let ${v}m = max(max(max(abs(${v}0), abs(${v}1)), max(abs(${v}2), abs(${v}3))), max(max(abs(${v}4), abs(${v}5)), max(abs(${v}6), abs(${v}7))));`,
        `let ${v}a = max(max(${v}m.x, ${v}m.y), max(${v}m.z, ${v}m.w));`,
        `let xd${rr}_${i} = ${v}a * ${lit(1 / 127)};`,
        `let ${v}inv = select(0.0, 127.0 / ${v}a, ${v}a > 0.0);`,
        range(8).map((j) => `let ${v}q${j} = vec4<i32>(round(${v}${j} * ${v}inv));`).join(" "),
        `let xc${rr}_${i} = ${g.maxInt} * dot(((${v}q0 + ${v}q1) + (${v}q2 + ${v}q3)) + ((${v}q4 + ${v}q5) + (${v}q6 + ${v}q7)), vec4<i32>(1));`,
        // word w of the unit holds elements 8w..8w+7, element i at bits 4i: its low nibbles
        // (& 0x0f0f0f0f) are elements 0, 2, 4, 6, its high nibbles 1, 3, 5, 7
        range(4).map((wd) => {
          const a = `${v}q${2 * wd}`, b = `${v}q${2 * wd + 1}`;
          return packEvenOdd(a, b, `xl${rr}_${i}_${wd}`, `xh${rr}_${i}_${wd}`);
        }).join("\n  "),
      );
    }
  }

  // the scale of (weight row expression c, unit u)
  const halves = w.scaleDtype === "f16" && g.groups % 2 === 0;
  const gi = (i: number) => unitsPerGroup === 1 ? `u${i}` : `(u${i} / ${unitsPerGroup}u)`;
  const scale = (c: string, i: number) =>
    halves
      ? `unpack2x16float(q_scale[${c} * ${g.groups / 2}u + (${gi(i)} >> 1u)] >> ((${
        gi(i)
      } & 1u) * 16u)).x`
      : `q_scale_at(${c} * ${g.groups}u + ${gi(i)})`;

  // columns in chunks of CU: a chunk's loads, then its arithmetic
  const acc = (j: number, rr: number, n: number) => `a${(j * RB + rr) * NW + n}`;
  // `assign`: into loop-carried vars (the persistent shape's first chunk)
  const loads = (js: number[], assign = false) =>
    js.flatMap((j) => [
      `let c${j} = min(col0 + ${j}u, ${OUT - 1}u);`,
      ...range(NW).flatMap((n) => {
        const c = n ? `(${OUT}u + c${j})` : `c${j}`;
        const decl = assign ? "" : "let ";
        return range(GPT).map((i) =>
          `${decl}w${j}_${n}_${i} = q_weight[${c} * ${UN}u + u${i}]; ${decl}s${j}_${n}_${i} = ${
            scale(c, i)
          };`
        );
      }),
    ]);
  const math = (js: number[]) =>
    js.flatMap((j) =>
      range(NW).flatMap((n) =>
        range(GPT).flatMap((i) => {
          const q = `w${j}_${n}_${i}`;
          return [
            range(4).map((wd) => {
              const l = "xyzw"[wd];
              return `let ${q}l${wd} = ${q}.${l} & 0x0f0f0f0fu; let ${q}h${wd} = (${q}.${l} >> 4u) & 0x0f0f0f0fu;`;
            }).join(" "),
            ...range(RB).map((rr) => {
              const dots = range(4).map((wd) =>
                `dot4I8Packed(${q}l${wd}, xl${rr}_${i}_${wd}) + dot4I8Packed(${q}h${wd}, xh${rr}_${i}_${wd})`
              ).join(" + ");
              const a = acc(j, rr, n);
              return `${a} = fma(f32((${dots}) - xc${rr}_${i}), s${j}_${n}_${i} * xd${rr}_${i}, ${a});`;
            }),
          ];
        })
      )
    );
  const chunks: number[][] = [];
  for (let j0 = 0; j0 < CPT; j0 += CU) {
    chunks.push(range(Math.min(CU, CPT - j0)).map((x) => j0 + x));
  }
  // the first chunk's loads go out before x is quantised, and each chunk's loads before the
  // previous chunk's arithmetic (two chunks of loads in flight); persistent: PG workgroups a
  // row block walk the column blocks (x quantised once; the next block's first loads issued
  // before this block's reduction)
  const PG = tune.persistent ? Math.min(blocks, tune.persistent) : 0;
  const head = PG ? [] : loads(chunks[0]);
  const body: string[] = [];
  chunks.forEach((js, k) => {
    if (k + 1 < chunks.length) body.push(...loads(chunks[k + 1]));
    body.push(...math(js));
  });

  const reduce = q8Reduction({
    T,
    TPC,
    CPT,
    RB,
    NW,
    OUT,
    COLS,
    blocks,
    plan,
    block: PG ? "blk" : undefined,
    norm: norm ? { K, eps: norm.eps } : undefined,
    normOut: !!spec.normOut,
    residual: spec.epilogue === "add",
    outUnits: !!spec.outUnits,
    first: PG ? "first_blk" : undefined,
    redMin: sharedX ? V : 0,
  });
  const main = PG
    ? `${
      chunks[0].flatMap((j) =>
        range(NW).flatMap((n) =>
          range(GPT).map((i) => `var w${j}_${n}_${i}: vec4<u32>; var s${j}_${n}_${i}: f32;`)
        )
      ).join(" ")
    }
  var blk = wg % ${PG}u;
  { let col0 = blk * ${COLS}u + lane * ${CPT}u; ${loads(chunks[0], true).join(" ")} }
  ${reduce.init}
  ${reduce.prefetch("blk")}
  var first_blk = true;
  loop {
    if (blk >= ${blocks}u) { break; }
    let col0 = blk * ${COLS}u + lane * ${CPT}u;
    ${range(A).map((i) => `var a${i} = 0.0;`).join(" ")}
    ${body.join("\n    ")}
    {
      let col0 = min(blk + ${PG}u, ${blocks - 1}u) * ${COLS}u + lane * ${CPT}u;
      ${loads(chunks[0], true).join(" ")}
    }
    ${reduce.code}
    ${reduce.prefetch(`min(blk + ${PG}u, ${blocks - 1}u)`)}
    first_blk = false;
    workgroupBarrier(); // part and red are reused by the next block
    blk += ${PG}u;
  }`
    : `${reduce.init}
  ${reduce.prefetch(`(wg % ${blocks}u)`)}
  ${range(A).map((i) => `var a${i} = 0.0;`).join(" ")}
  ${body.join("\n  ")}
  ${reduce.code}`;
  const groups = PG || blocks;
  const types = {
    ...plan.types,
    x: vecX ? "array<vec4<f32>>" : "array<f32>",
    x_ssq: "array<f32>",
    norm_w: denseType(spec.normOut?.weightDtype ?? "f32"),
    out_w: "array<f32>",
    out_ssq: "array<f32>",
    q_weight: "array<vec4<u32>>",
  };
  const code = `${declareBindings(spec, types)}
${halves ? "" : denseReader("q_scale", w.scaleDtype)}
${spec.normOut ? denseReader("norm_w", spec.normOut.weightDtype) : ""}
${plan.prelude}
${reduce.decls}${
    sharedX
      ? `
var<workgroup> xs: array<u32, ${XS}>; // the int8 codes of x's vec4s (padded)
var<workgroup> xa: array<f32, ${UN}>; // each unit's |x| max`
      : ""
  }

${entry(T, totalGroups(RB, groups))}
  let r0 = (wg / ${groups}u) * ${RB}u;
  let lane = lid / ${TPC}u;
  let t = lid % ${TPC}u;
  let col0 = (wg % ${blocks}u) * ${COLS}u + lane * ${CPT}u;
  ${range(GPT).map((i) => `let u${i} = min(t + ${i * TPC}u, ${UN - 1}u);`).join(" ")}
  ${head.join("\n  ")}
  ${loadsX.join("\n  ")}
  ${normLines.join("\n  ")}
  ${xq.join("\n  ")}
  ${main}
}
`;
  return { code, entryPoint: "main", rowsPerGroup: RB, groupsPerRowBlock: groups };
}

/**
 * WGSL quantising row `xr0` of x (V vec4s, UN units of 8) by the whole workgroup, with the
 * same codes and scales as the per-thread form: (1) each thread reads vec4s lid, lid + T, ...
 * (coalesced) and stores each one's |x| max in `red`; (2) it reads them again (cache hits),
 * takes its unit's max from the 8 in `red`, and stores the int8 codes in `xs` (padded: a word
 * every 8, so that a unit's 8 words start 9 apart and the threads reading units hit distinct
 * banks) and, for a unit's first vec4, the unit's max in `xa`; (3) each thread takes its units
 * t, t + TPC, ... (GPT of them) as the GEMV wants them: `xl`/`xh` (elements 0, 2, 4, 6 and 1,
 * 3, 5, 7 of each 8), `xc` (maxInt times the codes' sum) and `xd` (the scale; 0 for a unit past
 * the row, which the idle threads' clamped unit index reads).
 */
function sharedQuantise(o: {
  V: number;
  UN: number;
  T: number;
  TPC: number;
  GPT: number;
  idle: boolean;
  maxInt: number;
  /** x unit-major: vec4 xi is vec4 xi / UN of unit xi % UN */
  units: boolean;
}): string {
  const { V, UN, T, TPC, GPT, units } = o;
  const NV = Math.ceil(V / T);
  const guard = (n: number, body: string) =>
    (n + 1) * T > V ? `if (xi${n} < ${V}u) { ${body} }` : `{ ${body} }`;
  const load = (n: number) => `x[xr0 + min(xi${n}, ${V - 1}u)]`;
  // the max of a unit's 8 vec4 maxima, from vec4 xi's place in red
  const m = (xi: string, k: number) =>
    units ? `red[(${xi} % ${UN}u) + ${k * UN}u]` : `red[(${xi} & ~7u) + ${k}u]`;
  const max8 = (xi: string) =>
    `max(max(max(${m(xi, 0)}, ${m(xi, 1)}), max(${m(xi, 2)}, ${m(xi, 3)})), max(max(${m(xi, 4)}, ${
      m(xi, 5)
    }), max(${m(xi, 6)}, ${m(xi, 7)})))`;
  // vec4 xi's padded place in xs (unit u's 8 words at 9u), and whether it starts its unit
  const slot = (xi: string) =>
    units ? `9u * (${xi} % ${UN}u) + ${xi} / ${UN}u` : `${xi} + (${xi} >> 3u)`;
  const lead = (xi: string) =>
    units
      ? `if (${xi} < ${UN}u) { xa[${xi}] = a; }`
      : `if ((${xi} & 7u) == 0u) { xa[${xi} >> 3u] = a; }`;
  const phase1 = range(NV).map((n) =>
    `let xi${n} = lid + ${n * T}u;
  ${guard(n, `let m = abs(${load(n)}); red[xi${n}] = max(max(m.x, m.y), max(m.z, m.w));`)}`
  ).join("\n  ");
  const phase2 = range(NV).map((n) =>
    guard(
      n,
      `let a = ${max8(`xi${n}`)};
    xs[${slot(`xi${n}`)}] = pack4xI8(vec4<i32>(round(${
        load(n)
      } * select(0.0, 127.0 / a, a > 0.0))));
    ${lead(`xi${n}`)}`,
    )
  ).join("\n  ");
  const owned = range(GPT).map((i) => {
    const w = (k: number) => `xw${i}_${k}`;
    const live = o.idle && i === GPT - 1 ? `t + ${i * TPC}u < ${UN}u` : "";
    return [
      `let xb${i} = 9u * u${i};`,
      range(8).map((k) => `let ${w(k)} = xs[xb${i} + ${k}u];`).join(" "),
      `let xd0_${i} = ${live ? `select(0.0, xa[u${i}], ${live})` : `xa[u${i}]`} * ${lit(1 / 127)};`,
      `let xc0_${i} = ${o.maxInt} * (${
        range(8).map((k) => `dot4I8Packed(${w(k)}, 0x01010101u)`).join(" + ")
      });`,
      // word wd pairs vec4s 2wd (A) and 2wd + 1 (B): xl = bytes (A0, A2, B0, B2), xh = (A1, A3, B1, B3)
      range(4).map((wd) => {
        const a = w(2 * wd), b = w(2 * wd + 1);
        return `let xl0_${i}_${wd} = (${a} & 0xffu) | ((${a} >> 8u) & 0xff00u) | ((${b} & 0xffu) << 16u) | ((${b} << 8u) & 0xff000000u); let xh0_${i}_${wd} = ((${a} >> 8u) & 0xffu) | ((${a} >> 16u) & 0xff00u) | ((${b} << 8u) & 0xff0000u) | (${b} & 0xff000000u);`;
      }).join("\n  "),
    ].join("\n  ");
  }).join("\n  ");
  return `// x quantised by the workgroup (coalesced reads; maxima and codes through workgroup memory)
  ${phase1}
  workgroupBarrier();
  ${phase2}
  workgroupBarrier();
  ${owned}`;
}

/** Slices of a folded norm's sum of squares (a row) in `q8Reduction`. */
const SS_SLICES = 32;

/** Workgroup storage of `q8Reduction` for T threads of A accumulators (red and part), with a
 * folded norm read the sums of squares of RB rows over TPC threads (ssq and pss), with one
 * written the squares of the block's RB x COLS outputs (hsq). */
function reductionBytes(
  T: number,
  A: number,
  f?: { norm: boolean; normOut: boolean; RB: number; TPC: number; COLS: number },
): number {
  const ss = f?.norm ? f.RB * (f.TPC + Math.min(SS_SLICES, f.TPC)) : 0;
  const hsq = f?.normOut ? f.RB * f.COLS : 0;
  return 4 * (T * (A + 1) + T + ss + hsq);
}

/**
 * The end of the q8 GEMV: each thread's A = CPT * RB * NW accumulators (a0..) are added up
 * over the TPC threads of its lane in workgroup memory (every thread writes its row of `red`,
 * padded by one word against bank conflicts; then T threads each add one output's slice; then
 * the slices' sums are added and stored through the epilogue). `decls` declares the workgroup
 * arrays (red: T * (A + 1) floats, part: T), `code` runs after the main loop. With `norm`, lane
 * 0's sums of squares (`ss<rr>`) ride along the same two barriers (ssq, then SS_SLICES slices
 * in pss) and each output is multiplied by its row's 1 / rms.
 */
function q8Reduction(o: {
  T: number;
  TPC: number;
  CPT: number;
  RB: number;
  NW: number;
  OUT: number;
  COLS: number;
  blocks: number;
  plan: ReturnType<typeof matmulPlan>;
  /** WGSL for the column block being stored (default `wg % blocks`). */
  block?: string;
  /** A folded norm read: the row length and eps (the outputs are scaled here). */
  norm?: { K: number; eps: number };
  /** A folded norm written: out_w and out_ssq besides out (the epilogue without silu_mul). */
  normOut?: boolean;
  /** The add epilogue (its residual is loaded early with a folded norm written). */
  residual?: boolean;
  /** out_w and out_ssq written unit-major (with normOut). */
  outUnits?: boolean;
  /** Persistent shape: the name of a bool that is true in the first block only (the row's
   * 1 / rms of a folded norm is computed there and kept). */
  first?: string;
  /** `red` holds at least this many floats (the workgroup-quantised x's maxima use it first). */
  redMin?: number;
}): { decls: string; code: string; init: string; prefetch: (block: string) => string } {
  const { T, TPC, CPT, RB, NW, OUT, COLS, blocks, plan } = o;
  const block = o.block ?? `(wg % ${blocks}u)`;
  const L = T / TPC, A = CPT * RB * NW, OUTS = A * L;
  if (A > TPC) throw new RangeError(`q8Reduction: ${A} accumulators exceed ${TPC} threads a lane`);
  const SEGS = T / OUTS; // threads adding up one output
  const PER = TPC / SEGS; // partials each of them adds
  const norm = o.norm;
  const SS = Math.min(SS_SLICES, TPC), SSV = Math.ceil(SS / 4);
  const once = (code: string) => (o.first && code
    ? `
  if (${o.first}) {${code}
  }`
    : code);
  const scaled = (e: string) => norm ? `(${e}) * inv` : e;
  // storing thread lid = (lane l, o = column j * RB + row rr): its column of block `blk` and
  // its row (also where its epilogue's loads are issued early)
  const at = (blk: string) =>
    `${blk} * ${COLS}u + (lid / ${CPT * RB}u) * ${CPT}u + (lid % ${CPT * RB}u) / ${RB}u`;
  const rowOf = `(lid % ${RB}u)`; // (CPT * RB is a multiple of RB)
  const atRow = `(r0 + ${rowOf})`;
  const res = !!(o.normOut && o.residual);
  const sum = (n: number) =>
    scaled(range(SEGS).map((s) => `part[${s * OUTS}u + p${n}]`).join(" + "));
  const ssDecls = norm
    ? `
var<workgroup> ssq: array<f32, ${RB * TPC}>; // [RB][TPC] lane 0's sums of squares
var<workgroup> pss: array<vec4<f32>, ${RB * SSV}>; // [RB][${SSV}] their ${SS} slices' sums`
    : "";
  const ssWrite = norm
    ? once(`
  if (lid < ${TPC}u) { ${range(RB).map((rr) => `ssq[${rr * TPC}u + lid] = ss${rr};`).join(" ")} }`)
    : "";
  const ssSlices = norm
    ? once(`
  if (lid < ${RB * SS}u) {
    // slice s of row rr: lane 0's threads s, s + ${SS}, ... (conflict-free)
    let rs = lid / ${SS}u;
    let sl = lid % ${SS}u;
    var v = 0.0;
    for (var i = 0u; i < ${TPC / SS}u; i++) { v += ssq[rs * ${TPC}u + sl + i * ${SS}u]; }
    pss[rs * ${SSV}u + sl / 4u][sl % 4u] = v;
  }`)
    : "";
  const tree = (xs: string[]): string =>
    xs.length === 1
      ? xs[0]
      : `(${tree(xs.slice(0, xs.length >> 1))} + ${tree(xs.slice(xs.length >> 1))})`;
  const ssInv = norm
    ? once(`
    inv = inverseSqrt(dot(${
      tree(range(SSV).map((k) => `pss[rr * ${SSV}u + ${k}u]`))
    }, vec4<f32>(1.0)) * ${lit(1 / norm.K)} + ${lit(norm.eps)});`)
    : "";
  const prefetch = (blk: string) =>
    o.normOut
      ? `if (lid < ${L * CPT * RB}u) {
    let c = min(${at(blk)}, ${OUT - 1}u);
    pre_nw = norm_w_at(c);${
        res
          ? `
    pre_res = residual[${plan.outIndex(`min(${atRow}, R.x - 1u)`, "c")}];`
          : ""
      }
  }`
      : "";
  const init = [
    norm ? "var inv = 0.0; // the row's 1 / rms (a storing thread's row)" : "",
    o.normOut ? `var pre_nw = 0.0;${res ? " var pre_res = 0.0;" : ""}` : "",
  ].filter(Boolean).join("\n  ");
  return {
    decls: `var<workgroup> red: array<f32, ${
      Math.max(T * (A + 1), o.redMin ?? 0)
    }>; // [T][A + 1]: thread lid's accumulators (first x's maxima, where x is quantised here)
var<workgroup> part: array<f32, ${T}>; // [SEGS][OUTS]${ssDecls}${
      o.normOut
        ? `
var<workgroup> hsq: array<f32, ${COLS * RB}>; // [COLS][RB] squares of the block's outputs`
        : ""
    }`,
    code: `${range(A).map((i) => `red[lid * ${A + 1}u + ${i}u] = a${i};`).join(" ")}${ssWrite}
  workgroupBarrier();
  {
    // output p = (lane l, accumulator a) of thread slice s: partials t in [s * PER, (s + 1) * PER)
    let p = lid % ${OUTS}u;
    let s = lid / ${OUTS}u;
    let base = ((p / ${A}u) * ${TPC}u + s * ${PER}u) * ${A + 1}u + p % ${A}u;
    var v = 0.0;
    for (var i = 0u; i < ${PER}u; i++) { v += red[base + i * ${A + 1}u]; }
    part[lid] = v;
  }${ssSlices}
  workgroupBarrier();
  if (lid < ${L * CPT * RB}u) {
    // (lane l, column j, row rr) adds up its slices
    let l = lid / ${CPT * RB}u;
    let o = lid % ${CPT * RB}u;
    let rr = ${rowOf};
    let c = ${at(block)};
    let p0 = l * ${A}u + o * ${NW}u;${NW === 2 ? " let p1 = p0 + 1u;" : ""}${ssInv}
    ${
      o.normOut
        ? `var y = 0.0;
    if (r0 + rr < R.x && c < ${OUT}u) {
      y = ${plan.value("(r0 + rr)", "c", sum(0), "pre_res")};
      let oi = ${plan.outIndex("(r0 + rr)", "c")};
      out[oi] = y;
      out_w[${o.outUnits ? `(r0 + rr) * ${OUT}u + ${unitElem("c", OUT)}` : "oi"}] = y * pre_nw;
    }
    hsq[lid] = y * y; // lid = (column of the block) * ${RB} + rr`
        : `if (r0 + rr < R.x && c < ${OUT}u) {
      ${plan.store("(r0 + rr)", "c", sum(0), NW === 2 ? sum(1) : "")}
    }`
    }
  }${
      o.normOut
        ? `
  workgroupBarrier();
  if (lid < ${(COLS / 4) * RB}u) {
    // chunk q (block columns 4q..4q+3) of row rr: its sum of squares
    let rr = lid % ${RB}u;
    let q = lid / ${RB}u;
    let cq = ${block} * ${COLS / 4}u + q;
    if (r0 + rr < R.x && 4u * cq < ${OUT}u) {
      out_ssq[(r0 + rr) * ${Math.ceil(OUT / 4)}u + ${o.outUnits ? unitChunk("cq", OUT) : "cq"}] = ${
          range(4).map((k) => `hsq[(4u * q + ${k}u) * ${RB}u + rr]`).join(" + ")
        };
    }
  }`
        : ""
    }`,
    init,
    prefetch,
  };
}
