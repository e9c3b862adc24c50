/**
 * Conformance cases of the sampling kernels: take_rows, argmax, softmax_temp, softmax_stats,
 * top_p_hist, top_p_gather, sample_top_p, logits_process.
 * Ties are planted on purpose (lowest index wins); top-p cases are drawn so that no cumulative
 * mass lies within a margin of top_p or of u * kept_mass, so the sampled token is exact on
 * every backend despite f32 summation order.
 * @module
 */
import { type ConformanceCase, TOL } from "./case.ts";
import { padded, Rng } from "./helpers.ts";
import { reference, topPRow } from "./reference.ts";
import {
  argmaxPartWords,
  topPGatherWords,
  topPHistWords,
  topPSlices,
} from "../../compiler/codegen/contract.ts";

/** Margin kept between any cumulative mass and the top-p / u thresholds. */
const MARGIN = 2e-5;

function takeRowsCases(rng: Rng): ConformanceCase[] {
  return ([[100, 10, 5], [1000, 3, 1], [33, 40, 37]] as const).map(([width, M, R]) => {
    const idx = Uint32Array.from({ length: R }, () => rng.int(M)); // [R]
    idx[0] = M - 1;
    if (R > 1) idx[1] = M - 1; // a repeated index
    return {
      name: `take_rows width=${width} from ${M} rows R=${R}`,
      spec: { op: "take_rows", width },
      rows: R,
      inputs: [
        padded(rng.normals(M * width)),
        padded(idx),
        padded(new Float32Array(R * width).fill(-7)),
      ],
      tol: TOL.exact,
    };
  });
}

/** R rows of V logits; row kinds: "random", "tie" (max at two indices), "flat", "last",
 * "masked" (all -inf but 5, as top_k leaves a row). */
function logits(rng: Rng, V: number, kinds: string[], scale = 2): Float32Array {
  const x = rng.normals(kinds.length * V, scale); // [R, V]
  kinds.forEach((kind, r) => {
    const o = r * V;
    if (kind === "tie") {
      const a = 1 + rng.int(V / 2 - 1), b = a + 1 + rng.int(V / 2);
      x[o + a] = x[o + b] = 4 * scale + 1;
    } else if (kind === "flat") {
      x.fill(-0.5, o, o + V);
    } else if (kind === "last") {
      for (let c = 0; c < V; c++) x[o + c] = -Math.abs(x[o + c]) - 1;
      x[o + V - 1] = -0.25;
    } else if (kind === "masked") {
      const keep = new Set([3, V >> 2, V >> 1, V - 9, V - 1]);
      for (let c = 0; c < V; c++) if (!keep.has(c)) x[o + c] = -Infinity;
    }
  });
  return x;
}

/** argmax, in one workgroup a row and spread over `blocks` (the last block ragged; ties
 * within and across blocks, rows all -inf but a few, the max in the last element). */
function argmaxCases(rng: Rng): ConformanceCase[] {
  const table: [number, string[], number?][] = [
    [1000, ["random", "tie", "flat", "last"]],
    [37, ["tie"]],
    [5000, ["random", "tie"]],
    [32000, ["tie", "last"]],
    [1000, ["random", "tie", "flat", "last", "masked"], 3],
    [20011, ["tie", "last", "random", "flat"], 4],
    [128256, ["random", "tie", "masked"], 31],
  ];
  return table
    .map(([V, kinds, blocks]) => {
      const R = kinds.length;
      return {
        name: `argmax V=${V} rows=${kinds.join(",")} R=${R}${blocks ? ` blocks=${blocks}` : ""}`,
        spec: { op: "argmax", vocab: V, ...(blocks ? { blocks } : {}) },
        rows: R,
        inputs: [
          padded(logits(rng, V, [...kinds])),
          // (blocks: the blocks' scratch, and the counts, zero before and after)
          ...(blocks
            ? [
              padded(new Uint32Array(R * argmaxPartWords(blocks)).fill(0xdeadbeef)),
              padded(new Uint32Array(R)),
            ]
            : []),
          padded(new Uint32Array(R).fill(7777)),
        ],
        tol: TOL.exact,
      };
    });
}

function softmaxCases(rng: Rng): ConformanceCase[] {
  const table: [number, string[], number[], number][] = [
    // vocab, row kinds, temperatures, logit scale (100: exp overflows unless the max is taken out)
    [500, ["random", "random", "tie", "random", "last"], [1, 0.7, 0, 2, -1], 2],
    [4096, ["random", "tie", "masked", "masked"], [0.5, 1.3, 0.9, 0], 2],
    [64, ["flat"], [1], 2],
    [32000, ["tie"], [0.8], 2],
    [300, ["random", "random"], [1, 0.1], 100],
  ];
  return table.map(([V, kinds, temps, scale]) => ({
    name: `softmax_temp V=${V} t=[${temps}] |x|~${scale} R=${kinds.length}`,
    spec: { op: "softmax_temp", vocab: V },
    rows: kinds.length,
    inputs: [
      padded(logits(rng, V, kinds, scale)),
      padded(Float32Array.from(temps)),
      padded(new Float32Array(kinds.length * V).fill(-7)),
    ],
    tol: TOL.f32,
  }));
}

/** The split softmax: `softmax_stats` of each block, and `softmax_temp` with `blocks` over stats
 * made by the reference (empty blocks where blocks * ceil(V / blocks) > V, wholly masked
 * blocks, ties across blocks, t <= 0). */
function splitSoftmaxCases(rng: Rng): ConformanceCase[] {
  const table: [number, number, string[], number[]][] = [
    // vocab, blocks, row kinds, temperatures
    [4096, 7, ["random", "tie", "masked", "masked"], [0.5, 1.3, 0.9, 0]],
    [500, 64, ["random", "tie", "last"], [1, 0, 0.05]], // L = 8: blocks 63 empty
    [32000, 32, ["tie", "last", "flat"], [0.8, 0, 1]],
    [9, 4, ["random", "masked"], [1, 2]], // L = 3: block 3 empty
  ];
  return table.flatMap(([V, B, kinds, temps]) => {
    const R = kinds.length;
    const x = padded(logits(rng, V, kinds));
    const t = padded(Float32Array.from(temps));
    const what = `V=${V} blocks=${B} t=[${temps}] R=${R}`;
    const stats = padded(new Float32Array(R * B * 2).fill(-7));
    const idx = padded(new Uint32Array(R * B).fill(7777));
    const spec = { op: "softmax_stats" as const, vocab: V, blocks: B };
    const ref = reference(spec, [x, t, stats, idx], R);
    return [
      { name: `softmax_stats ${what}`, spec, rows: R, inputs: [x, t, stats, idx], tol: TOL.f32 },
      {
        name: `softmax_temp ${what}`,
        spec: { op: "softmax_temp", vocab: V, blocks: B },
        rows: R,
        inputs: [
          x,
          t,
          padded(Float32Array.from(ref.stats)),
          padded(Uint32Array.from(ref.idx)),
          padded(new Float32Array(R * V).fill(-7)),
        ],
        tol: TOL.f32,
      },
    ];
  });
}

/** Probabilities (f32) of one row of logits, computed in f64. */
function softmaxRow(x: Float32Array, o: number, V: number): Float32Array {
  let m = -Infinity;
  for (let c = 0; c < V; c++) m = Math.max(m, x[o + c]);
  let z = 0;
  for (let c = 0; c < V; c++) z += Math.exp(x[o + c] - m);
  return Float32Array.from({ length: V }, (_, c) => Math.exp(x[o + c] - m) / z);
}

/** A row of V probabilities with 6,000 of about 1e-4 (`equal`: all exactly 1e-4), all in one
 * bucket of `top_p_hist` ([1.625, 1.75) * 2^-14), four of 0.05-0.1 and a tail of about 6e-7. */
function crowded(rng: Rng, V: number, equal: boolean): Float32Array {
  const p = new Float32Array(V); // [V]
  const order = Array.from({ length: V }, (_, c) => c);
  for (let i = V - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  [0.1, 0.08, 0.07, 0.05].forEach((v, i) => p[order[i]] = v);
  for (let i = 4; i < 6004; i++) p[order[i]] = equal ? 1e-4 : 1e-4 + rng.next() * 6e-6;
  for (let i = 6004; i < V; i++) p[order[i]] = 6e-7 * (0.5 + rng.next());
  return p;
}

/** True when the kept set and the sampled token of a row cannot depend on rounding: no
 * cumulative mass in descending-probability order within a margin of top_p, none of the kept
 * tokens in index order within a margin of u * kept mass (`row`: `topPRow`'s). */
function clearOfBoundaries(
  row: { sorted: number[]; walk: number[]; mass: number },
  smallest: number,
  topP: number,
  u: number,
): boolean {
  // (top_p >= 1: the backends sum the total in other orders; a token's own mass is the slack)
  const slack = topP >= 1 ? smallest : 0;
  if (topP < 1 && row.sorted.some((c) => Math.abs(c - topP) <= MARGIN)) return false;
  return !row.walk.some((c) => Math.abs(c - u * row.mass) <= MARGIN + slack);
}

function topPCases(rng: Rng): ConformanceCase[] {
  const mixed = ["random", "tie", "random", "random", "random", "tie", ...Array(10).fill("random")];
  const table: [number, string[], number[], number][] = [
    // vocab, row kinds, top_p per row, logit scale
    [300, mixed, [0.9, 0.05, 1, 0.1, 0, 0.95, 0.7, 0.3, 0.9, 0.9, 0.8, 0.6, 0.5, 1, 0.95, 0.4], 3],
    [5000, ["random", "tie"], [0.8, 0.9], 3],
    [17, ["random"], [0.6], 3],
    [32000, ["random", "tie"], [0.9, 0.5], 5],
    [128256, ["random", "random"], [1, 1], 6], // top_p 1 (OpenAI's default) at Llama 3's vocabulary
    [128256, ["random", "tie"], [0.9, 0.95], 6], // the search at Llama 3's vocabulary
    // 6,000 tokens in the bucket where top_p is reached: distinct (its sub-buckets are
    // searched), all equal (too many even there: the search, and its ties)
    // (top_p set halfway between two cumulative masses there, which are 1e-4 apart)
    [128256, ["spread", "equal"], [0.9, 0.85], 0],
  ];
  return table.flatMap(([V, kinds, topPs, scale]) => {
    const R = kinds.length;
    const x = logits(rng, V, kinds, scale);
    const planted = kinds.map((k) => k === "spread" || k === "equal");
    const probs = new Float32Array(R * V); // [R, V]
    for (let r = 0; r < R; r++) {
      const row = planted[r] ? crowded(rng, V, kinds[r] === "equal") : softmaxRow(x, r * V, V);
      probs.set(row, r * V);
    }
    const probsBuf = padded(probs);
    const u = new Float32Array(R); // [R]
    const tp = Float32Array.from(topPs); // [R]
    for (let r = 0; r < R; r++) {
      let row = topPRow(probsBuf, r, V, tp[r], 0);
      if (planted[r]) {
        tp[r] = (row.sorted.at(-2)! + row.sorted.at(-1)!) / 2;
        row = topPRow(probsBuf, r, V, tp[r], 0);
      }
      const smallest = probs.subarray(r * V, (r + 1) * V).reduce(
        (a, b) => Math.min(a, b),
        Infinity,
      );
      let tries = 0;
      do {
        u[r] = rng.next();
        if (++tries % 20 === 0 && tp[r] > 0 && tp[r] < 1) {
          tp[r] = Math.min(0.999, tp[r] + 0.013);
          row = topPRow(probsBuf, r, V, tp[r], 0);
        }
        if (tries > 2000) throw new Error(`topPCases: no clear u for row ${r} of V=${V}`);
      } while (!clearOfBoundaries(row, smallest, tp[r], u[r]));
    }
    // the candidates top_p_gather gathers from the histogram top_p_hist gives, and (larger
    // rows) from one that misleads: every mass moved one bucket up, so that the
    // candidates are those of the bucket below the nucleus' edge
    const hist = histOf(probsBuf, tp, V);
    const hists: [string, Uint32Array][] = [["", hist]];
    if (V >= 5000) {
      hists.push([
        " hist shifted",
        Uint32Array.from(hist, (_, i) => hist[i - 2] ?? 0),
      ]);
    }
    return hists.map(([label, h]) => ({
      name: `sample_top_p V=${V} top_p=[${Array.from(tp, (v) => +v.toFixed(3))}] R=${R}${label}`,
      spec: { op: "sample_top_p", vocab: V },
      rows: R,
      inputs: [
        padded(probs),
        padded(tp),
        padded(u),
        ...gatheredOf(probsBuf, tp, h, V),
        padded(new Uint32Array(R).fill(7777)),
      ],
      tol: TOL.exact,
    }));
  });
}

/** The reference's `top_p_hist` of rows [R, V] at top_p `tp`. */
function histOf(probs: ArrayBuffer, tp: Float32Array, V: number): Uint32Array {
  const R = tp.length;
  return reference(
    { op: "top_p_hist", vocab: V },
    [probs, padded(tp), new ArrayBuffer(R * topPHistWords(V) * 4)],
    R,
  ).out as Uint32Array;
}

/** The reference's `top_p_gather` outputs (gathered, mass) from histogram `hist`. */
function gatheredOf(
  probs: ArrayBuffer,
  tp: Float32Array,
  hist: Uint32Array,
  V: number,
): ArrayBuffer[] {
  const R = tp.length;
  const ref = reference(
    { op: "top_p_gather", vocab: V },
    [
      probs,
      padded(tp),
      padded(hist),
      new ArrayBuffer(R * topPGatherWords(V) * 4),
      new ArrayBuffer(R * topPSlices(V) * 4),
    ],
    R,
  );
  return [padded(ref.out as Uint32Array), padded(Float32Array.from(ref.mass))];
}

/** top_p_gather: one slice and several, a ragged last one; rows with top_p >= 1 (their
 * slices' masses), 0 (the top bucket), 6,000 candidates in one bucket spread over the slices,
 * a histogram that misleads (shifted a bucket up, so another bucket is gathered) and one that
 * reaches no bucket (all zero); the bucket edges' values as in top_p_hist's cases. */
function topPGatherCases(rng: Rng): ConformanceCase[] {
  const table: [number, string[], number[]][] = [
    [300, ["random", "random", "random", "tie"], [0.9, 1, 0, 0.5]],
    [20000, ["random", "spread", "random"], [0.95, 0.85, 2]],
    [128256, ["random", "equal", "random"], [0.9, 0.9, 1]],
  ];
  return table.flatMap(([V, kinds, topPs]) => {
    const R = kinds.length;
    const x = logits(rng, V, kinds.map(() => "random"), 4);
    const probs = new Float32Array(R * V); // [R, V]
    for (let r = 0; r < R; r++) {
      const crowd = kinds[r] === "spread" || kinds[r] === "equal";
      probs.set(crowd ? crowded(rng, V, kinds[r] === "equal") : softmaxRow(x, r * V, V), r * V);
    }
    [0, -0, -0.25, 1e-45, 2 ** -126, 1.25 * 2 ** -63, 1 - 2 ** -24, 0.5].forEach((v, i) =>
      probs[(i * 41) % V] = v
    );
    const tp = Float32Array.from(topPs); // [R]
    const hist = histOf(padded(probs), tp, V);
    const hists: [string, Uint32Array][] = [
      ["", hist],
      [" hist shifted", Uint32Array.from(hist, (_, i) => hist[i - 2] ?? 0)],
      [" hist zero", new Uint32Array(hist.length)],
    ];
    return hists.map(([label, h]) => ({
      name: `top_p_gather V=${V} top_p=[${topPs}] R=${R}${label}`,
      spec: { op: "top_p_gather", vocab: V },
      rows: R,
      inputs: [
        padded(probs),
        padded(tp),
        padded(h),
        padded(new Uint32Array(R * topPGatherWords(V)).fill(0xdeadbeef)),
        padded(new Float32Array(R * topPSlices(V)).fill(-3)),
      ],
      tol: TOL.exact,
      tols: { mass: TOL.f32 },
    }));
  });
}

/** top_p_hist: several slices, a ragged last one, rows with top_p >= 1 (not written), and the
 * values at the buckets' edges: 0, -0, negatives, subnormals, 1 - 2^-24, 1, 2 and above. */
function topPHistCases(rng: Rng): ConformanceCase[] {
  return ([[300, [0.9, 1, 0.5]], [20000, [0.9, 0.2]], [128256, [1.5, 0.95]]] as const).map(
    ([V, topPs]) => {
      const R = topPs.length;
      const x = logits(rng, V, Array(R).fill("random"), 4);
      const probs = new Float32Array(R * V); // [R, V]
      for (let r = 0; r < R; r++) probs.set(softmaxRow(x, r * V, V), r * V);
      const edges = [
        0,
        -0,
        -0.25,
        1e-45,
        2 ** -126,
        2 ** -63,
        1.25 * 2 ** -63,
        1 - 2 ** -24,
        1,
        2,
        3,
        0.5,
        0.75,
      ];
      edges.forEach((v, i) => probs[(i * 37) % V] = v);
      return {
        name: `top_p_hist V=${V} top_p=[${topPs}] R=${R}`,
        spec: { op: "top_p_hist", vocab: V },
        rows: R,
        inputs: [
          padded(probs),
          padded(Float32Array.from(topPs)),
          padded(new Uint32Array(R * topPHistWords(V)).fill(0xdeadbeef)),
        ],
        tol: TOL.exact,
      };
    },
  );
}

/** logits_process: rows with and without entries, each penalty alone and together, biases, and
 * top_k of 0 (off), 1, a tie at the k-th value, V - 1 and V (off); a row of 20,000 (WebGPU:
 * slices of 8,192 at 1,024 threads, entries in each). */
function logitsProcessCases(rng: Rng): ConformanceCase[] {
  return ([[300, 8], [5000, 3], [20000, 6]] as const).map(([V, R]) => {
    const x = rng.normals(R * V, 3); // [R, V]
    const params = new Float32Array(R * 4); // [R, 4] presence, frequency, repetition, top_k
    const entries: number[][] = [];
    const indptr = new Uint32Array(R + 1); // [R + 1]
    for (let r = 0; r < R; r++) {
      const topK = [5, 0, 1, 12, V - 1, V, 40, 3][r];
      params.set([
        r % 3 === 1 ? 0 : rng.next(),
        r % 4 === 2 ? 0 : rng.next() * 0.5,
        r % 2 ? 1 : 1 + rng.next(),
        topK,
      ], r * 4);
      const tokens = new Set<number>();
      const count = r === 1 || r === 3 ? 0 : 1 + rng.int(30);
      while (tokens.size < count) tokens.add(rng.int(V));
      for (const t of tokens) {
        const bias = rng.next() < 0.4 ? rng.normal() * 4 : 0;
        entries.push([t, rng.int(4), rng.next() < 0.5 ? 1 : 0, bias]);
      }
      indptr[r + 1] = entries.length;
      if (r === 3) {
        // No entries; two tokens from below the k-th largest are raised to one value between the
        // (k-1)-th and k-th largest: they tie as the new k-th largest and both must be kept.
        const o = r * V;
        const sorted = Array.from(x.subarray(o, o + V)).sort((a, b) => b - a);
        const below = Array.from({ length: V }, (_, c) => c).filter((c) =>
          x[o + c] < sorted[topK - 1]
        );
        x[o + below[0]] = x[o + below[below.length - 1]] = (sorted[topK - 2] + sorted[topK - 1]) /
          2;
      }
    }
    const words = new ArrayBuffer(Math.max(16, entries.length * 16));
    const u = new Uint32Array(words), f = new Float32Array(words);
    entries.forEach(([t, count, inPrompt, bias], i) => {
      u[4 * i] = t, f[4 * i + 1] = count, u[4 * i + 2] = inPrompt, f[4 * i + 3] = bias;
    });
    return {
      name: `logits_process V=${V} top_k=[${
        Array.from({ length: R }, (_, r) => params[r * 4 + 3])
      }] R=${R}`,
      spec: { op: "logits_process", vocab: V },
      rows: R,
      inputs: [
        padded(x),
        padded(indptr),
        words,
        padded(params),
        padded(new Float32Array(R * V).fill(-7)),
      ],
      tol: TOL.oneRounding * 4, // x + bias, scale by repetition, subtract penalties: a few f32 roundings
    };
  });
}

/** Cases of the sampling kernels, generated from `seed`. */
export function samplingCases(seed: number): ConformanceCase[] {
  const rng = new Rng(seed);
  return [
    ...takeRowsCases(rng),
    ...argmaxCases(rng),
    ...softmaxCases(rng),
    ...splitSoftmaxCases(rng),
    ...topPCases(rng),
    ...topPHistCases(rng),
    ...topPGatherCases(rng),
    ...logitsProcessCases(rng),
  ];
}
