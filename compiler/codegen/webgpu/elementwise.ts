/**
 * Element-wise kernels: `add` (out = a + b), `sum_splits` (a kSplit matmul's partial sums
 * added up, then its bias and residual) and `silu_mul` (out = silu(gate) * up).
 * Each workgroup covers 4 * threads elements of one row; loads are coalesced.
 * @module
 */
import { type KernelSpec, sumSplitsError, type TargetInfo, type WgslKernel } from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  denseReader,
  denseType,
  entry,
  reductionThreads,
  splitSum,
  totalGroups,
} from "./common.ts";

type ElementwiseSpec = Extract<KernelSpec, { op: "add" | "silu_mul" | "sum_splits" }>;

/** WGSL for `add`, `sum_splits` or `silu_mul`. */
export function elementwiseKernel(spec: ElementwiseSpec, target: TargetInfo): WgslKernel {
  const T = reductionThreads(target, 256);
  const perGroup = 4 * T;
  const width = spec.op === "silu_mul" ? spec.inter : spec.width;
  if (!(width > 0)) throw new RangeError(`${spec.op}: width ${width} must be positive`);
  const splitsErr = spec.op === "sum_splits" ? sumSplitsError(spec) : null;
  if (splitsErr) throw new RangeError(splitsErr);
  const blocks = Math.ceil(width / perGroup);
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: 0 });
  const types: Record<string, string> = spec.op === "add"
    ? { a: "array<f32>", b: "array<f32>", out: "array<f32>" }
    : spec.op === "sum_splits"
    ? {
      part: "array<f32>",
      residual: "array<f32>",
      out: "array<f32>",
      ...(spec.bias ? { bias: denseType(spec.bias) } : {}),
    }
    : { x: "array<f32>", out: "array<f32>" };
  const parts = spec.op === "sum_splits"
    ? splitSum("part_sum", "f32", "part", spec.splits, width, spec.splitRows)
    : null;
  const body = spec.op === "add"
    ? `out[r * ${width}u + c] = a[r * ${width}u + c] + b[r * ${width}u + c];`
    : spec.op === "sum_splits"
    ? `let p = r * ${spec.splits * width}u + c;
      out[r * ${width}u + c] = ${parts!.call("p")}${spec.bias ? " + bias_at(c)" : ""}${
      spec.residual ? ` + residual[r * ${width}u + c]` : ""
    };`
    : `let g = x[r * ${2 * width}u + c];
      let u = x[r * ${2 * width}u + ${width}u + c];
      out[r * ${width}u + c] = g / (1.0 + exp(-g)) * u;`;
  const code = `${declareBindings(spec, types)}
${spec.op === "sum_splits" && spec.bias ? denseReader("bias", spec.bias) : ""}
${parts?.decl ? `${parts.decl}\n` : ""}
${entry(T, totalGroups(1, blocks))}
  let r = wg / ${blocks}u;
  let c0 = (wg % ${blocks}u) * ${perGroup}u + lid;
  for (var j = 0u; j < 4u; j++) {
    let c = c0 + j * ${T}u;
    if (c < ${width}u) {
      ${body}
    }
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: blocks };
}
