/**
 * add(a, b) → s followed by rms_norm(s) becomes add_rms_norm, which writes both s (the new
 * residual) and the normalised output.
 * @module
 */
import type { Node } from "../ir/graph.ts";
import { type Pass, readers, rewrite } from "./pass.ts";

export const fuseAddNorm: Pass = {
  name: "fuse_add_norm",
  flag: "fuse_add_norm",
  run(fn) {
    const replace = new Map<number, Node>(), drop = new Set<number>();
    fn.nodes.forEach((add, i) => {
      if (add.spec.op !== "add") return;
      const norm = readers(fn, add.args.out)
        .map((u) => [u, fn.nodes[u]] as const)
        .find(([u, n]) => n.spec.op === "rms_norm" && n.args.x === add.args.out && !drop.has(u));
      if (!norm) return;
      const [u, n] = norm;
      if (n.spec.op !== "rms_norm" || n.spec.hidden !== add.spec.width || n.rows !== add.rows) {
        return;
      }
      replace.set(i, {
        spec: {
          op: "add_rms_norm",
          hidden: n.spec.hidden,
          eps: n.spec.eps,
          weightDtype: n.spec.weightDtype,
        },
        rows: add.rows,
        args: { a: add.args.a, b: add.args.b, w: n.args.w, sum: add.args.out, out: n.args.out },
      });
      drop.add(u);
    });
    return rewrite(fn, replace, drop);
  },
};
