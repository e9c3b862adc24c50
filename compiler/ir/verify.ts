/**
 * The IR verifier: run after every pass (tests do). Checks that every node binds exactly the
 * bindings its op declares, that values exist, that nothing writes a param or input, that every
 * temp is written once before it is read, and that row dims agree with the node's row var.
 * @module
 */
import { bindings } from "./ops.ts";
import type { IrFunction, IrModule } from "./graph.ts";

export class IrVerifyError extends Error {
  override name = "IrVerifyError";
}

export function verifyFunction(fn: IrFunction): void {
  const fail = (i: number, msg: string): never => {
    throw new IrVerifyError(`${fn.name}: node ${i} (${fn.nodes[i]?.spec.op}): ${msg}`);
  };
  const written = new Set<number>();
  fn.nodes.forEach((node, i) => {
    const want = bindings(node.spec);
    const got = Object.keys(node.args);
    const names = want.map((b) => b.name);
    if (got.length !== names.length || !names.every((n) => n in node.args)) {
      fail(i, `binds [${got.join(", ")}] but the op declares [${names.join(", ")}]`);
    }
    for (const b of want) {
      const v = fn.values[node.args[b.name]];
      if (!v) fail(i, `binding ${b.name} names a missing value ${node.args[b.name]}`);
      if (b.access === "read_write") {
        if (v.kind === "param" || v.kind === "input") fail(i, `writes ${v.kind} ${v.name}`);
        // A weight split by rows (split_large_weights) writes disjoint parts of one output.
        const part = "rowStart" in node.spec && node.spec.rowStart > 0;
        if (v.kind === "temp" && written.has(v.id) && !part) {
          fail(i, `writes temp ${v.name} a second time`);
        }
      } else if ((v.kind === "temp" || v.kind === "output") && !written.has(v.id)) {
        fail(i, `reads ${v.name} before anything writes it`);
      }
    }
    for (const b of want) if (b.access === "read_write") written.add(node.args[b.name]);
    // The out binding's first dim is the node's row var.
    const out = fn.values[node.args.out ?? node.args.q_out ?? -1];
    if (out && out.kind !== "kv" && out.shape[0] !== node.rows) {
      fail(i, `output ${out.name} has rows ${out.shape[0]} but the node runs over ${node.rows}`);
    }
  });
  for (const v of fn.values) {
    if (v.kind === "output" && !written.has(v.id)) {
      throw new IrVerifyError(`${fn.name}: output ${v.name} is never written`);
    }
  }
}

export function verifyModule(mod: IrModule): void {
  for (const fn of mod.functions) verifyFunction(fn);
}
