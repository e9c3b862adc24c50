/**
 * Rows between row-major and the contract's unit-major layout (`unitMajorIndex`), for the CPU
 * kernels that read or write it.
 * @module
 */
import { unitMajorChunk, unitMajorIndex } from "../contract.ts";

/**
 * R rows of `a` in the other order: `to` unit-major (a writer's output) or from it (a reader's
 * input). A row holds the W elements of a unit-major row, or (`chunks`) its W / 4 sums of 4.
 * Writes into `dst` (a new array if absent; not `a`) and returns it.
 */
export function unitMajorRows(
  a: Float32Array,
  R: number,
  W: number,
  opts: { to: boolean; chunks?: boolean; dst?: Float32Array },
): Float32Array {
  const n = opts.chunks ? W / 4 : W;
  const at = opts.chunks ? unitMajorChunk : unitMajorIndex;
  const pos = Array.from({ length: n }, (_, i) => at(i, W));
  const dst = opts.dst ?? new Float32Array(R * n);
  for (let r = 0; r < R; r++) {
    const o = r * n;
    for (let i = 0; i < n; i++) {
      if (opts.to) dst[o + pos[i]] = a[o + i];
      else dst[o + i] = a[o + pos[i]];
    }
  }
  return dst;
}
