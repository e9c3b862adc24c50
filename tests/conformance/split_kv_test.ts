/**
 * Split-KV decode end to end on every available device: `attention_decode` then
 * `attention_merge` must give what `rope_kv_append` then `attention` give in the float64
 * reference (the output and the cache), whatever the split layout, for the split counts the
 * compiler picks and for hand-picked ragged ones.
 * @module
 */
import { ok } from "node:assert/strict";
import { type KernelSpec, PAGE_SIZE } from "../../compiler/codegen/contract.ts";
import { cpuKernel } from "../../compiler/codegen/cpu/mod.ts";
import { wgslKernel } from "../../compiler/codegen/webgpu/mod.ts";
import { decodeSplitLayout, SPLIT_ALIGN } from "../../compiler/passes/split_kv_decode.ts";
import type { Device } from "../../engine/device.ts";
import { createCpuDevice } from "../../engine/devices/cpu.ts";
import { createWebGpuDevice } from "../../engine/devices/webgpu.ts";
import { TOL } from "./case.ts";
import { batch, invFreq } from "./cases_paged.ts";
import { padded, Rng } from "./helpers.ts";
import { reference } from "./reference.ts";
import { compareBinding } from "./suite.ts";

interface Case {
  H: number;
  KV: number;
  D: number;
  lens: number[];
  window: number;
  splits: number;
  splitRows: number;
  align: number;
}

const SHAPES: Omit<Case, "splits" | "splitRows" | "align">[] = [
  { H: 32, KV: 8, D: 128, lens: [577, 33, 1, 100], window: 0 }, // Llama-3-8B heads
  { H: 14, KV: 2, D: 64, lens: [300, 17], window: 0 }, // 7 heads a KV head
  { H: 4, KV: 1, D: 32, lens: [90, 40, 5], window: 24 }, // MQA, sliding window
  { H: 4, KV: 2, D: 10, lens: [61, 2], window: 0 }, // head dim not a multiple of 4
];

/** Each shape with the split layout the compiler picks for a decode function of 1 and of 32
 * rows, and ragged ones (fewer splits a row than the most; an odd count and alignment). */
const CASES: Case[] = SHAPES.flatMap((s) => [
  { ...s, ...decodeSplitLayout(1, s.H, s.KV, 4096), align: SPLIT_ALIGN },
  { ...s, ...decodeSplitLayout(32, s.H, s.KV, 4096), align: SPLIT_ALIGN },
  { ...s, splits: 5, splitRows: 9, align: 3 },
  { ...s, splits: 7, splitRows: 64, align: 1 },
]).concat([
  // one row at MAX_SPLITS splits (more splits than the row's positions fill at this alignment)
  { H: 32, KV: 8, D: 128, lens: [577], window: 0, splits: 64, splitRows: 64, align: SPLIT_ALIGN },
]);

/** out and cache of `rope_kv_append` then `attention` in the float64 reference. */
function expected(c: Case, inputs: ArrayBuffer[], R: number) {
  const base = { heads: c.H, kvHeads: c.KV, headDim: c.D };
  const f = invFreq(c.D, 500000);
  const [qkv, ...paged] = inputs.slice(0, 5);
  const cache = inputs[5];
  const app = reference(
    { op: "rope_kv_append", ...base, invFreq: f },
    [qkv, ...paged, cache, new ArrayBuffer(R * c.H * c.D * 4)],
    R,
  );
  const f32 = (x: Float64Array | Uint32Array) => padded(Float32Array.from(x));
  const att = reference(
    { op: "attention", ...base, qStride: c.H * c.D, window: c.window, scale: 1 / Math.sqrt(c.D) },
    [f32(app.q_out), ...paged, f32(app.cache), new ArrayBuffer(R * c.H * c.D * 4)],
    R,
  );
  return { cache: app.cache, out: att.out };
}

async function check(device: Device, compile: (s: KernelSpec) => Parameters<Device["kernel"]>[1]) {
  const rng = new Rng(91);
  for (const c of CASES) {
    const b = batch(rng, c.lens, c.lens.map(() => 1));
    const R = b.R, W = (c.H + 2 * c.KV) * c.D;
    const layout = {
      window: c.window,
      splits: c.splits,
      splitRows: c.splitRows,
      splitAlign: c.align,
    };
    const dec: KernelSpec = {
      op: "attention_decode",
      heads: c.H,
      kvHeads: c.KV,
      headDim: c.D,
      scale: 1 / Math.sqrt(c.D),
      invFreq: invFreq(c.D, 500000),
      ...layout,
    };
    const merge: KernelSpec = { op: "attention_merge", heads: c.H, headDim: c.D, ...layout };
    const inputs = [
      padded(rng.normals(R * W, 2)),
      ...b.paged,
      padded(rng.normals(b.numPages * 2 * c.KV * PAGE_SIZE * c.D)),
    ];
    const want = expected(c, inputs, R);
    const [kd, km] = await device.kernels(
      [dec, merge].map((spec) => ({ spec, source: compile(spec) })),
    );
    const up = (data: ArrayBuffer, label: string) => {
      const buf = device.createBuffer(data.byteLength, label);
      device.write(buf, new Uint8Array(data));
      return buf;
    };
    const bufs = inputs.map((d, i) => up(d, `in${i}`));
    const partO = device.createBuffer(R * c.splits * c.H * c.D * 4, "part_o");
    const partLse = device.createBuffer(R * c.splits * c.H * 4, "part_lse");
    const out = device.createBuffer(R * c.H * c.D * 4, "out");
    device.dispatch(kd, [...bufs, partO, partLse], R);
    device.dispatch(km, [bufs[1], partO, partLse, out], R);
    const what = `${device.backend} ${JSON.stringify(c)}`;
    const errs = [
      compareBinding(
        "out",
        new Float32Array(await device.read(out)),
        want.out as Float64Array,
        TOL.f32,
      ),
      compareBinding(
        "cache",
        new Float32Array(await device.read(bufs[5])),
        want.cache as Float64Array,
        TOL.f32,
      ),
    ].filter((e) => e !== null);
    for (const x of [...bufs, partO, partLse, out]) device.release(x);
    ok(errs.length === 0, `${what}: ${errs.join("; ")}`);
  }
}

Deno.test("attention_decode + attention_merge (cpuKernel) equal rope_kv_append + attention in float64", async () => {
  await check(createCpuDevice(), cpuKernel);
});

const gpu = await createWebGpuDevice().catch(() => null);
Deno.test({
  name:
    "attention_decode + attention_merge (wgslKernel) equal rope_kv_append + attention in float64",
  ignore: !gpu,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await check(gpu!, (spec) => wgslKernel(spec, gpu!.target));
  },
});
