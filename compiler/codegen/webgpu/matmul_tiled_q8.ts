/**
 * The tiled matmul on q8 activations (`xq8` beyond the GEMV's rows: prefill), for 4-bit group
 * weights: the same tile of `rows` x rows by `wrows` weight rows as `matmul_tiled.ts`, but a
 * K slice of `blocks` 32-element blocks is staged as int8 codes. Each x row's block is
 * quantised once by the thread that reads it (d = max|x| / 127, as the contract's `xq8`) or,
 * with `xCodes`, read as a `quantize_q8` row's codes and d; each
 * weight row's block is split into its even and odd nibbles as signed bytes q - maxInt, and a
 * thread's `tm` x `tn` products become packed int8 dot products (`dot4I8Packed`: 4
 * multiply-adds an instruction) summed per block, then scaled into f32 accumulators:
 * sum_k (q_k - maxInt) c_k d s. The f32 tiles sat at ~50% of the FMA ceiling on the H100,
 * bound by their workgroup-memory loads and instruction count; these load a quarter of the
 * bytes and issue a quarter of the instructions a multiply-add. With `kSplit` (`tiledSplit`:
 * weights of few rows at a few row blocks) the grid also splits K, each workgroup writing its
 * range's partial sums; with `kSplitRows` the ranges are the dispatch's (fewer the more rows)
 * and only theirs are written.
 * @module
 */
import {
  groupLayout,
  hasPackedDot,
  kSplitError,
  PACKED_DOT,
  q8CodesError,
  q8RowWords,
  type TargetInfo,
  type WgslKernel,
} from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  DOTS4,
  entry,
  gridTotal,
  lit,
  range,
  splitsPerRowWgsl,
} from "./common.ts";
import { matmulPlan, type MatmulSpec } from "./matmul_epilogue.ts";
import { weightUnit } from "./matmul_gemv_unit.ts";
import { quantiseBlock } from "./quantize_q8.ts";
import {
  thinLastWave,
  threadGrid,
  tiledWeightRows,
  tileStores,
  tileWaves,
  underFilled,
} from "./matmul_tiled.ts";

/** Tile sizes of the q8 tiled matmul. */
export interface TiledQ8Tuning {
  /** x rows per workgroup (rows / tm threads down). */
  rows: number;
  /** Weight rows staged per workgroup. */
  wrows: number;
  /** Rows per thread: 4 or 8. */
  tm: number;
  /** Weight rows per thread: 4 or 8 (8 for silu_mul: gate and up halves). */
  tn: number;
  /** 32-element blocks of K staged at a time. */
  blocks: number;
  /** Two staging buffers (one barrier a slice) rather than one (two). */
  double: boolean;
}

/**
 * The tuning: 128 x 128 tiles, 8 x 8 a thread (256 threads), one block a slice, in two
 * buffers; where that grid ends on a thin last wave (`thinLastWave`: Llama-3-8B's qkv at 512
 * rows, 1.45 waves on 132 units), 64-row tiles of 4 x 8 a thread, two blocks a slice (qkv
 * 0.68 → 0.59 ms on the H100, BENCHMARKS.md). On quantize_q8 rows (`xCodes`, the staging
 * light) the 128-row tiles take one buffer: 8B gate_up 1.83 → 1.75 ms, down 0.92 → 0.89,
 * o_proj 0.27 → 0.26 (`matmul_bench.ts --prefill --x8`), and 4 blocks a slice, read in whole
 * sectors (see the staging order in `matmulTiledQ8`) where K has at least 64 blocks (16
 * slices): gate_up 1.76 → 1.64 ms, down 0.90 → 0.83, o_proj 0.27 → 0.24; Qwen2.5-0.5B's
 * prefill (K 896: 7 slices) lost 6% with them. The 64-row tiles also where the 128-row grid
 * would leave a quarter of the units or more idle (`underFilled`): the batch function's qkv,
 * o_proj and down at its 128-row bound (48, 32 and 32 tiles at 8B), the 1B's and 0.5B's
 * prefill matmuls but gate_up: on the H100 8B b=64 decode 63.3-63.7 → 46.6-47.0 ms a step,
 * 1B 16.7-16.8 → 11.8-11.9, 0.5B 12.6 → 8.5-8.6, 0.5B prefill 16.5 → 12.4-12.7 ms, the 8B's
 * prefill unchanged (a bound of all the units took its o_proj and down, 128 tiles, to 64 rows
 * too: 5% slower). One buffer, then fewer blocks, where the target's workgroup storage is short.
 */
export function tiledQ8Defaults(spec: MatmulSpec, target: TargetInfo): TiledQ8Tuning {
  const waves = tileWaves(spec, target, 128, 128);
  const t: TiledQ8Tuning = thinLastWave(waves) || underFilled(waves)
    ? { rows: 64, wrows: 128, tm: 4, tn: 8, blocks: 2, double: true }
    : spec.xCodes
    ? { rows: 128, wrows: 128, tm: 8, tn: 8, blocks: spec.K >= 64 * 32 ? 4 : 1, double: false }
    : { rows: 128, wrows: 128, tm: 8, tn: 8, blocks: 1, double: true };
  const limit = target.limits.maxComputeWorkgroupStorageSize;
  if (tiledQ8SharedBytes(t) > limit) t.double = false;
  while (tiledQ8SharedBytes(t) > limit && t.blocks > 1) t.blocks /= 2;
  return t;
}

/** Bytes of workgroup storage a tuning takes: per buffer, 8 code words a block of each x and
 * weight row, and each x row's d and each weight row's scale a block. */
export function tiledQ8SharedBytes(t: TiledQ8Tuning): number {
  return (t.double ? 2 : 1) * t.blocks * (t.rows + t.wrows) * (32 + 4);
}

const LANES = ["x", "y", "z", "w"];

/** WGSL for a tiled `matmul` with `xq8` (4-bit group weights in blocks of 32, K % 4 == 0). */
export function matmulTiledQ8(
  spec: MatmulSpec,
  target: TargetInfo,
  tune: TiledQ8Tuning = tiledQ8Defaults(spec, target),
): WgslKernel {
  const plan = matmulPlan(spec);
  const silu = plan.weightRowsPerOut === 2;
  const w = spec.weight;
  if (!spec.xq8 || w.kind !== "group" || w.bits !== 4 || w.groupSize % 32 !== 0) {
    throw new RangeError("matmulTiledQ8: needs xq8 and 4-bit group weights in groups of 32k");
  }
  if (spec.norm || spec.normOut || spec.xUnits || spec.outUnits) {
    throw new RangeError("matmulTiledQ8: norm, normOut and unit-major rows are not its");
  }
  const splitErr = kSplitError(spec);
  if (splitErr) throw new RangeError(splitErr);
  if (spec.K % 4 !== 0) throw new RangeError(`matmulTiledQ8: K ${spec.K} is not a multiple of 4`);
  const codesErr = q8CodesError(spec);
  if (codesErr) throw new RangeError(codesErr);
  if (!hasPackedDot(target)) throw new RangeError(`matmulTiledQ8: needs ${PACKED_DOT}`);
  const { rows: BM, wrows: WS, tm: TM, tn: TN, blocks: G } = tune;
  const TY = BM / TM, TX = WS / TN, T = TY * TX;
  if (
    ![4, 8].includes(TM) || ![4, 8].includes(TN) || !Number.isInteger(TY) ||
    !Number.isInteger(TX) || G < 1 || (silu && TN !== 8)
  ) {
    throw new RangeError(`matmulTiledQ8: tuning ${JSON.stringify(tune)} does not fit its rules`);
  }
  const K = spec.K;
  const OUT = plan.outCols;
  const NB = tune.double ? 2 : 1;
  checkTarget(spec, target, {
    workgroupSize: T,
    sharedBytes: tiledQ8SharedBytes(tune),
    largestBinding: spec.rows * Math.ceil(K / w.groupSize) * w.groupSize / 2,
  });
  const BN = silu ? WS / 2 : WS;
  const colBlocks = Math.ceil(OUT / BN);
  const rowsOf = tiledWeightRows(silu, OUT, BN);
  const unit = weightUnit(w, K, 4);
  if (unit.elems !== 32) throw new Error(`matmulTiledQ8: expected 32-element units`);
  const KB = Math.ceil(K / 32); // blocks of K (the last one may be partly past K: zeros)
  // kSplit: the dispatch's `nsp` ranges (kSplitsAt: fewer the more rows, with kSplitRows);
  // the workgroups of split s take blocks [kb0, ke) = [s kr, min((s + 1) kr, KB)) and write
  // their partial sums (no epilogue: a sum_splits or a folding reader adds up the first nsp)
  const KS = spec.kSplit ?? 1, KSR = spec.kSplitRows;
  const KB0 = KS > 1 ? "kb0" : "0u", END = KS > 1 ? "ke" : `${KB}u`;
  const grid = KSR ? { splits: KS, splitRows: KSR } : undefined;
  const nsp = grid ? splitsPerRowWgsl(grid) : `${KS}u`;

  // Staging: unit s < BM * G is x row s / G, block s % G; the rest weight row (s - BM G) / G,
  // block (s - BM G) % G, so that a row's G blocks of the slice are read by consecutive
  // threads (a load reads G consecutive units of 32 / G rows, not one unit of 32 rows: 4
  // blocks a slice against the old order's 1, H100, 8B at 512 rows: gate_up 1.76 → 1.64 ms,
  // down 0.90 → 0.83, o_proj 0.27 → 0.24, qkv's 2 blocks 0.47 → 0.42).
  const XU = BM * G, TU = XU + G * WS;
  const V = Math.ceil(TU / T);
  const maxK = K / 4;
  // which kinds of unit a thread's v-th unit can be (registers only for those)
  const hasX = (v: number) => v * T < XU;
  const hasW = (v: number) => (v + 1) * T > XU;
  const either = (v: number, x: string, w: string) =>
    hasX(v) && hasW(v)
      ? `if (lid + ${v * T}u < ${XU}u) {\n      ${x}\n    } else {\n      ${w}\n    }`
      : hasX(v)
      ? x
      : w;
  // xCodes: x arrives as quantize_q8 rows (W4 vec4s a row): 2 vec4s of codes and the vec4
  // holding the block's (d, code sum) pair a unit, in place of its 8 vec4s of floats
  const CODES = !!spec.xCodes;
  const W4 = q8RowWords(K) / 4;
  const xRegs = (v: number) =>
    CODES
      ? `var pc${v}_0 = vec4<u32>(); var pc${v}_1 = vec4<u32>(); var pm${v} = vec4<u32>();`
      : range(8).map((i) => `var px${v}_${i} = vec4<f32>();`).join(" ");
  const decls = range(V).map((v) =>
    `${hasX(v) ? xRegs(v) : ""} ${hasW(v) ? `var pq${v} = vec4<u32>(); var ps${v} = 0.0;` : ""}`
  ).join("\n  ");
  // `kb` the slice's first block (WGSL u32)
  const load = (kb: string) =>
    range(V).map((v) => {
      const s = `(lid + ${v * T}u)`;
      const xrow = `(r0 + ${s} / ${G}u)`, xblk = `(${kb} + ${s} % ${G}u)`;
      const t = `(${s} - ${XU}u)`;
      const n = `(${t} / ${G}u)`, wblk = `(${kb} + ${t} % ${G}u)`;
      const xload = CODES
        ? `pc${v}_0 = vec4<u32>(); pc${v}_1 = vec4<u32>(); pm${v} = vec4<u32>(); if (${xrow} < R.x && ${xblk} < ${END}) { pc${v}_0 = x[${xrow} * ${W4}u + ${xblk} * 2u]; pc${v}_1 = x[${xrow} * ${W4}u + ${xblk} * 2u + 1u]; pm${v} = x[${xrow} * ${W4}u + ${
          K / 16
        }u + ${xblk} / 2u]; }`
        : range(8).map((i) => {
          const k4 = `${xblk} * 8u + ${i}u`;
          return `px${v}_${i} = vec4<f32>(); if (${xrow} < R.x && ${k4} < ${maxK}u) { px${v}_${i} = x[${xrow} * ${maxK}u + ${k4}]; }`;
        }).join(" ");
      const wload = `pq${v} = vec4<u32>(); ps${v} = 0.0; if (${
        rowsOf.valid(n)
      } && ${wblk} < ${END}) { ${unit.prep(wblk, v)} ${
        unit.load(rowsOf.row(n), wblk, `t${v}_`, v)
      } pq${v} = t${v}_q; ps${v} = t${v}_s; }`;
      const body = either(v, xload, wload);
      return (v + 1) * T > TU ? `if (${s} < ${TU}u) { ${body} }` : body;
    }).join("\n    ");
  // into buffer `b` (WGSL): x codes and d, weight nibbles and scales of the slice at `kb`
  // (each unit's indices as lets: fewer expressions for naga, whose module creation takes
  // time quadratic in a function's expressions)
  const store = (b: string, kb: string) =>
    range(V).map((v) => {
      const s = `(lid + ${v * T}u)`;
      const xr = `(${s} / ${G}u)`, xbl = `(${s} % ${G}u)`;
      const t = `(${s} - ${XU}u)`;
      const n = `(${t} / ${G}u)`, wbl = `(${t} % ${G}u)`;
      const xat = `let xw = ${xbl} * 8u; let xi = ${xr} / 4u; let xl = ${xr} % 4u;`;
      const xstore = CODES
        ? `${xat} ${
          range(8).map((j) => `xq[${b}][xw + ${j}u][xi][xl] = pc${v}_${j >> 2}.${LANES[j & 3]};`)
            .join(" ")
        }
      xd[${b}][${xbl}][xi][xl] = bitcast<f32>(select(pm${v}.z, pm${v}.x, ((${kb} + ${xbl}) & 1u) == 0u));`
        : `${quantiseBlock((i) => `px${v}_${i}`, `q${v}_`)}
      ${xat}
      ${
          range(4).map((wd) =>
            `xq[${b}][xw + ${2 * wd}u][xi][xl] = q${v}_lo${wd}; xq[${b}][xw + ${
              2 * wd + 1
            }u][xi][xl] = q${v}_hi${wd};`
          ).join("\n      ")
        }
      xd[${b}][${xbl}][xi][xl] = q${v}_a * ${lit(1 / 127)};
`;
      const nib = "vec4<u32>(0x0f0f0f0fu)";
      const wstore = `let ww = ${wbl} * 8u; let wi = ${n} / 4u; let wl = ${n} % 4u;
      let wn = pq${v} & ${nib}; let wm = (pq${v} >> vec4<u32>(4u)) & ${nib};
      ${
        range(4).map((wd) =>
          `wq[${b}][ww + ${2 * wd}u][wi][wl] = signed(wn.${LANES[wd]}); wq[${b}][ww + ${
            2 * wd + 1
          }u][wi][wl] = signed(wm.${LANES[wd]});`
        ).join("\n      ")
      }
      wd[${b}][${wbl}][wi][wl] = ps${v};`;
      const body = either(v, xstore, wstore);
      return (v + 1) * T > TU ? `if (${s} < ${TU}u) { ${body} }` : `{ ${body} }`;
    }).join("\n    ");

  const acc = (i: number, j: number) => `a${i}_${j >> 2}.${LANES[j & 3]}`;
  const accDecls = range(TM).flatMap((i) =>
    range(TN / 4).map((c) => `var a${i}_${c} = vec4<f32>();`)
  ).join(" ");
  // (unrolled: as a loop over the 8 words the WGSL is 40% shorter, pipeline creation 17%
  // faster with a warm driver cache and no faster cold, and the kernel 40% slower on the H100)
  // one block of the slice in buffer b: integer sums s{i}_{c} (vec4<i32> of weight rows
  // 4c .. 4c + 3), then scaled into the f32 accumulators. A function called once a block (the
  // driver inlines it, the block index a constant): naga's module creation takes time
  // quadratic in a function's expressions, and the blocks written out in main took it ~300 ms
  // for each of the 8B's tiled q8 matmuls on the H100 host
  const accNames = range(TM).flatMap((i) => range(TN / 4).map((c) => `a${i}_${c}`));
  const lines: string[] = [];
  for (let wd = 0; wd < 8; wd++) {
    const j = `bl * 8u + ${wd}u`;
    for (let a = 0; a < TM / 4; a++) lines.push(`let x${wd}_${a} = xq[b][${j}][${a * TY}u + ty];`);
    for (let c = 0; c < TN / 4; c++) lines.push(`let w${wd}_${c} = wq[b][${j}][${c * TX}u + tx];`);
    for (let i = 0; i < TM; i++) {
      const xi = `x${wd}_${i >> 2}.${LANES[i & 3]}`;
      for (let c = 0; c < TN / 4; c++) {
        const dots = `dots4(${xi}, w${wd}_${c})`;
        lines.push(wd === 0 ? `var s${i}_${c} = ${dots};` : `s${i}_${c} += ${dots};`);
      }
    }
  }
  for (let a = 0; a < TM / 4; a++) lines.push(`let d${a} = xd[b][bl][${a * TY}u + ty];`);
  for (let c = 0; c < TN / 4; c++) lines.push(`let e${c} = wd[b][bl][${c * TX}u + tx];`);
  for (let i = 0; i < TM; i++) {
    const l = `${i >> 2}.${LANES[i & 3]}`;
    for (let c = 0; c < TN / 4; c++) {
      lines.push(`*a${i}_${c} = fma(vec4<f32>(s${i}_${c}), d${l} * e${c}, *a${i}_${c});`);
    }
  }
  const blockFn = `fn block(b: u32, bl: u32, ty: u32, tx: u32, ${
    accNames.map((a) => `${a}: ptr<function, vec4<f32>>`).join(", ")
  }) {
  ${lines.join("\n  ")}
}`;
  const multiply = range(G).map((bl) =>
    `block(b, ${bl}u, ty, tx, ${accNames.map((a) => `&${a}`).join(", ")});`
  ).join("\n    ");

  const dims = { TM, TN, TY, TX, OUT };
  const partial = { // the split's partial sums
    ...plan,
    store: (r: string, c: string, a0: string) =>
      `out[${r} * ${KS * OUT}u + split * ${OUT}u + ${c}] = ${a0};`,
  };
  const stores = tileStores(KS > 1 ? partial : plan, dims, acc);
  const next = `k0 + ${G}u < ${END}`;
  const refill = tune.double
    ? `if (${next}) {
    ${store("1u - b", `(k0 + ${G}u)`)}
    }
    workgroupBarrier();
    b = 1u - b;`
    : `workgroupBarrier();
    if (${next}) {
    ${store("0u", `(k0 + ${G}u)`)}
    }
    workgroupBarrier();`;
  const types = { ...plan.types, x: `array<vec4<${CODES ? "u32" : "f32"}>>`, ...unit.types };
  const arr = (t: string, inner: number, n: number) =>
    `array<array<array<${t}, ${n / 4}>, ${inner}>, ${NB}>`;
  const code = `${declareBindings(spec, types)}
${unit.helpers}
${plan.prelude}
// 4 codes q (bytes 0-15) as the int8 values q - maxInt: (q + 128 - maxInt) has no borrow
fn signed(q: u32) -> u32 {
  return ((q | 0x80808080u) - ${0x01010101 * groupLayout(w, K).maxInt}u) ^ 0x80808080u;
}
${DOTS4}
var<workgroup> xq: ${arr("vec4<u32>", 8 * G, BM)}; // [buffer, code word, rows / 4] x codes
var<workgroup> wq: ${arr("vec4<u32>", 8 * G, WS)}; // [buffer, code word, wrows / 4] nibbles
var<workgroup> xd: ${arr("vec4<f32>", G, BM)}; // [buffer, block, rows / 4] x's d
var<workgroup> wd: ${arr("vec4<f32>", G, WS)}; // [buffer, block, wrows / 4] weight scales
${blockFn}

${entry(T, gridTotal(BM, colBlocks * KS, grid))}${
    KS > 1
      ? `
  let nsp = ${nsp}; // this dispatch's K ranges
  let r0 = (wg / (${colBlocks}u * nsp)) * ${BM}u;
  let split = (wg / ${colBlocks}u) % nsp;
  let kr = (${KB}u + nsp - 1u) / nsp; // blocks a range (kSplitLen(K, nsp) / 32)
  let kb0 = split * kr;
  let ke = min(kb0 + kr, ${KB}u);`
      : `
  let r0 = (wg / ${colBlocks}u) * ${BM}u;`
  }
  let c0 = (wg % ${colBlocks}u) * ${BN}u;
  ${threadGrid(TY, TX)}
  ${accDecls}
  ${decls}
  {
    ${load(KB0)}
    ${store("0u", KB0)}
  }
  workgroupBarrier();
  var b = 0u;
  for (var k0 = ${KB0}; k0 < ${END}; k0 += ${G}u) {
    if (${next}) {
    ${load(`(k0 + ${G}u)`)}
    }
    ${multiply}
    ${refill}
  }
  ${stores.join("\n  ")}
}
`;
  const k: WgslKernel = {
    code,
    entryPoint: "main",
    rowsPerGroup: BM,
    groupsPerRowBlock: colBlocks * KS,
  };
  return grid ? { ...k, splitGrid: grid } : k;
}
