import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import type { KernelSpec } from "../contract.ts";
import { cpuKernel } from "./mod.ts";

// The kernels' numerics are checked against the float64 reference by the conformance suite
// (tests/conformance/kernels_test.ts); these tests cover dispatch by op and argument errors.

Deno.test("cpuKernel() runs the kernel of the spec's op", () => {
  const add = cpuKernel({ op: "add", width: 2 });
  const a = new Float32Array([1, 2, 10, 20]), b = new Float32Array([3, 4, 30, 40]);
  const out = new Float32Array(4).fill(-1);
  add([a.buffer, b.buffer, out.buffer], 1); // R = 1: the second row stays untouched
  assertEquals(Array.from(out), [4, 6, -1, -1]);
});

Deno.test("cpuKernel() rejects an unknown op with a TypeError", () => {
  assertThrows(() => cpuKernel({ op: "conv2d" } as unknown as KernelSpec), TypeError);
});

Deno.test("cpuKernel() rejects a silu_mul matmul on a split weight with a RangeError", () => {
  const spec: KernelSpec = {
    op: "matmul",
    N: 8,
    K: 4,
    rowStart: 4,
    rows: 4,
    weight: { kind: "dense", dtype: "f32" },
    bias: null,
    epilogue: "silu_mul",
    maxRows: 1,
  };
  assertThrows(() => cpuKernel(spec), RangeError);
});

Deno.test("cpuKernel() rejects rope with an odd headDim or a wrong frequency count", () => {
  assertThrows(
    () => cpuKernel({ op: "rope", heads: 1, kvHeads: 1, headDim: 5, invFreq: [1, 1] }),
    RangeError,
  );
  assertThrows(
    () => cpuKernel({ op: "rope", heads: 1, kvHeads: 1, headDim: 4, invFreq: [1] }),
    RangeError,
  );
});

Deno.test("cpuKernel() take_rows throws a RangeError for an index past x", () => {
  const k = cpuKernel({ op: "take_rows", width: 2 });
  const x = new Float32Array(4), idx = new Uint32Array([2]), out = new Float32Array(2);
  assertThrows(() => k([x.buffer, idx.buffer, out.buffer], 1), RangeError);
});

Deno.test("cpuKernel() attention rejects heads that are not a multiple of kvHeads", () => {
  assertThrows(
    () =>
      cpuKernel({
        op: "attention",
        heads: 3,
        kvHeads: 2,
        headDim: 4,
        qStride: 12,
        window: 0,
        scale: 0.5,
      }),
    RangeError,
  );
});
