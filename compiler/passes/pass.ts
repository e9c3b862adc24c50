/**
 * What a pass is: a named rewrite of one IR function, switched by an optimisation flag.
 * @module
 */
import type { ModelConfig } from "../config/model_config.ts";
import type { OptimizationFlags } from "../config/opt_flags.ts";
import type { DenseDtype, TargetInfo } from "../codegen/contract.ts";
import type { Dim, IrFunction, Node, Value } from "../ir/graph.ts";
import { bindings } from "../ir/ops.ts";

export interface PassContext {
  readonly config: ModelConfig;
  readonly target: TargetInfo;
  readonly flags: OptimizationFlags;
  /** The quantization's model dtype (activations, scales, the KV cache under `kv_f16`);
   * absent: f32. */
  readonly modelDtype?: DenseDtype;
}

export interface Pass {
  readonly name: string;
  /** The flag that enables it; passes without one always run. */
  readonly flag?: keyof OptimizationFlags;
  run(fn: IrFunction, ctx: PassContext): IrFunction;
}

const readIndex = new WeakMap<Node[], Map<number, number[]>>();

/** Indices of the nodes that read value `id` (through a read binding). Indexed once per node list. */
export function readers(fn: IrFunction, id: number): number[] {
  let index = readIndex.get(fn.nodes);
  if (!index) {
    index = new Map();
    fn.nodes.forEach((n, i) => {
      for (const [name, v] of Object.entries(n.args)) {
        if (isWrite(n, name)) continue;
        const list = index!.get(v) ?? [];
        list.push(i);
        index!.set(v, list);
      }
    });
    readIndex.set(fn.nodes, index);
  }
  return index.get(id) ?? [];
}

/** Indices of the nodes that write value `id` (through a read_write binding). */
export function writers(fn: IrFunction, id: number): number[] {
  return fn.nodes.flatMap((n, i) =>
    Object.entries(n.args).some(([name, v]) => v === id && isWrite(n, name)) ? [i] : []
  );
}

/** Whether binding `name` of a node is written (the contract's read_write bindings). */
export function isWrite(node: Node, name: string): boolean {
  return bindings(node.spec).some((b) => b.name === name && b.access === "read_write");
}

/** Appends an f32 temp of `rows` x `width` to `values` (a pass's copy of a function's values);
 * returns its id. */
export function addTemp(values: Value[], name: string, rows: Dim, width: number): number {
  const id = values.length;
  values.push({ id, name, kind: "temp", shape: [rows, width], dtype: "f32" });
  return id;
}

/** The function with nodes at `drop` removed and `replace` applied (index → node). */
export function rewrite(fn: IrFunction, replace: Map<number, Node>, drop: Set<number>): IrFunction {
  const nodes = fn.nodes.flatMap((n, i) => drop.has(i) ? [] : [replace.get(i) ?? n]);
  return { ...fn, nodes };
}
