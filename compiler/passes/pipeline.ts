/**
 * The optimisation pipeline, in named phases. Each phase is a list of passes; a pass runs when
 * its flag is on (or it has none). `--debug-dump` writes the IR after every phase.
 * @module
 */
import type { IrFunction } from "../ir/graph.ts";
import { verifyFunction } from "../ir/verify.ts";
import type { Pass, PassContext } from "./pass.ts";
import { fuseDequantizeMatmul } from "./fuse_dequantize_matmul.ts";
import { fuseAddNorm } from "./fuse_add_norm.ts";
import { fuseGateUpSilu } from "./fuse_gate_up_silu.ts";
import { fuseRopeKvAppend } from "./fuse_rope_kv_append.ts";
import { splitKvDecode } from "./split_kv_decode.ts";
import { deadCodeElimination } from "./dead_code_elimination.ts";
import { splitLargeWeights } from "./split_large_weights.ts";
import { memoryPlanning } from "./memory_planning.ts";
import { q8Activations } from "./q8_activations.ts";
import { fuseNormMatmul } from "./fuse_norm_matmul.ts";
import { q8UnitLayout } from "./q8_unit_layout.ts";
import { splitK } from "./split_k.ts";
import { q8Codes } from "./q8_codes.ts";
import { foldSumSplits, q8Writers } from "./fold_into_producers.ts";
import { kvF16Pass } from "./kv_f16.ts";
import { foldAttentionMerge } from "./fold_attention_merge.ts";

export interface Phase {
  name: string;
  passes: Pass[];
}

export const PHASES: readonly Phase[] = [
  // 1. Fusion: fewer dispatches, fewer intermediates.
  {
    name: "fusion",
    passes: [fuseDequantizeMatmul, fuseAddNorm, fuseGateUpSilu, fuseRopeKvAppend, splitKvDecode],
  },
  // 2. Cleanup.
  { name: "cleanup", passes: [deadCodeElimination] },
  // 3. Target specialisation: binding limits, the target's packed int8 dot products (the
  //    RMSNorm folded into the q8 GEMVs that read it, their x rows stored unit-major).
  //    Batched decode's few-row weights split K across workgroups; the q8 matmuls of batched
  //    decode and prompts read x quantised once, by its producer where it can; the split
  //    sums added up by their readers where they can. The KV cache in the model's dtype.
  //    Decode attention's merge folded into its last workgroups.
  {
    name: "target",
    passes: [
      splitLargeWeights,
      q8Activations,
      fuseNormMatmul,
      q8UnitLayout,
      splitK,
      q8Codes,
      foldSumSplits,
      q8Writers,
      kvF16Pass,
      foldAttentionMerge,
    ],
  },
  // 4. Static memory planning within the symbolic bounds.
  { name: "memory", passes: [memoryPlanning] },
];

/** Run every phase; `afterPhase` receives the functions after each (for --debug-dump). */
export function runPipeline(
  fns: IrFunction[],
  ctx: PassContext,
  afterPhase?: (phase: string, fns: IrFunction[]) => void,
): IrFunction[] {
  afterPhase?.("input", fns);
  for (const phase of PHASES) {
    fns = fns.map((fn) => {
      for (const pass of phase.passes) {
        if (pass.flag && !ctx.flags[pass.flag]) continue;
        fn = pass.run(fn, ctx);
        verifyFunction(fn);
      }
      return fn;
    });
    afterPhase?.(phase.name, fns);
  }
  return fns;
}
