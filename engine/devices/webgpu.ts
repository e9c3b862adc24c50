/**
 * The WebGPU device: runs generated WGSL kernels on a real GPU (or lavapipe). Dispatches are
 * recorded into one command encoder and compute pass until `submit()` or `read()`.
 * @module
 */
import {
  bindings,
  type KernelSpec,
  type TargetInfo,
  type WgslKernel,
  workgroupCount,
} from "../../compiler/codegen/contract.ts";
import type { CpuKernel } from "../../compiler/codegen/contract.ts";
import type { Device, DeviceBuffer, DeviceKernel } from "../device.ts";
import { LIMIT_KEYS, targetFromAdapter } from "../../compiler/target.ts";

/** Bind groups kept per kernel (each distinct buffers + row count makes one). */
const MAX_GROUPS_PER_KERNEL = 256;

/** Limits requested at the adapter's own values: the ones kernels depend on, and these. */
const EXTRA_LIMITS = ["maxBufferSize", "maxComputeWorkgroupSizeY", "maxComputeWorkgroupSizeZ"];

/** The target description (features, limits) the compiler specialises kernels for. */
export function describeAdapter(adapter: GPUAdapter): TargetInfo {
  return targetFromAdapter(adapter);
}

/** A WebGPU device that also tells what it runs on. */
export interface WebGpuDevice extends Device {
  readonly backend: "webgpu";
  /** Limits and features of the device (what `wgslKernel` takes as its target). */
  readonly target: TargetInfo;
  readonly gpu: GPUDevice;
}

interface GpuBuffer extends DeviceBuffer {
  readonly id: number;
  readonly buffer: GPUBuffer;
}

interface GpuKernel extends DeviceKernel {
  readonly id: number;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  readonly source: WgslKernel;
  /** Storage bindings the kernel takes (checked on every dispatch, computed once). */
  readonly arity: number;
}

/**
 * Opens the adapter's device with its own limits and `shader-f16` when offered; null when
 * WebGPU or an adapter is missing.
 */
export async function createWebGpuDevice(
  opts: { adapter?: GPUAdapter } = {},
): Promise<WebGpuDevice | null> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu && !opts.adapter) return null;
  const adapter = opts.adapter ??
    await gpu!.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) return null;
  const src = adapter.limits as unknown as Record<string, number>;
  const requiredLimits: Record<string, number> = {};
  for (const name of [...LIMIT_KEYS, ...EXTRA_LIMITS]) {
    if (typeof src[name] === "number") requiredLimits[name] = src[name];
  }
  const requiredFeatures: GPUFeatureName[] = adapter.features.has("shader-f16")
    ? ["shader-f16"]
    : [];
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  return new WebGpuDeviceImpl(device, describeAdapter(adapter));
}

class WebGpuDeviceImpl implements WebGpuDevice {
  readonly backend = "webgpu" as const;
  #nextId = 1;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  /** One 16-byte uniform per distinct row count: queue writes land before any command runs. */
  #uniforms = new Map<number, GPUBuffer>();
  /** Bind groups per kernel id, keyed by rows and buffer ids. */
  #groups = new Map<number, Map<string, GPUBindGroup>>();
  #buffers = new Set<GpuBuffer>();
  #errors: Promise<GPUError | null>[] = [];
  /** The last dispatch made with each buffer list (the runtime passes the same list for a step
   * every call): its bind group and workgroup counts, so a repeat skips the lookup's key. */
  #last = new WeakMap<DeviceBuffer[], Prepared>();
  /** Bumped when a buffer is released: dispatches prepared before it are checked again. */
  #generation = 0;

  constructor(readonly gpu: GPUDevice, readonly target: TargetInfo) {}

  createBuffer(bytes: number, label: string): DeviceBuffer {
    if (!Number.isFinite(bytes) || bytes < 0) {
      throw new RangeError(`createBuffer("${label}"): size ${bytes} is not a non-negative number`);
    }
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const buffer = this.gpu.createBuffer({
      size,
      label,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    const b: GpuBuffer = { bytes: size, label, id: this.#nextId++, buffer };
    this.#buffers.add(b);
    return b;
  }

  write(buffer: DeviceBuffer, data: ArrayBufferView, byteOffset = 0): void {
    const b = this.#own(buffer);
    if (byteOffset % 4 !== 0) {
      throw new RangeError(`write("${b.label}"): byteOffset ${byteOffset} is not a multiple of 4`);
    }
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength % 4 !== 0) {
      // Round the write up to whole words (buffers are padded to 4 bytes).
      const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
      padded.set(bytes);
      bytes = padded;
    }
    if (byteOffset + bytes.byteLength > b.bytes) {
      throw new RangeError(
        `write("${b.label}"): ${bytes.byteLength} bytes at ${byteOffset} exceed its ${b.bytes} bytes`,
      );
    }
    // Queue writes run before the pending command buffer: flush it so order is kept.
    if (this.#encoder) this.submit();
    this.gpu.queue.writeBuffer(b.buffer, byteOffset, bytes as Uint8Array<ArrayBuffer>);
  }

  kernel(spec: KernelSpec, source: WgslKernel | CpuKernel): DeviceKernel {
    const { module, layout, wgsl, moduleError } = this.#prepare(spec, source);
    this.#errors.push(moduleError);
    this.gpu.pushErrorScope("validation");
    const pipeline = this.gpu.createComputePipeline({
      layout: this.gpu.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: wgsl.entryPoint },
    });
    this.#errors.push(this.gpu.popErrorScope());
    return this.#made(spec, pipeline, layout, wgsl);
  }

  kernels(items: { spec: KernelSpec; source: WgslKernel | CpuKernel }[]): Promise<DeviceKernel[]> {
    // Specs whose WGSL and bindings come out the same (a tiled matmul compiled for two row
    // bounds) share one shader module, layout and pipeline.
    const shared = new Map<
      string,
      { layout: GPUBindGroupLayout; pipeline: Promise<GPUComputePipeline> }
    >();
    return Promise.all(items.map(async ({ spec, source }) => {
      const key = typeof source === "function"
        ? null
        : `${source.entryPoint}\0${bindings(spec).map((b) => b.access).join()}\0${source.code}`;
      let made = key === null ? undefined : shared.get(key);
      if (!made) {
        const { module, layout, wgsl, moduleError } = this.#prepare(spec, source);
        const pipeline = this.gpu.createComputePipelineAsync({
          layout: this.gpu.createPipelineLayout({ bindGroupLayouts: [layout] }),
          compute: { module, entryPoint: wgsl.entryPoint },
        }).catch(async (e) => {
          const detail = (await moduleError)?.message ?? String(e);
          throw new Error(`kernels(): pipeline for op "${spec.op}" failed to compile: ${detail}`, {
            cause: e,
          });
        });
        made = { layout, pipeline };
        if (key !== null) shared.set(key, made);
      }
      return this.#made(spec, await made.pipeline, made.layout, source as WgslKernel);
    }));
  }

  #made(
    spec: KernelSpec,
    pipeline: GPUComputePipeline,
    layout: GPUBindGroupLayout,
    wgsl: WgslKernel,
  ): GpuKernel {
    return {
      spec,
      id: this.#nextId++,
      pipeline,
      layout,
      source: wgsl,
      arity: bindings(spec).length,
    };
  }

  dispatch(kernel: DeviceKernel, buffers: DeviceBuffer[], rows: number): void {
    const k = kernel as GpuKernel;
    let p = this.#last.get(buffers);
    if (!p || !p.matches(k, buffers, rows, this.#generation)) {
      p = this.#checkDispatch(k, buffers, rows);
      this.#last.set(buffers, p);
    }
    this.#encoder ??= this.gpu.createCommandEncoder();
    this.#pass ??= this.#encoder.beginComputePass();
    this.#pass.setPipeline(k.pipeline);
    this.#pass.setBindGroup(0, p.group);
    this.#pass.dispatchWorkgroups(p.x, p.y, p.z);
  }

  /** Check a dispatch's arguments and find (or make) its bind group. */
  #checkDispatch(k: GpuKernel, buffers: DeviceBuffer[], rows: number): Prepared {
    if (!k.pipeline) throw new TypeError("dispatch(): kernel was not made by this device");
    if (!Number.isInteger(rows) || rows < 0) {
      throw new RangeError(`dispatch(${k.spec.op}): rows ${rows} is not a non-negative integer`);
    }
    if (buffers.length !== k.arity) {
      throw new RangeError(
        `dispatch(${k.spec.op}): got ${buffers.length} buffers, expected ${k.arity} (${
          bindings(k.spec).map((b) => b.name).join(", ")
        })`,
      );
    }
    const own = buffers.map((b) => this.#own(b));
    const [x, y, z] = workgroupCount(
      k.source,
      rows,
      this.target.limits.maxComputeWorkgroupsPerDimension,
    );
    return new Prepared(k, own, rows, this.#generation, this.#bindGroup(k, own, rows), x, y, z);
  }

  copy(
    src: DeviceBuffer,
    srcOffset: number,
    dst: DeviceBuffer,
    dstOffset: number,
    bytes: number,
  ): void {
    const s = this.#own(src), d = this.#own(dst);
    if (
      [srcOffset, dstOffset, bytes].some((v) => v % 4 !== 0 || v < 0) ||
      srcOffset + bytes > s.bytes || dstOffset + bytes > d.bytes
    ) {
      throw new RangeError(
        `copy("${s.label}" → "${d.label}"): ${bytes} bytes at ${srcOffset} → ${dstOffset} is out of range or misaligned`,
      );
    }
    if (bytes === 0) return;
    this.#encoder ??= this.gpu.createCommandEncoder();
    // copies happen between passes: close the open one (the next dispatch opens another)
    this.#pass?.end();
    this.#pass = null;
    this.#encoder.copyBufferToBuffer(s.buffer, srcOffset, d.buffer, dstOffset, bytes);
  }

  submit(): void {
    if (!this.#encoder) return;
    this.#pass?.end();
    this.gpu.queue.submit([this.#encoder.finish()]);
    this.#encoder = null;
    this.#pass = null;
  }

  read(buffer: DeviceBuffer, bytes?: number, byteOffset = 0): Promise<ArrayBuffer> {
    return this.#read(buffer, bytes, byteOffset, false);
  }

  readSubmitted(buffer: DeviceBuffer, bytes?: number, byteOffset = 0): Promise<ArrayBuffer> {
    return this.#read(buffer, bytes, byteOffset, true);
  }

  /**
   * Copy the range into a staging buffer and map it. Deno's `mapAsync` blocks the thread until
   * every submitted command buffer has run (it polls the device with a wait, then sleeps 10 ms
   * a round): with `hold`, the dispatches queued since the last submit are finished into a
   * command buffer first and submitted once the wait is over, so the GPU has them at once
   * rather than after the host has queued them.
   */
  async #read(
    buffer: DeviceBuffer,
    bytes: number | undefined,
    byteOffset: number,
    hold: boolean,
  ): Promise<ArrayBuffer> {
    const b = this.#own(buffer);
    const n = bytes ?? b.bytes - byteOffset;
    if (byteOffset % 4 !== 0 || byteOffset < 0 || n < 0 || byteOffset + n > b.bytes) {
      throw new RangeError(
        `read("${b.label}"): range [${byteOffset}, ${
          byteOffset + n
        }) is outside its ${b.bytes} bytes or misaligned`,
      );
    }
    let held: GPUCommandBuffer | null = null;
    if (hold && this.#encoder) {
      this.#pass?.end();
      held = this.#encoder.finish();
      this.#encoder = null;
      this.#pass = null;
    } else {
      this.submit();
    }
    const size = Math.ceil(n / 4) * 4;
    const staging = this.gpu.createBuffer({
      size: Math.max(size, 4),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      label: `read ${b.label}`,
    });
    const enc = this.gpu.createCommandEncoder();
    if (size > 0) enc.copyBufferToBuffer(b.buffer, byteOffset, staging, 0, size);
    this.gpu.queue.submit([enc.finish()]);
    try {
      const mapped = staging.mapAsync(GPUMapMode.READ);
      if (held) this.gpu.queue.submit([held]);
      await mapped;
      await this.#checkErrors();
      return staging.getMappedRange(0, Math.max(size, 4)).slice(0, n);
    } finally {
      staging.destroy();
    }
  }

  release(buffer: DeviceBuffer): void {
    const b = this.#own(buffer);
    this.submit();
    for (const groups of this.#groups.values()) {
      for (const key of groups.keys()) {
        if (key.split("|")[1].split(",").includes(String(b.id))) groups.delete(key);
      }
    }
    this.#buffers.delete(b);
    this.#generation++;
    b.buffer.destroy();
  }

  destroy(): void {
    this.#encoder = null;
    this.#pass = null;
    this.#generation++;
    for (const b of this.#buffers) b.buffer.destroy();
    for (const u of this.#uniforms.values()) u.destroy();
    this.#buffers.clear();
    this.#uniforms.clear();
    this.#groups.clear();
    this.gpu.destroy();
  }

  #own(buffer: DeviceBuffer): GpuBuffer {
    const b = buffer as GpuBuffer;
    if (!b.buffer || !this.#buffers.has(b)) {
      throw new TypeError(`buffer "${buffer.label}" is not a live buffer of this device`);
    }
    return b;
  }

  #prepare(spec: KernelSpec, source: WgslKernel | CpuKernel) {
    if (typeof source === "function" || typeof source?.code !== "string") {
      throw new TypeError(`kernel(${spec.op}): the WebGPU device takes a WgslKernel source`);
    }
    const entries: GPUBindGroupLayoutEntry[] = [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
      ...bindings(spec).map((b, i): GPUBindGroupLayoutEntry => ({
        binding: i + 1,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: b.access === "read" ? "read-only-storage" : "storage" },
      })),
    ];
    const layout = this.gpu.createBindGroupLayout({ entries, label: spec.op });
    this.gpu.pushErrorScope("validation");
    const module = this.gpu.createShaderModule({ code: source.code, label: spec.op });
    const moduleError = this.gpu.popErrorScope();
    return { module, layout, wgsl: source, moduleError };
  }

  #uniform(rows: number): GPUBuffer {
    let u = this.#uniforms.get(rows);
    if (!u) {
      u = this.gpu.createBuffer({
        size: 16,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        label: `R=${rows}`,
      });
      this.gpu.queue.writeBuffer(u, 0, new Uint32Array([rows, 0, 0, 0]));
      this.#uniforms.set(rows, u);
    }
    return u;
  }

  #bindGroup(k: GpuKernel, buffers: GpuBuffer[], rows: number): GPUBindGroup {
    let groups = this.#groups.get(k.id);
    if (!groups) this.#groups.set(k.id, groups = new Map());
    const key = `${rows}|${buffers.map((b) => b.id).join(",")}`;
    let group = groups.get(key);
    if (!group) {
      // Many distinct row counts (prefill lengths) would grow this without bound: start over.
      if (groups.size >= MAX_GROUPS_PER_KERNEL) groups.clear();
      group = this.gpu.createBindGroup({
        layout: k.layout,
        entries: [
          { binding: 0, resource: { buffer: this.#uniform(rows) } },
          ...buffers.map((b, i) => ({ binding: i + 1, resource: { buffer: b.buffer } })),
        ],
      });
      groups.set(key, group);
    }
    return group;
  }

  async #checkErrors(): Promise<void> {
    const pending = this.#errors;
    this.#errors = [];
    for (const e of await Promise.all(pending)) {
      if (e) throw new Error(`WebGPU validation error: ${e.message}`);
    }
  }
}

/** A checked dispatch: its kernel, buffers (copied: the caller may change its list) and rows,
 * with the bind group and workgroup counts they make. */
class Prepared {
  constructor(
    readonly kernel: GpuKernel,
    readonly buffers: readonly GpuBuffer[],
    readonly rows: number,
    readonly generation: number,
    readonly group: GPUBindGroup,
    readonly x: number,
    readonly y: number,
    readonly z: number,
  ) {}

  /** Whether a dispatch of `k` over `buffers` and `rows` is this one, no buffer released since. */
  matches(k: GpuKernel, buffers: DeviceBuffer[], rows: number, generation: number): boolean {
    if (k !== this.kernel || rows !== this.rows || generation !== this.generation) return false;
    if (buffers.length !== this.buffers.length) return false;
    for (let i = 0; i < buffers.length; i++) if (buffers[i] !== this.buffers[i]) return false;
    return true;
  }
}
