import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { denseVector, halfBits, halfTable } from "./half.ts";

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

Deno.test("halfBits() rounds f32 to the nearest half, ties to even, as the platform's Float16Array does", () => {
  const ref = new Float16Array(1), bits = new Uint16Array(ref.buffer);
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  const check = (x: number) => {
    f[0] = x;
    ref[0] = f[0];
    const got = halfBits(f[0]);
    if (Number.isNaN(f[0])) {
      if ((got & 0x7c00) !== 0x7c00 || (got & 0x3ff) === 0) throw new Error(`NaN -> ${got}`);
      return;
    }
    if (got !== bits[0]) {
      throw new Error(`${f[0]}: ${got.toString(16)}, expected ${bits[0].toString(16)}`);
    }
  };
  // every f32 whose low 12 bits are one of a few patterns (ties, just above and below them),
  // across every exponent (normals, half subnormals, underflow, overflow), both signs
  for (let hi = 0; hi < 1 << 20; hi += 7) {
    for (const lo of [0, 0x1000, 0x0fff, 0x1001, 0x2000, 0x3000, 0x0001]) {
      u[0] = (hi << 12) | lo;
      check(f[0]);
      u[0] = ((hi << 12) | lo | 0x80000000) >>> 0;
      check(f[0]);
    }
  }
  for (
    const x of [
      0,
      -0,
      1,
      65504,
      65519.99,
      65520,
      1e9,
      -1e9,
      2 ** -24,
      2 ** -25,
      3 * 2 ** -26,
      Infinity,
      -Infinity,
      NaN,
    ]
  ) check(x);
});
