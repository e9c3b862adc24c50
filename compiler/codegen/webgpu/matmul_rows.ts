/**
 * The few-rows matmul shape (batched decode, short prompts: up to 32 rows of x) for 4-bit
 * group weights. At 16 rows a GEMV is bound by its reads of x (each x vec4 serves one
 * thread's few columns), not by the weights; here each weight element is decoded once, in
 * the registers of one thread, and multiplied by every row of x in the block:
 *
 * - a lane (one of 32 a warp) owns C output columns (C * NW weight rows) and every row of
 *   the block (RB); the S warps of a workgroup split K unit by unit (32 elements a unit);
 * - all lanes of a warp read the same x vec4 at the same time (one load, broadcast), so x
 *   costs a load per 4 elements, row and C * NW weight rows;
 * - the next unit's codes and scales are loaded before this unit's arithmetic;
 * - a block of fewer rows than RB (R past the last full block) runs a copy of the loop for
 *   the block's half or quarter (no branches on the row count inside the loop);
 * - the warps' partial sums meet in workgroup memory, in passes that fit it;
 * - with `kSplit`, K is also split across workgroups: each writes its range's partial sums
 *   (a `sum_splits` adds them up), so that weights of few rows still fill the GPU;
 * - with `xq8`, the workgroup quantises the S units its warps take next (all rows of the
 *   block: int8 codes, d and the codes' sum) into workgroup memory between two barriers, the
 *   warps' weight loads issued before it, and each lane multiplies with packed int8 dot
 *   products (the 4-bit codes as bytes, the offset through the code sum);
 * - with `xCodes` (x as `quantize_q8` rows, written once before the matmul), no
 *   quantisation and no barriers: each thread reads its unit's codes and (d, code sum) of
 *   every row of the block, the next unit's weights prefetched as on f32 x; a warp's threads
 *   take 4 consecutive units of 8 lanes' columns (`unitLanes`), so that a load of a weight
 *   row's codes reads 64 consecutive bytes of 8 rows instead of 16 bytes of 32 (gate_up's
 *   share of the 8B's batch-16 step 3.55 → 2.89 ms on the H100); where a thread walks many
 *   steps, the codes of the block's first two rows are loaded a unit ahead too (`prefetchRows`);
 * - with `outCodes`, the block's outputs (whole 32-element blocks of each row: 32 x C columns)
 *   go to workgroup memory and are written as `quantize_q8` codes (`sharedPairCodes`), the next
 *   matmul's x (batched gate_up writing down's).
 * @module
 */
import {
  groupLayout,
  hasPackedDot,
  kSplitError,
  kSplitLen,
  PACKED_DOT,
  q8CodesError,
  q8RowWords,
  type TargetInfo,
  type WeightFormat,
  type WgslKernel,
} from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  entry,
  lit,
  range,
  reductionPass,
  totalGroups,
} from "./common.ts";
import { type MatmulPlan, matmulPlan, type MatmulSpec } from "./matmul_epilogue.ts";
import { weightUnit } from "./matmul_gemv_unit.ts";
import { quantiseBlock, sharedPairCodes } from "./quantize_q8.ts";

/** Tuning knobs of the few-rows shape (defaults: `rowsDefaults`). */
export interface RowsTuning {
  /** Rows of x a workgroup (a multiple of 4, at most 32). */
  rowsPerGroup: number;
  /** Output columns a lane (each NW weight rows: 2 for silu_mul). */
  colsPerLane: number;
  /** Warps a workgroup, splitting K (32 threads each). */
  warps: number;
  /** Load the next unit's codes before this unit's arithmetic (f32 x; with xq8 a step's
   * codes are always loaded before its quantisation). */
  prefetch: boolean;
  /** Copies of the loop for the block's first half, quarter, ... (down to 4 rows), so that a
   * block of few rows (R under the block) skips the rows past R; without it every row of the
   * block is computed (rows past R read row R - 1). No loop branches on the row count
   * inside (such branches kept the compiler from issuing x loads early: 30-50% slower). */
  skipRows: boolean;
  /** With `xCodes`: the units of a step a warp's threads take (1, also where unset: the
   * warp's 32 threads one unit, each its lane's columns; UW > 1: UW consecutive units, 32 / UW
   * lanes' columns), so that a warp's load of a weight row's codes reads UW consecutive units
   * (32 / UW lines a load instead of 32) and x's codes are read for UW units at once instead
   * of broadcast. A divisor of the warps and of 32. */
  unitLanes?: number;
  /** With `xCodes` and `prefetch`: rows of the block whose codes of x are loaded a unit
   * ahead, with the weights (0 where unset; more registers a thread). */
  prefetchRows?: number;
}

/** Lanes a warp: threads that share one x load. Correct for any subgroup size. */
const LANES = 32;
/** Column blocks that about fill an H100's 132 SMs once (1B's gate_up has 128). */
const MANY_BLOCKS = 128;

/** Whether the few-rows shape reads this weight: 4-bit groups of a multiple of 32 elements
 * covering K exactly, and K a multiple of 32. */
export function rowsShapeFits(w: WeightFormat, K: number): boolean {
  return w.kind === "group" && w.bits === 4 && w.groupSize % 32 === 0 && K % w.groupSize === 0;
}

/** Default tuning: 4 weight rows a lane, 8 warps, loops for 8 and 4 rows (16, 8 and 4 for
 * silu_mul, and for every shape with x given as quantize_q8 rows). Measured on the H100 at 4,
 * 8 and 16 rows (`matmul_bench.ts --batch16`): 16-row blocks of 4 weight rows a lane were
 * erratic without silu_mul on f32 x (some shapes 1.5-3x slower, some timings unusable), and
 * 8-row blocks lost only ~10% at 16 rows. On `xCodes` (no workgroup quantisation), 16-row
 * blocks where a warp has more than 4 units of its K range: in the 8B's batch-16 step on the
 * H100 (`bench/gpu/mod.ts --batches=16`, µs a step) down (14 units a warp) 2,070 → 1,728 and
 * lm_head (16) 513 → 374, but qkv (4) 1,223 → 1,319 and the 1B's step 2.74 → 2.90 ms with
 * 16-row blocks everywhere. On `xCodes`, a warp's threads on 4 units of a step (`unitLanes`):
 * batch-16 step, kernels only, 1 / 2 / 4 / 8 units a warp: 8B 8.20 / 7.71 / 7.49 / 7.77 ms,
 * 1B 2.07 / 1.98 / 1.95 / 2.01, 0.5B 1.90 / 1.88 / 1.89 / 1.99 (one call). */
export function rowsDefaults(spec: MatmulSpec): RowsTuning {
  const plan = matmulPlan(spec);
  const NW = plan.weightRowsPerOut;
  const warps = 8;
  const perWarp = spec.K / 32 / (spec.kSplit ?? 1) / warps;
  const RB = (NW === 2 || (spec.xCodes && perWarp > 4)) && spec.maxRows >= 16 ? 16 : 8;
  return {
    rowsPerGroup: RB,
    colsPerLane: shortSplit(spec, plan) ? 1 : twoColumns(spec, plan) ? 2 : 4 / NW,
    warps,
    prefetch: true,
    skipRows: true,
    ...(spec.xCodes ? { unitLanes: 4, prefetchRows: perWarp >= PREFETCH_X_STEPS ? 2 : 0 } : {}),
  };
}

/**
 * Whether `matmulKernel` takes the few-rows shape: 8 to 32 rows, 4-bit group weights, and
 * at least MANY_BLOCKS column blocks (`columnBlocks`: weights of many rows for
 * their K: gate_up, lm_head). Where the weight has few rows (qkv, o_proj, down) a lane's
 * long K loop runs on too few SMs and the GEMV shape was as fast or faster at 4-16 rows.
 */
export function rowsShapeWins(spec: MatmulSpec): boolean {
  if (spec.maxRows < ROWS_MIN || spec.maxRows > ROWS_MAX) return false;
  if (!rowsShapeFits(spec.weight, spec.K)) return false;
  return columnBlocks(spec) >= MANY_BLOCKS;
}

/** Columns a lane by which the shape and the K split are chosen: 4 weight rows a lane, or
 * one column under `shortSplit` (`twoColumns` narrows them later, on the split chosen). */
function splitColumns(spec: MatmulSpec, plan = matmulPlan(spec)): number {
  return shortSplit(spec, plan) ? 1 : 4 / plan.weightRowsPerOut;
}

/** Column blocks (workgroups a row block, without a K split) at `splitColumns`. */
function columnBlocks(spec: MatmulSpec): number {
  const plan = matmulPlan(spec);
  return Math.ceil(plan.outCols / (LANES * splitColumns(spec, plan)));
}

/**
 * Whether a matmul is a short-K one that `rowsSplitK` splits into ranges of at least
 * SHORT_SPLIT_UNITS units, its lanes a column each: one weight row an output, K under
 * SHORT_K_UNITS units, fewer than MANY_BLOCKS column blocks at 4 columns a lane (the 0.5B's
 * qkv, 1152 x 896, and o_proj, 896 x 896, which ran unsplit on 9 and 7 workgroups). On the
 * H100 in the 0.5B's batch-16 step (`bench/gpu/mod.ts`, temporary switches): qkv 282 → 128 µs
 * (its `sum_splits`, which carries Qwen's bias, since folded into `attention_decode`), o_proj
 * 268 → 124 at 4 splits; 2 columns a lane 162 / 154; the 1B's and 8B's K are not short.
 */
function shortSplit(spec: MatmulSpec, plan = matmulPlan(spec)): boolean {
  return plan.weightRowsPerOut === 1 && spec.K / 32 < SHORT_K_UNITS && fewBlocksAt4(plan);
}

/** Whether a weight of one row an output has fewer than MANY_BLOCKS column blocks at 4 columns
 * a lane (K split unless short-split). */
function fewBlocksAt4(plan: MatmulPlan): boolean {
  return Math.ceil(plan.outCols / (LANES * 4)) < MANY_BLOCKS;
}

/**
 * Whether a matmul on `xCodes` with one weight row an output takes 2 columns a lane instead
 * of 4 (its K split already chosen at 4: `columnBlocks`): where it has fewer than MANY_BLOCKS
 * column blocks at 4 (K split) and K is at most LONG_K_UNITS units, or many blocks and a short
 * K (the 0.5B's lm_head, 151936 x 896: 3.5 units a warp). Twice the workgroups, each with
 * half the accumulators: more of them in flight where a workgroup's K range is short (the 8B's
 * qkv and o_proj, 4 ranges of 32 units: 4 units a warp). On the H100 (`bench/gpu/mod.ts
 * --batches=8,16`, twice against 4 columns in one call), kernels a step at 8 / 16 rows: 8B
 * 4.889 → 4.72, 7.22 → 7.06 ms (qkv 1,015 → 915, o_proj 795 → 765 µs at 16); 1B 1.324 →
 * 1.293, 1.873 → 1.823; 0.5B 1.347 → 1.320, 1.640 → 1.600. Not taken: the 8B's down (4
 * ranges of 112 units: 1,591 → 1,940 µs at 16 rows) and the 1B's and 8B's lm_head (64 and
 * 128 units, many blocks: 174 → 238, 332 → 379 µs). Also slower (one call): half the K
 * splits at 2 columns (8B b=16 7.04 → 7.58 ms), 16-row blocks at 2 columns (→ 7.36).
 */
function twoColumns(spec: MatmulSpec, plan = matmulPlan(spec)): boolean {
  if (plan.weightRowsPerOut !== 1 || !spec.xCodes) return false;
  const units = spec.K / 32;
  return fewBlocksAt4(plan) ? units <= LONG_K_UNITS : units < SHORT_K_UNITS;
}

/** Steps (S units each) of a workgroup's K range from which `xCodes` loads two rows' codes of
 * x a unit ahead (`prefetchRows`): the 8B's gate_up, down and lm_head (14-16), not the short
 * ranges of its K splits or the 1B's and 0.5B's matmuls (2-8), which lost with it. */
const PREFETCH_X_STEPS = 12;
/** Units (32 elements) a workgroup's K range keeps at least under `rowsSplitK`: two a warp. */
const MIN_SPLIT_UNITS = 16;
/** A weight's K under this many units is short: too few for two MIN_SPLIT_UNITS ranges. */
const SHORT_K_UNITS = 2 * MIN_SPLIT_UNITS;
/** The longest K (units) at which a K-split matmul takes 2 columns a lane (`twoColumns`), and
 * the shortest whose K ranges keep LONG_SPLIT_UNITS. */
const LONG_K_UNITS = 256;
/** Units a K range keeps at least under `rowsSplitK` where K has LONG_K_UNITS or more: the
 * 1B's down (256 units) in 4 ranges, not 8. On the H100 (`bench/gpu/mod.ts --batches=16`, a
 * temporary switch capping every split at 4, twice in one call): the 1B's b=16 step 1.800,
 * 1.788 → 1.637, 1.648 ms, though its down alone was no faster (383 → 389-391 µs): the step's
 * add_rms_norm (which adds the ranges up) and the kernels after it ran faster; the same cap
 * on the 0.5B's down (152 units, 8 ranges) cost 5%, and the 8B's down (448) has 4 already.
 * This rule against the tree without it (`--batches=8,16`, alternating twice in one call): 1B
 * 1.302 → 1.277 ms at 8 rows, 1.789 → 1.650 at 16; 8B and 0.5B unchanged. */
const LONG_SPLIT_UNITS = 64;
/** Units a K range keeps at least under `rowsSplitK` where K is short (`shortSplit`). */
const SHORT_SPLIT_UNITS = 4;
/** The most rows the shape is chosen for (`GEMV_MAX_ROWS`: past it, the tiled shape). */
const ROWS_MAX = 32;
/** The fewest rows (`maxRows`) the shape is chosen for. */
export const ROWS_MIN = 8;

/**
 * The `kSplit` under which the few-rows shape should run a matmul it does not win as is
 * (`rowsShapeWins` false: too few column blocks), or 1 (leave it to the GEMV): the fewest
 * (a power of two) that give MANY_BLOCKS workgroups a row block, each range keeping at least
 * MIN_SPLIT_UNITS units (LONG_SPLIT_UNITS where K is long, SHORT_SPLIT_UNITS where short).
 * For matmuls of 8 to 32 rows, 4-bit group weights, epilogue none or add. Measured on the H100
 * (8B at 16 rows, K split without the second pass): down 85-87 against the GEMV's 101 µs, qkv
 * 42 against 71, o_proj 29-31 against 51.
 */
export function rowsSplitK(spec: MatmulSpec): number {
  if (spec.maxRows < ROWS_MIN || spec.maxRows > ROWS_MAX) return 1;
  if (!rowsShapeFits(spec.weight, spec.K) || rowsShapeWins(spec)) return 1;
  if (spec.epilogue === "silu_mul" || spec.rowStart !== 0 || spec.rows !== spec.N) return 1;
  const blocks = columnBlocks(spec);
  const most = Math.floor(spec.K / 32 / leastSplitUnits(spec));
  let ks = 2;
  while (ks * 2 <= most && blocks * ks < MANY_BLOCKS) ks *= 2;
  return ks <= most ? ks : 1;
}

/** Units a K range keeps at least under `rowsSplitK`. */
function leastSplitUnits(spec: MatmulSpec): number {
  if (shortSplit(spec)) return SHORT_SPLIT_UNITS;
  return spec.K / 32 >= LONG_K_UNITS ? LONG_SPLIT_UNITS : MIN_SPLIT_UNITS;
}

/** WGSL for a few-rows `matmul` (4-bit group weights, see `rowsShapeFits`; any R). */
export function matmulRows(
  spec: MatmulSpec,
  target: TargetInfo,
  tune: RowsTuning = rowsDefaults(spec),
): WgslKernel {
  const w = spec.weight;
  if (!rowsShapeFits(w, spec.K) || w.kind !== "group") {
    throw new RangeError(
      `matmulRows: needs 4-bit group weights whose groups (a multiple of 32) divide K; got ${
        JSON.stringify(w)
      }, K ${spec.K}`,
    );
  }
  const plan = matmulPlan(spec);
  const K = spec.K, NW = plan.weightRowsPerOut, OUT = plan.outCols;
  const g = groupLayout(w, K);
  const UN = K / 32; // units (4 code words) a weight row
  // kSplit: workgroups of split s take units [s * UL, (s + 1) * UL) and write partial sums
  const split = kSplitError(spec);
  if (split) throw new RangeError(split);
  const KS = spec.kSplit ?? 1;
  if (spec.kSplitRows !== undefined) {
    throw new RangeError("matmulRows: kSplitRows (ranges by the dispatch's rows) is the q8 tiles'");
  }
  const UL = kSplitLen(K, KS) / 32;
  const RB = Math.max(4, Math.min(32, 4 * Math.ceil(tune.rowsPerGroup / 4)));
  const C = Math.max(1, Math.floor(tune.colsPerLane));
  const S = Math.max(1, Math.floor(tune.warps));
  const T = S * LANES;
  const WR = C * NW; // weight rows a lane
  const A = WR * RB; // accumulators a lane
  const COLS = LANES * C;
  const blocks = Math.ceil(OUT / COLS);
  const budget = target.limits.maxComputeWorkgroupStorageSize;
  // accumulators reduced per pass: whole (column, row) outputs within workgroup storage
  const Q8 = !!spec.xq8;
  if (Q8 && (spec.norm || spec.normOut || spec.xUnits)) {
    throw new RangeError("matmulRows: xq8 with norm, normOut or unit-major x is the q8 GEMV's");
  }
  if (Q8 && !hasPackedDot(target)) {
    throw new RangeError(`matmulRows: xq8 needs ${PACKED_DOT}`);
  }
  // xCodes: x arrives as quantize_q8 rows, each thread reads its unit's codes itself
  const CODES = !!spec.xCodes;
  // unitLanes: thread t of warp w takes unit (w % (S / UW)) UW + t % UW of a step and the
  // columns of lane (w / (S / UW)) (32 / UW) + t / UW (UW = 1: unit w, lane t)
  const UW = CODES ? Math.max(1, Math.floor(tune.unitLanes ?? 1)) : 1;
  if (S % UW !== 0 || LANES % UW !== 0) {
    throw new RangeError(`matmulRows: unitLanes ${UW} must divide the warps (${S}) and ${LANES}`);
  }
  const SW = S / UW, LW = LANES / UW; // warps a lane's units span, lanes a warp
  // the thread (local index) of a lane and a unit of the step
  const thread = (lane: string, unit: number) =>
    `(${lane} / ${LW}u) * ${SW * LANES}u + (${lane} % ${LW}u) * ${UW}u + ${
      Math.floor(unit / UW) * LANES + unit % UW
    }u`;
  const codesErr = q8CodesError(spec);
  if (codesErr) throw new RangeError(codesErr);
  const q8Bytes = Q8 && !CODES ? 40 * S * RB : 0; // xq (32 bytes) and xm (8) a (unit, row)
  // outCodes: the block's outputs (RB rows x COLS) in workgroup memory, then a thread a pair
  // of vec4s rounds them to codes (`sharedPairCodes`), the blocks' max and sums in pm, pk
  const OC = !!spec.outCodes;
  const NPB = (RB * COLS) / 8; // pairs of the block
  if (OC && (NPB > T || COLS % 32 !== 0)) {
    throw new RangeError(
      `matmulRows outCodes: ${RB} rows x ${COLS} columns a block need ${NPB} threads, the workgroup has ${T}`,
    );
  }
  const codesBytes = OC ? 4 * RB * COLS + 8 * NPB : 0;
  const P = reductionPass("matmulRows", A, NW, T, budget - q8Bytes - codesBytes);
  checkTarget(spec, target, {
    workgroupSize: T,
    sharedBytes: 4 * P * T + q8Bytes + codesBytes,
    largestBinding: spec.rows * g.wordsPerRow * 4,
  });
  // weight row m of the lane: column c = floor(m / NW), row n = m % NW
  const wrow = (m: number) => `cw${m}`;
  const acc = (m: number, r: number) => `a${m}_${r}`;
  // units of 4 code words (vec4<u32>) and their scales, read as the GEMV reads them
  const unit = weightUnit(w, K, 4);
  if (unit.elems !== 32) {
    throw new Error(`matmulRows: expected 32-element units, got ${unit.elems}`);
  }
  // codes (`${p}${m}_q`) and scale (`${p}${m}_s`) of unit u for every weight row m; "assign"
  // stores them into the vars of that name (`j` keeps the group lets of two uses apart)
  const loads = (p: string, u: string, decl: "let" | "assign") =>
    decl === "let"
      ? `${unit.prep(u, 0)}
    ${range(WR).map((m) => unit.load(wrow(m), u, `${p}${m}_`, 0)).join("\n    ")}`
      : `{
      ${unit.prep(u, 1)}
      ${
        range(WR).map((m) =>
          `${unit.load(wrow(m), u, `t${m}_`, 1)} ${p}${m}_q = t${m}_q; ${p}${m}_s = t${m}_s;`
        ).join("\n      ")
      }
    }`;
  // codes at their bit offsets: lane l of a vec4 holds q * 16^l; its scale carries 16^-l
  const MASK = `vec4<u32>(0xfu, 0xf0u, 0xf00u, 0xf000u)`;
  const OFF = `vec4<f32>(${
    [0, 1, 2, 3].map((l) => `${2 ** 23 + g.maxInt * 16 ** l}.0`).join(", ")
  })`;
  const INV = `vec4<f32>(1.0, 0.0625, 0.00390625, 0.000244140625)`;
  // q8 (`xq8`): unit u's codes of each row, quantised by the workgroup into xq (2 vec4<u32>:
  // words lo0, hi0, ..., lo3, hi3, lo_w the codes of elements 8w, 8w+2, 8w+4, 8w+6 and hi_w
  // of 8w+1, ..., as the weight's nibbles fall out of (word & 0x0f0f0f0f) and (word >> 4) & ..)
  // and xm (the unit's d and code sum): packed int8 dot products against the 4-bit codes,
  // sum((q - maxInt) c) = sum(q c) - maxInt sum(c), times the weight's scale and d
  // xCodes: row r's codes of unit u (two vec4s) and the vec4 of its (d, code sum) pair, as
  // `${p}0_r`, `${p}1_r` and `${p}v_r` ("assign": into the vars of those names)
  const xLoads = (p: string, r: number, u: string, decl: "let" | "assign") => {
    const d = decl === "let" ? "let " : "";
    const at = `x[xr${r} + 2u * ${u}`;
    return `${d}${p}0_${r} = ${at}]; ${d}${p}1_${r} = ${at} + 1u]; ${d}${p}v_${r} = x[xr${r} + ${
      K / 16
    }u + ${u} / 2u];`;
  };
  // prefetchRows: the block's first PX rows' codes loaded a unit ahead, with the weights
  const PX = (nrows: number) =>
    CODES && tune.prefetch ? Math.min(nrows, Math.floor(tune.prefetchRows ?? 0)) : 0;
  const arith8 = (p: string, nrows: number) => {
    const out: string[] = [];
    for (let m = 0; m < WR; m++) {
      const q = `${p}${m}_q`;
      out.push(`let wl${m} = ${q} & NIB; let wh${m} = (${q} >> vec4<u32>(4u)) & NIB;`);
    }
    for (let r = 0; r < nrows; r++) {
      out.push(
        CODES
          ? `${
            r < PX(nrows)
              ? `let c0_${r} = px0_${r}; let c1_${r} = px1_${r}; let cv_${r} = pxv_${r};`
              : xLoads("c", r, "u", "let")
          } let xm${r} = bitcast<vec2<f32>>(select(cv_${r}.zw, cv_${r}.xy, (u & 1u) == 0u));`
          : `let c0_${r} = xq[${2 * r}u + qs]; let c1_${r} = xq[${
            2 * r + 1
          }u + qs]; let xm${r} = xm[${r}u + ms];`,
      );
      // the unit's integer sum s (|s| < 2^22) as a float from its bits: 0x4b400000 + s is
      // 1.5 * 2^23 + s, less xo (1.5 * 2^23 and the offset maxInt * sum(c)), exactly f32(s)
      // less the offset; an integer add in place of NVIDIA's int-to-float (16 a clock an SM)
      out.push(`let xo${r} = 12582912.0 + ${g.maxInt}.0 * xm${r}.y;`);
      for (let m = 0; m < WR; m++) {
        const a = acc(m, r);
        const sum = `unit_dot(0x4b400000, wl${m}, wh${m}, c0_${r}, c1_${r})`;
        out.push(`${a} = fma(bitcast<f32>(${sum}) - xo${r}, ${p}${m}_s * xm${r}.x, ${a});`);
      }
    }
    return out.join("\n    ");
  };
  // the arithmetic of unit u for the block's first `nrows` rows (no branches inside)
  const arith = (p: string, nrows: number) => {
    if (Q8) return arith8(p, nrows);
    const out: string[] = [];
    for (let m = 0; m < WR; m++) out.push(`let ${p}v${m} = ${p}${m}_s * INV;`);
    for (let i = 0; i < 8; i++) {
      const word = ["x", "y", "z", "w"][i >> 1];
      for (let m = 0; m < WR; m++) {
        const src = i & 1 ? `(${p}${m}_q.${word} >> 16u)` : `${p}${m}_q.${word}`;
        out.push(
          `let d${i}_${m} = decode(${src}, ${p}v${m});`,
        );
      }
      for (let r = 0; r < nrows; r++) out.push(`let x${i}_${r} = x[xr${r} + u * 8u + ${i}u];`);
      for (let r = 0; r < nrows; r++) {
        for (let m = 0; m < WR; m++) {
          const a = acc(m, r), d = `d${i}_${m}`, xv = `x${i}_${r}`;
          out.push(
            `${a} = dot4(${d}, ${xv}, ${a});`,
          );
        }
      }
    }
    return out.join("\n    ");
  };
  // q8: step by step, the workgroup quantises the S units the warps take next (all RB rows)
  // into xq and xm, then each warp multiplies its unit
  const QN = S * RB; // (unit, row) pairs a step
  const quantise = `for (var qi = lid; qi < ${QN}u; qi += ${T}u) {
      let j = qi % ${S}u;
      let rr = qi / ${S}u;
      let uq = ub + j;
      if (uq < u1) {
        let xb = min(r0 + rr, R.x - 1u) * ${K / 4}u + uq * 8u;
        ${range(8).map((i) => `let v${i} = x[xb + ${i}u];`).join(" ")}
        ${quantiseBlock((i) => `v${i}`, "")}
        let slot = j * ${RB}u + rr;
        xq[2u * slot] = vec4<u32>(lo0, hi0, lo1, hi1);
        xq[2u * slot + 1u] = vec4<u32>(lo2, hi2, lo3, hi3);
        let ks = ${range(8).map((i) => `k${i}`).join(" + ")};
        xm[slot] = vec2<f32>(a * ${lit(1 / 127)}, f32(ks.x + ks.y + ks.z + ks.w));
      }
    }`;
  const loop8 = (nrows: number) =>
    `for (var ub = u0; ub < u1; ub += ${S}u) {
    // this warp's weights first (a unit past the range reloads the last): their loads
    // overlap the quantisation
    let u = min(ub + s, u1 - 1u);
    ${loads("c", "u", "let")}
    workgroupBarrier();
    ${quantise}
    workgroupBarrier();
    let qs = 2u * s * ${RB}u;
    let ms = s * ${RB}u;
    if (ub + s < u1) {
      ${arith("c", nrows)}
    }
  }`;
  // (xCodes: the f32 loops, each warp reading its unit's codes of every row in `arith8`)
  const loop = (nrows: number) =>
    Q8 && !CODES
      ? loop8(nrows)
      : tune.prefetch
      ? `${range(WR).map((m) => `var n${m}_q = vec4<u32>(); var n${m}_s = 0.0;`).join(" ")}
  ${
        range(PX(nrows)).map((r) =>
          `var nx0_${r} = vec4<u32>(); var nx1_${r} = vec4<u32>(); var nxv_${r} = vec4<u32>();`
        ).join(" ")
      }
  if (u0 + s < u1) {
    ${loads("n", "(u0 + s)", "assign")}
    ${range(PX(nrows)).map((r) => xLoads("nx", r, "(u0 + s)", "assign")).join(" ")}
  }
  for (var u = u0 + s; u < u1; u += ${S}u) {
    ${range(WR).map((m) => `let c${m}_q = n${m}_q; let c${m}_s = n${m}_s;`).join(" ")}
    ${
        range(PX(nrows)).map((r) =>
          `let px0_${r} = nx0_${r}; let px1_${r} = nx1_${r}; let pxv_${r} = nxv_${r};`
        ).join(" ")
      }
    let un = min(u + ${S}u, ${UN - 1}u);
    ${loads("n", "un", "assign")}
    ${range(PX(nrows)).map((r) => xLoads("nx", r, "un", "assign")).join(" ")}
    ${arith("c", nrows)}
  }`
      : `for (var u = u0 + s; u < u1; u += ${S}u) {
    ${loads("c", "u", "let")}
    ${arith("c", nrows)}
  }`;
  // a loop for the whole block and, with skipRows, for its first half, quarter, ... (down to
  // 4 rows): a block of nr rows runs the smallest that covers them
  const sizes = [RB];
  while (tune.skipRows && sizes.at(-1)! % 8 === 0) sizes.push(sizes.at(-1)! / 2);
  let loops = `{\n  ${loop(sizes.at(-1)!)}\n  }`;
  for (let i = sizes.length - 2; i >= 0; i--) {
    loops = `if (nr > ${sizes[i + 1]}u) {\n  ${loop(sizes[i])}\n  } else ${loops}`;
  }
  // the reduction: pass by pass, P accumulators of every thread into red[P][T]; thread e of
  // the pass sums the S warps' values of one (lane, output) and stores it
  const passes: string[] = [];
  for (let a0 = 0; a0 < A; a0 += P) {
    const n = Math.min(P, A - a0);
    const names: string[] = [];
    for (let a = a0; a < a0 + n; a++) {
      // accumulator a: output o = floor(a / NW) (column-major over rows), weight row n = a % NW
      const o = Math.floor(a / NW), nn = a % NW;
      const c = Math.floor(o / RB), r = o % RB;
      names.push(acc(c * NW + nn, r));
    }
    const outs = (n / NW) * LANES;
    // outCodes: every output of the block into hq (rows past R and columns past the end too:
    // their codes are not stored)
    const stored = OC
      ? `let hi = (o % ${RB}u) * ${COLS}u + lane * ${C}u + o / ${RB}u;
    hq[hi >> 2u][hi & 3u] = ${plan.outValue("row", "col", "v0", "v1")};`
      : `if (row < R.x && col < ${OUT}u) {
      ${
        KS > 1
          ? `out[row * ${KS * OUT}u + split * ${OUT}u + col] = v0;`
          : plan.store("row", "col", "v0", NW === 2 ? "v1" : "")
      }
    }`;
    const sum = (nn: number) =>
      range(S).map((wi) => `red[(k * ${NW}u + ${nn}u) * ${T}u + ${thread("lane", wi)}]`).join(
        " + ",
      );
    passes.push(
      `${a0 > 0 ? "workgroupBarrier();\n  " : ""}${
        names.map((nm, i) => `red[${i * T}u + lid] = ${nm};`).join(" ")
      }
  workgroupBarrier();
  for (var e = lid; e < ${outs}u; e += ${T}u) {
    let lane = e % ${LANES}u;
    let k = e / ${LANES}u;
    let o = ${a0 / NW}u + k;
    let row = r0 + o % ${RB}u;
    let col = blk * ${COLS}u + lane * ${C}u + o / ${RB}u;
    let v0 = ${sum(0)};
    ${NW === 2 ? `let v1 = ${sum(1)};` : ""}
    ${stored}
  }`,
    );
  }
  // outCodes: pair p of the block is row p / PR's pair p % PR (PR pairs a row of the block)
  const PR = COLS / 8, W2 = q8RowWords(OUT) / 2;
  const codes = OC
    ? sharedPairCodes({
      pairs: NPB,
      load: "va = hq[2u * lid]; vb = hq[2u * lid + 1u];",
      word: `(r0 + lid / ${PR}u) * ${W2}u + blk * ${PR}u + lid % ${PR}u`,
      meta: `(r0 + lid / ${PR}u) * ${W2}u + ${OUT / 8}u + (blk * ${PR}u + lid % ${PR}u) / 4u`,
      keep: `r0 + lid / ${PR}u < R.x && blk * ${COLS}u + (lid % ${PR}u) * 8u < ${OUT}u`,
    })
    : "";
  const types = {
    ...plan.types,
    ...unit.types,
    x: `array<vec4<${CODES ? "u32" : "f32"}>>`,
    ...(OC ? { out: "array<vec2<u32>>" } : {}),
  };
  const code = `${declareBindings(spec, types)}
${unit.helpers}
${plan.prelude}
var<workgroup> red: array<f32, ${P * T}>; // [P, T]
${
    OC
      ? `var<workgroup> hq: array<vec4<f32>, ${
        (RB * COLS) / 4
      }>; // [RB, ${COLS}] the block's outputs
var<workgroup> pm: array<f32, ${NPB}>; // each pair's max |x|
var<workgroup> pk: array<f32, ${NPB}>; // each pair's code sum`
      : ""
  }
${
    Q8 && !CODES
      ? `var<workgroup> xq: array<vec4<u32>, ${2 * S * RB}>; // [S units, RB rows, 2] int8 codes
var<workgroup> xm: array<vec2<f32>, ${S * RB}>; // [S, RB] (d, sum of the codes)`
      : ""
  }
const INV = ${INV};
// the 4 codes of a word at bit offsets 0, 4, 8, 12 (lane l: code * 16^l, made a float by
// or-ing in 2^23's exponent, less 2^23 and the offset), times v (the scale, with 16^-l)
fn decode(w: u32, v: vec4<f32>) -> vec4<f32> {
  return (bitcast<vec4<f32>>((vec4<u32>(w) & ${MASK}) | vec4<u32>(0x4b000000u)) - ${OFF}) * v;
}
${
    Q8
      ? `const NIB = vec4<u32>(0x0f0f0f0fu);
// a + a unit's integer sum: the low (wl) and high (wh) nibbles of its 4 weight words against
// the codes c0, c1 (lo0, hi0, ..., lo3, hi3). A function, not written out at each use: naga's
// module creation takes time quadratic in a function's expressions (the 8B's batch-16 kernels
// ~80 ms each on the H100 host); the driver inlines it. The sum starts from a, as written out
// it did: one that started from zero, a added after, cost the 8B's batch-16 step 1.3%
fn unit_dot(a: i32, wl: vec4<u32>, wh: vec4<u32>, c0: vec4<u32>, c1: vec4<u32>) -> i32 {
  return a + dot4I8Packed(wl.x, c0.x) + dot4I8Packed(wh.x, c0.y) + dot4I8Packed(wl.y, c0.z) +
    dot4I8Packed(wh.y, c0.w) + dot4I8Packed(wl.z, c1.x) + dot4I8Packed(wh.z, c1.y) +
    dot4I8Packed(wl.w, c1.z) + dot4I8Packed(wh.w, c1.w);
}`
      : ""
  }
// a + d . x as four fused multiply-adds (a dot product is a multiply and three)
fn dot4(d: vec4<f32>, x: vec4<f32>, a: f32) -> f32 {
  return fma(d.w, x.w, fma(d.z, x.z, fma(d.y, x.y, fma(d.x, x.x, a))));
}

${entry(T, totalGroups(RB, blocks * KS))}
  let r0 = (wg / ${blocks * KS}u) * ${RB}u;
  let split = (wg / ${blocks}u) % ${KS}u;
  let blk = wg % ${blocks}u;
  let u0 = split * ${UL}u; // this workgroup's units: [u0, u1)
  let u1 = min(u0 + ${UL}u, ${UN}u);
  let nr = min(R.x - r0, ${RB}u);
  let s = ((lid / ${LANES}u) % ${SW}u) * ${UW}u + lid % ${UW}u; // this thread's unit of a step
  let col0 = blk * ${COLS}u + ((lid / ${
    LANES * SW
  }u) * ${LW}u + (lid % ${LANES}u) / ${UW}u) * ${C}u;
  // rows and columns past the end are clamped (read valid data) and never stored
  ${
    range(RB).map((r) =>
      `let xr${r} = min(r0 + ${r}u, R.x - 1u) * ${CODES ? q8RowWords(K) / 4 : K / 4}u;`
    ).join("\n  ")
  }
  ${
    range(WR).map((m) =>
      `let ${wrow(m)} = ${m % NW ? `${OUT}u + ` : ""}min(col0 + ${Math.floor(m / NW)}u, ${
        OUT - 1
      }u);`
    ).join("\n  ")
  }
  ${range(WR * RB).map((i) => `var ${acc(Math.floor(i / RB), i % RB)} = 0.0;`).join(" ")}
  ${loops}
  ${passes.join("\n  ")}
  ${codes}
}
`;
  return { code, entryPoint: "main", rowsPerGroup: RB, groupsPerRowBlock: blocks * KS };
}
