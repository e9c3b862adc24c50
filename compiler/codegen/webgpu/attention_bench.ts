/**
 * Attention speed on the machine's WebGPU adapter: decode (one row per sequence) reported as
 * the bandwidth of the unique K/V bytes read, prefill as time; and a decode step's attention
 * both ways: `rope_kv_append` + `attention` against `attention_decode` + `attention_merge` at
 * the split count the compiler picks (and, with `--sweep`, other split counts and threads).
 * Run: `deno run -A --no-check compiler/codegen/webgpu/attention_bench.ts [--quick] [--sweep]
 * [--prefill]` (`--prefill`: only prefill attention, the row kernel against the tiled one).
 * Times are GPU time per dispatch (or per pair): rounds of n and 2n queued dispatches, timed
 * from submit to the readback, differenced (the fixed wait cancels); n grows until a round
 * takes >= 100 ms. One layer's cache is read over and over: at short contexts it sits in L2.
 * @module
 */
import { type KernelSpec, PAGE_SIZE, splitsPerRow, type WgslKernel } from "../contract.ts";
import { createWebGpuDevice } from "../../../engine/devices/webgpu.ts";
import type { DeviceBuffer } from "../../../engine/device.ts";
import { wgslKernel } from "./mod.ts";
import { attentionKernel } from "./attention.ts";
import { attentionPrefillKernel, prefillPlan } from "./attention_prefill.ts";
import { attentionDecodeKernel, decodeThreads } from "./attention_decode.ts";
import { decodeSplitLayout, SPLIT_ALIGN } from "../../passes/split_kv_decode.ts";
import { SMALL_ROWS } from "../../models/llama.ts";
import { timeIt as timeWith } from "./bench_timing.ts";

const quick = Deno.args.includes("--quick");
const sweep = Deno.args.includes("--sweep");
const timeIt = (run: () => void, sync: () => Promise<unknown>) => timeWith(run, sync, quick);
const dev = await createWebGpuDevice();
if (!dev) throw new Error("no WebGPU adapter");

/** `seqs` sequences of `ctx` tokens, `rowsPerSeq` rows at the last positions of each: the
 * paged inputs and the cache. */
function paged(seqs: number, ctx: number, rowsPerSeq: number, KV: number, D: number) {
  const d = dev!;
  const pagesPer = Math.ceil(ctx / PAGE_SIZE);
  const R = seqs * rowsPerSeq;
  const pos = new Uint32Array(R), seq = new Uint32Array(R); // [R]
  for (let s = 0; s < seqs; s++) {
    for (let i = 0; i < rowsPerSeq; i++) {
      pos[s * rowsPerSeq + i] = ctx - rowsPerSeq + i;
      seq[s * rowsPerSeq + i] = s;
    }
  }
  const indptr = Uint32Array.from({ length: seqs + 1 }, (_, s) => s * pagesPer);
  const indices = Uint32Array.from({ length: seqs * pagesPer }, (_, i) => i);
  const cacheBytes = seqs * pagesPer * 2 * KV * PAGE_SIZE * D * 4;
  const bufs = [
    d.createBuffer(R * 4, "positions"),
    d.createBuffer(R * 4, "tok_seq"),
    d.createBuffer(indptr.byteLength, "indptr"),
    d.createBuffer(indices.byteLength, "indices"),
    d.createBuffer(cacheBytes, "cache"),
  ];
  d.write(bufs[0], pos);
  d.write(bufs[1], seq);
  d.write(bufs[2], indptr);
  d.write(bufs[3], indices);
  return { R, bufs, kvBytes: seqs * ctx * 2 * KV * D * 4 };
}

/** GPU seconds of the dispatches `steps` (kernel spec, its WGSL, buffers) queued back to back. */
async function time(steps: [KernelSpec, WgslKernel, DeviceBuffer[]][], R: number): Promise<number> {
  const d = dev!;
  const ks = steps.map(([spec, src]) => d.kernel(spec, src));
  const last = steps[steps.length - 1][2];
  return await timeIt(
    () => ks.forEach((k, i) => d.dispatch(k, steps[i][2], R)),
    () => d.read(last[last.length - 1], 4),
  );
}

/** An `attention` spec reading a compact q (no window). */
const attention = (H: number, KV: number, D: number) => ({
  op: "attention" as const,
  heads: H,
  kvHeads: KV,
  headDim: D,
  qStride: H * D,
  window: 0,
  scale: 1 / Math.sqrt(D),
});

/** The old attention alone, `rowsPerSeq` rows a sequence. */
async function bench(
  name: string,
  H: number,
  KV: number,
  D: number,
  seqs: number,
  ctx: number,
  rowsPerSeq: number,
) {
  const d = dev!;
  const spec = attention(H, KV, D);
  const p = paged(seqs, ctx, rowsPerSeq, KV, D);
  const q = d.createBuffer(p.R * H * D * 4, "q"), out = d.createBuffer(p.R * H * D * 4, "out");
  const s = await time([[spec, wgslKernel(spec, d.target), [q, ...p.bufs, out]]], p.R);
  for (const b of [q, out, ...p.bufs]) d.release(b);
  console.log(
    `${name}: ${(s * 1e6).toFixed(1)} us, K/V ${(p.kvBytes / 1e6).toFixed(1)} MB at ${
      (p.kvBytes / s / 1e9).toFixed(0)
    } GB/s`,
  );
}

/** A decode step's attention for `seqs` sequences at `ctx` (Llama-3-8B heads), both ways;
 * `maxRows` is the row bound of the function the engine would run (1: decode, 32: the
 * `_small` batch). */
async function decodeStep(seqs: number, ctx: number, maxRows: number) {
  const d = dev!;
  const H = 32, KV = 8, D = 128, W = (H + 2 * KV) * D;
  const invFreq = Array.from({ length: D / 2 }, (_, i) => 500000 ** (-(2 * i) / D));
  const scale = 1 / Math.sqrt(D);
  const p = paged(seqs, ctx, 1, KV, D);
  const [positions, tokSeq, indptr, indices, cache] = p.bufs;
  const qkv = d.createBuffer(p.R * W * 4, "qkv");
  const q = d.createBuffer(p.R * H * D * 4, "q"), out = d.createBuffer(p.R * H * D * 4, "out");
  const PAGED = [positions, tokSeq, indptr, indices];
  const app = { op: "rope_kv_append" as const, heads: H, kvHeads: KV, headDim: D, invFreq };
  const att = attention(H, KV, D);
  const old = await time([
    [app, wgslKernel(app, d.target), [qkv, ...PAGED, cache, q]],
    [att, wgslKernel(att, d.target), [q, ...PAGED, cache, out]],
  ], p.R);
  const label = `decode b=${seqs} ctx=${ctx} (H=${H} KV=${KV} D=${D}, K/V ${
    (p.kvBytes / 1e6).toFixed(1)
  } MB)`;
  const line = (what: string, s: number) =>
    console.log(
      `${label} ${what}: ${(s * 1e6).toFixed(1)} us a layer, ${
        (32 * s * 1e6).toFixed(0)
      } us a 32-layer step, ${(p.kvBytes / s / 1e9).toFixed(0)} GB/s`,
    );
  line("rope_kv_append + attention", old);
  // the layout the compiler picks for the function, then (--sweep) fixed splits a row
  const picked = decodeSplitLayout(maxRows, H, KV, 8192);
  // splits, splitRows, threads (the library's: `decodeThreads`)
  const threadsOf = (splits: number, splitRows: number) =>
    decodeThreads({ headDim: D, splits, splitRows });
  const configs: [number, number, number][] = [
    [picked.splits, picked.splitRows, threadsOf(picked.splits, picked.splitRows)],
  ];
  if (sweep) {
    for (const s of [1, 2, 4, 8, 16, 32, 64]) configs.push([s, s * p.R, threadsOf(s, s * p.R)]);
    configs.push([picked.splits, picked.splitRows, 512]);
  }
  for (const [splits, splitRows, threads] of configs) {
    const layout = { window: 0, splits, splitRows, splitAlign: SPLIT_ALIGN };
    const perRow = splitsPerRow(layout, p.R);
    const dec = {
      op: "attention_decode" as const,
      heads: H,
      kvHeads: KV,
      headDim: D,
      scale,
      invFreq,
      ...layout,
    };
    const merge = { op: "attention_merge" as const, heads: H, headDim: D, ...layout };
    const partO = d.createBuffer(p.R * splits * H * D * 4, "part_o");
    const partLse = d.createBuffer(p.R * splits * H * 4, "part_lse");
    const s = await time([
      [dec, attentionDecodeKernel(dec, d.target, threads), [qkv, ...PAGED, cache, partO, partLse]],
      [merge, wgslKernel(merge, d.target), [positions, partO, partLse, out]],
    ], p.R);
    line(`attention_decode + merge (${perRow} splits a row of ${splits}, ${threads} threads)`, s);
    d.release(partO);
    d.release(partLse);
  }
  for (const b of [qkv, q, out, ...p.bufs]) d.release(b);
}

/** Prefill attention of one `rows`-token prompt: the row kernel against the tiled one, in µs a
 * layer and TFLOP/s of the causal score and value products. */
async function prefill(name: string, H: number, KV: number, D: number, rows: number) {
  const d = dev!;
  const spec = { ...attention(H, KV, D), maxRows: rows };
  const p = paged(1, rows, rows, KV, D);
  const q = d.createBuffer(p.R * H * D * 4, "q"), out = d.createBuffer(p.R * H * D * 4, "out");
  const flops = 4 * H * D * (rows * (rows + 1)) / 2;
  const variants: [string, WgslKernel][] = [["row kernel", attentionKernel(spec, d.target)]];
  if (prefillPlan(spec, d.target)) variants.push(["tiled", attentionPrefillKernel(spec, d.target)]);
  for (const [what, src] of variants) {
    const s = await time([[spec, src, [q, ...p.bufs, out]]], p.R);
    console.log(
      `prefill ${name} ${rows} rows, ${what}: ${(s * 1e6).toFixed(1)} us a layer, ${
        (flops / s / 1e12).toFixed(1)
      } TFLOP/s`,
    );
  }
  for (const b of [q, out, ...p.bufs]) d.release(b);
}

if (Deno.args.includes("--prefill")) {
  await prefill("H=32 KV=8 D=128 (Llama-3-8B)", 32, 8, 128, 512);
  await prefill("H=32 KV=8 D=64 (Llama-3.2-1B)", 32, 8, 64, 512);
  await prefill("H=14 KV=2 D=64 (Qwen2.5-0.5B)", 14, 2, 64, 512);
  await prefill("H=32 KV=8 D=128 (Llama-3-8B)", 32, 8, 128, 2048);
} else if (quick) {
  await bench("decode H=4 KV=2 D=64 ctx=64 x2", 4, 2, 64, 2, 64, 1);
  await decodeStep(1, 40, 1);
} else {
  for (const ctx of [576, 4096]) {
    await decodeStep(1, ctx, 1);
    await decodeStep(4, ctx, SMALL_ROWS);
    await decodeStep(16, ctx, SMALL_ROWS);
  }
  await bench("decode H=32 KV=32 D=128 ctx=2048 x1", 32, 32, 128, 1, 2048, 1);
  await bench(
    "row kernel, 512 rows H=32 KV=8 D=128 ctx=512 (prefill: --prefill)",
    32,
    8,
    128,
    1,
    512,
    512,
  );
}
dev.destroy();
