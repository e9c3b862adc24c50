/**
 * Folds the RMSNorm between two q8 matmuls into them: matmul P → t, add_rms_norm(residual, t)
 * → sum, out, matmul C(out) become
 *   P with the add epilogue (t + residual is the new residual `sum`) and `normOut`: it also
 *     writes sum * w (`xw`) and the sums of squares of sum in chunks of 4 (`ssq`), and
 *   C with `norm`: it reads xw and ssq, and scales its products by the row's 1 / rms.
 * The norm's dispatch (a single-workgroup reduction per row, ~8 µs alone on an H100) is gone,
 * and neither matmul normalises a row itself: P's sums of squares come from the outputs it
 * already holds, and C adds up 4 / 32 of a float a weight row's element, in its reduction.
 * Applies where t and out feed nothing else and P computes the whole row (o_proj and down
 * into the next qkv, gate_up and lm_head in the q8 decode function). Runs after
 * `q8_activations`.
 * @module
 */
import type { Node } from "../ir/graph.ts";
import { addTemp, type Pass, readers, rewrite } from "./pass.ts";
import { isQ8Gemv } from "./q8_activations.ts";

export const fuseNormMatmul: Pass = {
  name: "fuse_norm_matmul",
  flag: "fuse_norm_matmul",
  run(fn) {
    const replace = new Map<number, Node>(), drop = new Set<number>();
    const values = [...fn.values];
    fn.nodes.forEach((n, i) => {
      const s = n.spec;
      if (s.op !== "add_rms_norm" || fn.values[n.args.out].kind !== "temp") return;
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
      // the consumer: the only reader of the normalised row
      const users = readers(fn, n.args.out);
      if (users.length !== 1 || users[0] <= i) return;
      const c = users[0], cn = fn.nodes[c], cs = cn.spec;
      if (
        cs.op !== "matmul" || !isQ8Gemv(cs) || cs.norm || cn.args.x !== n.args.out ||
        cs.K !== s.hidden || cn.rows !== n.rows
      ) return;
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
      replace.set(c, {
        ...cn,
        spec: { ...cs, norm: { eps: s.eps } },
        args: { ...cn.args, x: xw, x_ssq: ssq },
      });
      drop.add(i);
    });
    return rewrite({ ...fn, values }, replace, drop);
  },
};
