/**
 * rms_norm / add_rms_norm whose normalised output only feeds one q8 matmul (`xq8`) becomes
 * that matmul's RMSNorm prologue (`norm`): every workgroup of the GEMV normalises the row it
 * already reads (one extra pass over a 4096-float row from cache) and one writes the residual
 * sum, so the norm's own dispatch (a single-workgroup reduction per row, ~8 µs on an H100) is
 * gone. Runs after `q8_activations`.
 * @module
 */
import type { Node } from "../ir/graph.ts";
import { type Pass, readers, rewrite } from "./pass.ts";

export const fuseNormMatmul: Pass = {
  name: "fuse_norm_matmul",
  flag: "fuse_norm_matmul",
  run(fn) {
    const replace = new Map<number, Node>(), drop = new Set<number>();
    fn.nodes.forEach((n, i) => {
      const s = n.spec;
      if (s.op !== "rms_norm" && s.op !== "add_rms_norm") return;
      if (fn.values[n.args.out].kind !== "temp") return;
      const users = readers(fn, n.args.out);
      if (users.length !== 1 || users[0] <= i) return;
      const j = users[0], m = fn.nodes[j];
      const ms = m.spec;
      if (ms.op !== "matmul" || !ms.xq8 || ms.norm || m.args.x !== n.args.out) return;
      if (ms.K !== s.hidden || m.rows !== n.rows) return;
      const add = s.op === "add_rms_norm";
      // the sum is now written at the matmul's place: nothing before it may read the sum
      if (add && readers(fn, n.args.sum).some((u) => u <= j)) return;
      const { x: _x, ...rest } = m.args;
      replace.set(j, {
        ...m,
        spec: { ...ms, norm: { eps: s.eps, weightDtype: s.weightDtype, add } },
        args: {
          ...rest,
          ...(add ? { a: n.args.a, b: n.args.b, sum: n.args.sum } : { a: n.args.x }),
          w: n.args.w,
        },
      });
      drop.add(i);
    });
    return rewrite(fn, replace, drop);
  },
};
