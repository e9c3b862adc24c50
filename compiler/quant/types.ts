/**
 * Shared types of the quantization folder: a scheme (how each kind of parameter is stored) and
 * the tensors a weight becomes once stored.
 * @module
 */
import type { WeightFormat } from "../codegen/contract.ts";

/** A quantization scheme by MLC name, e.g. "q4f16_1". */
export interface QuantScheme {
  /** MLC's name, e.g. "q4f16_1". */
  readonly name: string;
  /** dtype of norms, biases and every parameter the scheme leaves dense. */
  readonly modelDtype: "f32" | "f16";
  /** How linear weights (lm_head included) are stored. */
  readonly linear: WeightFormat;
  /** How the embedding table is stored. */
  readonly embedding: WeightFormat;
}

/** The dtype names of stored tensors (as in MLC's tensor-cache.json). */
export type StoredDtype = "float32" | "float16" | "uint32";

/** What one stored tensor of a weight is: MLC names it `<param prefix>.<suffix>`. */
export interface StoredShape {
  /** "weight" (dense), "q_weight" or "q_scale" (group quantised). */
  suffix: string;
  dtype: StoredDtype;
  shape: number[];
}

/** A stored tensor with its bytes (little-endian, exactly prod(shape) elements, no padding). */
export interface StoredTensor extends StoredShape {
  data: Uint8Array;
}
