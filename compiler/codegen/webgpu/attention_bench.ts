/**
 * Attention speed on the machine's WebGPU adapter: decode (one row per sequence) reported as
 * the bandwidth of the unique K/V bytes read, prefill as time.
 * Run: `deno run -A --no-check compiler/codegen/webgpu/attention_bench.ts [--quick]`.
 * Times are GPU time per dispatch: rounds of n and 2n queued dispatches, timed from submit to
 * the readback, differenced (the fixed wait cancels); n grows until a round takes >= 100 ms.
 * @module
 */
import { PAGE_SIZE } from "../contract.ts";
import { createWebGpuDevice } from "../../../engine/devices/webgpu.ts";
import { wgslKernel } from "./mod.ts";
import { timeIt as timeWith } from "./bench_timing.ts";

const quick = Deno.args.includes("--quick");
const timeIt = (run: () => void, sync: () => Promise<unknown>) => timeWith(run, sync, quick);
const dev = await createWebGpuDevice();
if (!dev) throw new Error("no WebGPU adapter");


/** `seqs` sequences of `ctx` tokens; `rowsPerSeq` query rows at the last positions of each. */
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
  const spec = {
    op: "attention" as const,
    heads: H,
    kvHeads: KV,
    headDim: D,
    qStride: H * D,
    window: 0,
    scale: 1 / Math.sqrt(D),
  };
  const k = d.kernel(spec, wgslKernel(spec, d.target));
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
    d.createBuffer(R * H * D * 4, "q"),
    d.createBuffer(R * 4, "positions"),
    d.createBuffer(R * 4, "tok_seq"),
    d.createBuffer(indptr.byteLength, "indptr"),
    d.createBuffer(indices.byteLength, "indices"),
    d.createBuffer(cacheBytes, "cache"),
    d.createBuffer(R * H * D * 4, "out"),
  ];
  d.write(bufs[1], pos);
  d.write(bufs[2], seq);
  d.write(bufs[3], indptr);
  d.write(bufs[4], indices);
  const s = await timeIt(() => d.dispatch(k, bufs, R), () => d.read(bufs[6], 4));
  for (const b of bufs) d.release(b);
  console.log(
    `${name}: ${(s * 1e6).toFixed(1)} us, K/V ${(cacheBytes / 1e6).toFixed(1)} MB at ${
      (cacheBytes / s / 1e9).toFixed(0)
    } GB/s`,
  );
}

if (quick) {
  await bench("decode H=4 KV=2 D=64 ctx=64 x2", 4, 2, 64, 2, 64, 1);
} else {
  await bench("decode H=32 KV=8 D=128 ctx=4096 x1", 32, 8, 128, 1, 4096, 1);
  await bench("decode H=32 KV=8 D=128 ctx=1024 x8", 32, 8, 128, 8, 1024, 1);
  await bench("decode H=32 KV=32 D=128 ctx=2048 x1", 32, 32, 128, 1, 2048, 1);
  await bench("prefill H=32 KV=8 D=128 ctx=512 rows=512", 32, 8, 128, 1, 512, 512);
}
dev.destroy();
