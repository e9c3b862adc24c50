/**
 * `dequantize` (O0 path): expands a group-quantised [N, K] weight to f32. The kernel covers
 * the whole matrix for any dispatch of R >= 1 rows (it does not depend on R).
 * @module
 */
import type { KernelSpec, TargetInfo, WgslKernel } from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  entry,
  reductionThreads,
  totalGroups,
  weightBindingBytes,
  weightReader,
  weightTypes,
} from "./common.ts";

type DequantizeSpec = Extract<KernelSpec, { op: "dequantize" }>;

/** One row block as large as any R: every dispatch with R >= 1 runs all workgroups once. */
const ALL_ROWS = 2 ** 30;

/** WGSL for `dequantize`. */
export function dequantizeKernel(spec: DequantizeSpec, target: TargetInfo): WgslKernel {
  const { N, K } = spec;
  if (!(N > 0 && K > 0)) throw new RangeError(`dequantize: N ${N} and K ${K} must be positive`);
  const T = reductionThreads(target, 256);
  const perGroup = 4 * T;
  const blocks = Math.ceil((N * K) / perGroup);
  checkTarget(spec, target, {
    workgroupSize: T,
    sharedBytes: 0,
    largestBinding: Math.max(weightBindingBytes(spec.weight, N, K), N * K * 4),
  });
  const types = { out: "array<f32>", ...weightTypes(spec.weight) };
  const code = `${declareBindings(spec, types)}
${weightReader(spec.weight, K)}

${entry(T, totalGroups(ALL_ROWS, blocks))}
  let i0 = wg * ${perGroup}u + lid;
  for (var j = 0u; j < 4u; j++) {
    let i = i0 + j * ${T}u;
    if (i < ${N * K}u) { out[i] = w_at(i / ${K}u, i % ${K}u); }
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: ALL_ROWS, groupsPerRowBlock: blocks };
}
