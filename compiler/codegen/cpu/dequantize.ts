/**
 * CPU full dequantisation (the O0 path): out f32 [N, K] from a stored weight.
 * @module
 */
import type { CpuKernel, KernelSpec } from "../contract.ts";
import { weightRows } from "./weight_rows.ts";

type DequantizeSpec = Extract<KernelSpec, { op: "dequantize" }>;

/** The CPU kernel of a `dequantize` spec. Bindings: weight (1 or 2 buffers), out. `R` is unused. */
export function dequantizeKernel(spec: DequantizeSpec): CpuKernel {
  const { N, K } = spec;
  const dec = weightRows(spec.weight, K);
  const scratch = new Float32Array(dec.stride); // [stride]
  return (bufs) => {
    const decode = dec.bind(bufs.slice(0, dec.buffers));
    const out = new Float32Array(bufs[dec.buffers]); // [N, K]
    for (let n = 0; n < N; n++) {
      decode(n, scratch, 0);
      out.set(scratch.subarray(0, K), n * K);
    }
  };
}
