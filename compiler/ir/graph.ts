/**
 * Kiln's tensor IR. A function is a list of nodes in execution order; each node is one
 * operation of the op set (`ops.ts`, the kernel contract) whose bindings name values.
 * Shapes may use the symbolic dims `n` (tokens), `s` (sequences) and `m` (logit rows),
 * bounded per function by `bounds`.
 * @module
 */
import type { KernelSpec } from "./ops.ts";

/** A symbolic dimension or a constant. */
export type Dim = number | SymVar | `${SymVar}+1`;
export type SymVar = "n" | "s" | "m";
export type Dtype = "f32" | "f16" | "u32";

export type ValueKind =
  | "input" // written by the runtime before the call
  | "output" // read by the runtime after the call
  | "temp" // lives within one call
  | "param" // a model weight (stored tensor)
  | "kv" // a layer's paged KV cache
  | "state"; // zero when the runtime makes it, kept between calls (shared by name)

export interface Value {
  id: number;
  name: string;
  kind: ValueKind;
  shape: Dim[];
  dtype: Dtype;
  /** For kind "kv": the layer. */
  layer?: number;
  /** Set by memory planning: the buffer slot of an input/output/temp. */
  slot?: number;
}

export interface Node {
  spec: KernelSpec;
  /** The symbolic var (or constant) that gives this dispatch's row count. */
  rows: SymVar | number;
  /** Binding name → value id, for every binding of `spec`. */
  args: Record<string, number>;
}

export interface IrFunction {
  name: string;
  /** Upper bounds of the symbolic vars. */
  bounds: Record<SymVar, number>;
  /** Every call runs one row per sequence, its only (newest) token (decode): row r is the token
   * at positions[r] of sequence tok_seq[r] and no other row of the call is of that sequence. */
  rowPerSequence?: boolean;
  values: Value[];
  nodes: Node[];
  /** Byte size of each buffer slot at the bounds (set by memory planning). */
  slots?: number[];
}

export interface ParamInfo {
  name: string;
  shape: number[];
  dtype: string;
  /** Tensor-parallel and other preprocessing annotations, as MLC records them. */
  preprocs: Record<string, unknown>[];
  pipeline_stages: number[];
}

export interface IrModule {
  functions: IrFunction[];
  params: ParamInfo[];
}

/** Evaluate a dim at the bounds (or at given var values). */
export function evalDim(d: Dim, vars: Record<SymVar, number>): number {
  if (typeof d === "number") return d;
  if (d.endsWith("+1")) return vars[d[0] as SymVar] + 1;
  return vars[d as SymVar];
}

const BYTES: Record<Dtype, number> = { f32: 4, f16: 2, u32: 4 };

/** Bytes of a value at the function's bounds, rounded up to 4. */
export function valueBytes(v: Value, vars: Record<SymVar, number>): number {
  const elems = v.shape.reduce<number>((a, d) => a * evalDim(d, vars), 1);
  return Math.ceil((elems * BYTES[v.dtype]) / 4) * 4;
}

/** Builds one function: values and nodes in order. */
export class FunctionBuilder {
  readonly values: Value[] = [];
  readonly nodes: Node[] = [];
  #params = new Map<string, number>();
  #kv = new Map<number, number>();

  constructor(
    readonly name: string,
    readonly bounds: Record<SymVar, number>,
    /** See `IrFunction.rowPerSequence`. */
    readonly rowPerSequence = false,
  ) {}

  value(kind: ValueKind, name: string, shape: Dim[], dtype: Dtype): number {
    const id = this.values.length;
    this.values.push({ id, name, kind, shape, dtype });
    return id;
  }

  input(name: string, shape: Dim[], dtype: Dtype = "u32"): number {
    return this.value("input", name, shape, dtype);
  }

  temp(name: string, shape: Dim[], dtype: Dtype = "f32"): number {
    return this.value("temp", name, shape, dtype);
  }

  /** A param value, shared by every use of the same stored tensor. */
  param(name: string, shape: number[], dtype: Dtype): number {
    const have = this.#params.get(name);
    if (have !== undefined) return have;
    const id = this.value("param", name, shape, dtype);
    this.#params.set(name, id);
    return id;
  }

  /** A buffer the runtime makes once, zero-filled, and keeps (every function's value of the
   * same name is the same buffer): what a kernel must find zero it leaves zero. */
  state(name: string, shape: number[], dtype: Dtype = "u32"): number {
    return this.value("state", name, shape, dtype);
  }

  kv(layer: number, shape: Dim[]): number {
    const have = this.#kv.get(layer);
    if (have !== undefined) return have;
    const id = this.value("kv", `kv_cache.${layer}`, shape, "f32");
    this.values[id].layer = layer;
    this.#kv.set(layer, id);
    return id;
  }

  node(spec: KernelSpec, rows: SymVar | number, args: Record<string, number>): void {
    this.nodes.push({ spec, rows, args });
  }

  /** Mark a temp as a function output. */
  output(id: number): number {
    this.values[id].kind = "output";
    return id;
  }

  build(): IrFunction {
    const { name, bounds, values, nodes } = this;
    return {
      name,
      bounds,
      ...(this.rowPerSequence ? { rowPerSequence: true } : {}),
      values,
      nodes,
    };
  }
}
