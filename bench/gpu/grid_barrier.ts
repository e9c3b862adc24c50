/**
 * Experiment: what a boundary between two dependent phases costs, as a dispatch boundary
 * (what Kiln's decode step has between its ~160 kernels) against a grid-wide barrier inside
 * one persistent dispatch (a layer "megakernel": every workgroup resident, phases separated by
 * an atomic counter and device-scope storage barriers).
 *
 * Each phase is GEMV-like: G workgroups of 256 threads read `bytes` of their own weights
 * (vec4 loads, 4 in flight a thread), reduce in workgroup memory (a tree of barriers), and
 * write one value a workgroup; the next phase's workgroup w reads the value of workgroup
 * w + 1 (so every boundary is a real cross-workgroup dependency). Variants, each N phases:
 * - `dispatches`: one dispatch a phase (wgpu puts a barrier between them);
 * - `grid`: one dispatch of G workgroups, a grid barrier between phases;
 * - `grid+prefetch`: the same, each thread's first weight loads of the next phase issued
 *   before the barrier (weights do not depend on the previous phase).
 * The values every variant leaves are compared (the grid barrier's visibility checked), and a
 * spin that gives up (a workgroup that never arrives) is reported, not hung on.
 * The grid variants need all G workgroups resident at once (G <= the SMs x workgroups an SM
 * holds): `--groups=` (default 264, two a streaming multiprocessor of an H100).
 * Usage (GPU host): `deno run -A --no-check bench/gpu/grid_barrier.ts [--groups=264]
 * [--sizes=0,2.4,9.4,14.2,33.1]` (MB a phase).
 * @module
 */
import { GpuTimer } from "./gpu_timer.ts";
import { fillSynthetic } from "./synthetic_weights.ts";

const arg = (name: string, d: number) =>
  Number(Deno.args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? d);
const G = arg("groups", 264);
const T = 256;

const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
if (!adapter) throw new Error("no WebGPU adapter");
const device = await adapter.requestDevice({
  requiredFeatures: ["timestamp-query"],
  requiredLimits: {
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    maxBufferSize: adapter.limits.maxBufferSize,
  },
});
device.addEventListener(
  "uncapturederror",
  (e) => console.error("WebGPU error:", (e as GPUUncapturedErrorEvent).error.message),
);
const timer = new GpuTimer(device);
// the weights: as much as one binding holds, at most 1 GiB; phases cycle through its regions
const WEIGHT_BYTES = Math.min(
  1 << 30,
  device.limits.maxStorageBufferBindingSize,
  device.limits.maxBufferSize,
) & ~0xffff;
const info = adapter.info;
console.log(`device: ${info.vendor} ${info.device || info.description}; ${G} workgroups x ${T}`);

const weights = device.createBuffer({ size: WEIGHT_BYTES, usage: GPUBufferUsage.STORAGE });
// random words on the GPU (the bench's synthetic-weight fill)
fillSynthetic(device, weights, WEIGHT_BYTES / 4, { kind: "bits", seed: 1, firstWord: 0 });

/** WGSL of a phase body and the three entry points, for phases of `v4` vec4s each, phase k
 * reading region k % `regions` of the weights. */
function shader(v4: number, phases: number, regions: number, atomicX = false): string {
  const stride = G * T; // vec4s between a thread's consecutive loads
  const at = (k: string, i: string) =>
    `w[min((${k} % ${regions}u) * ${v4}u + ${i}, ${Math.max(1, regions * v4) - 1}u)]`;
  return `struct P { k: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> xs: array<${
    atomicX ? "atomic<u32>" : "f32"
  }>; // [2, G] phase outputs${atomicX ? " (f32 bits, read and written atomically)" : ""}
@group(0) @binding(2) var<storage, read_write> sync: array<atomic<u32>>; // count, timeouts
@group(0) @binding(3) var<uniform> prm: P;
var<workgroup> red: array<u32, ${T}>;

// phase k of workgroup g: first (this thread's first 4 loads, issued by the caller or here)
fn phase(k: u32, g: u32, lid: u32, first: vec4<u32>) {
  let xi = (k & 1u) * ${G}u + (g + 1u) % ${G}u; // the previous phase's value (another workgroup's)
  let xin = ${atomicX ? "bitcast<f32>(atomicLoad(&xs[xi]))" : "xs[xi]"};
  var acc = first;
  for (var i = g * ${T}u + lid + ${4 * stride}u; i < ${v4}u; i += ${4 * stride}u) {
    acc += (${at("k", "i")} + ${at("k", `i + ${stride}u`)}) + (${at("k", `i + ${2 * stride}u`)} + ${
    at("k", `i + ${3 * stride}u`)
  });
  }
  red[lid] = acc.x + acc.y + acc.z + acc.w;
  workgroupBarrier();
  for (var s = ${T / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let v = fract(xin * 0.75 + f32(red[0] & 1023u) * 0.001) + 1.0;
    ${
    atomicX
      ? "atomicStore(&xs[((k + 1u) & 1u) * " + G + "u + g], bitcast<u32>(v));"
      : `xs[((k + 1u) & 1u) * ${G}u + g] = v;`
  }
  }
}

// a thread's first 4 loads of phase k
fn firsts(k: u32, g: u32, lid: u32) -> vec4<u32> {
  ${v4 === 0 ? "return vec4<u32>(k, g, lid, 1u); // (phases that read nothing)" : ""}
  let i = g * ${T}u + lid;
  if (i >= ${v4}u) { return vec4<u32>(0u); }
  return (${at("k", "i")} + ${at("k", `i + ${stride}u`)}) + (${at("k", `i + ${2 * stride}u`)} + ${
    at("k", `i + ${3 * stride}u`)
  });
}

// every workgroup of the dispatch at phase boundary k: count in, spin until all ${G} have
fn grid(k: u32, lid: u32) {
  storageBarrier();
  if (lid == 0u) {
    atomicAdd(&sync[0], 1u);
    let goal = (k + 1u) * ${G}u;
    var spins = 0u;
    loop {
      if (atomicLoad(&sync[0]) >= goal) { break; }
      spins++;
      if (spins > 2000000u) { atomicAdd(&sync[1], 1u); break; }
    }
  }
  storageBarrier();
}

@compute @workgroup_size(${T}) fn one(@builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32) {
  phase(prm.k, wid.x, lid, firsts(prm.k, wid.x, lid));
}

@compute @workgroup_size(${T}) fn all(@builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32) {
  for (var k = 0u; k < ${phases}u; k++) {
    phase(k, wid.x, lid, firsts(k, wid.x, lid));
    if (k + 1u < ${phases}u) { grid(k, lid); }
  }
}

@compute @workgroup_size(${T}) fn ahead(@builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32) {
  var first = firsts(0u, wid.x, lid);
  for (var k = 0u; k < ${phases}u; k++) {
    phase(k, wid.x, lid, first);
    if (k + 1u < ${phases}u) {
      first = firsts(k + 1u, wid.x, lid); // issued before the barrier
      grid(k, lid);
    }
  }
}
`;
}

interface Row {
  bytes: number;
  phases: number;
  regions: number;
  dispatches: number;
  grid: number;
  ahead: number;
  atomic: number;
  timeouts: number;
  same: string;
}

async function measure(bytes: number): Promise<Row> {
  // vec4s a phase: whole rounds of 4 loads a thread (none: phases that read nothing)
  const v4 = bytes === 0 ? 0 : Math.max(1, Math.round(bytes / 16 / (G * T * 4))) * G * T * 4;
  const phases = 128;
  const regions = v4 === 0 ? 1 : Math.max(1, Math.min(phases, Math.floor(WEIGHT_BYTES / 16 / v4)));
  const module = device.createShaderModule({ code: shader(v4, phases, regions) });
  const layout = device.createBindGroupLayout({
    entries: [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "read-only-storage" } },
      { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
      { binding: 2, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
      { binding: 3, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
    ],
  });
  const pl = device.createPipelineLayout({ bindGroupLayouts: [layout] });
  const pipe = (entryPoint: string) =>
    device.createComputePipeline({ layout: pl, compute: { module, entryPoint } });
  const [one, all, ahead] = [pipe("one"), pipe("all"), pipe("ahead")];
  const atomicModule = device.createShaderModule({ code: shader(v4, phases, regions, true) });
  const allAtomic = device.createComputePipeline({
    layout: pl,
    compute: { module: atomicModule, entryPoint: "all" },
  });
  const xs = device.createBuffer({
    size: 8 * G,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  const sync = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  const groups = Array.from({ length: phases }, (_, k) => {
    const u = device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.UNIFORM,
      mappedAtCreation: true,
    });
    new Uint32Array(u.getMappedRange())[0] = k;
    u.unmap();
    return device.createBindGroup({
      layout,
      entries: [weights, xs, sync, u].map((buffer, binding) => ({
        binding,
        resource: { buffer, ...(binding === 0 ? { size: Math.max(16, regions * v4 * 16) } : {}) },
      })),
    });
  });
  const reset = () => {
    device.queue.writeBuffer(xs, 0, new Float32Array(2 * G).fill(1));
    device.queue.writeBuffer(sync, 0, new Uint32Array(4));
  };
  type Variant = "dispatches" | "grid" | "ahead" | "atomic";
  const run = async (variant: Variant): Promise<number> => {
    reset();
    return await timer.pass((p) => {
      if (variant === "dispatches") {
        p.setPipeline(one);
        for (let k = 0; k < phases; k++) {
          p.setBindGroup(0, groups[k]);
          p.dispatchWorkgroups(G);
        }
      } else {
        p.setPipeline({ grid: all, ahead, atomic: allAtomic }[variant]);
        p.setBindGroup(0, groups[0]);
        p.dispatchWorkgroups(G);
      }
    });
  };
  const read = async (buf: GPUBuffer, size: number) => {
    const staging = device.createBuffer({
      size,
      usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ,
    });
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(buf, 0, staging, 0, size);
    device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = staging.getMappedRange().slice(0);
    staging.destroy();
    return out;
  };
  // warm the clock (~0.3 s of work), then time each variant, best of 7, interleaved
  const t0 = performance.now();
  while (performance.now() - t0 < 300) await run("dispatches");
  const best = { dispatches: Infinity, grid: Infinity, ahead: Infinity, atomic: Infinity };
  let timeouts = 0;
  const results: Record<string, Float32Array> = {};
  for (let rep = 0; rep < 7; rep++) {
    for (const v of ["dispatches", "grid", "ahead", "atomic"] as const) {
      best[v] = Math.min(best[v], await run(v));
      timeouts += new Uint32Array(await read(sync, 16))[1];
      if (rep === 0) results[v] = new Float32Array(await read(xs, 8 * G));
    }
  }
  if (Deno.env.get("GRID_DEBUG")) {
    console.log(
      Object.entries(results).map(([k, v]) => `${k}: ${Array.from(v.slice(0, 6)).join(" ")}`),
    );
  }
  const agree = (v: string) => results[v].every((x, i) => x === results.dispatches[i]);
  const same = `${agree("grid")}/${agree("ahead")}/${agree("atomic")}`;
  return { bytes: v4 * 16, phases, regions, ...best, timeouts, same };
}

const rows: Row[] = [];
const sizes = Deno.args.find((a) => a.startsWith("--sizes="))?.slice(8).split(",").map(Number) ??
  [0, 2.4, 9.4, 14.2, 33.1];
for (const mb of sizes) rows.push(await measure(mb * 1e6));
console.log(
  `\nweights: ${(WEIGHT_BYTES / 2 ** 20).toFixed(0)} MiB (the phases cycle through its regions)\n` +
    "\n| bytes a phase | phases (regions) | µs a phase: a dispatch each | grid barrier | grid barrier, next loads ahead | grid barrier, x read atomically | spins given up | values agree (grid / ahead / atomic) |",
);
console.log("|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  const us = (ms: number) => ((ms * 1e3) / r.phases).toFixed(2);
  console.log(
    `| ${(r.bytes / 1e6).toFixed(1)} MB | ${r.phases} (${r.regions}) | ${us(r.dispatches)} | ${
      us(r.grid)
    } | ${us(r.ahead)} | ${us(r.atomic)} | ${r.timeouts} | ${r.same} |`,
  );
}
