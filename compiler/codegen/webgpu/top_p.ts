/**
 * `top_p_hist`, `top_p_gather` and the body of `sample_top_p` (bindings declared by the
 * caller).
 *
 * `top_p_hist`: one workgroup per (row, slice of `TOP_P_SLICE`), its buckets' masses summed in
 * workgroup memory with atomics (the 64-bit fixed-point masses as two words and a carry).
 * `top_p_gather`: one workgroup per (row, slice) too: the bucket B where the histogram's mass
 * summed from the top bucket down reaches top_p, the slice's elements of B (their indices) and
 * its mass above B (at top_p >= 1: its whole mass).
 *
 * `sample_top_p` at top_p < 1 finds the nucleus, the kept set {p > v} plus the ties of v up to
 * index i in (probability descending, index ascending) order, then draws the token in index
 * order among the kept ones. Finding (v, i), fastest first:
 * 1. From the gathered candidates: B's elements are loaded into workgroup memory (up to
 *    `cap`), the mass above B is the slices' sum. When B holds more, a second level does the
 *    same over B's 256 sub-buckets (the next 8 bits), counted by a pass over the candidates.
 * 2. The candidates are sorted (bitonic, in workgroup memory) and scanned: the one where the
 *    mass above plus the scan first reaches top_p is (v, i). When none does (B chosen from a
 *    wrong or stale histogram, rounding at a bucket's edge) or too many elements remain, the
 *    search below takes over.
 * 3. The search, without sorting: the order is walked by a 5-way search on the probability's
 *    bit pattern (non-negative floats order like their bits). `cross(T)` finds the element at
 *    which the cumulative mass in that order reaches T: the largest value v with
 *    mass(p >= v) >= T, then, among the ties of v in index order, the first whose addition
 *    reaches T. Each pass weighs four candidate values (14 passes where bisection took 31),
 *    each issuing `ROW_LOADS` loads a thread at a time.
 * The draw: with (v, i) from the candidates (or at top_p >= 1), each slice's kept mass is its
 * mass above B plus its kept candidates; the slice where their sum first exceeds u times the
 * total is walked alone (`walk_slice`). After the search (or where rounding leaves no slice
 * crossing) the whole row is walked (`walk_row`).
 * @module
 */
import {
  type KernelSpec,
  type TargetInfo,
  TOP_P_ALL,
  TOP_P_BUCKETS,
  TOP_P_KEY0,
  TOP_P_NONE,
  TOP_P_SLICE,
  topPGatherWords,
  topPSlices,
  type WgslKernel,
} from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  entry,
  pow2Floor,
  range,
  reductionThreads,
  ROW_LOADS,
  rowPass,
  spanPass,
  totalGroups,
} from "./common.ts";

/** Sub-buckets of the second level: the 8 bits below a bucket's. */
const SUBS = 256;

/** WGSL `fn top_p_bucket(bits: u32) -> u32` (the contract's `topPBucket`) and
 * `fn positive(bits: u32) -> bool`: 0 < p <= inf, from the bits (exact where subnormals flush). */
const BUCKET_FNS = `fn top_p_bucket(bits: u32) -> u32 {
  return u32(clamp(i32(bits >> 20u) - ${TOP_P_KEY0}, 0, ${TOP_P_BUCKETS - 1}));
}
fn positive(bits: u32) -> bool { return bits - 1u < 0x7f800000u; }
// floor(min(p, 1 - 2^-24) * 2^32), exact: a power-of-two scale
fn fixed_mass(p: f32) -> u32 { return u32(min(p, bitcast<f32>(0x3f7fffffu)) * 4294967296.0); }
// the mass of a 64-bit fixed-point sum (lo, hi): hi + lo * 2^-32
fn fixed_f32(lo: u32, hi: u32) -> f32 { return f32(hi) + f32(lo) * bitcast<f32>(0x2f800000u); }`;

/** WGSL adding fixed-point mass `f` (u32) to the 64-bit sum in atomics `lo`, `hi` at `i`. */
const addFixed = (lo: string, hi: string, i: string, f: string) =>
  `{ let f = ${f}; let old = atomicAdd(&${lo}[${i}], f); if (old + f < old) { atomicAdd(&${hi}[${i}], 1u); } }`;

/** WGSL for `top_p_hist`. */
export function topPHistKernel(
  spec: Extract<KernelSpec, { op: "top_p_hist" }>,
  target: TargetInfo,
): WgslKernel {
  const V = spec.vocab, NB = TOP_P_BUCKETS;
  const G = Math.ceil(V / TOP_P_SLICE);
  const T = reductionThreads(target, 256);
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: 8 * NB });
  const code = `${
    declareBindings(spec, {
      probs: "array<f32>",
      top_p: "array<f32>",
      out: "array<vec2<u32>>",
    })
  }
var<workgroup> h_lo: array<atomic<u32>, ${NB}>;
var<workgroup> h_hi: array<atomic<u32>, ${NB}>;
${BUCKET_FNS}

${entry(T, totalGroups(1, G))}
  let r = wg / ${G}u;
  if (top_p[r] >= 1.0) { return; }
  for (var b = lid; b < ${NB}u; b += ${T}u) {
    atomicStore(&h_lo[b], 0u);
    atomicStore(&h_hi[b], 0u);
  }
  workgroupBarrier();
  let s0 = (wg % ${G}u) * ${TOP_P_SLICE}u;
  let base = r * ${V}u;
  let s1 = min(s0 + ${TOP_P_SLICE}u, ${V}u);
  ${
    spanPass("probs", "s0", "s1", TOP_P_SLICE, T, (p, ok) =>
      `if (${ok}) {
      let bits = bitcast<u32>(${p});
      if (positive(bits)) {
        let b = top_p_bucket(bits);
        ${addFixed("h_lo", "h_hi", "b", `fixed_mass(${p})`)}
      }
    }`)
  }
  workgroupBarrier();
  for (var b = lid; b < ${NB}u; b += ${T}u) {
    out[wg * ${NB}u + b] = vec2<u32>(atomicLoad(&h_lo[b]), atomicLoad(&h_hi[b]));
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: G };
}

/** Elements a thread of `top_p_gather` loads at a time, of a contiguous run, so that its
 * bucket's elements are written in index order after one scan of the threads' counts. */
const GATHER_LOADS = 32;

/** WGSL for `top_p_gather`: one workgroup per (row, slice). Each finds the row's bucket from
 * the histogram (its buckets' 64-bit masses summed over the slices, then from the top by groups
 * of 8); a thread takes a run of the slice (8 elements at 1,024 threads: a warp's loads span 8
 * cache lines, where runs of 32 spanned 32 and took 13 us on the H100), counts its elements of
 * the bucket and sums the mass above it; a scan of the counts places each thread's indices
 * after those of the threads before it. */
export function topPGatherKernel(
  spec: Extract<KernelSpec, { op: "top_p_gather" }>,
  target: TargetInfo,
): WgslKernel {
  const V = spec.vocab, NB = TOP_P_BUCKETS, G = topPSlices(V), W = topPGatherWords(V);
  const T = Math.min(reductionThreads(target, 1024), TOP_P_SLICE / 4);
  const RUN = TOP_P_SLICE / T; // elements a thread reads (a power of two, >= 4)
  const LU = Math.min(RUN, GATHER_LOADS);
  const VEC = V % 4 === 0; // vec4 loads (a row and a run start at a multiple of 4)
  /** WGSL: `body(p, c)` for each element c (value p) of the thread's run below s1, its loads
   * issued LU at a time. */
  const run = (body: (p: string, c: string) => string) =>
    `for (var j0 = 0u; j0 < ${RUN}u; j0 += ${LU}u) {
      ${
      VEC
        ? range(LU / 4).map((i) =>
          `let q${i} = probs[min((base + c0 + j0) / 4u + ${i}u, (base + s1) / 4u - 1u)];`
        ).join("\n      ")
        : range(LU).map((j) => `let p${j} = probs[base + min(c0 + j0 + ${j}u, s1 - 1u)];`)
          .join("\n      ")
    }
      ${
      range(LU).map((j) =>
        `if (c0 + j0 + ${j}u < s1) {
        ${body(VEC ? `q${j >> 2}[${j & 3}]` : `p${j}`, `(c0 + j0 + ${j}u)`)}
      }`
      ).join("\n      ")
    }
    }`;
  const HU = Math.min(16, G); // histogram loads a thread issues at a time
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: 8 * NB + NB + 8 * T + 16 });
  const code = `${
    declareBindings(spec, {
      probs: VEC ? "array<vec4<f32>>" : "array<f32>",
      top_p: "array<f32>",
      hist: "array<vec2<u32>>",
      out: "array<u32>",
      mass: "array<f32>",
    })
  }
var<workgroup> m_lo: array<u32, ${NB}>; // [NB] the row's bucket masses, 64-bit
var<workgroup> m_hi: array<u32, ${NB}>;
var<workgroup> g_lo: array<u32, ${NB / 8}>; // [NB / 8] their sums by 8
var<workgroup> g_hi: array<u32, ${NB / 8}>;
var<workgroup> b_sh: u32;
var<workgroup> red: array<f32, ${T}>;
var<workgroup> cnt: array<u32, ${T}>;
${BUCKET_FNS}
// (lo, hi) + (a, b) as 64-bit integers
fn add64(x: vec2<u32>, a: u32, b: u32) -> vec2<u32> {
  let lo = x.x + a;
  return vec2<u32>(lo, x.y + b + select(0u, 1u, lo < a));
}
fn ge64(x: vec2<u32>, t: u32) -> bool { return x.y > 0u || x.x >= t; }

${entry(T, totalGroups(1, G))}
  let r = wg / ${G}u;
  let g = wg % ${G}u;
  let tp = top_p[r];
  let base = r * ${V}u;
  let s0 = g * ${TOP_P_SLICE}u;
  let s1 = min(s0 + ${TOP_P_SLICE}u, ${V}u);
  let ob = r * ${W}u;
  var bucket = ${TOP_P_ALL}u;
  if (tp < 1.0) {
    for (var b = lid; b < ${NB}u; b += ${T}u) {
      var m = vec2<u32>(0u);
      // the slices' masses of bucket b, ${HU} loads issued at a time
      for (var k0 = 0u; k0 < ${G}u; k0 += ${HU}u) {
        ${
    range(HU).map((i) => `let h${i} = hist[(r * ${G}u + min(k0 + ${i}u, ${G - 1}u)) * ${NB}u + b];`)
      .join("\n        ")
  }
        ${
    range(HU).map((i) =>
      G % HU === 0
        ? `m = add64(m, h${i}.x, h${i}.y);`
        : `if (k0 + ${i}u < ${G}u) { m = add64(m, h${i}.x, h${i}.y); }`
    ).join("\n        ")
  }
      }
      m_lo[b] = m.x;
      m_hi[b] = m.y;
    }
    workgroupBarrier();
    for (var i = lid; i < ${NB / 8}u; i += ${T}u) {
      var m = vec2<u32>(0u);
      for (var j = 0u; j < 8u; j++) { m = add64(m, m_lo[i * 8u + j], m_hi[i * 8u + j]); }
      g_lo[i] = m.x;
      g_hi[i] = m.y;
    }
    workgroupBarrier();
    if (lid == 0u) {
      let need = max(fixed_mass(max(tp, 0.0)), 1u);
      var acc = vec2<u32>(0u);
      var res = ${TOP_P_NONE}u;
      for (var i = ${NB / 8}u; i > 0u; i--) {
        let next = add64(acc, g_lo[i - 1u], g_hi[i - 1u]);
        if (ge64(next, need)) {
          for (var j = 8u; j > 0u; j--) {
            let b = (i - 1u) * 8u + j - 1u;
            acc = add64(acc, m_lo[b], m_hi[b]);
            if (ge64(acc, need)) { res = b; break; }
          }
          break;
        }
        acc = next;
      }
      b_sh = res;
    }
    bucket = workgroupUniformLoad(&b_sh);
  }
  // a run of ${RUN} elements a thread: its count of the bucket's, its mass above it
  let c0 = s0 + lid * ${RUN}u;
  var m = 0.0;
  var n = 0u;
  if (bucket != ${TOP_P_NONE}u) {
    ${
    run((p) =>
      `let bits = bitcast<u32>(${p});
        if (bucket == ${TOP_P_ALL}u) { m += ${p}; }
        else if (positive(bits)) {
          let k = top_p_bucket(bits);
          if (k > bucket) { m += ${p}; }
          if (k == bucket) { n += 1u; }
        }`
    )
  }
  }
  red[lid] = m;
  cnt[lid] = n;
  workgroupBarrier();
  // an inclusive scan of the counts (its last: the slice's), a sum of the masses
  for (var off = 1u; off < ${T}u; off = off << 1u) {
    var a = 0u;
    var x = 0.0;
    if (lid >= off) { a = cnt[lid - off]; }
    if (lid + off < ${T}u && (lid & (2u * off - 1u)) == 0u) { x = red[lid + off]; }
    workgroupBarrier();
    cnt[lid] += a;
    red[lid] += x;
    workgroupBarrier();
  }
  if (n > 0u) {
    var at = ob + ${1 + G}u + s0 + cnt[lid] - n;
    ${
    run((p, c) =>
      `let bits = bitcast<u32>(${p});
        if (positive(bits) && top_p_bucket(bits) == bucket) {
          out[at] = ${c};
          at += 1u;
        }`
    )
  }
  }
  if (lid == 0u) {
    out[ob + 1u + g] = cnt[${T - 1}u];
    mass[r * ${G}u + g] = red[0];
    if (g == 0u) { out[ob] = bucket; }
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: G };
}

/** Passes of the 5-way search: until its range of 2^31 bit patterns is one (each pass takes a
 * range of d to at most floor(d / 5) + 1). */
const SEARCH_PASSES = (() => {
  let n = 0;
  for (let d = 2 ** 31; d > 1; n++) d = Math.floor(d / 5) + 1;
  return n;
})();

/** Workgroup bytes `sample_top_p` uses at `T` threads and `cap` gathered candidates. */
export function topPSharedBytes(T: number, cap: number, V: number): number {
  return 24 * T + 4 * TOP_P_BUCKETS + 8 * SUBS + 8 * cap + 8 * topPSlices(V) + 64;
}

/** WGSL for the reduction helpers and entry point of `sample_top_p` over `V` with `T` threads
 * (a power of two, at least 64) and room for `cap` (a power of two) gathered elements;
 * `search` false (tests): rows the candidates do not settle, or drawn by slices without a
 * slice crossing, give token 0xffffffff; `bySlice` false (tests): the row always walked. */
export function topPBody(V: number, T: number, cap: number, search = true, bySlice = true): string {
  const chunk = Math.ceil(V / T);
  const G = topPSlices(V), NB = TOP_P_BUCKETS, W = topPGatherWords(V);
  const NONE = "0xffffffffu";
  // the draw by slices (a thread a slice at least): TG threads a slice's candidates
  const FAST = bySlice && G <= T;
  const TG = Math.max(1, pow2Floor(T / G));
  const CU = 4; // candidates a thread loads at a time (8 and 16 measured no faster)
  /** WGSL: `body(p, c, k)` for each candidate top_p_gather gathered (index c, value p, the
   * k-th of slice g), slice g by TG threads, CU at a time a thread (gb, base in scope). */
  const candPass = (body: (p: string, c: string, k: string) => string) =>
    `for (var g = lid / ${TG}u; g < ${G}u; g += ${T / TG}u) {
    let ng = gathered[gb + 1u + g];
    let at = gb + ${1 + G}u + g * ${TOP_P_SLICE}u;
    for (var k = lid % ${TG}u; k < ng; k += ${CU * TG}u) {
      ${range(CU).map((i) => `let c${i} = gathered[at + min(k + ${i * TG}u, ng - 1u)];`).join(" ")}
      ${range(CU).map((i) => `let p${i} = probs[base + c${i}];`).join(" ")}
      ${
      range(CU).map((i) =>
        `if (k + ${i * TG}u < ng) { ${body(`p${i}`, `c${i}`, `(k + ${i * TG}u)`)} }`
      ).join("\n      ")
    }
    }
  }`;
  /**
   * WGSL \`fn name(base, off, len, v, vi, start, goal, u, lid) -> u32\`: the walk over elements
   * off..off+len-1 (len <= N) of the row at base: the token where \`start\` plus the mass of the
   * kept elements (p > v, or p == v at index <= vi), summed in index order, first exceeds
   * \`goal\` (goal < 0: u times start plus their total); none: the last kept index of nonzero
   * probability (or 0). Groups of GW threads each take a contiguous region of RW elements, read
   * GW consecutive ones at a time (WU loads a thread in flight); an inclusive scan of the
   * threads' sums finds the group whose region crosses (its last thread's sum ends the region),
   * which is copied to workgroup memory (at most cap); a scan of runs of RUN of it there finds
   * the run that crosses, and its thread walks it. (GW 1: a thread's own chunk, walked where it
   * lies, not copied: small workgroup memory.)
   */
  const walkFn = (name: string, N: number) => {
    const chunk = Math.ceil(N / T);
    const GW = Math.max(1, Math.min(32, T, pow2Floor(Math.max(1, Math.floor(cap / chunk)))));
    const RW = GW * chunk;
    const RUN = Math.ceil(RW / T);
    const WU = Math.min(ROW_LOADS, chunk);
    return `fn ${name}(base: u32, off: u32, len: u32, v: f32, vi: u32, start: f32, goal_in: f32, u: f32, lid: u32) -> u32 {
  let grp = lid / ${GW}u;
  let r0 = grp * ${RW}u + lid % ${GW}u;
  var s = 0.0;
  var last = 0u; // 1 + last kept index of nonzero probability the thread saw (0: none)
  for (var i = 0u; i < ${chunk}u; i += ${WU}u) {
    ${
      range(WU).map((k) =>
        `let p${k} = probs[base + off + min(r0 + (i + ${k}u) * ${GW}u, len - 1u)];`
      ).join("\n    ")
    }
    ${
      range(WU).map((k) =>
        `if (i + ${k}u < ${chunk}u && r0 + (i + ${k}u) * ${GW}u < len) {
      let c = off + r0 + (i + ${k}u) * ${GW}u;
      if (p${k} > v || (p${k} == v && c <= vi)) {
        s += p${k};
        if (p${k} > 0.0) { last = c + 1u; }
      }
    }`
      ).join("\n    ")
    }
  }
  red[lid] = s;
  cnt[lid] = last;
  if (lid == 0u) { found = ${NONE}; atomicStore(&claim, ${NONE}); }
  workgroupBarrier();
  for (var d = 1u; d < ${T}u; d = d << 1u) {
    var a = 0.0;
    var b = 0u;
    if (lid >= d) { a = red[lid - d]; b = cnt[lid - d]; }
    workgroupBarrier();
    red[lid] += a;
    cnt[lid] = max(cnt[lid], b);
    workgroupBarrier();
  }
  let goal = select(goal_in, u * (start + red[${T - 1}u]), goal_in < 0.0);
  let fallback = max(cnt[${T - 1}u], 1u) - 1u;
  if (lid % ${GW}u == ${GW - 1}u) {
    let before = start + select(0.0, red[max(lid, ${GW}u) - ${GW}u], grp > 0u);
    if (before <= goal && goal < start + red[lid]) {${
      GW === 1
        ? `
      var cum = before;
      var at = ${NONE};
      for (var c = off + r0; c < off + min(r0 + ${chunk}u, len); c++) {
        let pv = probs[base + c];
        if (pv > v || (pv == v && c <= vi)) {
          cum += pv;
          if (pv > 0.0) { at = c; }
          if (cum > goal) { break; }
        }
      }
      atomicMin(&claim, at);`
        : " found = grp; hit_mass = before;"
    }}
  }
  ${
      GW === 1 ? "workgroupBarrier();" : `let hg = workgroupUniformLoad(&found);
  if (hg != ${NONE}) {
    let rs = off + hg * ${RW}u; // the region's first index in the row
    let n = min(${RW}u, len - hg * ${RW}u);
    for (var e = lid; e < n; e += ${T}u) {
      let pv = probs[base + rs + e];
      cand_p[e] = select(0.0, pv, pv > v || (pv == v && rs + e <= vi));
    }
    workgroupBarrier();
    let e0 = lid * ${RUN}u;
    let e1 = min(e0 + ${RUN}u, n);
    scan_runs(e0, e1, lid);
    let before = hit_mass + select(0.0, red[max(lid, 1u) - 1u], lid > 0u);
    if (e0 < e1 && before <= goal && goal < hit_mass + red[lid]) {
      var cum = before;
      var at = ${NONE};
      for (var e = e0; e < e1; e++) {
        cum += cand_p[e];
        if (cand_p[e] > 0.0) { at = rs + e; }
        if (cum > goal) { break; }
      }
      atomicMin(&claim, at);
    }
    workgroupBarrier();
  }`
    }
  let res = atomicLoad(&claim);
  workgroupBarrier();
  return select(res, fallback, res == ${NONE});
}`;
  };
  const pass = (body: (p: string, ok: string, c: string) => string) => rowPass("probs", V, T, body);
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
var<workgroup> bmass: array<f32, ${NB}>; // masses of the buckets (or sub-buckets) searched
var<workgroup> s_lo: array<atomic<u32>, ${SUBS}>; // [SUBS] sub-bucket masses, 64-bit fixed point
var<workgroup> s_hi: array<atomic<u32>, ${SUBS}>;
var<workgroup> n_cand: atomic<u32>;
var<workgroup> claim: atomic<u32>;
var<workgroup> cand_p: array<f32, ${cap}>; // [cap] gathered elements: probability, index
var<workgroup> cand_i: array<u32, ${cap}>;
var<workgroup> r_ok: u32; // the nucleus from the histogram: found (1), its last value and index
var<workgroup> r_v: u32;
var<workgroup> r_i: u32;
var<workgroup> hit_mass: f32; // mass before the walk's crossing region (or slice)
var<workgroup> s_goal: f32; // the draw's goal
var<workgroup> sl_off: array<u32, ${G}>; // [G] where each slice's candidates start in cand_*
var<workgroup> kept_m: array<f32, ${G}>; // [G] each slice's kept mass
${BUCKET_FNS}

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

// The bucket (of bmass[0..n)) where the mass summed from the top, from \`start\`, reaches t
// (${NONE}: none). Sums of 8 buckets first, then one thread walks them down.
fn from_top(n: u32, start: f32, t: f32, lid: u32) -> u32 {
  if (lid < n / 8u) {
    var s = 0.0;
    for (var j = 0u; j < 8u; j++) { s += bmass[lid * 8u + j]; }
    red[lid] = s;
  }
  workgroupBarrier();
  if (lid == 0u) {
    var acc = start;
    var res = ${NONE};
    for (var i = n / 8u; i > 0u; i--) {
      if (acc + red[i - 1u] >= t) {
        for (var j = 8u; j > 0u; j--) {
          acc += bmass[(i - 1u) * 8u + j - 1u];
          if (acc >= t) { res = (i - 1u) * 8u + j - 1u; break; }
        }
        break;
      }
      acc += red[i - 1u];
    }
    found = res;
  }
  return workgroupUniformLoad(&found);
}

// Mass of the elements above (bucket > b; with sub: bucket b, sub-bucket > sb), and the
// elements of bucket b (sub-bucket sb) gathered into cand_*; returns (mass bits, their count).
fn gather(base: u32, b: u32, sb: u32, sub: bool, lid: u32) -> vec2<u32> {
  if (lid == 0u) { atomicStore(&n_cand, 0u); }
  workgroupBarrier();
  var m = 0.0;
  ${
    pass((p, ok, c) =>
      `if (${ok}) {
      let bits = bitcast<u32>(${p});
      let k = top_p_bucket(bits);
      var above = !sub && positive(bits) && k > b; // (with sub: counted by the first gather)
      var here = positive(bits) && k == b;
      if (sub && here) {
        let k2 = (bits >> 12u) & ${SUBS - 1}u;
        above = k2 > sb;
        here = k2 == sb;
      }
      if (above) { m += ${p}; }
      if (here) {
        let at = atomicAdd(&n_cand, 1u);
        if (at < ${cap}u) { cand_p[at] = ${p}; cand_i[at] = ${c}; }
      }
    }`
    )
  }
  red[lid] = m;
  ${reduceSum("red")}
  if (lid == 0u) { found = atomicLoad(&n_cand); }
  let n = workgroupUniformLoad(&found);
  let res = vec2<u32>(bitcast<u32>(red[0]), n);
  workgroupBarrier();
  return res;
}

// red[lid] = the sum of cand_p over the runs e0..e1-1 of threads 0..lid (an inclusive scan).
fn scan_runs(e0: u32, e1: u32, lid: u32) {
  var s = 0.0;
  for (var e = e0; e < e1; e++) { s += cand_p[e]; }
  red[lid] = s;
  workgroupBarrier();
  for (var off = 1u; off < ${T}u; off = off << 1u) {
    var a = 0.0;
    if (lid >= off) { a = red[lid - off]; }
    workgroupBarrier();
    red[lid] += a;
    workgroupBarrier();
  }
}

// Sorts the n gathered elements (probability descending, index ascending) and finds the one
// where \`above\` plus their mass in that order reaches t: sets r_ok, r_v, r_i.
fn pick(n: u32, above: f32, t: f32, lid: u32) {
  var P = 1u;
  while (P < n) { P = P << 1u; }
  for (var e = n + lid; e < P; e += ${T}u) { cand_p[e] = -1.0; cand_i[e] = ${NONE}; }
  if (lid == 0u) { atomicStore(&claim, ${NONE}); }
  workgroupBarrier();
  for (var k = 2u; k <= P; k = k << 1u) {
    for (var j = k >> 1u; j > 0u; j = j >> 1u) {
      for (var q = lid; q < P / 2u; q += ${T}u) {
        let i = (q / j) * 2u * j + q % j;
        let l = i + j;
        let pi = cand_p[i];
        let pl = cand_p[l];
        let ii = cand_i[i];
        let il = cand_i[l];
        let l_first = pl > pi || (pl == pi && il < ii);
        let i_first = pi > pl || (pi == pl && ii < il);
        if (select(i_first, l_first, (i & k) == 0u)) {
          cand_p[i] = pl; cand_p[l] = pi;
          cand_i[i] = il; cand_i[l] = ii;
        }
      }
      workgroupBarrier();
    }
  }
  // an inclusive scan of runs of C sorted elements, then the run that reaches t walks itself
  let C = (P + ${T - 1}u) / ${T}u;
  let e0 = lid * C;
  let e1 = min(e0 + C, n);
  scan_runs(e0, e1, lid);
  let before = above + select(0.0, red[max(lid, 1u) - 1u], lid > 0u);
  if (e0 < e1 && before < t && t <= above + red[lid]) {
    var acc = before;
    var at = e1 - 1u;
    for (var e = e0; e < e1; e++) {
      acc += cand_p[e];
      if (acc >= t) { at = e; break; }
    }
    atomicMin(&claim, at);
  }
  workgroupBarrier();
  if (lid == 0u) {
    let at = atomicLoad(&claim);
    r_ok = select(1u, 0u, at == ${NONE});
    if (at != ${NONE}) { r_v = bitcast<u32>(cand_p[at]); r_i = cand_i[at]; }
  }
  workgroupBarrier();
}

${
    FAST
      ? `// The nucleus (r_ok 1: its last value r_v and index r_i) from top_p_gather's candidates: the
// bucket's own when they fit (their mass above from the slices' masses), else those of the
// sub-bucket where the mass from the top reaches t (a pass of their own counts the
// sub-buckets); r_ok 0 when the bucket does not hold the nucleus' edge (a bucket chosen by a
// wrong histogram, rounding at its edge) or too many elements remain.
fn from_cands(gb: u32, mb: u32, base: u32, b: u32, t: f32, lid: u32) -> u32 {
  if (lid < ${G}u) { sl_off[lid] = gathered[gb + 1u + lid]; kept_m[lid] = mass[mb + lid]; }
  workgroupBarrier();
  if (lid == 0u) {
    var n = 0u;
    var m = 0.0;
    for (var g = 0u; g < ${G}u; g++) {
      let k = sl_off[g];
      sl_off[g] = n;
      n += k;
      m += kept_m[g];
    }
    found = n;
    hit_mass = m;
  }
  var n = workgroupUniformLoad(&found);
  var above = workgroupUniformLoad(&hit_mass);
  if (n <= ${cap}u) {
    ${candPass((p, c, k) => `cand_p[sl_off[g] + ${k}] = ${p}; cand_i[sl_off[g] + ${k}] = ${c};`)}
    workgroupBarrier();
  } else {
    // too many in b: its sub-buckets' masses, then the same within one
    if (b == 0u || b == ${NB - 1}u) { return 0u; } // (lumped buckets: the next bits do not order)
    for (var i = lid; i < ${SUBS}u; i += ${T}u) { atomicStore(&s_lo[i], 0u); atomicStore(&s_hi[i], 0u); }
    workgroupBarrier();
    ${
        candPass((p) =>
          `let k2 = (bitcast<u32>(${p}) >> 12u) & ${SUBS - 1}u;
        ${addFixed("s_lo", "s_hi", "k2", `fixed_mass(${p})`)}`
        )
      }
    workgroupBarrier();
    for (var i = lid; i < ${SUBS}u; i += ${T}u) {
      bmass[i] = fixed_f32(atomicLoad(&s_lo[i]), atomicLoad(&s_hi[i]));
    }
    workgroupBarrier();
    let sb = from_top(${SUBS}u, above, t, lid);
    if (sb == ${NONE}) { return 0u; }
    if (lid == 0u) { atomicStore(&n_cand, 0u); }
    workgroupBarrier();
    var m = 0.0;
    ${
        candPass((p, c) =>
          `let k2 = (bitcast<u32>(${p}) >> 12u) & ${SUBS - 1}u;
        if (k2 > sb) { m += ${p}; }
        if (k2 == sb) {
          let at = atomicAdd(&n_cand, 1u);
          if (at < ${cap}u) { cand_p[at] = ${p}; cand_i[at] = ${c}; }
        }`
        )
      }
    red[lid] = m;
    ${reduceSum("red")}
    if (lid == 0u) { found = atomicLoad(&n_cand); }
    n = workgroupUniformLoad(&found);
    above += red[0];
    if (n > ${cap}u) { return 0u; }
  }
  if (n == 0u) { return 0u; }
  pick(n, above, t, lid);
  return workgroupUniformLoad(&r_ok);
}

// The kept mass of each slice into kept_m: the mass above the bucket (top_p_gather's) plus its
// candidates p > v or p == v at index <= vi (${TG} threads a slice, summed in workgroup memory).
fn slice_kept(gb: u32, mb: u32, base: u32, v: f32, vi: u32, lid: u32) {
  var s = 0.0;
  ${candPass((p, c) => `if (${p} > v || (${p} == v && ${c} <= vi)) { s += ${p}; }`)}
  red[lid] = s;
  workgroupBarrier();
  for (var h = ${TG / 2}u; h > 0u; h = h >> 1u) {
    if (lid % ${TG}u < h) { red[lid] += red[lid + h]; }
    workgroupBarrier();
  }
  if (lid % ${TG}u == 0u && lid / ${TG}u < ${G}u) { kept_m[lid / ${TG}u] = mass[mb + lid / ${TG}u] + red[lid]; }
  workgroupBarrier();
}

// The token from the slices' kept masses (kept_m): the slice where their sum in index order
// first exceeds u times their total, walked; ${NONE} when none does (rounding: the caller
// walks the row).
fn draw_slices(base: u32, v: f32, vi: u32, u: f32, lid: u32) -> u32 {
  if (lid == 0u) {
    var total = 0.0;
    for (var g = 0u; g < ${G}u; g++) { total += kept_m[g]; }
    let goal = u * total;
    var before = 0.0;
    var hit = ${NONE};
    for (var g = 0u; g < ${G}u; g++) {
      if (before + kept_m[g] > goal) { hit = g; break; }
      before += kept_m[g];
    }
    found = hit;
    hit_mass = before;
    s_goal = goal;
  }
  let g = workgroupUniformLoad(&found);
  if (g == ${NONE}) { return ${NONE}; }
  let before = workgroupUniformLoad(&hit_mass);
  let goal = workgroupUniformLoad(&s_goal);
  let s0 = g * ${TOP_P_SLICE}u;
  return walk_slice(base, s0, min(${TOP_P_SLICE}u, ${V}u - s0), v, vi, before, goal, 0.0, lid);
}

${walkFn("walk_slice", Math.min(V, TOP_P_SLICE))}`
      : ""
  }

${walkFn("walk_row", V)}


@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let wg = wid.x + wid.y * nwg.x;
  if (wg >= R.x) { return; }
  let base = wg * ${V}u;
  let gb = wg * ${W}u; // the row's gathered words
  let mb = wg * ${G}u; // its slices' masses
  let tp = top_p[wg];
  let b = gathered[gb];
  var v = bitcast<f32>(0xff800000u); // -inf: top_p >= 1 keeps every element
  var vi = 0u;
  // the slices' kept masses: the gathered ones at top_p >= 1, from the candidates below
  var by_slice = ${FAST ? `tp >= 1.0 && b == ${TOP_P_ALL}u` : "false"};
  if (by_slice) {
    if (lid < ${G}u) { kept_m[lid] = mass[mb + lid]; }
    workgroupBarrier();
  }
  if (tp < 1.0) {
    var ok = 0u;
    ${FAST ? `if (b < ${NB}u) { ok = from_cands(gb, mb, base, b, tp, lid); }` : ""}
    if (ok == 1u) {
      v = bitcast<f32>(r_v);
      vi = r_i;
      ${
    FAST
      ? `slice_kept(gb, mb, base, v, vi, lid);
      by_slice = true;`
      : ""
  }
    } else {${
    search ? "" : `
      if (lid == 0u) { out[wg] = ${NONE}; }
      return;`
  }
      let pmax = max_row(base, lid);
      let total = mass_ge(base, 0.0, lid);
      let e1 = cross(base, clamp(tp, 0.0, total), false, pmax, total, lid);
      v = bitcast<f32>(e1.y);
      vi = e1.z;
    }
  }
  var res = ${NONE};
  ${FAST ? "if (by_slice) { res = draw_slices(base, v, vi, u[wg], lid); }" : ""}
  if (res == ${NONE}${search ? "" : " && !by_slice"}) {
    res = walk_row(base, 0u, ${V}u, v, vi, 0.0, -1.0, u[wg], lid);
  }
  if (lid == 0u) { out[wg] = res; }
}
`;
}
