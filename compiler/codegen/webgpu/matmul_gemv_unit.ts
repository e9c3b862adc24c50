/**
 * How the GEMV matmul reads one weight row: in wide units (a u32, vec2<u32> or vec4<u32> of
 * packed codes, or vec4s of dense values), each decoded into vec4<f32> registers and a scale.
 * Group codes become floats with the magic-number trick (no integer-to-float conversion).
 * @module
 */
import { groupLayout, type WeightFormat } from "../contract.ts";
import { denseReader } from "./common.ts";

/** One wide read of a weight row. */
export interface Unit {
  /** Real weight elements per unit (vec4 lanes past them are zero). */
  elems: number;
  /** Units per weight row (covering the padded K for group formats). */
  units: number;
  types: Record<string, string>;
  helpers: string;
  /** Column-independent statements for unit u, shared by the loads of sub-iteration j. */
  prep(u: string, j: number): string;
  /** Statements loading unit u of weight row c under prefix p, with f32 `${p}s` (its scale),
   * after `prep(u, j)`. */
  load(c: string, u: string, p: string, j: number): string;
  /** Statements defining vec4<f32> `${p}0..` (the unit's values) from what `load` read. */
  values(p: string): string;
  /** Per vec4 of a unit: a vec4<f32> that the matching vec4 of x must be multiplied by (the
   * decoded values carry the inverse factor), or null. */
  xScale: (string | null)[];
}

const lanes = ["x", "y", "z", "w"];

/** vec4<f32> expressions for `n` elements given one expression per element ("" = zero). */
function vec4s(n: number, elem: (e: number) => string): string[] {
  const out: string[] = [];
  for (let e0 = 0; e0 < n; e0 += 4) {
    const parts = [0, 1, 2, 3].map((i) => (e0 + i < n ? elem(e0 + i) : "0.0"));
    out.push(`vec4<f32>(${parts.join(", ")})`);
  }
  return out;
}

/**
 * How a row of a weight in format `w` is read, one wide unit at a time. `inPlace` decodes
 * group codes at their bit offsets (one shift per vec4 instead of one per element; x must be
 * multiplied by `xScale`): worth it where a thread reuses each x vec4 for several columns.
 */
export function weightUnit(
  w: WeightFormat,
  K: number,
  codeWords: 1 | 2 | 4,
  inPlace = true,
): Unit {
  const lets = (p: string, exprs: string[]) =>
    exprs.map((x, i) => `let ${p}${i} = ${x};`).join("\n    ");
  if (w.kind === "group") {
    const g = groupLayout(w, K);
    const E = g.elemsPerWord, bits = w.bits, mask = (1 << bits) - 1;
    const fits = g.wordsPerRow % codeWords === 0 && w.groupSize % (codeWords * E) === 0;
    const words = fits ? codeWords : 1;
    const wide = words > 1;
    const elems = words * E;
    const bias = `${2 ** 23 + g.maxInt}.0`;
    const halves = w.scaleDtype === "f16" && g.groups % 2 === 0;
    // Full vec4s within one word decode with one mask per lane (codes stay at their bit
    // offsets i * bits, so lane i is q * 2^(i * bits)); x carries the 2^-(i * bits).
    const shiftless = (e0: number) =>
      inPlace && 4 * bits <= 23 && e0 + 4 <= elems &&
      Math.floor(e0 / E) === Math.floor((e0 + 3) / E);
    const xScale: (string | null)[] = [];
    for (let e0 = 0; e0 < elems; e0 += 4) {
      xScale.push(
        shiftless(e0) ? `vec4<f32>(${[0, 1, 2, 3].map((i) => 2 ** -(i * bits)).join(", ")})` : null,
      );
    }
    return {
      xScale,
      elems,
      units: g.wordsPerRow / words,
      types: { q_weight: wide ? `array<vec${words}<u32>>` : "array<u32>" },
      helpers: denseReader("q_scale", w.scaleDtype),
      // the group of unit u (groupSize is a multiple of elems) and, for f16 scales in rows of
      // an even number of groups, its scale's word and half (the same for every column)
      prep: (u, j) =>
        `let g${j} = ${u} / ${w.groupSize / elems}u;${
          halves ? ` let gw${j} = g${j} >> 1u; let gh${j} = (g${j} & 1u) * 16u;` : ""
        }`,
      load: (c, u, p, j) =>
        `let ${p}q = q_weight[${c} * ${g.wordsPerRow / words}u + ${u}];
    let ${p}s = ${
          halves
            ? `unpack2x16float(q_scale[${c} * ${g.groups / 2}u + gw${j}] >> gh${j}).x`
            : `q_scale_at(${c} * ${g.groups}u + g${j})`
        };`,
      values: (p) => {
        const word = (e: number) => (wide ? `${p}q.${lanes[Math.floor(e / E)]}` : `${p}q`);
        const vecs: string[] = [];
        for (let e0 = 0; e0 < elems; e0 += 4) {
          const n = Math.min(4, elems - e0);
          if (shiftless(e0)) {
            const base = (e0 % E) * bits;
            const src = base ? `(${word(e0)} >> ${base}u)` : word(e0);
            const masks = [0, 1, 2, 3].map((i) => `${(mask << (i * bits)) >>> 0}u`);
            const offs = [0, 1, 2, 3].map((i) => `${2 ** 23 + g.maxInt * 2 ** (i * bits)}.0`);
            // Code q * 2^(i bits) as f32 via its bits: (it | 2^23's exponent) - 2^23, with
            // maxInt * 2^(i bits) folded in: one and-or and one subtraction per element.
            vecs.push(
              `bitcast<vec4<f32>>((vec4<u32>(${src}) & vec4<u32>(${
                masks.join(", ")
              })) | vec4<u32>(0x4b000000u)) - vec4<f32>(${offs.join(", ")})`,
            );
          } else {
            vecs.push(...vecs4Scalar(e0, n));
          }
        }
        function vecs4Scalar(e0: number, n: number): string[] {
          return vec4s(n, (i) => {
            const e = e0 + i;
            return `bitcast<f32>(((${word(e)} >> ${
              (e % E) * bits
            }u) & ${mask}u) | 0x4b000000u) - ${bias}`;
          });
        }
        return lets(p, vecs);
      },
    };
  }
  if (w.dtype === "f32") {
    if (K % 4 === 0) {
      return {
        prep: () => "",
        elems: 4,
        units: K / 4,
        types: { weight: "array<vec4<f32>>" },
        xScale: [],
        helpers: "",
        load: (c, u, p) => `${lets(p, [`weight[${c} * ${K / 4}u + ${u}]`])} let ${p}s = 1.0;`,
        values: () => "",
      };
    }
    return {
      prep: () => "",
      elems: 1,
      units: K,
      types: { weight: "array<f32>" },
      xScale: [],
      helpers: "",
      load: (c, u, p) =>
        `${lets(p, vec4s(1, () => `weight[${c} * ${K}u + ${u}]`))} let ${p}s = 1.0;`,
      values: () => "",
    };
  }
  if (K % 8 === 0) {
    return {
      prep: () => "",
      elems: 8,
      units: K / 8,
      types: { weight: "array<vec4<u32>>" },
      xScale: [],
      helpers: "",
      load: (c, u, p) => `let ${p}v = weight[${c} * ${K / 8}u + ${u}]; let ${p}s = 1.0;`,
      values: (p) =>
        lets(p, [
          `vec4<f32>(unpack2x16float(${p}v.x), unpack2x16float(${p}v.y))`,
          `vec4<f32>(unpack2x16float(${p}v.z), unpack2x16float(${p}v.w))`,
        ]),
    };
  }
  if (K % 2 === 0) {
    return {
      prep: () => "",
      elems: 2,
      units: K / 2,
      types: { weight: "array<u32>" },
      xScale: [],
      helpers: "",
      load: (c, u, p) => `let ${p}v = weight[${c} * ${K / 2}u + ${u}]; let ${p}s = 1.0;`,
      values: (p) => lets(p, [`vec4<f32>(unpack2x16float(${p}v), 0.0, 0.0)`]),
    };
  }
  return {
    prep: () => "",
    elems: 1,
    units: K,
    types: { weight: "array<u32>" },
    xScale: [],
    helpers: denseReader("weight", "f16"),
    load: (c, u, p) =>
      `${lets(p, vec4s(1, () => `weight_at(${c} * ${K}u + ${u})`))} let ${p}s = 1.0;`,
    values: () => "",
  };
}
