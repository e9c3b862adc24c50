/**
 * Matmuls of 8 to 32 rows (batched decode, short prompts) whose weights have few rows for
 * their K (qkv, o_proj, down) split K across workgroups: matmul(x) → out becomes a `kSplit`
 * matmul writing each K range's partial sums and a `sum_splits` that adds them up with the
 * bias and residual the matmul left out. The few-rows kernel then fills the GPU where its
 * column blocks alone would occupy a quarter of it (`rowsSplitK`). Past 32 rows (prompts,
 * batches of more sequences) the q8 tiles of such weights split K likewise, into ranges by the
 * dispatch's rows (`tiledSplit`: `kSplitRows`), so that a few row blocks fill the GPU and
 * many need no split; the `sum_splits` (and the reader it may fold into) takes the same
 * `splitRows` and adds only the dispatch's partials. WebGPU targets only.
 * @module
 */
import type { Node } from "../ir/graph.ts";
import { rowsSplitK } from "../codegen/webgpu/matmul_rows.ts";
import { tiledSplit } from "../codegen/webgpu/matmul.ts";
import { addTemp, type Pass } from "./pass.ts";

export const splitK: Pass = {
  name: "split_k",
  flag: "split_k",
  run(fn, ctx) {
    if (ctx.target.backend !== "webgpu") return fn;
    const values = [...fn.values];
    let changed = false;
    const nodes = fn.nodes.flatMap((n): Node[] => {
      const s = n.spec;
      if (
        s.op !== "matmul" || s.kSplit || s.norm || s.normOut || s.xUnits || s.outUnits
      ) {
        return [n];
      }
      const tiled = tiledSplit(s, ctx.target);
      const ks = tiled?.kSplit ?? rowsSplitK(s);
      if (ks < 2) return [n];
      changed = true;
      const name = fn.values[n.args.out].name;
      const part = addTemp(values, `${name}_splits`, n.rows, ks * s.N); // [n, ks * N]
      const { bias: biasArg, residual, out, ...mm } = n.args; // x, weight bindings
      return [
        {
          ...n,
          spec: { ...s, epilogue: "none", bias: null, kSplit: ks, ...(tiled ?? {}) },
          args: { ...mm, out: part },
        },
        {
          spec: {
            op: "sum_splits",
            width: s.N,
            splits: ks,
            bias: s.bias,
            residual: s.epilogue === "add",
            ...(tiled ? { splitRows: tiled.kSplitRows } : {}),
          },
          rows: n.rows,
          args: {
            part,
            ...(s.bias ? { bias: biasArg } : {}),
            ...(s.epilogue === "add" ? { residual } : {}),
            out,
          },
        },
      ];
    });
    return changed ? { ...fn, values, nodes } : fn;
  },
};
