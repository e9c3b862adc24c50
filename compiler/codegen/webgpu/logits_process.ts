/**
 * WGSL of `logits_process` (see contract.ts): one workgroup per row copies the row, applies the
 * row's sparse penalty/bias entries, then masks below the top-k-th largest value. The k-th
 * largest is found without sorting, by bisection over the order-preserving u32 key of each f32
 * (32 counting passes over the row).
 * @module
 */
import type { KernelSpec, TargetInfo, WgslKernel } from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  entry,
  reductionThreads,
  totalGroups,
  treeReduce,
} from "./common.ts";

export function logitsProcessKernel(
  spec: Extract<KernelSpec, { op: "logits_process" }>,
  target: TargetInfo,
): WgslKernel {
  const V = spec.vocab;
  const T = reductionThreads(target, V >= 4096 ? 1024 : 256);
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: 4 * T + 16 });
  const code = `${
    declareBindings(spec, {
      x: "array<f32>",
      indptr: "array<u32>",
      entries: "array<u32>",
      params: "array<f32>",
      out: "array<f32>",
    })
  }
var<workgroup> cnt: array<u32, ${T}>;

// f32 → u32 with the same order (negative floats reversed).
fn key(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

${entry(T, totalGroups(1, 1))}
  let r = wg;
  let base = r * ${V}u;
  for (var c = lid; c < ${V}u; c += ${T}u) { out[base + c] = x[base + c]; }
  storageBarrier();
  workgroupBarrier();
  let presence = params[r * 4u];
  let frequency = params[r * 4u + 1u];
  let repetition = params[r * 4u + 2u];
  let top_k = u32(max(params[r * 4u + 3u], 0.0));
  for (var e = indptr[r] + lid; e < indptr[r + 1u]; e += ${T}u) {
    let t = entries[e * 4u];
    let count = bitcast<f32>(entries[e * 4u + 1u]);
    let in_prompt = entries[e * 4u + 2u];
    var l = x[base + t] + bitcast<f32>(entries[e * 4u + 3u]);
    if (count > 0.0 || in_prompt != 0u) { l = select(l * repetition, l / repetition, l > 0.0); }
    l -= presence * select(0.0, 1.0, count > 0.0) + frequency * count;
    out[base + t] = l;
  }
  if (top_k < 1u || top_k >= ${V}u) { return; }
  storageBarrier();
  workgroupBarrier();
  // the largest key t with |{c : key(out[c]) >= t}| >= top_k is the key of the k-th largest
  var t = 0u;
  for (var bit = 31i; bit >= 0i; bit--) {
    let cand = t | (1u << u32(bit));
    var n = 0u;
    for (var c = lid; c < ${V}u; c += ${T}u) { n += select(0u, 1u, key(out[base + c]) >= cand); }
    cnt[lid] = n;
    workgroupBarrier();
    ${treeReduce("cnt", T, (a, b) => `${a} + ${b}`)}
    if (cnt[0] >= top_k) { t = cand; }
    workgroupBarrier();
  }
  for (var c = lid; c < ${V}u; c += ${T}u) {
    if (key(out[base + c]) < t) { out[base + c] = bitcast<f32>(0xff800000u); }
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: 1 };
}
