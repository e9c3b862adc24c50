/**
 * `quantize_q8`: x rounded through int8 codes per 32-element block, written once for the
 * matmuls that read it (`xCodes`). One thread a (row, block): 8 vec4 loads, the block's max,
 * its codes packed in the even/odd-nibble order of a 4-bit weight word, then 4 vec2 stores of
 * codes and one of (d, code sum).
 * @module
 */
import {
  type KernelSpec,
  q8CodesError,
  q8RowWords,
  type TargetInfo,
  type WgslKernel,
} from "../contract.ts";
import { checkTarget, declareBindings, entry, range, totalGroups } from "./common.ts";

/**
 * WGSL statements packing the int8 codes of 8 consecutive elements (`a`: elements 0..3, `b`:
 * 4..7, vec4<i32> expressions) into `lo` (elements 0, 2, 4, 6) and `hi` (1, 3, 5, 7): the order
 * of a 4-bit word's even and odd nibbles, which the q8 kernels' dot products pair them with.
 */
export function packEvenOdd(a: string, b: string, lo: string, hi: string): string {
  return `let ${lo} = pack4xI8(vec4<i32>(${a}.x, ${a}.z, ${b}.x, ${b}.z)); let ${hi} = pack4xI8(vec4<i32>(${a}.y, ${a}.w, ${b}.y, ${b}.w));`;
}

/**
 * WGSL statements quantising 8 vec4<f32> of one 32-element block (`v(i)`, elements 4i..4i+3)
 * to int8: `${p}a` (max |x|), `${p}k{i}` (vec4<i32>: the codes of elements 4i..4i+3), and
 * `${p}lo{w}`, `${p}hi{w}` (w < 4: the codes of elements 8w, 8w+2, 8w+4, 8w+6 and of 8w+1,
 * ..., 8w+7 packed, the order of a 4-bit word's even and odd nibbles).
 */
export function quantiseBlock(v: (i: number) => string, p: string): string {
  const out = [
    `let ${p}mv = max(max(max(abs(${v(0)}), abs(${v(1)})), max(abs(${v(2)}), abs(${
      v(3)
    }))), max(max(abs(${v(4)}), abs(${v(5)})), max(abs(${v(6)}), abs(${v(7)}))));`,
    `let ${p}a = max(max(${p}mv.x, ${p}mv.y), max(${p}mv.z, ${p}mv.w));`,
    `let ${p}inv = select(0.0, 127.0 / ${p}a, ${p}a > 0.0);`,
    ...range(8).map((i) => `let ${p}k${i} = vec4<i32>(round(${v(i)} * ${p}inv));`),
    ...range(4).map((w) =>
      packEvenOdd(`${p}k${2 * w}`, `${p}k${2 * w + 1}`, `${p}lo${w}`, `${p}hi${w}`)
    ),
  ];
  return out.join("\n      ");
}

/**
 * WGSL statements rounding 8 elements of a block to int8 as `quantiseBlock` does, given the
 * block's max |x| (`amax`, an f32 expression): `va` holds elements 8w..8w+3 and `vb` 8w+4..8w+7
 * (vec4<f32>). Defines `${p}lo`, `${p}hi` (the block's code words 2w and 2w + 1) and `${p}ks`
 * (their code sum, i32). For kernels whose threads each hold a quarter of a block, the block's
 * max met in workgroup memory (`pairMax`).
 */
export function quantisePair(va: string, vb: string, amax: string, p: string): string {
  return `let ${p}inv = select(0.0, 127.0 / ${amax}, ${amax} > 0.0);
    let ${p}ka = vec4<i32>(round(${va} * ${p}inv));
    let ${p}kb = vec4<i32>(round(${vb} * ${p}inv));
    ${packEvenOdd(`${p}ka`, `${p}kb`, `${p}lo`, `${p}hi`)}
    let ${p}k4 = ${p}ka + ${p}kb;
    let ${p}ks = ${p}k4.x + ${p}k4.y + ${p}k4.z + ${p}k4.w;`;
}

/** WGSL: max |x| over two vec4<f32>, a pair's share of its block's max. */
export function pairMax(va: string, vb: string): string {
  return `max(max(max(abs(${va}.x), abs(${va}.y)), max(abs(${va}.z), abs(${va}.w))), max(max(abs(${vb}.x), abs(${vb}.y)), max(abs(${vb}.z), abs(${vb}.w))))`;
}

/** WGSL: a block's (d, code sum) words of a `quantize_q8` row (vec2<u32>), from its max |x|
 * `amax` and code sum `sum` (f32 expressions). */
export function q8BlockMeta(amax: string, sum: string): string {
  return `bitcast<vec2<u32>>(vec2<f32>(${amax} / 127.0, ${sum}))`;
}

/**
 * WGSL rounding values a workgroup holds in workgroup memory to `quantize_q8` codes, a thread
 * a pair of vec4s (8 elements, a quarter of a 32-element block): thread lid < `pairs` defines
 * its pair's `va`, `vb` (vec4<f32>) by `load`, the blocks' max |x| and code sums meet in the
 * caller's workgroup arrays `pm` and `pk` ([pairs] f32; pairs 4p..4p + 3 a block), and where
 * `keep` holds it stores its code word at out[`word`] (out: array<vec2<u32>>) and, the first
 * pair of a block, the block's (d, code sum) at out[`meta`]. Starts with a barrier (the values
 * written before it).
 */
export function sharedPairCodes(
  o: { pairs: number; load: string; word: string; meta: string; keep?: string },
): string {
  const keep = o.keep ? ` && ${o.keep}` : "";
  return `workgroupBarrier();
  var am = 0.0;
  var va = vec4<f32>(0.0);
  var vb = vec4<f32>(0.0);
  if (lid < ${o.pairs}u) {
    ${o.load}
    pm[lid] = ${pairMax("va", "vb")};
  }
  workgroupBarrier();
  if (lid < ${o.pairs}u) {
    let f = lid & ~3u;
    am = max(max(pm[f], pm[f + 1u]), max(pm[f + 2u], pm[f + 3u]));
    ${quantisePair("va", "vb", "am", "c")}
    ${o.keep ? `if (${o.keep}) { ` : ""}out[${o.word}] = vec2<u32>(clo, chi);${o.keep ? " }" : ""}
    pk[lid] = f32(cks);
  }
  workgroupBarrier();
  if (lid < ${o.pairs}u && (lid & 3u) == 0u${keep}) {
    let sum = pk[lid] + pk[lid + 1u] + pk[lid + 2u] + pk[lid + 3u];
    out[${o.meta}] = ${q8BlockMeta("am", "sum")};
  }`;
}

/** Threads a workgroup (blocks of a row). */
const THREADS = 64;

/** WGSL for `quantize_q8`. */
export function quantizeQ8Kernel(
  spec: Extract<KernelSpec, { op: "quantize_q8" }>,
  target: TargetInfo,
): WgslKernel {
  const err = q8CodesError(spec);
  if (err) throw new RangeError(err);
  const K = spec.K, KB = K / 32, W = q8RowWords(K);
  const T = Math.min(THREADS, KB);
  const groups = Math.ceil(KB / T);
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: 0 });
  const code = `${declareBindings(spec, { x: "array<vec4<f32>>", out: "array<vec2<u32>>" })}

${entry(T, totalGroups(1, groups))}
  let r = wg / ${groups}u;
  let u = (wg % ${groups}u) * ${T}u + lid;
  if (u >= ${KB}u) { return; }
  let xb = r * ${K / 4}u + u * 8u;
  ${range(8).map((i) => `let v${i} = x[xb + ${i}u];`).join(" ")}
  ${quantiseBlock((i) => `v${i}`, "q")}
  let ks = ${range(8).map((i) => `qk${i}`).join(" + ")};
  let ob = r * ${W / 2}u;
  ${range(4).map((w) => `out[ob + u * 4u + ${w}u] = vec2<u32>(qlo${w}, qhi${w});`).join(" ")}
  out[ob + ${K / 8}u + u] = ${q8BlockMeta("qa", "f32(ks.x + ks.y + ks.z + ks.w)")};
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: groups };
}
