import type { WeightFormat } from "../contract.ts";
import { device, expectClose, randomWeight, Rng, runKernel } from "./test_helpers.ts";

const ignore = !device;

Deno.test({
  name: "dequantizeKernel() expands q4 and q3 weights with ragged K to f32 [N, K]",
  ignore,
  fn: async () => {
    const rng = new Rng(6);
    const cases: [WeightFormat, number, number][] = [
      [{ kind: "group", bits: 4, groupSize: 32, scaleDtype: "f16" }, 7, 100],
      [{ kind: "group", bits: 3, groupSize: 40, scaleDtype: "f16" }, 5, 83],
      [{ kind: "group", bits: 4, groupSize: 32, scaleDtype: "f32" }, 3, 64],
    ];
    for (const [weight, N, K] of cases) {
      const w = randomWeight(rng, weight, N, K);
      const spec = { op: "dequantize", N, K, weight } as const;
      const outs = await runKernel(spec, N, [...w.buffers, new ArrayBuffer(N * K * 4)]);
      expectClose(new Float32Array(outs.at(-1)!), w.values, 1e-7, `${weight.kind} N=${N} K=${K}`);
    }
  },
});
