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

const TYPES = {
  q: "array<f32>",
  positions: "array<u32>",
  tok_seq: "array<u32>",
  page_indptr: "array<u32>",
  page_indices: "array<u32>",
  cache: "array<f32>",
  out: "array<f32>",
};
const NEG = "-3.0e38";

/** WGSL for `attention`. */
export function attentionKernel(spec: AttentionSpec, target: TargetInfo): WgslKernel {
  const { heads: H, kvHeads: KV, headDim: D, qStride, window } = spec;
  if (!(H > 0 && KV > 0 && D > 0 && H % KV === 0 && qStride >= H * D && window >= 0)) {
    throw new RangeError(
      `attention: heads ${H}, kvHeads ${KV}, headDim ${D}, qStride ${qStride}, window ${window} are inconsistent`,
    );
  }
  const T = reductionThreads(target, 64);
  if (D % 4 === 0) return attentionVec4(spec, target, reductionThreads(target, 256));
  const dPerThread = Math.ceil(D / T);
  const shared = 4 * (D + 3 * T + 1);
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: shared });
  const code = `${declareBindings(spec, TYPES)}
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

/**
 * The head-dim-multiple-of-4 form: keys and values are read as vec4s. For values, the threads
 * form G = T / (D/4) groups, each summing every G-th position of the chunk into its own vec4
 * of the output; the groups are added up at the end.
 */
function attentionVec4(spec: AttentionSpec, target: TargetInfo, T: number): WgslKernel {
  const { heads: H, kvHeads: KV, headDim: D, qStride, window } = spec;
  const D4 = D / 4;
  const G = Math.max(1, Math.floor(T / D4)); // value groups
  const d4PerThread = Math.ceil(D4 / T); // > 1 only when D/4 > T (then G = 1)
  const U = 4; // unroll of the key and value loops
  const shared = 16 * D4 + 12 * T + 16 * T + 4;
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: shared });
  const code = `${declareBindings(spec, { ...TYPES, cache: "array<vec4<f32>>" })}
var<workgroup> qs: array<vec4<f32>, ${D4}>;
var<workgroup> red: array<f32, ${T}>;
var<workgroup> probs: array<f32, ${T}>;
var<workgroup> vrow: array<u32, ${T}>; // vec4 index of each chunk position's value row
var<workgroup> part: array<vec4<f32>, ${T}>;
var<workgroup> pos_shared: u32;

${entry(T, totalGroups(1, H))}
  let r = wg / ${H}u;
  let h = wg % ${H}u;
  let kvh = h / ${H / KV}u;
  if (lid == 0u) { pos_shared = positions[r]; }
  for (var d = lid; d < ${D4}u; d += ${T}u) {
    let qb = r * ${qStride}u + h * ${D}u + 4u * d;
    qs[d] = vec4<f32>(q[qb], q[qb + 1u], q[qb + 2u], q[qb + 3u]) * ${lit(spec.scale)};
  }
  let p = workgroupUniformLoad(&pos_shared);
  let pages = page_indptr[tok_seq[r]];
  var lo = 0u;
  ${window > 0 ? `if (p + 1u > ${window}u) { lo = p + 1u - ${window}u; }` : ""}
  let g = lid / ${D4}u; // value group (${G} groups)
  var m = ${NEG};
  var l = 0.0;
  ${Array.from({ length: d4PerThread }, (_, i) => `var acc${i} = vec4<f32>(0.0);`).join(" ")}
  for (var c0 = lo; c0 <= p; c0 += ${T}u) {
    let j = c0 + lid;
    var score = ${NEG};
    if (j <= p) {
      let page = page_indices[pages + j / ${PAGE_SIZE}u];
      // [pages, 2, KV, PAGE, D] in vec4s: K at part 0, V at part 1
      let kb = ((page * 2u) * ${
    KV * PAGE_SIZE
  }u + kvh * ${PAGE_SIZE}u + j % ${PAGE_SIZE}u) * ${D4}u;
      vrow[lid] = kb + ${KV * PAGE_SIZE * D4}u;
      ${Array.from({ length: U }, (_, u) => `var s${u} = 0.0;`).join(" ")}
      for (var d = 0u; d < ${D4 - (D4 % U)}u; d += ${U}u) {
        ${
    Array.from({ length: U }, (_, u) => `s${u} += dot(qs[d + ${u}u], cache[kb + d + ${u}u]);`).join(
      " ",
    )
  }
      }
      ${
    Array.from({ length: D4 % U }, (_, u) =>
      `s0 += dot(qs[${D4 - (D4 % U) + u}u], cache[kb + ${D4 - (D4 % U) + u}u]);`).join(" ")
  }
      score = ${Array.from({ length: U }, (_, u) => `s${u}`).join(" + ")};
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
    ${
    Array.from({ length: d4PerThread }, (_, i) =>
      `{
      let d = lid % ${D4}u + ${i * T}u;
      ${Array.from({ length: U }, (_, u) => `var v${u} = vec4<f32>(0.0);`).join(" ")}
      if (g < ${G}u && d < ${D4}u) {
        // ${U} independent loads in flight per step; positions past n weigh nothing.
        for (var jj = g; jj < n; jj += ${U * G}u) {
          ${
        Array.from({ length: U }, (_, u) =>
          `{ let j = min(jj + ${u * G}u, ${T - 1}u); let v = probs[j] * cache[vrow[j] + d];
            v${u} += select(vec4<f32>(0.0), v, jj + ${u * G}u < n); }`).join("\n          ")
      }
        }
      }
      acc${i} = acc${i} * alpha + ${Array.from({ length: U }, (_, u) => `v${u}`).join(" + ")};
    }`).join("\n    ")
  }
    workgroupBarrier();
  }
  ${
    Array.from({ length: d4PerThread }, (_, i) =>
      `{
    part[lid] = acc${i};
    workgroupBarrier();
    let d = lid + ${i * T}u;
    if (lid < ${D4}u && d < ${D4}u) {
      var v = part[lid];
      for (var gg = 1u; gg < ${G}u; gg++) { v += part[gg * ${D4}u + lid]; }
      v = v / l;
      let o = r * ${H * D}u + h * ${D}u + 4u * d;
      out[o] = v.x; out[o + 1u] = v.y; out[o + 2u] = v.z; out[o + 3u] = v.w;
    }
    workgroupBarrier();
  }`).join("\n  ")
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: H };
}
