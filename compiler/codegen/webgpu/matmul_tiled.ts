/**
 * The tiled matmul shape (prefill). A workgroup computes `rows` rows of x against `wrows`
 * staged weight rows (that many output columns, or half as many for silu_mul: their gate and
 * up rows), walking K in slices of `bk` that are staged in workgroup memory k-major (see
 * `matmul_tiled_stage.ts`: the weight is dequantised once per slice, scales applied there).
 * Each thread accumulates `tm` rows x `tn` weight rows in f32 registers, reading its operands
 * as vec4s: rows ty*4.. + i*(rows*4/tm), weight rows tx*4.. + j*(wrows*4/tn). The next slice
 * is read into registers while the current one is multiplied; with `double` the slices
 * alternate between two buffers (one barrier a slice), else one buffer is reused (two).
 * @module
 */
import type { TargetInfo, WgslKernel } from "../contract.ts";
import { checkTarget, declareBindings, entry, totalGroups, weightBindingBytes } from "./common.ts";
import { type MatmulPlan, matmulPlan, type MatmulSpec } from "./matmul_epilogue.ts";
import { stageWeight, stageX, type WeightRows } from "./matmul_tiled_stage.ts";

/** Tile sizes of the tiled matmul. */
export interface TiledTuning {
  /** x rows per workgroup (a multiple of tm). */
  rows: number;
  /** Weight rows staged per workgroup. */
  wrows: number;
  /** Rows per thread: 4 or 8. */
  tm: number;
  /** Weight rows per thread: 4 or 8 (8 for silu_mul: gate and up halves). */
  tn: number;
  /** K slice staged at a time (a multiple of 4). */
  bk: number;
  /** Two staging buffers (needs twice the workgroup storage). */
  double: boolean;
  /** Slice steps unrolled in the generated code (a divisor of bk). */
  unroll: number;
  /**
   * Read the next slice into registers before the multiply-adds of the current one (default
   * true); false reads it after them (fewer live registers, the read latency exposed).
   */
  prefetch?: boolean;
  /** Accumulate in vec4s (default true: a quarter of the statements to compile) or scalars. */
  vectorAcc?: boolean;
}

/** Bytes of workgroup storage a tuning takes. */
export function tiledSharedBytes(t: TiledTuning): number {
  return (t.double ? 2 : 1) * t.bk * (t.rows + t.wrows) * 4;
}

/** Floats of padding on each staged k of x (against bank conflicts of its vec4 stores). */
const X_PAD = 4;

/** The rows the tile choice is made for: a prompt of a few hundred tokens, where the last wave
 * of workgroups is a large part of the time (a long prompt has many waves; R is only known at
 * run time). */
const TYPICAL_ROWS = 512;

/**
 * The tuning for a spec on a target: 128 x 128 tiles with 8 x 8 per thread, in 32-wide K
 * slices where the workgroup storage allows (32 KiB, 33 with x's padding), else 16-wide
 * (16 KiB: the WebGPU default limit) in one buffer, or in two where that fits. On the H100
 * this measured fastest of the tunings `matmul_bench.ts --tiles` tries (BENCHMARKS.md).
 *
 * Where the target's compute units are known and the 128 x 128 grid at `TYPICAL_ROWS` rows
 * (or `maxRows`, if fewer) would end on a wave less than half full (one workgroup a unit: 192 workgroups on 132 SMs is 1.45
 * waves, as Llama-3-8B's qkv at 512 rows), 64-row tiles in 16-wide slices are taken instead:
 * twice the workgroups, half the size (qkv: 0.90 → 0.69 ms on the H100).
 */
export function tiledDefaults(spec: MatmulSpec, target: TargetInfo): TiledTuning {
  const limit = target.limits.maxComputeWorkgroupStorageSize;
  const wide: TiledTuning = {
    rows: 128,
    wrows: 128,
    tm: 8,
    tn: 8,
    bk: 32,
    double: false,
    unroll: 32,
  };
  if (tiledSharedBytes(wide) <= limit) {
    const half: TiledTuning = { ...wide, rows: 64, bk: 16, unroll: 16, prefetch: false };
    return thinLastWave(tileWaves(spec, target, wide.rows, wide.wrows)) ? half : wide;
  }
  const t: TiledTuning = { rows: 128, wrows: 128, tm: 8, tn: 8, bk: 16, double: true, unroll: 16 };
  if (tiledSharedBytes(t) > limit) t.double = false;
  return t;
}

/**
 * The waves a grid of `rows` x `wrows` tiles runs in (at `TYPICAL_ROWS` rows, or `maxRows` if
 * fewer), one workgroup a compute unit; undefined where the target does not say how many units
 * it has.
 */
export function tileWaves(
  spec: MatmulSpec,
  target: TargetInfo,
  rows: number,
  wrows: number,
): number | undefined {
  const units = target.computeUnits;
  if (!units) return undefined;
  const plan = matmulPlan(spec);
  const cols = plan.weightRowsPerOut === 2 ? wrows / 2 : wrows;
  return Math.ceil(Math.min(spec.maxRows, TYPICAL_ROWS) / rows) * Math.ceil(plan.outCols / cols) /
    units;
}

/** Whether a grid of `waves` (`tileWaves`) ends on a wave less than half full. */
export function thinLastWave(waves: number | undefined): boolean {
  return waves !== undefined && waves > 1 && waves % 1 > 0 && waves % 1 <= 0.5;
}

/**
 * Whether a grid of `waves` (`tileWaves`) has fewer workgroups than 3/4 of the compute units:
 * most units would sit idle, and tiles of half the rows, twice as many, do better though each
 * weight tile is then read by twice as many workgroups.
 */
export function underFilled(waves: number | undefined): boolean {
  return waves !== undefined && waves < 0.75;
}

/**
 * WGSL for the thread's place (ty < TY, tx < TX) in the grid of threads. A warp of 32 covers
 * 4 ty x 8 tx where the grid allows, so that its vec4 reads of a staged k touch 4 x vec4s and
 * 8 weight vec4s (one 128-byte wavefront each) rather than 2 and 16 in a 2 x 16 layout.
 */
export function threadGrid(TY: number, TX: number): string {
  if (TX % 8 !== 0 || TY % 4 !== 0) return `let ty = lid / ${TX}u;\n  let tx = lid % ${TX}u;`;
  return `let ty = (lid / ${4 * TX}u) * 4u + (lid % 32u) / 8u;
  let tx = ((lid / 32u) % ${TX / 8}u) * 8u + lid % 8u;`;
}

/**
 * Staged weight row n (0 .. wrows) of the workgroup at output column c0: output column c0 + n,
 * or for silu_mul (`BN` output columns a workgroup) gate row c0 + n (n < BN) and up row
 * OUT + c0 + n - BN.
 */
export function tiledWeightRows(silu: boolean, OUT: number, BN: number): WeightRows {
  return silu
    ? {
      row: (n: string) => `select(c0 + ${n}, ${OUT}u + c0 + ${n} - ${BN}u, ${n} >= ${BN}u)`,
      valid: (n: string) => `c0 + ${n} % ${BN}u < ${OUT}u`,
    }
    : { row: (n: string) => `(c0 + ${n})`, valid: (n: string) => `c0 + ${n} < ${OUT}u` };
}

/**
 * The epilogue of a tile: the statements storing a thread's TM x TN accumulators (`acc(i, j)`;
 * for silu_mul, j < TN / 2 the gate and j + TN / 2 the up row) at rows r0 + its row i and
 * columns c0 + its column j. A thread's rows are vec4 chunks i >> 2 spaced TY * 4 apart from
 * ty * 4 (its columns likewise from tx * 4), within R and the output width.
 */
export function tileStores(
  plan: MatmulPlan,
  t: { TM: number; TN: number; TY: number; TX: number; OUT: number },
  acc: (i: number, j: number) => string,
): string[] {
  const silu = plan.weightRowsPerOut === 2;
  const out: string[] = [];
  for (let i = 0; i < t.TM; i++) {
    const r = `(r0 + ${(i >> 2) * t.TY * 4 + (i & 3)}u + ty * 4u)`;
    for (let j = 0; j < (silu ? t.TN / 2 : t.TN); j++) {
      const c = `(c0 + ${(j >> 2) * t.TX * 4 + (j & 3)}u + tx * 4u)`;
      out.push(
        `if (${r} < R.x && ${c} < ${t.OUT}u) { ${
          plan.store(r, c, acc(i, j), silu ? acc(i, j + t.TN / 2) : "")
        } }`,
      );
    }
  }
  return out;
}

/** WGSL for a tiled `matmul`. */
export function matmulTiled(
  spec: MatmulSpec,
  target: TargetInfo,
  tune: TiledTuning = tiledDefaults(spec, target),
): WgslKernel {
  const plan = matmulPlan(spec);
  const silu = plan.weightRowsPerOut === 2;
  const { rows: BM, wrows: WS, tm: TM, tn: TN, bk: BK } = tune;
  const K = spec.K;
  const OUT = plan.outCols;
  const TY = BM / TM, TX = WS / TN, T = TY * TX;
  if (
    ![4, 8].includes(TM) || ![4, 8].includes(TN) || !Number.isInteger(TY) ||
    !Number.isInteger(TX) || BK % 4 !== 0 || BK % tune.unroll !== 0 || (silu && TN !== 8)
  ) {
    throw new RangeError(`matmulTiled: tuning ${JSON.stringify(tune)} does not fit its rules`);
  }
  const NB = tune.double ? 2 : 1;
  const padded = tiledSharedBytes(tune) + NB * BK * X_PAD * 4;
  const XP = BM + (padded <= target.limits.maxComputeWorkgroupStorageSize ? X_PAD : 0);
  checkTarget(spec, target, {
    workgroupSize: T,
    sharedBytes: NB * BK * (XP + WS) * 4,
    largestBinding: weightBindingBytes(spec.weight, spec.rows, K),
  });
  const BN = silu ? WS / 2 : WS; // output columns per workgroup
  const blocks = Math.ceil(OUT / BN);

  const wrowsOf = tiledWeightRows(silu, OUT, BN);
  const xs = stageX({ rows: BM, bk: BK, threads: T }, K);
  const wst = stageWeight({ rows: WS, bk: BK, threads: T }, spec.weight, K, wrowsOf);

  const lanes = ["x", "y", "z", "w"];
  // Accumulators: scalars a{i}_{j}, or (vectorAcc) vec4s a{i}_{c} of weight rows 4c .. 4c + 3,
  // which take a quarter of the multiply-add statements (the same arithmetic once compiled).
  const vecAcc = tune.vectorAcc ?? true;
  const acc = (i: number, j: number) => (vecAcc ? `a${i}_${j >> 2}.${lanes[j & 3]}` : `a${i}_${j}`);
  const decls: string[] = [];
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < TN; j += vecAcc ? 4 : 1) {
      decls.push(vecAcc ? `var a${i}_${j >> 2} = vec4<f32>();` : `var a${i}_${j} = 0.0;`);
    }
  }
  const step = (kk: string) => {
    const lines: string[] = [];
    for (let a = 0; a < TM / 4; a++) lines.push(`let xa${a} = xs[b][${kk}][${a * TY}u + ty];`);
    for (let c = 0; c < TN / 4; c++) lines.push(`let wb${c} = ws[b][${kk}][${c * TX}u + tx];`);
    for (let i = 0; i < TM; i++) {
      const xi = `xa${i >> 2}.${lanes[i & 3]}`;
      for (let j = 0; j < TN; j += vecAcc ? 4 : 1) {
        lines.push(
          vecAcc
            ? `a${i}_${j >> 2} = fma(vec4<f32>(${xi}), wb${j >> 2}, a${i}_${j >> 2});`
            : `a${i}_${j} = fma(${xi}, wb${j >> 2}.${lanes[j & 3]}, a${i}_${j});`,
        );
      }
    }
    return `{\n      ${lines.join("\n      ")}\n    }`;
  };
  const U = tune.unroll;
  const body = Array.from({ length: U }, (_, u) => step(U === BK ? `${u}u` : `kb + ${u}u`));
  const multiply = U === BK
    ? body.join("\n    ")
    : `for (var kb = 0u; kb < ${BK}u; kb += ${U}u) {\n    ${body.join("\n    ")}\n    }`;

  const stores = tileStores(plan, { TM, TN, TY, TX, OUT }, acc);
  const types = { ...plan.types, ...xs.types, ...wst.types };
  const slice = (n: number) => `array<array<array<vec4<f32>, ${n / 4}>, ${BK}>, ${NB}>`;
  const next = `k0 + ${BK}u < ${K}u`;
  const pre = tune.prefetch ?? true;
  const fetch = pre ? "" : `${xs.load(`(k0 + ${BK}u)`)}
    ${wst.load(`(k0 + ${BK}u)`)}`;
  const refill = tune.double
    ? `if (${next}) {
    ${fetch}
    ${xs.store("xs[1u - b]")}
    ${wst.store("ws[1u - b]")}
    }
    workgroupBarrier();
    b = 1u - b;`
    : `workgroupBarrier();
    if (${next}) {
    ${fetch}
    ${xs.store("xs[0]")}
    ${wst.store("ws[0]")}
    }
    workgroupBarrier();`;
  const code = `${declareBindings(spec, types)}
${wst.prelude}
${plan.prelude}
var<workgroup> xs: ${slice(XP)}; // [buffer, BK, rows / 4 (+ padding)] of x rows
var<workgroup> ws: ${slice(WS)}; // [buffer, BK, wrows / 4] of weight rows

${entry(T, totalGroups(BM, blocks))}
  let r0 = (wg / ${blocks}u) * ${BM}u;
  let c0 = (wg % ${blocks}u) * ${BN}u;
  ${threadGrid(TY, TX)}
  ${decls.join(" ")}
  ${xs.decls}
  ${wst.decls}
  {
    ${xs.load("0u")}
    ${wst.load("0u")}
    ${xs.store("xs[0]")}
    ${wst.store("ws[0]")}
  }
  workgroupBarrier();
  var b = 0u;
  for (var k0 = 0u; k0 < ${K}u; k0 += ${BK}u) {
    ${
    pre
      ? `if (${next}) {
    ${xs.load(`(k0 + ${BK}u)`)}
    ${wst.load(`(k0 + ${BK}u)`)}
    }`
      : ""
  }
    ${multiply}
    ${refill}
  }
  ${stores.join("\n  ")}
}
`;
  return { code, entryPoint: "main", rowsPerGroup: BM, groupsPerRowBlock: blocks };
}
