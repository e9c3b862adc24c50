/**
 * `embed`: gathers table rows for token ids; a kernel holds table rows
 * [rowStart, rowStart + rows) and leaves rows of other ids untouched.
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

type EmbedSpec = Extract<KernelSpec, { op: "embed" }>;

/** WGSL for `embed` (dense or group-quantised table). */
export function embedKernel(spec: EmbedSpec, target: TargetInfo): WgslKernel {
  const H = spec.hidden;
  if (!(H > 0 && spec.rows > 0)) {
    throw new RangeError(`embed: hidden ${H} and rows ${spec.rows} must be positive`);
  }
  const T = reductionThreads(target, 256);
  const perGroup = 4 * T;
  const blocks = Math.ceil(H / perGroup);
  checkTarget(spec, target, {
    workgroupSize: T,
    sharedBytes: 0,
    largestBinding: weightBindingBytes(spec.weight, spec.rows, H),
  });
  const types = { ids: "array<u32>", out: "array<f32>", ...weightTypes(spec.weight) };
  const code = `${declareBindings(spec, types)}
${weightReader(spec.weight, H)}

${entry(T, totalGroups(1, blocks))}
  let r = wg / ${blocks}u;
  let id = ids[r];
  if (id < ${spec.rowStart}u || id - ${spec.rowStart}u >= ${spec.rows}u) { return; }
  let row = id - ${spec.rowStart}u;
  let c0 = (wg % ${blocks}u) * ${perGroup}u + lid;
  for (var j = 0u; j < 4u; j++) {
    let c = c0 + j * ${T}u;
    if (c < ${H}u) { out[r * ${H}u + c] = w_at(row, c); }
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: blocks };
}
