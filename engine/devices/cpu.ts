/**
 * The CPU device: buffers are ArrayBuffers, kernels are the plain TypeScript functions of
 * `compiler/codegen/cpu`, and a dispatch runs synchronously, so work is always complete in
 * order. `read` returns a copy.
 * @module
 */
import {
  bindings,
  type CpuKernel,
  type KernelSpec,
  type WgslKernel,
} from "../../compiler/codegen/contract.ts";
import type { Device, DeviceBuffer, DeviceKernel } from "../device.ts";

class CpuBuffer implements DeviceBuffer {
  data: ArrayBuffer | null;
  constructor(readonly bytes: number, readonly label: string) {
    this.data = new ArrayBuffer(bytes);
  }
}

class CpuDeviceKernel implements DeviceKernel {
  constructor(readonly spec: KernelSpec, readonly run: CpuKernel, readonly arity: number) {}
}

function live(buffer: DeviceBuffer, what: string): ArrayBuffer {
  if (!(buffer instanceof CpuBuffer)) {
    throw new TypeError(`${what}: buffer "${buffer.label}" was not created by this CPU device`);
  }
  if (!buffer.data) throw new RangeError(`${what}: buffer "${buffer.label}" was released`);
  return buffer.data;
}

/** A device that runs CPU kernels on ArrayBuffers. */
export function createCpuDevice(): Device {
  const buffers = new Set<CpuBuffer>();
  const device: Device = {
    backend: "cpu",
    createBuffer(bytes, label) {
      if (!Number.isInteger(bytes) || bytes < 0) {
        throw new RangeError(
          `createBuffer("${label}"): size ${bytes} is not a non-negative integer`,
        );
      }
      const b = new CpuBuffer(Math.ceil(bytes / 4) * 4, label);
      buffers.add(b);
      return b;
    },
    write(buffer, data, byteOffset = 0) {
      const dst = live(buffer, "write");
      if (byteOffset < 0 || byteOffset + data.byteLength > dst.byteLength) {
        throw new RangeError(
          `write: ${data.byteLength} bytes at offset ${byteOffset} do not fit buffer "${buffer.label}" of ${dst.byteLength} bytes`,
        );
      }
      new Uint8Array(dst, byteOffset, data.byteLength).set(
        new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      );
    },
    kernel(spec, source: WgslKernel | CpuKernel) {
      if (typeof source !== "function") {
        throw new TypeError(
          `kernel(${spec.op}): the CPU device takes a CpuKernel function, not WGSL`,
        );
      }
      return new CpuDeviceKernel(spec, source, bindings(spec).length);
    },
    kernels(items) {
      try {
        return Promise.resolve(items.map((it) => device.kernel(it.spec, it.source)));
      } catch (e) {
        return Promise.reject(e);
      }
    },
    dispatch(kernel, bufs, rows) {
      if (!(kernel instanceof CpuDeviceKernel)) {
        throw new TypeError(
          `dispatch: kernel ${kernel.spec.op} was not created by this CPU device`,
        );
      }
      if (bufs.length !== kernel.arity) {
        throw new RangeError(
          `dispatch(${kernel.spec.op}): ${bufs.length} buffers given, bindings() lists ${kernel.arity}`,
        );
      }
      if (!Number.isInteger(rows) || rows < 0) {
        throw new RangeError(
          `dispatch(${kernel.spec.op}): rows ${rows} is not a non-negative integer`,
        );
      }
      kernel.run(bufs.map((b) => live(b, `dispatch(${kernel.spec.op})`)), rows);
    },
    copy(src, srcOffset, dst, dstOffset, bytes) {
      const s = live(src, "copy"), d = live(dst, "copy");
      if (
        srcOffset < 0 || dstOffset < 0 || bytes < 0 || srcOffset + bytes > s.byteLength ||
        dstOffset + bytes > d.byteLength
      ) {
        throw new RangeError(
          `copy("${src.label}" → "${dst.label}"): ${bytes} bytes at ${srcOffset} → ${dstOffset} out of range`,
        );
      }
      new Uint8Array(d, dstOffset, bytes).set(new Uint8Array(s, srcOffset, bytes));
    },
    submit() {},
    read(buffer, bytes, byteOffset = 0) {
      const src = live(buffer, "read");
      const n = bytes ?? src.byteLength - byteOffset;
      if (byteOffset < 0 || n < 0 || byteOffset + n > src.byteLength) {
        return Promise.reject(
          new RangeError(
            `read: ${n} bytes at offset ${byteOffset} exceed buffer "${buffer.label}" of ${src.byteLength} bytes`,
          ),
        );
      }
      return Promise.resolve(src.slice(byteOffset, byteOffset + n));
    },
    // dispatches run as they are queued: nothing is pending, and what is must not write buffer
    readSubmitted(buffer, bytes, byteOffset) {
      return device.read(buffer, bytes, byteOffset);
    },
    release(buffer) {
      live(buffer, "release");
      (buffer as CpuBuffer).data = null;
      buffers.delete(buffer as CpuBuffer);
    },
    destroy() {
      for (const b of buffers) b.data = null;
      buffers.clear();
    },
  };
  return device;
}
