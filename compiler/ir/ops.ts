/**
 * The IR op set. It is the kernel contract (`../codegen/contract.ts`): every IR node is one
 * kernel spec with its bindings, so a pass rewrites specs and a backend renders them.
 * Groups:
 * - gather:       embed, take_rows
 * - linear:       matmul (+ bias / silu_mul / add epilogues), dequantize
 * - norm:         rms_norm, add_rms_norm
 * - elementwise:  add, silu_mul
 * - position/kv:  rope, kv_append, rope_kv_append
 * - attention:    attention (paged, causal, GQA, sliding window); for decode calls
 *                 attention_decode (rope + KV append + split-KV partials) and attention_merge
 * - sampling:     argmax, softmax_stats, softmax_temp, logits_process, top_p_hist,
 *                 top_p_gather, sample_top_p
 * @module
 */
export {
  argmaxPartWords,
  bindings,
  decodeSplits,
  PAGE_SIZE,
  topPGatherWords,
  topPHistWords,
  topPSlices,
} from "../codegen/contract.ts";
export type { Binding, KernelOp, KernelSpec, WeightFormat } from "../codegen/contract.ts";
