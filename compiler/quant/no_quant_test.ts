import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { WeightError } from "../errors.ts";
import { denseShapes, dequantizeDense, quantizeDense } from "./no_quant.ts";

Deno.test("quantizeDense() rounds to f16 to nearest even", () => {
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10 → even → 1 (0x3C00);
  // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9 → even → 0x3C02; 1e-8 → 0.
  const w = Float32Array.from([1 + 2 ** -11, 1 + 3 * 2 ** -11, 1e-8, -65520]); // [1, 4]
  const [t] = quantizeDense({ kind: "dense", dtype: "f16" }, w, 1, 4);
  assertEquals(Array.from(new Uint16Array(t.data.slice().buffer)), [0x3C00, 0x3C02, 0, 0xFC00]);
});

Deno.test("quantizeDense() f32 copies the input", () => {
  const w = Float32Array.from([1, 2, 3, 4]);
  const [t] = quantizeDense({ kind: "dense", dtype: "f32" }, w, 2, 2);
  w[0] = 9;
  assertEquals(Array.from(new Float32Array(t.data.slice().buffer)), [1, 2, 3, 4]);
});

Deno.test("dequantizeDense() refuses a missing or mismatched weight", () => {
  const f = { kind: "dense", dtype: "f16" } as const;
  const [t] = quantizeDense(f, new Float32Array(6), 2, 3);
  assertEquals(denseShapes(f, 2, 3), [{ suffix: "weight", dtype: "float16", shape: [2, 3] }]);
  assertThrows(() => dequantizeDense(f, [], 2, 3), WeightError);
  assertThrows(() => dequantizeDense(f, [t], 3, 2), WeightError);
  assertThrows(() => dequantizeDense({ kind: "dense", dtype: "f32" }, [t], 2, 3), WeightError);
  assertThrows(() => dequantizeDense(f, [{ ...t, data: t.data.subarray(2) }], 2, 3), WeightError);
  // An unaligned view still reads correctly.
  const bytes = new Uint8Array(13);
  bytes.set(quantizeDense(f, Float32Array.from([1, -2, 0.5, 3, 4, 5]), 2, 3)[0].data, 1);
  const back = dequantizeDense(f, [{ ...t, data: bytes.subarray(1) }], 2, 3);
  assertEquals(Array.from(back), [1, -2, 0.5, 3, 4, 5]);
});
