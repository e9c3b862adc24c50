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
 * log-sum-exp. Splits past the row's `used` (short contexts) return at once.
 *
 * `attention_merge`: one thread per output element, over the row's used splits.
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
} from "./common.ts";
import { groupedKernel, groupedPlan, NEG, rep, scalarKernel } from "./attention.ts";
import { rotation } from "./rope.ts";

type DecodeSpec = Extract<KernelSpec, { op: "attention_decode" }>;
type MergeSpec = Extract<KernelSpec, { op: "attention_merge" }>;

const TYPES = {
  qkv: "array<f32>",
  positions: "array<u32>",
  tok_seq: "array<u32>",
  page_indptr: "array<u32>",
  page_indices: "array<u32>",
  cache: "array<f32>",
  part_o: "array<f32>",
  part_lse: "array<f32>",
};

/** Threads of the grouped decode kernel: 256 gives 32 keys a chunk at head dim 128, one
 * `SPLIT_ALIGN` of the pass. */
export const DECODE_THREADS = 256;

/** WGSL defining `lo`, `len` and `used` of the row at uniform position `p` (the contract's
 * `decodeSplits`). */
function splitRange(s: { window: number; splits: number; splitAlign: number }): string {
  const { window: W, splits: S, splitAlign: A } = s;
  return `var lo = 0u;
  ${W > 0 ? `if (p + 1u > ${W}u) { lo = p + 1u - ${W}u; }` : ""}
  let n_pos = p + 1u - lo;
  let len = ((n_pos + ${S - 1}u) / ${S}u + ${A - 1}u) / ${A}u * ${A}u;
  let used = (n_pos + len - 1u) / len;`;
}

function checkSplits(op: string, s: { window: number; splits: number; splitAlign: number }) {
  const ok = (x: number) => Number.isInteger(x) && x >= 1;
  if (!(ok(s.splits) && ok(s.splitAlign) && Number.isInteger(s.window) && s.window >= 0)) {
    throw new RangeError(
      `${op}: splits ${s.splits} and splitAlign ${s.splitAlign} must be positive integers, window ${s.window} >= 0`,
    );
  }
}

/** WGSL for `attention_decode`; `threads` overrides `DECODE_THREADS` (benches). */
export function attentionDecodeKernel(
  spec: DecodeSpec,
  target: TargetInfo,
  threads = DECODE_THREADS,
): WgslKernel {
  const { heads: H, kvHeads: KV, headDim: D, splits: S, scale } = spec;
  if (!(H > 0 && KV > 0 && D > 0 && D % 2 === 0 && H % KV === 0)) {
    throw new RangeError(
      `attention_decode: heads ${H}, kvHeads ${KV}, headDim ${D} must be positive, D even, heads a multiple of kvHeads`,
    );
  }
  checkSplits(spec.op, spec);
  const W = (H + 2 * KV) * D; // qkv row width
  const HG = H / KV;
  const half = D / 2;
  const decls = `${rotation(spec.invFreq, D)}
// element d of head row b of qkv (q or k), rotated to position p (pairs (i, i + ${half}))
fn rope_at(b: u32, d: u32, p: u32) -> f32 {
  let cs = rot(p, d % ${half}u);
  if (d < ${half}u) { return qkv[b + d] * cs.x - qkv[b + d + ${half}u] * cs.y; }
  return qkv[b + d] * cs.x + qkv[b + d - ${half}u] * cs.y;
}`;
  const prologue = `if (lid == 0u) { pos_shared = positions[r]; }
  let p = workgroupUniformLoad(&pos_shared);
  ${splitRange(spec)}
  if (split >= used) { return; } // (before anything else: short contexts leave many splits idle)
  init_turns(lid);
  let pages = page_indptr[tok_seq[r]];
  let jb = lo + split * len; // keys jb..je-1; the last split's end is p + 1
  let je = min(jb + len, p + 1u);
  let base = r * ${W}u;`;
  const plan = D % 4 === 0 ? groupedPlan(spec, target, threads, 12 * D) : null;
  if (plan) {
    const { T, D4, HW, HB } = plan;
    const G = S * KV * HB;
    const rope4 = (b: string, d: string) =>
      `vec4<f32>(${rep(4, (c) => `rope_at(${b}, ${d} + ${c}u, p)`, ", ")})`;
    return groupedKernel(spec, target, plan, {
      types: { ...TYPES, cache: "array<vec4<f32>>", part_o: "array<vec4<f32>>" },
      decls: `var<workgroup> knew: array<vec4<f32>, ${D4}>; // [D4] rotated key p
var<workgroup> vnew: array<vec4<f32>, ${D4}>; // [D4] value p
${decls}`,
      groupsPerRow: G,
      start: `let r = wg / ${G}u;
  let split = (wg % ${G}u) / ${KV * HB}u;
  let kvh = (wg % ${KV * HB}u) / ${HB}u;
  let hb = (wg % ${HB}u) * ${HW}u; // first head of the block within the KV head's ${HG}
  ${prologue}
  for (var i = lid; i < ${(HW + 2) * D4}u; i += ${T}u) {
    if (i < ${HW * D4}u) {
      var qv = vec4<f32>(0.0);
      if (hb + i / ${D4}u < ${HG}u) {
        qv = ${rope4(`base + (kvh * ${HG}u + hb + i / ${D4}u) * ${D}u`, `4u * (i % ${D4}u)`)} * ${
        lit(scale)
      };
      }
      qs[i] = qv;
    } else if (i < ${(HW + 1) * D4}u) {
      knew[i - ${HW * D4}u] = ${rope4(`base + ${H * D}u + kvh * ${D}u`, `4u * (i - ${HW * D4}u)`)};
    } else {
      let vb = base + ${(H + KV) * D}u + kvh * ${D}u + 4u * (i - ${(HW + 1) * D4}u);
      vnew[i - ${(HW + 1) * D4}u] = vec4<f32>(qkv[vb], qkv[vb + 1u], qkv[vb + 2u], qkv[vb + 3u]);
    }
  }
  workgroupBarrier();
  if (je == p + 1u && hb == 0u && lid < ${D4}u) {
    let kr = krow(pages, kvh, p) + lid;
    cache[kr] = knew[lid];
    cache[kr + ${KV * PAGE_SIZE * D4}u] = vnew[lid];
  }`,
      newKey: true,
      store: (h) =>
        `let pi = (r * ${S}u + split) * ${H}u + kvh * ${HG}u + hb + ${h}u;
    part_o[pi * ${D4}u + lid] = o;
    if (lid == 0u) { part_lse[pi] = mx_h + log(total_h); }`,
    });
  }
  const T = reductionThreads(target, 64);
  const G = S * H;
  return scalarKernel(spec, target, T, {
    types: TYPES,
    decls: `var<workgroup> knew: array<f32, ${D}>; // [D] rotated key p
var<workgroup> vnew: array<f32, ${D}>; // [D] value p
${decls}`,
    groupsPerRow: G,
    start: `let r = wg / ${G}u;
  let split = (wg % ${G}u) / ${H}u;
  let h = wg % ${H}u;
  let kvh = h / ${HG}u;
  ${prologue}
  for (var d = lid; d < ${D}u; d += ${T}u) {
    qs[d] = rope_at(base + h * ${D}u, d, p) * ${lit(scale)};
    knew[d] = rope_at(base + ${H * D}u + kvh * ${D}u, d, p);
    vnew[d] = qkv[base + ${(H + KV) * D}u + kvh * ${D}u + d];
  }
  workgroupBarrier();
  if (je == p + 1u && h % ${HG}u == 0u) {
    let page = page_indices[pages + p / ${PAGE_SIZE}u];
    let kb = ((page * 2u) * ${KV * PAGE_SIZE}u + kvh * ${PAGE_SIZE}u + p % ${PAGE_SIZE}u) * ${D}u;
    for (var d = lid; d < ${D}u; d += ${T}u) {
      cache[kb + d] = knew[d];
      cache[kb + ${KV * PAGE_SIZE * D}u + d] = vnew[d];
    }
  }`,
    newKey: true,
    store: (d, o) =>
      `let pi = (r * ${S}u + split) * ${H}u + h;
      part_o[pi * ${D}u + ${d}] = ${o};
      if (${d} == 0u) { part_lse[pi] = m + log(l); }`,
  });
}

/** WGSL for `attention_merge`: one thread per element of out [R, H * D]. */
export function attentionMergeKernel(spec: MergeSpec, target: TargetInfo): WgslKernel {
  const { heads: H, headDim: D, splits: S } = spec;
  if (!(H > 0 && D > 0)) {
    throw new RangeError(`attention_merge: heads ${H}, headDim ${D} must be positive`);
  }
  checkSplits(spec.op, spec);
  const T = reductionThreads(target, 256);
  const G = Math.ceil((H * D) / T);
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: 0 });
  const code = `${
    declareBindings(spec, {
      positions: "array<u32>",
      part_o: "array<f32>",
      part_lse: "array<f32>",
      out: "array<f32>",
    })
  }

${entry(T, totalGroups(1, G))}
  let r = wg / ${G}u;
  let e = (wg % ${G}u) * ${T}u + lid; // element of the row's H * D
  if (e >= ${H * D}u) { return; }
  let p = positions[r];
  ${splitRange(spec)}
  let lb = r * ${S * H}u + e / ${D}u; // part_lse of split s: lb + s * ${H}
  var mx = ${NEG};
  for (var s = 0u; s < used; s++) { mx = max(mx, part_lse[lb + s * ${H}u]); }
  var num = 0.0;
  var den = 0.0;
  for (var s = 0u; s < used; s++) {
    let w = exp(part_lse[lb + s * ${H}u] - mx);
    den += w;
    num += w * part_o[(lb + s * ${H}u) * ${D}u + e % ${D}u];
  }
  out[r * ${H * D}u + e] = num / den;
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: G };
}
