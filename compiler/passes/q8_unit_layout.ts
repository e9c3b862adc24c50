/**
 * The rows that q8 matmuls read are stored unit-major (the contract's `unitMajorIndex`) by the
 * kernel that writes them, so that the q8 GEMV's threads, one 32-element unit each, read x in
 * consecutive memory rather than 128 bytes apart. Applies where a temp x is written by
 *   a `normOut` matmul (as out_w, its sums of squares out_ssq going the same way: o_proj and
 *     down into the next qkv and gate_up),
 *   a silu_mul matmul (gate_up into down),
 *   attention_merge (into o_proj), or
 *   the embedding's `normOut` parts (the first layer's qkv),
 * and read by xq8 matmuls only, with every width a multiple of 32. Runs after
 * `fuse_norm_matmul`.
 * @module
 */
import type { Node } from "../ir/graph.ts";
import { type Pass, readers, rewrite, writers } from "./pass.ts";
import { isQ8Gemv } from "./q8_activations.ts";

export const q8UnitLayout: Pass = {
  name: "q8_unit_layout",
  flag: "q8_unit_layout",
  run(fn) {
    const replace = new Map<number, Node>();
    const cur = (i: number) => replace.get(i) ?? fn.nodes[i]; // (a node may read and write)
    fn.nodes.forEach((_, i) => {
      const p = cur(i), s = p.spec;
      // the row p writes for the matmuls, and its width
      let x: number, width: number;
      if (s.op === "attention_merge") [x, width] = [p.args.out, s.heads * s.headDim];
      else if (s.op === "matmul" && s.normOut) [x, width] = [p.args.out_w, s.N];
      else if (s.op === "matmul" && s.epilogue === "silu_mul") [x, width] = [p.args.out, s.N / 2];
      else if (s.op === "embed" && s.normOut) [x, width] = [p.args.out_w, s.hidden];
      else return;
      // (the embedding's parts write one row together: each the rows of its own ids)
      const ws = writers(fn, x);
      const together = s.op === "embed"
        ? ws.every((w) => cur(w).spec.op === "embed" && !(cur(w).spec as typeof s).outUnits)
        : ws.length === 1;
      if (width % 32 !== 0 || fn.values[x].kind !== "temp" || !together) return;
      const users = readers(fn, x);
      const ssq = (s.op === "matmul" || s.op === "embed") && s.normOut ? p.args.out_ssq : undefined;
      const fits = users.length > 0 && users.every((u) => {
        const c = cur(u), cs = c.spec;
        return cs.op === "matmul" && isQ8Gemv(cs) && !cs.xUnits && c.args.x === x &&
          cs.K === width &&
          (ssq === undefined ? !cs.norm : !!cs.norm && c.args.x_ssq === ssq);
      });
      if (!fits || (ssq !== undefined && readers(fn, ssq).some((u) => !users.includes(u)))) return;
      for (const w of ws) {
        replace.set(w, { ...cur(w), spec: { ...cur(w).spec, outUnits: true } as Node["spec"] });
      }
      for (const u of users) {
        const c = cur(u);
        replace.set(u, { ...c, spec: { ...c.spec, xUnits: true } as Node["spec"] });
      }
    });
    return replace.size ? rewrite(fn, replace, new Set()) : fn;
  },
};
