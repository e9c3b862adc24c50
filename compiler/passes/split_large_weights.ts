/**
 * Split weights whose binding would exceed the target's storage-binding limit into row
 * ranges: an embed or matmul reading such a weight becomes one node per range, each bound to
 * a param part (`<name>#<k>`, rows [rowStart, rowStart + rows) of the stored tensor).
 * @module
 */
import type { IrFunction, Node, Value } from "../ir/graph.ts";
import { valueBytes } from "../ir/graph.ts";
import type { Pass } from "./pass.ts";

export interface ParamPart {
  of: string;
  rowStart: number;
  rows: number;
}

const WEIGHT_ARGS = ["weight", "q_weight", "q_scale"];

export const splitLargeWeights: Pass = {
  name: "split_large_weights",
  run(fn, ctx) {
    const limit = ctx.target.limits.maxStorageBufferBindingSize;
    const values: (Value & { part?: ParamPart })[] = [...fn.values];
    const nodes: Node[] = [];
    const partIds = new Map<string, number>();
    const part = (id: number, rowStart: number, rows: number): number => {
      const v = values[id];
      const key = `${v.name}#${rowStart}`;
      const have = partIds.get(key);
      if (have !== undefined) return have;
      const nid = values.length;
      values.push({
        ...v,
        id: nid,
        name: `${v.name}#${rowStart}`,
        shape: [rows, ...v.shape.slice(1)],
        part: { of: v.name, rowStart, rows },
      });
      partIds.set(key, nid);
      return nid;
    };
    for (const node of fn.nodes) {
      const spec = node.spec;
      if (spec.op !== "embed" && spec.op !== "matmul") {
        nodes.push(node);
        continue;
      }
      const params = WEIGHT_ARGS.filter((a) => a in node.args).map((a) => values[node.args[a]]);
      if (params.some((p) => p.kind !== "param")) {
        nodes.push(node);
        continue;
      }
      const N = spec.op === "embed" ? spec.vocab : spec.N;
      const bytesPerRow = Math.max(...params.map((p) => valueBytes(p, fn.bounds) / N));
      const maxRows = Math.floor(limit / bytesPerRow);
      if (maxRows >= N) {
        nodes.push(node);
        continue;
      }
      if (spec.op === "matmul" && spec.epilogue === "silu_mul") {
        throw new RangeError(
          `${fn.name}: a silu_mul matmul weight of ${N} rows exceeds the binding limit`,
        );
      }
      const parts = Math.ceil(N / maxRows), per = Math.ceil(N / parts);
      for (let r0 = 0; r0 < N; r0 += per) {
        const rows = Math.min(per, N - r0);
        const args = { ...node.args };
        for (const a of WEIGHT_ARGS) if (a in args) args[a] = part(args[a], r0, rows);
        nodes.push({ ...node, spec: { ...spec, rowStart: r0, rows }, args });
      }
    }
    return { ...fn, values, nodes };
  },
};

/** Check that no temp or I/O value exceeds the binding limit (after planning). */
export function checkBindingSizes(fn: IrFunction, limit: number): string | null {
  for (const v of fn.values) {
    if (v.kind === "param" || v.kind === "kv" || v.slot === undefined) continue;
    const bytes = valueBytes(v, fn.bounds);
    if (bytes > limit) {
      return `${fn.name}: ${v.name} needs ${bytes} bytes, over the binding limit ${limit}`;
    }
  }
  return null;
}
