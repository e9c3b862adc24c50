import { ok } from "node:assert/strict";
import { applyRope, ropeInvFreq } from "./rope_f64.ts";

const close = (a: number, b: number, rel = 1e-14) =>
  ok(Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b)), `${a} vs ${b}`);

Deno.test("ropeInvFreq() applies llama3 scaling in all three bands", () => {
  // Llama 3.2 settings at head_dim 64. Expected values worked out from the published formula with
  // 30-digit arithmetic (mpmath): wavelength 2π/f against 8192/1 and 8192/4.
  const inv = ropeInvFreq(64, 500000, {
    type: "llama3",
    factor: 32,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  });
  const want: [number, number][] = [
    [0, 1.0], // wavelength < 2048: kept
    [14, 0.0032114459947525910185], // kept
    [15, 0.0012905479282092638184], // between: smooth = 0.5928493
    [16, 0.00042955679655936820054], // smooth = 0.28128261
    [17, 0.000097082878026276722608], // smooth = 0.074526564
    [18, 0.000019461638184831124361], // wavelength > 8192: divided by 32
    [31, 9.4183067254349098399e-8],
  ];
  for (const [i, v] of want) close(inv[i], v, 1e-13);
});

Deno.test("ropeInvFreq() without scaling is theta^(-2i/D), linear divides by the factor", () => {
  const plain = ropeInvFreq(8, 10000, { type: "default" });
  [1, 0.1, 0.01, 0.001].forEach((v, i) => close(plain[i], v, 1e-15));
  const lin = ropeInvFreq(8, 10000, { type: "linear", factor: 4 });
  [0.25, 0.025, 0.0025, 0.00025].forEach((v, i) => close(lin[i], v, 1e-15));
});

Deno.test("applyRope() rotates pair (i, i + D/2) by pos * inv_freq[i]", () => {
  const inv = new Float64Array([1, 0.5]); // D = 4
  const x = new Float64Array([1, 2, 3, 4, /* head 2 */ 1, 0, 0, 0]); // [2 heads, 4]
  applyRope(x, 2, 3, inv);
  // Pair (0, 2) by angle 3, pair (1, 3) by angle 1.5, per head.
  close(x[0], 1 * Math.cos(3) - 3 * Math.sin(3));
  close(x[2], 3 * Math.cos(3) + 1 * Math.sin(3));
  close(x[1], 2 * Math.cos(1.5) - 4 * Math.sin(1.5));
  close(x[3], 4 * Math.cos(1.5) + 2 * Math.sin(1.5));
  close(x[4], Math.cos(3));
  close(x[6], Math.sin(3));
  ok(x[5] === 0 && x[7] === 0);
  // Position 0 is the identity.
  const y = new Float64Array([1, 2, 3, 4]);
  applyRope(y, 1, 0, inv);
  ok(y.join() === "1,2,3,4");
});

Deno.test("applyRope() makes q·k depend only on the position difference", () => {
  const inv = ropeInvFreq(8, 10000, { type: "default" });
  const q0 = new Float64Array([0.3, -1, 2, 0.5, 1, 1, -0.2, 0.7]);
  const k0 = new Float64Array([1, 0.4, -0.6, 2, 0.1, -1, 0.5, 0.9]);
  const dot = (pq: number, pk: number) => {
    const q = q0.slice(), k = k0.slice();
    applyRope(q, 1, pq, inv);
    applyRope(k, 1, pk, inv);
    return q.reduce((s, v, i) => s + v * k[i], 0);
  };
  close(dot(7, 3), dot(104, 100), 1e-12);
  close(dot(5, 5), q0.reduce((s, v, i) => s + v * k0[i], 0), 1e-12);
});
