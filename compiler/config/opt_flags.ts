/**
 * Optimisation flags: presets O0–O3 and the `k=v;…` form, switched per target as MLC's
 * `OptimizationFlags.update()` does.
 * @module
 */
import { hasPackedDot, type TargetInfo } from "../codegen/contract.ts";

export interface OptimizationFlags {
  /** Fold dequantisation into the matmul/GEMV that reads the weight. */
  readonly fuse_dequantize_matmul: boolean;
  /** residual add + RMSNorm in one kernel. */
  readonly fuse_add_norm: boolean;
  /** gate/up projection + SiLU·mul in one kernel. */
  readonly fuse_gate_up_silu: boolean;
  /** RoPE + KV-cache append in one kernel. */
  readonly fuse_rope_kv_append: boolean;
  /** In decode functions, RoPE + KV append + attention as split-KV (flash-decoding) attention
   * and a merge of the splits; acts on the fused RoPE + KV append. */
  readonly split_kv_decode: boolean;
  /** Remove nodes whose outputs nobody reads. */
  readonly dead_code_elimination: boolean;
  /** Share temporary buffers between values whose lifetimes do not overlap. */
  readonly memory_planning: boolean;
  /** Let kernels use the `shader-f16` feature (WebGPU only, when the adapter has it). */
  readonly shader_f16: boolean;
  /** Matmuls of 4-bit group weights round x through int8 codes per 32 elements and use
   * packed int8 dot products (llama.cpp's q8 activations; WebGPU targets with
   * packed_4x8_integer_dot_product only): single-row decode, the few-rows kernel's 8-32 rows,
   * and prefill beyond 32 rows (not the 2-32-row matmuls the GEMV takes). */
  readonly q8_activations: boolean;
  /** An add + RMSNorm between two q8 matmuls is folded into them: the first writes the
   * residual, the weighted row and its sums of squares, the second scales by 1 / rms (no
   * dispatch of its own; after q8_activations). */
  readonly fuse_norm_matmul: boolean;
  /** The rows q8 matmuls read are written unit-major by their producers (normOut and silu_mul
   * matmuls, attention_merge), so that the q8 GEMV reads x in consecutive memory (after
   * fuse_norm_matmul). */
  readonly q8_unit_layout: boolean;
  /** Batched-decode matmuls (8-32 rows) of weights with few rows for their K split K across
   * workgroups: partial sums, then a `sum_splits` (WebGPU targets). */
  readonly split_k: boolean;
  /** The q8 matmuls of the few-rows and tiled kernels (batched decode, prompts) read x as
   * `quantize_q8` rows written once before them, instead of each workgroup rounding x
   * itself (after q8_activations and split_k). */
  readonly q8_codes: boolean;
  /** A `sum_splits` read only by an add_rms_norm or attention_decode is added up by that
   * kernel as it reads the partial sums (after split_k). */
  readonly fold_sum_splits: boolean;
  /** A `quantize_q8` whose x only it reads is written by x's producer instead (rms_norm,
   * add_rms_norm, attention_merge, a matmul of the few-rows kernel: their `outCodes`; after
   * q8_codes). */
  readonly q8_writers: boolean;
  /** The KV cache in f16 where the model's dtype is f16 (q0f16, q3f16_1, q4f16_1), as MLC
   * keeps it; f32 otherwise. */
  readonly kv_f16: boolean;
  /** An `attention_merge` goes into the `attention_decode` whose partials it reads (`merge`:
   * the last workgroup of each row and KV head merges; WebGPU targets, after q8_writers). */
  readonly fold_attention_merge: boolean;
}

/** O2 (and O3): every optimisation. */
const O2_FLAGS: OptimizationFlags = {
  fuse_dequantize_matmul: true,
  fuse_add_norm: true,
  fuse_gate_up_silu: true,
  fuse_rope_kv_append: true,
  split_kv_decode: true,
  dead_code_elimination: true,
  memory_planning: true,
  shader_f16: true,
  q8_activations: true,
  // 8B decode 3.29 → 2.95 ms a step on the H100 (BENCHMARKS.md)
  fuse_norm_matmul: true,
  q8_unit_layout: true,
  // 8B batch-16 step on the H100 (BENCHMARKS.md)
  split_k: true,
  q8_codes: true,
  fold_sum_splits: true,
  q8_writers: true,
  kv_f16: true,
  fold_attention_merge: true,
};

export const OPT_PRESETS: Readonly<Record<"O0" | "O1" | "O2" | "O3", OptimizationFlags>> = {
  O0: {
    fuse_dequantize_matmul: false,
    fuse_add_norm: false,
    fuse_gate_up_silu: false,
    fuse_rope_kv_append: false,
    split_kv_decode: false,
    dead_code_elimination: false,
    memory_planning: false,
    shader_f16: false,
    q8_activations: false,
    fuse_norm_matmul: false,
    q8_unit_layout: false,
    split_k: false,
    q8_codes: false,
    fold_sum_splits: false,
    q8_writers: false,
    kv_f16: false,
    fold_attention_merge: false,
  },
  O1: {
    ...O2_FLAGS,
    fuse_add_norm: false,
    fuse_gate_up_silu: false,
    fuse_rope_kv_append: false,
    split_kv_decode: false,
    shader_f16: false,
    q8_activations: false,
    fuse_norm_matmul: false,
    q8_unit_layout: false,
    split_k: false,
    q8_codes: false,
    fold_sum_splits: false,
    q8_writers: false,
  },
  O2: O2_FLAGS,
  O3: O2_FLAGS,
};

/** Parse "O2" or "fuse_add_norm=0;memory_planning=1" (on top of O2). */
export function parseOptFlags(input: string | undefined): OptimizationFlags {
  const s = (input ?? "O2").trim();
  if (s in OPT_PRESETS) return OPT_PRESETS[s as keyof typeof OPT_PRESETS];
  const out: Record<string, boolean> = { ...OPT_PRESETS.O2 };
  for (const kv of s.split(";").filter((x) => x.trim() !== "")) {
    const [k, v] = kv.split("=").map((x) => x.trim());
    if (!(k in O2_FLAGS)) {
      throw new TypeError(
        `unknown optimisation flag "${k}"; use O0..O3 or k=v;… with k in ${
          Object.keys(O2_FLAGS).join(", ")
        }`,
      );
    }
    if (!["0", "1", "true", "false"].includes(v ?? "")) {
      throw new TypeError(`optimisation flag "${k}" must be 0/1/true/false, got "${v}"`);
    }
    out[k] = v === "1" || v === "true";
  }
  return Object.freeze(out) as unknown as OptimizationFlags;
}

/** Switch off flags that do not apply to the target. */
export function updateForTarget(flags: OptimizationFlags, target: TargetInfo): OptimizationFlags {
  const shader_f16 = flags.shader_f16 && target.backend === "webgpu" &&
    target.features.includes("shader-f16");
  const q8_activations = flags.q8_activations && hasPackedDot(target);
  return Object.freeze({ ...flags, shader_f16, q8_activations });
}
