/**
 * Conformance cases of the position-aware kernels: rope, kv_append, rope_kv_append, attention.
 * Batches hold several sequences of ragged lengths whose pages are shuffled over a cache with
 * spare (never referenced) pages; MHA, GQA and MQA head layouts; sliding windows; q read with
 * a stride from a fused qkv row.
 * @module
 */
import { PAGE_SIZE } from "../../compiler/codegen/contract.ts";
import { type ConformanceCase, TOL } from "./case.ts";
import { padded, Rng } from "./helpers.ts";

/** HF rotary inverse frequencies theta^(-2i/D). */
const invFreq = (D: number, theta = 10000) =>
  Array.from({ length: D / 2 }, (_, i) => theta ** (-(2 * i) / D));

/** A batch: sequence s has total length lens[s] after this step and its last qlens[s] tokens
 * are this step's rows. Pages are a random permutation of the cache's pages (plus spares). */
function batch(rng: Rng, lens: number[], qlens: number[]) {
  const counts = lens.map((l) => Math.ceil(l / PAGE_SIZE));
  const used = counts.reduce((a, b) => a + b, 0);
  const numPages = used + 3; // spare pages hold values no sequence may read
  const perm = rng.permutation(numPages);
  const indptr = [0];
  for (const c of counts) indptr.push(indptr[indptr.length - 1] + c);
  const positions: number[] = [], tokSeq: number[] = [];
  lens.forEach((len, s) => {
    for (let p = len - qlens[s]; p < len; p++) positions.push(p), tokSeq.push(s);
  });
  return {
    R: positions.length,
    numPages,
    paged: [
      padded(Uint32Array.from(positions)),
      padded(Uint32Array.from(tokSeq)),
      padded(Uint32Array.from(indptr)),
      padded(Uint32Array.from(perm.slice(0, used))),
    ],
    label: `lens=[${lens}] q=[${qlens}]`,
  };
}

interface Heads {
  H: number;
  KV: number;
  D: number;
}

const headsLabel = ({ H, KV, D }: Heads) => `H=${H} KV=${KV} D=${D}`;

function ropeCases(rng: Rng): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  const table: [Heads, number, number[]][] = [
    [{ H: 4, KV: 2, D: 32 }, 37, [0, 255]],
    [{ H: 4, KV: 1, D: 64 }, 1, [200, 200]],
    [{ H: 2, KV: 2, D: 16 }, 5, [0, 10]],
    [{ H: 1, KV: 1, D: 4 }, 70000, [0, 255]], // more rows than 65535 workgroups
    [{ H: 32, KV: 8, D: 128 }, 3, [0, 9000]], // Llama-3-8B heads: a row spans several workgroups
  ];
  for (const [h, R, [lo, hi]] of table) {
    const width = (h.H + 2 * h.KV) * h.D;
    const pos = Uint32Array.from({ length: R }, () => lo + rng.int(hi - lo + 1)); // [R]
    out.push({
      name: `rope ${headsLabel(h)} R=${R} positions in [${lo},${hi}]`,
      spec: { op: "rope", heads: h.H, kvHeads: h.KV, headDim: h.D, invFreq: invFreq(h.D) },
      rows: R,
      inputs: [
        padded(rng.normals(R * width)),
        padded(pos),
        padded(new Float32Array(R * width).fill(-7)),
      ],
      tol: TOL.f32,
    });
  }
  const appends: [Heads, number[], number[]][] = [
    [{ H: 4, KV: 2, D: 32 }, [37], [37]], // one prompt, three pages
    [{ H: 8, KV: 2, D: 16 }, [5, 40, 17, 1], [5, 9, 1, 1]], // ragged chunked prefill + decode
    [{ H: 4, KV: 1, D: 64 }, [16, 33, 2], [1, 1, 1]], // MQA decode, page boundaries
    [{ H: 2, KV: 2, D: 32 }, [70], [1]],
    [{ H: 32, KV: 8, D: 128 }, [600, 20], [1, 3]], // 8B heads: rows split over workgroups
  ];
  for (const [h, lens, qlens] of appends) {
    const b = batch(rng, lens, qlens);
    const width = (h.H + 2 * h.KV) * h.D;
    const cacheLen = b.numPages * 2 * h.KV * PAGE_SIZE * h.D;
    const base = { heads: h.H, kvHeads: h.KV, headDim: h.D };
    out.push({
      name: `kv_append ${headsLabel(h)} ${b.label} R=${b.R}`,
      spec: { op: "kv_append", ...base },
      rows: b.R,
      inputs: [padded(rng.normals(b.R * width)), ...b.paged, padded(rng.normals(cacheLen))],
      tol: TOL.exact,
    });
    out.push({
      name: `rope_kv_append ${headsLabel(h)} ${b.label} R=${b.R}`,
      spec: { op: "rope_kv_append", ...base, invFreq: invFreq(h.D, 500000) },
      rows: b.R,
      inputs: [
        padded(rng.normals(b.R * width)),
        ...b.paged,
        padded(rng.normals(cacheLen)),
        padded(new Float32Array(b.R * h.H * h.D).fill(-7)),
      ],
      tol: TOL.f32,
    });
  }
  return out;
}

function attentionCases(rng: Rng): ConformanceCase[] {
  const table: [string, Heads, number[], number[], number, boolean, number?][] = [
    // label, heads, lens, qlens, window, q read from fused qkv, q scale (default 2)
    ["MHA prefill", { H: 4, KV: 4, D: 32 }, [37], [37], 0, false],
    ["GQA mixed", { H: 8, KV: 2, D: 64 }, [5, 37, 20], [5, 12, 1], 0, false],
    ["MQA decode", { H: 4, KV: 1, D: 32 }, [1, 17, 33, 50], [1, 1, 1, 1], 0, false],
    ["GQA sliding window", { H: 4, KV: 2, D: 32 }, [40, 23], [10, 23], 8, false],
    ["sliding window decode", { H: 2, KV: 1, D: 64 }, [100, 3], [1, 1], 20, false],
    ["GQA q from qkv", { H: 4, KV: 2, D: 32 }, [19, 6], [4, 6], 0, true],
    ["long decode D=128", { H: 2, KV: 1, D: 128 }, [300], [1], 0, false],
    ["GQA long prefill", { H: 4, KV: 2, D: 64 }, [90], [90], 0, false],
    ["scores past exp's f32 range", { H: 4, KV: 2, D: 32 }, [40, 9], [3, 9], 0, false, 40],
    ["chunked prefill with window", { H: 4, KV: 1, D: 32 }, [150, 64], [70, 64], 33, false],
  ];
  return table.map(([label, h, lens, qlens, window, fused, qScale = 2]) => {
    const b = batch(rng, lens, qlens);
    const qStride = fused ? (h.H + 2 * h.KV) * h.D : h.H * h.D;
    const cacheLen = b.numPages * 2 * h.KV * PAGE_SIZE * h.D;
    return {
      name: `attention ${label} ${headsLabel(h)} window=${window} ${b.label} R=${b.R}`,
      spec: {
        op: "attention",
        heads: h.H,
        kvHeads: h.KV,
        headDim: h.D,
        qStride,
        window,
        scale: 1 / Math.sqrt(h.D),
      },
      rows: b.R,
      inputs: [
        padded(rng.normals(b.R * qStride, qScale)), // scaled so the softmax is peaked, not flat
        ...b.paged,
        padded(rng.normals(cacheLen)),
        padded(new Float32Array(b.R * h.H * h.D).fill(-7)),
      ],
      tol: TOL.f32,
    };
  });
}

/** Cases of the position-aware kernels, generated from `seed`. */
export function pagedCases(seed: number): ConformanceCase[] {
  const rng = new Rng(seed);
  return [...ropeCases(rng), ...attentionCases(rng)];
}
