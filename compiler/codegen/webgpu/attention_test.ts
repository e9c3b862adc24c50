import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { PAGE_SIZE, type TargetInfo, workgroupCount } from "../contract.ts";
import { GENERIC_WEBGPU } from "../../target.ts";
import { attentionKernel, groupedPlan } from "./attention.ts";
import { attentionPrefillKernel, PREFILL_MIN_ROWS, prefillPlan } from "./attention_prefill.ts";
import { wgslKernel } from "./mod.ts";
import { buf, device, expectClose, pagedLayout, Rng, runKernel } from "./test_helpers.ts";

const ignore = !device;

interface Case {
  H: number;
  KV: number;
  D: number;
  window: number;
  qStride: number;
  lens: number[]; // tokens in the cache per sequence
  rows: [number, number][]; // (sequence, position) of each query row
  maxRows?: number; // the spec's hint (many rows: the tiled prefill kernel where it fits)
}

/** Runs `c` with the kernel compiled for `target` (the test device's own when omitted). */
async function checkAttention(rng: Rng, c: Case, target?: TargetInfo) {
  const { H, KV, D, window, qStride, lens, rows, maxRows } = c;
  const R = rows.length;
  const pg = pagedLayout(rng, lens);
  const cache = rng.normals(pg.numPages * 2 * KV * PAGE_SIZE * D); // [pages, 2, KV, PAGE, D]
  const q = rng.normals(R * qStride); // [R, qStride]
  const tokSeq = Uint32Array.from(rows, ([s]) => s); // [R]
  const pos = Uint32Array.from(rows, ([, p]) => p); // [R]
  const scale = 1 / Math.sqrt(D);
  const kv = (s: number, j: number, part: number, h: number, d: number) => {
    const page = pg.indices[pg.indptr[s] + Math.floor(j / PAGE_SIZE)];
    return cache[(((page * 2 + part) * KV + h) * PAGE_SIZE + j % PAGE_SIZE) * D + d];
  };
  const ref = new Float64Array(R * H * D); // [R, H * D]
  for (let r = 0; r < R; r++) {
    const [s, p] = rows[r];
    const lo = window > 0 ? Math.max(0, p - window + 1) : 0;
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / (H / KV));
      const scores: number[] = [];
      for (let j = lo; j <= p; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[r * qStride + h * D + d] * kv(s, j, 0, kh, d);
        scores.push(dot * scale);
      }
      const m = Math.max(...scores);
      const e = scores.map((v) => Math.exp(v - m));
      const sum = e.reduce((a, b) => a + b, 0);
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let j = lo; j <= p; j++) acc += e[j - lo] * kv(s, j, 1, kh, d);
        ref[r * H * D + h * D + d] = acc / sum;
      }
    }
  }
  const spec = {
    op: "attention",
    heads: H,
    kvHeads: KV,
    headDim: D,
    qStride,
    window,
    scale,
    ...(maxRows ? { maxRows } : {}),
  } as const;
  const outs = await runKernel(spec, R, [
    buf(q),
    buf(pos),
    buf(tokSeq),
    buf(pg.indptr),
    buf(pg.indices),
    buf(cache),
    new ArrayBuffer(R * H * D * 4),
  ], target ? wgslKernel(spec, target) : undefined);
  expectClose(new Float32Array(outs[6]), ref, 1e-5, JSON.stringify({ ...c, lens: undefined }));
}

Deno.test({
  name: "attentionKernel() matches float64 causal paged GQA attention (decode and prefill rows)",
  ignore,
  fn: async () => {
    const rng = new Rng(12);
    // decode: one row per sequence at its last position
    await checkAttention(rng, {
      H: 4,
      KV: 2,
      D: 16,
      window: 0,
      qStride: 4 * 16,
      lens: [1, 40, 64],
      rows: [[0, 0], [1, 39], [2, 63]],
    });
    // prefill of one sequence (ragged: 37 rows), q read from a wider qkv row
    await checkAttention(rng, {
      H: 2,
      KV: 1,
      D: 24,
      window: 0,
      qStride: (2 + 2) * 24,
      lens: [37],
      rows: Array.from({ length: 37 }, (_, p) => [0, p] as [number, number]),
    });
  },
});

Deno.test({
  name: "attentionKernel() handles head dims that are not a multiple of 4 or exceed 4 * threads",
  ignore,
  fn: async () => {
    const rng = new Rng(14);
    // D=1032 at 256 threads (default limits) is past the grouped form: one key a thread
    for (
      const [D, target] of [[10, undefined], [1032, undefined], [1032, GENERIC_WEBGPU]] as const
    ) {
      await checkAttention(rng, {
        H: 2,
        KV: 1,
        D,
        window: 0,
        qStride: 2 * D,
        lens: [20, 70],
        rows: [[0, 19], [1, 69], [1, 3]],
      }, target);
    }
  },
});

Deno.test({
  name: "attentionKernel() restricts each row to its sliding window",
  ignore,
  fn: async () => {
    const rng = new Rng(13);
    await checkAttention(rng, {
      H: 2,
      KV: 2,
      D: 8,
      window: 5,
      qStride: 16,
      lens: [50, 9],
      rows: [[0, 49], [0, 3], [1, 8], [0, 20]],
    });
  },
});

const H100_LIKE: TargetInfo = {
  ...GENERIC_WEBGPU,
  limits: {
    ...GENERIC_WEBGPU.limits,
    maxComputeInvocationsPerWorkgroup: 1024,
    maxComputeWorkgroupSizeX: 1024,
    maxComputeWorkgroupStorageSize: 49152,
  },
};

/** Llama-3-8B's attention, q read from the roped qkv row. */
const LLAMA3 = {
  op: "attention",
  heads: 32,
  kvHeads: 8,
  headDim: 128,
  qStride: 6144,
  window: 0,
  scale: 1 / Math.sqrt(128),
} as const;

Deno.test("attentionKernel() gives a GQA group's query heads one workgroup and coalesced key reads", () => {
  // one workgroup per (row, KV head) reading each key once for its 4 query heads
  assertEquals(attentionKernel(LLAMA3, H100_LIKE).groupsPerRowBlock, 8);
  const plan = groupedPlan(LLAMA3, H100_LIKE)!;
  // 512 threads: 8 threads a key (128 contiguous bytes each read), 64 keys a chunk
  assertEquals([plan.T, plan.HW, plan.g, plan.K4, plan.NK], [512, 4, 8, 4, 64]);
  assertEquals(groupedPlan(LLAMA3, GENERIC_WEBGPU)!.T, 256);
  // the key groups of the block's 4 heads merged in one pass where workgroup memory holds
  // them (4 x 16 key groups x 32 vec4s at 512 threads: 32 KiB), else a head at a time
  assertEquals(groupedPlan(LLAMA3, H100_LIKE)!.onePass, true);
  assertEquals(groupedPlan(LLAMA3, GENERIC_WEBGPU)!.onePass, false);
  // 7 query heads a KV head: blocks of 4 and 3
  assertEquals(
    attentionKernel({ ...LLAMA3, heads: 14, kvHeads: 2, qStride: 14 * 128 }, GENERIC_WEBGPU)
      .groupsPerRowBlock,
    4,
  );
  // head dims that are not a multiple of 4 take one workgroup per (row, head)
  assertEquals(
    attentionKernel({ ...LLAMA3, headDim: 10, qStride: 320 }, GENERIC_WEBGPU).groupsPerRowBlock,
    32,
  );
});

Deno.test({
  name:
    "attentionKernel() matches float64 attention across key chunks, head blocks and head dims, at 256 and 512 threads, the key groups merged a head at a time or at once",
  ignore,
  fn: async () => {
    const rng = new Rng(15);
    const limits = device?.target.limits;
    const targets = [GENERIC_WEBGPU];
    // 32 KiB of workgroup storage: the heads' key groups merged in one pass (16 KiB: a head
    // at a time)
    if (limits && limits.maxComputeWorkgroupStorageSize >= 32768) {
      const big = {
        ...GENERIC_WEBGPU,
        limits: { ...GENERIC_WEBGPU.limits, maxComputeWorkgroupStorageSize: 32768 },
      };
      assertEquals(groupedPlan(LLAMA3, big)!.onePass, true);
      targets.push(big);
    }
    if (
      limits && limits.maxComputeInvocationsPerWorkgroup >= 512 &&
      limits.maxComputeWorkgroupStorageSize >= 16384
    ) {
      targets.push({
        ...GENERIC_WEBGPU,
        limits: {
          ...GENERIC_WEBGPU.limits,
          maxComputeInvocationsPerWorkgroup: 512,
          maxComputeWorkgroupSizeX: 512,
        },
      });
    }
    const cases: Case[] = [
      // Llama-like group of 4 at D=128: several chunks of keys, ragged batch
      {
        H: 8,
        KV: 2,
        D: 128,
        window: 0,
        qStride: 8 * 128,
        lens: [300, 65, 1],
        rows: [[0, 299], [1, 64], [2, 0], [0, 100]],
      },
      // 6 heads a KV head (blocks of 4 and 2), D=80 (10 threads a key), q from a wider row
      {
        H: 6,
        KV: 1,
        D: 80,
        window: 0,
        qStride: 10 * 80,
        lens: [130, 7],
        rows: [[0, 129], [1, 6], [0, 63], [0, 64]],
      },
      // MQA with 8 heads, D=64, a window that starts inside a chunk
      {
        H: 8,
        KV: 1,
        D: 64,
        window: 45,
        qStride: 8 * 64,
        lens: [200],
        rows: [[0, 199], [0, 44], [0, 45], [0, 130]],
      },
      // MHA (one head a block), D=256
      {
        H: 2,
        KV: 2,
        D: 256,
        window: 0,
        qStride: 2 * 256,
        lens: [70],
        rows: [[0, 69], [0, 31], [0, 32]],
      },
    ];
    for (const target of targets) {
      for (const c of cases) await checkAttention(rng, c, target);
    }
  },
});

/** Rows 0..n-1 of sequence s at positions from..from+n-1. */
const run = (s: number, from: number, n: number) =>
  Array.from({ length: n }, (_, i) => [s, from + i] as [number, number]);

Deno.test("attention with many rows takes the tiled prefill kernel where it fits", () => {
  const llama3 = { ...LLAMA3, maxRows: 512 };
  // tiles of 8 rows x 4 query heads; a workgroup per (tile, KV head)
  const k = wgslKernel(llama3, H100_LIKE);
  assertEquals([k.rowsPerGroup, k.groupsPerRowBlock], [8, 8]);
  assertEquals(k, attentionPrefillKernel(llama3, H100_LIKE));
  // 16 KiB of workgroup storage (the WebGPU default) is too little at D = 128: the row kernel
  assertEquals(prefillPlan(llama3, GENERIC_WEBGPU), null);
  assertEquals(wgslKernel(llama3, GENERIC_WEBGPU).rowsPerGroup, 1);
  // few rows (decode, the _small functions) keep the row kernel
  assertEquals(wgslKernel({ ...llama3, maxRows: PREFILL_MIN_ROWS }, H100_LIKE).rowsPerGroup, 1);
  // head dims not a multiple of 64 keep the row kernel
  assertEquals(prefillPlan({ ...llama3, headDim: 80, qStride: 48 * 80 }, H100_LIKE), null);
  // 7 query heads a KV head (Qwen2.5-0.5B): blocks of 4 and 3, tiles of 8 rows
  const qwen = { ...llama3, heads: 14, kvHeads: 2, headDim: 64, qStride: 18 * 64 };
  const kq = wgslKernel(qwen, H100_LIKE);
  assertEquals([kq.rowsPerGroup, kq.groupsPerRowBlock], [8, 4]);
});

Deno.test({
  name:
    "tiled prefill attention matches float64 attention: long prompts, several sequences in a tile, windows, GQA 1/3/4/7",
  ignore: ignore || !prefillPlan({
    op: "attention",
    heads: 4,
    kvHeads: 1,
    headDim: 64,
    qStride: 256,
    window: 0,
    scale: 1,
  }, device!.target),
  fn: async () => {
    const rng = new Rng(16);
    const cases: Case[] = [
      // one sequence, 100 rows after 37 cached tokens (a second prefill chunk); 4 heads a KV head
      { H: 8, KV: 2, D: 64, window: 0, qStride: 12 * 64, lens: [137], rows: run(0, 37, 100) },
      // batched prefill: three sequences, the boundaries inside tiles (tiles of 8 rows)
      {
        H: 4,
        KV: 1,
        D: 64,
        window: 0,
        qStride: 4 * 64,
        lens: [45, 3, 70],
        rows: [...run(0, 0, 45), ...run(1, 0, 3), ...run(2, 50, 20)],
      },
      // rows of two sequences interleaved (each tile alternates), out of order
      {
        H: 2,
        KV: 2,
        D: 64,
        window: 0,
        qStride: 6 * 64,
        lens: [40, 40],
        rows: Array.from({ length: 40 }, (_, i) => [i % 2, 39 - i] as [number, number]),
      },
      // sliding window starting inside a key chunk; 3 heads a KV head (blocks of 2 and 1)
      { H: 6, KV: 2, D: 64, window: 21, qStride: 6 * 64, lens: [90], rows: run(0, 0, 90) },
      // 7 heads a KV head (Qwen2.5-0.5B) with a ragged last tile
      { H: 14, KV: 2, D: 64, window: 0, qStride: 18 * 64, lens: [53], rows: run(0, 0, 53) },
      // D = 128 (Llama-3), where the target's workgroup storage allows it
      { H: 8, KV: 2, D: 128, window: 0, qStride: 12 * 128, lens: [75], rows: run(0, 0, 75) },
    ];
    for (const c of cases) {
      const spec = {
        op: "attention",
        heads: c.H,
        kvHeads: c.KV,
        headDim: c.D,
        qStride: c.qStride,
        window: c.window,
        scale: 1,
      } as const;
      if (!prefillPlan(spec, device!.target)) continue;
      await checkAttention(rng, { ...c, maxRows: 512 });
    }
  },
});

/** An `attention_decode` spec of these heads and split layout (no window, 32-position splits). */
function decodeSpec(
  heads: number,
  kvHeads: number,
  headDim: number,
  splits: number,
  splitRows: number,
) {
  return {
    op: "attention_decode",
    heads,
    kvHeads,
    headDim,
    window: 0,
    scale: 1 / Math.sqrt(headDim),
    invFreq: Array.from({ length: headDim / 2 }, (_, i) => 10000 ** (-i / (headDim / 2))),
    splits,
    splitRows,
    splitAlign: 32,
  } as const;
}

Deno.test("attention_decode's dispatch launches each row's share of splits, not the bound", () => {
  // Llama-3-8B heads in a 16-row function: 16 splits a row at most, 32 rows' worth shared
  // (decodeSplitLayout's 256 workgroups at 8 a split); the grid is 128 workgroups a row at
  // the bound (16 splits x 8 KV heads)
  const k = wgslKernel(decodeSpec(32, 8, 128, 16, 32), H100_LIKE);
  assertEquals(k.groupsPerRowBlock, 128);
  // 1 row: 16 splits (the most); 2: 16 each; 4: 8 each; 16: 2 each; 64: 1 each
  assertEquals(
    [1, 2, 4, 16, 64].map((rows) => workgroupCount(k, rows)[0]),
    [128, 256, 256, 256, 512],
  );
  // the scalar form (D not a multiple of 4): a workgroup a (row, split, head)
  const scalar = wgslKernel(decodeSpec(32, 8, 10, 16, 32), H100_LIKE);
  assertEquals(scalar.groupsPerRowBlock, 16 * 32);
  assertEquals([1, 4, 16].map((rows) => workgroupCount(scalar, rows)[0]), [512, 1024, 1024]);
});

Deno.test("attention_decode takes 128 threads at head dim 64 where a row has every split", () => {
  // Qwen2.5-0.5B heads: the one-row decode function's layout (splits = splitRows) against the
  // 16-row function's; head dim 128 keeps 256 either way
  const size = (s: Parameters<typeof wgslKernel>[0]) =>
    Number(/@workgroup_size\((\d+)\)/.exec(wgslKernel(s, H100_LIKE).code)![1]);
  assertEquals(size(decodeSpec(14, 2, 64, 64, 64)), 128);
  assertEquals(size(decodeSpec(14, 2, 64, 16, 64)), 256);
  assertEquals(size(decodeSpec(14, 2, 128, 64, 64)), 256);
});
