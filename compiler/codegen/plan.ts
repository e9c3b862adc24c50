/**
 * The dispatch plan: what the compiled library holds for each exported function, and what the
 * engine executes. Kernels are de-duplicated across functions.
 * @module
 */
import type { KernelSpec, WgslKernel } from "./contract.ts";
import type { Dim, Dtype, SymVar } from "../ir/graph.ts";

/** Where a binding's buffer comes from. */
export type BindRef =
  | { slot: number }
  | { param: string; rowStart?: number; rows?: number }
  | { kv: number }
  /** A zero-filled buffer of at least `bytes`, one per name, kept between calls. */
  | { state: string; bytes: number };

export interface Step {
  /** Index into `LibraryPlan.kernels`. */
  k: number;
  rows: SymVar | number;
  b: BindRef[];
}

export interface IoSpec {
  name: string;
  slot: number;
  dtype: Dtype;
  shape: Dim[];
}

export interface FunctionPlan {
  bounds: Record<SymVar, number>;
  inputs: IoSpec[];
  outputs: IoSpec[];
  /** Bytes of each buffer slot (at the bounds). */
  slots: number[];
  steps: Step[];
}

export interface LibraryPlan {
  kernels: { spec: KernelSpec; wgsl?: WgslKernel }[];
  functions: Record<string, FunctionPlan>;
}
