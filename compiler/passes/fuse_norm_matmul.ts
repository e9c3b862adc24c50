/**
 * Folds the RMSNorm between two q8 matmuls into them: matmul P → t, add_rms_norm(residual, t)
 * → sum, out, matmul C(out) become
 *   P with the add epilogue (t + residual is the new residual `sum`) and `normOut`: it also
 *     writes sum * w (`xw`) and the sums of squares of sum in chunks of 4 (`ssq`), and
 *   C with `norm`: it reads xw and ssq, and scales its products by the row's 1 / rms.
 * The norm's dispatch (a single-workgroup reduction per row, ~8 µs alone on an H100) is gone,
 * and neither matmul normalises a row itself: P's sums of squares come from the outputs it
 * already holds, and C adds up 4 / 32 of a float a weight row's element, in its reduction.
 * Applies where t feeds nothing else, out only q8 GEMVs, and P computes the whole row (o_proj
 * and down into the next qkv, gate_up and lm_head's parts in the q8 decode function). The
 * first layer's rms_norm(x) → out folds the same way where x is written by the embedding's
 * parts only (they take `normOut`: the row each writes, weighted, and its squares). Runs
 * after `q8_activations`.
 * @module
 */
import type { Node } from "../ir/graph.ts";
import { addTemp, type Pass, readers, rewrite, writers } from "./pass.ts";
import { isQ8Gemv } from "./q8_activations.ts";

export const fuseNormMatmul: Pass = {
  name: "fuse_norm_matmul",
  flag: "fuse_norm_matmul",
  run(fn) {
    const replace = new Map<number, Node>(), drop = new Set<number>();
    const values = [...fn.values];
    /** The q8 GEMVs reading only the norm node i's output, or null. */
    const consumers = (i: number, hidden: number): number[] | null => {
      const n = fn.nodes[i];
      const users = readers(fn, n.args.out);
      const ok = (c: number) => {
        const cn = fn.nodes[c], cs = cn.spec;
        return c > i && cs.op === "matmul" && isQ8Gemv(cs) && !cs.norm &&
          cn.args.x === n.args.out && cs.K === hidden && cn.rows === n.rows && !replace.has(c);
      };
      return users.length && users.every(ok) ? users : null;
    };
    /** Gives the consumers `norm`: they read xw and ssq. */
    const fold = (users: number[], eps: number, xw: number, ssq: number) => {
      for (const c of users) {
        const cn = fn.nodes[c];
        replace.set(c, {
          ...cn,
          spec: { ...cn.spec, norm: { eps } } as Node["spec"],
          args: { ...cn.args, x: xw, x_ssq: ssq },
        });
      }
    };
    fn.nodes.forEach((n, i) => {
      const s = n.spec;
      if (fn.values[n.args.out]?.kind !== "temp") return;
      if (s.op === "rms_norm" && !s.outCodes) {
        // the first layer's norm: its x written by the embedding's parts only (which then
        // write the weighted row and its squares too), its output read by q8 GEMVs only
        const ps = writers(fn, n.args.x);
        const embeds = ps.length > 0 && ps.every((p) => {
          const e = fn.nodes[p].spec;
          return p < i && e.op === "embed" && !e.normOut && e.hidden === s.hidden &&
            fn.nodes[p].rows === n.rows && !replace.has(p);
        });
        const users = embeds ? consumers(i, s.hidden) : null;
        if (!users) return;
        const name = fn.values[n.args.out].name;
        const xw = addTemp(values, `${name}_w`, n.rows, s.hidden);
        const ssq = addTemp(values, `${name}_ssq`, n.rows, Math.ceil(s.hidden / 4));
        for (const p of ps) {
          const pn = fn.nodes[p];
          replace.set(p, {
            ...pn,
            spec: { ...pn.spec, normOut: { weightDtype: s.weightDtype } } as Node["spec"],
            args: { ...pn.args, norm_w: n.args.w, out_w: xw, out_ssq: ssq },
          });
        }
        fold(users, s.eps, xw, ssq);
        drop.add(i);
        return;
      }
      if (s.op !== "add_rms_norm") return;
      // the producer: the matmul before this norm that wrote a or b, read by the norm only
      const found = [[n.args.b, n.args.a], [n.args.a, n.args.b]]
        .map(([t, residual]) => ({ t, residual, p: fn.nodes.findIndex((m) => m.args.out === t) }))
        .find(({ p }) => p >= 0 && p < i && fn.nodes[p].spec.op === "matmul");
      if (!found) return;
      const { t, residual, p } = found;
      if (fn.values[t].kind !== "temp" || readers(fn, t).length !== 1) return;
      const pn = fn.nodes[p], ps = pn.spec;
      if (
        ps.op !== "matmul" || !isQ8Gemv(ps) || ps.normOut || ps.epilogue !== "none" ||
        ps.rowStart !== 0 || ps.rows !== ps.N || ps.N !== s.hidden || pn.rows !== n.rows ||
        replace.has(p)
      ) return;
      // the consumers: every reader of the normalised row (lm_head's parts after
      // split_large_weights are two)
      const users = consumers(i, s.hidden);
      if (!users) return;
      // nothing between P and the norm may read the sum (it is now written at P's place)
      if (readers(fn, n.args.sum).some((u) => u < i)) return;
      const name = fn.values[n.args.out].name;
      const xw = addTemp(values, `${name}_w`, n.rows, s.hidden);
      const ssq = addTemp(values, `${name}_ssq`, n.rows, Math.ceil(s.hidden / 4));
      replace.set(p, {
        ...pn,
        spec: { ...ps, epilogue: "add", normOut: { weightDtype: s.weightDtype } },
        args: { ...pn.args, residual, norm_w: n.args.w, out: n.args.sum, out_w: xw, out_ssq: ssq },
      });
      fold(users, s.eps, xw, ssq);
      drop.add(i);
    });
    return rewrite({ ...fn, values }, replace, drop);
  },
};
