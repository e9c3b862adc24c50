import { buf, device, expectClose, Rng, runKernel } from "./test_helpers.ts";

const ignore = !device;

Deno.test({
  name: "elementwiseKernel() add matches a + b for ragged widths and rows",
  ignore,
  fn: async () => {
    const rng = new Rng(1);
    for (const [R, W] of [[1, 7], [3, 1030], [5, 64]]) {
      const a = rng.normals(R * W), b = rng.normals(R * W); // [R, W]
      const ref = Float64Array.from(a, (v, i) => v + b[i]);
      const [, , out] = await runKernel({ op: "add", width: W }, R, [
        buf(a),
        buf(b),
        new ArrayBuffer(R * W * 4),
      ]);
      expectClose(new Float32Array(out), ref, 1e-6, `add R=${R} W=${W}`);
    }
  },
});

Deno.test({
  name: "elementwiseKernel() silu_mul matches silu(gate) * up",
  ignore,
  fn: async () => {
    const rng = new Rng(2);
    for (const [R, I] of [[1, 5], [4, 300]]) {
      const x = rng.normals(R * 2 * I, 3); // [R, 2I]
      const ref = new Float64Array(R * I); // [R, I]
      for (let r = 0; r < R; r++) {
        for (let i = 0; i < I; i++) {
          const g = x[r * 2 * I + i], u = x[r * 2 * I + I + i];
          ref[r * I + i] = g / (1 + Math.exp(-g)) * u;
        }
      }
      const [, out] = await runKernel({ op: "silu_mul", inter: I }, R, [
        buf(x),
        new ArrayBuffer(R * I * 4),
      ]);
      expectClose(new Float32Array(out), ref, 1e-5, `silu_mul R=${R} I=${I}`);
    }
  },
});
