/**
 * CPU kernel of `logits_process`: penalties, logit bias and the top-k mask (see contract.ts).
 * @module
 */
import type { CpuKernel, KernelSpec } from "../contract.ts";

export function logitsProcessKernel(
  spec: Extract<KernelSpec, { op: "logits_process" }>,
): CpuKernel {
  const V = spec.vocab;
  return (buffers, rows) => {
    const x = new Float32Array(buffers[0]); // [R, V]
    const indptr = new Uint32Array(buffers[1]); // [R + 1]
    const words = new Uint32Array(buffers[2]); // [E * 4]
    const floats = new Float32Array(buffers[2]); // same words as f32
    const params = new Float32Array(buffers[3]); // [R, 4]
    const out = new Float32Array(buffers[4]); // [R, V]
    for (let r = 0; r < rows; r++) {
      const base = r * V;
      out.set(x.subarray(base, base + V), base);
      const [presence, frequency, repetition, topK] = params.subarray(r * 4, r * 4 + 4);
      for (let e = indptr[r]; e < indptr[r + 1]; e++) {
        const t = words[e * 4],
          count = floats[e * 4 + 1],
          inPrompt = words[e * 4 + 2],
          bias = floats[e * 4 + 3];
        let l = Math.fround(x[base + t] + bias);
        if (count > 0 || inPrompt !== 0) l = l > 0 ? l / repetition : l * repetition;
        l -= presence * (count > 0 ? 1 : 0) + frequency * count;
        out[base + t] = l;
      }
      const k = Math.floor(topK);
      if (k >= 1 && k < V) {
        const row = out.subarray(base, base + V);
        const kth = Float32Array.from(row).sort()[V - k]; // ascending: the k-th largest
        for (let c = 0; c < V; c++) if (row[c] < kth) row[c] = -Infinity;
      }
    }
  };
}
