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
  const T = Math.min(reductionThreads(target, 1024), 2 ** Math.ceil(Math.log2(H)));
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
  // Unrolled into named registers (a run-time-indexed local array would spill to memory).
  const idx = Array.from({ length: perThread }, (_, j) => j);
  const guard = (j: number) => (j * T + T <= H ? "true" : `c${j} < ${H}u`);
  const loads = idx.map((j) =>
    `let c${j} = lid + ${j * T}u;
  var v${j} = 0.0;
  if (${guard(j)}) {
    ${
      fused
        ? `v${j} = a[base + c${j}] + b[base + c${j}];
    sum[base + c${j}] = v${j};`
        : `v${j} = x[base + c${j}];`
    }
  }`
  ).join("\n  ");
  const stores = idx.map((j) =>
    `if (${guard(j)}) { out[base + c${j}] = v${j} * inv * w_at(c${j}); }`
  ).join("\n  ");
  const code = `${declareBindings(spec, types)}
${denseReader("w", spec.weightDtype)}
var<workgroup> red: array<f32, ${T}>;

${entry(T, totalGroups(1, 1))}
  let base = wg * ${H}u;
  ${loads}
  red[lid] = ${idx.map((j) => `v${j} * v${j}`).join(" + ")};
  workgroupBarrier();
  ${treeReduce("red", T, (a, b) => `${a} + ${b}`)}
  let inv = inverseSqrt(red[0] / ${H}.0 + ${lit(spec.eps)});
  ${stores}
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: 1 };
}
