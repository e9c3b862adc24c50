/**
 * `attention`: causal paged attention with GQA and an optional sliding window.
 * One workgroup per (row, head). Keys are scored a chunk of `T` positions at a time (one per
 * thread), with an online softmax (running max and sum) and each thread accumulating its
 * share of the head's output dims over the chunk's values.
 * @module
 */
import { type KernelSpec, PAGE_SIZE, type TargetInfo, type WgslKernel } from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  entry,
  lit,
  reductionThreads,
  totalGroups,
  treeReduce,
} from "./common.ts";

type AttentionSpec = Extract<KernelSpec, { op: "attention" }>;

/** WGSL for `attention`. */
export function attentionKernel(spec: AttentionSpec, target: TargetInfo): WgslKernel {
  const { heads: H, kvHeads: KV, headDim: D, qStride, window } = spec;
  if (!(H > 0 && KV > 0 && D > 0 && H % KV === 0 && qStride >= H * D && window >= 0)) {
    throw new RangeError(
      `attention: heads ${H}, kvHeads ${KV}, headDim ${D}, qStride ${qStride}, window ${window} are inconsistent`,
    );
  }
  const T = reductionThreads(target, 64);
  const dPerThread = Math.ceil(D / T);
  const shared = 4 * (D + 3 * T + 1);
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: shared });
  const types = {
    q: "array<f32>",
    positions: "array<u32>",
    tok_seq: "array<u32>",
    page_indptr: "array<u32>",
    page_indices: "array<u32>",
    cache: "array<f32>",
    out: "array<f32>",
  };
  const NEG = "-3.0e38";
  const code = `${declareBindings(spec, types)}
var<workgroup> qs: array<f32, ${D}>;
var<workgroup> red: array<f32, ${T}>;
var<workgroup> probs: array<f32, ${T}>;
var<workgroup> vrow: array<u32, ${T}>;
var<workgroup> pos_shared: u32;

${entry(T, totalGroups(1, H))}
  let r = wg / ${H}u;
  let h = wg % ${H}u;
  let kvh = h / ${H / KV}u;
  if (lid == 0u) { pos_shared = positions[r]; }
  for (var d = lid; d < ${D}u; d += ${T}u) {
    qs[d] = q[r * ${qStride}u + h * ${D}u + d] * ${lit(spec.scale)};
  }
  let p = workgroupUniformLoad(&pos_shared);
  let pages = page_indptr[tok_seq[r]];
  var lo = 0u;
  ${window > 0 ? `if (p + 1u > ${window}u) { lo = p + 1u - ${window}u; }` : ""}
  var m = ${NEG};
  var l = 0.0;
  var acc: array<f32, ${dPerThread}>;
  for (var c0 = lo; c0 <= p; c0 += ${T}u) {
    let j = c0 + lid;
    var score = ${NEG};
    if (j <= p) {
      let page = page_indices[pages + j / ${PAGE_SIZE}u];
      // [pages, 2, KV, PAGE, D]: K at part 0, V at part 1
      let kb = ((page * 2u) * ${KV * PAGE_SIZE}u + kvh * ${PAGE_SIZE}u + j % ${PAGE_SIZE}u) * ${D}u;
      vrow[lid] = kb + ${KV * PAGE_SIZE * D}u;
      var s = 0.0;
      for (var d = 0u; d < ${D}u; d++) { s += qs[d] * cache[kb + d]; }
      score = s;
    }
    red[lid] = score;
    workgroupBarrier();
    ${treeReduce("red", T, (a, b) => `max(${a}, ${b})`)}
    let m_new = max(m, red[0]);
    workgroupBarrier();
    let e = select(0.0, exp(score - m_new), j <= p);
    probs[lid] = e;
    red[lid] = e;
    workgroupBarrier();
    ${treeReduce("red", T, (a, b) => `${a} + ${b}`)}
    let alpha = exp(m - m_new);
    l = l * alpha + red[0];
    m = m_new;
    let n = min(${T}u, p + 1u - c0);
    for (var i = 0u; i < ${dPerThread}u; i++) {
      let d = lid + i * ${T}u;
      if (d < ${D}u) {
        var a = acc[i] * alpha;
        for (var jj = 0u; jj < n; jj++) { a += probs[jj] * cache[vrow[jj] + d]; }
        acc[i] = a;
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${dPerThread}u; i++) {
    let d = lid + i * ${T}u;
    if (d < ${D}u) { out[r * ${H * D}u + h * ${D}u + d] = acc[i] / l; }
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: H };
}
