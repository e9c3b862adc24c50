/**
 * The CPU backend of the kernel contract: plain TypeScript kernels on typed arrays, one file per
 * kernel family, each specialised by its spec's constants. Bundled into CPU-target libraries,
 * so nothing here may use Deno APIs or import from outside `compiler/codegen/`.
 *
 * @example
 * ```ts
 * import { cpuKernel } from "./mod.ts";
 * const add = cpuKernel({ op: "add", width: 2 });
 * const a = new Float32Array([1, 2]), b = new Float32Array([3, 4]), out = new Float32Array(2);
 * add([a.buffer, b.buffer, out.buffer], 1);
 * console.assert(out[0] === 4 && out[1] === 6);
 * ```
 * @module
 */
import type { CpuKernel, KernelSpec } from "../contract.ts";
import { attentionKernel } from "./attention.ts";
import { attentionDecodeKernel, attentionMergeKernel } from "./attention_decode.ts";
import { dequantizeKernel } from "./dequantize.ts";
import { addKernel, siluMulKernel, sumSplitsKernel } from "./elementwise.ts";
import { embedKernel } from "./embed.ts";
import { matmulKernel, quantizeQ8Kernel } from "./matmul.ts";
import { addRmsNormKernel, rmsNormKernel } from "./norm.ts";
import { kvAppendKernel, ropeKernel, ropeKvAppendKernel } from "./rope.ts";
import { logitsProcessKernel } from "./logits_process.ts";
import {
  argmaxKernel,
  sampleTopPKernel,
  softmaxStatsKernel,
  softmaxTempKernel,
  takeRowsKernel,
  topPGatherKernel,
  topPHistKernel,
} from "./sampling.ts";

/** The CPU kernel of a spec: `(buffers, R) => void` with buffers in `bindings(spec)` order. */
export function cpuKernel(spec: KernelSpec): CpuKernel {
  switch (spec.op) {
    case "embed":
      return embedKernel(spec);
    case "matmul":
      return matmulKernel(spec);
    case "dequantize":
      return dequantizeKernel(spec);
    case "rms_norm":
      return rmsNormKernel(spec);
    case "add_rms_norm":
      return addRmsNormKernel(spec);
    case "add":
      return addKernel(spec);
    case "sum_splits":
      return sumSplitsKernel(spec);
    case "quantize_q8":
      return quantizeQ8Kernel(spec);
    case "silu_mul":
      return siluMulKernel(spec);
    case "rope":
      return ropeKernel(spec);
    case "kv_append":
      return kvAppendKernel(spec);
    case "rope_kv_append":
      return ropeKvAppendKernel(spec);
    case "attention":
      return attentionKernel(spec);
    case "attention_decode":
      return attentionDecodeKernel(spec);
    case "attention_merge":
      return attentionMergeKernel(spec);
    case "take_rows":
      return takeRowsKernel(spec);
    case "argmax":
      return argmaxKernel(spec);
    case "softmax_temp":
      return softmaxTempKernel(spec);
    case "softmax_stats":
      return softmaxStatsKernel(spec);
    case "top_p_hist":
      return topPHistKernel(spec);
    case "top_p_gather":
      return topPGatherKernel(spec);
    case "sample_top_p":
      return sampleTopPKernel(spec);
    case "logits_process":
      return logitsProcessKernel(spec);
    default:
      throw new TypeError(
        `cpuKernel: unknown kernel op ${JSON.stringify((spec as { op: unknown }).op)}`,
      );
  }
}
