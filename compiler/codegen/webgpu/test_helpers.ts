/**
 * Helpers for the WebGPU kernel tests: the shared test device (null without an adapter), a
 * seeded RNG, packing of test data into the contract's formats, a run-one-kernel helper and
 * a max-error comparison. Test data is packed from the contract's text, not from `compiler/quant`.
 * @module
 */
import {
  bindings,
  type DenseDtype,
  groupLayout,
  type KernelSpec,
  PAGE_SIZE,
  type WeightFormat,
  type WgslKernel,
} from "../contract.ts";
import { quantizeQ8Rows } from "../cpu/matmul.ts";
import { f16ToF32, f32ToF16 } from "../../weights/dtype.ts";
import type { DeviceKernel } from "../../../engine/device.ts";
import { createWebGpuDevice, type WebGpuDevice } from "../../../engine/devices/webgpu.ts";
import { wgslKernel } from "./mod.ts";

/** The device the tests run on, or null (tests are then ignored). */
export const device: WebGpuDevice | null = await createWebGpuDevice().catch(() => null);

/** Seeded draws: the conformance suite's generator. */
import { Rng } from "../../../tests/conformance/helpers.ts";
export { Rng };

/** Bytes of a view in a fresh ArrayBuffer padded to 4 bytes. */
export function buf(view: ArrayBufferView): ArrayBuffer {
  const out = new ArrayBuffer(Math.ceil(view.byteLength / 4) * 4);
  new Uint8Array(out).set(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
  return out;
}

/** Values rounded through f16 (what an f16 buffer of them holds). */
export function roundF16(v: Float32Array): Float32Array {
  return f16ToF32(f32ToF16(v));
}

/** A dense buffer of `v` in `dtype`, and the values it holds (f16-rounded when f16). */
export function dense(
  v: Float32Array,
  dtype: "f32" | "f16",
): { data: ArrayBuffer; values: Float32Array } {
  return dtype === "f32"
    ? { data: buf(v), values: v }
    : { data: buf(f32ToF16(v)), values: roundF16(v) };
}

/** A random weight [N, K] in `format`: its binding buffers and dequantised values [N, K]. */
export function randomWeight(
  rng: Rng,
  format: WeightFormat,
  N: number,
  K: number,
): { buffers: ArrayBuffer[]; values: Float64Array } {
  if (format.kind === "dense") {
    const d = dense(rng.normals(N * K, 0.5), format.dtype);
    return { buffers: [d.data], values: Float64Array.from(d.values) };
  }
  const { elemsPerWord: E, groups, wordsPerRow, maxInt } = groupLayout(format, K);
  const G = format.groupSize;
  const scale = dense(rng.normals(N * groups, 0.05), format.scaleDtype); // [N, groups]
  const words = new Uint32Array(N * wordsPerRow); // [N, wordsPerRow]
  const values = new Float64Array(N * K); // [N, K]
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < groups * G; k++) {
      const code = k < K ? rng.int(2 ** format.bits) : maxInt;
      const wi = n * wordsPerRow + Math.floor(k / E);
      words[wi] += code * 2 ** (format.bits * (k % E));
      if (k < K) values[n * K + k] = (code - maxInt) * scale.values[n * groups + Math.floor(k / G)];
    }
  }
  return { buffers: [buf(words), scale.data], values };
}

/** Pipelines made by `runKernel`, by spec and WGSL (a case run at several R compiles once). */
const pipelines = new Map<string, Promise<DeviceKernel>>();

/**
 * Compiles `spec` for the test device (or takes `source`), runs it over `rows` rows with `inputs` (one buffer per
 * binding, written bindings holding their starting contents) and returns every binding's
 * contents afterwards.
 */
export async function runKernel(
  spec: KernelSpec,
  rows: number,
  inputs: ArrayBuffer[],
  source?: WgslKernel,
): Promise<ArrayBuffer[]> {
  const dev = device!;
  const names = bindings(spec);
  if (inputs.length !== names.length) {
    throw new RangeError(
      `runKernel(${spec.op}): ${inputs.length} inputs for ${names.length} bindings`,
    );
  }
  const wgsl = source ?? wgslKernel(spec, dev.target);
  const key = `${JSON.stringify(spec)}\0${wgsl.code}`;
  let made = pipelines.get(key);
  if (!made) pipelines.set(key, made = dev.kernels([{ spec, source: wgsl }]).then(([k]) => k));
  const kernel = await made;
  const bufs = inputs.map((data, i) => {
    const b = dev.createBuffer(data.byteLength, names[i].name);
    if (data.byteLength > 0) dev.write(b, new Uint8Array(data));
    return b;
  });
  dev.dispatch(kernel, bufs, rows);
  const out = [];
  for (const b of bufs) out.push(await dev.read(b));
  for (const b of bufs) dev.release(b);
  return out;
}

/** max |a - ref| / max |ref| (max |ref| floored at 1e-30). */
export function relErr(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (a.length < ref.length) throw new RangeError(`got ${a.length} values, expected ${ref.length}`);
  let err = 0, mag = 1e-30;
  for (let i = 0; i < ref.length; i++) {
    err = Math.max(err, Number.isNaN(a[i]) ? Infinity : Math.abs(a[i] - ref[i]));
    mag = Math.max(mag, Math.abs(ref[i]));
  }
  return err / mag;
}

/** Throws unless relErr(actual, ref) <= tol, naming the case. */
export function expectClose(
  actual: ArrayLike<number>,
  ref: ArrayLike<number>,
  tol: number,
  what: string,
): void {
  const err = relErr(actual, ref);
  if (!(err <= tol)) throw new Error(`${what}: relative error ${err} exceeds ${tol}`);
}

/** A paged KV layout for sequences of `lens` tokens: shuffled pages, indptr [b + 1], indices. */
export function pagedLayout(rng: Rng, lens: number[]) {
  const counts = lens.map((n) => Math.ceil(n / PAGE_SIZE));
  const total = counts.reduce((a, b) => a + b, 0);
  const perm = Array.from({ length: total }, (_, i) => i);
  for (let i = total - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const indptr = new Uint32Array(lens.length + 1); // [b + 1]
  counts.forEach((c, s) => indptr[s + 1] = indptr[s] + c);
  return { indptr, indices: Uint32Array.from(perm), numPages: total };
}

type MatmulSpec = Extract<KernelSpec, { op: "matmul" }>;

/** Random inputs of a matmul case over R rows, in binding order: x [R, K], the weight's
 * buffers, [bias [N]], [residual [R, N]], and out's starting contents (columns outside the
 * slice keep them). */
export function matmulInputs(rng: Rng, spec: MatmulSpec, R: number): ArrayBuffer[] {
  const { N, K, rows, epilogue } = spec;
  const W = randomWeight(rng, spec.weight, rows, K); // [rows, K]
  const x = rng.normals(R * K);
  // xCodes: x as quantize_q8 rows (the CPU kernel's)
  const inputs = [spec.xCodes ? quantizeQ8Rows(x, R, K) : buf(x)];
  // a folded norm read: x_ssq, sums of squares (positive) of a row in chunks of 4
  if (spec.norm) inputs.push(buf(rng.normals(R * Math.ceil(K / 4)).map((v) => 4 * v * v)));
  inputs.push(...W.buffers);
  if (spec.bias) inputs.push(dense(rng.normals(N), spec.bias).data);
  if (epilogue === "add") inputs.push(buf(rng.normals(R * N)));
  if (spec.normOut) inputs.push(dense(rng.normals(N), spec.normOut.weightDtype).data);
  inputs.push(buf(rng.normals(R * (epilogue === "silu_mul" ? N / 2 : N))));
  // a folded norm written: out_w and out_ssq (start as noise)
  if (spec.normOut) inputs.push(buf(rng.normals(R * N)), buf(rng.normals(R * Math.ceil(N / 4))));
  return inputs;
}

/** A `matmul` spec of the whole weight (rowStart 0, no bias, no epilogue unless `more`). */
export function matmulSpec(
  weight: WeightFormat,
  N: number,
  K: number,
  maxRows: number,
  more: Partial<MatmulSpec> = {},
): MatmulSpec {
  return {
    op: "matmul",
    N,
    K,
    rowStart: 0,
    rows: N,
    weight,
    bias: null as DenseDtype | null,
    epilogue: "none",
    maxRows,
    ...more,
  };
}
