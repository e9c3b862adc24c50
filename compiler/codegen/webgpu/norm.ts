/**
 * RMS norm kernels: `rms_norm` and `add_rms_norm` (residual add fused, the sum written too).
 * One workgroup per row; the sum of squares is reduced in workgroup memory.
 * @module
 */
import type { KernelSpec, TargetInfo, WgslKernel } from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  denseReader,
  denseType,
  entry,
  lit,
  reductionThreads,
  totalGroups,
  treeReduce,
} from "./common.ts";

type NormSpec = Extract<KernelSpec, { op: "rms_norm" | "add_rms_norm" }>;

/** WGSL for `rms_norm` or `add_rms_norm`. */
export function normKernel(spec: NormSpec, target: TargetInfo): WgslKernel {
  const H = spec.hidden;
  if (!(H > 0)) throw new RangeError(`${spec.op}: hidden ${H} must be positive`);
  const T = Math.min(reductionThreads(target, 256), 2 ** Math.ceil(Math.log2(H)));
  const perThread = Math.ceil(H / T);
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: 4 * T });
  const fused = spec.op === "add_rms_norm";
  const types: Record<string, string> = fused
    ? {
      a: "array<f32>",
      b: "array<f32>",
      w: denseType(spec.weightDtype),
      sum: "array<f32>",
      out: "array<f32>",
    }
    : { x: "array<f32>", w: denseType(spec.weightDtype), out: "array<f32>" };
  const load = fused
    ? `let v = a[base + c] + b[base + c];
      sum[base + c] = v;`
    : `let v = x[base + c];`;
  const code = `${declareBindings(spec, types)}
${denseReader("w", spec.weightDtype)}
var<workgroup> red: array<f32, ${T}>;

${entry(T, totalGroups(1, 1))}
  let base = wg * ${H}u;
  var vals: array<f32, ${perThread}>;
  var ss = 0.0;
  for (var j = 0u; j < ${perThread}u; j++) {
    let c = lid + j * ${T}u;
    if (c < ${H}u) {
      ${load}
      vals[j] = v;
      ss += v * v;
    }
  }
  red[lid] = ss;
  workgroupBarrier();
  ${treeReduce("red", T, (a, b) => `${a} + ${b}`)}
  let inv = inverseSqrt(red[0] / ${H}.0 + ${lit(spec.eps)});
  for (var j = 0u; j < ${perThread}u; j++) {
    let c = lid + j * ${T}u;
    if (c < ${H}u) { out[base + c] = vals[j] * inv * w_at(c); }
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: 1 };
}
