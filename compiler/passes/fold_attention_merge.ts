/**
 * `fold_attention_merge`: an `attention_merge` reading the partials of one `attention_decode`
 * (its only reader) goes: the decode kernel's last workgroup of each (row, KV head) to finish
 * merges that KV head's splits itself (`merge`, with the merge's outUnits / outCodes), one
 * dispatch a layer fewer. The workgroups count themselves in a `state` value (zero between
 * dispatches: each leaves it so), one a function, shared by its layers. WebGPU targets where
 * the kernel can (`mergeFits`); after q8_unit_layout and q8_writers, which set the merge's
 * out layout.
 * @module
 */
import { type KernelSpec, mergedPartials } from "../codegen/contract.ts";
import { mergeFits } from "../codegen/webgpu/attention_decode.ts";
import { evalDim, type Node, type Value } from "../ir/graph.ts";
import { type Pass, readers, rewrite, writers } from "./pass.ts";

export const foldAttentionMerge: Pass = {
  name: "fold_attention_merge",
  flag: "fold_attention_merge",
  run(fn, ctx) {
    if (ctx.target.backend !== "webgpu") return fn;
    const replace = new Map<number, Node>(), drop = new Set<number>();
    const values: Value[] = [...fn.values];
    let counts = -1;
    fn.nodes.forEach((m, i) => {
      const ms = m.spec;
      if (ms.op !== "attention_merge") return;
      const [w] = writers(fn, m.args.part_o);
      const d = fn.nodes[w];
      if (w === undefined || d.spec.op !== "attention_decode" || d.spec.merge) return;
      const only = (id: number) => readers(fn, id).length === 1 && readers(fn, id)[0] === i;
      if (d.args.part_lse !== m.args.part_lse || !only(m.args.part_o) || !only(m.args.part_lse)) {
        return;
      }
      if (d.rows !== m.rows || d.args.positions !== m.args.positions) return;
      const spec: KernelSpec = {
        ...d.spec,
        merge: {
          ...(ms.outUnits ? { outUnits: true } : {}),
          ...(ms.outCodes ? { outCodes: true } : {}),
        },
      };
      if (!mergeFits(spec, ctx.target)) return;
      const rows = evalDim(d.rows, fn.bounds);
      if (counts < 0) {
        counts = values.length;
        values.push({
          id: counts,
          name: "attention_counts",
          kind: "state",
          shape: [rows * spec.kvHeads],
          dtype: "u32",
        });
      }
      const c = values[counts];
      c.shape = [Math.max(c.shape[0] as number, rows * spec.kvHeads)];
      // the log-sum-exps laid out a KV head a cache line (mergedPartials)
      const lse = values[d.args.part_lse];
      values[lse.id] = { ...lse, shape: [lse.shape[0], mergedPartials(spec).lseWords] };
      replace.set(w, { ...d, spec, args: { ...d.args, counts, out: m.args.out } });
      drop.add(i);
    });
    return drop.size ? rewrite({ ...fn, values }, replace, drop) : fn;
  },
};
