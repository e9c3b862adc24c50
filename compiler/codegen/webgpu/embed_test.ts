import type { WeightFormat } from "../contract.ts";
import { buf, device, expectClose, randomWeight, Rng, runKernel } from "./test_helpers.ts";

const ignore = !device;

Deno.test({
  name: "embedKernel() gathers its slice of table rows and leaves other rows untouched",
  ignore,
  fn: async () => {
    const rng = new Rng(5);
    const formats: WeightFormat[] = [
      { kind: "dense", dtype: "f32" },
      { kind: "dense", dtype: "f16" },
      { kind: "group", bits: 4, groupSize: 32, scaleDtype: "f16" },
      { kind: "group", bits: 3, groupSize: 40, scaleDtype: "f32" },
    ];
    for (const weight of formats) {
      const vocab = 50, H = 70, rowStart = 20, rows = 25, R = 9;
      const table = randomWeight(rng, weight, rows, H); // [rows, H]
      const ids = Uint32Array.from({ length: R }, () => rng.int(vocab)); // [R]
      ids[0] = rowStart, ids[1] = rowStart + rows - 1, ids[2] = rowStart + rows; // edges
      const start = rng.normals(R * H); // [R, H]
      const ref = Float64Array.from(start); // [R, H]
      for (let r = 0; r < R; r++) {
        const row = ids[r] - rowStart;
        if (row < 0 || row >= rows) continue;
        for (let c = 0; c < H; c++) ref[r * H + c] = table.values[row * H + c];
      }
      const spec = { op: "embed", vocab, hidden: H, rowStart, rows, weight } as const;
      const outs = await runKernel(spec, R, [buf(ids), ...table.buffers, buf(start)]);
      expectClose(new Float32Array(outs.at(-1)!), ref, 1e-7, `embed ${JSON.stringify(weight)}`);
    }
  },
});
