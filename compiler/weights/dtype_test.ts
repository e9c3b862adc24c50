import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./dtype.ts";

// Independent references: decode a half / bf16 bit pattern from the IEEE formula in float64.
function refDecodeF16(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man === 0 ? sign * Infinity : NaN;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

// Nearest-even rounding to half by exhaustive search over the ordered positive patterns.
function refEncodeF16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00; // halfway between 65504 and 2^16 rounds to Inf
  let lo = 0, hi = 0x7bff;
  while (lo < hi) { // largest pattern with value <= a
    const mid = (lo + hi + 1) >> 1;
    if (refDecodeF16(mid) <= a) lo = mid;
    else hi = mid - 1;
  }
  const below = refDecodeF16(lo);
  if (below === a || lo === 0x7bff) return sign | lo;
  const above = refDecodeF16(lo + 1);
  const dBelow = a - below, dAbove = above - a;
  if (dBelow < dAbove) return sign | lo;
  if (dAbove < dBelow) return sign | (lo + 1);
  return sign | (lo % 2 === 0 ? lo : lo + 1);
}

Deno.test("f32ToF16() matches known-answer vectors", () => {
  const cases: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [65519, 0x7bff],
    [65520, 0x7c00],
    [2 ** -24, 0x0001],
    [2 ** -25, 0x0000], // tie → even (zero)
    [3 * 2 ** -25, 0x0002], // tie → even
    [1 + 2 ** -11, 0x3c00], // tie → even
    [1 + 3 * 2 ** -11, 0x3c02], // tie → even
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
  ];
  const out = f32ToF16(new Float32Array(cases.map((c) => c[0])));
  assertEquals([...out], cases.map((c) => c[1]));
  const nan = f32ToF16(new Float32Array([NaN]))[0];
  assertEquals((nan & 0x7c00) === 0x7c00 && (nan & 0x3ff) !== 0, true);
});

Deno.test("f32ToF16() agrees with a float64 nearest-even reference on random values", () => {
  let s = 12345;
  const rnd = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const xs = new Float32Array(20000);
  for (let i = 0; i < xs.length; i++) xs[i] = (rnd() - 0.5) * 2 ** (Math.floor(rnd() * 44) - 28);
  const got = f32ToF16(xs);
  for (let i = 0; i < xs.length; i++) assertEquals(got[i], refEncodeF16(xs[i]), `x=${xs[i]}`);
});

Deno.test("f16ToF32() decodes all 65536 patterns like the IEEE formula", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const got = f16ToF32(all);
  for (let i = 0; i < 65536; i++) {
    const want = refDecodeF16(i);
    if (Number.isNaN(want)) assertEquals(Number.isNaN(got[i]), true);
    else assertEquals(Object.is(got[i], want) || got[i] === want, true, `pattern ${i}`);
  }
  // Round trip: every non-NaN pattern survives f16 → f32 → f16.
  const back = f32ToF16(got);
  for (let i = 0; i < 65536; i++) if (!Number.isNaN(got[i])) assertEquals(back[i], i);
});

Deno.test("f32ToBf16() rounds to nearest even and bf16ToF32() decodes exactly", () => {
  const cases: [number, number][] = [
    [1, 0x3f80],
    [-1, 0xbf80],
    [1 + 2 ** -8, 0x3f80], // tie → even (down)
    [1 + 3 * 2 ** -8, 0x3f82], // tie → even (up)
    [1 + 2 ** -8 + 2 ** -20, 0x3f81], // just above the tie → up
    [3.4028234663852886e38, 0x7f80], // max f32 rounds to Inf
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
    [0, 0],
  ];
  assertEquals([...f32ToBf16(new Float32Array(cases.map((c) => c[0])))], cases.map((c) => c[1]));
  const nan = f32ToBf16(new Float32Array([NaN]))[0];
  assertEquals((nan & 0x7f80) === 0x7f80 && (nan & 0x7f) !== 0, true);
  // A NaN whose payload sits only in the low 16 bits must not become Inf.
  const lowNan = new Float32Array(new Uint32Array([0x7f800001]).buffer);
  assertEquals(Number.isNaN(bf16ToF32(f32ToBf16(lowNan))[0]), true);
  // Decoding: compare with the IEEE formula for all 65536 patterns.
  const all = new Uint16Array(65536).map((_, i) => i);
  const got = bf16ToF32(all);
  for (let i = 0; i < 65536; i++) {
    const sign = i & 0x8000 ? -1 : 1, exp = (i >> 7) & 0xff, man = i & 0x7f;
    const want = exp === 0
      ? sign * man * 2 ** -133
      : exp === 255
      ? (man === 0 ? sign * Infinity : NaN)
      : sign * (1 + man / 128) * 2 ** (exp - 127);
    if (Number.isNaN(want)) assertEquals(Number.isNaN(got[i]), true);
    else assertEquals(got[i], want, `pattern ${i}`);
  }
});

Deno.test("f32ToBf16() result is the nearer neighbour on random values", () => {
  let s = 777;
  const rnd = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const xs = new Float32Array(5000).map(() => (rnd() - 0.5) * 1e6);
  const got = bf16ToF32(f32ToBf16(xs));
  for (let i = 0; i < xs.length; i++) {
    const bits = new Uint32Array(new Float32Array([xs[i]]).buffer)[0];
    const down = new Float32Array(new Uint32Array([bits & 0xffff0000]).buffer)[0];
    const up = new Float32Array(new Uint32Array([(bits & 0xffff0000) + 0x10000]).buffer)[0];
    const dd = Math.abs(xs[i] - down), du = Math.abs(up - xs[i]);
    const want = dd < du ? down : du < dd ? up : ((bits >>> 16) & 1) === 0 ? down : up;
    assertEquals(got[i], want);
  }
});
