/**
 * dequantize → matmul becomes one matmul that reads the quantised weight directly.
 * @module
 */
import type { Node } from "../ir/graph.ts";
import { type Pass, readers, rewrite } from "./pass.ts";

export const fuseDequantizeMatmul: Pass = {
  name: "fuse_dequantize_matmul",
  flag: "fuse_dequantize_matmul",
  run(fn) {
    const replace = new Map<number, Node>(), drop = new Set<number>();
    fn.nodes.forEach((node, i) => {
      if (node.spec.op !== "dequantize") return;
      const users = readers(fn, node.args.out);
      const ok = users.every((u) =>
        fn.nodes[u].spec.op === "matmul" && fn.nodes[u].args.weight === node.args.out
      );
      if (!ok || users.length === 0) return;
      for (const u of users) {
        const m = fn.nodes[u];
        if (m.spec.op !== "matmul") continue;
        const { weight: _, ...rest } = m.args;
        replace.set(u, {
          ...m,
          spec: { ...m.spec, weight: node.spec.weight },
          args: { ...rest, q_weight: node.args.q_weight, q_scale: node.args.q_scale },
        });
      }
      drop.add(i);
    });
    return rewrite(fn, replace, drop);
  },
};
