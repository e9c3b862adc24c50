import { PAGE_SIZE } from "../contract.ts";
import { buf, device, expectClose, pagedLayout, Rng, runKernel } from "./test_helpers.ts";

const ignore = !device;

const invFreqOf = (D: number, theta = 10000) =>
  Array.from({ length: D / 2 }, (_, i) => theta ** (-2 * i / D));

/** float64 rope of qkv [R, (H + 2KV) * D]: q and k heads rotated (rotate_half), v copied. */
function ropeRef(x: Float32Array, pos: Uint32Array, H: number, KV: number, D: number) {
  const W = (H + 2 * KV) * D;
  const inv = invFreqOf(D);
  const out = Float64Array.from(x); // [R, W]
  for (let r = 0; r < pos.length; r++) {
    for (let h = 0; h < H + KV; h++) {
      for (let i = 0; i < D / 2; i++) {
        const a = pos[r] * inv[i], o = r * W + h * D;
        const x0 = x[o + i], x1 = x[o + i + D / 2];
        out[o + i] = x0 * Math.cos(a) - x1 * Math.sin(a);
        out[o + i + D / 2] = x1 * Math.cos(a) + x0 * Math.sin(a);
      }
    }
  }
  return out;
}

Deno.test({
  name: "ropeKernel() rope rotates q and k heads at their positions and copies v",
  ignore,
  fn: async () => {
    const rng = new Rng(9);
    const [H, KV, D, R] = [4, 2, 16, 5];
    const x = rng.normals(R * (H + 2 * KV) * D); // [R, (H + 2KV) * D]
    const pos = Uint32Array.from([0, 1, 7, 300, 4000]); // [R]
    const spec = { op: "rope", heads: H, kvHeads: KV, headDim: D, invFreq: invFreqOf(D) } as const;
    const [, , out] = await runKernel(spec, R, [buf(x), buf(pos), new ArrayBuffer(x.byteLength)]);
    expectClose(new Float32Array(out), ropeRef(x, pos, H, KV, D), 2e-5, "rope");
  },
});

for (const op of ["kv_append", "rope_kv_append"] as const) {
  Deno.test({
    name: `ropeKernel() ${op} writes k and v into their pages and slots`,
    ignore,
    fn: async () => {
      const rng = new Rng(op === "kv_append" ? 10 : 11);
      const [H, KV, D] = [4, 2, 8];
      const W = (H + 2 * KV) * D;
      // Two sequences: tokens 14..19 of seq 0 and 0..2 of seq 1 (a page boundary in seq 0).
      const tokSeq = Uint32Array.from([0, 0, 0, 0, 0, 0, 1, 1, 1]); // [R]
      const pos = Uint32Array.from([14, 15, 16, 17, 18, 19, 0, 1, 2]); // [R]
      const R = pos.length;
      const pg = pagedLayout(rng, [20, 3]);
      const x = rng.normals(R * W); // [R, W]
      const cacheLen = pg.numPages * 2 * KV * PAGE_SIZE * D;
      const start = rng.normals(cacheLen); // [pages, 2, KV, PAGE, D]
      const roped = op === "kv_append" ? Float64Array.from(x) : ropeRef(x, pos, H, KV, D);
      const cache = Float64Array.from(start);
      const qOut = new Float64Array(R * H * D); // [R, H * D]
      for (let r = 0; r < R; r++) {
        const page = pg.indices[pg.indptr[tokSeq[r]] + Math.floor(pos[r] / PAGE_SIZE)];
        const slot = pos[r] % PAGE_SIZE;
        for (let i = 0; i < H * D; i++) qOut[r * H * D + i] = roped[r * W + i];
        for (let part = 0; part < 2; part++) {
          for (let h = 0; h < KV; h++) {
            for (let d = 0; d < D; d++) {
              cache[(((page * 2 + part) * KV + h) * PAGE_SIZE + slot) * D + d] =
                roped[r * W + (H + part * KV + h) * D + d];
            }
          }
        }
      }
      const spec = op === "kv_append"
        ? { op, heads: H, kvHeads: KV, headDim: D } as const
        : { op, heads: H, kvHeads: KV, headDim: D, invFreq: invFreqOf(D) } as const;
      const inputs = [buf(x), buf(pos), buf(tokSeq), buf(pg.indptr), buf(pg.indices), buf(start)];
      if (op === "rope_kv_append") inputs.push(new ArrayBuffer(R * H * D * 4));
      const outs = await runKernel(spec, R, inputs);
      expectClose(new Float32Array(outs[5]), cache, 2e-5, `${op} cache`);
      if (op === "rope_kv_append") expectClose(new Float32Array(outs[6]), qOut, 2e-5, "q_out");
    },
  });
}
