/**
 * RoPE inverse frequencies, computed at compile time and baked into the kernels.
 * @module
 */
import type { ModelConfig } from "../config/model_config.ts";

/** inv_freq[i] for i in [0, head_dim/2), with llama3 / linear scaling as HF applies it. */
export function ropeInvFreq(cfg: ModelConfig): number[] {
  const D = cfg.head_dim;
  const inv: number[] = [];
  for (let i = 0; i < D / 2; i++) {
    // HF computes this in float32; Math.fround keeps the angles identical to its.
    inv.push(Math.fround(1 / Math.pow(cfg.rope_theta, (2 * i) / D)));
  }
  const rs = cfg.rope_scaling;
  if (!rs) return inv;
  if (rs.rope_type === "linear") return inv.map((f) => f / rs.factor);
  const lowWavelen = rs.original_max_position_embeddings / rs.low_freq_factor;
  const highWavelen = rs.original_max_position_embeddings / rs.high_freq_factor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / rs.factor;
    const smooth = (rs.original_max_position_embeddings / wavelen - rs.low_freq_factor) /
      (rs.high_freq_factor - rs.low_freq_factor);
    return (1 - smooth) * (f / rs.factor) + smooth * f;
  });
}
