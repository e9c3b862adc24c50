/**
 * Staging for the tiled matmul: how the threads of a workgroup copy one K slice of x and of
 * the weight from global memory into workgroup memory, k-major (`[BK][rows / 4]` vec4s), in
 * two halves: `load` issues the global reads into registers (the next slice, before the
 * multiply-adds of the current one) and `store` decodes those registers (dequantises: codes
 * times their group's scale) and writes them to workgroup memory afterwards.
 *
 * x is staged in units of 4 rows (transposed in registers, stored as vec4s); a weight unit is
 * a run of consecutive k of one row (a word or vecN of words, or one element), unit u of a
 * thread being row u % rows, run u / rows, so that the 32 threads of a warp write 32
 * consecutive rows of one k (conflict-free scalar stores).
 * @module
 */
import { groupLayout, type WeightFormat } from "../contract.ts";
import { weightReader } from "./common.ts";

/** Generated code for one operand's staging. */
export interface Stage {
  /** Register declarations (function scope). */
  decls: string;
  /** Statements reading the slice at `k0` (a WGSL u32 expression) into the registers. */
  load(k0: string): string;
  /** Statements writing the registers into workgroup array `dst` (`dst[k][row / 4][row % 4]`). */
  store(dst: string): string;
  /** Helper functions (module scope). */
  prelude: string;
  /** Binding type overrides. */
  types: Record<string, string>;
}

/** Shape of one staging: `rows` rows of a `bk`-wide K slice, by `threads` threads. */
export interface StageShape {
  rows: number;
  bk: number;
  threads: number;
}

/** Emits the per-thread unit loop: `body(v, row, run)` for each of the thread's units. */
function units(
  s: StageShape,
  perRow: number,
  body: (v: number, row: string, run: string) => string,
): string[] {
  const total = s.rows * perRow;
  const out: string[] = [];
  for (let v = 0; v * s.threads < total; v++) {
    const u = `(lid + ${v * s.threads}u)`;
    const code = body(v, `(${u} % ${s.rows}u)`, `(${u} / ${s.rows}u)`);
    out.push((v + 1) * s.threads > total ? `if (${u} < ${total}u) { ${code} }` : code);
  }
  return out;
}

const slot = (dst: string, k: string, row: string) => `${dst}[${k}][${row} / 4u][${row} % 4u]`;

/**
 * Staging of x f32[R, K] rows r0 .. r0 + rows. A unit is 4 rows x 4 k (vec4 reads, K % 4 == 0)
 * or 4 rows x 1 k (scalar reads), transposed in registers into vec4s of 4 rows a k; the units
 * of a row group are on consecutive threads, so a warp reads whole runs of each row. Rows past
 * R and k past K read as zero. `dst` is `dst[k][row group]` (its stride padded by the caller
 * against bank conflicts of these stores).
 */
export function stageX(s: StageShape, K: number): Stage {
  const vec = K % 4 === 0;
  const E = vec ? 4 : 1;
  const perGroup = s.bk / E;
  const total = (s.rows / 4) * perGroup;
  const count = Math.ceil(total / s.threads);
  const zero = vec ? "vec4<f32>()" : "0.0";
  const reg = (v: number, i: number) => `px${v}_${i}`;
  const decls = Array.from(
    { length: count },
    (_, v) => [0, 1, 2, 3].map((i) => `var ${reg(v, i)} = ${zero};`).join(" "),
  ).join(" ");
  const each = (body: (v: number, group: string, run: string) => string) => {
    const out: string[] = [];
    for (let v = 0; v < count; v++) {
      const u = `(lid + ${v * s.threads}u)`;
      const code = body(v, `(${u} / ${perGroup}u)`, `(${u} % ${perGroup}u)`);
      out.push((v + 1) * s.threads > total ? `if (${u} < ${total}u) { ${code} }` : code);
    }
    return out.join("\n    ");
  };
  const load = (k0: string) =>
    each((v, group, run) => {
      const k = `(${k0} + ${E}u * ${run})`;
      return [0, 1, 2, 3].map((i) => {
        const r = `(r0 + 4u * ${group} + ${i}u)`;
        const at = vec ? `${r} * ${K / 4}u + ${k} / 4u` : `${r} * ${K}u + ${k}`;
        return `${reg(v, i)} = ${zero}; if (${r} < R.x && ${k} < ${K}u) { ${
          reg(v, i)
        } = x[${at}]; }`;
      }).join(" ");
    });
  const store = (dst: string) =>
    each((v, group, run) =>
      Array.from({ length: E }, (_, e) => {
        const lanes = [0, 1, 2, 3].map((i) => `${reg(v, i)}${vec ? `[${e}]` : ""}`).join(", ");
        return `${dst}[${E}u * ${run} + ${e}u][${group}] = vec4<f32>(${lanes});`;
      }).join(" ")
    );
  return {
    decls,
    load,
    store,
    prelude: "",
    types: vec ? { x: "array<vec4<f32>>" } : {},
  };
}

/** Where staged weight row n (0 .. rows) comes from: its binding row and whether it exists. */
export interface WeightRows {
  row(n: string): string;
  valid(n: string): string;
}

/**
 * Staging of weight rows (dense f32/f16 or group-quantised). Group formats read vecN words of
 * codes (with their scales) when whole words fit the slice; dense f16 reads vecN words of
 * halves when K allows; anything else reads element by element through `w_at`.
 */
export function stageWeight(s: StageShape, w: WeightFormat, K: number, rows: WeightRows): Stage {
  if (w.kind === "group") {
    const g = groupLayout(w, K);
    const V = widest(
      s,
      g.elemsPerWord,
      (v) =>
        s.bk % (g.elemsPerWord * v) === 0 && g.wordsPerRow % v === 0 &&
        (v === 1 || w.groupSize % (g.elemsPerWord * v) === 0),
    );
    if (V !== undefined) return stageGroup(s, w, K, rows, V);
  }
  if (w.kind === "dense" && w.dtype === "f16") {
    const V = widest(s, 2, (v) => K % (2 * v) === 0 && s.bk % (2 * v) === 0);
    if (V !== undefined) return stageF16(s, K, rows, V);
  }
  return stageElements(s, w, K, rows);
}

/**
 * Words per unit: the widest of 4, 2, 1 that `fits` and still gives every thread a unit
 * (else the narrowest that fits), `elems` elements a word.
 */
function widest(s: StageShape, elems: number, fits: (v: number) => boolean): number | undefined {
  const ok = [4, 2, 1].filter(fits);
  return ok.find((v) => (s.rows * s.bk) / (elems * v) >= s.threads) ?? ok.at(-1);
}

const vecType = (V: number) => (V === 1 ? "u32" : `vec${V}<u32>`);
const lane = (V: number, i: number) => (V === 1 ? "" : `[${i}]`);

/** Group formats, V words (V * elemsPerWord consecutive k, one group) per unit. */
function stageGroup(
  s: StageShape,
  w: Extract<WeightFormat, { kind: "group" }>,
  K: number,
  rows: WeightRows,
  V: number,
): Stage {
  const g = groupLayout(w, K);
  const E = g.elemsPerWord * V;
  const perRow = s.bk / E;
  const count = Math.ceil((s.rows * perRow) / s.threads);
  const f16 = w.scaleDtype === "f16";
  const mask = (1 << w.bits) - 1;
  // Scales are kept raw (a packed f16 pair and which half) until the store.
  const decls = Array.from(
    { length: count },
    (_, v) => `var pq${v} = ${vecType(V)}(); var ps${v} = ${f16 ? "0u" : "0.0"}; var ph${v} = 0u;`,
  ).join(" ");
  const load = (k0: string) =>
    units(s, perRow, (v, n, run) => {
      const k = `(${k0} + ${E}u * ${run})`;
      const si = `(${rows.row(n)} * ${g.groups}u + ${k} / ${w.groupSize}u)`;
      const scale = f16
        ? `ps${v} = q_scale[${si} >> 1u]; ph${v} = ${si} & 1u;`
        : `ps${v} = q_scale[${si}];`;
      return `pq${v} = ${vecType(V)}(); ps${v} = ${f16 ? "0u" : "0.0"}; if (${
        rows.valid(n)
      } && ${k} < ${g.wordsPerRow * g.elemsPerWord}u) { pq${v} = q_weight[${rows.row(n)} * ${
        g.wordsPerRow / V
      }u + ${k} / ${E}u]; ${scale} }`;
    }).join("\n    ");
  const store = (dst: string) =>
    units(s, perRow, (v, n, run) => {
      const scale = f16 ? `unpack2x16float(ps${v})[ph${v}]` : `ps${v}`;
      const out = [`let s${v} = ${scale};`];
      for (let i = 0; i < V; i++) {
        for (let e = 0; e < g.elemsPerWord; e++) {
          const q = `((pq${v}${lane(V, i)} >> ${w.bits * e}u) & ${mask}u)`;
          out.push(
            `${
              slot(dst, `${E}u * ${run} + ${i * g.elemsPerWord + e}u`, n)
            } = (f32(${q}) - ${g.maxInt}.0) * s${v};`,
          );
        }
      }
      return `{ ${out.join(" ")} }`;
    }).join("\n    ");
  return {
    decls,
    load,
    store,
    prelude: "",
    types: { q_weight: `array<${vecType(V)}>`, q_scale: f16 ? "array<u32>" : "array<f32>" },
  };
}

/** Dense f16, V words (2V halves) per unit; K % 2V == 0 so rows start on a unit. */
function stageF16(s: StageShape, K: number, rows: WeightRows, V: number): Stage {
  const E = 2 * V;
  const perRow = s.bk / E;
  const count = Math.ceil((s.rows * perRow) / s.threads);
  const decls = Array.from({ length: count }, (_, v) => `var pw${v} = ${vecType(V)}();`).join(" ");
  const load = (k0: string) =>
    units(s, perRow, (v, n, run) => {
      const k = `(${k0} + ${E}u * ${run})`;
      return `pw${v} = ${vecType(V)}(); if (${rows.valid(n)} && ${k} < ${K}u) { pw${v} = weight[${
        rows.row(n)
      } * ${K / E}u + ${k} / ${E}u]; }`;
    }).join("\n    ");
  const store = (dst: string) =>
    units(s, perRow, (v, n, run) => {
      const out: string[] = [];
      for (let i = 0; i < V; i++) {
        out.push(`let h${v}_${i} = unpack2x16float(pw${v}${lane(V, i)});`);
        for (let e = 0; e < 2; e++) {
          out.push(`${slot(dst, `${E}u * ${run} + ${2 * i + e}u`, n)} = h${v}_${i}[${e}];`);
        }
      }
      return `{ ${out.join(" ")} }`;
    }).join("\n    ");
  return { decls, load, store, prelude: "", types: { weight: `array<${vecType(V)}>` } };
}

/** Any format, one element per unit through `w_at`. */
function stageElements(s: StageShape, w: WeightFormat, K: number, rows: WeightRows): Stage {
  const count = Math.ceil((s.rows * s.bk) / s.threads);
  const decls = Array.from({ length: count }, (_, v) => `var pw${v} = 0.0;`).join(" ");
  const load = (k0: string) =>
    units(
      s,
      s.bk,
      (v, n, run) =>
        `pw${v} = 0.0; if (${rows.valid(n)} && ${k0} + ${run} < ${K}u) { pw${v} = w_at(${
          rows.row(n)
        }, ${k0} + ${run}); }`,
    ).join("\n    ");
  const store = (dst: string) =>
    units(s, s.bk, (v, n, run) => `${slot(dst, run, n)} = pw${v};`).join("\n    ");
  return { decls, load, store, prelude: weightReader(w, K), types: {} };
}
