/**
 * What the matmul kernels (GEMV, q8 GEMV, tiled) share: binding types, the output width and the epilogue
 * (bias, residual add, silu_mul) applied to a finished dot product.
 * @module
 */
import { type KernelSpec, unitLayoutError } from "../contract.ts";
import { denseReader, denseType, unitElem, weightTypes } from "./common.ts";

export type MatmulSpec = Extract<KernelSpec, { op: "matmul" }>;

export interface MatmulPlan {
  /** Output columns the kernel computes (rows, or rows / 2 for silu_mul). */
  outCols: number;
  /** Weight rows per output column: 2 for silu_mul (gate row c and up row outCols + c). */
  weightRowsPerOut: 1 | 2;
  /** Binding types (weight types may be overridden by the shape). */
  types: Record<string, string>;
  /** Helper functions the epilogue needs. */
  prelude: string;
  /** Statements storing row r, output column c (local) from dot products a0 (and a1). */
  store(r: string, c: string, a0: string, a1: string): string;
  /** Without silu_mul: the index into out of (r, c), and the value `store` writes there
   * (`residual`: the add epilogue's residual value, if already loaded). */
  outIndex(r: string, c: string): string;
  value(r: string, c: string, a0: string, residual?: string): string;
  /** The value of output column c of row r from its sums (silu_mul: a0 the gate's, a1 the
   * up's; else `value`). */
  outValue(r: string, c: string, a0: string, a1?: string): string;
}

/** Validates a matmul spec and describes its output and epilogue. */
export function matmulPlan(spec: MatmulSpec): MatmulPlan {
  const { N, K, rowStart, rows, epilogue } = spec;
  if (!(N > 0 && K > 0 && rows > 0 && rowStart >= 0 && rowStart + rows <= N)) {
    throw new RangeError(
      `matmul: rowStart ${rowStart} + rows ${rows} must lie within N ${N}, K ${K} positive`,
    );
  }
  const silu = epilogue === "silu_mul";
  if (silu && (rowStart !== 0 || rows !== N || N % 2 !== 0)) {
    throw new RangeError(
      `matmul silu_mul: needs rowStart 0 and rows = N = 2I (got rowStart ${rowStart}, rows ${rows}, N ${N})`,
    );
  }
  const I = N / 2;
  const units = unitLayoutError(spec);
  if (units) throw new RangeError(units);
  const types: Record<string, string> = {
    x: "array<f32>",
    out: "array<f32>",
    residual: "array<f32>",
    ...weightTypes(spec.weight),
  };
  if (spec.bias) types.bias = denseType(spec.bias);
  const bias = (i: string) => (spec.bias ? ` + bias_at(${i})` : "");
  const outIndex = (r: string, c: string) => `${r} * ${N}u + ${rowStart}u + ${c}`;
  const value = (r: string, c: string, a0: string, res?: string) =>
    `${a0}${bias(`${rowStart}u + ${c}`)}${
      epilogue === "add" ? ` + ${res ?? `residual[${outIndex(r, c)}]`}` : ""
    }`;
  // silu_mul: silu(gate) * up, each with its weight row's bias
  const outValue = (r: string, c: string, a0: string, a1?: string) => {
    if (!silu) return value(r, c, a0);
    const g = `(${a0}${bias(c)})`;
    return `${g} / (1.0 + exp(-${g})) * (${a1}${bias(`${I}u + ${c}`)})`;
  };
  const store = silu
    ? (r: string, c: string, a0: string, a1: string) =>
      `out[${r} * ${I}u + ${spec.outUnits ? unitElem(c, I) : c}] = ${outValue(r, c, a0, a1)};`
    : (r: string, c: string, a0: string) => `out[${outIndex(r, c)}] = ${value(r, c, a0)};`;
  return {
    outCols: silu ? I : rows,
    weightRowsPerOut: silu ? 2 : 1,
    types,
    prelude: spec.bias ? denseReader("bias", spec.bias) : "",
    store,
    outIndex,
    value,
    outValue,
  };
}
