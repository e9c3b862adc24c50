import {
  deepStrictEqual as assertEquals,
  rejects as assertRejects,
  throws as assertThrows,
} from "node:assert/strict";
import { cpuKernel } from "../../compiler/codegen/cpu/mod.ts";
import type { KernelSpec } from "../../compiler/codegen/contract.ts";
import { createCpuDevice } from "./cpu.ts";

const ADD: KernelSpec = { op: "add", width: 3 };

Deno.test("createCpuDevice() gives zero-filled buffers rounded up to 4 bytes", async () => {
  const d = createCpuDevice();
  const b = d.createBuffer(6, "b");
  assertEquals(b.bytes, 8);
  assertEquals(Array.from(new Uint8Array(await d.read(b))), [0, 0, 0, 0, 0, 0, 0, 0]);
});

Deno.test("createCpuDevice() writes at an offset and reads a range", async () => {
  const d = createCpuDevice();
  const b = d.createBuffer(16, "b");
  d.write(b, new Float32Array([5, 6]), 4);
  assertEquals(Array.from(new Float32Array(await d.read(b))), [0, 5, 6, 0]);
  assertEquals(Array.from(new Float32Array(await d.read(b, 4, 8))), [6]);
  assertThrows(() => d.write(b, new Float32Array(4), 4), RangeError);
  await assertRejects(d.read(b, 8, 12), RangeError);
});

Deno.test("createCpuDevice() read returns a copy, not a view of the buffer", async () => {
  const d = createCpuDevice();
  const b = d.createBuffer(4, "b");
  const copy = new Float32Array(await d.read(b));
  copy[0] = 9;
  assertEquals(new Float32Array(await d.read(b))[0], 0);
});

Deno.test("createCpuDevice() dispatch runs the kernel over the given rows", async () => {
  const d = createCpuDevice();
  const [k] = await d.kernels([{ spec: ADD, source: cpuKernel(ADD) }]);
  const a = d.createBuffer(24, "a"), b = d.createBuffer(24, "b"), out = d.createBuffer(24, "out");
  d.write(a, new Float32Array([1, 2, 3, 4, 5, 6]));
  d.write(b, new Float32Array([10, 20, 30, 40, 50, 60]));
  d.dispatch(k, [a, b, out], 1);
  d.submit();
  assertEquals(Array.from(new Float32Array(await d.read(out))), [11, 22, 33, 0, 0, 0]);
  d.dispatch(k, [a, b, out], 2);
  assertEquals(Array.from(new Float32Array(await d.read(out))), [11, 22, 33, 44, 55, 66]);
});

Deno.test("createCpuDevice() rejects WGSL sources, wrong buffer counts and released buffers", () => {
  const d = createCpuDevice();
  assertThrows(
    () => d.kernel(ADD, { code: "", entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: 1 }),
    TypeError,
  );
  const k = d.kernel(ADD, cpuKernel(ADD));
  const a = d.createBuffer(12, "a"), b = d.createBuffer(12, "b"), out = d.createBuffer(12, "out");
  assertThrows(() => d.dispatch(k, [a, b], 1), RangeError);
  d.release(b);
  assertThrows(() => d.dispatch(k, [a, b, out], 1), /released/);
  d.destroy();
  assertThrows(() => d.write(a, new Float32Array(1)), /released/);
});

Deno.test("createCpuDevice() refuses buffers that no CPU device created", () => {
  const d = createCpuDevice();
  const foreign = { bytes: 4, label: "foreign" };
  assertThrows(() => d.write(foreign, new Float32Array(1)), TypeError);
  assertThrows(() => d.release(foreign), TypeError);
});

Deno.test("createCpuDevice() copy moves a byte range between buffers and within one", async () => {
  const d = createCpuDevice();
  const a = d.createBuffer(16, "a"), b = d.createBuffer(16, "b");
  d.write(a, new Float32Array([1, 2, 3, 4]));
  d.copy(a, 4, b, 8, 8);
  assertEquals(Array.from(new Float32Array(await d.read(b))), [0, 0, 2, 3]);
  d.copy(a, 0, a, 4, 12); // overlapping: behaves as if through a temporary
  assertEquals(Array.from(new Float32Array(await d.read(a))), [1, 1, 2, 3]);
  assertThrows(() => d.copy(a, 8, b, 0, 12), RangeError);
});
