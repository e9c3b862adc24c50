/**
 * Rows between row-major and the contract's unit-major layout (`unitMajorIndex`), for the CPU
 * kernels that read or write it.
 * @module
 */
import { unitMajorChunk, unitMajorIndex } from "../contract.ts";

/**
 * The permutation of a unit-major row of W elements (or, `chunks`, of its W / 4 sums of 4),
 * made once per kernel: `to` puts R rows of `a` into unit-major order (a writer's output),
 * `from` back into row-major order (a reader's input). Each writes into `dst` (a new array if
 * absent; not `a`) and returns it.
 */
export function unitMajorRows(W: number, chunks = false): {
  to(a: Float32Array, R: number, dst?: Float32Array): Float32Array;
  from(a: Float32Array, R: number, dst?: Float32Array): Float32Array;
} {
  const n = chunks ? W / 4 : W;
  const at = chunks ? unitMajorChunk : unitMajorIndex;
  const pos = Int32Array.from({ length: n }, (_, i) => at(i, W));
  const move = (to: boolean) => (a: Float32Array, R: number, dst = new Float32Array(R * n)) => {
    for (let r = 0; r < R; r++) {
      const o = r * n;
      for (let i = 0; i < n; i++) {
        if (to) dst[o + pos[i]] = a[o + i];
        else dst[o + i] = a[o + pos[i]];
      }
    }
    return dst;
  };
  return { to: move(true), from: move(false) };
}

/** The rows a `normOut` kernel writes for row r of out [*, N] (norm weights w [N]): out_w =
 * out * w and ssq, the sums of squares of out in chunks of 4, at their unit-major places
 * (`unitMajorIndex`, `unitMajorChunk`) when `units`. */
export function writeNormOut(
  out: Float32Array,
  r: number,
  N: number,
  w: ArrayLike<number>,
  outW: Float32Array,
  ssq: Float32Array,
  units: boolean,
): void {
  const C = Math.ceil(N / 4);
  for (let j = 0; j < C; j++) {
    let s = 0;
    for (let c = 4 * j; c < Math.min(4 * j + 4, N); c++) {
      const v = out[r * N + c];
      outW[r * N + (units ? unitMajorIndex(c, N) : c)] = v * w[c];
      s += v * v;
    }
    ssq[r * C + (units ? unitMajorChunk(j, N) : j)] = s;
  }
}
