/**
 * The q8 matmuls whose kernels can read x already quantised (the few-rows kernel at 8-32 rows,
 * with or without a K split, and the q8 tiles beyond 32 rows) get a `quantize_q8` before them
 * and read its rows (`xCodes`): x is rounded once, by one dispatch, instead of by every
 * workgroup of the matmul (the few-rows kernel did it a step of units at a time between two
 * barriers; the tiles in the staging of every slice). Matmuls that share an x share its rows
 * (lm_head's two parts). The single-row q8 GEMV keeps its own path (norm fold, unit-major
 * rows). WebGPU targets with the packed int8 dot product only; after q8_activations and
 * split_k.
 * @module
 */
import { hasPackedDot, q8RowWords } from "../codegen/contract.ts";
import type { Node } from "../ir/graph.ts";
import { addTemp, type Pass } from "./pass.ts";
import { readsCodes } from "./q8_activations.ts";

export const q8Codes: Pass = {
  name: "q8_codes",
  flag: "q8_codes",
  run(fn, ctx) {
    if (!hasPackedDot(ctx.target)) return fn;
    const values = [...fn.values];
    const rowsOf = new Map<number, number>(); // x value → its quantize_q8 rows
    let changed = false;
    const nodes = fn.nodes.flatMap((n): Node[] => {
      const s = n.spec;
      if (s.op !== "matmul" || !readsCodes(s)) return [n];
      changed = true;
      const x = n.args.x;
      let q = rowsOf.get(x);
      const before: Node[] = [];
      if (q === undefined) {
        q = addTemp(values, `${fn.values[x].name}_q8`, n.rows, q8RowWords(s.K));
        rowsOf.set(x, q);
        before.push({ spec: { op: "quantize_q8", K: s.K }, rows: n.rows, args: { x, out: q } });
      }
      return [...before, { ...n, spec: { ...s, xCodes: true }, args: { ...n.args, x: q } }];
    });
    return changed ? { ...fn, values, nodes } : fn;
  },
};
