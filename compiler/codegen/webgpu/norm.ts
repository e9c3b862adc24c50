/**
 * RMS norm kernels: `rms_norm` and `add_rms_norm` (residual add fused, the sum written too;
 * with `splits`, b added up from a kSplit matmul's partial sums as it is read). One workgroup
 * per row; the sum of squares is reduced in workgroup memory. With `outCodes` the normed row is
 * written as `quantize_q8` rows: each thread then takes whole 32-element blocks (8 vec4s) and
 * rounds them as `quantize_q8` does, after the reduction.
 * @module
 */
import {
  foldedSplitsError,
  type KernelSpec,
  q8CodesError,
  type TargetInfo,
  type WgslKernel,
} from "../contract.ts";
import {
  checkTarget,
  declareBindings,
  denseReader,
  denseType,
  entry,
  lit,
  range,
  reductionThreads,
  totalGroups,
  treeReduce,
} from "./common.ts";
import { quantiseBlock } from "./quantize_q8.ts";

type NormSpec = Extract<KernelSpec, { op: "rms_norm" | "add_rms_norm" }>;

/** WGSL for `rms_norm` or `add_rms_norm`. */
export function normKernel(spec: NormSpec, target: TargetInfo): WgslKernel {
  const H = spec.hidden;
  if (!(H > 0)) throw new RangeError(`${spec.op}: hidden ${H} must be positive`);
  for (const err of [foldedSplitsError(spec), q8CodesError(spec)]) {
    if (err) throw new RangeError(err);
  }
  if (spec.outCodes) return normCodesKernel(spec, target);
  const KS = spec.op === "add_rms_norm" ? spec.splits ?? 1 : 1;
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
        ? `v${j} = a[base + c${j}] + ${bSum(KS, H, "f32", `c${j}`)};
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

/** WGSL: element (or vec4) `i` of row `wg` of b, added up over its `KS` splits when it holds a
 * kSplit matmul's partial sums (rows of KS * H elements, `width` of them a `vt`). */
function bSum(KS: number, H: number, vt: "f32" | "vec4<f32>", i: string): string {
  const width = vt === "f32" ? H : H / 4;
  if (KS === 1) return `b[wg * ${width}u + ${i}]`;
  return `(${range(KS).map((s) => `b[(wg * ${KS}u + ${s}u) * ${width}u + ${i}]`).join(" + ")})`;
}

/** The `outCodes` form: a thread a 32-element block (or several, `BT` apart), held in
 * registers from the loads to the codes. */
function normCodesKernel(spec: NormSpec, target: TargetInfo): WgslKernel {
  const H = spec.hidden, NB = H / 32;
  const fused = spec.op === "add_rms_norm";
  const KS = spec.op === "add_rms_norm" ? spec.splits ?? 1 : 1;
  const T = Math.min(reductionThreads(target, 256), 2 ** Math.ceil(Math.log2(NB)));
  const BT = Math.ceil(NB / T); // blocks a thread
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: 4 * T });
  const types: Record<string, string> = fused
    ? {
      a: "array<vec4<f32>>",
      b: "array<vec4<f32>>",
      w: denseType(spec.weightDtype),
      sum: "array<vec4<f32>>",
      out: "array<vec2<u32>>",
    }
    : { x: "array<vec4<f32>>", w: denseType(spec.weightDtype), out: "array<vec2<u32>>" };
  const W2 = (H / 4 + H / 16) / 2; // vec2 words of an out row
  const blocks = range(BT).map((j) => {
    const guard = (j + 1) * T <= NB ? "" : `if (u${j} < ${NB}u) `;
    return {
      load: `let u${j} = lid + ${j * T}u;
  ${range(8).map((i) => `var v${j}_${i} = vec4<f32>(0.0);`).join(" ")}
  ${guard}{
    ${
        range(8).map((i) => {
          const at = `u${j} * 8u + ${i}u`;
          return fused
            ? `v${j}_${i} = a[base + ${at}] + ${
              bSum(KS, H, "vec4<f32>", at)
            }; sum[base + ${at}] = v${j}_${i};`
            : `v${j}_${i} = x[base + ${at}];`;
        }).join("\n    ")
      }
  }`,
      ssq: range(8).map((i) => `dot(v${j}_${i}, v${j}_${i})`).join(" + "),
      store: `${guard}{
    ${
        range(8).map((i) =>
          `let n${j}_${i} = v${j}_${i} * inv * vec4<f32>(${
            range(4).map((c) => `w_at(u${j} * 32u + ${4 * i + c}u)`).join(", ")
          });`
        ).join("\n    ")
      }
    ${quantiseBlock((i) => `n${j}_${i}`, `q${j}`)}
    let ks${j} = ${range(8).map((i) => `q${j}k${i}`).join(" + ")};
    ${
        range(4).map((w) => `out[ob + u${j} * 4u + ${w}u] = vec2<u32>(q${j}lo${w}, q${j}hi${w});`)
          .join(" ")
      }
    out[ob + ${
        H / 8
      }u + u${j}] = bitcast<vec2<u32>>(vec2<f32>(q${j}a / 127.0, f32(ks${j}.x + ks${j}.y + ks${j}.z + ks${j}.w)));
  }`,
    };
  });
  const code = `${declareBindings(spec, types)}
${denseReader("w", spec.weightDtype)}
var<workgroup> red: array<f32, ${T}>;

${entry(T, totalGroups(1, 1))}
  let base = wg * ${H / 4}u;
  let ob = wg * ${W2}u;
  ${blocks.map((b) => b.load).join("\n  ")}
  red[lid] = ${blocks.map((b) => b.ssq).join(" + ")};
  workgroupBarrier();
  ${treeReduce("red", T, (a, b) => `${a} + ${b}`)}
  let inv = inverseSqrt(red[0] / ${H}.0 + ${lit(spec.eps)});
  ${blocks.map((b) => b.store).join("\n  ")}
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: 1 };
}
