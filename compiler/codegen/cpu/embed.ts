/**
 * CPU embedding lookup: out[r, :] = table[ids[r] - rowStart, :] for ids in
 * [rowStart, rowStart + rows); rows of other ids are left untouched (a split table). With
 * `normOut`, those rows' out_w and out_ssq too (the first layer's folded RMSNorm).
 * @module
 */
import { type CpuKernel, type KernelSpec, unitLayoutError } from "../contract.ts";
import { denseVector } from "./half.ts";
import { writeNormOut } from "./unit_major.ts";
import { weightRows } from "./weight_rows.ts";

type EmbedSpec = Extract<KernelSpec, { op: "embed" }>;

/** The CPU kernel of an `embed` spec. Bindings: ids, weight (1 or 2 buffers), [norm_w], out,
 * [out_w, out_ssq]. */
export function embedKernel(spec: EmbedSpec): CpuKernel {
  const { hidden: H, rowStart, rows } = spec;
  const units = unitLayoutError(spec);
  if (units) throw new RangeError(units);
  const dec = weightRows(spec.weight, H);
  const scratch = new Float32Array(dec.stride); // [stride] one decoded table row
  return (bufs, R) => {
    const ids = new Uint32Array(bufs[0]); // [R]
    const decode = dec.bind(bufs.slice(1, 1 + dec.buffers));
    let b = 1 + dec.buffers;
    const w = spec.normOut ? denseVector(bufs[b++], spec.normOut.weightDtype, H) : null; // [H]
    const out = new Float32Array(bufs[b++]); // [R, H]
    const outW = w ? new Float32Array(bufs[b++]) : null; // [R, H]
    const ssq = w ? new Float32Array(bufs[b++]) : null; // [R, ceil(H / 4)]
    for (let r = 0; r < R; r++) {
      const local = ids[r] - rowStart;
      if (local < 0 || local >= rows) continue;
      decode(local, scratch, 0);
      out.set(scratch.subarray(0, H), r * H);
      if (w) writeNormOut(out, r, H, w, outW!, ssq!, !!spec.outUnits);
    }
  };
}
