/**
 * The shape of one conformance case, shared by the case lists and the suite runner.
 * @module
 */
import type { KernelSpec } from "../../compiler/codegen/contract.ts";

/** One dispatch to run on every backend and compare with the float64 reference. */
export interface ConformanceCase {
  /** Unique, says what the case covers, e.g. "matmul q3g40/f16 K=100 bias=f16 add R=37". */
  name: string;
  spec: KernelSpec;
  /** The runtime row count R of the dispatch. */
  rows: number;
  /** One buffer per binding in `bindings(spec)` order; written bindings hold their starting
   * contents (parts the kernel must not touch keep them). */
  inputs: ArrayBuffer[];
  /** Allowed max |actual - ref| over each written binding, as a fraction of max |ref| over
   * that binding; 0 means bit-exact (copies, integer results). */
  tol: number;
  /** Tolerances of particular written bindings, by name, in place of `tol`. */
  tols?: Record<string, number>;
  /** A target feature the case needs (WebGPU cases without it are ignored, saying so). */
  requires?: string;
}

/** Tolerances by kind of work, as fractions of max |ref|. */
export const TOL = {
  /** copies, gathers, f16→f32 decoding, integer results. */
  exact: 0,
  /** one f32 rounding per element (group dequantisation, an add). */
  oneRounding: 1e-6,
  /** f32 reductions, f32 exp/sin/cos (matmul, norms, softmax, attention, rope). */
  f32: 1e-4,
  /** q8 activations: the kernel and the reference may round one x element's code the other
   * way at a tie (f32 vs float64 division), moving an output by |w| * max|x| / 127. */
  q8: 2e-3,
  /** A kernel that computes x and writes it as `quantize_q8` rows (`outCodes`): near a tie its
   * f32 x and the float64 one may round to codes one apart, d = max|block| / 127. */
  q8Written: 8e-3,
  /** Kernels that write an f16 KV cache (`kvDtype`): a key or value computed in f32 and in
   * float64 may round to halves one apart near a tie (2^-11 of the value). */
  kvF16: 1e-3,
} as const;
