import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { WeightError } from "../errors.ts";
import { dequantizeGroup, type GroupFormat, groupShapes, quantizeGroup } from "./group_quant.ts";
import type { StoredTensor } from "./types.ts";

// Known-answer vectors worked out by hand (the working is in the comments); packed words are
// compared bit for bit. Element i of a word sits at bits [i*bits, (i+1)*bits), so a q4 word
// reads, in hex from the left, elements 7, 6, ..., 0.

const Q4F16: GroupFormat = { kind: "group", bits: 4, groupSize: 32, scaleDtype: "f16" };
const Q4F32: GroupFormat = { kind: "group", bits: 4, groupSize: 32, scaleDtype: "f32" };
const Q3F16: GroupFormat = { kind: "group", bits: 3, groupSize: 40, scaleDtype: "f16" };

const words = (t: StoredTensor) => Array.from(new Uint32Array(t.data.slice().buffer));
const halfBits = (t: StoredTensor) => Array.from(new Uint16Array(t.data.slice().buffer));
const floats = (t: StoredTensor) => Array.from(new Float32Array(t.data.slice().buffer));
const zeros = (n: number) => new Array<number>(n).fill(0);

// q4, K = 40: two groups (32 + 8), padded to 64 elements = 8 words a row.
// Row 0, group 0: max|w| = 7 → scale = 1; q = round(w + 7), half away from zero.
//   w  0 1 2 3 4  5  6  7 | -1 -2 -3 -4 -5 -6 -7 0.5 | -0.5 1.5 2.4 -2.6 0 0 0 0 | 0 x8
//   q  7 8 9 A B  C  D  E |  6  5  4  3  2  1  0  8  |  7   9   9   4   7 7 7 7  | 7 x8
//   (-0.5 → 6.5 → 7 and 1.5 → 8.5 → 9: half away from zero, not to even; 2.4 is 2.3984375
//   in f16 → 9.3984375 → 9; -2.6 → 4.4 → 4)
// Row 0, group 1 (k 32..39): w = 14 -14 7 -7 1 3.5 -3.5 0, max 14 → scale 2;
//   w/2 + 7 = 14 0 10.5 3.5 7.5 8.75 5.25 7 → q = E 0 B 4 8 9 5 7 → word 0x75984B0E.
//   Elements 40..63 are padding: 0 bits → words 5..7 = 0.
// Row 1: all zero → scale 0, 0/0 = NaN → q = 0 (MLC: max(NaN, 0) = 0) → every word 0.
const ROW0 = [
  ...[0, 1, 2, 3, 4, 5, 6, 7, -1, -2, -3, -4, -5, -6, -7, 0.5],
  ...[-0.5, 1.5, 2.4, -2.6, ...zeros(12)],
  ...[14, -14, 7, -7, 1, 3.5, -3.5, 0],
];
const ROW0_WORDS = [
  0xEDCBA987,
  0x80123456,
  0x77774997,
  0x77777777,
  0x75984B0E,
  0,
  0,
  0,
];

// Row 2 (f16 only), group 0: w = 1 -1 0.5 -0.5 then zeros; max 1 →
//   scale = f16(1/7): 1/7 = 1170.29 * 2^-13 → 1170 * 2^-13 = 0.142822265625 = 0x3092.
//   w/scale in f16: 1 → 7.0017 → 7 (spacing 2^-8); 0.5 → 3.50085 → 3.5 (spacing 2^-9);
//   + 7 → 14, 0, 10.5, 3.5 → q = 14, 0, 11, 4 (exact arithmetic would give 3 for -0.5:
//   7 - 3.50085 = 3.49915; MLC's f16 rounding makes it 3.5 → 4). Zeros → q = 7.
//   word 0 = 0x77774B0E, words 1..3 = 0x77777777. Group 1 all zero → scale 0, words 0.
const ROW2 = [1, -1, 0.5, -0.5, ...zeros(36)];

Deno.test("quantizeGroup() packs q4f16_1 known-answer rows bit for bit", () => {
  const w = Float32Array.from([...ROW0, ...zeros(40), ...ROW2]); // [3, 40]
  const [qw, qs] = quantizeGroup(Q4F16, w, 3, 40);
  assertEquals([qw.suffix, qw.dtype, qw.shape], ["q_weight", "uint32", [3, 8]]);
  assertEquals([qs.suffix, qs.dtype, qs.shape], ["q_scale", "float16", [3, 2]]);
  assertEquals(words(qw), [
    ...ROW0_WORDS,
    ...zeros(8),
    ...[0x77774B0E, 0x77777777, 0x77777777, 0x77777777, 0, 0, 0, 0],
  ]);
  // f16 bits: 1 = 0x3C00, 2 = 0x4000, 0 = 0x0000, f16(1/7) = 0x3092.
  assertEquals(halfBits(qs), [0x3C00, 0x4000, 0, 0, 0x3092, 0]);
});

Deno.test("quantizeGroup() packs q4f32_1 known-answer rows bit for bit", () => {
  const w = Float32Array.from([...ROW0, ...zeros(40)]); // [2, 40]
  const [qw, qs] = quantizeGroup(Q4F32, w, 2, 40);
  assertEquals(qs.dtype, "float32");
  // 2.4 is 2.4000000953674316 in f32 → 9.40000009 → 9: the same words as f16.
  assertEquals(words(qw), [...ROW0_WORDS, ...zeros(8)]);
  assertEquals(floats(qs), [1, 2, 0, 0]);
});

Deno.test("dequantizeGroup() gives (q - 7) * scale rounded to f16", () => {
  const w = Float32Array.from([...ROW0, ...zeros(40), ...ROW2]); // [3, 40]
  const out = dequantizeGroup(Q4F16, quantizeGroup(Q4F16, w, 3, 40), 3, 40);
  // Row 0: scale 1 → q - 7; scale 2 → 2 (q - 7).
  assertEquals(Array.from(out.subarray(0, 40)), [
    ...[0, 1, 2, 3, 4, 5, 6, 7, -1, -2, -3, -4, -5, -6, -7, 1],
    ...[0, 2, 2, -3, ...zeros(12)],
    ...[14, -14, 8, -6, 2, 4, -4, 0],
  ]);
  // Row 1: (0 - 7) * 0 = -0.
  assert(Array.from(out.subarray(40, 80)).every((v) => Object.is(v, -0)));
  // Row 2: 7 * 0x3092 = 8190 * 2^-13 = 2047.5 * 2^-11 → ties to even → 1.0;
  //   4 * s = 1170 * 2^-11 = 0.5712890625 and -3 * s = -1755 * 2^-12 = -0.428466796875 (exact).
  assertEquals(Array.from(out.subarray(80, 84)), [1, -1, 0.5712890625, -0.428466796875]);
  assertEquals(Array.from(out.subarray(84, 120)).map(Math.abs), zeros(36));
});

// q3, K = 45: two groups of 40, 80 elements = 8 words of 10 three-bit elements (bits 30, 31 = 0).
// Group 0: max 3 → scale 1, q = round(w + 3):
//   w  0 1 2 3 -1 -2 -3 0.5 -0.5 1.5 | -1.5 2.5 -2.5 0.25 -0.75 0 x5 | 0 x20
//   q  3 4 5 6  2  1  0  4    3   5  |  2   6    1   3     2   3 x5 | 3 x20
//   word 0 (elements 9..0 from the left): 101 011 100 000 001 010 110 101 100 011 = 0x2B80AD63
//   word 1: 011 011 011 011 011 010 011 001 110 010 = 0x1B6DA672; all 3s: 0x1B6DB6DB.
// Group 1 (k 40..44): w = 6 -6 1 -1 3, scale 2 → w/2 + 3 = 6 0 3.5 2.5 4.5 → q = 6 0 4 3 5,
//   then padding 0: word 4 = 101 011 100 000 110 = 0x5706; words 5..7 = 0.
Deno.test("quantizeGroup() packs q3f16_1 known-answer rows bit for bit", () => {
  const row0 = [
    ...[0, 1, 2, 3, -1, -2, -3, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.25, -0.75],
    ...zeros(25),
    ...[6, -6, 1, -1, 3],
  ];
  const w = Float32Array.from([...row0, ...zeros(45)]); // [2, 45]
  const [qw, qs] = quantizeGroup(Q3F16, w, 2, 45);
  assertEquals(qw.shape, [2, 8]);
  assertEquals(qs.shape, [2, 2]);
  assertEquals(words(qw), [
    ...[0x2B80AD63, 0x1B6DA672, 0x1B6DB6DB, 0x1B6DB6DB, 0x00005706, 0, 0, 0],
    ...zeros(8),
  ]);
  assertEquals(halfBits(qs), [0x3C00, 0x4000, 0, 0]);
  const back = dequantizeGroup(Q3F16, [qw, qs], 2, 45);
  assertEquals(Array.from(back.subarray(0, 45)), [
    ...[0, 1, 2, 3, -1, -2, -3, 1, 0, 2, -1, 3, -2, 0, -1],
    ...zeros(25),
    ...[6, -6, 2, 0, 4],
  ]);
});

Deno.test("quantizeGroup() pads a K shorter than one group with zero bits", () => {
  // K = 5 < 32: one group, 4 words. w = 7 -7 3.5 0 -3.5: scale 1 → q = E 0 B 7 4 (3.5+7 = 10.5 → 11).
  const [qw, qs] = quantizeGroup(Q4F16, Float32Array.from([7, -7, 3.5, 0, -3.5]), 1, 5);
  assertEquals(qw.shape, [1, 4]);
  assertEquals(words(qw), [0x00047B0E, 0, 0, 0]);
  assertEquals(halfBits(qs), [0x3C00]);
});

Deno.test("quantizeGroup() rounds a w/scale just past -7 to q = 0", () => {
  // f16: max = 1.0009765625 → scale = f16(0.14299665) = 1171 * 2^-13 = 0x3093, below max/7;
  //   w/scale = ±7.0034 → f16 ±7.00390625 (spacing 2^-8); -7.0039 + 7 = -0.0039 → round → -0
  //   → max(-0, 0) → q = 0; +7.0039 + 7 = 14.0039 → f16 ties to the even 14 → q = 14.
  // f32: max = 1 → scale = 0x3E124925 (above 1/7); 1/scale → 7 - 2^-21, + 7 ties to the even
  //   14 → q = 14; -1 → 7 - 6.9999995 = 4.8e-7 → q = 0. Both give word 0x7777770E.
  const m = 1.0009765625;
  const cases: [GroupFormat, number, number][] = [[Q4F16, m, 0x3093], [Q4F32, 1, 0x3E124925]];
  for (const [f, max, scaleBits] of cases) {
    const [qw, qs] = quantizeGroup(f, Float32Array.from([max, -max, ...zeros(30)]), 1, 32);
    assertEquals(words(qw), [0x7777770E, 0x77777777, 0x77777777, 0x77777777]);
    const bits = f.scaleDtype === "f16"
      ? halfBits(qs)
      : Array.from(new Uint32Array(qs.data.slice().buffer));
    assertEquals(bits, [scaleBits]);
  }
});

Deno.test("quantizeGroup() rejects values that are not finite in the model dtype", () => {
  const w = Float32Array.from([1, 70000, 0, 0]); // 70000 overflows f16
  assertThrows(() => quantizeGroup(Q4F16, w, 1, 4), WeightError);
  assertEquals(quantizeGroup(Q4F32, w, 1, 4).length, 2);
  assertThrows(() => quantizeGroup(Q4F32, Float32Array.from([NaN]), 1, 1), WeightError);
});

Deno.test("dequantizeGroup() refuses missing or mismatched parts", () => {
  const parts = quantizeGroup(Q4F16, new Float32Array(64), 2, 32);
  assertThrows(() => dequantizeGroup(Q4F16, [parts[0]], 2, 32), WeightError);
  assertThrows(() => dequantizeGroup(Q4F16, parts, 2, 64), WeightError);
  assertThrows(() => dequantizeGroup(Q4F32, parts, 2, 32), WeightError);
  const short = { ...parts[0], data: parts[0].data.subarray(4) };
  assertThrows(() => dequantizeGroup(Q4F16, [short, parts[1]], 2, 32), WeightError);
});

Deno.test("groupShapes() gives MLC's q_weight / q_scale shapes", () => {
  assertEquals(groupShapes(Q4F16, 4096, 11008), [
    { suffix: "q_weight", dtype: "uint32", shape: [4096, 1376] },
    { suffix: "q_scale", dtype: "float16", shape: [4096, 344] },
  ]);
  // q3, K = 4096: ceil(4096/40) = 103 groups of 4 words.
  assertEquals(groupShapes(Q3F16, 32000, 4096).map((s) => s.shape), [[32000, 412], [32000, 103]]);
  assertEquals(groupShapes(Q4F32, 2, 33)[1].dtype, "float32");
});

function assert(cond: boolean, msg = "assertion failed"): void {
  if (!cond) throw new Error(msg);
}

// The step-by-step formula of MLC's TIR, one element at a time, every operation rounded to the
// model dtype (the reference for the fast path in quantizeGroup).
function mlcQ(wm: number, scale: number, maxInt: number, md: (x: number) => number): number {
  const u = md(md(wm / scale) + maxInt);
  const r = u < 0 ? -Math.floor(-u + 0.5) : Math.floor(u + 0.5);
  const lo = Number.isNaN(r) ? 0 : Math.max(r, 0);
  return Math.min(lo, 2 * maxInt);
}

for (const f of [Q4F16, Q3F16, Q4F32]) {
  Deno.test(`quantizeGroup() equals MLC's step-by-step formula on every f16 value (${f.bits}-bit, ${f.scaleDtype})`, () => {
    const md = f.scaleDtype === "f16" ? Math.f16round : Math.fround;
    const maxInt = 2 ** (f.bits - 1) - 1;
    const G = f.groupSize, E = Math.floor(32 / f.bits);
    // Every finite f16 value as a weight, in groups led by a chosen maximum so that each
    // group's scale is that maximum / maxInt; maxima span many binades, subnormals included.
    const all = Array.from(new Float16Array(new Uint16Array(0x7C00).map((_, i) => i).buffer));
    const maxima = [2 ** -24, 3 * 2 ** -20, 2 ** -14, 0.0123, 0.5, 1, 1.0009765625, 7, 100, 65504];
    for (const m of maxima) {
      const vals = all.filter((v) => v <= m).flatMap((v) => [v, -v]);
      const perGroup = G - 1;
      const groups = Math.ceil(vals.length / perGroup);
      const w = new Float32Array(groups * G); // [groups, G] as one row per group
      for (let g = 0; g < groups; g++) {
        w[g * G] = m;
        for (let i = 0; i < perGroup; i++) {
          w[g * G + 1 + i] = vals[(g * perGroup + i) % vals.length];
        }
      }
      const [qw, qs] = quantizeGroup(f, w, groups, G);
      const wordArr = new Uint32Array(qw.data.slice().buffer);
      const scaleArr = f.scaleDtype === "f16"
        ? new Float16Array(qs.data.slice().buffer)
        : new Float32Array(qs.data.slice().buffer);
      const scale = md(md(m) / maxInt);
      for (let g = 0; g < groups; g++) {
        if (scaleArr[g] !== scale) throw new Error(`max ${m}: scale ${scaleArr[g]} != ${scale}`);
        for (let i = 0; i < G; i++) {
          const word = wordArr[g * (G / E) + Math.floor(i / E)];
          const q = Math.floor(word / 2 ** ((i % E) * f.bits)) % 2 ** f.bits;
          const want = mlcQ(md(w[g * G + i]), scale, maxInt, md);
          if (q !== want) throw new Error(`max ${m}, w ${w[g * G + i]}: q ${q} != ${want}`);
        }
      }
    }
  });
}

for (const f of [Q4F16, Q3F16, Q4F32]) {
  Deno.test(`quantizeGroup() equals MLC's step-by-step formula on random f32 rows (${f.bits}-bit, ${f.scaleDtype})`, () => {
    const md = f.scaleDtype === "f16" ? Math.f16round : Math.fround;
    const maxInt = 2 ** (f.bits - 1) - 1;
    const G = f.groupSize, E = Math.floor(32 / f.bits);
    let seed = 12345;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const N = 64, K = 50 * G + 7;
    const w = new Float32Array(N * K); // [N, K]: magnitudes over 2^-12 .. 2^4, some exact ties
    for (let i = 0; i < w.length; i++) {
      const v = (rand() - 0.5) * 2 ** (Math.floor(rand() * 16) - 12);
      w[i] = i % 11 === 0 ? Math.round(v * 64) / 128 : v;
    }
    const [qw, qs] = quantizeGroup(f, w, N, K);
    const groups = Math.ceil(K / G), wordsPerRow = (groups * G) / E;
    const words = new Uint32Array(qw.data.slice().buffer);
    const scales = f.scaleDtype === "f16"
      ? new Float16Array(qs.data.slice().buffer)
      : new Float32Array(qs.data.slice().buffer);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < K; k++) {
        const g = Math.floor(k / G);
        let maxAbs = 0;
        for (let j = g * G; j < Math.min(g * G + G, K); j++) {
          maxAbs = Math.max(maxAbs, Math.abs(md(w[n * K + j])));
        }
        const scale = md(maxAbs / maxInt);
        if (scales[n * groups + g] !== scale) throw new Error(`[${n}, group ${g}] scale`);
        const word = words[n * wordsPerRow + Math.floor(k / E)];
        const q = Math.floor(word / 2 ** ((k % E) * f.bits)) % 2 ** f.bits;
        const want = mlcQ(md(w[n * K + k]), scale, maxInt, md);
        if (q !== want) throw new Error(`[${n}, ${k}] w ${w[n * K + k]}: q ${q} != ${want}`);
      }
    }
  });
}
