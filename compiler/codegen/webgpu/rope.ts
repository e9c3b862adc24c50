/**
 * Rotary embedding and KV-cache writes: `rope`, `kv_append`, `rope_kv_append`.
 * Each token row is split over up to 16 workgroups. Rotation follows HF rotate_half: pairs (i, i + D/2) turn by
 * positions[r] * invFreq[i]. The angle is reduced in turns with a split constant
 * (hi has 12 fractional bits so position * hi is exact below 2^14), keeping sin/cos accurate
 * for long positions.
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
  lit,
  reductionThreads,
  totalGroups,
} from "./common.ts";
import { cacheScalar, PAGED_TYPES } from "./attention.ts";

type RopeSpec = Extract<KernelSpec, { op: "rope" | "kv_append" | "rope_kv_append" }>;

/** `fn rot(p: u32, i: u32) -> vec2<f32>`: (cos, sin) of position p times invFreq[i], from a turn
 * table in workgroup memory that `init_turns(lid)` fills (or one thread's `fill_turns()`, before a
 * barrier). */
export function rotation(invFreq: number[], headDim: number): string {
  if (invFreq.length !== headDim / 2) {
    throw new RangeError(
      `rope: invFreq has ${invFreq.length} entries, expected headDim/2 = ${headDim / 2}`,
    );
  }
  const turns = invFreq.map((f) => f / (2 * Math.PI));
  const hi = turns.map((t) => Math.round(t * 4096) / 4096);
  const lo = turns.map((t, i) => t - hi[i]);
  // The table lives in workgroup memory, written once per workgroup with constant indices
  // (a private array with an initialiser would be copied into every invocation).
  const init = hi.map((h, i) => `turn_hi[${i}] = ${lit(h)}; turn_lo[${i}] = ${lit(lo[i])};`).join(
    " ",
  );
  return `var<workgroup> turn_hi: array<f32, ${hi.length}>;
var<workgroup> turn_lo: array<f32, ${lo.length}>;
fn fill_turns() { ${init} }
fn init_turns(lid: u32) {
  if (lid == 0u) { fill_turns(); }
  workgroupBarrier();
}
fn rot(p: u32, i: u32) -> vec2<f32> {
  let pf = f32(p);
  var t = fract(fract(pf * turn_hi[i]) + pf * turn_lo[i]);
  if (t > 0.5) { t = t - 1.0; }
  let a = t * ${lit(2 * Math.PI)};
  return vec2<f32>(cos(a), sin(a));
}`;
}

/**
 * WGSL `fn <name>(b: u32, d: u32, p: u32) -> f32`: element d of the head row at b, rotated to
 * position p (pairs (i, i + D/2)), reading element i through `load(i)` (a WGSL expression in
 * `i`). Needs `rotation()`'s `rot`.
 */
export function ropeElement(name: string, load: (i: string) => string, headDim: number): string {
  const half = headDim / 2;
  return `// element d of the head row at b, rotated to position p (pairs (i, i + ${half}))
fn ${name}(b: u32, d: u32, p: u32) -> f32 {
  let cs = rot(p, d % ${half}u);
  if (d < ${half}u) { return ${load("b + d")} * cs.x - ${load(`b + d + ${half}u`)} * cs.y; }
  return ${load("b + d")} * cs.x + ${load(`b + d - ${half}u`)} * cs.y;
}`;
}

/** WGSL for `rope`, `kv_append` or `rope_kv_append`. */
export function ropeKernel(spec: RopeSpec, target: TargetInfo): WgslKernel {
  const { heads: H, kvHeads: KV, headDim: D } = spec;
  if (!(H > 0 && KV > 0 && D > 0 && D % 2 === 0 && H % KV === 0)) {
    throw new RangeError(
      `${spec.op}: heads ${H}, kvHeads ${KV}, headDim ${D} must be positive, D even, heads a multiple of kvHeads`,
    );
  }
  const T = reductionThreads(target, 256);
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: 8 * (D / 2) });
  const W = (H + 2 * KV) * D; // qkv row width
  const half = D / 2;
  const paged = spec.op !== "rope";
  const types: Record<string, string> = spec.op === "rope"
    ? { x: "array<f32>", positions: "array<u32>", out: "array<f32>" }
    : {
      qkv: "array<f32>",
      ...PAGED_TYPES,
      cache: "array<f32>",
      q_out: "array<f32>",
    };
  const src = spec.op === "rope" ? "x" : "qkv";
  // cache index of (kv part 0|1, kv head, dim) for this token: [pages, 2, KV, PAGE, D]
  const cacheAt = (part: string, head: string, d: string) =>
    `((page * 2u + ${part}) * ${KV * PAGE_SIZE}u + ${head} * ${PAGE_SIZE}u + slot) * ${D}u + ${d}`;
  // (an f16 cache is written by pairs of adjacent elements: its k heads rotated in a loop of
  // their own, the copies two elements a thread)
  const f16 = kvF16(spec);
  const kv = cacheScalar(f16);
  // Where rotated pair (i, i + D/2) of head `h` (0..H+KV: q heads then k heads; q heads only
  // with an f16 cache) goes.
  const store = (h: string, i: string, v: string) => {
    if (spec.op === "rope") return `out[base + ${h} * ${D}u + ${i}] = ${v};`;
    if (spec.op === "kv_append") return "";
    if (f16) return `q_out[r * ${H * D}u + ${h} * ${D}u + ${i}] = ${v};`;
    return `if (${h} < ${H}u) { q_out[r * ${H * D}u + ${h} * ${D}u + ${i}] = ${v}; }
        else { cache[${cacheAt("0u", `(${h} - ${H}u)`, i)}] = ${v}; }`;
  };
  // A row's work is split over G workgroups (one row would keep a single SM busy otherwise):
  // workgroup g of the row takes items g*T + lid, g*T + lid + G*T, …
  const nrot = spec.op === "kv_append" ? 0 : (spec.op === "rope" || !f16 ? H + KV : H) * half;
  // Copies: v heads (rope, rope_kv_append) or k and v heads (kv_append).
  const copyFrom = spec.op === "kv_append" ? H : H + KV;
  const copyCount = (H + 2 * KV - copyFrom) * D;
  const G = Math.max(1, Math.min(16, Math.ceil(Math.max(nrot, copyCount) / T)));
  const rotate = spec.op === "kv_append" ? "" : `
  init_turns(lid);
  let nrot = ${nrot}u;
  for (var e = g * ${T}u + lid; e < nrot; e += ${G * T}u) {
    let h = e / ${half}u;
    let i = e % ${half}u;
    let cs = rot(p, i);
    let x0 = ${src}[base + h * ${D}u + i];
    let x1 = ${src}[base + h * ${D}u + i + ${half}u];
    ${store("h", "i", "x0 * cs.x - x1 * cs.y")}
    ${store("h", `(i + ${half}u)`, "x1 * cs.x + x0 * cs.y")}
  }${
    spec.op === "rope_kv_append" && f16
      ? `
  for (var e = g * ${T}u + lid; e < ${KV * half}u; e += ${G * T}u) {
    let h = e / ${half}u;
    let d = 2u * (e % ${half}u);
    let b = base + (${H}u + h) * ${D}u;
    ${kv.store2(cacheAt("0u", "h", "d"), "rope_elem(b, d, p)", "rope_elem(b, d + 1u, p)")}
  }`
      : ""
  }`;
  const copyStore = spec.op === "rope"
    ? `out[base + ${copyFrom * D}u + e] = ${src}[base + ${copyFrom * D}u + e];`
    : f16
    ? `let el = 2u * e; // elements el, el + 1
    let hh = ${copyFrom - H}u + el / ${D}u; // 0..2KV: k heads then v heads
    let sb = base + ${copyFrom * D}u + el;
    ${
      kv.store2(
        cacheAt(`(hh / ${KV}u)`, `(hh % ${KV}u)`, `(el % ${D}u)`),
        `${src}[sb]`,
        `${src}[sb + 1u]`,
      )
    }`
    : `let hh = ${copyFrom - H}u + e / ${D}u; // 0..2KV: k heads then v heads
    cache[${cacheAt(`(hh / ${KV}u)`, `(hh % ${KV}u)`, `(e % ${D}u)`)}] = ${src}[base + ${
      copyFrom * D
    }u + e];`;
  const copies = f16 && spec.op !== "rope" ? copyCount / 2 : copyCount;
  if (paged) types.cache = kv.type;
  const code = `${declareBindings(spec, types)}
${spec.op === "kv_append" ? "" : rotation(spec.invFreq, D)}
${spec.op === "rope_kv_append" && f16 ? ropeElement("rope_elem", (i) => `qkv[${i}]`, D) : ""}

${entry(T, totalGroups(1, G))}
  let r = wg / ${G}u;
  let g = wg % ${G}u;
  let base = r * ${W}u;
  let p = positions[r];
  ${
    paged
      ? `let page = page_indices[page_indptr[tok_seq[r]] + p / ${PAGE_SIZE}u];
  let slot = p % ${PAGE_SIZE}u;`
      : ""
  }${rotate}
  for (var e = g * ${T}u + lid; e < ${copies}u; e += ${G * T}u) {
    ${copyStore}
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: G };
}
