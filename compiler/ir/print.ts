/**
 * Text form of the IR, written by `--debug-dump` after every phase.
 * @module
 */
import type { IrFunction, IrModule, Value } from "./graph.ts";

function specAttrs(spec: Record<string, unknown>): string {
  return Object.entries(spec)
    .filter(([k]) => k !== "op" && k !== "invFreq")
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(" ");
}

function show(v: Value): string {
  const slot = v.slot !== undefined ? ` @slot${v.slot}` : "";
  return `%${v.id}:${v.name}[${v.shape.join(",")}]${v.dtype}${slot}`;
}

export function printFunction(fn: IrFunction): string {
  const lines = [
    `func ${fn.name}(${Object.entries(fn.bounds).map(([k, v]) => `${k}<=${v}`).join(", ")}) {`,
  ];
  for (const v of fn.values) {
    if (v.kind === "input" || v.kind === "output") lines.push(`  ${v.kind} ${show(v)}`);
  }
  for (const node of fn.nodes) {
    const args = Object.entries(node.args).map(([k, id]) => `${k}=${show(fn.values[id])}`);
    lines.push(`  ${node.spec.op}<${node.rows}> ${specAttrs(node.spec)}`);
    lines.push(`      ${args.join(" ")}`);
  }
  if (fn.slots) lines.push(`  // slots: ${fn.slots.map((b) => b).join(", ")} bytes`);
  lines.push("}");
  return lines.join("\n");
}

export function printModule(mod: IrModule): string {
  return mod.functions.map(printFunction).join("\n\n") + "\n";
}
