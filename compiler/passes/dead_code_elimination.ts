/**
 * Remove nodes none of whose writes reach an output or the KV cache.
 * @module
 */
import { bindings } from "../ir/ops.ts";
import type { Pass } from "./pass.ts";

export const deadCodeElimination: Pass = {
  name: "dead_code_elimination",
  flag: "dead_code_elimination",
  run(fn) {
    const live = new Set(
      fn.values.filter((v) => v.kind === "output" || v.kind === "kv").map((v) => v.id),
    );
    const keep = new Array<boolean>(fn.nodes.length).fill(false);
    for (let i = fn.nodes.length - 1; i >= 0; i--) {
      const node = fn.nodes[i];
      const bs = bindings(node.spec);
      if (!bs.some((b) => b.access === "read_write" && live.has(node.args[b.name]))) continue;
      keep[i] = true;
      for (const b of bs) if (b.access === "read") live.add(node.args[b.name]);
    }
    return { ...fn, nodes: fn.nodes.filter((_, i) => keep[i]) };
  },
};
