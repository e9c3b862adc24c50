import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import type { WeightFormat } from "../codegen/contract.ts";
import { getQuantization, QUANTIZATIONS } from "./registry.ts";
import { dequantizeWeight, quantizeWeight, storedShapes } from "./weight.ts";
import type { StoredTensor } from "./types.ts";

// Deterministic weights: a mulberry32 stream through Box-Muller, std 0.05, a few outliers.
function randomWeights(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
    out[i] = (i % 37 === 5 ? 8 : 1) * 0.05 * g;
  }
  return out;
}

// Independent unpack: element i of a word is floor(word / 2^(i*bits)) mod 2^bits.
function unpack(t: StoredTensor, bits: number): number[] {
  const per = Math.floor(32 / bits);
  const out: number[] = [];
  for (const word of new Uint32Array(t.data.slice().buffer)) {
    for (let i = 0; i < per; i++) out.push(Math.floor(word / 2 ** (i * bits)) % 2 ** bits);
    if (word >= 2 ** (per * bits)) throw new Error(`word ${word.toString(16)} has high bits set`);
  }
  return out;
}

function scalesOf(t: StoredTensor): number[] {
  const buf = t.data.slice().buffer;
  return Array.from(t.dtype === "float16" ? new Float16Array(buf) : new Float32Array(buf));
}

const GROUP_SCHEMES = ["q4f16_1", "q4f32_1", "q3f16_1"];

for (const name of GROUP_SCHEMES) {
  Deno.test(`quantizeWeight() ${name} stays within scale/2 of a float64 reference`, () => {
    const f = getQuantization(name).linear;
    if (f.kind !== "group") throw new Error("expected a group format");
    const md = f.scaleDtype === "f16" ? Math.f16round : Math.fround;
    // Slack over scale/2 from MLC's per-operation rounding in the model dtype (w/scale, + maxInt,
    // (q - maxInt) * scale): at most 2^-9 + 2^-8 + 2^-8 in f16, 2^-21 + 2^-20 + 2^-20 in f32.
    const slack = f.scaleDtype === "f16" ? 2 ** -6 : 2 ** -18;
    const maxInt = 2 ** (f.bits - 1) - 1;
    for (const [N, K] of [[5, 1], [3, 40], [4, 45], [6, 100], [2, 256]]) {
      const w = randomWeights(N * K, N * 1000 + K); // [N, K]
      const parts = quantizeWeight(f, w, N, K);
      const deq = dequantizeWeight(f, parts, N, K); // [N, K]
      const groups = Math.ceil(K / f.groupSize);
      const per = Math.floor(32 / f.bits);
      const wordsPerRow = (groups * f.groupSize) / per;
      const q = unpack(parts[0], f.bits); // [N, wordsPerRow * per]
      const scale = scalesOf(parts[1]); // [N, groups]
      let nearTies = 0;
      for (let n = 0; n < N; n++) {
        for (let g = 0; g < groups; g++) {
          const k0 = g * f.groupSize, k1 = Math.min(k0 + f.groupSize, K);
          let maxAbs = 0;
          for (let k = k0; k < k1; k++) maxAbs = Math.max(maxAbs, Math.abs(md(w[n * K + k])));
          const s = scale[n * groups + g];
          const rel = f.scaleDtype === "f16" ? 2 ** -11 : 2 ** -24;
          if (Math.abs(s - maxAbs / maxInt) > (maxAbs / maxInt) * rel) {
            throw new Error(
              `[${n}, group ${g}] scale ${s} is not max/${maxInt} = ${maxAbs / maxInt}`,
            );
          }
          for (let k = k0; k < k1; k++) {
            const wm = md(w[n * K + k]);
            const qi = q[n * wordsPerRow * per + k];
            const err = Math.abs(wm - deq[n * K + k]);
            if (err > s * (0.5 + slack)) {
              throw new Error(
                `[${n}, ${k}] |${wm} - ${deq[n * K + k]}| > scale ${s} * (1/2 + slack)`,
              );
            }
            if (deq[n * K + k] !== md((qi - maxInt) * s)) throw new Error(`[${n}, ${k}] dequant`);
            // The float64 ideal q; it may differ only at a near-tie of w/scale.
            const x = wm / s;
            const ideal = Math.min(Math.max(Math.round(x) + maxInt, 0), 2 * maxInt);
            if (qi !== ideal) {
              if (Math.abs(Math.abs(x - Math.trunc(x)) - 0.5) > slack) {
                throw new Error(`[${n}, ${k}] q ${qi} vs float64 ${ideal} away from a tie`);
              }
              nearTies++;
            }
          }
          for (let k = k1; k < (g + 1) * f.groupSize; k++) {
            if (q[n * wordsPerRow * per + k] !== 0) throw new Error(`padding [${n}, ${k}] not 0`);
          }
        }
      }
      if (nearTies > (N * K) / 50) throw new Error(`${nearTies} of ${N * K} differ from float64`);
    }
  });
}

Deno.test("quantizeWeight() q0f16 stores IEEE half bits and q0f32 stores the floats", () => {
  const w = Float32Array.from([1, -2, 65504, 1 / 3, 0.1, -0]); // [2, 3]
  const [h] = quantizeWeight({ kind: "dense", dtype: "f16" }, w, 2, 3);
  assertEquals([h.suffix, h.dtype, h.shape], ["weight", "float16", [2, 3]]);
  assertEquals(Array.from(new Uint16Array(h.data.slice().buffer)), [
    0x3C00,
    0xC000,
    0x7BFF,
    0x3555,
    0x2E66,
    0x8000,
  ]);
  const back = dequantizeWeight({ kind: "dense", dtype: "f16" }, [h], 2, 3);
  assertEquals(Array.from(back), [1, -2, 65504, 0.333251953125, 0.0999755859375, -0]);
  const [s] = quantizeWeight({ kind: "dense", dtype: "f32" }, w, 2, 3);
  assertEquals([s.dtype, s.data.byteLength], ["float32", 24]);
  assertEquals(dequantizeWeight({ kind: "dense", dtype: "f32" }, [s], 2, 3), w);
});

Deno.test("storedShapes() matches what quantizeWeight() produces for every scheme", () => {
  const bytes = { float32: 4, float16: 2, uint32: 4 } as const;
  for (const name of QUANTIZATIONS) {
    const q = getQuantization(name);
    for (const f of [q.linear, q.embedding]) {
      for (const [N, K] of [[1, 1], [3, 33], [2, 80], [5, 130]]) {
        const parts = quantizeWeight(f, randomWeights(N * K, K), N, K);
        assertEquals(
          parts.map(({ suffix, dtype, shape }) => ({ suffix, dtype, shape })),
          storedShapes(f, N, K),
        );
        for (const p of parts) {
          assertEquals(p.data.byteLength, p.shape[0] * p.shape[1] * bytes[p.dtype]);
        }
      }
    }
  }
});

Deno.test("quantizeWeight() rejects bad arguments with TypeError / RangeError", () => {
  const f: WeightFormat = { kind: "group", bits: 4, groupSize: 32, scaleDtype: "f16" };
  assertThrows(() => quantizeWeight(f, new Float32Array(4), 0, 4), RangeError);
  assertThrows(() => quantizeWeight(f, new Float32Array(4), 2, 3), RangeError);
  assertThrows(
    () => quantizeWeight(f, new Float64Array(4) as unknown as Float32Array, 1, 4),
    RangeError,
  );
  assertThrows(() => storedShapes({ ...f, groupSize: 33 }, 1, 4), RangeError);
  assertThrows(() => storedShapes({ ...f, bits: 5 } as unknown as WeightFormat, 1, 4), TypeError);
  assertThrows(
    () => storedShapes({ kind: "dense", dtype: "bf16" } as unknown as WeightFormat, 1, 4),
    TypeError,
  );
  assertThrows(
    () => dequantizeWeight({ kind: "other" } as unknown as WeightFormat, [], 1, 4),
    TypeError,
  );
});
