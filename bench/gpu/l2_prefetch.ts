/**
 * Experiment: does reading the next GEMVs' weights into the L2 cache during the latency-bound
 * attention pair shorten Llama-3-8B's b=1 decode step? A prefetch kernel (reads of the o_proj
 * weight and the first MB of each half of gate_up's, XOR-ed, stored under a condition no
 * data meets) is put into the recorded decode step after every `attention_decode`, after every
 * `attention_merge`, or before every `attention_decode`; the step is replayed back to back
 * (best of two, 10 steps a pass) with and without it. A control reads a separate buffer of
 * the same size instead of the weights: what the prefetch costs without any L2 benefit.
 * On the H100 (BENCHMARKS.md) every variant made the step longer by about the prefetch's own
 * read time, and reading the real weights was no faster than the control: the dispatches do
 * not overlap (the barriers between them serialise), and the GEMVs that follow gain nothing
 * from weights already in L2 (at this size they are bound by latency, not by DRAM bandwidth).
 * Usage (GPU host): `deno run -A --no-check bench/gpu/l2_prefetch.ts`
 * @module
 */
import { targetFromAdapter } from "../../compiler/target.ts";
import { bindings, type KernelSpec, PAGE_SIZE } from "../../compiler/codegen/contract.ts";
import type { DeviceBuffer } from "../../engine/device.ts";
import { openBenchDevice, type Trace } from "./bench_device.ts";
import { GpuTimer } from "./gpu_timer.ts";
import { kernelLabel } from "./plan_figures.ts";
import { tokens } from "./engine_bench.ts";
import { syntheticModel } from "./library_items.ts";

const { device: dev, adapter } = await openBenchDevice();
const timer = new GpuTimer(dev.gpu);
const root = new URL("../../", import.meta.url).pathname;
const { lib, rt, model } = await syntheticModel(
  `${root}bench/configs/llama3-8b`,
  targetFromAdapter(adapter),
  dev,
  Math.ceil(700 / PAGE_SIZE) + 8,
);
const V = lib.metadata.vocab_size;
let pos = 512;
model.run("prefill", [{ seq: 1, tokens: tokens(pos, V, 3), start: 0 }]);
for (let i = 0; i < 3; i++, pos++) model.run("decode", [{ seq: 1, tokens: [pos % V], start: pos }]);
const trace = dev.record(() => model.run("decode", [{ seq: 1, tokens: [7], start: pos }]));
await rt.read("decode", "logits", 4);

const labels = trace.map((d) => kernelLabel(d.kernel.spec as KernelSpec));
const attn = labels.flatMap((l, i) => (l === "attention_decode" ? [i] : []));
const after = (i: number, prefix: string) =>
  labels.findIndex((l, j) => j > i && l.startsWith(prefix));
const weightOf = (i: number) => {
  const spec = trace[i].kernel.spec as KernelSpec;
  return trace[i].buffers[bindings(spec).findIndex((b) => b.name === "q_weight")];
};
const raw = (b: DeviceBuffer) => (b as unknown as { buffer: GPUBuffer }).buffer;
const sink = dev.createBuffer(256, "sink");
const control = dev.createBuffer(80 << 20, "control");

/** A dispatch reading vec4s [off, off + n) of each part's buffer, `groups` workgroups of 256. */
function prefetch(groups: number, parts: { buf: DeviceBuffer; n: number; off: number }[]) {
  const stride = groups * 256;
  const loops = parts.map((p, i) => {
    const end = p.off + p.n, at = (k: number) => `b${i}[min(k + ${k * stride}u, ${end - 1}u)]`;
    return `
  for (var k = ${p.off}u + g * 256u + lid; k < ${end}u; k += ${4 * stride}u) {
    acc ^= (${at(0)} ^ ${at(1)}) ^ (${at(2)} ^ ${at(3)});
  }`;
  }).join("");
  const code = `@group(0) @binding(0) var<uniform> R: vec4<u32>;
${
    parts.map((_, i) => `@group(0) @binding(${i + 1}) var<storage, read> b${i}: array<vec4<u32>>;`)
      .join("\n")
  }
@group(0) @binding(${parts.length + 1}) var<storage, read_write> sink: array<u32>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = wid.x;
  var acc = vec4<u32>(0u);${loops}
  if (all(acc == vec4<u32>(0x9e3779b9u + R.x, 0x7f4a7c15u, 0x1234567u, 3u))) { sink[0] = acc.x; }
}`;
  const layout = dev.gpu.createBindGroupLayout({
    entries: [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
      ...parts.map((_, i) => ({
        binding: i + 1,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: "read-only-storage" as const },
      })),
      {
        binding: parts.length + 1,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: "storage" },
      },
    ],
  });
  const pipeline = dev.gpu.createComputePipeline({
    layout: dev.gpu.createPipelineLayout({ bindGroupLayouts: [layout] }),
    compute: { module: dev.gpu.createShaderModule({ code }), entryPoint: "main" },
  });
  // (the bench device's replay encodes any kernel with these fields)
  const kernel = {
    spec: { op: "prefetch" },
    pipeline,
    layout,
    source: { code, entryPoint: "main", rowsPerGroup: 1, groupsPerRowBlock: groups },
  } as never;
  return { kernel, buffers: [...parts.map((p) => p.buf), sink], rows: 1 };
}

const best = async (t: Trace) =>
  Math.min(await dev.replay(timer, t, 10), await dev.replay(timer, t, 10));

type Where = "after attention_decode" | "after attention_merge" | "before attention_decode";
async function withPrefetch(where: Where, oMB: number, guMB: number, groups: number, ctl: boolean) {
  const oV = Math.floor((oMB << 20) / 16), gV = Math.floor((guMB << 20) / 32); // vec4s
  const pre = attn.map((a) => {
    const o = ctl ? control : weightOf(after(a, "matmul 4096x4096"));
    const gu = ctl ? control : weightOf(after(a, "matmul 28672x4096"));
    const half = ctl ? (40 << 20) / 16 : raw(gu).size / 32; // up rows: the weight's second half
    return prefetch(
      groups,
      [{ buf: o, n: oV, off: 0 }, { buf: gu, n: gV, off: 0 }, { buf: gu, n: gV, off: half }]
        .filter((p) => p.n > 0),
    );
  });
  const t: Trace = [];
  trace.forEach((d, i) => {
    const shift = where === "after attention_merge"
      ? 2
      : where === "after attention_decode"
      ? 1
      : 0;
    const l = attn.indexOf(i - shift);
    if (shift === 0 && l >= 0) t.push(pre[l]);
    t.push(d);
    if (shift > 0 && l >= 0) t.push(pre[l]);
  });
  return await best(t);
}

await dev.warm(timer, trace, 10, 500);
const base = await best(trace);
console.log(`decode step (${attn.length} layers), replayed: ${base.toFixed(3)} ms`);
for (
  const where of [
    "after attention_decode",
    "after attention_merge",
    "before attention_decode",
  ] as const
) {
  for (const [oMB, guMB] of [[8, 0], [8, 16], [8, 32], [0, 32]]) {
    for (const groups of [132, 264]) {
      const ms = await withPrefetch(where, oMB, guMB, groups, false);
      console.log(
        `${where}: o_proj ${oMB} MB + gate_up ${guMB} MB, ${groups} groups: ${ms.toFixed(3)} ms (${
          ((ms / base - 1) * 100).toFixed(1)
        }%)`,
      );
    }
  }
  const ms = await withPrefetch(where, 8, 16, 132, true);
  console.log(`${where}: control (8 + 16 MB of another buffer), 132 groups: ${ms.toFixed(3)} ms`);
}
console.log(`decode step again: ${(await best(trace)).toFixed(3)} ms`);
