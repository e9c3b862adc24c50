/**
 * Rotary position embedding in float64, HF conventions: inverse frequencies
 * inv_freq[i] = theta^(-2i/D) for i < D/2 (optionally rescaled, e.g. Llama 3), and rotate_half
 * pairing: element i rotates with element i + D/2.
 * @module
 */

import type { RefRopeScaling } from "./hf_config.ts";

/** Inverse frequencies [headDim/2] after scaling. */
export function ropeInvFreq(
  headDim: number,
  theta: number,
  scaling: RefRopeScaling,
): Float64Array {
  const half = headDim / 2;
  const inv = new Float64Array(half); // [D/2]
  for (let i = 0; i < half; i++) inv[i] = 1 / theta ** ((2 * i) / headDim);
  if (scaling.type === "linear") {
    for (let i = 0; i < half; i++) inv[i] /= scaling.factor;
  } else if (scaling.type === "llama3") {
    const { factor, lowFreqFactor: lo, highFreqFactor: hi } = scaling;
    const old = scaling.originalMaxPositionEmbeddings;
    const lowFreqWavelen = old / lo;
    const highFreqWavelen = old / hi;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowFreqWavelen) {
        inv[i] /= factor; // long wavelengths: fully interpolated
      } else if (wavelen >= highFreqWavelen) {
        const smooth = (old / wavelen - lo) / (hi - lo); // 0 at the low end, 1 at the high end
        inv[i] = (1 - smooth) * (inv[i] / factor) + smooth * inv[i];
      } // short wavelengths: unchanged
    }
  }
  return inv;
}

/** Rotate `x` ([heads, headDim] row-major, in place) for position `pos`. */
export function applyRope(x: Float64Array, heads: number, pos: number, invFreq: Float64Array) {
  const half = invFreq.length;
  const D = 2 * half;
  for (let i = 0; i < half; i++) {
    const a = pos * invFreq[i];
    const c = Math.cos(a), s = Math.sin(a);
    for (let h = 0; h < heads; h++) {
      const x1 = x[h * D + i], x2 = x[h * D + i + half];
      x[h * D + i] = x1 * c - x2 * s;
      x[h * D + i + half] = x2 * c + x1 * s;
    }
  }
}
