/**
 * Matmul speed on the machine's WebGPU adapter, as a ratio to a plain read kernel (bandwidth
 * roofline, measured the same way) for decode GEMVs and as TFLOP/s for prefill tiles.
 * Run: `deno run -A --no-check compiler/codegen/webgpu/matmul_bench.ts [--quick] [--tune]
 * [--prefill [--x8]] [--tiles] [--batch16 [--rows=4,8,16] [--splitk | --x8]]` (`--tune` also times
 * each GEMV tuning, `--prefill` times only the prefill shapes (Llama-3-8B's at 512 rows),
 * `--tiles` also times each tiled tuning, `--prefill --x8` the tiled shape on q8 activations, `--batch16` the batched-decode shapes of the 8B and
 * 1B at the given rows: the GEMV against the few-rows shape's tunings; `--splitk` the same work
 * laid out as a K split; `--x8` the few-rows shape's tunings on q8 activations, quantised in the kernel or given as
 * quantize_q8 rows); `--ksweep` the 8B's qkv, o_proj and down at 16 rows on quantize_q8 rows
 * under K splits and few-rows tunings.
 * Times are GPU time per dispatch from submit-and-wait rounds (see `timeIt`).
 * @module
 */
import type { KernelSpec, WeightFormat } from "../contract.ts";
import { createWebGpuDevice } from "../../../engine/devices/webgpu.ts";
import { wgslKernel } from "./mod.ts";
import { timeIt as timeWith } from "./bench_timing.ts";
import { weightBindingBytes } from "./common.ts";
import { gemvDefaults, type GemvTuning, matmulGemv } from "./matmul_gemv.ts";
import * as tiled from "./matmul_tiled.ts";
import { matmulRows, rowsDefaults, rowsSplitK, type RowsTuning } from "./matmul_rows.ts";
import { matmulTiledQ8, tiledQ8SharedBytes, type TiledQ8Tuning } from "./matmul_tiled_q8.ts";

const quick = Deno.args.includes("--quick");
const timeIt = (run: () => void, sync: () => Promise<unknown>) => timeWith(run, sync, quick);
const dev = await createWebGpuDevice();
if (!dev) throw new Error("no WebGPU adapter");
const q4: WeightFormat = { kind: "group", bits: 4, groupSize: 32, scaleDtype: "f16" };
const f16: WeightFormat = { kind: "dense", dtype: "f16" };

/** Bandwidth of a plain vec4<u32> read-and-sum kernel over `bytes`. */
async function readRoofline(bytes: number): Promise<number> {
  const g = dev!.gpu;
  const n4 = bytes / 16;
  const code = `@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) id: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>) {
  var acc = vec4<u32>(0u);
  let stride = nwg.x * 256u;
  for (var i = id.x; i < ${n4}u; i += stride) { acc ^= src[i]; }
  if (acc.x == 12345u) { dst[0] = acc.y; }
}`;
  const pipe = g.createComputePipeline({
    layout: "auto",
    compute: { module: g.createShaderModule({ code }), entryPoint: "main" },
  });
  const src = g.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE });
  const dst = g.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
  const bg = g.createBindGroup({
    layout: pipe.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: dst } }],
  });
  const enc: { e: GPUCommandEncoder | null; p: GPUComputePassEncoder | null } = {
    e: null,
    p: null,
  };
  const run = () => {
    if (!enc.p) enc.e = g.createCommandEncoder(), enc.p = enc.e.beginComputePass();
    enc.p.setPipeline(pipe);
    enc.p.setBindGroup(0, bg);
    enc.p.dispatchWorkgroups(Math.min(65535, 132 * 64));
  };
  const sync = async () => {
    enc.p!.end();
    g.queue.submit([enc.e!.finish()]);
    enc.e = enc.p = null;
    await g.queue.onSubmittedWorkDone();
  };
  const s = await timeIt(run, sync);
  src.destroy();
  dst.destroy();
  return bytes / s;
}

async function bench(
  spec: Extract<KernelSpec, { op: "matmul" }>,
  R: number,
  tune?: GemvTuning | tiled.TiledTuning | RowsTuning | TiledQ8Tuning,
) {
  const d = dev!;
  const src = !tune
    ? wgslKernel(spec, d.target)
    : "blocks" in tune
    ? matmulTiledQ8(spec, d.target, tune)
    : "colsPerLane" in tune
    ? matmulRows(spec, d.target, tune)
    : "bk" in tune
    ? tiled.matmulTiled(spec, d.target, tune)
    : matmulGemv(spec, d.target, tune);
  // kernels(): a pipeline the driver fails to compile rejects here (kernel() would time a no-op)
  const [k] = await d.kernels([{ spec, source: src }]);
  const wBufs = spec.weight.kind === "dense"
    ? [d.createBuffer(weightBindingBytes(spec.weight, spec.rows, spec.K), "w")]
    : [
      d.createBuffer(weightBindingBytes(spec.weight, spec.rows, spec.K), "qw"),
      d.createBuffer(spec.rows * Math.ceil(spec.K / 32) * 2, "qs"),
    ];
  const outW = spec.epilogue === "silu_mul" ? spec.N / 2 : spec.N;
  const x = d.createBuffer(R * spec.K * 4, "x");
  const out = d.createBuffer(R * outW * (spec.kSplit ?? 1) * 4, "out");
  const res = spec.epilogue === "add" ? [d.createBuffer(R * spec.N * 4, "res")] : [];
  const bufs = [x, ...wBufs, ...res, out];
  const s = await timeIt(() => d.dispatch(k, bufs, R), () => d.read(out, 4));
  for (const b of bufs) d.release(b);
  const bytes = wBufs.reduce((a, b) => a + b.bytes, 0);
  return { s, bytes, flops: 2 * R * spec.N * spec.K };
}

const mm = (
  weight: WeightFormat,
  N: number,
  K: number,
  maxRows: number,
  epilogue: "none" | "silu_mul" | "add" = "none",
) => ({
  op: "matmul" as const,
  N,
  K,
  rowStart: 0,
  rows: N,
  weight,
  bias: null,
  epilogue,
  maxRows,
});

const prefillOnly = Deno.args.includes("--prefill") || Deno.args.includes("--batch16") ||
  Deno.args.includes("--ksweep");
const roof = prefillOnly ? 0 : await readRoofline(quick ? 16 << 20 : 256 << 20);
console.log(
  `read roofline: ${
    (roof / 1e9).toFixed(0)
  } GB/s (${dev.target.features.length} features, ${dev.target.limits.maxComputeWorkgroupStorageSize} B workgroup storage)`,
);
const decode: [string, ReturnType<typeof mm>, number][] = prefillOnly
  ? []
  : quick
  ? [["q4 256x512", mm(q4, 256, 512, 1), 1]]
  : [
    ["q4 4096x4096 (o_proj)", mm(q4, 4096, 4096, 1, "add"), 1],
    ["q4 22016x4096 (gate_up silu)", mm(q4, 22016, 4096, 1, "silu_mul"), 1],
    ["q4 4096x11008 (down)", mm(q4, 4096, 11008, 1, "add"), 1],
    ["q4 32000x4096 (lm_head)", mm(q4, 32000, 4096, 1), 1],
    ["f16 4096x4096", mm(f16, 4096, 4096, 1), 1],
    ["q4 4096x4096 R=4", mm(q4, 4096, 4096, 4), 4],
    ["q4 4096x4096 R=16", mm(q4, 4096, 4096, 16), 16],
    ["q4 4096x4096 R=32", mm(q4, 4096, 4096, 32), 32],
  ];
const tunings: GemvTuning[] = Deno.args.includes("--tune")
  ? [
    { threadsPerCol: 64, colsPerThread: 8, rowsPerGroup: 1, unroll: 2, codeWords: 1 },
    { threadsPerCol: 128, colsPerThread: 4, rowsPerGroup: 1, unroll: 4, codeWords: 1 },
    { threadsPerCol: 32, colsPerThread: 8, rowsPerGroup: 1, unroll: 1, codeWords: 2 },
    { threadsPerCol: 32, colsPerThread: 4, rowsPerGroup: 1, unroll: 1, codeWords: 4 },
  ]
  : [];
for (const [name, spec, R] of decode) {
  for (const tune of [undefined, ...tunings]) {
    const r = await bench(spec, R, tune);
    console.log(
      `decode ${name}${tune ? ` ${JSON.stringify(tune)}` : ""}: ${(r.s * 1e6).toFixed(1)} us, ${
        (r.bytes / r.s / 1e9).toFixed(0)
      } GB/s = ${(100 * r.bytes / r.s / roof).toFixed(0)}% of read roofline`,
    );
  }
}
const prefill: [string, ReturnType<typeof mm>, number][] =
  Deno.args.includes("--batch16") || Deno.args.includes("--ksweep")
    ? []
    : quick
    ? [["q4 256x512 R=70", mm(q4, 256, 512, 128), 70]]
    : [
      ["q4 28672x4096 silu R=512 (8B gate_up)", mm(q4, 28672, 4096, 512, "silu_mul"), 512],
      ["q4 4096x14336 add R=512 (8B down)", mm(q4, 4096, 14336, 512, "add"), 512],
      ["q4 6144x4096 R=512 (8B qkv)", mm(q4, 6144, 4096, 512), 512],
      ["q4 4096x4096 add R=512 (8B o_proj)", mm(q4, 4096, 4096, 512, "add"), 512],
      ["f16 4096x4096 R=512", mm(f16, 4096, 4096, 512), 512],
    ];
// --batch16: the decode functions' few-row matmuls (compiled for 32 rows), the GEMV shape
// against the few-rows shape (`matmulRows`: its defaults and variations); `--rows=2,4,...`
// picks the row counts (default 16).
if (Deno.args.includes("--batch16")) {
  const rowsArg = Deno.args.find((a) => a.startsWith("--rows="));
  const Rs = rowsArg ? rowsArg.slice(7).split(",").map(Number) : [16];
  // --splitk: what the few-rows shape would take on qkv, o_proj and down with K split across
  // workgroups, as the same work laid out as KS times the weight rows of K / KS (without the
  // partial sums' second pass)
  const splitK = Deno.args.includes("--splitk");
  for (
    const [name, spec] of splitK
      ? [
        ["q4 8192x7168 (8B down, K split 2)", mm(q4, 8192, 7168, 32)],
        ["q4 16384x3584 (8B down, K split 4)", mm(q4, 16384, 3584, 32)],
        ["q4 32768x1792 (8B down, K split 8)", mm(q4, 32768, 1792, 32)],
        ["q4 12288x2048 (8B qkv, K split 2)", mm(q4, 12288, 2048, 32)],
        ["q4 24576x1024 (8B qkv, K split 4)", mm(q4, 24576, 1024, 32)],
        ["q4 8192x2048 (8B o_proj, K split 2)", mm(q4, 8192, 2048, 32)],
        ["q4 16384x1024 (8B o_proj, K split 4)", mm(q4, 16384, 1024, 32)],
      ] as const
      : [
        ["q4 28672x4096 silu (8B gate_up)", mm(q4, 28672, 4096, 32, "silu_mul")],
        ["q4 4096x14336 add (8B down)", mm(q4, 4096, 14336, 32, "add")],
        ["q4 6144x4096 (8B qkv)", mm(q4, 6144, 4096, 32)],
        ["q4 4096x4096 add (8B o_proj)", mm(q4, 4096, 4096, 32, "add")],
        ["q4 128256x4096 (8B lm_head)", mm(q4, 128256, 4096, 32)],
        ["q4 16384x2048 silu (1B gate_up)", mm(q4, 16384, 2048, 32, "silu_mul")],
        ["q4 2048x8192 add (1B down)", mm(q4, 2048, 8192, 32, "add")],
        ["q4 3072x2048 (1B qkv)", mm(q4, 3072, 2048, 32)],
        ["q4 2048x2048 add (1B o_proj)", mm(q4, 2048, 2048, 32, "add")],
        ["q4 128256x2048 (1B lm_head)", mm(q4, 128256, 2048, 32)],
      ] as const
  ) {
    // (with the K split that split_k gives it)
    const ks = rowsSplitK(spec);
    const q8: Extract<KernelSpec, { op: "matmul" }> = ks > 1
      ? { ...spec, xq8: true, epilogue: "none", kSplit: ks }
      : { ...spec, xq8: true };
    const def = rowsDefaults(Deno.args.includes("--x8") ? q8 : spec);
    // "gemv": the GEMV shape's own defaults (what matmulKernel picked before matmulRows)
    const variants: (RowsTuning | "gemv")[] = splitK
      ? [def, { ...def, rowsPerGroup: 16 }]
      : Deno.args.includes("--x8")
      ? [
        def,
        { ...def, rowsPerGroup: def.rowsPerGroup === 8 ? 16 : 8 },
        { ...def, warps: 16 },
        { ...def, colsPerLane: Math.max(1, def.colsPerLane / 2) },
        { ...def, prefetch: false },
      ]
      : [
        "gemv",
        def,
        { ...def, colsPerLane: Math.max(1, def.colsPerLane / 2) },
        { ...def, warps: 16 },
        { ...def, rowsPerGroup: def.rowsPerGroup === 8 ? 16 : 8 },
        { ...def, skipRows: false },
      ];
    const seen = new Set<string>();
    // --x8: the shape's tunings on q8 activations (`xq8`), quantised in the kernel and given
    // as quantize_q8 rows (`xCodes`)
    const specs: Extract<KernelSpec, { op: "matmul" }>[] = Deno.args.includes("--x8")
      ? [q8, { ...q8, xCodes: true }]
      : [spec];
    for (const R of Rs) {
      for (const [tune, sp] of variants.flatMap((v) => specs.map((sp) => [v, sp] as const))) {
        const key = `${JSON.stringify(tune)}${sp.xq8 ? " xq8" : ""}${sp.xCodes ? " codes" : ""}`;
        if (seen.has(`${R} ${key}`)) continue;
        seen.add(`${R} ${key}`);
        // (on xCodes, the shape's own unitLanes and prefetchRows under the varied tuning)
        const codes = sp.xCodes ? rowsDefaults(sp) : undefined;
        const t = tune === "gemv"
          ? undefined
          : codes
          ? { unitLanes: codes.unitLanes, prefetchRows: codes.prefetchRows, ...tune }
          : tune;
        const r = await bench(sp, R, t ?? gemvDefaults(sp, dev.target)).catch((e) => {
          console.log(`batch16 ${name} R=${R} ${key}: ${(e as Error).message}`);
          return null;
        });
        if (!r) continue;
        console.log(
          `batch16 ${name} R=${R}${sp.xq8 ? " xq8" : ""}${sp.xCodes ? " codes" : ""}${
            sp.kSplit ? ` kSplit ${sp.kSplit}` : ""
          } ${t ? JSON.stringify(t) : "GEMV default"}: ${(r.s * 1e6).toFixed(1)} us, ${
            (r.flops / r.s / 1e12).toFixed(1)
          } TFLOP/s, ${(r.bytes / r.s / 1e9).toFixed(0)} GB/s`,
        );
      }
    }
  }
}
// --ksweep: the 8B's batched-decode matmuls that split K (qkv, o_proj, down) at 16 rows on
// quantize_q8 rows (`xCodes`), the few-rows shape under K splits of 1 to 16 (ranges of at least
// 8 units), 8 or 16 rows a block, 1 to 4 columns a lane and 4 or 8 warps (the defaults first)
if (Deno.args.includes("--ksweep")) {
  for (
    const [name, spec] of [
      ["8B qkv 6144x4096", mm(q4, 6144, 4096, 32)],
      ["8B o_proj 4096x4096", mm(q4, 4096, 4096, 32)],
      ["8B down 4096x14336", mm(q4, 4096, 14336, 32)],
    ] as const
  ) {
    const codes = { ...spec, xq8: true, xCodes: true };
    const def = rowsSplitK(codes);
    for (const ks of [def, 1, 2, 4, 8, 16].filter((k, i, a) => a.indexOf(k) === i)) {
      if (spec.K / 32 / ks < 8) continue;
      const sp = ks > 1 ? { ...codes, kSplit: ks } : codes;
      const first = rowsDefaults(sp);
      const tunes: RowsTuning[] = [first];
      for (const rowsPerGroup of [8, 16]) {
        for (const colsPerLane of [1, 2, 4]) {
          for (const warps of [4, 8]) {
            tunes.push({ ...first, rowsPerGroup, colsPerLane, warps });
          }
        }
      }
      const seen = new Set<string>();
      for (const t of tunes) {
        const key = JSON.stringify(t);
        if (seen.has(key)) continue;
        seen.add(key);
        const r = await bench(sp, 16, t).catch((e) => (console.log(`${name}: ${e}`), null));
        if (!r) continue;
        console.log(
          `ksweep ${name} kSplit ${ks}${
            ks === def && t === first ? " (default)" : ""
          } rows ${t.rowsPerGroup} cols ${t.colsPerLane} warps ${t.warps}: ${
            (r.s * 1e6).toFixed(1)
          } us, ${(r.flops / r.s / 1e12).toFixed(1)} TFLOP/s`,
        );
      }
    }
  }
}
const tiles: tiled.TiledTuning[] = Deno.args.includes("--tiles")
  ? [
    { rows: 128, wrows: 128, tm: 8, tn: 8, bk: 32, double: false, unroll: 32, vectorAcc: false },
    { rows: 64, wrows: 128, tm: 8, tn: 8, bk: 16, double: false, unroll: 16, prefetch: false },
    { rows: 64, wrows: 64, tm: 8, tn: 8, bk: 16, double: false, unroll: 16, prefetch: false },
    { rows: 64, wrows: 128, tm: 4, tn: 8, bk: 16, double: false, unroll: 16, prefetch: false },
    { rows: 128, wrows: 128, tm: 8, tn: 8, bk: 16, double: true, unroll: 16 },
    { rows: 128, wrows: 128, tm: 8, tn: 8, bk: 16, double: false, unroll: 16 },
    { rows: 128, wrows: 128, tm: 8, tn: 8, bk: 32, double: false, unroll: 32, prefetch: false },
    { rows: 128, wrows: 128, tm: 8, tn: 8, bk: 32, double: false, unroll: 16 },
  ].filter((t) => tiled.tiledSharedBytes(t) <= dev!.target.limits.maxComputeWorkgroupStorageSize)
  : [];
// --x8 (with --prefill): the tiled shape on q8 activations (`matmul_tiled_q8.ts`), its
// defaults and variations, after the f32 tiles
const q8Tiles: (TiledQ8Tuning | undefined)[] = Deno.args.includes("--x8")
  ? [
    undefined,
    { rows: 128, wrows: 128, tm: 8, tn: 8, blocks: 2, double: true },
    { rows: 128, wrows: 128, tm: 8, tn: 8, blocks: 1, double: false },
    { rows: 128, wrows: 128, tm: 8, tn: 8, blocks: 4, double: true },
    { rows: 64, wrows: 128, tm: 4, tn: 8, blocks: 2, double: true },
    { rows: 128, wrows: 64, tm: 8, tn: 4, blocks: 2, double: true },
    { rows: 64, wrows: 64, tm: 4, tn: 4, blocks: 2, double: true },
    { rows: 128, wrows: 256, tm: 8, tn: 8, blocks: 1, double: true },
    { rows: 256, wrows: 128, tm: 8, tn: 8, blocks: 1, double: true },
  ].filter((t) => !t || tiledQ8SharedBytes(t) <= dev!.target.limits.maxComputeWorkgroupStorageSize)
  : [];
for (const [name, spec, R] of prefill) {
  type Spec = Extract<KernelSpec, { op: "matmul" }>;
  const variants: [Spec, tiled.TiledTuning | TiledQ8Tuning | undefined][] = [
    ...[undefined, ...tiles].map((t): [Spec, tiled.TiledTuning | undefined] => [spec, t]),
    ...q8Tiles.map((t): [Spec, TiledQ8Tuning | undefined] => [{ ...spec, xq8: true }, t]),
    // and on quantize_q8 rows (`xCodes`)
    ...q8Tiles.map((t): [Spec, TiledQ8Tuning | undefined] => [
      { ...spec, xq8: true, xCodes: true },
      t,
    ]),
  ];
  for (const [sp, tune] of variants) {
    if (tune && spec.epilogue === "silu_mul" && tune.tn !== 8) continue;
    const r = await bench(sp, R, tune).catch((e) => {
      console.log(`prefill ${name} ${JSON.stringify(tune)}: ${(e as Error).message}`);
      return null;
    });
    if (!r) continue;
    console.log(
      `prefill ${name}${sp.xq8 ? " xq8" : ""}${sp.xCodes ? " codes" : ""}${
        tune ? ` ${JSON.stringify(tune)}` : ""
      }: ${(r.s * 1e3).toFixed(2)} ms, ${(r.flops / r.s / 1e12).toFixed(1)} TFLOP/s`,
    );
  }
}
dev.destroy();
