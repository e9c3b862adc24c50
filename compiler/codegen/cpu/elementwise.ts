/**
 * CPU elementwise kernels: `add`, `sum_splits` (a kSplit matmul's partial sums added up, with
 * its bias and residual) and `silu_mul` (out = silu(gate) * up on a fused [R, 2I] input).
 * @module
 */
import { type CpuKernel, type KernelSpec, splitsRead, sumSplitsError } from "../contract.ts";
import { denseReader } from "./half.ts";

type AddSpec = Extract<KernelSpec, { op: "add" }>;
type SumSplitsSpec = Extract<KernelSpec, { op: "sum_splits" }>;

/** The CPU kernel of a `sum_splits` spec. Bindings: part [R, splits * width], [bias],
 * [residual [R, width]], out [R, width]. */
export function sumSplitsKernel(spec: SumSplitsSpec): CpuKernel {
  const { width: W, splits: S } = spec;
  const err = sumSplitsError(spec);
  if (err) throw new RangeError(err);
  return (bufs, R) => {
    let b = 0;
    const part = new Float32Array(bufs[b++]);
    const bias = spec.bias ? denseReader(bufs[b++], spec.bias) : null;
    const res = spec.residual ? new Float32Array(bufs[b++]) : null;
    const out = new Float32Array(bufs[b]);
    const sums = summedSplits(part, R, S, W, splitsRead(S, spec.splitRows, R));
    for (let r = 0; r < R; r++) {
      for (let c = 0; c < W; c++) {
        out[r * W + c] = sums[r * W + c] + (bias ? bias(c) : 0) + (res ? res[r * W + c] : 0);
      }
    }
  };
}
/** Rows of `splits` partial sums ([R, splits * W]) added up in split order, the first `used`
 * of each row (the sum in f64, rounded once to f32, as `sum_splits` does): [R, W]. The CPU
 * form of a folded `sum_splits`. */
export function summedSplits(
  part: Float32Array,
  R: number,
  splits: number,
  W: number,
  used = splits,
): Float32Array {
  const out = new Float32Array(R * W);
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < W; c++) {
      let acc = 0;
      for (let s = 0; s < used; s++) acc += part[r * splits * W + s * W + c];
      out[r * W + c] = acc;
    }
  }
  return out;
}

type SiluMulSpec = Extract<KernelSpec, { op: "silu_mul" }>;

/** The CPU kernel of an `add` spec. Bindings: a, b [R, width], out [R, width]. */
export function addKernel(spec: AddSpec): CpuKernel {
  const { width } = spec;
  return (bufs, R) => {
    const a = new Float32Array(bufs[0]); // [R, width]
    const b = new Float32Array(bufs[1]); // [R, width]
    const out = new Float32Array(bufs[2]); // [R, width]
    const n = R * width;
    for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
  };
}

/** The CPU kernel of a `silu_mul` spec. Bindings: x [R, 2I], out [R, I]. */
export function siluMulKernel(spec: SiluMulSpec): CpuKernel {
  const I = spec.inter;
  return (bufs, R) => {
    const x = new Float32Array(bufs[0]); // [R, 2I]
    const out = new Float32Array(bufs[1]); // [R, I]
    for (let r = 0; r < R; r++) {
      const xo = r * 2 * I;
      for (let i = 0; i < I; i++) {
        const g = x[xo + i];
        out[r * I + i] = (g / (1 + Math.exp(-g))) * x[xo + I + i];
      }
    }
  };
}
