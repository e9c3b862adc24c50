/**
 * rope(qkv) → r, kv_append(r), attention(q = r) becomes rope_kv_append(qkv) → q, with the
 * rotated k and v written straight into the cache; attention then reads the compact q.
 * @module
 */
import type { Node } from "../ir/graph.ts";
import { addTemp, type Pass, readers, rewrite } from "./pass.ts";

export const fuseRopeKvAppend: Pass = {
  name: "fuse_rope_kv_append",
  flag: "fuse_rope_kv_append",
  run(fn) {
    const replace = new Map<number, Node>(), drop = new Set<number>();
    fn.nodes.forEach((rope, i) => {
      if (rope.spec.op !== "rope") return;
      const users = readers(fn, rope.args.out).map((u) => [u, fn.nodes[u]] as const);
      const app = users.find(([, n]) => n.spec.op === "kv_append");
      const att = users.find(([, n]) => n.spec.op === "attention");
      if (!app || !att || users.length !== 2) return;
      const [ai, an] = app, [ti, tn] = att;
      if (tn.spec.op !== "attention") return;
      const { heads, kvHeads, headDim, invFreq } = rope.spec;
      const src = fn.values[rope.args.out];
      const values = [...fn.values];
      const qId = addTemp(
        values,
        src.name.replace(/qkv_rope$/, "q_rope"),
        src.shape[0],
        heads * headDim,
      );
      fn = { ...fn, values };
      const { qkv: _, cache, ...paged } = an.args;
      replace.set(i, {
        spec: { op: "rope_kv_append", heads, kvHeads, headDim, invFreq },
        rows: rope.rows,
        args: { qkv: rope.args.x, ...paged, cache, q_out: qId },
      });
      replace.set(ti, {
        ...tn,
        spec: { ...tn.spec, qStride: heads * headDim },
        args: { ...tn.args, q: qId },
      });
      drop.add(ai);
    });
    return rewrite(fn, replace, drop);
  },
};
