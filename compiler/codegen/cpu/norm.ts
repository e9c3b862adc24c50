/**
 * CPU RMS normalisation: `rms_norm` and the fused residual add + norm `add_rms_norm`.
 * out = x / sqrt(mean(x^2) + eps) * w, with the sum of squares accumulated in f64.
 * @module
 */
import {
  type CpuKernel,
  foldedSplitsError,
  type KernelSpec,
  q8CodesError,
  splitsRead,
} from "../contract.ts";
import { denseVector } from "./half.ts";
import { summedSplits } from "./elementwise.ts";
import { q8RowWriter } from "./matmul.ts";

type RmsNormSpec = Extract<KernelSpec, { op: "rms_norm" }>;
type AddRmsNormSpec = Extract<KernelSpec, { op: "add_rms_norm" }>;

/** out[o .. o+H) = x[o .. o+H) * inv_rms * w (the sum of squares in f64). */
function normRow(
  x: Float32Array,
  w: Float32Array,
  out: Float32Array,
  o: number,
  H: number,
  eps: number,
) {
  let ss = 0;
  for (let i = 0; i < H; i++) ss += x[o + i] * x[o + i];
  const inv = 1 / Math.sqrt(ss / H + eps);
  for (let i = 0; i < H; i++) out[o + i] = x[o + i] * inv * w[i];
}

/** The CPU kernel of a `rms_norm` spec. Bindings: x [R, H], w [H], out [R, H] (with
 * `outCodes`: quantize_q8 rows). */
export function rmsNormKernel(spec: RmsNormSpec): CpuKernel {
  const { hidden: H, eps, weightDtype } = spec;
  const codes = outCodes(spec);
  return (bufs, R) => {
    const x = new Float32Array(bufs[0]); // [R, H]
    const w = denseVector(bufs[1], weightDtype, H); // [H]
    const out = codes ? new Float32Array(R * H) : new Float32Array(bufs[2]); // [R, H]
    for (let r = 0; r < R; r++) normRow(x, w, out, r * H, H, eps);
    codes?.(out, R, bufs[2]);
  };
}

/** The CPU kernel of an `add_rms_norm` spec. Bindings: a [R, H], b [R, H] (with `splits`:
 * [R, splits * H]), w [H], sum [R, H], out [R, H] (with `outCodes`: quantize_q8 rows). */
export function addRmsNormKernel(spec: AddRmsNormSpec): CpuKernel {
  const { hidden: H, eps, weightDtype } = spec;
  const err = foldedSplitsError(spec);
  if (err) throw new RangeError(err);
  const codes = outCodes(spec);
  return (bufs, R) => {
    const a = new Float32Array(bufs[0]); // [R, H]
    const b = spec.splits
      ? summedSplits(
        new Float32Array(bufs[1]),
        R,
        spec.splits,
        H,
        splitsRead(spec.splits, spec.splitRows, R),
      )
      : new Float32Array(bufs[1]); // [R, H]
    const w = denseVector(bufs[2], weightDtype, H); // [H]
    const sum = new Float32Array(bufs[3]); // [R, H]
    const out = codes ? new Float32Array(R * H) : new Float32Array(bufs[4]); // [R, H]
    for (let r = 0; r < R; r++) {
      const o = r * H;
      for (let i = 0; i < H; i++) sum[o + i] = a[o + i] + b[o + i];
      normRow(sum, w, out, o, H, eps);
    }
    codes?.(out, R, bufs[4]);
  };
}

/** The q8 row writer of a norm with `outCodes` (checked), or null. */
function outCodes(spec: RmsNormSpec | AddRmsNormSpec) {
  const err = q8CodesError(spec);
  if (err) throw new RangeError(err);
  return spec.outCodes ? q8RowWriter(spec.hidden) : null;
}
