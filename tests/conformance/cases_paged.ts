/**
 * Conformance cases of the position-aware kernels: rope, kv_append, rope_kv_append, attention,
 * attention_decode and attention_merge (split-KV decode: ragged splits, empty ones, windows).
 * Batches hold several sequences of ragged lengths whose pages are shuffled over a cache with
 * spare (never referenced) pages; MHA, GQA and MQA head layouts; sliding windows; q read with
 * a stride from a fused qkv row.
 * @module
 */
import { mergedPartials, PAGE_SIZE, q8RowWords } from "../../compiler/codegen/contract.ts";
import { type ConformanceCase, TOL } from "./case.ts";
import { denseBuffer, padded, Rng, unwritten } from "./helpers.ts";
import { splitsOf } from "./reference.ts";

/** HF rotary inverse frequencies theta^(-2i/D). */
export const invFreq = (D: number, theta = 10000) =>
  Array.from({ length: D / 2 }, (_, i) => theta ** (-(2 * i) / D));

/** A batch: sequence s has total length lens[s] after this step and its last qlens[s] tokens
 * are this step's rows. Pages are a random permutation of the cache's pages (plus spares). */
export function batch(rng: Rng, lens: number[], qlens: number[]) {
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
    [{ H: 2, KV: 1, D: 6 }, [20, 3], [4, 1]], // D / 2 odd: an f16 pair straddles the halves
  ];
  for (const [h, lens, qlens] of appends) {
    const b = batch(rng, lens, qlens);
    const width = (h.H + 2 * h.KV) * h.D;
    const cacheLen = b.numPages * 2 * h.KV * PAGE_SIZE * h.D;
    const base = { heads: h.H, kvHeads: h.KV, headDim: h.D };
    // the cache in f32, and in f16 (`kvDtype`)
    for (const f16 of [false, true]) {
      const kv = f16 ? { kvDtype: "f16" as const } : {};
      const cache = () => kvCache(rng, cacheLen, f16);
      const label = `${headsLabel(h)}${f16 ? " kv=f16" : ""} ${b.label} R=${b.R}`;
      out.push({
        name: `kv_append ${label}`,
        spec: { op: "kv_append", ...base, ...kv },
        rows: b.R,
        inputs: [padded(rng.normals(b.R * width)), ...b.paged, cache()],
        tol: f16 ? TOL.kvF16 : TOL.exact,
      });
      out.push({
        name: `rope_kv_append ${label}`,
        spec: { op: "rope_kv_append", ...base, invFreq: invFreq(h.D, 500000), ...kv },
        rows: b.R,
        inputs: [
          padded(rng.normals(b.R * width)),
          ...b.paged,
          cache(),
          padded(new Float32Array(b.R * h.H * h.D).fill(-7)),
        ],
        tol: f16 ? TOL.kvF16 : TOL.f32,
      });
    }
  }
  return out;
}

/** A random cache of `n` elements, f32 or f16. */
function kvCache(rng: Rng, n: number, f16: boolean): ArrayBuffer {
  return denseBuffer(rng.normals(n), f16 ? "f16" : "f32");
}

/** Attention cases that also run on an f16 cache (and, with a row bound past 32, the WebGPU
 * prefill tiles where the head dim allows). */
const ATTENTION_F16: Record<string, number | undefined> = {
  "GQA mixed": undefined,
  "MQA decode": undefined,
  "long decode D=128": undefined,
  "GQA long prefill": 128,
  "chunked prefill with window": undefined,
  "D=10 scalar form": undefined,
};

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
    // 69 pages of one sequence in one workgroup's key range
    ["decode over 69 pages", { H: 2, KV: 1, D: 32 }, [1100, 40], [1, 1], 0, false],
    ["GQA long prefill", { H: 4, KV: 2, D: 64 }, [90], [90], 0, false],
    ["scores past exp's f32 range", { H: 4, KV: 2, D: 32 }, [40, 9], [3, 9], 0, false, 40],
    ["chunked prefill with window", { H: 4, KV: 1, D: 32 }, [150, 64], [70, 64], 33, false],
    ["D=10 scalar form", { H: 4, KV: 2, D: 10 }, [30, 7], [6, 1], 0, false],
  ];
  return table.flatMap(([label, h, lens, qlens, window, fused, qScale = 2]) => {
    const b = batch(rng, lens, qlens);
    const qStride = fused ? (h.H + 2 * h.KV) * h.D : h.H * h.D;
    const cacheLen = b.numPages * 2 * h.KV * PAGE_SIZE * h.D;
    const q = padded(rng.normals(b.R * qStride, qScale)); // scaled so the softmax is peaked
    const modes = label in ATTENTION_F16 ? [false, true] : [false];
    return modes.map((f16): ConformanceCase => {
      const maxRows = f16 ? ATTENTION_F16[label] : undefined;
      return {
        name: `attention ${label} ${headsLabel(h)}${f16 ? " kv=f16" : ""}${
          maxRows ? ` maxRows=${maxRows}` : ""
        } window=${window} ${b.label} R=${b.R}`,
        spec: {
          op: "attention",
          heads: h.H,
          kvHeads: h.KV,
          headDim: h.D,
          qStride,
          window,
          scale: 1 / Math.sqrt(h.D),
          ...(f16 ? { kvDtype: "f16" as const } : {}),
          ...(maxRows ? { maxRows } : {}),
        },
        rows: b.R,
        inputs: [
          q,
          ...b.paged,
          kvCache(rng, cacheLen, f16),
          padded(new Float32Array(b.R * h.H * h.D).fill(-7)),
        ],
        tol: TOL.f32,
      };
    });
  });
}

/** A split-KV decode layout: up to `splits` ranges a row, `rows` rows' worth shared by the
 * dispatch's rows, each a multiple of `align` positions. */
interface Splits {
  splits: number;
  rows: number;
  align: number;
}

/** Decode batches (one row per sequence, at its last position) for `attention_decode`. */
const DECODE_TABLE: [string, Heads, number[], number, Splits][] = [
  // label, heads, lens, window, split layout (a row gets min(splits, rows / R) splits)
  ["8B heads ragged", { H: 32, KV: 8, D: 128 }, [577, 20, 1], 0, {
    splits: 32,
    rows: 32,
    align: 32,
  }],
  // one row of 19 splits: more than a folded merge's thread groups load before the
  // log-sum-exps (2 groups x 8), so the later batches run
  ["8B heads one long row", { H: 32, KV: 8, D: 128 }, [577], 0, {
    splits: 32,
    rows: 32,
    align: 16,
  }],
  // 8 query heads a KV head: a folded merge of one thread group (256 output vec4s)
  ["8 heads a KV head", { H: 16, KV: 2, D: 128 }, [300, 41], 0, {
    splits: 16,
    rows: 16,
    align: 16,
  }],
  ["GQA one token", { H: 8, KV: 2, D: 64 }, [1], 0, { splits: 4, rows: 64, align: 16 }],
  // Qwen2.5-0.5B's heads in the one-row decode function's layout (a row has every split: the
  // WebGPU kernel's 128-thread form), 7 heads a KV head (blocks of 4 and 3)
  ["0.5B heads, one row's layout", { H: 14, KV: 2, D: 64 }, [577], 0, {
    splits: 64,
    rows: 64,
    align: 32,
  }],
  ["GQA blocks of 4 and 2", { H: 12, KV: 2, D: 32 }, [130, 33, 16, 17], 0, {
    splits: 8,
    rows: 12,
    align: 16,
  }],
  ["MQA head blocks", { H: 8, KV: 1, D: 32 }, [70, 5], 0, { splits: 3, rows: 64, align: 1 }],
  ["MHA", { H: 4, KV: 4, D: 64 }, [45, 64, 2], 0, { splits: 4, rows: 6, align: 8 }],
  ["sliding window", { H: 4, KV: 2, D: 32 }, [100, 7, 21], 20, { splits: 4, rows: 64, align: 4 }],
  ["window inside a long context", { H: 4, KV: 1, D: 16 }, [300, 40], 33, {
    splits: 2,
    rows: 1,
    align: 32,
  }],
  ["one split", { H: 4, KV: 2, D: 32 }, [90, 3], 0, { splits: 1, rows: 64, align: 32 }],
  ["more splits than positions", { H: 2, KV: 1, D: 16 }, [5, 2], 0, {
    splits: 16,
    rows: 64,
    align: 1,
  }],
  ["D=10 scalar form", { H: 16, KV: 2, D: 10 }, [37, 1, 80], 0, { splits: 4, rows: 9, align: 8 }],
  ["D=6 MQA window", { H: 3, KV: 1, D: 6 }, [50, 9], 12, { splits: 3, rows: 64, align: 2 }],
  ["D=34 long", { H: 2, KV: 2, D: 34 }, [200], 0, { splits: 5, rows: 64, align: 7 }],
  // the grouped form (D a multiple of 4) with rotation pairs that straddle vec4s (D / 2 = 6):
  // q, k and v read element by element
  ["D=12 grouped, pairs across vec4s", { H: 4, KV: 2, D: 12 }, [40, 5], 0, {
    splits: 3,
    rows: 8,
    align: 4,
  }],
  ["D=258: a head row wider than a workgroup", { H: 2, KV: 1, D: 258 }, [40, 3], 0, {
    splits: 4,
    rows: 4,
    align: 8,
  }],
];

/** Decode batches that also run on an f16 cache. */
const DECODE_F16 = new Set([
  "8B heads ragged",
  "0.5B heads, one row's layout",
  "GQA blocks of 4 and 2",
  "D=10 scalar form",
  "D=6 MQA window",
  "D=12 grouped, pairs across vec4s",
]);

/** Decode batches whose qkv also comes as a kSplit matmul's partial sums (`qkvSplits`). */
const QKV_SPLITS: Record<string, number> = {
  "8B heads ragged": 4,
  "0.5B heads, one row's layout": 4,
  "GQA blocks of 4 and 2": 3,
  "sliding window": 2,
  "D=10 scalar form": 2,
  "D=12 grouped, pairs across vec4s": 3,
};

function decodeCases(rng: Rng): ConformanceCase[] {
  return DECODE_TABLE.flatMap(([label, h, lens, window, { splits, rows, align }]) => {
    const b = batch(rng, lens, lens.map(() => 1));
    const width = (h.H + 2 * h.KV) * h.D;
    const cacheLen = b.numPages * 2 * h.KV * PAGE_SIZE * h.D;
    const layout = { window, splits, splitRows: rows, splitAlign: align };
    const perRow = splitsOf(layout, 0, b.R).perRow;
    const what = `${label} ${
      headsLabel(h)
    } window=${window} splits=${perRow}/${splits}x${align} ${b.label}`;
    // partial outputs: random where a row's splits would be, huge (lse) and NaN (outputs)
    // where they are not (unused: a merge may load them but must not add them up)
    const partLse = new Float32Array(b.R * splits * h.H).fill(1e30); // [R, splits, H]
    const partO = rng.normals(b.R * splits * h.H * h.D); // [R, splits, H, D]
    const positions = new Uint32Array(b.paged[0]);
    for (let r = 0; r < b.R; r++) {
      const { used } = splitsOf(layout, positions[r], b.R);
      for (let s = 0; s < used; s++) {
        for (let hh = 0; hh < h.H; hh++) partLse[(r * splits + s) * h.H + hh] = 4 * rng.normal();
      }
      partO.fill(NaN, (r * splits + used) * h.H * h.D, (r + 1) * splits * h.H * h.D);
    }
    // the merge's out row-major, unit-major where H * D allows it, and as quantize_q8 rows
    // where D and H * D do
    const merges: ("rows" | "units" | "codes")[] = ["rows"];
    if ((h.H * h.D) % 32 === 0) merges.push("units");
    if (h.D % 32 === 0 && (h.H * h.D) % 64 === 0) merges.push("codes");
    const qkvSplits = QKV_SPLITS[label] ?? 1;
    const variants: [number, boolean][] = [[1, false]];
    if (qkvSplits > 1) variants.push([qkvSplits, false]);
    if (DECODE_F16.has(label)) variants.push([1, true]);
    // the merge folded in (`merge`, the grouped WebGPU form: head dim a multiple of 4, a KV
    // head's outputs a multiple of 32): each out mode, and f16 / qkvSplits with the first
    const HG = h.H / h.KV;
    const folds: [number, boolean, "rows" | "units" | "codes"][] = h.D % 4 === 0 &&
        (HG * h.D) % 32 === 0
      ? [
        ...merges.map((m): [number, boolean, "rows" | "units" | "codes"] => [1, false, m]),
        ...variants.slice(1).map(([qs, f16]): [number, boolean, "rows" | "units" | "codes"] => [
          qs,
          f16,
          merges.at(-1)!,
        ]),
      ]
      : [];
    const lseWords = mergedPartials({ heads: h.H, kvHeads: h.KV, splits }).lseWords;
    type Out = "rows" | "units" | "codes";
    // a decode case: qkv split into qs partial sums, an f16 cache, the merge folded in (`mode`)
    // (qsRows: the matmul's kSplitRows, the dispatch's first partials only, the others NaN)
    const decode = (
      qs: number,
      f16: boolean,
      mode?: Out,
      bias?: "f32" | "f16",
      qsRows?: number,
    ): ConformanceCase => ({
      name: `attention_decode${mode ? ` merge=${mode}` : ""} ${what}${
        qs > 1 ? ` qkvSplits=${qs}` : ""
      }${qsRows ? ` qkvSplitRows=${qsRows}` : ""}${bias ? ` qkvBias=${bias}` : ""}${
        f16 ? " kv=f16" : ""
      } R=${b.R}`,
      spec: {
        op: "attention_decode",
        heads: h.H,
        kvHeads: h.KV,
        headDim: h.D,
        scale: 1 / Math.sqrt(h.D),
        invFreq: invFreq(h.D, 500000),
        ...layout,
        ...(qs > 1 ? { qkvSplits: qs } : {}),
        ...(qsRows ? { qkvSplitRows: qsRows } : {}),
        ...(bias ? { qkvBias: bias } : {}),
        ...(f16 ? { kvDtype: "f16" as const } : {}),
        ...(mode
          ? {
            merge: {
              ...(mode === "units" ? { outUnits: true } : {}),
              ...(mode === "codes" ? { outCodes: true } : {}),
            },
          }
          : {}),
      },
      rows: b.R,
      inputs: [
        // scaled so the softmax is peaked, not flat (split into qs partial sums)
        padded(unwritten(rng.normals(b.R * qs * width, 2 / Math.sqrt(qs)), b.R, qs, width, qsRows)),
        ...(bias ? [denseBuffer(rng.normals(width, 1), bias)] : []),
        ...b.paged,
        kvCache(rng, cacheLen, f16),
        padded(new Float32Array(b.R * splits * h.H * h.D).fill(-7)),
        padded(new Float32Array(b.R * (mode ? lseWords : splits * h.H)).fill(-7)),
        ...(mode
          ? [
            padded(new Uint32Array(b.R * h.KV)), // counts: zero before, zero after
            padded(
              new Float32Array(b.R * (mode === "codes" ? q8RowWords(h.H * h.D) : h.H * h.D))
                .fill(-7),
            ),
          ]
          : []),
      ],
      tol: mode === "codes" ? TOL.q8Written : f16 ? TOL.kvF16 : TOL.f32,
    });
    // a folded sum_splits' bias (`qkvBias`): f16 with the partial sums, f32 alone, and with
    // the last merge mode where the merge folds in
    const biased: [number, Out | undefined, "f32" | "f16"][] = qkvSplits > 1
      ? [[qkvSplits, undefined, "f16"], [1, undefined, "f32"]]
      : [];
    if (biased.length && folds.length) biased.push([qkvSplits, merges.at(-1)!, "f16"]);
    // the qkv partials by the dispatch's rows (qkvSplitRows: qkvSplits - 1 of them), alone, with
    // the bias, and with the last merge mode folded in
    const byRows: [Out | undefined, "f32" | "f16" | undefined][] = qkvSplits > 1
      ? [
        [undefined, undefined],
        [undefined, "f32"],
        ...(folds.length ? [[merges.at(-1)!, undefined] as [Out, undefined]] : []),
      ]
      : [];
    return [
      ...folds.map(([qs, f16, mode]) => decode(qs, f16, mode)),
      ...variants.map(([qs, f16]) => decode(qs, f16)),
      ...biased.map(([qs, mode, bias]) => decode(qs, false, mode, bias)),
      ...byRows.map(([mode, bias]) => decode(qkvSplits, false, mode, bias, (qkvSplits - 1) * b.R)),
      ...merges.map((mode): ConformanceCase => ({
        name: `attention_merge ${what}${
          mode === "rows" ? "" : ` out${mode[0].toUpperCase()}${mode.slice(1)}`
        } R=${b.R}`,
        spec: {
          op: "attention_merge",
          heads: h.H,
          headDim: h.D,
          ...layout,
          ...(mode === "units" ? { outUnits: true } : {}),
          ...(mode === "codes" ? { outCodes: true } : {}),
        },
        rows: b.R,
        inputs: [
          b.paged[0],
          padded(partO),
          padded(partLse),
          padded(
            new Float32Array(b.R * (mode === "codes" ? q8RowWords(h.H * h.D) : h.H * h.D)).fill(-7),
          ),
        ],
        tol: mode === "codes" ? TOL.q8Written : TOL.f32,
      })),
    ];
  });
}

/** Cases of the position-aware kernels, generated from `seed`. */
export function pagedCases(seed: number): ConformanceCase[] {
  const rng = new Rng(seed);
  return [...ropeCases(rng), ...attentionCases(rng), ...decodeCases(rng)];
}
