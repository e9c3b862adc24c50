/**
 * Lowering: optimised IR functions → the dispatch plan, with each distinct kernel rendered once
 * for the target (WGSL for WebGPU; the CPU target renders at load time from the bundled
 * kernel library, so its plan carries only the specs).
 * @module
 */
import { bindings, type KernelSpec, type TargetInfo } from "./contract.ts";
import type { BindRef, FunctionPlan, LibraryPlan, Step } from "./plan.ts";
import type { IrFunction, Value } from "../ir/graph.ts";
import type { ParamPart } from "../passes/split_large_weights.ts";
import { wgslKernel } from "./webgpu/mod.ts";

function ref(v: Value & { part?: ParamPart }, fn: string): BindRef {
  switch (v.kind) {
    case "param":
      return v.part
        ? { param: v.part.of, rowStart: v.part.rowStart, rows: v.part.rows }
        : { param: v.name };
    case "kv":
      return { kv: v.layer! };
    case "state":
      return { state: v.name, bytes: v.shape.reduce<number>((a, d) => a * (d as number), 4) };
    default:
      if (v.slot === undefined) {
        throw new Error(`${fn}: value ${v.name} has no slot (memory planning did not run)`);
      }
      return { slot: v.slot };
  }
}

export function lowerToPlan(fns: IrFunction[], target: TargetInfo): LibraryPlan {
  const kernels: LibraryPlan["kernels"] = [];
  const index = new Map<string, number>();
  const kernelOf = (spec: KernelSpec): number => {
    const key = JSON.stringify(spec);
    let k = index.get(key);
    if (k === undefined) {
      k = kernels.length;
      kernels.push(
        target.backend === "webgpu" ? { spec, wgsl: wgslKernel(spec, target) } : { spec },
      );
      index.set(key, k);
    }
    return k;
  };
  const functions: Record<string, FunctionPlan> = {};
  for (const fn of fns) {
    const io = (kind: "input" | "output") =>
      fn.values.filter((v) => v.kind === kind).map((v) => ({
        name: v.name,
        slot: v.slot!,
        dtype: v.dtype,
        shape: v.shape,
      }));
    const steps: Step[] = fn.nodes.map((node) => ({
      k: kernelOf(node.spec),
      rows: node.rows,
      b: bindings(node.spec).map((b) => ref(fn.values[node.args[b.name]], fn.name)),
    }));
    functions[fn.name] = {
      bounds: fn.bounds,
      inputs: io("input"),
      outputs: io("output"),
      slots: fn.slots ?? [],
      steps,
    };
  }
  return { kernels, functions };
}
