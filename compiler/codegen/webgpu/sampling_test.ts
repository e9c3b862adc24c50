import { topPGatherWords, topPHistWords, topPSlices, type WgslKernel } from "../contract.ts";
import { topPGatherKernel, topPHistKernel } from "../cpu/sampling.ts";
import { samplingKernel } from "./sampling.ts";
import { buf, device, expectClose, Rng, runKernel } from "./test_helpers.ts";

const ignore = !device;

Deno.test({
  name: "samplingKernel() take_rows gathers rows by index",
  ignore,
  fn: async () => {
    const rng = new Rng(14);
    const [n, W, R] = [10, 1030, 4];
    const x = rng.normals(n * W); // [n, W]
    const idx = Uint32Array.from([9, 0, 3, 3]); // [R]
    const ref = new Float64Array(R * W); // [R, W]
    for (let r = 0; r < R; r++) for (let c = 0; c < W; c++) ref[r * W + c] = x[idx[r] * W + c];
    const [, , out] = await runKernel({ op: "take_rows", width: W }, R, [
      buf(x),
      buf(idx),
      new ArrayBuffer(R * W * 4),
    ]);
    expectClose(new Float32Array(out), ref, 0, "take_rows");
  },
});

/** Lowest index of the largest value of row r. */
function argmaxRef(x: Float32Array, r: number, V: number): number {
  let best = 0;
  for (let c = 1; c < V; c++) if (x[r * V + c] > x[r * V + best]) best = c;
  return best;
}

Deno.test({
  name: "samplingKernel() argmax returns the lowest index of the maximum",
  ignore,
  fn: async () => {
    const rng = new Rng(15);
    const [R, V] = [4, 777];
    const x = rng.normals(R * V); // [R, V]
    x[V + 5] = x[V + 600] = 10; // tie in row 1: index 5 wins
    for (let c = 0; c < V; c++) x[2 * V + c] = -Infinity; // row 2: all -inf → 0
    x[3 * V + 776] = 50; // row 3: last element
    const ref = Array.from({ length: R }, (_, r) => argmaxRef(x, r, V));
    const [, out] = await runKernel({ op: "argmax", vocab: V }, R, [
      buf(x),
      new ArrayBuffer(R * 4),
    ]);
    expectClose(new Uint32Array(out), ref, 0, "argmax");
  },
});

Deno.test({
  name: "samplingKernel() softmax_temp divides by temperature and is one-hot when t <= 0",
  ignore,
  fn: async () => {
    const rng = new Rng(16);
    const [R, V] = [3, 301];
    const x = rng.normals(R * V, 3); // [R, V]
    const t = Float32Array.from([0.7, 0, 1.5]); // [R]
    const ref = new Float64Array(R * V); // [R, V]
    for (let r = 0; r < R; r++) {
      if (t[r] <= 0) {
        ref[r * V + argmaxRef(x, r, V)] = 1;
        continue;
      }
      let m = -Infinity, s = 0;
      for (let c = 0; c < V; c++) m = Math.max(m, x[r * V + c] / t[r]);
      for (let c = 0; c < V; c++) s += Math.exp(x[r * V + c] / t[r] - m);
      for (let c = 0; c < V; c++) ref[r * V + c] = Math.exp(x[r * V + c] / t[r] - m) / s;
    }
    const [, , out] = await runKernel({ op: "softmax_temp", vocab: V }, R, [
      buf(x),
      buf(t),
      new ArrayBuffer(R * V * 4),
    ]);
    expectClose(new Float32Array(out), ref, 1e-5, "softmax_temp");
  },
});

Deno.test({
  name:
    "samplingKernel() softmax_temp over a long row: masked (-inf) logits, a growing max, ties at t = 0, a tiny t",
  ignore,
  fn: async () => {
    const rng = new Rng(17);
    const [R, V] = [4, 20011];
    const x = rng.normals(R * V, 2); // [R, V]
    for (let c = 0; c < V; c += 3) x[c] = -Infinity; // row 0: a third masked
    for (let c = 0; c < V; c++) x[V + c] = c / 1000; // row 1: the max grows along the row
    x[2 * V + 17] = x[2 * V + 19000] = 20; // row 2 (t = 0): a tie, the lower index wins
    x[3 * V + 9] = 8; // row 3 (t = 0.01): nearly one-hot at 9
    x[3 * V + 10] = 7.99; //   and e^-1 of it at 10
    const t = Float32Array.from([0.8, 1.3, 0, 0.01]); // [R]
    const ref = new Float64Array(R * V); // [R, V]
    for (let r = 0; r < R; r++) {
      if (t[r] <= 0) {
        ref[r * V + argmaxRef(x, r, V)] = 1;
        continue;
      }
      const row = Array.from(x.subarray(r * V, (r + 1) * V), Number);
      const mx = Math.max(...row.filter((v) => v > -Infinity));
      let sum = 0;
      for (const v of row) sum += Math.exp((v - mx) / t[r]);
      row.forEach((v, c) => (ref[r * V + c] = Math.exp((v - mx) / t[r]) / sum));
    }
    const [, , out] = await runKernel({ op: "softmax_temp", vocab: V }, R, [
      buf(x),
      buf(t),
      new ArrayBuffer(R * V * 4),
    ]);
    expectClose(new Float32Array(out), ref, 1e-5, "softmax_temp");
  },
});

/** float64 top-p sampling as the contract states it: the nucleus in descending order (ties by
 * index), then the token drawn in index order among its members. */
function topPRef(p: ArrayLike<number>, topP: number, u: number): number {
  const keep = new Array<boolean>(p.length).fill(topP >= 1);
  let kept = 0;
  if (topP >= 1) {
    for (let c = 0; c < p.length; c++) kept += p[c];
  } else {
    const order = Array.from({ length: p.length }, (_, i) => i)
      .sort((a, b) => p[b] - p[a] || a - b);
    for (let m = 0; m < order.length && (m === 0 || kept < topP); m++) {
      kept += p[order[m]];
      keep[order[m]] = true;
    }
  }
  let cum = 0, last = 0;
  for (let c = 0; c < p.length; c++) {
    if (!keep[c]) continue;
    if (p[c] > 0) last = c;
    cum += p[c];
    if (cum > u * kept) return c;
  }
  return last;
}

/** `top_p_gather`'s outputs (gathered, mass) over `top_p_hist` of rows [R, V] (the CPU
 * kernels'). */
function gatheredOf(probs: Float32Array, topP: Float32Array, V: number): ArrayBuffer[] {
  const R = topP.length;
  const hist = new ArrayBuffer(R * topPHistWords(V) * 4);
  topPHistKernel({ op: "top_p_hist", vocab: V })([buf(probs), buf(topP), hist], R);
  const out = new ArrayBuffer(R * topPGatherWords(V) * 4);
  const mass = new ArrayBuffer(R * topPSlices(V) * 4);
  topPGatherKernel({ op: "top_p_gather", vocab: V })([buf(probs), buf(topP), hist, out, mass], R);
  return [out, mass];
}

type TopPRow = { p: Float32Array; topP: number; u: number };

/** `k` rows of `p` at `topP`, one u in each k-th of [0, 1): more of the kept set is walked. */
function draws(rng: Rng, p: Float32Array, topP: number, k: number): TopPRow[] {
  return Array.from({ length: k }, (_, i) => ({ p, topP, u: (i + rng.next()) / k }));
}

/** Probabilities of V logits drawn with standard deviation `scale` (float64 softmax). */
function peaked(rng: Rng, V: number, scale: number): Float32Array {
  const e = Float64Array.from(rng.normals(V, scale), Math.exp);
  const s = e.reduce((a, b) => a + b, 0);
  return Float32Array.from(e, (v) => v / s);
}

/** `sample_top_p` over `rows` of V (with their `top_p_gather`), compiled as `source` if given:
 * the tokens, and the reference's. */
async function sampleRows(rows: TopPRow[], V: number, source?: WgslKernel) {
  const R = rows.length;
  const probs = new Float32Array(R * V); // [R, V]
  rows.forEach((row, r) => probs.set(row.p, r * V));
  const topP = Float32Array.from(rows, (r) => r.topP);
  const [, , , , , out] = await runKernel({ op: "sample_top_p", vocab: V }, R, [
    buf(probs),
    buf(topP),
    buf(Float32Array.from(rows, (r) => r.u)),
    ...gatheredOf(probs, topP, V),
    new ArrayBuffer(R * 4),
  ], source);
  return { tokens: new Uint32Array(out), ref: rows.map((r) => topPRef(r.p, r.topP, r.u)) };
}

Deno.test({
  name: "samplingKernel() sample_top_p picks the token where the kept mass first exceeds u",
  ignore,
  fn: async () => {
    const rng = new Rng(17);
    const V = 203;
    const rows: TopPRow[] = [];
    for (let i = 0; i < 24; i++) {
      const logits = rng.normals(V, 2); // [V]
      if (i % 3 === 0) { for (let c = 0; c < V; c += 7) logits[c] = logits[3]; // ties
       }
      if (i % 4 === 1) { for (let c = 0; c < V; c += 2) logits[c] = -Infinity; // zeros
       }
      const m = Math.max(...logits);
      const e = Float64Array.from(logits, (v) => Math.exp(v - m));
      const s = e.reduce((a, b) => a + b, 0);
      rows.push({
        p: Float32Array.from(e, (v) => v / s),
        topP: [0.9, 0.5, 1, 0.05, 0.999][i % 5],
        u: rng.next(),
      });
    }
    rows.push({ p: rows[0].p, topP: 0, u: 0.99 }); // top_p 0: the argmax
    // Eight equal probabilities among zeros: top_p 0.5 keeps the four lowest indices,
    // u = 0.6 picks the third of them.
    const flat = new Float32Array(V); // [V]
    for (const c of [3, 20, 21, 50, 90, 150, 151, 202]) flat[c] = 0.125;
    rows.push({ p: flat, topP: 0.5, u: 0.6 });
    const { tokens, ref } = await sampleRows(rows, V);
    if (ref.at(-1) !== 21) throw new Error(`reference picked ${ref.at(-1)} for the flat row`);
    expectClose(tokens, ref, 0, "sample_top_p");
  },
});

Deno.test({
  name:
    "samplingKernel() sample_top_p settles the nucleus from the gathered candidates, without the search",
  ignore,
  fn: async () => {
    // Rows the histogram settles: peaked rows at 32,000 tokens, where the bucket at top_p
    // holds a few tokens, and rows where it holds 1,500 and 3,000 (its sub-buckets settle
    // that); then one it cannot: 3,000 equal probabilities in that bucket (the search's, here
    // 0xffffffff).
    const rng = new Rng(29);
    const V = 32000;
    const rows: TopPRow[] = [];
    for (const topP of [0.9, 0.5, 0.95, 0.7]) rows.push(...draws(rng, peaked(rng, V, 5), topP, 6));
    // (crowds on every third token, so that the walk's runs hold several of them; one of
    // 1,500: more than a thread's share of the sort, fewer than it gathers)
    for (const [crowd, equal] of [[1500, false], [3000, false], [3000, true]] as const) {
      const p = new Float32Array(V).fill(1e-6); // [V] a tail of about 0.03
      p[5] = 0.3;
      p[V - 1] = 0.2;
      for (let c = 0; c < crowd; c++) p[7 + 3 * c] = equal ? 1.55e-4 : 1.55e-4 + rng.next() * 5e-6;
      // top_p reached in the crowd's bucket ([1.25, 1.375) * 2^-13), after 1000 of it
      if (equal) rows.push({ p, topP: 0.5 + 1000 * 1.55e-4, u: 0.5 });
      else rows.push(...draws(rng, p, 0.5 + 1000 * 1.55e-4, 6));
    }
    const spec = { op: "sample_top_p", vocab: V } as const;
    const noSearch = samplingKernel(spec, device!.target, { topPSearch: false });
    const { tokens, ref } = await sampleRows(rows, V, noSearch);
    ref[ref.length - 1] = 0xffffffff;
    expectClose(tokens, ref, 0, "sample_top_p without the search");
  },
});

Deno.test({
  name: "samplingKernel() sample_top_p walks a thread's own chunk where workgroup memory is small",
  ignore,
  fn: async () => {
    // 16 KiB of workgroup memory (WebGPU's default limit): 64 threads, 2,004 tokens each, more
    // than the 1,024 it can copy, so each thread walks its own chunk in place
    const rng = new Rng(31);
    const V = 128256;
    const rows: TopPRow[] = [];
    for (const topP of [1, 0.9, 1, 0.6]) rows.push(...draws(rng, peaked(rng, V, 4), topP, 3));
    const spec = { op: "sample_top_p", vocab: V } as const;
    const t = device!.target;
    const small = { ...t, limits: { ...t.limits, maxComputeWorkgroupStorageSize: 16384 } };
    // the row's walk (as after the search), and the draw by slices
    for (const topPBySlice of [false, true]) {
      const { tokens, ref } = await sampleRows(
        rows,
        V,
        samplingKernel(spec, small, { topPBySlice }),
      );
      expectClose(tokens, ref, 0, `sample_top_p, small workgroup memory, by slice ${topPBySlice}`);
    }
  },
});
