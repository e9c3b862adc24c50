/**
 * The body of `sample_top_p` (bindings declared by the caller). Without sorting: the order
 * (probability descending, index ascending) is walked by bisection on the probability's bit
 * pattern (non-negative floats order like their bits). `cross(T)` finds the element at which
 * the cumulative mass in that order reaches T: the largest value v with mass(p >= v) >= T
 * (or > T), then, among the ties of v in index order, the first whose addition reaches T.
 * Step 1 finds the last kept element for top_p (and the kept mass), step 2 the sampled one
 * for u * kept mass, clamped to the kept set. Each search pass weighs four candidate values at
 * once (a 5-way search: 14 passes where bisection took 31; the masses are the ones a pass
 * per value gives, bit for bit, so the result is bisection's); about 35 passes over the row,
 * each issuing `ROW_LOADS` loads a thread at a time.
 * @module
 */
import { rowPass } from "./common.ts";

/** Passes of the 5-way search: until its range of 2^31 bit patterns is one (each pass takes a
 * range of d to at most floor(d / 5) + 1). */
const SEARCH_PASSES = (() => {
  let n = 0;
  for (let d = 2 ** 31; d > 1; n++) d = Math.floor(d / 5) + 1;
  return n;
})();

/** WGSL for the reduction helpers and entry point of `sample_top_p` over `V` with `T` threads. */
export function topPBody(V: number, T: number): string {
  const chunk = Math.ceil(V / T);
  const pass = (body: (p: string, ok: string) => string) => rowPass("probs", V, T, body);
  const reduceSum = (arr: string) =>
    `workgroupBarrier();
  for (var s = ${T / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { ${arr}[lid] = ${arr}[lid] + ${arr}[lid + s]; }
    workgroupBarrier();
  }`;
  return `var<workgroup> red: array<f32, ${T}>;
var<workgroup> red4: array<vec4<f32>, ${T}>;
var<workgroup> cnt: array<u32, ${T}>;
var<workgroup> found: u32;

fn max_row(base: u32, lid: u32) -> f32 {
  var m = 0.0;
  ${pass((p, ok) => `if (${ok}) { m = max(m, ${p}); }`)}
  red[lid] = m;
  workgroupBarrier();
  for (var s = ${T / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let res = red[0];
  workgroupBarrier();
  return res;
}

// Mass of the elements with p >= v.
fn mass_ge(base: u32, v: f32, lid: u32) -> f32 {
  var m = 0.0;
  ${pass((p, ok) => `if (${ok} && ${p} >= v) { m += ${p}; }`)}
  red[lid] = m;
  ${reduceSum("red")}
  let res = red[0];
  workgroupBarrier();
  return res;
}

// Mass of the elements with p >= v[k], for each k (each the same sum as mass_ge(v[k])).
fn mass_ge4(base: u32, v: vec4<f32>, lid: u32) -> vec4<f32> {
  var m = vec4<f32>(0.0);
  ${
    pass((p, ok) =>
      `if (${ok}) { m += select(vec4<f32>(0.0), vec4<f32>(${p}), vec4<f32>(${p}) >= v); }`
    )
  }
  red4[lid] = m;
  ${reduceSum("red4")}
  let res = red4[0];
  workgroupBarrier();
  return res;
}

// (mass of the elements with p > v, count of those with p == v)
fn mass_gt_ties(base: u32, v: f32, lid: u32) -> vec2<f32> {
  var m = 0.0;
  var k = 0u;
  ${pass((p, ok) => `if (${ok}) { if (${p} > v) { m += ${p}; } if (${p} == v) { k += 1u; } }`)}
  red[lid] = m;
  cnt[lid] = k;
  ${reduceSum("red")}
  ${reduceSum("cnt").replace("workgroupBarrier();\n", "")}
  let res = vec2<f32>(red[0], f32(cnt[0]));
  workgroupBarrier();
  return res;
}

// Index of the n-th (from 1) element equal to v, in index order.
fn nth_tie(base: u32, v: f32, n: u32, lid: u32) -> u32 {
  let start = lid * ${chunk}u;
  let end = min(start + ${chunk}u, ${V}u);
  var k = 0u;
  for (var c = start; c < end; c++) { if (probs[base + c] == v) { k += 1u; } }
  cnt[lid] = k;
  if (lid == 0u) { found = ${V - 1}u; }
  workgroupBarrier();
  if (lid == 0u) {
    var acc = 0u;
    for (var i = 0u; i < ${T}u; i++) { let t = cnt[i]; cnt[i] = acc; acc += t; }
  }
  workgroupBarrier();
  let before = cnt[lid];
  if (before < n && n <= before + k) {
    var seen = before;
    for (var c = start; c < end; c++) {
      if (probs[base + c] == v) {
        seen += 1u;
        if (seen == n) { found = c; break; }
      }
    }
  }
  workgroupBarrier();
  let res = found;
  workgroupBarrier();
  return res;
}

// (reached, value bits, index, kept mass bits) of the element where the mass reaches t.
// (total: the row's mass, mass_ge(base, 0.0))
fn cross(base: u32, t: f32, strict: bool, pmax: f32, total: f32, lid: u32) -> vec4<u32> {
  let reached = select(total >= t, total > t, strict);
  // the largest bit pattern lo < hi whose mass reaches t: the 5-way split of [lo, hi) at
  // m_k = lo + k (hi - lo) / 5 keeps the last m_k that reaches t and the first that does not
  var lo = 0u;
  var hi = bitcast<u32>(pmax) + 1u;
  for (var it = 0u; it < ${SEARCH_PASSES}u; it++) {
    let d = hi - lo;
    let k = vec4<u32>(1u, 2u, 3u, 4u);
    let m = vec4<u32>(lo) + (d / 5u) * k + ((d % 5u) * k) / 5u;
    let g = mass_ge4(base, bitcast<vec4<f32>>(m), lid);
    let ok = select(g >= vec4<f32>(t), g > vec4<f32>(t), strict);
    var nlo = lo;
    var nhi = hi;
    for (var j = 0u; j < 4u; j++) {
      if (ok[j]) { nlo = max(nlo, m[j]); } else { nhi = min(nhi, m[j]); }
    }
    lo = nlo;
    hi = nhi;
  }
  let v = bitcast<f32>(lo);
  let st = mass_gt_ties(base, v, lid);
  var c = 1.0;
  if (v > 0.0) {
    let need = (t - st.x) / v;
    c = select(ceil(need), floor(need) + 1.0, strict);
  }
  c = clamp(c, 1.0, max(st.y, 1.0));
  let idx = nth_tie(base, v, u32(c), lid);
  return vec4<u32>(select(0u, 1u, reached), lo, idx, bitcast<u32>(st.x + c * v));
}

@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let wg = wid.x + wid.y * nwg.x;
  if (wg >= R.x) { return; }
  let base = wg * ${V}u;
  if (top_p[wg] >= 1.0) {
    // Nothing cut: index order. Each thread sums its contiguous chunk, an inclusive scan of the
    // chunk sums finds the thread whose chunk crosses u * total, and it walks its chunk.
    let start = lid * ${chunk}u;
    let end = min(start + ${chunk}u, ${V}u);
    var s = 0.0;
    var last = 0u; // 1 + last index of nonzero probability in the chunk (0: none)
    for (var c = start; c < end; c++) {
      let pv = probs[base + c];
      s += pv;
      if (pv > 0.0) { last = c + 1u; }
    }
    red[lid] = s;
    cnt[lid] = last;
    workgroupBarrier();
    for (var off = 1u; off < ${T}u; off = off << 1u) {
      var a = 0.0;
      var b = 0u;
      if (lid >= off) { a = red[lid - off]; b = cnt[lid - off]; }
      workgroupBarrier();
      red[lid] += a;
      cnt[lid] = max(cnt[lid], b);
      workgroupBarrier();
    }
    let total = red[${T - 1}u];
    let goal = u[wg] * total;
    if (lid == 0u) { found = max(cnt[${T - 1}u], 1u) - 1u; }
    workgroupBarrier();
    let before = select(0.0, red[max(lid, 1u) - 1u], lid > 0u);
    if (before <= goal && goal < red[lid]) {
      var cum = before;
      for (var c = start; c < end; c++) {
        cum += probs[base + c];
        if (cum > goal) { found = c; break; }
      }
    }
    workgroupBarrier();
    if (lid == 0u) { out[wg] = found; }
    return;
  }
  let pmax = max_row(base, lid);
  let total = mass_ge(base, 0.0, lid);
  let t1 = clamp(top_p[wg], 0.0, total);
  let e1 = cross(base, t1, false, pmax, total, lid);
  let e2 = cross(base, u[wg] * bitcast<f32>(e1.w), true, pmax, total, lid);
  let v1 = bitcast<f32>(e1.y);
  let v2 = bitcast<f32>(e2.y);
  let inside = v2 > v1 || (v2 == v1 && e2.z <= e1.z);
  if (lid == 0u) { out[wg] = select(e1.z, e2.z, e2.x == 1u && inside); }
}
`;
}
