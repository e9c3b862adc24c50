/**
 * Row decoding of weight matrices for the CPU kernels (embed, matmul, dequantize): dense f32,
 * dense f16, and MLC group quantisation (`q_weight` u32 [N, wordsPerRow] packed low bits first,
 * `q_scale` [N, groups], value = (q - maxInt) * scale).
 * @module
 */
import { groupLayout, type WeightFormat } from "../contract.ts";
import { halfTable } from "./half.ts";

/** Writes `stride` decoded values of weight row `row` at `dst[off..off+stride)`. */
export type RowDecode = (row: number, dst: Float32Array, off: number) => void;

export interface WeightRows {
  /** Number of weight buffers (1 dense, 2 group). */
  buffers: number;
  /** Values written per row: K for dense, groups * groupSize (K zero-padded) for group. */
  stride: number;
  /** Binds the decoder to this dispatch's weight buffers. */
  bind(bufs: ArrayBuffer[]): RowDecode;
}

/** The row decoder of a [N, K] weight stored in `format`. */
export function weightRows(format: WeightFormat, K: number): WeightRows {
  if (format.kind === "dense") {
    if (format.dtype === "f32") {
      return {
        buffers: 1,
        stride: K,
        bind: (bufs) => {
          const w = new Float32Array(bufs[0]); // [N, K]
          return (row, dst, off) => dst.set(w.subarray(row * K, row * K + K), off);
        },
      };
    }
    const t = halfTable();
    return {
      buffers: 1,
      stride: K,
      bind: (bufs) => {
        const w = new Uint16Array(bufs[0]); // [N, K] halves
        return (row, dst, off) => {
          const base = row * K;
          for (let k = 0; k < K; k++) dst[off + k] = t[w[base + k]];
        };
      },
    };
  }
  const { elemsPerWord: E, groups, wordsPerRow, maxInt } = groupLayout(format, K);
  const G = format.groupSize;
  const bits = format.bits;
  const mask = (1 << bits) - 1;
  const wordsPerGroup = G / E;
  const f16 = format.scaleDtype === "f16";
  const t = halfTable();
  return {
    buffers: 2,
    stride: groups * G,
    bind: (bufs) => {
      const q = new Uint32Array(bufs[0]); // [N, wordsPerRow]
      const s32 = f16 ? null : new Float32Array(bufs[1]); // [N, groups]
      const s16 = f16 ? new Uint16Array(bufs[1]) : null; // [N, groups] halves
      return (row, dst, off) => {
        let word = row * wordsPerRow;
        let o = off;
        for (let g = 0; g < groups; g++) {
          const si = row * groups + g;
          const scale = s16 ? t[s16[si]] : s32![si];
          for (let j = 0; j < wordsPerGroup; j++, word++) {
            const w = q[word];
            for (let e = 0; e < E; e++) dst[o++] = (((w >>> (e * bits)) & mask) - maxInt) * scale;
          }
        }
      };
    },
  };
}
