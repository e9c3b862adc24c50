/**
 * The device interface the engine runs compiled libraries on. Two implementations:
 * `devices/webgpu.ts` (real GPU, or lavapipe) and `devices/cpu.ts` (plain TypeScript kernels).
 * Work is queued in order; `read` returns data after all earlier dispatches have finished.
 * @module
 */
import type { CpuKernel, KernelSpec, WgslKernel } from "../compiler/codegen/contract.ts";

/** An opaque device buffer. `bytes` is its size (a multiple of 4). */
export interface DeviceBuffer {
  readonly bytes: number;
  readonly label: string;
}

/** A kernel made ready to dispatch (a compute pipeline on WebGPU). */
export interface DeviceKernel {
  readonly spec: KernelSpec;
}

export interface Device {
  readonly backend: "webgpu" | "cpu";
  /** A zero-filled buffer of `bytes` (rounded up to a multiple of 4). */
  createBuffer(bytes: number, label: string): DeviceBuffer;
  /** Copy `data` into `buffer` at `byteOffset` (ordered before later dispatches). */
  write(buffer: DeviceBuffer, data: ArrayBufferView, byteOffset?: number): void;
  /** Compile a kernel. WebGPU takes the WGSL form, CPU the function form. */
  kernel(spec: KernelSpec, source: WgslKernel | CpuKernel): DeviceKernel;
  /** Compile many kernels at once (WebGPU creates the pipelines concurrently). */
  kernels(items: { spec: KernelSpec; source: WgslKernel | CpuKernel }[]): Promise<DeviceKernel[]>;
  /** Queue one dispatch over `rows` rows with buffers in `bindings(spec)` order. */
  dispatch(kernel: DeviceKernel, buffers: DeviceBuffer[], rows: number): void;
  /** Queue a copy of `bytes` from `src` at `srcOffset` to `dst` at `dstOffset` (multiples of 4). */
  copy(src: DeviceBuffer, srcOffset: number, dst: DeviceBuffer, dstOffset: number, bytes: number): void;
  /** Submit queued work; resolves once it has been handed to the device (not finished). */
  submit(): void;
  /** Read `bytes` (default: all) of `buffer` after all queued work; submits first. */
  read(buffer: DeviceBuffer, bytes?: number, byteOffset?: number): Promise<ArrayBuffer>;
  /**
   * Read `bytes` of `buffer` after the work submitted so far (`submit()`, or a `write` or `copy`
   * that submits); the dispatches queued since go on after the read's copy, without waiting for
   * it, so they must not write `buffer`. A decode loop reads a round's tokens this way after
   * queueing the next round's first step: the GPU need not wait for the host after the read.
   */
  readSubmitted(buffer: DeviceBuffer, bytes?: number, byteOffset?: number): Promise<ArrayBuffer>;
  /** Free a buffer. */
  release(buffer: DeviceBuffer): void;
  /** Free everything. */
  destroy(): void;
}
