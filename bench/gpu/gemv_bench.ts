/**
 * Each q4f16_1 decode GEMV alone, as the compiler generates it for this adapter (`wgslKernel` of
 * a `matmul` spec with maxRows 1, q4 group 32, f16 scales): GPU time per dispatch from timestamp
 * queries around many back-to-back dispatches, bytes read (weights + scales + x, + residual for
 * the "add" epilogue) and GB/s. The weights are cycled over enough copies that they cannot sit
 * in the L2 cache between dispatches. Each shape is timed in replays of >= 50 ms of work after
 * ~0.3 s of them, so that the GPU's clock has ramped up from idle and stays up.
 * @module
 */
import type { KernelSpec, WeightFormat } from "../../compiler/codegen/contract.ts";
import { groupLayout } from "../../compiler/codegen/contract.ts";
import { wgslKernel } from "../../compiler/codegen/webgpu/mod.ts";
import { matmulGemvQ8, type Q8Tuning } from "../../compiler/codegen/webgpu/matmul_gemv_q8.ts";
import type { BenchDevice, Trace } from "./bench_device.ts";
import type { DeviceBuffer } from "../../engine/device.ts";
import type { GpuTimer } from "./gpu_timer.ts";
import { fillSynthetic, seedOf } from "./synthetic_weights.ts";

const raw = (b: DeviceBuffer) => (b as unknown as { buffer: GPUBuffer }).buffer;

export interface GemvShape {
  name: string;
  N: number;
  K: number;
  epilogue: "none" | "silu_mul" | "add";
  /** q8 activations (the compiler's choice where the adapter has packed int8 dot products). */
  xq8?: boolean;
  /** x unit-major (with xq8; what the compiler emits where x's writer can store it so). */
  xUnits?: boolean;
  /** Rows of x (default 1). */
  rows?: number;
  /** A q8 tuning to time instead of the compiler's choice (implies xq8). */
  q8?: Q8Tuning;
}

export interface GemvRow extends GemvShape {
  /** GPU µs per dispatch, many back to back in one pass. */
  us: number;
  bytes: number;
  gbs: number;
  /** GPU µs of a dispatch alone in its own pass (median of many), as the model breakdowns time them. */
  aloneUs: number;
  aloneGbs: number;
  copies: number;
  /** GPU µs per dispatch of a plain read of the same weight and scale buffers (no arithmetic),
   * back to back under the same barriers: the floor a kernel of this size can reach. */
  readUs: number;
}

const Q4 = {
  kind: "group",
  bits: 4,
  groupSize: 32,
  scaleDtype: "f16",
} as const satisfies WeightFormat;

/** The spec the compiler emits for a decode matmul of this shape. */
export function gemvSpec(s: GemvShape): Extract<KernelSpec, { op: "matmul" }> {
  return {
    op: "matmul",
    N: s.N,
    K: s.K,
    rowStart: 0,
    rows: s.N,
    weight: Q4,
    bias: null,
    epilogue: s.epilogue,
    maxRows: s.rows ?? 1,
    ...(s.xq8 ? { xq8: true } : {}),
    ...(s.xq8 && s.xUnits ? { xUnits: true } : {}),
  };
}

/** Bytes one dispatch reads: q4 words, f16 scales, x (f32), and the residual for "add". */
export function gemvBytes(
  s: GemvShape,
): { weights: number; scales: number; x: number; residual: number; total: number } {
  const g = groupLayout(Q4, s.K);
  const R = s.rows ?? 1;
  const weights = s.N * g.wordsPerRow * 4, scales = s.N * g.groups * 2, x = R * s.K * 4;
  const residual = s.epilogue === "add" ? R * s.N * 4 : 0;
  return { weights, scales, x, residual, total: weights + scales + x + residual };
}

/** A read of the q4 words and scales of a GEMV and nothing else: each thread XORs `U` vec4s
 * of each buffer (consecutive threads read consecutive vec4s); the store, never taken in
 * practice, keeps the loads and puts `o` (read_write) between dispatches, as a GEMV's output is. */
function readKernel(U: number): string {
  const walk = (buf: string) =>
    `{ let n = arrayLength(&${buf}); for (var k = 0u; k < ${U}u; k++) { let i = g.x + k * T; if (i < n) { acc ^= ${buf}[i]; } } }`;
  return `@group(0) @binding(0) var<storage, read> qw: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> qs: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> o: array<u32>;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let T = nwg.x * 256u; var acc = vec4<u32>(0u);
  ${walk("qw")} ${walk("qs")}
  if (acc.x == 0x9e3779b9u && acc.y == 0x7f4a7c15u) { o[0] = acc.z ^ acc.w; } }`;
}

/** µs per dispatch of the best `readKernel` over the weight copies `set` (weights bytes of
 * q4 words, whole vec4s of scales), timed like the GEMVs (warm clock, >= REPLAY_MS replays). */
async function readFloor(
  dev: BenchDevice,
  timer: GpuTimer,
  set: [DeviceBuffer, DeviceBuffer][],
  weights: number,
  scales: number,
): Promise<number> {
  const gpu = dev.gpu;
  const out = gpu.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE });
  let best = Infinity;
  for (const U of [1, 2, 4, 8]) {
    const pl = gpu.createComputePipeline({
      layout: "auto",
      compute: { module: gpu.createShaderModule({ code: readKernel(U) }), entryPoint: "main" },
    });
    const groups = Math.ceil(weights / 16 / 256 / U);
    if (groups > gpu.limits.maxComputeWorkgroupsPerDimension) continue;
    const bgs = set.map(([qw, qs]) =>
      gpu.createBindGroup({
        layout: pl.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: raw(qw), size: weights } },
          { binding: 1, resource: { buffer: raw(qs), size: Math.floor(scales / 16) * 16 } },
          { binding: 2, resource: { buffer: out } },
        ],
      })
    );
    const run = (reps: number) =>
      timer.pass((p) => {
        p.setPipeline(pl);
        for (let r = 0; r < reps; r++) {
          for (const bg of bgs) {
            p.setBindGroup(0, bg);
            p.dispatchWorkgroups(groups);
          }
        }
      });
    const per = await run(1) / bgs.length;
    const reps = Math.max(1, Math.ceil(REPLAY_MS / (per * bgs.length)));
    const from = performance.now();
    do await run(reps); while (performance.now() - from < WARM_MS);
    best = Math.min(best, (await run(reps)) / (reps * bgs.length) * 1000);
  }
  out.destroy();
  return best;
}

/** Wall milliseconds of load before a shape is timed (the GPU's clock ramp). */
const WARM_MS = 300;
/** GPU milliseconds of work in each timed replay (against the readback's idle time). */
const REPLAY_MS = 50;

/** `minBytes`: weight bytes cycled over (copies of the weights), at least 2× the L2. */
export async function benchGemv(
  dev: BenchDevice,
  timer: GpuTimer,
  shapes: GemvShape[],
  opts: { minBytes: number; dispatches: number },
): Promise<GemvRow[]> {
  const rows: GemvRow[] = [];
  const floors = new Map<string, number>(); // read floor by weight set
  // Weight copies by size, made once and shared by every run of that size (the tunings of a
  // shape, its q8 and f32 runs).
  const weightSets = new Map<string, [DeviceBuffer, DeviceBuffer][]>();
  const weightsFor = (weights: number, scales: number, copies: number) => {
    const key = `${weights}/${scales}/${copies}`;
    let set = weightSets.get(key);
    if (!set) {
      set = Array.from({ length: copies }, (_, c) => {
        const qw = dev.createBuffer(weights, `qw${c}`), qs = dev.createBuffer(scales, `qs${c}`);
        fillSynthetic(dev.gpu, raw(qw), weights / 4, {
          kind: "bits",
          seed: seedOf(`qw${c}`),
          firstWord: 0,
        });
        fillSynthetic(dev.gpu, raw(qs), scales / 4, {
          kind: "scale",
          seed: seedOf(`qs${c}`),
          firstWord: 0,
        });
        return [qw, qs] as [DeviceBuffer, DeviceBuffer];
      });
      weightSets.set(key, set);
    }
    return set;
  };
  const floorOf = async (weights: number, scales: number, copies: number) => {
    const key = `${weights}/${scales}/${copies}`;
    if (!floors.has(key)) {
      const set = weightsFor(weights, scales, copies);
      floors.set(key, await readFloor(dev, timer, set, weights, scales));
    }
    return floors.get(key)!;
  };
  for (const s of shapes) {
    const spec = gemvSpec(s);
    const source = s.q8
      ? matmulGemvQ8({ ...spec, xq8: true }, dev.inner.target, s.q8)
      : wgslKernel(spec, dev.inner.target);
    const xq8 = spec.xq8 || !!s.q8;
    const kernel = (await dev.kernels([{ spec: { ...spec, xq8 }, source }]))[0];
    const b = gemvBytes(s);
    const copies = Math.max(1, Math.min(64, Math.ceil(opts.minBytes / b.total)));
    const R = s.rows ?? 1;
    const x = dev.createBuffer(R * s.K * 4, "x");
    fillSynthetic(dev.gpu, raw(x), R * s.K, {
      kind: "f32norm",
      seed: 1,
      firstWord: 0,
    });
    const out = dev.createBuffer(R * s.N * 4, "out");
    const residual = s.epilogue === "add" ? [dev.createBuffer(R * s.N * 4, "residual")] : [];
    const owned = [x, out, ...residual];
    const trace: Trace = [];
    for (const [qw, qs] of weightsFor(b.weights, b.scales, copies)) {
      trace.push({ kernel, buffers: [x, qw, qs, ...residual, out], rows: R });
    }
    // The H100's SM clock follows its load: 345 MHz idle, 1,980 under steady work, and in
    // between when the GPU idles part of the time (each replay ends in a readback of >= 10
    // ms). So every replay holds >= REPLAY_MS of work and the timing follows >= WARM_MS of
    // them; with short replays the GEMVs came out 2-4x slower, by where they fell in the run.
    const perPass = await dev.replay(timer, trace, 1);
    const reps = Math.max(1, Math.ceil(opts.dispatches / copies), Math.ceil(REPLAY_MS / perPass));
    await dev.warm(timer, trace, reps, WARM_MS);
    const ms = await dev.replay(timer, trace, reps) / copies;
    const alone = (await dev.replayEach(
      timer,
      Array.from({ length: Math.min(64, opts.dispatches) }, (_, i) => trace[i % copies]),
    ))
      .sort((a, c) => a - c);
    const aloneMs = alone[alone.length >> 1];
    rows.push({
      ...s,
      us: ms * 1000,
      bytes: b.total,
      gbs: b.total / ms / 1e6,
      aloneUs: aloneMs * 1000,
      aloneGbs: b.total / aloneMs / 1e6,
      copies,
      readUs: await floorOf(b.weights, b.scales, copies),
    });
    for (const buf of owned) dev.release(buf);
  }
  for (const set of weightSets.values()) {
    for (const pair of set) pair.forEach((b) => dev.release(b));
  }
  return rows;
}
