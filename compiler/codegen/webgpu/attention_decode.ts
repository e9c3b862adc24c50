/**
 * Split-KV decode attention (flash-decoding): `attention_decode` and `attention_merge`.
 *
 * `attention_decode` runs the `attention` kernel bodies (`attention.ts`) with one more
 * workgroup dimension, the split: one workgroup per (row, split, KV head, block of up to 4 query
 * heads) for head dims that are a multiple of 4, else per (row, split, head). A workgroup
 * rotates its q heads and its KV head's new key itself (from the un-rotated qkv row), takes key
 * and value p from workgroup memory rather than the cache, and the one split that holds p
 * (its last) writes them to the cache, so that the other splits, which read only positions
 * below p, need not wait for it. Each writes its heads' normalised partial output and
 * log-sum-exp. A dispatch launches each row's share of splits only (`splitGrid`: fewer a row
 * the more rows); splits past the row's `used` (short contexts) return once the position is
 * known.
 *
 * With `qkvSplits` (a folded `sum_splits`), every qkv element is the sum of the kSplit
 * matmul's partials, added as it is read.
 *
 * `attention_merge`: one workgroup per (row, head), the splits read in parallel. With
 * `outCodes`, the head's outputs go through workgroup memory and a thread a quarter of a
 * 32-element block rounds them to `quantize_q8` codes.
 * @module
 */
import {
  bindings,
  foldedSplitsError,
  type KernelSpec,
  kvF16,
  mergedPartials,
  q8CodesError,
  type TargetInfo,
  unitLayoutError,
  type WgslKernel,
} from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  denseReader,
  denseType,
  entry,
  lit,
  reductionThreads,
  rep,
  splitsPerRowWgsl,
  splitSum,
  totalGroups,
  unitChunk,
  unitElem,
} from "./common.ts";
import {
  cacheScalar,
  cacheVec4,
  groupedKernel,
  groupedPlan,
  NEG,
  PAGED_TYPES,
  pagedRows,
  scalarKernel,
} from "./attention.ts";
import { ropeElement, rotation } from "./rope.ts";
import { sharedPairCodes } from "./quantize_q8.ts";

type DecodeSpec = Extract<KernelSpec, { op: "attention_decode" }>;
type MergeSpec = Extract<KernelSpec, { op: "attention_merge" }>;

const TYPES = {
  qkv: "array<f32>",
  ...PAGED_TYPES,
  cache: "array<f32>",
  part_o: "array<f32>",
  part_lse: "array<f32>",
};

/** Threads of the grouped decode kernel: 256 gives 32 keys a chunk at head dim 128, one
 * `SPLIT_ALIGN` of the pass. In the H100's decode steps 128 and 512 were slower (8B b=16 7.63
 * and 7.74 against 7.25 ms), as were 4 or 16 threads a key, K/V loads 2-3 chunks ahead and a
 * chunk loop of one barrier; where the kernel's time goes there: BENCHMARKS.md ("decode
 * attention ... is made of"). */
export const DECODE_THREADS = 256;

/**
 * Threads of the grouped decode kernel for `spec`: DECODE_THREADS, but 128 where the head dim
 * is at most 64 and a row has the dispatch's whole split share (`splits` = `splitRows`: the
 * one-row decode function, up to 64 splits a row of 32 positions each: more, smaller
 * workgroups shorten its chain). On the H100 (`bench/gpu/mod.ts --models=1b,0.5b`, twice
 * against 256 in one call), kernels a step: 1B b=1 0.721 → 0.701-0.707 ms, 0.5B 0.792-0.796 →
 * 0.780; at 16 rows 128 threads were slower (1B 1.79 → 1.86, 0.5B 1.54 → 1.58), as were 4
 * threads a key at head dim 64 at both.
 */
export function decodeThreads(spec: { headDim: number; splits: number; splitRows: number }) {
  return spec.headDim <= 64 && spec.splits >= spec.splitRows ? 128 : DECODE_THREADS;
}

/** WGSL defining `per_row`, the splits a row of a dispatch of `R.x` rows has (uniform). */
function perRow(s: { splits: number; splitRows: number }): string {
  return `let per_row = ${splitsPerRowWgsl(s)}; // splits a row at R.x rows`;
}

/** WGSL defining `lo`, `len` and `used` of the row at position `p` with `per_row` splits (the
 * contract's `decodeSplits`). */
function splitRange(s: { window: number; splitAlign: number }): string {
  const { window: W, splitAlign: A } = s;
  return `var lo = 0u;
  ${W > 0 ? `if (p + 1u > ${W}u) { lo = p + 1u - ${W}u; }` : ""}
  let n_pos = p + 1u - lo;
  let len = ((n_pos + per_row - 1u) / per_row + ${A - 1}u) / ${A}u * ${A}u;
  let used = (n_pos + len - 1u) / len;`;
}

function checkSplits(
  op: string,
  s: { window: number; splits: number; splitRows: number; splitAlign: number },
) {
  const ok = (x: number) => Number.isInteger(x) && x >= 1;
  if (
    !(ok(s.splits) && ok(s.splitRows) && ok(s.splitAlign) && Number.isInteger(s.window) &&
      s.window >= 0)
  ) {
    throw new RangeError(
      `${op}: splits ${s.splits}, splitRows ${s.splitRows} and splitAlign ${s.splitAlign} must be positive integers, window ${s.window} >= 0`,
    );
  }
}

/** WGSL for `attention_decode`; `threads` overrides `decodeThreads` (benches). */
export function attentionDecodeKernel(
  spec: DecodeSpec,
  target: TargetInfo,
  threads = decodeThreads(spec),
): WgslKernel {
  const { heads: H, kvHeads: KV, headDim: D, splits: S, scale } = spec;
  if (!(H > 0 && KV > 0 && D > 0 && D % 2 === 0 && H % KV === 0)) {
    throw new RangeError(
      `attention_decode: heads ${H}, kvHeads ${KV}, headDim ${D} must be positive, D even, heads a multiple of kvHeads`,
    );
  }
  checkSplits(spec.op, spec);
  const folded = foldedSplitsError(spec);
  if (folded) throw new RangeError(folded);
  const W = (H + 2 * KV) * D; // qkv row width
  const kv4 = cacheVec4(kvF16(spec)), kv1 = cacheScalar(kvF16(spec));
  const QS = spec.qkvSplits ?? 1; // qkv: partial sums of a kSplit matmul, added up as read
  // (with qkvSplitRows, the dispatch's first ones: `splitSum`)
  const qs1 = splitSum("qkv_sum", "f32", "qkv", QS, W, spec.qkvSplitRows);
  const qs4 = splitSum("qkv_sum4", "vec4<f32>", "qkv", QS, W / 4, spec.qkvSplitRows);
  // qkvBias: the bias of element i % W added to the sum (a bias reader, qkv_bias_at)
  const QB = spec.qkvBias;
  const qv = `// element i of qkv (rows of ${QS} x ${W} partial sums: added up${
    QB ? ", the bias" : ""
  })
${qs1.decl && `${qs1.decl}\n`}fn qv(i: u32) -> f32 { return ${qs1.call("i")}${
    QB ? ` + qkv_bias_at(i % ${W}u)` : ""
  }; }`;
  const biasDecls = QB ? denseReader("qkv_bias", QB) : "";
  const biasType: Record<string, string> = QB ? { qkv_bias: denseType(QB) } : {};
  const HG = H / KV;
  const half = D / 2;
  // Before the position is known: the page table's start and (grouped form) the raw q, k, v of
  // this thread, so that those loads overlap the position's; the turn table with it.
  const pre = `let base = r * ${QS * W}u;
  if (lid == 0u) { pos_shared = positions[r]; fill_turns(); }
  let pages = page_indptr[tok_seq[r]];`;
  const range = `let p = workgroupUniformLoad(&pos_shared);
  ${splitRange(spec)}
  if (split >= used) { return; } // (short contexts leave splits idle: they stop here)
  let jb = lo + split * len; // keys jb..je-1; the last split's end is p + 1
  let je = min(jb + len, p + 1u);`;
  const M = spec.merge;
  if (M) {
    for (const err of [unitLayoutError(spec), q8CodesError(spec)]) {
      if (err) throw new RangeError(err);
    }
  }
  const plan = D % 4 === 0 ? groupedPlan(spec, target, threads, 12 * D + mergeShared(spec)) : null;
  if (M && !(plan && (HG * D) % 32 === 0)) {
    throw new RangeError(
      `attention_decode merge needs the grouped form (head dim a multiple of 4 within the target's workgroup memory) and heads / kvHeads x headDim a multiple of 32 (${HG} x ${D})`,
    );
  }
  if (plan) {
    const { T, D4, HW, HB } = plan;
    const G = S * KV * HB;
    const { lseStride: LS } = mergedPartials(spec);
    const items = (HW + 2) * D4; // vec4s of q (HW heads), k and v this workgroup rotates or copies
    const passes = Math.ceil(items / T);
    // a vec4 of qkv at b + d(0): one 16-byte load a partial where the rotation pairs fall
    // in whole vec4s (half the head dim a multiple of 4), else element by element
    const V4 = half % 4 === 0;
    const ld = (b: string, d: (c: number) => string) =>
      V4 ? `qv4((${b} + ${d(0)}) / 4u)` : `vec4<f32>(${rep(4, (c) => `qv(${b} + ${d(c)})`, ", ")})`;
    // raw values of item i (x) and their rotation partners (y): q heads, then k, then v
    const raw = (n: number) =>
      `var x${n} = vec4<f32>(0.0);
  var y${n} = vec4<f32>(0.0);
  {
    let i = lid + ${n * T}u;
    let d = 4u * (i % ${D4}u);
    var b = base + ${H * D}u + kvh * ${D}u; // k
    if (i < ${HW * D4}u) { b = base + (kvh * ${HG}u + hb + i / ${D4}u) * ${D}u; }
    if (i >= ${(HW + 1) * D4}u) { b = base + ${(H + KV) * D}u + kvh * ${D}u; }
    if (i < ${items}u && (i >= ${HW * D4}u || hb + i / ${D4}u < ${HG}u)) {
      x${n} = ${ld("b", (c) => `d + ${c}u`)};
      if (i < ${(HW + 1) * D4}u) { y${n} = ${ld("b", (c) => V4 ? "pair(d)" : `pair(d + ${c}u)`)}; }
    }
  }`;
    const rotate = (n: number) =>
      `{
    let i = lid + ${n * T}u;
    let d = 4u * (i % ${D4}u);
    let o = vec4<f32>(${rep(4, (c) => `turn(x${n}[${c}], y${n}[${c}], d + ${c}u, p)`, ", ")});
    if (i < ${HW * D4}u) { qs[i] = o * ${lit(scale)}; }
    else if (i < ${(HW + 1) * D4}u) { knew[i - ${HW * D4}u] = ${kv4.enc("o")}; }
    else if (i < ${items}u) { vnew[i - ${(HW + 1) * D4}u] = ${kv4.enc(`x${n}`)}; }
  }`;
    return groupedKernel(spec, target, plan, {
      types: {
        ...TYPES,
        ...(V4 ? { qkv: "array<vec4<f32>>" } : {}),
        ...biasType,
        cache: "array<vec4<f32>>",
        part_o: "array<vec4<f32>>",
        counts: "array<atomic<u32>>",
        out: M?.outCodes ? "array<vec2<u32>>" : "array<vec4<f32>>",
      },
      decls: `${
        V4
          ? `// vec4 i of qkv (rows of ${QS} x ${W / 4} vec4s of partial sums: added up)
${qs4.decl && `${qs4.decl}\n`}fn qv4(i: u32) -> vec4<f32> { return ${qs4.call("i")}${
            QB
              ? ` + vec4<f32>(${
                rep(4, (c) => `qkv_bias_at((i % ${W / 4}u) * 4u${c ? ` + ${c}u` : ""})`, ", ")
              })`
              : ""
          }; }`
          : qv
      }
${biasDecls}
${M ? mergeDecls(spec, D4) : ""}
var<workgroup> knew: array<${kv4.raw}, ${D4}>; // [D4] rotated key p, as the cache stores it
var<workgroup> vnew: array<${kv4.raw}, ${D4}>; // [D4] value p, as the cache stores it
${rotation(spec.invFreq, D)}
// the element that element d is rotated with (pairs (i, i + ${half}))
fn pair(d: u32) -> u32 { return select(d - ${half}u, d + ${half}u, d < ${half}u); }
// element d (value x, its pair's value y) rotated to position p
fn turn(x: f32, y: f32, d: u32, p: u32) -> f32 {
  let cs = rot(p, d % ${half}u);
  return x * cs.x + select(y, -y, d < ${half}u) * cs.y;
}`,
      groupsPerRow: G,
      splitGrid: { splits: S, splitRows: spec.splitRows },
      start: `${perRow(spec)}
  let gr = per_row * ${KV * HB}u; // workgroups a row (its splits' share)
  let r = wg / gr;
  let split = (wg % gr) / ${KV * HB}u;
  let kvh = (wg % ${KV * HB}u) / ${HB}u;
  let hb = (wg % ${HB}u) * ${HW}u; // first head of the block within the KV head's ${HG}
  ${pre}
  ${rep(passes, raw, "\n  ")}
  ${range}
  ${rep(passes, rotate, "\n  ")}
  workgroupBarrier();
  if (je == p + 1u && hb == 0u && lid < ${D4}u) {
    let kr = krow(pages, kvh, p) + lid;
    cache[kr] = knew[lid];
    cache[kr + ${pagedRows(KV, D4).vOffset}u] = vnew[lid];
  }`,
      newKey: true,
      store: (h) =>
        M
          ? `let pj = hb + ${h}u; // the head within the KV head's ${HG}
    part_o[(((r * ${KV}u + kvh) * ${S}u + split) * ${HG}u + pj) * ${D4}u + e] = o;
    if (e == 0u) { part_lse[(r * ${KV}u + kvh) * ${LS}u + split * ${HG}u + pj] = mx_h + log(total_h); }`
          : `let pi = (r * ${S}u + split) * ${H}u + kvh * ${HG}u + hb + ${h}u;
    part_o[pi * ${D4}u + e] = o;
    if (e == 0u) { part_lse[pi] = mx_h + log(total_h); }`,
      tail: M ? mergeTail(spec, T, D4, HB, LS) : undefined,
    });
  }
  const T = reductionThreads(target, 64);
  const G = S * H;
  return scalarKernel(spec, target, T, {
    types: { ...TYPES, ...biasType },
    decls: `${qv}
${biasDecls}
var<workgroup> knew: array<f32, ${D}>; // [D] rotated key p
var<workgroup> vnew: array<f32, ${D}>; // [D] value p
${rotation(spec.invFreq, D)}
${ropeElement("rope_at", (i) => `qv(${i})`, D)}`,
    groupsPerRow: G,
    splitGrid: { splits: S, splitRows: spec.splitRows },
    start: `${perRow(spec)}
  let gr = per_row * ${H}u; // workgroups a row (its splits' share)
  let r = wg / gr;
  let split = (wg % gr) / ${H}u;
  let h = wg % ${H}u;
  let kvh = h / ${HG}u;
  ${pre}
  ${range}
  for (var d = lid; d < ${D}u; d += ${T}u) {
    qs[d] = rope_at(base + h * ${D}u, d, p) * ${lit(scale)};
    knew[d] = ${kv1.round(`rope_at(base + ${H * D}u + kvh * ${D}u, d, p)`)};
    vnew[d] = ${kv1.round(`qv(base + ${(H + KV) * D}u + kvh * ${D}u + d)`)};
  }
  workgroupBarrier();
  if (je == p + 1u && h % ${HG}u == 0u) {
    let kb = krow(pages, kvh, p);
    for (var d = 2u * lid; d < ${D}u; d += ${2 * T}u) {
      ${kv1.store2("kb + d", "knew[d]", "knew[d + 1u]")}
      ${kv1.store2(`kb + ${pagedRows(KV, D).vOffset}u + d`, "vnew[d]", "vnew[d + 1u]")}
    }
  }`,
    newKey: true,
    store: (d, o) =>
      `let pi = (r * ${S}u + split) * ${H}u + h;
      part_o[pi * ${D}u + ${d}] = ${o};
      if (${d} == 0u) { part_lse[pi] = m + log(l); }`,
  });
}

/** Whether this target's `attention_decode` kernel can fold the merge in (`merge`): the
 * grouped form with room for the merge's workgroup memory, a KV head's outputs a multiple of
 * 32 (its partials then start a cache line), and the two more storage bindings. */
export function mergeFits(spec: DecodeSpec, target: TargetInfo): boolean {
  const { heads: H, kvHeads: KV, headDim: D } = spec;
  const merged = { ...spec, merge: spec.merge ?? {} };
  return D % 4 === 0 && H % KV === 0 && ((H / KV) * D) % 32 === 0 &&
    bindings(merged).length <= target.limits.maxStorageBuffersPerShaderStage &&
    groupedPlan(merged, target, decodeThreads(spec), 12 * D + mergeShared(merged)) !== null;
}

/** Workgroup bytes of a folded merge (`merge`): the KV head's log-sum-exps, a flag, and with
 * `outCodes` its outputs and each pair's max and code sum. */
function mergeShared(spec: DecodeSpec): number {
  if (!spec.merge) return 0;
  const HG = spec.heads / spec.kvHeads, D = spec.headDim;
  return 4 * spec.splits * HG + 4 + (spec.merge.outCodes ? 4 * HG * D + 8 * (HG * D) / 8 : 0);
}

function mergeDecls(spec: DecodeSpec, D4: number): string {
  const HG = spec.heads / spec.kvHeads, NP = (HG * spec.headDim) / 8;
  return `var<workgroup> last_sh: u32; // this workgroup is its KV head's last to finish
var<workgroup> lse_m: array<f32, ${spec.splits * HG}>; // [splits, ${HG}] the KV head's log-sum-exps
${
    spec.merge!.outCodes
      ? `var<workgroup> hq: array<vec4<f32>, ${
        HG * D4
      }>; // the KV head's outputs, to be rounded to codes
var<workgroup> pm: array<f32, ${NP}>; // each pair's max |x|
var<workgroup> pk: array<f32, ${NP}>; // each pair's code sum`
      : ""
  }`;
}

/** Splits whose partials the folded merge's threads load at a time. On the H100 (after the
 * acquire, the partials come from L2): 8 took the 8B b=1 step from 2.514-2.518 to 2.488-2.499
 * ms and the 0.5B's from 0.866-0.869 to 0.844-0.852 against 4 (with one at a time past the
 * last 4); 16 was slower at 8B (b=16 8.96 against 8.68 ms: registers). */
const MERGE_LOADS = 8;

/**
 * WGSL after the partials' stores of an `attention_decode` with `merge`: the workgroups of a
 * (row, KV head) count themselves in `counts`; the last to arrive (all HB blocks of the used
 * splits have stored) zeroes the count and merges the KV head's heads as `attention_merge`
 * does. `storageBarrier()` (naga: acquire-release at device scope): the one before the count
 * makes this workgroup's partials visible before its count, the one after it orders the last
 * one's loads after the count. It does not refresh a line the SM's L1 already holds
 * (`bench/gpu/grid_barrier.ts`: another workgroup's value, loaded again after such a barrier,
 * was stale); the partials of a KV head share no cache line with another's (`mergedPartials`),
 * so a line is first loaded by the one workgroup that merges it.
 */
function mergeTail(spec: DecodeSpec, T: number, D4: number, HB: number, LS: number): string {
  const { heads: H, kvHeads: KV, headDim: D, splits: S } = spec;
  const HG = H / KV, M = spec.merge!;
  const NP = (HG * D) / 8; // pairs of vec4s of the KV head's outputs
  const K = H * D, W2 = (K / 4 + K / 16) / 2;
  const at = (s: string) => `part_o[((ob + ${s}) * ${HG}u + j) * ${D4}u + e]`;
  const wt = (s: string) => `exp(lse_m[(${s}) * ${HG}u + j] - mx)`;
  const store = M.outCodes
    ? "hq[i] = val;"
    : `out[r * ${H * D4}u + ${
      M.outUnits ? unitChunk(`kvh * ${HG * D4}u + i`, K) : `kvh * ${HG * D4}u + i`
    }] = val;`;
  const codes = M.outCodes ? codesOut(NP, `kvh * ${NP}u`, W2, K) : "";
  const ML = MERGE_LOADS;
  // The first ML partials loaded before the max (they do not need it) where the merge's out
  // is f32; with the max 4 loads at a time, on the H100: 8B b=1 -0.6% and 0.5B -1.4% in one
  // call, -0.3% / -0.4% in another. Where it writes codes (the batched functions' kernel) the
  // 8 vec4s held across the max cost the 8B's b=16 step 0.7%, so there they load after it.
  const early = !M.outCodes;
  // the weights of splits s0.. s0 + ML - 1 and their partials p0.. added to den and acc
  const weigh = (s0: string, p: string) =>
    `${
      rep(
        ML,
        (k) =>
          `let w${p}${k} = select(0.0, ${
            wt(`min(${s0} + ${k}u, used - 1u)`)
          }, ${s0} + ${k}u < used);`,
        "\n        ",
      )
    }
        den += ${rep(ML, (k) => `w${p}${k}`, " + ")};
        acc += ${rep(ML, (k) => `w${p}${k} * ${p}${k}`, " + ")};`;
  return `{
    // the merge, by the last of the KV head's ${HB} x used workgroups to finish
    storageBarrier();
    if (lid == 0u) {
      last_sh = select(0u, 1u, atomicAdd(&counts[r * ${KV}u + kvh], 1u) + 1u == ${HB}u * used);
    }
    if (workgroupUniformLoad(&last_sh) == 0u) { return; }
    storageBarrier();
    if (lid == 0u) { atomicStore(&counts[r * ${KV}u + kvh], 0u); }
    let lb = (r * ${KV}u + kvh) * ${LS}u;
    for (var k = lid; k < used * ${HG}u; k += ${T}u) { lse_m[k] = part_lse[lb + k]; }
    workgroupBarrier();
    let ob = (r * ${KV}u + kvh) * ${S}u; // the KV head's first part_o row
    for (var i = lid; i < ${HG * D4}u; i += ${T}u) {
      let j = i / ${D4}u; // head within the KV head
      let e = i % ${D4}u; // its vec4
      // ${ML} splits' partials loaded at a time (past used: the last one again, weighing 0)${
    early
      ? `;
      // the first ${ML} before the max, which they do not need`
      : ""
  }
      ${early ? rep(ML, (k) => `let f${k} = ${at(`min(${k}u, used - 1u)`)};`, "\n      ") : ""}
      // the max of the head's log-sum-exps, 4 loads at a time (past used: the last again)
      var mx = ${NEG};
      for (var s = 0u; s < used; s += 4u) {
        ${rep(4, (k) => `let l${k} = lse_m[min(s + ${k}u, used - 1u) * ${HG}u + j];`, "\n        ")}
        mx = max(mx, max(max(l0, l1), max(l2, l3)));
      }
      var den = 0.0;
      var acc = vec4<f32>(0.0);
      ${early ? weigh("0u", "f") : ""}
      for (var s = ${early ? ML : 0}u; s < used; s += ${ML}u) {
        ${rep(ML, (k) => `let o${k} = ${at(`min(s + ${k}u, used - 1u)`)};`, "\n        ")}
        ${weigh("s", "o")}
      }
      let val = acc / den;
      ${store}
    }
    ${codes}
  }`;
}

/** WGSL: the `NP` pairs of vec4s in workgroup array `hq` rounded to `quantize_q8` codes of row
 * r of out (`W2` vec2 words a row of K elements), pair `lid` at `first` + lid of the row (a
 * multiple of 4: whole blocks). */
function codesOut(NP: number, first: string, W2: number, K: number): string {
  const q = `${first} + lid`; // the pair's place in the row (block q / 4)
  return sharedPairCodes({
    pairs: NP,
    load: "va = hq[2u * lid]; vb = hq[2u * lid + 1u];",
    word: `r * ${W2}u + ${q}`,
    meta: `r * ${W2}u + ${K / 8}u + (${q}) / 4u`,
  });
}

/** WGSL: the max `mx` of the row's used splits' log-sum-exps and `den`, the sum of their exps. */
const reduce = `var mx = ${NEG};
  for (var s = 0u; s < used; s++) { mx = max(mx, lse_sh[s]); }
  var den = 0.0;
  for (var s = 0u; s < used; s++) { den += exp(lse_sh[s] - mx); }`;

/** WGSL for `attention_merge`: one workgroup per (row, head). Each thread reads one vec4 (one
 * element when the head dim is not a multiple of 4) of the outputs of every `SG`-th split, all
 * loads issued at once; the splits' log-sum-exps go through workgroup memory and the `SG`
 * partial sums are added there. Head rows longer than the workgroup loop over the splits. */
export function attentionMergeKernel(spec: MergeSpec, target: TargetInfo): WgslKernel {
  const { heads: H, headDim: D, splits: S } = spec;
  if (!(H > 0 && D > 0)) {
    throw new RangeError(`attention_merge: heads ${H}, headDim ${D} must be positive`);
  }
  checkSplits(spec.op, spec);
  for (const err of [unitLayoutError(spec), q8CodesError(spec)]) {
    if (err) throw new RangeError(err);
  }
  const CODES = !!spec.outCodes;
  const T = reductionThreads(target, 256);
  const V = D % 4 === 0 ? 4 : 1; // elements a thread reads from a split's row
  const DV = D / V;
  const vt = V === 4 ? "vec4<f32>" : "f32";
  const SG = DV <= T ? Math.max(1, Math.min(S, Math.floor(T / DV))) : 1; // split groups
  const SPT = Math.ceil(S / SG); // splits a thread reads at most
  const unrolled = DV <= T && SPT <= 16;
  // out's element (or vec4) e of head h, row-major or unit-major; with outCodes, the head's
  // vec4 e in workgroup memory, rounded to codes at the end
  const store = (e: string, v: string) => {
    if (CODES) return `hq[${e}] = ${v};`;
    const i = `h * ${DV}u + ${e}`;
    return `out[r * ${H * DV}u + ${
      spec.outUnits ? (V === 4 ? unitChunk(i, H * D) : unitElem(i, H * D)) : i
    }] = ${v};`;
  };
  const K = H * D, W2 = (K / 4 + K / 16) / 2; // codes: a row's elements, its vec2 words
  // codes: a thread a pair of vec4s (a quarter of a block), the block's max and code sum met
  // in workgroup memory
  const NP = D / 8;
  const codes = CODES ? codesOut(NP, `h * ${NP}u`, W2, K) : "";
  checkTarget(spec, target, {
    workgroupSize: T,
    sharedBytes: 4 * S + (SG > 1 ? 4 * V * SG * DV : 0) + (CODES ? 4 * D + 8 * NP : 0),
  });
  const weighted = unrolled
    ? `${rep(SPT, (i) => `var o${i} = ${vt}(0.0);`)}
  if (lid < ${SG * DV}u) {
    ${
      rep(
        SPT,
        (i) => `if (sg + ${i * SG}u < used) { o${i} = part_o[at + ${i * SG * H * DV}u]; }`,
        "\n    ",
      )
    }
  }
  workgroupBarrier();
  ${reduce}
  var acc = ${vt}(0.0);
  ${
      rep(
        SPT,
        (i) => `if (sg + ${i * SG}u < used) { acc += exp(lse_sh[sg + ${i * SG}u] - mx) * o${i}; }`,
        "\n  ",
      )
    }`
    : `workgroupBarrier();
  ${reduce}`;
  const code = `${
    declareBindings(spec, {
      positions: "array<u32>",
      part_o: `array<${vt}>`,
      part_lse: "array<f32>",
      out: CODES ? "array<vec2<u32>>" : `array<${vt}>`,
    })
  }
${
    CODES
      ? `var<workgroup> hq: array<${vt}, ${DV}>; // the head's outputs, to be rounded to codes
var<workgroup> pm: array<f32, ${NP}>; // each pair's max |x|
var<workgroup> pk: array<f32, ${NP}>; // each pair's code sum`
      : ""
  }
var<workgroup> lse_sh: array<f32, ${S}>; // [S] log-sum-exp of each split of the row's head
${
    SG > 1
      ? `var<workgroup> red: array<${vt}, ${SG * DV}>; // [SG, DV] partial sums of the split groups`
      : ""
  }

${entry(T, totalGroups(1, H))}
  let r = wg / ${H}u;
  let h = wg % ${H}u;
  let p = positions[r];
  ${perRow(spec)}
  ${splitRange(spec)}
  let lb = r * ${S * H}u + h; // part_lse of split s: lb + s * ${H}
  for (var s = lid; s < used; s += ${T}u) { lse_sh[s] = part_lse[lb + s * ${H}u]; }
  let sg = lid / ${Math.min(DV, T)}u; // split group: splits sg, sg + ${SG}, ...
  let dv = lid % ${Math.min(DV, T)}u;
  let at = (lb + sg * ${H}u) * ${DV}u + dv; // part_o of split sg, this thread's ${vt}
  ${weighted}
  ${
    unrolled
      ? SG > 1
        ? `if (lid < ${SG * DV}u) { red[lid] = acc; }
  workgroupBarrier();
  if (lid < ${DV}u) {
    var sum = red[lid];
    for (var k = 1u; k < ${SG}u; k++) { sum += red[k * ${DV}u + lid]; }
    ${store("lid", "sum / den")}
  }`
        : `if (lid < ${DV}u) { ${store("lid", "acc / den")} }`
      : `for (var e = lid; e < ${DV}u; e += ${T}u) {
    var acc = ${vt}(0.0);
    for (var s = 0u; s < used; s++) {
      acc += exp(lse_sh[s] - mx) * part_o[(lb + s * ${H}u) * ${DV}u + e];
    }
    ${store("e", "acc / den")}
  }`
  }
  ${codes}
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: H };
}
