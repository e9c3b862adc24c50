/**
 * CPU embedding lookup: out[r, :] = table[ids[r] - rowStart, :] for ids in
 * [rowStart, rowStart + rows); rows of other ids are left untouched (a split table).
 * @module
 */
import type { CpuKernel, KernelSpec } from "../contract.ts";
import { weightRows } from "./weight_rows.ts";

type EmbedSpec = Extract<KernelSpec, { op: "embed" }>;

/** The CPU kernel of an `embed` spec. Bindings: ids, weight (1 or 2 buffers), out. */
export function embedKernel(spec: EmbedSpec): CpuKernel {
  const { hidden: H, rowStart, rows } = spec;
  const dec = weightRows(spec.weight, H);
  const scratch = new Float32Array(dec.stride); // [stride] one decoded table row
  return (bufs, R) => {
    const ids = new Uint32Array(bufs[0]); // [R]
    const decode = dec.bind(bufs.slice(1, 1 + dec.buffers));
    const out = new Float32Array(bufs[1 + dec.buffers]); // [R, H]
    for (let r = 0; r < R; r++) {
      const local = ids[r] - rowStart;
      if (local < 0 || local >= rows) continue;
      decode(local, scratch, 0);
      out.set(scratch.subarray(0, H), r * H);
    }
  };
}
