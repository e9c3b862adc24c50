import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  type KernelSpec,
  TOP_P_BUCKETS,
  topPGatherWords,
  topPHistWords,
} from "../../compiler/codegen/contract.ts";
import { reference } from "./reference.ts";

// Known-answer vectors for the float64 reference, worked out by hand from the contract.

const f32 = (...v: number[]) => new Float32Array(v).buffer;
const u32 = (...v: number[]) => new Uint32Array(v).buffer;
const near = (got: ArrayLike<number>, want: number[]) =>
  assertEquals(Array.from(got, (v) => Math.round(v * 1e6) / 1e6), want);

Deno.test("reference() decodes q4 codes low bits first with value (q - 7) * scale", () => {
  // One word 0x76543210 holds codes 0..7 for k = 0..7; scale 0.5; x = 1 → 0.5 * (28 - 56) = -14.
  const spec: KernelSpec = {
    op: "matmul",
    N: 1,
    K: 8,
    rowStart: 0,
    rows: 1,
    bias: null,
    epilogue: "none",
    maxRows: 1,
    weight: { kind: "group", bits: 4, groupSize: 8, scaleDtype: "f32" },
  };
  near(reference(spec, [f32(1, 1, 1, 1, 1, 1, 1, 1), u32(0x76543210), f32(0.5), f32(0)], 1).out, [
    -14,
  ]);
});

Deno.test("reference() decodes q3 codes ten per word with value (q - 3) * scale, scale as f16", () => {
  // Codes k % 8 for k = 0..9 (3 bits each, 30 bits used); scale half 0x4000 = 2 → 2 * (q - 3).
  let word = 0;
  for (let k = 0; k < 10; k++) word += (k % 8) * 8 ** k;
  const spec: KernelSpec = {
    op: "dequantize",
    N: 1,
    K: 10,
    weight: { kind: "group", bits: 3, groupSize: 10, scaleDtype: "f16" },
  };
  const out = reference(spec, [u32(word), u32(0x4000), new ArrayBuffer(40)], 1).out;
  near(out, [-6, -4, -2, 0, 2, 4, 6, 8, -6, -4]);
});

Deno.test("reference() embed reads f16 rows and leaves ids outside the split untouched", () => {
  // Table rows [2, 4) of a vocab of 4, hidden 2: row 2 = (1, -2), row 3 = (0.5, 65504).
  const spec: KernelSpec = {
    op: "embed",
    vocab: 4,
    hidden: 2,
    rowStart: 2,
    rows: 2,
    weight: { kind: "dense", dtype: "f16" },
  };
  const table = u32(0xc0003c00, 0x7bff3800);
  near(reference(spec, [u32(3, 0, 2), table, f32(9, 9, 9, 9, 9, 9)], 3).out, [
    0.5,
    65504,
    9,
    9,
    1,
    -2,
  ]);
});

Deno.test("reference() rope turns pair (i, i + D/2) by position * invFreq", () => {
  // D = 2, one q head, one kv head: q = (1, 0) at angle pi/2 → (0, 1); k = (0, 1) → (-1, 0); v kept.
  const spec: KernelSpec = { op: "rope", heads: 1, kvHeads: 1, headDim: 2, invFreq: [Math.PI / 2] };
  near(reference(spec, [f32(1, 0, 0, 1, 5, 6), u32(1), new ArrayBuffer(24)], 1).out, [
    0,
    1,
    -1,
    0,
    5,
    6,
  ]);
});

Deno.test("reference() attention at position 0 returns v; the page table picks the page", () => {
  // 2 pages, kvHeads 1, D 1: sequence 0 lives in page 1, whose K slot 0 = 3 and V slot 0 = 7.
  const cache = new Float32Array(2 * 2 * 16); // [pages, 2, 1, 16, 1]
  cache[1 * 32 + 0] = 3, cache[1 * 32 + 16] = 7, cache[0 * 32 + 16] = -1;
  const spec: KernelSpec = {
    op: "attention",
    heads: 1,
    kvHeads: 1,
    headDim: 1,
    qStride: 1,
    window: 0,
    scale: 1,
  };
  near(reference(spec, [f32(2), u32(0), u32(0), u32(0, 1), u32(1), cache.buffer, f32(0)], 1).out, [
    7,
  ]);
});

Deno.test("reference() argmax and greedy softmax take the lowest index of a tie", () => {
  near(reference({ op: "argmax", vocab: 3 }, [f32(1, 3, 3), u32(9)], 1).out, [1]);
  near(reference({ op: "softmax_temp", vocab: 3 }, [f32(1, 3, 3), f32(0), f32(0, 0, 0)], 1).out, [
    0,
    1,
    0,
  ]);
  const soft =
    reference({ op: "softmax_temp", vocab: 2 }, [f32(0, Math.log(3)), f32(1), f32(0, 0)], 1).out;
  near(soft, [0.25, 0.75]);
});

Deno.test("reference() sample_top_p keeps the smallest nucleus and walks it in index order", () => {
  // probs (0.1, 0.3, 0.2, 0.4), top_p 0.6 → keep tokens 3 (0.4) and 1 (0.3), mass 0.7, walked
  // as 1 then 3. u = 0.3 → threshold 0.21 → token 1 (descending order would give 3);
  // u = 0.5 → 0.35 → token 3.
  const probs = f32(0.1, 0.3, 0.2, 0.4, 0.1, 0.3, 0.2, 0.4);
  const spec: KernelSpec = { op: "sample_top_p", vocab: 4 };
  const gathered = new ArrayBuffer(2 * topPGatherWords(4) * 4); // (not read)
  const mass = new ArrayBuffer(2 * 4); // (not read)
  assertEquals(
    Array.from(
      reference(spec, [probs, f32(0.6, 0.6), f32(0.3, 0.5), gathered, mass, u32(0, 0)], 2).out,
    ),
    [1, 3],
  );
});

Deno.test("reference() top_p_gather gathers the bucket where the mass from the top reaches top_p", () => {
  // probs (0.1, 0.3, 0.2, 0.4): from the top, 0.4 then 0.3 reach 0.6, and 0.3 (1.2 * 2^-2) has
  // a bucket of its own: B = its bucket, candidate index 1, the mass above it 0.4. top_p 1:
  // every token (B = 0xfffffffe), the slice's mass 1.
  const probs = f32(0.1, 0.3, 0.2, 0.4, 0.1, 0.3, 0.2, 0.4);
  const tp = f32(0.6, 1);
  const hist = reference({ op: "top_p_hist", vocab: 4 }, [
    probs,
    tp,
    new ArrayBuffer(2 * topPHistWords(4) * 4),
  ], 2).out as Uint32Array;
  const b3 = (new Uint32Array(f32(0.3))[0] >>> 20) - (1024 - (TOP_P_BUCKETS - 1));
  const words = topPGatherWords(4); // 1 + 1 slice + 4
  const ref = reference({ op: "top_p_gather", vocab: 4 }, [
    probs,
    tp,
    hist.buffer as ArrayBuffer,
    new ArrayBuffer(2 * words * 4),
    new ArrayBuffer(2 * 4),
  ], 2);
  assertEquals(Array.from(ref.out.subarray(0, 3)), [b3, 1, 1]);
  assertEquals(Array.from(ref.out.subarray(words, words + 2)), [0xfffffffe, 0]);
  near(ref.mass, [0.4, 1]);
});
