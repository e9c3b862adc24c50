import { buf, dense, device, expectClose, Rng, runKernel } from "./test_helpers.ts";

const ignore = !device;

/** float64 rms_norm of row r of x [R, H]. */
function rmsRef(x: ArrayLike<number>, w: ArrayLike<number>, R: number, H: number, eps: number) {
  const out = new Float64Array(R * H); // [R, H]
  for (let r = 0; r < R; r++) {
    let ss = 0;
    for (let c = 0; c < H; c++) ss += x[r * H + c] ** 2;
    const inv = 1 / Math.sqrt(ss / H + eps);
    for (let c = 0; c < H; c++) out[r * H + c] = x[r * H + c] * inv * w[c];
  }
  return out;
}

Deno.test({
  name: "normKernel() rms_norm matches a float64 reference (f32 and f16 weights)",
  ignore,
  fn: async () => {
    const rng = new Rng(3);
    for (const [R, H, dt] of [[1, 33, "f16"], [3, 300, "f32"], [2, 1000, "f16"]] as const) {
      const x = rng.normals(R * H, 2); // [R, H]
      const w = dense(rng.normals(H), dt); // [H]
      const spec = { op: "rms_norm", hidden: H, eps: 1e-5, weightDtype: dt } as const;
      const [, , out] = await runKernel(spec, R, [buf(x), w.data, new ArrayBuffer(R * H * 4)]);
      expectClose(new Float32Array(out), rmsRef(x, w.values, R, H, 1e-5), 1e-5, `R=${R} H=${H}`);
    }
  },
});

Deno.test({
  name: "normKernel() add_rms_norm writes the sum and its norm",
  ignore,
  fn: async () => {
    const rng = new Rng(4);
    for (const [R, H, dt] of [[1, 17, "f32"], [5, 260, "f16"]] as const) {
      const a = rng.normals(R * H), b = rng.normals(R * H); // [R, H]
      const w = dense(rng.normals(H), dt); // [H]
      const sum = Float64Array.from(a, (v, i) => v + b[i]); // [R, H]
      const spec = { op: "add_rms_norm", hidden: H, eps: 1e-6, weightDtype: dt } as const;
      const outs = await runKernel(spec, R, [
        buf(a),
        buf(b),
        w.data,
        new ArrayBuffer(R * H * 4),
        new ArrayBuffer(R * H * 4),
      ]);
      expectClose(new Float32Array(outs[3]), sum, 1e-6, `sum R=${R} H=${H}`);
      expectClose(new Float32Array(outs[4]), rmsRef(sum, w.values, R, H, 1e-6), 1e-5, `out R=${R}`);
    }
  },
});
