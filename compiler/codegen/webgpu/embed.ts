/**
 * `embed`: gathers table rows for token ids; a kernel holds table rows
 * [rowStart, rowStart + rows) and leaves rows of other ids untouched. With `normOut` (the first
 * layer's RMSNorm folded into it and its next matmul), a thread takes a chunk of 4 elements and
 * also writes them times the norm weight and their sum of squares (`out_w`, `out_ssq`; unit-major
 * with `outUnits`).
 * @module
 */
import { type KernelSpec, type TargetInfo, unitLayoutError, type WgslKernel } from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  denseReader,
  denseType,
  entry,
  reductionThreads,
  totalGroups,
  unitChunk,
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
  const units = unitLayoutError(spec);
  if (units) throw new RangeError(units);
  if (spec.normOut) return normOutKernel(spec, spec.normOut.weightDtype, T);
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

/** `embed` with `normOut`: a thread a chunk of 4 elements (C = ceil(H / 4) a row). */
function normOutKernel(spec: EmbedSpec, dtype: "f32" | "f16", T: number): WgslKernel {
  const H = spec.hidden, C = Math.ceil(H / 4);
  const blocks = Math.ceil(C / T);
  const types = {
    ids: "array<u32>",
    ...weightTypes(spec.weight),
    norm_w: denseType(dtype),
    out: "array<f32>",
    out_w: "array<f32>",
    out_ssq: "array<f32>",
  };
  // chunk q's place in out_w (in chunks) and out_ssq
  const at = spec.outUnits ? unitChunk("q", H) : "q";
  const code = `${declareBindings(spec, types)}
${weightReader(spec.weight, H)}
${denseReader("norm_w", dtype)}

${entry(T, totalGroups(1, blocks))}
  let r = wg / ${blocks}u;
  let id = ids[r];
  if (id < ${spec.rowStart}u || id - ${spec.rowStart}u >= ${spec.rows}u) { return; }
  let row = id - ${spec.rowStart}u;
  let q = (wg % ${blocks}u) * ${T}u + lid; // the chunk: elements 4q .. 4q + 3
  if (q >= ${C}u) { return; }
  var s = 0.0;
  for (var l = 0u; l < 4u; l++) {
    let c = 4u * q + l;
    if (c < ${H}u) {
      let v = w_at(row, c);
      out[r * ${H}u + c] = v;
      out_w[r * ${H}u + 4u * ${at} + l] = v * norm_w_at(c);
      s += v * v;
    }
  }
  out_ssq[r * ${C}u + ${at}] = s;
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: blocks };
}
