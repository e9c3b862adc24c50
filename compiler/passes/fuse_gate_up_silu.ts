/**
 * matmul(x, W_gate_up) → t, silu_mul(t) → y becomes one matmul with the silu_mul epilogue,
 * so the [n, 2I] intermediate is never written.
 * @module
 */
import { type Node, valueBytes } from "../ir/graph.ts";
import { type Pass, readers, rewrite } from "./pass.ts";

export const fuseGateUpSilu: Pass = {
  name: "fuse_gate_up_silu",
  flag: "fuse_gate_up_silu",
  run(fn, ctx) {
    const replace = new Map<number, Node>(), drop = new Set<number>();
    fn.nodes.forEach((mm, i) => {
      if (mm.spec.op !== "matmul" || mm.spec.epilogue !== "none" || mm.spec.bias) return;
      const users = readers(fn, mm.args.out);
      if (users.length !== 1) return;
      const silu = fn.nodes[users[0]];
      if (silu.spec.op !== "silu_mul" || 2 * silu.spec.inter !== mm.spec.N) return;
      if (mm.spec.rowStart !== 0 || mm.spec.rows !== mm.spec.N) return;
      // A weight over the binding limit must be split by rows, which this epilogue cannot be.
      const weights = ["weight", "q_weight", "q_scale"].filter((a) => a in mm.args).map((a) =>
        fn.values[mm.args[a]]
      );
      if (
        weights.some((w) =>
          valueBytes(w, fn.bounds) > ctx.target.limits.maxStorageBufferBindingSize
        )
      ) return;
      replace.set(i, {
        ...mm,
        spec: { ...mm.spec, epilogue: "silu_mul" },
        args: { ...mm.args, out: silu.args.out },
      });
      drop.add(users[0]);
    });
    return rewrite(fn, replace, drop);
  },
};
