import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { denseVector, halfTable } from "./half.ts";

Deno.test("halfTable() decodes known half patterns", () => {
  const t = halfTable();
  const known: [number, number][] = [
    [0x0000, 0],
    [0x3c00, 1],
    [0xc000, -2],
    [0x3555, 0.333251953125],
    [0x7bff, 65504],
    [0x0001, 2 ** -24], // smallest subnormal
    [0x03ff, 1023 * 2 ** -24], // largest subnormal
    [0x0400, 2 ** -14], // smallest normal
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ];
  for (const [h, v] of known) assertEquals(t[h], v, `pattern 0x${h.toString(16)}`);
  assertEquals(Number.isNaN(t[0x7e00]), true);
  assertEquals(Object.is(t[0x8000], -0), true);
});

Deno.test("halfTable() agrees with the runtime's Float16Array on all 65536 patterns", () => {
  const t = halfTable();
  const all = new Uint16Array(65536).map((_, i) => i);
  const rt = new Float16Array(all.buffer);
  for (let h = 0; h < 65536; h++) {
    if (!Object.is(t[h], rt[h]) && !(Number.isNaN(t[h]) && Number.isNaN(rt[h]))) {
      throw new Error(`pattern 0x${h.toString(16)}: table ${t[h]}, Float16Array ${rt[h]}`);
    }
  }
});

Deno.test("denseVector() reads f16 two per u32 word, low half first", () => {
  const words = new Uint32Array([0xc0003c00, 0x00003555]); // halves: 1, -2, 0.33325..., pad
  assertEquals(Array.from(denseVector(words.buffer, "f16", 3)), [1, -2, 0.333251953125]);
  const f = new Float32Array([1.5, -3]);
  assertEquals(Array.from(denseVector(f.buffer, "f32", 2)), [1.5, -3]);
});
