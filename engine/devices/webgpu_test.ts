import { wgslKernel } from "../../compiler/codegen/webgpu/mod.ts";
import { createWebGpuDevice, describeAdapter } from "./webgpu.ts";

const device = await createWebGpuDevice().catch(() => null);
const ignore = !device;

function expectEqual(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string) {
  const a = Array.from(actual), e = Array.from(expected);
  if (a.length !== e.length || a.some((v, i) => v !== e[i])) {
    throw new Error(`${what}: got [${a.join(", ")}], expected [${e.join(", ")}]`);
  }
}

Deno.test({
  name: "describeAdapter() reports the adapter's limits and features",
  ignore,
  fn: async () => {
    const adapter = (await navigator.gpu.requestAdapter())!;
    const info = describeAdapter(adapter);
    if (info.backend !== "webgpu") throw new Error(`backend ${info.backend}`);
    expectEqual(
      [info.limits.maxStorageBufferBindingSize, info.limits.maxComputeWorkgroupStorageSize],
      [adapter.limits.maxStorageBufferBindingSize, adapter.limits.maxComputeWorkgroupStorageSize],
      "limits",
    );
    expectEqual(
      [Number(info.features.includes("shader-f16"))],
      [Number(adapter.features.has("shader-f16"))],
      "shader-f16",
    );
    // The device is opened with the adapter's own limits, not the defaults.
    expectEqual(
      [device!.gpu.limits.maxStorageBufferBindingSize],
      [adapter.limits.maxStorageBufferBindingSize],
      "device limits",
    );
  },
});

Deno.test({
  name: "kernels() gives specs with the same WGSL one pipeline, and each kernel still runs",
  ignore,
  fn: async () => {
    const dev = device!;
    // two matmul specs that differ only in their row bound: the same tiled kernel
    const q = {
      op: "matmul",
      N: 8,
      K: 8,
      rowStart: 0,
      rows: 8,
      bias: null,
      epilogue: "none",
    } as const;
    const a = { ...q, weight: { kind: "dense", dtype: "f32" }, maxRows: 200 } as const;
    const b = { ...a, maxRows: 300 };
    const add = { op: "add", width: 3 } as const;
    const [ka, kb, kc] = await dev.kernels([
      { spec: a, source: wgslKernel(a, dev.target) },
      { spec: b, source: wgslKernel(b, dev.target) },
      { spec: add, source: wgslKernel(add, dev.target) },
    ]);
    type Piped = { pipeline: GPUComputePipeline };
    if (wgslKernel(a, dev.target).code !== wgslKernel(b, dev.target).code) {
      throw new Error("expected the same WGSL for both row bounds");
    }
    if ((ka as unknown as Piped).pipeline !== (kb as unknown as Piped).pipeline) {
      throw new Error("the same WGSL got two pipelines");
    }
    if ((ka as unknown as Piped).pipeline === (kc as unknown as Piped).pipeline) {
      throw new Error("different WGSL shares a pipeline");
    }
    // x = ones, W = identity * 2: out = 2 for both kernels
    const x = dev.createBuffer(4 * 8, "x"), w = dev.createBuffer(4 * 64, "w");
    const out = dev.createBuffer(4 * 8, "out");
    dev.write(x, new Float32Array(8).fill(1));
    dev.write(w, Float32Array.from({ length: 64 }, (_, i) => (i % 9 === 0 ? 2 : 0)));
    for (const k of [ka, kb]) {
      dev.write(out, new Float32Array(8));
      dev.dispatch(k, [x, w, out], 1);
      expectEqual(new Float32Array(await dev.read(out)), new Array(8).fill(2), "x W^T");
    }
    for (const buf of [x, w, out]) dev.release(buf);
  },
});

Deno.test({
  name: "createWebGpuDevice() device keeps dispatch, write and read order across row counts",
  ignore,
  fn: async () => {
    const dev = device!;
    const spec = { op: "add", width: 3 } as const;
    const [k] = await dev.kernels([{ spec, source: wgslKernel(spec, dev.target) }]);
    const a = dev.createBuffer(4 * 6, "a"), b = dev.createBuffer(4 * 6, "b");
    const out = dev.createBuffer(4 * 6, "out");
    expectEqual(new Float32Array(await dev.read(out)), [0, 0, 0, 0, 0, 0], "zero-filled");
    dev.write(a, Float32Array.from([1, 2, 3, 4, 5, 6]));
    dev.write(b, Float32Array.from([10, 20, 30, 40, 50, 60]));
    dev.dispatch(k, [a, b, out], 2); // out = a + b over 2 rows
    dev.dispatch(k, [out, b, a], 1); // a[row 0] = out + b (R = 1 in the same pass)
    dev.write(b, Float32Array.from([100, 100, 100]), 0); // after the dispatches that read b
    dev.dispatch(k, [a, b, out], 1); // out[row 0] = a + b (new b), row 1 kept
    expectEqual(new Float32Array(await dev.read(a)), [21, 42, 63, 4, 5, 6], "a");
    expectEqual(new Float32Array(await dev.read(out)), [121, 142, 163, 44, 55, 66], "out");
    expectEqual(new Float32Array(await dev.read(out, 8, 12)), [44, 55], "read at an offset");
    // The same (kernel, buffers, R) again re-uses its bind group and still reads fresh data.
    dev.write(a, Float32Array.from([1, 2, 3]));
    dev.dispatch(k, [a, b, out], 1);
    expectEqual(new Float32Array(await dev.read(out, 12)), [101, 102, 103], "repeat");
    for (const x of [a, b, out]) dev.release(x);
  },
});

Deno.test({
  name: "createWebGpuDevice() device rejects wrong buffer counts and released buffers",
  ignore,
  fn: async () => {
    const dev = device!;
    const spec = { op: "add", width: 4 } as const;
    const k = dev.kernel(spec, wgslKernel(spec, dev.target));
    const a = dev.createBuffer(16, "a");
    let threw = 0;
    try {
      dev.dispatch(k, [a, a], 1);
    } catch (e) {
      if (e instanceof RangeError) threw++;
    }
    dev.release(a);
    try {
      await dev.read(a);
    } catch (e) {
      if (e instanceof TypeError) threw++;
    }
    expectEqual([threw], [2], "errors thrown");
  },
});

Deno.test({
  name: "dispatch() with a buffer list it has seen follows the list's current buffers",
  ignore,
  fn: async () => {
    const dev = device!;
    const spec = { op: "add", width: 2 } as const;
    const k = dev.kernel(spec, wgslKernel(spec, dev.target));
    const a = dev.createBuffer(8, "a"), b = dev.createBuffer(8, "b"), c = dev.createBuffer(8, "c");
    const out = dev.createBuffer(8, "out");
    dev.write(a, Float32Array.from([1, 2]));
    dev.write(b, Float32Array.from([10, 20]));
    dev.write(c, Float32Array.from([100, 200]));
    const list = [a, b, out];
    dev.dispatch(k, list, 1);
    expectEqual(new Float32Array(await dev.read(out)), [11, 22], "a + b");
    list[1] = c; // the same list object, changed: the device must not reuse a + b's bind group
    dev.dispatch(k, list, 1);
    expectEqual(new Float32Array(await dev.read(out)), [101, 202], "a + c");
    dev.release(c);
    let threw = false;
    try {
      dev.dispatch(k, list, 1); // a released buffer, in a list seen before
    } catch (e) {
      threw = e instanceof TypeError;
    }
    expectEqual([Number(threw)], [1], "released buffer refused");
    for (const x of [a, b, out]) dev.release(x);
  },
});

Deno.test({
  name: "readSubmitted() reads what submitted work left; the dispatches queued after it still run",
  ignore,
  fn: async () => {
    const dev = device!;
    const spec = { op: "add", width: 2 } as const;
    const k = dev.kernel(spec, wgslKernel(spec, dev.target));
    const [a, x, y, z] = ["a", "x", "y", "z"].map((l) => dev.createBuffer(8, l));
    dev.write(a, Float32Array.from([1, 2]));
    dev.dispatch(k, [a, a, x], 1); // x = 2a
    dev.submit();
    dev.dispatch(k, [x, x, y], 1); // y = 2x, queued, not submitted
    dev.dispatch(k, [y, a, z], 1); // z = y + a
    expectEqual(new Float32Array(await dev.readSubmitted(x)), [2, 4], "x");
    expectEqual(new Float32Array(await dev.read(z)), [5, 10], "z, from the held dispatches");
    // nothing queued: the same as read
    expectEqual(new Float32Array(await dev.readSubmitted(z)), [5, 10], "z again");
    // a queued dispatch that rewrites the buffer read: held until after the read's copy (a
    // read that submitted it first would see 11, 22)
    dev.write(y, Float32Array.from([10, 20]));
    dev.dispatch(k, [a, a, x], 1); // x = 2a
    dev.submit();
    dev.dispatch(k, [y, a, x], 1); // x = y + a, queued
    expectEqual(new Float32Array(await dev.readSubmitted(x)), [2, 4], "x before the held dispatch");
    expectEqual(new Float32Array(await dev.read(x)), [11, 22], "x after it");
    for (const b of [a, x, y, z]) dev.release(b);
  },
});
