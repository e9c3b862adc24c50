/**
 * `attention`: causal paged attention with GQA and an optional sliding window; the kernel bodies
 * here are shared with `attention_decode` (`attention_decode.ts`), which changes where a
 * workgroup's keys start and end, where q and the newest key come from, and what it writes.
 *
 * Head dims that are a multiple of 4 (`groupedKernel`): one workgroup per (row, KV head,
 * block of up to 4 of the query heads that share it), so each key and value is read once for
 * the whole block. Keys are scored `NK` at a time, `g` threads per key, each thread reading
 * vec4s `g` apart (`g` consecutive threads read `16 * g` contiguous bytes), the partial dot
 * products added up through workgroup memory, a thread a key. Values are read by `D/4`
 * consecutive threads per key (a whole row per warp). The `KG` key groups keep their own online
 * softmax (running max and sum) and are merged once at the end. The next chunk's keys and
 * values are loaded before the current chunk is reduced, so a chunk's loads overlap the previous
 * chunk's arithmetic; with an f16 cache the registers hold them as stored, decoded where used.
 *
 * Other head dims (`scalarKernel`): one workgroup per (row, head), one key per thread.
 * @module
 */
import {
  type KernelSpec,
  kvF16,
  PAGE_SIZE,
  type TargetInfo,
  type WgslKernel,
} from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  entry,
  gridTotal,
  lit,
  reductionThreads,
  rep,
  treeReduce,
} from "./common.ts";

type AttentionSpec = Extract<KernelSpec, { op: "attention" }>;
/** The head layout the kernel bodies depend on. */
export type HeadDims = { heads: number; kvHeads: number; headDim: number };

/** Binding types of the paged-cache metadata (attention, attention_decode, kv_append). */
export const PAGED_TYPES = {
  positions: "array<u32>",
  tok_seq: "array<u32>",
  page_indptr: "array<u32>",
  page_indices: "array<u32>",
};

const TYPES = {
  q: "array<f32>",
  ...PAGED_TYPES,
  cache: "array<f32>",
  out: "array<f32>",
};
export const NEG = "-3.0e38";

/** WGSL for `attention`. */
export function attentionKernel(spec: AttentionSpec, target: TargetInfo): WgslKernel {
  const { heads: H, kvHeads: KV, headDim: D, qStride, window } = spec;
  if (!(H > 0 && KV > 0 && D > 0 && H % KV === 0 && qStride >= H * D && window >= 0)) {
    throw new RangeError(
      `attention: heads ${H}, kvHeads ${KV}, headDim ${D}, qStride ${qStride}, window ${window} are inconsistent`,
    );
  }
  const plan = D % 4 === 0 ? groupedPlan(spec, target) : null;
  const range = `let pages = page_indptr[tok_seq[r]];
  var jb = 0u; // keys jb..je-1
  ${window > 0 ? `if (p + 1u > ${window}u) { jb = p + 1u - ${window}u; }` : ""}
  let je = p + 1u;`;
  if (plan) {
    const { D4, HG, HW, HB } = plan;
    return groupedKernel(spec, target, plan, {
      types: { ...TYPES, cache: "array<vec4<f32>>" },
      decls: "",
      groupsPerRow: KV * HB,
      start: `let r = wg / ${KV * HB}u;
  let kvh = (wg % ${KV * HB}u) / ${HB}u;
  let hb = (wg % ${HB}u) * ${HW}u; // first head of the block within the KV head's ${HG}
  if (lid == 0u) { pos_shared = positions[r]; }
  for (var i = lid; i < ${HW * D4}u; i += ${plan.T}u) {
    var v = vec4<f32>(0.0);
    if (hb + i / ${D4}u < ${HG}u) {
      let qb = r * ${qStride}u + (kvh * ${HG}u + hb + i / ${D4}u) * ${D}u + 4u * (i % ${D4}u);
      v = vec4<f32>(q[qb], q[qb + 1u], q[qb + 2u], q[qb + 3u]) * ${lit(spec.scale)};
    }
    qs[i] = v;
  }
  let p = workgroupUniformLoad(&pos_shared);
  ${range}`,
      newKey: false,
      store: (h) =>
        `let ob = r * ${H * D}u + (kvh * ${HG}u + hb + ${h}u) * ${D}u + 4u * e;
    out[ob] = o.x; out[ob + 1u] = o.y; out[ob + 2u] = o.z; out[ob + 3u] = o.w;`,
    });
  }
  const T = reductionThreads(target, 64);
  return scalarKernel(spec, target, T, {
    types: TYPES,
    decls: "",
    groupsPerRow: H,
    start: `let r = wg / ${H}u;
  let h = wg % ${H}u;
  let kvh = h / ${H / KV}u;
  if (lid == 0u) { pos_shared = positions[r]; }
  for (var d = lid; d < ${D}u; d += ${T}u) {
    qs[d] = q[r * ${qStride}u + h * ${D}u + d] * ${lit(spec.scale)};
  }
  let p = workgroupUniformLoad(&pos_shared);
  ${range}`,
    newKey: false,
    store: (d, o) => `out[r * ${H * D}u + h * ${D}u + ${d}] = ${o};`,
  });
}

/**
 * The cache binding read and written as vec4s (4 consecutive elements of a head row): its WGSL
 * type, `raw` (the WGSL type of one stored vec4), `fn kvd(w: raw) -> vec4<f32>` decoding one,
 * and `enc(v)` encoding a vec4<f32> expression. f32 caches are `array<vec4<f32>>`; f16 ones
 * (`kvDtype`) `array<vec2<u32>>`, 4 halves a vec2. Registers that prefetch hold the raw form and
 * decode it where it is used, so that the wait for the load is not at the load.
 */
export function cacheVec4(f16: boolean): {
  type: string;
  fn: string;
  raw: string;
  enc: (v: string) => string;
} {
  return f16
    ? {
      type: "array<vec2<u32>>",
      fn: `fn kvd(w: vec2<u32>) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}`,
      raw: "vec2<u32>",
      enc: (v) => `vec2<u32>(pack2x16float((${v}).xy), pack2x16float((${v}).zw))`,
    }
    : {
      type: "array<vec4<f32>>",
      fn: "fn kvd(w: vec4<f32>) -> vec4<f32> { return w; }",
      raw: "vec4<f32>",
      enc: (v) => v,
    };
}

/**
 * The cache binding read element by element: its WGSL type and `fn kv1(i: u32) -> f32`;
 * `store2(i, a, b)` writes elements i (even) and i + 1. f16 caches are `array<u32>`, two halves
 * a word, so writes go by pairs.
 */
export function cacheScalar(f16: boolean): {
  type: string;
  fn: string;
  store2: (i: string, a: string, b: string) => string;
  /** An f32 expression rounded as the cache stores it. */
  round: (x: string) => string;
} {
  return f16
    ? {
      round: (x) => `unpack2x16float(pack2x16float(vec2<f32>(${x}, 0.0))).x`,
      type: "array<u32>",
      fn: "fn kv1(i: u32) -> f32 { return unpack2x16float(cache[i >> 1u])[i & 1u]; }",
      store2: (i, a, b) => `cache[(${i}) >> 1u] = pack2x16float(vec2<f32>(${a}, ${b}));`,
    }
    : {
      round: (x) => x,
      type: "array<f32>",
      fn: "fn kv1(i: u32) -> f32 { return cache[i]; }",
      store2: (i, a, b) => `cache[${i}] = ${a}; cache[(${i}) + 1u] = ${b};`,
    };
}

/**
 * The paged cache's addressing ([pages, 2, KV, PAGE_SIZE, D]: a page holds KV heads' K rows,
 * then their V rows) in units of `row` per head row (D4 vec4s or D floats): WGSL
 * `fn krow(pages, kvh, j)`, the index of key j's K row (`pages`: the sequence's first
 * page-table entry), and `vOffset`, the distance from a K row to its V row.
 */
export function pagedRows(KV: number, row: number): { fn: string; vOffset: number } {
  return {
    fn: `fn krow(pages: u32, kvh: u32, j: u32) -> u32 {
  let page = page_indices[pages + j / ${PAGE_SIZE}u];
  return ((page * 2u) * ${KV * PAGE_SIZE}u + kvh * ${PAGE_SIZE}u + j % ${PAGE_SIZE}u) * ${row}u;
}`,
    vOffset: KV * PAGE_SIZE * row,
  };
}

/**
 * The shape of the grouped kernel for `dims` on `target` at up to `threads` threads (plus
 * `extraShared` bytes of workgroup memory), or null when it does not fit: `T` threads; `HW`
 * query heads a workgroup (`HB` blocks a KV head of `HG`); `g` threads a key, each reading `K4`
 * vec4s of it; `NK` keys a chunk; `KG` key groups of `D4` value threads, each group summing
 * `VP` keys a chunk; `P` vec4s of `part`; `onePass`: the key groups of all the block's heads
 * merged at once (where `part` holds them); `shared` bytes of workgroup memory.
 */
export function groupedPlan(dims: HeadDims, target: TargetInfo, threads = 512, extraShared = 0) {
  const { heads: H, kvHeads: KV, headDim: D } = dims;
  const T = reductionThreads(target, threads);
  const D4 = D / 4;
  const HG = H / KV; // query heads per KV head
  const HW = Math.min(HG, 4); // query heads per workgroup
  // threads per key: the fewest (>= 8 where possible) that divide D4 with <= 4 vec4s each
  let g = D4;
  for (let c = Math.min(8, D4); c <= D4; c++) {
    if (D4 % c === 0 && D4 / c <= 4) {
      g = c;
      break;
    }
  }
  if (D4 > T) return null;
  const NK = Math.floor(T / g); // keys per chunk
  const KG = Math.floor(T / D4); // key groups for values
  const VP = Math.ceil(NK / KG); // keys per key group per chunk
  // partial scores of key j are at part[j * GP + slice]; GP = g + 1 (g even) keeps the 16 reads
  // of a softmax step in distinct banks
  const GP = g % 2 === 0 ? g + 1 : g;
  const base = 16 * (HW * D4 + KG * VP + 3 * KG) + 4 + extraShared;
  const limit = target.limits.maxComputeWorkgroupStorageSize;
  // the key groups' outputs of every head of the block merged in one pass (a thread an output
  // vec4) where `part` can hold them all (HW x KG x D4 vec4s), else a head at a time
  const onePass = HW > 1 && HW * D4 <= T && base + 16 * Math.max(NK * GP, HW * KG * D4) <= limit;
  const P = Math.max(NK * GP, (onePass ? HW : 1) * KG * D4);
  const shared = base + 16 * P;
  if (shared > limit) return null;
  return {
    T,
    D4,
    HG,
    HW,
    HB: Math.ceil(HG / HW),
    g,
    GP,
    K4: D4 / g,
    NK,
    KG,
    VP,
    P,
    onePass,
    shared,
  };
}

export type Plan = NonNullable<ReturnType<typeof groupedPlan>>;

/** What the caller of a kernel body supplies (`attention` or `attention_decode`). */
export interface Variant<Store> {
  /** WGSL types of the bindings. */
  types: Record<string, string>;
  /** Extra module-scope WGSL (workgroup arrays, functions). */
  decls: string;
  groupsPerRow: number;
  /** A row's workgroups are only its splits' share of `groupsPerRow` at R.x rows (the
   * contract's `splitGrid`): the entry's total is theirs. */
  splitGrid?: { splits: number; splitRows: number };
  /** Statements from the workgroup id `wg` on: define `r`, `kvh` (and `hb`, the block's first
   * head, for the grouped body; `h` for the scalar one), the uniform position `p`, `pages`
   * (the sequence's first page-table entry) and the uniform key range `jb`..`je - 1`, and fill
   * `qs` with the scaled q, visible to every thread (after a barrier). */
  start: string;
  /** Key p is `knew` and value p `vnew` (workgroup arrays the start fills, in the cache's
   * stored form: `cacheVec4().raw`), not the cache. */
  newKey: boolean;
  store: Store;
  /** Statements after every head's store (the grouped body), reached by all threads. */
  tail?: string;
}

/** The kernel of a variant's WGSL. */
function variantKernel(code: string, v: Variant<unknown>): WgslKernel {
  const k: WgslKernel = {
    code,
    entryPoint: "main",
    rowsPerGroup: 1,
    groupsPerRowBlock: v.groupsPerRow,
  };
  return v.splitGrid ? { ...k, splitGrid: v.splitGrid } : k;
}

/** The specs whose kernels these bodies render. */
export type BodySpec = Extract<KernelSpec, { op: "attention" | "attention_decode" }>;

/** One workgroup per (row, KV head, block of `HW` query heads, ...); see the module doc.
 * `store(h)` writes head `h` of the block from `o` (vec4 `e` of its output; one thread writes
 * each, the one of `e` 0 the head's scalars), `mx_h` and `total_h` (its max score and sum of
 * exps: `mx_h + log(total_h)` is its log-sum-exp). */
export function groupedKernel(
  spec: BodySpec,
  target: TargetInfo,
  plan: Plan,
  v: Variant<(h: number) => string>,
): WgslKernel {
  const { kvHeads: KV } = spec;
  const { T, D4, HG, HW, g, GP, K4, NK, KG, VP, P, onePass } = plan;
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: plan.shared });
  const S = HW === 1 ? "f32" : `vec${HW}<f32>`; // one value per head of the block
  const at = (x: string, h: number) => (HW === 1 ? x : `${x}[${h}]`);
  const narrow = ["", ".x", ".xy", ".xyz", ""][HW]; // vec4 -> S
  const widen = (x: string) => (HW === 4 ? x : `vec4<f32>(${x}${", 0.0".repeat(4 - HW)})`);
  const VOFF = pagedRows(KV, D4).vOffset;
  const kv = cacheVec4(kvF16(spec));
  const code = `${declareBindings(spec, { ...v.types, cache: kv.type })}
var<workgroup> qs: array<vec4<f32>, ${HW * D4}>; // [HW, D4] scaled q of the block's heads
var<workgroup> part: array<vec4<f32>, ${P}>; // [NK, ${GP}] partial scores; at the end [KG, D4] outputs
var<workgroup> probs: array<${S}, ${KG * VP}>; // [KG * VP] exp(score - running max) of the chunk
var<workgroup> alph: array<${S}, ${KG}>; // [KG] rescale of each key group's sums for this chunk
var<workgroup> mfin: array<${S}, ${KG}>; // [KG] running max of each key group
var<workgroup> lfin: array<${S}, ${KG}>; // [KG] running sum of each key group
var<workgroup> pos_shared: u32;
${v.decls}

${pagedRows(KV, D4).fn}
${kv.fn}

${entry(T, gridTotal(1, v.groupsPerRow, v.splitGrid))}
  ${v.start}
  let kl = lid / ${g}u; // key of the chunk this thread scores (${NK} keys, ${g} threads each)
  let sl = lid % ${g}u; // its slice: vec4s sl, sl + ${g}, ...
  let kg = lid / ${D4}u; // key group whose values this thread sums (${KG} groups)
  let d4 = lid % ${D4}u; // the vec4 of the value row it sums
  ${rep(K4, (c) => `var k${c} = ${kv.raw}();`)}
  ${rep(VP, (i) => `var v${i} = ${kv.raw}();`)}
  ${rep(HW, (h) => `var acc${h} = vec4<f32>(0.0);`)}
  var m = ${S}(${NEG});
  var l = ${S}(0.0);
  // loads of the chunk at c0: keys at je and past read nothing (and weigh nothing)
  var c0 = jb;
  ${loads("c0", "")}
  for (; c0 < je; c0 += ${NK}u) {
    ${rep(K4, (c) => `var kn${c} = ${kv.raw}();`)}
    ${rep(VP, (i) => `var vn${i} = ${kv.raw}();`)}
    ${loads(`c0 + ${NK}u`, "n")}
    if (kl < ${NK}u) {
      var s = ${S}(0.0);
      ${
    rep(
      K4,
      (c) =>
        `let kd${c} = kvd(k${c});
      s += ${S}(${rep(HW, (h) => `dot(qs[${h * D4}u + sl + ${c * g}u], kd${c})`, ", ")});`,
      "\n      ",
    )
  }
      part[kl * ${GP}u + sl] = ${widen("s")};
    }
    workgroupBarrier();
    if (lid < ${NK}u) {
      // key lid's score: its ${g} partial sums, loaded at once
      var t = ${S}(${NEG});
      if (c0 + lid < je) {
        t = ${rep(g, (u) => `part[lid * ${GP}u + ${u}u]${narrow}`, " + ")};
      }
      probs[lid] = t;
    }
    workgroupBarrier();
    if (lid < ${KG}u) {
      // the online softmax of key group lid over its keys lid, lid + ${KG}, ... of the chunk:
      // the scores' max, then their exps against the new running max
      var m_new = m;
      ${
    rep(
      VP,
      (i) =>
        i * KG + KG <= NK
          ? `m_new = max(m_new, probs[lid + ${i * KG}u]);`
          : `if (lid + ${i * KG}u < ${NK}u) { m_new = max(m_new, probs[lid + ${i * KG}u]); }`,
      "\n      ",
    )
  }
      let a = exp(m - m_new);
      var sum = ${S}(0.0);
      for (var i = 0u; i < ${VP}u; i++) {
        let j = lid + i * ${KG}u;
        let e = select(${S}(0.0), exp(probs[j] - m_new), j < ${NK}u && c0 + j < je);
        probs[j] = e;
        sum += e;
      }
      l = l * a + sum;
      m = m_new;
      alph[lid] = a;
    }
    workgroupBarrier();
    if (kg < ${KG}u) {
      let a = alph[kg];
      ${rep(VP, (i) => `let e${i} = probs[kg + ${i * KG}u]; let vd${i} = kvd(v${i});`, "\n      ")}
      ${
    rep(HW, (h) =>
      `acc${h} = acc${h} * ${at("a", h)} + ${
        rep(VP, (i) => `${at(`e${i}`, h)} * vd${i}`, " + ")
      };`, "\n      ")
  }
    }
    ${rep(K4, (c) => `k${c} = kn${c};`)}
    ${rep(VP, (i) => `v${i} = vn${i};`)}
  }
  // merge the key groups: rescale each to the common max, add up, divide by the total sum
  if (lid < ${KG}u) { mfin[lid] = m; lfin[lid] = l; }
  workgroupBarrier();
  var mx = ${S}(${NEG});
  for (var k = 0u; k < ${KG}u; k++) { mx = max(mx, mfin[k]); }
  var f = ${S}(0.0);
  if (kg < ${KG}u) { f = exp(mfin[kg] - mx); }
  var total = ${S}(0.0);
  if (lid < ${(onePass ? HW : 1) * D4}u) {
    for (var k = 0u; k < ${KG}u; k++) { total += lfin[k] * exp(mfin[k] - mx); }
  }
  ${onePass ? mergeOnePass() : mergePerHead()}
  ${v.tail ?? ""}
}
`;
  /** WGSL: the key groups' sums of head h (scaled by f) added up by thread e of the head, its
   * output stored. */
  function headOut(h: number, e: string, at4: (k: string) => string): string {
    return `let e = ${e};
    var o = vec4<f32>(0.0);
    for (var k = 0u; k < ${KG}u; k++) { o += part[${at4("k")}]; }
    o = o / ${at("total", h)};
    let mx_h = ${at("mx", h)};
    let total_h = ${at("total", h)};
    ${v.store(h)}`;
  }
  /** The key groups merged a head at a time through KG x D4 vec4s of `part` (2 barriers a head). */
  function mergePerHead(): string {
    return rep(HW, (h) =>
      `if (kg < ${KG}u) { part[lid] = acc${h} * ${at("f", h)}; }
  workgroupBarrier();
  if (lid < ${D4}u && hb + ${h}u < ${HG}u) {
    ${headOut(h, "lid", (k) => `${k} * ${D4}u + lid`)}
  }${h < HW - 1 ? "\n  workgroupBarrier();" : ""}`, "\n  ");
  }
  /** Every head's key groups at once ([HW, KG, D4] vec4s of `part`, one barrier), then thread
   * lid adds up vec4 lid % D4 of head lid / D4. On the H100 (8B decode b=1) leaving the merge
   * out took ~3.4 us a layer off the step, most of it the wait for every group's sums; this
   * form took 0.8 us a layer off the merge a head at a time (8 barriers). */
  function mergeOnePass(): string {
    return `if (kg < ${KG}u) {
    ${rep(HW, (h) => `part[${h * KG * D4}u + lid] = acc${h} * ${at("f", h)};`, "\n    ")}
  }
  workgroupBarrier();
  ${
      rep(HW, (h) =>
        `if (lid / ${D4}u == ${h}u && hb + ${h}u < ${HG}u) {
    ${
          headOut(h, `lid - ${h * D4}u`, (k) => `${h * KG * D4}u + ${k} * ${D4}u + e`)
        }
  }`, "\n  ")
    }`;
  }
  /** WGSL loading the chunk at `base` into k*, v* (suffix `n`: kn*, vn*). */
  function loads(base: string, n: string): string {
    const key = v.newKey
      ? `if (jk == p) {
        ${rep(K4, (c) => `k${n}${c} = knew[sl + ${c * g}u];`)}
      } else {
        let kb = krow(pages, kvh, jk) + sl;
        ${rep(K4, (c) => `k${n}${c} = cache[kb + ${c * g}u];`)}
      }`
      : `let kb = krow(pages, kvh, jk) + sl;
      ${rep(K4, (c) => `k${n}${c} = cache[kb + ${c * g}u];`)}`;
    const value = (i: number) => {
      const j = `${base} + kg + ${i * KG}u`;
      const read = `v${n}${i} = cache[krow(pages, kvh, ${j}) + ${VOFF}u + d4];`;
      // (value p may be being written to the cache by this workgroup: not read from there)
      return v.newKey ? `if (${j} == p) { v${n}${i} = vnew[d4]; } else { ${read} }` : read;
    };
    return `{
    let jk = ${base} + kl;
    if (kl < ${NK}u && jk < je) {
      ${key}
    }
    ${
      rep(
        VP,
        (i) =>
          `if (kg < ${KG}u && kg + ${i * KG}u < ${NK}u && ${base} + kg + ${i * KG}u < je) {
      ${value(i)}
    }`,
        "\n    ",
      )
    }
  }`;
  }
  return variantKernel(code, v);
}

/** One workgroup per (row, head, ...) of `T` threads, one key per thread: any head dim.
 * `store(d, o)` writes element `d` of the head's output, `o`; `m` and `l` are its max score and
 * sum of exps. */
export function scalarKernel(
  spec: BodySpec,
  target: TargetInfo,
  T: number,
  v: Variant<(d: string, o: string) => string>,
): WgslKernel {
  const { kvHeads: KV, headDim: D } = spec;
  const dPerThread = Math.ceil(D / T);
  const shared = 4 * (D + 3 * T + 1) + (v.newKey ? 12 * D : 0);
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: shared });
  const NEW = "0xffffffffu"; // vrow of key p when it is vnew
  const kv = cacheScalar(kvF16(spec));
  const code = `${declareBindings(spec, { ...v.types, cache: kv.type })}
var<workgroup> qs: array<f32, ${D}>;
var<workgroup> red: array<f32, ${T}>;
var<workgroup> probs: array<f32, ${T}>;
var<workgroup> vrow: array<u32, ${T}>;
var<workgroup> pos_shared: u32;
${v.decls}

${pagedRows(KV, D).fn}
${kv.fn}

${entry(T, gridTotal(1, v.groupsPerRow, v.splitGrid))}
  ${v.start}
  var m = ${NEG};
  var l = 0.0;
  var acc: array<f32, ${dPerThread}>;
  for (var c0 = jb; c0 < je; c0 += ${T}u) {
    let j = c0 + lid;
    var score = ${NEG};
    if (j < je) {
      let kb = krow(pages, kvh, j);
      vrow[lid] = kb + ${pagedRows(KV, D).vOffset}u;
      var s = 0.0;
      ${
    v.newKey
      ? `if (j == p) {
        vrow[lid] = ${NEW};
        for (var d = 0u; d < ${D}u; d++) { s += qs[d] * knew[d]; }
      } else {
        for (var d = 0u; d < ${D}u; d++) { s += qs[d] * kv1(kb + d); }
      }`
      : `for (var d = 0u; d < ${D}u; d++) { s += qs[d] * kv1(kb + d); }`
  }
      score = s;
    }
    red[lid] = score;
    workgroupBarrier();
    ${treeReduce("red", T, (a, b) => `max(${a}, ${b})`)}
    let m_new = max(m, red[0]);
    workgroupBarrier();
    let e = select(0.0, exp(score - m_new), j < je);
    probs[lid] = e;
    red[lid] = e;
    workgroupBarrier();
    ${treeReduce("red", T, (a, b) => `${a} + ${b}`)}
    let alpha = exp(m - m_new);
    l = l * alpha + red[0];
    m = m_new;
    let n = min(${T}u, je - c0);
    for (var i = 0u; i < ${dPerThread}u; i++) {
      let d = lid + i * ${T}u;
      if (d < ${D}u) {
        var a = acc[i] * alpha;
        for (var jj = 0u; jj < n; jj++) {
          ${
    v.newKey
      ? `let vr = vrow[jj];
          if (vr == ${NEW}) { a += probs[jj] * vnew[d]; } else { a += probs[jj] * kv1(vr + d); }`
      : "a += probs[jj] * kv1(vrow[jj] + d);"
  }
        }
        acc[i] = a;
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${dPerThread}u; i++) {
    let d = lid + i * ${T}u;
    if (d < ${D}u) { ${v.store("d", "acc[i] / l")} }
  }
}
`;
  return variantKernel(code, v);
}
