/**
 * Figures read from a compiled library, no GPU: the bytes a decode step reads (its roofline),
 * the dispatches per layer and the constant, and a label per kernel for time breakdowns.
 * @module
 */
import type { KernelSpec } from "../../compiler/codegen/contract.ts";
import type { LibraryPlan } from "../../compiler/codegen/plan.ts";
import type { CompileMetadata } from "../../compiler/metadata.ts";
import { paramBytes } from "../../compiler/metadata.ts";
import { GEMV_MAX_ROWS } from "../../compiler/codegen/webgpu/matmul.ts";

/** Weight bytes one step of `fn` reads at `rows` sequences: every param a non-embed kernel
 * binds, whole (once per step, whatever the batch), plus `rows` rows of tables only `embed` reads. */
export function stepWeightBytes(
  plan: LibraryPlan,
  md: Pick<CompileMetadata, "params">,
  fn: string,
  rows: number,
): number {
  const info = new Map(md.params.map((p) => [p.name, p]));
  const full = new Set<string>(), embedOnly = new Set<string>();
  for (const step of plan.functions[fn].steps) {
    const op = plan.kernels[step.k].spec.op;
    for (const b of step.b) {
      if (!("param" in b)) continue;
      (op === "embed" ? embedOnly : full).add(b.param);
    }
  }
  let bytes = 0;
  for (const name of full) bytes += paramBytes(info.get(name)!);
  for (const name of embedOnly) {
    if (full.has(name)) continue;
    const p = info.get(name)!;
    bytes += Math.min(rows, p.shape[0]) * paramBytes(p) / p.shape[0];
  }
  return bytes;
}

/** Dispatches of `fn` per layer (steps binding a layer's params or KV cache, and steps that
 * bind neither between two steps of the same layer, e.g. `attention_merge`) and the rest. */
export function dispatchesPerLayer(
  plan: LibraryPlan,
  fn: string,
): { total: number; layers: number; maxPerLayer: number; constant: number } {
  const steps = plan.functions[fn].steps;
  const layerOf = steps.map((step) => {
    let layer = -1;
    for (const b of step.b) {
      if ("kv" in b) layer = b.kv;
      else if ("param" in b) {
        const m = /layers\.(\d+)\./.exec(b.param);
        if (m) layer = Number(m[1]);
      }
    }
    return layer;
  });
  const perLayer = new Map<number, number>();
  layerOf.forEach((layer, i) => {
    if (layer < 0) {
      const before = layerOf.slice(0, i).findLast((l) => l >= 0);
      const after = layerOf.slice(i + 1).find((l) => l >= 0);
      if (before === undefined || before !== after) return;
      layer = before;
    }
    perLayer.set(layer, (perLayer.get(layer) ?? 0) + 1);
  });
  const inLayers = [...perLayer.values()].reduce((a, b) => a + b, 0);
  return {
    total: steps.length,
    layers: perLayer.size,
    maxPerLayer: Math.max(0, ...perLayer.values()),
    constant: steps.length - inLayers,
  };
}

/** A short label of a kernel for breakdowns: the op, and the shape of matmuls. */
export function kernelLabel(spec: KernelSpec): string {
  if (spec.op !== "matmul") return spec.op;
  const epi = spec.epilogue === "none" ? "" : ` +${spec.epilogue}`;
  return `matmul ${spec.rows}x${spec.K}${epi}${spec.maxRows > GEMV_MAX_ROWS ? " tiled" : ""}`;
}
