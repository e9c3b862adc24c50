/**
 * WGSL of `logits_process` (see contract.ts): the row is copied and the row's sparse
 * penalty/bias entries applied by one workgroup a slice of `T * ROW_LOADS` tokens (each thread
 * issuing its 8 loads at once), so that a 128k row is spread over 16 SMs. A row with top_k in
 * force is done whole by its first slice's workgroup (the others return): it then masks below
 * the top-k-th largest value, found without sorting, by bisection over the order-preserving
 * u32 key of each f32 (32 counting passes over the row).
 * @module
 */
import type { KernelSpec, TargetInfo, WgslKernel } from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  entry,
  range,
  reductionThreads,
  ROW_LOADS,
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
  const U = ROW_LOADS;
  const SL = U * T; // tokens a slice
  const G = Math.ceil(V / SL); // slices a row
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

${entry(T, totalGroups(1, G))}
  let r = wg / ${G}u;
  let g = wg % ${G}u;
  let base = r * ${V}u;
  let presence = params[r * 4u];
  let frequency = params[r * 4u + 1u];
  let repetition = params[r * 4u + 2u];
  let top_k = u32(max(params[r * 4u + 3u], 0.0));
  let whole = top_k >= 1u && top_k < ${V}u; // the k-th largest needs the whole row
  if (whole && g > 0u) { return; }
  let lo = select(g * ${SL}u, 0u, whole);
  let hi = select(min(lo + ${SL}u, ${V}u), ${V}u, whole);
  for (var c0 = lo + lid; c0 < hi; c0 += ${U * T}u) {
    ${range(U).map((k) => `let v${k} = x[base + min(c0 + ${k * T}u, ${V - 1}u)];`).join(" ")}
    ${
    range(U).map((k) => `if (c0 + ${k * T}u < hi) { out[base + c0 + ${k * T}u] = v${k}; }`).join(
      "\n    ",
    )
  }
  }
  storageBarrier();
  workgroupBarrier();
  for (var e = indptr[r] + lid; e < indptr[r + 1u]; e += ${T}u) {
    let t = entries[e * 4u];
    if (t < lo || t >= hi) { continue; }
    let count = bitcast<f32>(entries[e * 4u + 1u]);
    let in_prompt = entries[e * 4u + 2u];
    var l = x[base + t] + bitcast<f32>(entries[e * 4u + 3u]);
    if (count > 0.0 || in_prompt != 0u) { l = select(l * repetition, l / repetition, l > 0.0); }
    l -= presence * select(0.0, 1.0, count > 0.0) + frequency * count;
    out[base + t] = l;
  }
  if (!whole) { return; }
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
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: G };
}
