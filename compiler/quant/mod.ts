/**
 * Quantization: MLC-LLM's schemes by name (q0f32, q0f16, q3f16_1, q4f16_1, q4f32_1) and the
 * bit-exact conversion of a weight matrix to and from its stored tensors.
 *
 * A scheme says how each kind of parameter is stored: linear weights (lm_head included) and the
 * embedding in `linear` / `embedding` (a `WeightFormat` from `codegen/contract.ts`); norms and
 * biases always stay dense in `modelDtype`. Stored names follow MLC: a dense weight keeps
 * `<param>.weight`; a group-quantised one becomes `<prefix>.q_weight` (uint32) and
 * `<prefix>.q_scale` (model dtype), where `<prefix>` is the param name without `.weight`.
 * In MLC's group schemes every nn.Linear is quantised (lm_head too; the only exception is an MoE
 * router: a name ending in "gate" with at most 256 outputs) and so is the embedding; with tied
 * embeddings lm_head has no param of its own and reuses the embedding's q_weight / q_scale.
 * Each param is cast to the model dtype before it is quantised, as MLC's loader does.
 *
 * @example
 * ```ts
 * import { dequantizeWeight, getQuantization, quantizeWeight } from "./mod.ts";
 * const q = getQuantization("q4f32_1");
 * const w = Float32Array.from({ length: 64 }, (_, i) => (i % 15) - 7); // [2, 32]
 * const back = dequantizeWeight(q.linear, quantizeWeight(q.linear, w, 2, 32), 2, 32);
 * if (back.some((v, i) => v !== w[i])) throw new Error("integers -7..7 with max 7 are exact");
 * ```
 * @module
 */
export type { QuantScheme, StoredDtype, StoredShape, StoredTensor } from "./types.ts";
export { getQuantization, QUANTIZATIONS } from "./registry.ts";
export { dequantizeWeight, quantizeWeight, storedShapes } from "./weight.ts";
