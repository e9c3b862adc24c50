/**
 * The benchmark's device: Kiln's WebGPU device (opened with `timestamp-query` as well) behind a
 * thin wrapper that (1) fills synthetic-weight placeholders on the GPU instead of uploading them,
 * (2) times `kernels()` (pipeline creation), and (3) records the dispatches of a call so they can
 * be replayed alone, back to back, between timestamp queries: kernel time without host overhead.
 * Replay reaches into the device's kernels and buffers (`pipeline`, `layout`, `source`,
 * `buffer`): a bench-only coupling to `engine/devices/webgpu.ts`.
 * @module
 */
import {
  type KernelSpec,
  type WgslKernel,
  workgroupCount,
} from "../../compiler/codegen/contract.ts";
import type { CpuKernel } from "../../compiler/codegen/contract.ts";
import type { Device, DeviceBuffer, DeviceKernel } from "../../engine/device.ts";
import { createWebGpuDevice, type WebGpuDevice } from "../../engine/devices/webgpu.ts";
import { fillSynthetic, placeholderOf } from "./synthetic_weights.ts";
import type { GpuTimer } from "./gpu_timer.ts";

interface RawKernel extends DeviceKernel {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  source: WgslKernel;
}

/** One recorded dispatch. */
export interface Dispatch {
  kernel: DeviceKernel;
  buffers: DeviceBuffer[];
  rows: number;
}

export type Trace = Dispatch[];

const raw = (b: DeviceBuffer) => (b as unknown as { buffer: GPUBuffer }).buffer;

export class BenchDevice implements Device {
  readonly backend = "webgpu" as const;
  /** Milliseconds of every `kernels()` call so far. */
  readonly pipelineMs: { kernels: number; ms: number }[] = [];
  /** Bytes filled on the GPU from placeholders. */
  syntheticBytes = 0;
  #rec: Trace | null = null;
  readonly #live = new Set<DeviceBuffer>();
  readonly #uniforms = new Map<number, GPUBuffer>();
  readonly #groups = new WeakMap<Dispatch, GPUBindGroup>();

  constructor(readonly inner: WebGpuDevice) {}

  get gpu(): GPUDevice {
    return this.inner.gpu;
  }

  createBuffer(bytes: number, label: string): DeviceBuffer {
    const b = this.inner.createBuffer(bytes, label);
    this.#live.add(b);
    return b;
  }

  /** The buffers alive now (to free what a benchmark made afterwards: `releaseAllBut`). */
  liveBuffers(): Set<DeviceBuffer> {
    return new Set(this.#live);
  }

  /** Free every buffer made since `keep` was taken, so later figures see a clean memory state. */
  releaseAllBut(keep: Set<DeviceBuffer>): void {
    for (const b of [...this.#live]) if (!keep.has(b)) this.release(b);
  }

  write(buffer: DeviceBuffer, data: ArrayBufferView, byteOffset = 0): void {
    const p = placeholderOf(data);
    if (!p) return this.inner.write(buffer, data, byteOffset);
    if (byteOffset !== 0) {
      throw new RangeError("write(): a synthetic placeholder must fill its buffer from offset 0");
    }
    this.inner.submit();
    fillSynthetic(this.gpu, raw(buffer), Math.ceil(data.byteLength / 4), p);
    this.syntheticBytes += data.byteLength;
  }

  kernel(spec: KernelSpec, source: WgslKernel | CpuKernel): DeviceKernel {
    return this.inner.kernel(spec, source);
  }

  async kernels(
    items: { spec: KernelSpec; source: WgslKernel | CpuKernel }[],
  ): Promise<DeviceKernel[]> {
    const t0 = performance.now();
    const out = await this.inner.kernels(items);
    this.pipelineMs.push({ kernels: items.length, ms: performance.now() - t0 });
    return out;
  }

  dispatch(kernel: DeviceKernel, buffers: DeviceBuffer[], rows: number): void {
    this.#rec?.push({ kernel, buffers, rows });
    this.inner.dispatch(kernel, buffers, rows);
  }

  copy(
    src: DeviceBuffer,
    srcOffset: number,
    dst: DeviceBuffer,
    dstOffset: number,
    bytes: number,
  ): void {
    this.inner.copy(src, srcOffset, dst, dstOffset, bytes);
  }

  submit(): void {
    this.inner.submit();
  }

  read(buffer: DeviceBuffer, bytes?: number, byteOffset?: number): Promise<ArrayBuffer> {
    return this.inner.read(buffer, bytes, byteOffset);
  }

  readSubmitted(buffer: DeviceBuffer, bytes?: number, byteOffset?: number): Promise<ArrayBuffer> {
    return this.inner.readSubmitted(buffer, bytes, byteOffset);
  }

  release(buffer: DeviceBuffer): void {
    this.#live.delete(buffer);
    this.inner.release(buffer);
  }

  destroy(): void {
    for (const u of this.#uniforms.values()) u.destroy();
    this.#uniforms.clear();
    this.inner.destroy();
  }

  /** Run `f`, returning the dispatches it queued (they also run as usual). */
  record(f: () => unknown): Trace {
    const rec: Trace = [];
    this.#rec = rec;
    try {
      f();
    } finally {
      this.#rec = null;
    }
    return rec;
  }

  /** GPU milliseconds of one replay of `trace`, `reps` replays back to back in one pass. */
  async replay(timer: GpuTimer, trace: Trace, reps: number): Promise<number> {
    this.inner.submit();
    const ms = await timer.pass((p) => {
      for (let r = 0; r < reps; r++) for (const d of trace) this.#encode(p, d);
    });
    return ms / reps;
  }

  /**
   * GPU milliseconds of one replay of `trace`, `reps` replays with a boundary between them:
   * none ("one": one pass), a compute pass each ("passes", one command buffer), a command
   * buffer and submit each ("submits"), and those with a 4-byte `writeBuffer` before each
   * submit ("writes", as a decode step's inputs) or a 4-byte copy after each pass ("copies", as
   * its tokens' copy into the history). Every command buffer is finished before the first
   * timestamp, so the span holds no host encoding.
   */
  async replayBounded(
    timer: GpuTimer,
    trace: Trace,
    reps: number,
    mode: "one" | "passes" | "submits" | "writes" | "copies",
  ): Promise<number> {
    this.inner.submit();
    const scratch = [0, 1].map(() =>
      this.gpu.createBuffer({
        size: 256,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
      })
    );
    // every command buffer encoded first, so that the span holds no host encoding
    const cbs: GPUCommandBuffer[] = [];
    let enc = this.gpu.createCommandEncoder();
    if (mode === "one") {
      const p = enc.beginComputePass();
      for (let r = 0; r < reps; r++) for (const d of trace) this.#encode(p, d);
      p.end();
    } else {
      for (let r = 0; r < reps; r++) {
        const p = enc.beginComputePass();
        for (const d of trace) this.#encode(p, d);
        p.end();
        if (mode === "copies") enc.copyBufferToBuffer(scratch[0], 0, scratch[1], 0, 4);
        if (mode !== "passes") {
          cbs.push(enc.finish());
          enc = this.gpu.createCommandEncoder();
        }
      }
    }
    cbs.push(enc.finish());
    timer.begin();
    for (const [r, cb] of cbs.entries()) {
      if (mode === "writes") this.gpu.queue.writeBuffer(scratch[0], 0, new Uint32Array([r]));
      this.gpu.queue.submit([cb]);
    }
    const ms = await timer.end();
    for (const b of scratch) b.destroy();
    return ms / reps;
  }

  /**
   * Replays `trace` `reps` times a round for at least `ms` of wall time, so that the GPU's clock
   * is up before a timing: the H100's SM clock idles at 345 MHz (pipeline creation, buffer
   * fills, readback waits) and takes ~0.2 s of steady work to reach 1,980 MHz.
   */
  async warm(timer: GpuTimer, trace: Trace, reps: number, ms = 300): Promise<void> {
    const from = performance.now();
    do await this.replay(timer, trace, reps); while (performance.now() - from < ms);
  }

  /** GPU milliseconds of each dispatch of `trace`, each alone in its own pass. */
  async replayEach(timer: GpuTimer, trace: Trace): Promise<number[]> {
    this.inner.submit();
    const out: number[] = [];
    for (let i = 0; i < trace.length; i += 1024) {
      const part = trace.slice(i, i + 1024);
      out.push(...await timer.passes(part.length, (j, p) => this.#encode(p, part[j])));
    }
    return out;
  }

  #encode(p: GPUComputePassEncoder, d: Dispatch): void {
    const k = d.kernel as RawKernel;
    let g = this.#groups.get(d);
    if (!g) {
      g = this.gpu.createBindGroup({
        layout: k.layout,
        entries: [
          { binding: 0, resource: { buffer: this.#uniform(d.rows) } },
          ...d.buffers.map((b, i) => ({ binding: i + 1, resource: { buffer: raw(b) } })),
        ],
      });
      this.#groups.set(d, g);
    }
    p.setPipeline(k.pipeline);
    p.setBindGroup(0, g);
    const [x, y, z] = workgroupCount(
      k.source,
      d.rows,
      this.inner.target.limits.maxComputeWorkgroupsPerDimension,
    );
    p.dispatchWorkgroups(x, y, z);
  }

  #uniform(rows: number): GPUBuffer {
    let u = this.#uniforms.get(rows);
    if (!u) {
      u = this.gpu.createBuffer({
        size: 16,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      this.gpu.queue.writeBuffer(u, 0, new Uint32Array([rows, 0, 0, 0]));
      this.#uniforms.set(rows, u);
    }
    return u;
  }
}

/** Kiln's WebGPU device on the high-performance adapter, opened with `timestamp-query` too. */
export async function openBenchDevice(): Promise<{ device: BenchDevice; adapter: GPUAdapter }> {
  const adapter = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error("no WebGPU adapter: run on the GPU host (or set up lavapipe)");
  if (!adapter.features.has("timestamp-query")) {
    throw new Error(`${adapter.info.description}: no timestamp-query feature`);
  }
  // createWebGpuDevice asks for the features Kiln needs; ask for timestamp-query as well
  const withTimestamps = {
    features: adapter.features,
    limits: adapter.limits,
    info: adapter.info,
    requestDevice: (d?: GPUDeviceDescriptor) =>
      adapter.requestDevice({
        ...d,
        requiredFeatures: [...(d?.requiredFeatures ?? []), "timestamp-query"],
      }),
  } as unknown as GPUAdapter;
  const inner = await createWebGpuDevice({ adapter: withTimestamps });
  if (!inner) throw new Error("could not open the WebGPU device");
  inner.gpu.addEventListener(
    "uncapturederror",
    (e) => console.error("GPU error:", (e as GPUUncapturedErrorEvent).error.message),
  );
  return { device: new BenchDevice(inner), adapter };
}
