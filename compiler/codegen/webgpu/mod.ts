/**
 * WGSL code generation: one kernel family per file, chosen by op. `wgslKernel(spec, target)`
 * returns the shader and its dispatch shape (see `WgslKernel` in `../contract.ts`).
 * Kernels read f16 data as packed u32 words (no `shader-f16` needed), accumulate in f32 and
 * reduce through workgroup memory.
 * @module
 */
import type { KernelSpec, TargetInfo, WgslKernel } from "../contract.ts";
import { attentionKernel } from "./attention.ts";
import { attentionPrefillKernel, PREFILL_MIN_ROWS, prefillPlan } from "./attention_prefill.ts";
import { attentionDecodeKernel, attentionMergeKernel } from "./attention_decode.ts";
import { topPGatherKernel, topPHistKernel } from "./top_p.ts";
import { dequantizeKernel } from "./dequantize.ts";
import { elementwiseKernel } from "./elementwise.ts";
import { embedKernel } from "./embed.ts";
import { matmulKernel } from "./matmul.ts";
import { quantizeQ8Kernel } from "./quantize_q8.ts";
import { normKernel } from "./norm.ts";
import { ropeKernel } from "./rope.ts";
import { samplingKernel } from "./sampling.ts";
import { logitsProcessKernel } from "./logits_process.ts";

/** The WGSL kernel for `spec`, specialised for `target`'s limits. */
export function wgslKernel(spec: KernelSpec, target: TargetInfo): WgslKernel {
  switch (spec.op) {
    case "embed":
      return embedKernel(spec, target);
    case "matmul":
      return matmulKernel(spec, target);
    case "dequantize":
      return dequantizeKernel(spec, target);
    case "rms_norm":
    case "add_rms_norm":
      return normKernel(spec, target);
    case "quantize_q8":
      return quantizeQ8Kernel(spec, target);
    case "add":
    case "sum_splits":
    case "silu_mul":
      return elementwiseKernel(spec, target);
    case "rope":
    case "kv_append":
    case "rope_kv_append":
      return ropeKernel(spec, target);
    case "attention":
      return (spec.maxRows ?? 0) > PREFILL_MIN_ROWS && prefillPlan(spec, target)
        ? attentionPrefillKernel(spec, target)
        : attentionKernel(spec, target);
    case "attention_decode":
      return attentionDecodeKernel(spec, target);
    case "attention_merge":
      return attentionMergeKernel(spec, target);
    case "take_rows":
    case "argmax":
    case "softmax_temp":
    case "softmax_stats":
    case "sample_top_p":
      return samplingKernel(spec, target);
    case "top_p_hist":
      return topPHistKernel(spec, target);
    case "top_p_gather":
      return topPGatherKernel(spec, target);
    case "logits_process":
      return logitsProcessKernel(spec, target);
  }
}

export { matmulKernel };
