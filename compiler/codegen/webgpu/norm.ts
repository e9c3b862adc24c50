/**
 * RMS norm kernels: `rms_norm` and `add_rms_norm` (residual add fused, the sum written too;
 * with `splits`, b added up from a kSplit matmul's partial sums as it is read). One workgroup
 * per row; the sum of squares is reduced in workgroup memory. With `outCodes` the normed row is
 * written as `quantize_q8` rows: each thread then takes pairs of vec4s (a quarter of a 32-element
 * block) and rounds them as `quantize_q8` does, the blocks' max and code sums met in workgroup
 * memory.
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
  splitSum,
  totalGroups,
  treeReduce,
} from "./common.ts";
import { pairMax, q8BlockMeta, quantisePair } from "./quantize_q8.ts";

type NormSpec = Extract<KernelSpec, { op: "rms_norm" | "add_rms_norm" }>;

/** WGSL for `rms_norm` or `add_rms_norm`. */
export function normKernel(spec: NormSpec, target: TargetInfo): WgslKernel {
  const H = spec.hidden;
  if (!(H > 0)) throw new RangeError(`${spec.op}: hidden ${H} must be positive`);
  for (const err of [foldedSplitsError(spec), q8CodesError(spec)]) {
    if (err) throw new RangeError(err);
  }
  if (spec.outCodes) return normCodesKernel(spec, target);
  const b = bSum(spec, "f32");
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
        ? `v${j} = a[base + c${j}] + ${b.at(`c${j}`)};
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
${b.decl && `${b.decl}\n`}var<workgroup> red: array<f32, ${T}>;

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

/** WGSL: element (or vec4) `i` of row `wg` of b, added up over its splits when it holds a
 * kSplit matmul's partial sums (rows of `splits` x H elements, `width` of them a `vt`; with
 * `splitRows`, the dispatch's first ones: `splitSum`). `decl` goes at module scope. */
function bSum(
  spec: NormSpec,
  vt: "f32" | "vec4<f32>",
): { decl: string; at: (i: string) => string } {
  const KS = spec.op === "add_rms_norm" ? spec.splits ?? 1 : 1;
  const width = vt === "f32" ? spec.hidden : spec.hidden / 4;
  const rows = spec.op === "add_rms_norm" ? spec.splitRows : undefined;
  const sum = splitSum("b_sum", vt, "b", KS, width, rows);
  return { decl: sum.decl, at: (i) => sum.call(`wg * ${KS * width}u + ${i}`) };
}

/** The `outCodes` form: a thread a pair of vec4s (8 elements, a quarter of a 32-element block;
 * several pairs `T` apart where the row has more than the workgroup's threads), held in
 * registers from the loads to the codes; the blocks' max |x| and code sums meet in workgroup
 * memory. */
function normCodesKernel(spec: NormSpec, target: TargetInfo): WgslKernel {
  const H = spec.hidden, NP = H / 8; // pairs of vec4s
  const fused = spec.op === "add_rms_norm";
  const b = bSum(spec, "vec4<f32>");
  const T = Math.min(reductionThreads(target, 1024), 2 ** Math.ceil(Math.log2(NP)));
  const PT = Math.ceil(NP / T); // pairs a thread
  checkTarget(spec, target, { workgroupSize: T, sharedBytes: 4 * T + 4 * NP });
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
  const pairs = range(PT);
  const guard = (j: number) => ((j + 1) * T <= NP ? "" : `if (q${j} < ${NP}u) `);
  const load = (j: number, h: number) => {
    const at = `2u * q${j} + ${h}u`;
    return fused
      ? `v${j}_${h} = a[base + ${at}] + ${b.at(at)}; sum[base + ${at}] = v${j}_${h};`
      : `v${j}_${h} = x[base + ${at}];`;
  };
  const wv = (j: number, h: number) =>
    `vec4<f32>(${range(4).map((c) => `w_at(8u * q${j} + ${4 * h + c}u)`).join(", ")})`;
  const code = `${declareBindings(spec, types)}
${denseReader("w", spec.weightDtype)}
${b.decl && `${b.decl}\n`}var<workgroup> red: array<f32, ${T}>;
var<workgroup> pm: array<f32, ${NP}>; // each pair's max |x|, then its code sum

${entry(T, totalGroups(1, 1))}
  let base = wg * ${H / 4}u;
  let ob = wg * ${W2}u;
  ${
    pairs.map((j) =>
      `let q${j} = lid + ${j * T}u;
  var v${j}_0 = vec4<f32>(0.0); var v${j}_1 = vec4<f32>(0.0);
  ${guard(j)}{ ${load(j, 0)} ${load(j, 1)} }`
    ).join("\n  ")
  }
  red[lid] = ${pairs.map((j) => `dot(v${j}_0, v${j}_0) + dot(v${j}_1, v${j}_1)`).join(" + ")};
  workgroupBarrier();
  ${treeReduce("red", T, (a, b) => `${a} + ${b}`)}
  let inv = inverseSqrt(red[0] / ${H}.0 + ${lit(spec.eps)});
  ${
    pairs.map((j) =>
      `let n${j}_0 = v${j}_0 * inv * ${wv(j, 0)}; let n${j}_1 = v${j}_1 * inv * ${wv(j, 1)};
  ${guard(j)}{ pm[q${j}] = ${pairMax(`n${j}_0`, `n${j}_1`)}; }`
    ).join("\n  ")
  }
  workgroupBarrier();
  ${
    pairs.map((j) =>
      `var am${j} = 0.0; var ks${j} = 0;
  ${guard(j)}{
    let f${j} = q${j} & ~3u; // the block's first pair
    am${j} = max(max(pm[f${j}], pm[f${j} + 1u]), max(pm[f${j} + 2u], pm[f${j} + 3u]));
    ${quantisePair(`n${j}_0`, `n${j}_1`, `am${j}`, `c${j}`)}
    out[ob + q${j}] = vec2<u32>(c${j}lo, c${j}hi);
    ks${j} = c${j}ks;
  }`
    ).join("\n  ")
  }
  workgroupBarrier();
  ${pairs.map((j) => `${guard(j)}{ pm[q${j}] = f32(ks${j}); }`).join("\n  ")}
  workgroupBarrier();
  ${
    pairs.map((j) =>
      `if (q${j} < ${NP}u && (q${j} & 3u) == 0u) {
    let s = pm[q${j}] + pm[q${j} + 1u] + pm[q${j} + 2u] + pm[q${j} + 3u];
    out[ob + ${H / 8}u + q${j} / 4u] = ${q8BlockMeta(`am${j}`, "s")};
  }`
    ).join("\n  ")
  }
}
`;
  return { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: 1 };
}
