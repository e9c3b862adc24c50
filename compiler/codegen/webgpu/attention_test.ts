import { PAGE_SIZE } from "../contract.ts";
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
}

async function checkAttention(rng: Rng, c: Case) {
  const { H, KV, D, window, qStride, lens, rows } = c;
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
  } as const;
  const outs = await runKernel(spec, R, [
    buf(q),
    buf(pos),
    buf(tokSeq),
    buf(pg.indptr),
    buf(pg.indices),
    buf(cache),
    new ArrayBuffer(R * H * D * 4),
  ]);
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
    for (const D of [10, 1032]) {
      await checkAttention(rng, {
        H: 2,
        KV: 1,
        D,
        window: 0,
        qStride: 2 * D,
        lens: [20, 70],
        rows: [[0, 19], [1, 69], [1, 3]],
      });
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
