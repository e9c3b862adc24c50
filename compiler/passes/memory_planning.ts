/**
 * Static memory planning within the symbolic bounds: every input, output and temp gets a buffer
 * slot sized at the function's bounds; temps whose lifetimes do not overlap share a slot
 * (best fit, growing the largest free slot when none fits). With the flag off, every value gets
 * a slot of its own (the plan still has to exist: the runtime allocates from it).
 * @module
 */
import { bindings } from "../ir/ops.ts";
import { type IrFunction, valueBytes } from "../ir/graph.ts";
import type { Pass, PassContext } from "./pass.ts";

export function planMemory(fn: IrFunction, share: boolean): IrFunction {
  const values = fn.values.map((v) => ({ ...v, slot: undefined as number | undefined }));
  const slots: number[] = [];
  const lastUse = new Map<number, number>();
  fn.nodes.forEach((n, i) => Object.values(n.args).forEach((id) => lastUse.set(id, i)));
  const own = (id: number) => {
    values[id].slot = slots.length;
    slots.push(valueBytes(values[id], fn.bounds));
  };
  for (const v of values) if (v.kind === "input" || v.kind === "output") own(v.id);
  const free: number[] = [];
  fn.nodes.forEach((node, i) => {
    for (const b of bindings(node.spec)) {
      const v = values[node.args[b.name]];
      if (b.access !== "read_write" || v.kind !== "temp" || v.slot !== undefined) continue;
      if (!share) {
        own(v.id);
        continue;
      }
      const need = valueBytes(v, fn.bounds);
      const fits = free.filter((s) => slots[s] >= need).sort((a, b) => slots[a] - slots[b]);
      let slot: number;
      if (fits.length > 0) slot = fits[0];
      else if (free.length > 0) {
        slot = free.reduce((a, b) => (slots[a] >= slots[b] ? a : b));
        slots[slot] = need;
      } else {
        slot = slots.length;
        slots.push(need);
      }
      free.splice(free.indexOf(slot), free.indexOf(slot) >= 0 ? 1 : 0);
      v.slot = slot;
    }
    // Release temps whose last use is this node (after its outputs were placed).
    for (const id of new Set(Object.values(node.args))) {
      const v = values[id];
      if (share && v.kind === "temp" && v.slot !== undefined && lastUse.get(id) === i) {
        free.push(v.slot);
      }
    }
  });
  return { ...fn, values, slots };
}

export const memoryPlanning: Pass = {
  name: "memory_planning",
  run: (fn: IrFunction, ctx: PassContext) => planMemory(fn, ctx.flags.memory_planning),
};
