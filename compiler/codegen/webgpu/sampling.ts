/**
 * Sampling kernels: `take_rows`, `argmax`, `softmax_temp`, `sample_top_p`.
 * Reductions run one workgroup per row through workgroup memory.
 * @module
 */
import { argmaxPartWords, type KernelSpec, type TargetInfo, type WgslKernel } from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  entry,
  pow2Floor,
  reductionThreads,
  rowPass,
  spanPass,
  totalGroups,
} from "./common.ts";
import { topPBody, topPSharedBytes } from "./top_p.ts";

/** Elements `sample_top_p` gathers into workgroup memory at most (the bucket or sub-bucket
 * holding the nucleus' edge; more, and it searches instead). */
const TOP_P_CAP = 2048;

type SamplingSpec = Extract<
  KernelSpec,
  { op: "take_rows" | "argmax" | "softmax_temp" | "softmax_stats" | "sample_top_p" }
>;

/** WGSL `fn argmax_row(base: u32, lid: u32) -> vec2<u32>`: (index, bits of the max) of a row
 * of x; with `block` (L elements a block), `fn argmax_span(base, lo, hi, lid)` of elements
 * lo..hi-1 (index 0xffffffff where none is above -inf) as well. */
export function argmaxFn(V: number, T: number, block?: number): string {
  const better = (v: string, i: string, bv: string, bi: string) =>
    `(${v} > ${bv} || (${v} == ${bv} && ${i} < ${bi}))`;
  // the workgroup's best of best_v / best_i, into their first entries
  const tree = `best_v[lid] = bv;
  best_i[lid] = bi;
  workgroupBarrier();
  for (var s = ${T / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      let ov = best_v[lid + s];
      let oi = best_i[lid + s];
      if (${better("ov", "oi", "best_v[lid]", "best_i[lid]")}) {
        best_v[lid] = ov;
        best_i[lid] = oi;
      }
    }
    workgroupBarrier();
  }`;
  const visit = (v: string, ok: string, c: string) =>
    `if (${ok} && ${better(v, c, "bv", "bi")}) { bv = ${v}; bi = ${c}; }`;
  return `var<workgroup> best_v: array<f32, ${T}>;
var<workgroup> best_i: array<u32, ${T}>;
fn argmax_row(base: u32, lid: u32) -> vec2<u32> {
  var bv = bitcast<f32>(0xff800000u);
  var bi = 0xffffffffu;
  ${rowPass("x", V, T, visit)}
  ${tree}
  let res = vec2<u32>(select(best_i[0], 0u, best_i[0] == 0xffffffffu), bitcast<u32>(best_v[0]));
  workgroupBarrier();
  return res;
}
${
    block
      ? `fn argmax_span(base: u32, lo: u32, hi: u32, lid: u32) -> vec2<u32> {
  var bv = bitcast<f32>(0xff800000u);
  var bi = 0xffffffffu;
  ${spanPass("x", "lo", "hi", block, T, visit)}
  ${tree}
  let res = vec2<u32>(best_i[0], bitcast<u32>(best_v[0]));
  workgroupBarrier();
  return res;
}
// the best of n (<= ${T}) (index, max bits) pairs, one a thread in (pi, pv)
fn argmax_of(pi: u32, pv: f32, n: u32, lid: u32) -> u32 {
  var bv = bitcast<f32>(0xff800000u);
  var bi = 0xffffffffu;
  if (lid < n) { bv = pv; bi = pi; }
  ${tree}
  let res = select(best_i[0], 0u, best_i[0] == 0xffffffffu);
  workgroupBarrier();
  return res;
}`
      : ""
  }`;
}

function takeRows(spec: Extract<SamplingSpec, { op: "take_rows" }>, T: number): WgslKernel {
  const W = spec.width;
  const perGroup = 4 * T;
  const blocks = Math.ceil(W / perGroup);
  const code = `${declareBindings(spec, { x: "array<f32>", idx: "array<u32>", out: "array<f32>" })}

${entry(T, totalGroups(1, blocks))}
  let r = wg / ${blocks}u;
  let src = idx[r];
  let c0 = (wg % ${blocks}u) * ${perGroup}u + lid;
  for (var j = 0u; j < 4u; j++) {
    let c = c0 + j * ${T}u;
    if (c < ${W}u) { out[r * ${W}u + c] = x[src * ${W}u + c]; }
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: blocks };
}

function argmax(spec: Extract<SamplingSpec, { op: "argmax" }>, T: number): WgslKernel {
  if (spec.blocks) return argmaxBlocks(spec, spec.blocks, T);
  const code = `${declareBindings(spec, { x: "array<f32>", out: "array<u32>" })}
${argmaxFn(spec.vocab, T)}

${entry(T, totalGroups(1, 1))}
  let res = argmax_row(wg * ${spec.vocab}u, lid);
  if (lid == 0u) { out[wg] = res.x; }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: 1 };
}

/** `argmax` with `blocks`: a workgroup a block of the row stores its best in `part` and counts
 * itself (`atomicAdd` between two `storageBarrier()`s, as the folded attention merge); the last
 * of the row's combines the blocks' bests and zeroes the count. The barriers order the stores
 * before the count, but do not refresh a line the combiner's SM already holds in L1, so a row's
 * pairs get lines of their own (`argmaxPartWords`). One dispatch: the row is read by B
 * workgroups, not one at ~30 GB/s. */
function argmaxBlocks(
  spec: Extract<SamplingSpec, { op: "argmax" }>,
  B: number,
  T: number,
): WgslKernel {
  const V = spec.vocab, L = blockLen(V, B);
  const PS = argmaxPartWords(B) / 2; // a row's (max, index) pairs, padded to whole lines
  if (!(Number.isInteger(B) && B >= 2 && B <= T)) {
    throw new RangeError(`argmax: blocks ${B} must be an integer in [2, ${T}]`);
  }
  const code = `${
    declareBindings(spec, {
      x: "array<f32>",
      part: "array<vec2<u32>>",
      counts: "array<atomic<u32>>",
      out: "array<u32>",
    })
  }
${argmaxFn(V, T, L)}
var<workgroup> last_sh: u32;

${entry(T, totalGroups(1, B))}
  let r = wg / ${B}u;
  let b = wg % ${B}u;
  let lo = b * ${L}u;
  let best = argmax_span(r * ${V}u, lo, min(lo + ${L}u, ${V}u), lid);
  if (lid == 0u) { part[r * ${PS}u + b] = best; }
  // the last of the row's ${B} workgroups to finish combines their bests
  storageBarrier();
  if (lid == 0u) { last_sh = select(0u, 1u, atomicAdd(&counts[r], 1u) + 1u == ${B}u); }
  if (workgroupUniformLoad(&last_sh) == 0u) { return; }
  storageBarrier();
  var p = vec2<u32>(0xffffffffu, 0xff800000u);
  if (lid < ${B}u) { p = part[r * ${PS}u + lid]; }
  let res = argmax_of(p.x, bitcast<f32>(p.y), ${B}u, lid);
  if (lid == 0u) {
    out[r] = res;
    atomicStore(&counts[r], 0u);
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: B };
}

const NEG_INF = "bitcast<f32>(0xff800000u)";

/** WGSL, in a pass over a thread's elements: element `v` (index `c`, valid if `ok`) into the
 * thread's max `bv`, its first index `bi` and `s`, the sum of exp((x - bv) * inv_t), rescaled
 * when the max grows (online softmax). */
const online = (v: string, ok: string, c: string) =>
  `if (${ok}) {
      if (${v} > bv) { s = s * exp((bv - ${v}) * inv_t); bv = ${v}; bi = ${c}; }
      if (${v} > ${NEG_INF}) { s += exp((${v} - bv) * inv_t); }
    }`;

/** WGSL: the threads' (bv, bi, s) met in one tree through `best_v`, `best_i`, `red` (the
 * lowest index wins ties); the result in slot 0. */
function onlineTree(T: number): string {
  return `best_v[lid] = bv;
  best_i[lid] = bi;
  red[lid] = s;
  workgroupBarrier();
  for (var h = ${T / 2}u; h > 0u; h = h >> 1u) {
    if (lid < h) {
      let av = best_v[lid];
      let ov = best_v[lid + h];
      let oi = best_i[lid + h];
      let m = max(av, ov);
      // (a side with no finite element adds nothing: its max is -inf)
      let sa = select(red[lid] * exp((av - m) * inv_t), 0.0, av == ${NEG_INF});
      let so = select(red[lid + h] * exp((ov - m) * inv_t), 0.0, ov == ${NEG_INF});
      red[lid] = sa + so;
      if (ov > av || (ov == av && oi < best_i[lid])) {
        best_v[lid] = ov;
        best_i[lid] = oi;
      }
    }
    workgroupBarrier();
  }`;
}

const TREE_DECLS = (T: number) =>
  `var<workgroup> best_v: array<f32, ${T}>;
var<workgroup> best_i: array<u32, ${T}>;
var<workgroup> red: array<f32, ${T}>;`;

/** Temperature of row `r` as the kernels use it: `greedy` (t <= 0) and `inv_t` (1 then). */
const TEMPERATURE = (r: string) =>
  `let t = temperature[${r}];
  let greedy = !(t > 0.0);
  let inv_t = select(1.0 / t, 1.0, greedy);`;

/** Elements of a `softmax_stats` block. */
const blockLen = (V: number, B: number) => Math.ceil(V / B);

/**
 * `softmax_temp`. Alone (no `blocks`), one workgroup a row in two passes: the first finds each
 * thread's max (and its first index) and sum of exps (`online`), met in one tree; the second
 * writes the probabilities (a one-hot at the argmax for t <= 0). (Three passes before: argmax,
 * sum, write: 56 -> 48 us at V = 128256 on the H100, where one workgroup reads ~30 GB/s.)
 * With `blocks`, one workgroup a (row, block): every workgroup combines the row's
 * `softmax_stats` (a few words a block) and writes its block.
 */
function softmaxTemp(spec: Extract<SamplingSpec, { op: "softmax_temp" }>, T: number): WgslKernel {
  const V = spec.vocab;
  const write = (c: string, v: string) =>
    `out[base + ${c}] = select(exp((${v} - mx) * inv_t) * inv_sum, select(0.0, 1.0, ${c} == am), greedy);`;
  if (spec.blocks) {
    const B = spec.blocks, L = blockLen(V, B);
    const code = `${
      declareBindings(spec, {
        x: "array<f32>",
        temperature: "array<f32>",
        stats: "array<vec2<f32>>",
        stats_idx: "array<u32>",
        out: "array<f32>",
      })
    }
${TREE_DECLS(T)}

${entry(T, totalGroups(1, B))}
  let r = wg / ${B}u;
  let b = wg % ${B}u;
  ${TEMPERATURE("r")}
  // the row's blocks met as the first pass's threads are (\`online\`, then one tree)
  var bv = ${NEG_INF};
  var bi = 0xffffffffu;
  var s = 0.0;
  for (var k = lid; k < ${B}u; k += ${T}u) {
    let st = stats[r * ${B}u + k];
    if (st.x > bv) {
      s = s * exp((bv - st.x) * inv_t) + st.y;
      bv = st.x;
      bi = stats_idx[r * ${B}u + k];
    } else if (st.x > ${NEG_INF}) {
      s += st.y * exp((st.x - bv) * inv_t);
    }
  }
  ${onlineTree(T)}
  let mx = best_v[0];
  let am = select(best_i[0], 0u, best_i[0] == 0xffffffffu);
  let inv_sum = 1.0 / red[0];
  let base = r * ${V}u;
  let lo = b * ${L}u;
  let hi = min(lo + ${L}u, ${V}u);
  ${spanPass("x", "lo", "hi", L, T, (v, ok, c) => `if (${ok}) { ${write(c, v)} }`)}
}
`;
    return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: B };
  }
  const code = `${
    declareBindings(spec, { x: "array<f32>", temperature: "array<f32>", out: "array<f32>" })
  }
${TREE_DECLS(T)}

${entry(T, totalGroups(1, 1))}
  let base = wg * ${V}u;
  ${TEMPERATURE("wg")}
  var bv = ${NEG_INF};
  var bi = 0xffffffffu;
  var s = 0.0; // sum of exp((x - bv) / t) over this thread's elements so far
  ${rowPass("x", V, T, online)}
  ${onlineTree(T)}
  let mx = best_v[0];
  let am = select(best_i[0], 0u, best_i[0] == 0xffffffffu);
  let inv_sum = 1.0 / red[0];
  ${rowPass("x", V, T, (v, ok, c) => `if (${ok}) { ${write(c, v)} }`)}
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: 1 };
}

/** `softmax_stats`: one workgroup a (row, block), one pass (`online`) and one tree. */
function softmaxStats(spec: Extract<SamplingSpec, { op: "softmax_stats" }>, T: number): WgslKernel {
  const { vocab: V, blocks: B } = spec;
  if (!(Number.isInteger(B) && B >= 1)) {
    throw new RangeError(`softmax_stats: blocks ${B} must be a positive integer`);
  }
  const L = blockLen(V, B);
  const code = `${
    declareBindings(spec, {
      x: "array<f32>",
      temperature: "array<f32>",
      stats: "array<vec2<f32>>",
      idx: "array<u32>",
    })
  }
${TREE_DECLS(T)}

${entry(T, totalGroups(1, B))}
  let r = wg / ${B}u;
  let b = wg % ${B}u;
  let base = r * ${V}u;
  let lo = b * ${L}u;
  let hi = min(lo + ${L}u, ${V}u);
  ${TEMPERATURE("r")}
  var bv = ${NEG_INF};
  var bi = 0xffffffffu;
  var s = 0.0;
  ${spanPass("x", "lo", "hi", L, T, online)}
  ${onlineTree(T)}
  if (lid == 0u) {
    stats[wg] = vec2<f32>(best_v[0], red[0]);
    idx[wg] = best_i[0];
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: B };
}

/** WGSL for the sampling ops. `topPSearch` false (tests): `sample_top_p` without its search
 * and the row's walk after a draw by slices, so that rows the gathered candidates do not settle
 * (or no slice crosses) give token 0xffffffff; `topPBySlice` false (tests): the row walked. */
export function samplingKernel(
  spec: SamplingSpec,
  target: TargetInfo,
  { topPSearch = true, topPBySlice = true } = {},
): WgslKernel {
  // (a workgroup of the split softmax reads one block)
  const width = spec.op === "take_rows"
    ? spec.width
    : spec.op === "softmax_stats" || (spec.op === "softmax_temp" && spec.blocks) ||
        (spec.op === "argmax" && spec.blocks)
    ? blockLen(spec.vocab, spec.blocks!)
    : spec.vocab;
  if (!(width > 0)) throw new RangeError(`${spec.op}: width ${width} must be positive`);
  // one workgroup reduces a whole vocabulary row: as many threads as the target allows
  let T = reductionThreads(target, spec.op !== "take_rows" && width >= 4096 ? 1024 : 256);
  const limit = target.limits.maxComputeWorkgroupStorageSize;
  if (spec.op === "sample_top_p") {
    // room for TOP_P_CAP gathered elements where the threads allow; at least 64 threads
    const V = spec.vocab;
    while (T > 64 && topPSharedBytes(T, TOP_P_CAP, V) > limit) T /= 2;
    if (T < 64) throw new RangeError(`sample_top_p: needs 64 threads, the target allows ${T}`);
    const cap = Math.min(
      TOP_P_CAP,
      pow2Floor(Math.max(1, (limit - topPSharedBytes(T, 0, V)) / 8)),
    );
    checkTarget(spec, target, { workgroupSize: T, sharedBytes: topPSharedBytes(T, cap, V) });
    const code = `${
      declareBindings(spec, {
        probs: "array<f32>",
        top_p: "array<f32>",
        u: "array<f32>",
        gathered: "array<u32>",
        mass: "array<f32>",
        out: "array<u32>",
      })
    }
${topPBody(spec.vocab, T, cap, topPSearch, topPBySlice)}`;
    return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: 1 };
  }
  while (T > 32 && 12 * T + 64 > limit) T /= 2; // at most 12 workgroup bytes a thread
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: 12 * T + 64 });
  switch (spec.op) {
    case "take_rows":
      return takeRows(spec, T);
    case "argmax":
      return argmax(spec, T);
    case "softmax_temp":
      return softmaxTemp(spec, T);
    case "softmax_stats":
      return softmaxStats(spec, T);
  }
}
