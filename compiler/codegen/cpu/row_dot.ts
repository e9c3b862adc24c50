/**
 * Fused decode-and-dot of weight rows with one activation row, for the decode-shaped (R = 1)
 * matmul: no decoded row is materialised, and four weight rows are walked together (four
 * independent accumulators). For group-quantised weights the dot of a group is taken on the
 * raw codes and the zero point is folded out with the group's sum of x:
 * sum_k (q_k - maxInt) * s * x_k = s * (sum_k q_k x_k - maxInt * sum_k x_k).
 * @module
 */
import { groupLayout, type WeightFormat } from "../contract.ts";
import { halfTable } from "./half.ts";

/** `dots(row0, n, out)`: out[t] = W[row0 + t] · x for t < n <= 4, after `prepare(x, xo)`. */
export interface RowDot {
  prepare(x: Float32Array, xo: number): void;
  dots(row0: number, n: number, out: Float64Array): void;
}

/** Binds a fused row dot for a [N, K] weight in `format` to this dispatch's weight buffers. */
export function rowDot(format: WeightFormat, K: number, bufs: ArrayBuffer[]): RowDot {
  if (format.kind === "dense") return denseDot(format.dtype, K, bufs[0]);
  const { elemsPerWord: E, groups, wordsPerRow, maxInt } = groupLayout(format, K);
  const G = format.groupSize, bits = format.bits, mask = (1 << bits) - 1;
  const q = new Uint32Array(bufs[0]); // [N, wordsPerRow]
  const s32 = format.scaleDtype === "f32" ? new Float32Array(bufs[1]) : null; // [N, groups]
  const s16 = format.scaleDtype === "f16" ? new Uint16Array(bufs[1]) : null; // [N, groups]
  const t = halfTable();
  const scale = (i: number) => (s16 ? t[s16[i]] : s32![i]);
  const xp = new Float32Array(groups * G); // [groups * G] x, zero past K
  const xsum = new Float64Array(groups); // [groups]
  return {
    prepare(x, xo) {
      xp.fill(0);
      xp.set(x.subarray(xo, xo + K));
      for (let g = 0; g < groups; g++) {
        let s = 0;
        for (let k = g * G; k < (g + 1) * G; k++) s += xp[k];
        xsum[g] = s;
      }
    },
    dots(row0, n, out) {
      const r1 = row0 + Math.min(1, n - 1),
        r2 = row0 + Math.min(2, n - 1),
        r3 = row0 + Math.min(3, n - 1);
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      let w0 = row0 * wordsPerRow,
        w1 = r1 * wordsPerRow,
        w2 = r2 * wordsPerRow,
        w3 = r3 * wordsPerRow;
      let k = 0;
      for (let g = 0; g < groups; g++) {
        let g0 = 0, g1 = 0, g2 = 0, g3 = 0;
        for (const end = k + G; k < end;) {
          const q0 = q[w0++], q1 = q[w1++], q2 = q[w2++], q3 = q[w3++];
          for (let sh = 0; sh < E * bits; sh += bits, k++) {
            const xv = xp[k];
            g0 += ((q0 >>> sh) & mask) * xv;
            g1 += ((q1 >>> sh) & mask) * xv;
            g2 += ((q2 >>> sh) & mask) * xv;
            g3 += ((q3 >>> sh) & mask) * xv;
          }
        }
        const z = maxInt * xsum[g];
        a0 += scale(row0 * groups + g) * (g0 - z);
        a1 += scale(r1 * groups + g) * (g1 - z);
        a2 += scale(r2 * groups + g) * (g2 - z);
        a3 += scale(r3 * groups + g) * (g3 - z);
      }
      out[0] = a0, out[1] = a1, out[2] = a2, out[3] = a3;
    },
  };
}

function denseDot(dtype: "f32" | "f16", K: number, buf: ArrayBuffer): RowDot {
  const f = dtype === "f32" ? new Float32Array(buf) : null; // [N, K]
  const h = dtype === "f16" ? new Uint16Array(buf) : null; // [N, K] halves
  const t = halfTable();
  let x = new Float32Array(0) as Float32Array; // [*, K]
  let xo = 0;
  return {
    prepare(xs, o) {
      x = xs, xo = o;
    },
    dots(row0, n, out) {
      const b0 = row0 * K;
      const b1 = (row0 + Math.min(1, n - 1)) * K;
      const b2 = (row0 + Math.min(2, n - 1)) * K;
      const b3 = (row0 + Math.min(3, n - 1)) * K;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      if (f) {
        for (let k = 0; k < K; k++) {
          const xv = x[xo + k];
          s0 += xv * f[b0 + k], s1 += xv * f[b1 + k], s2 += xv * f[b2 + k], s3 += xv * f[b3 + k];
        }
      } else {
        for (let k = 0; k < K; k++) {
          const xv = x[xo + k];
          s0 += xv * t[h![b0 + k]], s1 += xv * t[h![b1 + k]];
          s2 += xv * t[h![b2 + k]], s3 += xv * t[h![b3 + k]];
        }
      }
      out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
    },
  };
}
