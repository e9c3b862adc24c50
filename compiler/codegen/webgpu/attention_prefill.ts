/**
 * `attention` for many query rows (prefill): tiled like flash-attention. A workgroup takes a
 * tile of `BQ` consecutive query rows and a block of `HW` query heads that share one KV head:
 * `M` = BQ x HW = 32 query vectors, staged once in workgroup memory (scaled). Keys and values
 * come `BK` = 32 at a time into one workgroup buffer (K, then V over it); each chunk is
 *
 * 1. S = Q K^T: every thread 2 query vectors x 4 keys, vec4 multiply-adds over the head dim;
 * 2. the online softmax: four threads a query vector, 8 of the chunk's scores each (its causal
 *    and window mask applied), leaving exp(s - running max) in place and the rescale of its
 *    sums (one thread a query vector over all 32 measured 1.3x slower on the H100);
 * 3. O = O * rescale + P V: every thread 4 query vectors x `D / 16` elements of the head dim.
 *
 * The next chunk's keys are read into registers during step 3 and its values during step 1,
 * so the global reads overlap the arithmetic. Each key and value read serves 32 query vectors
 * (the row kernel of `attention.ts` reads them again for every row).
 *
 * Rows of a tile may belong to different sequences (batched prefill): the workgroup takes them
 * a sequence at a time (a "segment": the tile's rows of that sequence, keys from the smallest
 * window start to the largest position of them), so one sequence, the usual case, is one pass.
 * Tiles are taken last first, so the longest (the causal rows furthest along) start first.
 *
 * Fits head dims that are a multiple of 64 whose buffers fit the target's workgroup storage
 * (D = 64 and 128 at 48 KiB); `attention.ts` takes the rest.
 * @module
 */
import { type KernelSpec, kvF16, type TargetInfo, type WgslKernel } from "../contract.ts";
import { checkTarget, declareBindings, entry, lit, pow2Floor, rep, totalGroups } from "./common.ts";
import { cacheVec4, NEG, pagedRows } from "./attention.ts";

type AttentionSpec = Extract<KernelSpec, { op: "attention" }>;

/** Attention compiled for more rows than this (`maxRows`) takes this kernel: the decode and
 * `_small` functions keep the row kernel, which wastes no tile rows. */
export const PREFILL_MIN_ROWS = 32;
/** Query vectors a workgroup (rows x heads of a block). */
const M = 32;
/** Keys a chunk. */
const BK = 32;
/** Threads a workgroup. */
const T = 128;
/** Threads across the head dim in step 3 (T / TD groups of 4 query vectors). */
const TD = 16;

/** The tile shape for `spec` on `target`, or null where this kernel does not fit. */
export function prefillPlan(spec: AttentionSpec, target: TargetInfo) {
  const { heads: H, kvHeads: KV, headDim: D, qStride } = spec;
  const l = target.limits;
  if (D % (4 * TD) !== 0 || qStride % 4 !== 0 || H % KV !== 0) return null;
  if (T > l.maxComputeInvocationsPerWorkgroup || T > l.maxComputeWorkgroupSizeX) return null;
  const D4 = D / 4;
  const HG = H / KV;
  const HW = pow2Floor(Math.min(HG, 4)); // query heads a workgroup
  const HB = Math.ceil(HG / HW); // head blocks a KV head
  const BQ = M / HW; // rows a tile
  const S = D4 + 1; // padded row stride (vec4s) of staged q, k and v: 8 rows hit 8 bank groups
  const shared = 16 * (M * S + BK * S + BK * (M / 4) + M / 4 + M) + 8 * BQ + 16;
  if (shared > l.maxComputeWorkgroupStorageSize) return null;
  return { D4, HG, HW, HB, BQ, S, VPT: D4 / TD, shared };
}

/** WGSL for the tiled prefill `attention`; `prefillPlan(spec, target)` must not be null. */
export function attentionPrefillKernel(spec: AttentionSpec, target: TargetInfo): WgslKernel {
  const plan = prefillPlan(spec, target);
  if (!plan) throw new RangeError(`attentionPrefillKernel: ${JSON.stringify(spec)} does not fit`);
  const { heads: H, kvHeads: KV, headDim: D, qStride, window: W } = spec;
  const { D4, HG, HW, HB, BQ, S, VPT } = plan;
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: plan.shared });
  const GPB = KV * HB; // workgroups a tile
  const M4 = M / 4;
  const UNITS = (BK * D4) / T; // vec4s of a chunk's keys (or values) a thread reads
  const VOFF = pagedRows(KV, D4).vOffset;
  const cache = cacheVec4(kvF16(spec));
  // the chunk of keys from c0 (a WGSL expression) into registers dst0.. (part: K or V rows), as
  // stored (decoded where they go to workgroup memory)
  const chunkRead = (dst: string, c0: string, part: string) =>
    rep(UNITS, (u) => {
      const unit = `lid + ${u * T}u`;
      return `{ let j = ${c0} + (${unit}) / ${D4}u; ${dst}${u} = ${cache.raw}();
        if (j < hi) { ${dst}${u} = cache[krow(pages, kvh, j) + ${part}(${unit}) % ${D4}u]; } }`;
    }, "\n      ");
  const chunkStore = (src: string) =>
    rep(UNITS, (u) => {
      const unit = `lid + ${u * T}u`;
      return `kv[((${unit}) / ${D4}u) * ${S}u + (${unit}) % ${D4}u] = kvd(${src}${u});`;
    }, "\n      ");
  // step 1: thread (ty, tx) scores query vectors ty, ty + 16 against keys tx + 8c
  const scores = `{
      let ty = lid / 8u;
      let tx = lid % 8u;
      ${rep(2, (a) => rep(4, (c) => `var s${a}${c} = vec4<f32>(0.0);`))}
      for (var d4 = 0u; d4 < ${D4}u; d4++) {
        ${rep(2, (a) => `let q${a} = qs[(ty + ${16 * a}u) * ${S}u + d4];`)}
        ${rep(4, (c) => `let k${c} = kv[(tx + ${8 * c}u) * ${S}u + d4];`)}
        ${rep(2, (a) => rep(4, (c) => `s${a}${c} = fma(q${a}, k${c}, s${a}${c});`), "\n        ")}
      }
      ${
    rep(2, (a) =>
      rep(
        4,
        (c) =>
          `pt[(tx + ${8 * c}u) * ${M4}u + (ty + ${16 * a}u) / 4u][(ty + ${
            16 * a
          }u) % 4u] = dot(s${a}${c}, vec4<f32>(1.0));`,
      ), "\n      ")
  }
    }`;
  // step 2, the online softmax: four threads a query vector (qv), 8 keys each (a quarter,
  // part); their partial maxima (then, at the end, partial sums) meet in workgroup memory
  const maskOk = `inseg && j >= jlo && j <= jhi`;
  const rowOf = (qv: string) =>
    `let i = ${qv} / ${HW}u;
      let inseg = ((seg.w >> i) & 1u) != 0u;
      let jlo = rlo[i];
      let jhi = rp[i];`;
  const KP = BK / 4; // keys a thread in the softmax
  const softmax = (half: 1 | 2) =>
    half === 1
      ? `{
      ${rowOf("qv")}
      var mx = ${NEG};
      for (var kk = 0u; kk < ${KP}u; kk++) {
        let k = part * ${KP}u + kk;
        let j = c0 + k;
        if (${maskOk}) { mx = max(mx, pt[k * ${M4}u + qv / 4u][qv % 4u]); }
      }
      pm[qv][part] = mx;
    }`
      : `{
      ${rowOf("qv")}
      let pq = pm[qv];
      let mn = max(m_q, max(max(pq.x, pq.y), max(pq.z, pq.w)));
      let a = exp(m_q - mn);
      var sum = 0.0;
      for (var kk = 0u; kk < ${KP}u; kk++) {
        let k = part * ${KP}u + kk;
        let j = c0 + k;
        let at = k * ${M4}u + qv / 4u;
        var e = 0.0;
        if (${maskOk}) { e = exp(pt[at][qv % 4u] - mn); }
        pt[at][qv % 4u] = e;
        sum += e;
      }
      l_q = l_q * a + sum;
      m_q = mn;
      if (part == 0u) { al[qv / 4u][qv % 4u] = a; }
    }`;
  // step 3: thread (og, dg) updates query vectors 4og .. 4og + 3 at vec4s dg + 16v
  const accs = rep(4, (i) => rep(VPT, (v) => `var o${i}_${v} = vec4<f32>(0.0);`));
  const update = `{
      let a = al[og];
      ${rep(4, (i) => rep(VPT, (v) => `o${i}_${v} *= a[${i}];`))}
      for (var k = 0u; k < ${BK}u; k++) {
        let pv = pt[k * ${M4}u + og];
        ${rep(VPT, (v) => `let v${v} = kv[k * ${S}u + dg + ${TD * v}u];`)}
        ${
    rep(4, (i) => rep(VPT, (v) => `o${i}_${v} = fma(vec4<f32>(pv[${i}]), v${v}, o${i}_${v});`))
  }
      }
    }`;
  const store = rep(4, (i) => {
    const q = `og * 4u + ${i}u`;
    return `{
      let i = (${q}) / ${HW}u;
      let hh = (${q}) % ${HW}u;
      if (((seg.w >> i) & 1u) != 0u && hb + hh < ${HG}u) {
        let ob = ((r0 + i) * ${H}u + kvh * ${HG}u + hb + hh) * ${D4}u + dg;
        ${rep(VPT, (v) => `out[ob + ${TD * v}u] = o${i}_${v} * inv[${i}];`)}
      }
    }`;
  }, "\n    ");

  const types = {
    q: "array<vec4<f32>>",
    positions: "array<u32>",
    tok_seq: "array<u32>",
    page_indptr: "array<u32>",
    page_indices: "array<u32>",
    cache: cache.type,
    out: "array<vec4<f32>>",
  };
  const code = `${declareBindings(spec, types)}
var<workgroup> qs: array<vec4<f32>, ${
    M * S
  }>; // [M, D4 + 1] scaled q vectors (row i, head hh at i * ${HW} + hh)
var<workgroup> kv: array<vec4<f32>, ${BK * S}>; // [BK, D4 + 1] the chunk's keys, then its values
var<workgroup> pt: array<vec4<f32>, ${BK * M4}>; // [BK, M] scores, then probabilities
var<workgroup> al: array<vec4<f32>, ${M4}>; // [M] rescale of the sums this chunk; at the end 1 / sum
var<workgroup> pm: array<vec4<f32>, ${M}>; // [M, 4] partial maxima; at the end partial sums
var<workgroup> rp: array<u32, ${BQ}>; // position of each row of the segment
var<workgroup> rlo: array<u32, ${BQ}>; // its first key (window)
var<workgroup> seg_shared: vec4<u32>; // segment: sequence, first key, last key + 1, row mask

${pagedRows(KV, D4).fn}
${cache.fn}

${entry(T, totalGroups(BQ, GPB))}
  let tiles = (R.x + ${BQ - 1}u) / ${BQ}u;
  let r0 = (tiles - 1u - wg / ${GPB}u) * ${BQ}u;
  let kvh = (wg % ${GPB}u) / ${HB}u;
  let hb = (wg % ${HB}u) * ${HW}u; // first head of the block within the KV head's ${HG}
  for (var u = lid; u < ${M * D4}u; u += ${T}u) {
    let qv = u / ${D4}u;
    let i = qv / ${HW}u;
    let hh = qv % ${HW}u;
    var v = vec4<f32>(0.0);
    if (r0 + i < R.x && hb + hh < ${HG}u) {
      v = q[((r0 + i) * ${qStride}u + (kvh * ${HG}u + hb + hh) * ${D}u) / 4u + u % ${D4}u] * ${
    lit(spec.scale)
  };
    }
    qs[qv * ${S}u + u % ${D4}u] = v;
  }
  let og = lid / ${TD}u;
  let dg = lid % ${TD}u;
  let qv = lid / 4u; // (softmax) query vector and quarter of the keys
  let part = lid % 4u;
  var todo = 0u; // (thread 0) rows of the tile not yet attended
  if (lid == 0u) {
    for (var i = 0u; i < ${BQ}u; i++) { if (r0 + i < R.x) { todo |= 1u << i; } }
  }
  loop {
    if (lid == 0u) {
      var s = vec4<u32>(0u, 0u, 0u, 0u);
      if (todo != 0u) {
        let sq = tok_seq[r0 + firstTrailingBit(todo)];
        var lo = 0xffffffffu;
        var hi = 0u;
        var mask = 0u;
        for (var i = 0u; i < ${BQ}u; i++) {
          if (((todo >> i) & 1u) != 0u && tok_seq[r0 + i] == sq) {
            let p = positions[r0 + i];
            var jb = 0u;
            ${W > 0 ? `if (p + 1u > ${W}u) { jb = p + 1u - ${W}u; }` : ""}
            rp[i] = p;
            rlo[i] = jb;
            mask |= 1u << i;
            lo = min(lo, jb);
            hi = max(hi, p + 1u);
          }
        }
        todo &= ~mask;
        s = vec4<u32>(sq, lo, hi, mask);
      }
      seg_shared = s;
    }
    let seg = workgroupUniformLoad(&seg_shared);
    if (seg.w == 0u) { break; }
    let pages = page_indptr[seg.x];
    let hi = seg.z;
    var m_q = ${NEG}; // running max of query vector qv, and the sum over this thread's keys
    var l_q = 0.0;
    ${accs}
    ${rep(UNITS, (u) => `var kr${u} = ${cache.raw}(); var vr${u} = ${cache.raw}();`)}
    ${chunkRead("kr", "seg.y", "")}
    for (var c0 = seg.y; c0 < hi; c0 += ${BK}u) {
      ${chunkStore("kr")}
      ${chunkRead("vr", "c0", `${VOFF}u + `)}
      workgroupBarrier();
      ${scores}
      workgroupBarrier();
      ${chunkStore("vr")}
      ${softmax(1)}
      workgroupBarrier();
      ${softmax(2)}
      ${chunkRead("kr", `(c0 + ${BK}u)`, "")}
      workgroupBarrier();
      ${update}
      workgroupBarrier();
    }
    pm[qv][part] = l_q;
    workgroupBarrier();
    if (part == 0u) {
      let t = dot(pm[qv], vec4<f32>(1.0));
      al[qv / 4u][qv % 4u] = select(0.0, 1.0 / t, t > 0.0);
    }
    workgroupBarrier();
    let inv = al[og];
    ${store}
    workgroupBarrier();
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: BQ, groupsPerRowBlock: GPB };
}
