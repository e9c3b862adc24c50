import { ok } from "node:assert/strict";
import { hasPackedDot, type KernelSpec, PACKED_DOT, type WeightFormat } from "../contract.ts";
import { assertThrows } from "../../../tests/assert.ts";
import { device, expectClose, matmulInputs, matmulSpec, Rng, runKernel } from "./test_helpers.ts";
import { gemvDefaults, type GemvTuning, matmulGemv } from "./matmul_gemv.ts";
import { matmulTiled, tiledDefaults, tiledSharedBytes, type TiledTuning } from "./matmul_tiled.ts";
import { matmulRows, rowsDefaults, type RowsTuning } from "./matmul_rows.ts";
import { matmulTiledQ8, tiledQ8Defaults, type TiledQ8Tuning } from "./matmul_tiled_q8.ts";
import { GENERIC_WEBGPU } from "../../target.ts";
import { wgslKernel } from "./mod.ts";
import { reference } from "../../../tests/conformance/reference.ts";

const ignore = !device;
/** Whether the adapter has the packed int8 dot product (the q8 kernels' cases). */
const packedDot = !!device && hasPackedDot(device.target);

type MatmulSpec = Extract<KernelSpec, { op: "matmul" }>;

/** Runs one matmul case and compares every output element with a float64 reference. */
async function checkMatmul(
  rng: Rng,
  spec: MatmulSpec,
  R: number,
  tune?:
    | GemvTuning
    | "tiled16k"
    | { gemv16k: GemvTuning }
    | { tiled: TiledTuning }
    | { rows: RowsTuning; small?: boolean }
    | { q8tiled: TiledQ8Tuning },
) {
  const inputs = matmulInputs(rng, spec, R);
  const ref = reference(spec, inputs, R).out as Float64Array;
  const target = device!.target;
  const small = { ...target, limits: { ...target.limits, maxComputeWorkgroupStorageSize: 16384 } };
  const source = tune === "tiled16k"
    ? matmulTiled(spec, small)
    : tune && "tiled" in tune
    ? matmulTiled(spec, target, tune.tiled)
    : tune && "q8tiled" in tune
    ? matmulTiledQ8(spec, target, tune.q8tiled)
    : tune && "rows" in tune
    ? matmulRows(spec, tune.small ? small : target, tune.rows)
    : tune && "gemv16k" in tune
    ? matmulGemv(spec, small, tune.gemv16k)
    : tune
    ? matmulGemv(spec, target, tune)
    : undefined;
  const outs = await runKernel(spec, R, inputs, source);
  // q8 activations: a code may round the other way at a tie (TOL.q8 of the conformance suite);
  // given codes (xCodes) round nothing
  const tol = spec.xq8 && !spec.xCodes ? 2e-3 : 2e-5;
  expectClose(new Float32Array(outs.at(-1)!), ref, tol, `${JSON.stringify(spec)} R=${R}`);
}

const FORMATS: WeightFormat[] = [
  { kind: "dense", dtype: "f32" },
  { kind: "dense", dtype: "f16" },
  { kind: "group", bits: 4, groupSize: 32, scaleDtype: "f16" },
  { kind: "group", bits: 3, groupSize: 40, scaleDtype: "f16" },
  { kind: "group", bits: 4, groupSize: 32, scaleDtype: "f32" },
];

const spec = matmulSpec;
/** The generic WebGPU target with the packed int8 dot product (routing checks). */
const Q8_WEBGPU = { ...GENERIC_WEBGPU, features: [...GENERIC_WEBGPU.features, PACKED_DOT] };
const q4: WeightFormat = { kind: "group", bits: 4, groupSize: 32, scaleDtype: "f16" };
const q4s32: WeightFormat = { kind: "group", bits: 4, groupSize: 32, scaleDtype: "f32" };
const q4g64: WeightFormat = { kind: "group", bits: 4, groupSize: 64, scaleDtype: "f16" };
const q4odd: WeightFormat = { kind: "group", bits: 4, groupSize: 96, scaleDtype: "f16" };

for (const [shape, maxRows, Rs] of [["GEMV", 1, [1, 3]], ["tiled", 256, [1, 150]]] as const) {
  Deno.test({
    name: `matmulKernel() ${shape} shape matches float64 for every weight format and ragged K`,
    ignore,
    fn: async () => {
      const rng = new Rng(7);
      for (const weight of FORMATS) {
        for (const [N, K] of [[37, 64], [70, 131], [9, 8]]) {
          for (const R of Rs) await checkMatmul(rng, spec(weight, N, K, maxRows), R);
        }
      }
    },
  });

  Deno.test({
    name: `matmulKernel() ${shape} shape applies bias, add and silu_mul epilogues and row slices`,
    ignore,
    fn: async () => {
      const rng = new Rng(8);
      const f16: WeightFormat = { kind: "dense", dtype: "f16" };
      for (const R of Rs) {
        await checkMatmul(rng, spec(q4, 90, 96, maxRows, { bias: "f16", epilogue: "add" }), R);
        await checkMatmul(rng, spec(f16, 66, 40, maxRows, { bias: "f32" }), R);
        await checkMatmul(rng, spec(q4, 70, 100, maxRows, { epilogue: "silu_mul" }), R);
        await checkMatmul(
          rng,
          spec(f16, 82, 50, maxRows, { bias: "f32", epilogue: "silu_mul" }),
          R,
        );
        await checkMatmul(
          rng,
          spec(q4, 100, 64, maxRows, { rowStart: 30, rows: 45, bias: "f32", epilogue: "add" }),
          R,
        );
      }
    },
  });
}

Deno.test({
  name: "matmulGemv() is correct under every tuning (columns and rows per thread, unrolled loads)",
  ignore,
  fn: async () => {
    const rng = new Rng(9);
    const q3: WeightFormat = { kind: "group", bits: 3, groupSize: 40, scaleDtype: "f16" };
    const f16: WeightFormat = { kind: "dense", dtype: "f16" };
    const f32: WeightFormat = { kind: "dense", dtype: "f32" };
    const tunings: GemvTuning[] = [
      { threadsPerCol: 8, colsPerThread: 1, rowsPerGroup: 4, unroll: 1, codeWords: 4 },
      { threadsPerCol: 32, colsPerThread: 4, rowsPerGroup: 2, unroll: 2, codeWords: 2 },
      { threadsPerCol: 64, colsPerThread: 8, rowsPerGroup: 1, unroll: 3, codeWords: 1 },
      { threadsPerCol: 16, colsPerThread: 3, rowsPerGroup: 5, unroll: 4, codeWords: 1 },
      { threadsPerCol: 2, colsPerThread: 2, rowsPerGroup: 3, unroll: 2, codeWords: 1 },
    ];
    for (const tune of tunings) {
      await checkMatmul(rng, spec(q4, 40, 256, 4, { epilogue: "silu_mul" }), 3, tune);
      await checkMatmul(rng, spec(q3, 21, 200, 1, { bias: "f16", epilogue: "add" }), 1, tune);
      await checkMatmul(rng, spec(f16, 19, 136, 2), 2, tune);
      await checkMatmul(rng, spec(f32, 13, 37, 7), 7, tune);
    }
  },
});

Deno.test({
  name: "matmulKernel() GEMV shape is correct for 5 to 32 rows (every epilogue, row slices)",
  ignore,
  fn: async () => {
    const rng = new Rng(11);
    const q3: WeightFormat = { kind: "group", bits: 3, groupSize: 40, scaleDtype: "f16" };
    for (const [maxRows, R] of [[32, 32], [32, 17], [16, 16], [8, 5]]) {
      await checkMatmul(rng, spec(q4, 50, 128, maxRows, { epilogue: "silu_mul" }), R);
      await checkMatmul(
        rng,
        spec(q4, 100, 96, maxRows, { rowStart: 30, rows: 45, bias: "f32", epilogue: "add" }),
        R,
      );
      await checkMatmul(rng, spec(q3, 33, 80, maxRows, { bias: "f16" }), R);
    }
  },
});

Deno.test({
  name: "matmulRows() matches float64 under every tuning, for 1 to 32 rows, every epilogue",
  ignore,
  fn: async () => {
    const rng = new Rng(14);
    const base: RowsTuning = {
      rowsPerGroup: 16,
      colsPerLane: 2,
      warps: 4,
      prefetch: true,
      skipRows: true,
    };
    // (unitLanes, with xCodes: a warp's threads on 2, 4 or 8 consecutive units; prefetchRows:
    // every row of a block, or 3 of 16 rows, loaded a unit ahead)
    const tunings: [RowsTuning, boolean][] = [
      [base, false],
      [{ ...base, prefetch: false, skipRows: false, colsPerLane: 1, unitLanes: 2 }, false],
      [
        { ...base, rowsPerGroup: 8, colsPerLane: 4, warps: 8, unitLanes: 8, prefetchRows: 8 },
        false,
      ],
      [{ ...base, rowsPerGroup: 32, colsPerLane: 1, warps: 3 }, false],
      // 16 KiB of workgroup storage: the reduction in several passes
      [{ ...base, colsPerLane: 4, warps: 8, unitLanes: 4, prefetchRows: 3 }, true],
    ];
    for (const [rows, small] of tunings) {
      const t = { rows, small };
      // every loop (the whole block, its half, its quarter) and rows past R in a block; N
      // ragged against every column block; K of one, several and an odd count of units
      for (const R of [1, 5, 9, 16, 19, 32]) {
        await checkMatmul(rng, spec(q4, 70, 224, 32, { epilogue: "silu_mul" }), R, t);
        await checkMatmul(rng, spec(q4, 130, 64, 32, { bias: "f16", epilogue: "add" }), R, t);
      }
      await checkMatmul(rng, spec(q4s32, 45, 96, 32, { bias: "f32" }), 7, t);
      await checkMatmul(rng, spec(q4g64, 40, 192, 32, { epilogue: "silu_mul" }), 17, t);
      await checkMatmul(rng, spec(q4odd, 33, 288, 32), 4, t);
      if (packedDot) {
        // q8 activations: x quantised by the workgroup a step of units at a time
        for (const R of [3, 16, 21]) {
          await checkMatmul(rng, spec(q4, 70, 224, 32, { epilogue: "silu_mul", xq8: true }), R, t);
          await checkMatmul(rng, spec(q4g64, 40, 192, 32, { bias: "f16", xq8: true }), R, t);
        }
        await checkMatmul(rng, spec(q4, 130, 256, 32, { kSplit: 3, xq8: true }), 9, t);
        // x as quantize_q8 rows (`xCodes`): each warp reads its units' codes
        const c8 = { xq8: true, xCodes: true };
        for (const R of [5, 16, 21]) {
          await checkMatmul(rng, spec(q4, 70, 256, 32, { ...c8, epilogue: "silu_mul" }), R, t);
        }
        await checkMatmul(rng, spec(q4g64, 40, 192, 32, { ...c8, bias: "f16" }), 12, t);
        // 20 units: several steps a thread at 8 warps (codes loaded a unit ahead), the last
        // one partial
        await checkMatmul(rng, spec(q4, 72, 640, 32, c8), 16, t);
        await checkMatmul(rng, spec(q4, 130, 448, 32, { ...c8, kSplit: 3 }), 9, t);
      }
      await checkMatmul(
        rng,
        spec(q4, 300, 32, 32, { rowStart: 70, rows: 150, bias: "f32", epilogue: "add" }),
        12,
        t,
      );
    }
    if (packedDot) {
      // the defaults on quantize_q8 rows where a thread walks 16 steps of K: 4 units a warp,
      // two rows' codes loaded a unit ahead, 16-row blocks
      const long = spec(q4, 72, 4096, 32, { xq8: true, xCodes: true });
      const d = rowsDefaults(long);
      if (d.unitLanes !== 4 || d.prefetchRows !== 2 || d.rowsPerGroup !== 16) {
        throw new Error(`unexpected defaults at K 4096 on codes: ${JSON.stringify(d)}`);
      }
      for (const R of [16, 11]) await checkMatmul(rng, long, R, { rows: d });
    }
    // matmulKernel() takes the shape for many weight rows at 8+ rows, not for few
    const pick = (s: MatmulSpec) =>
      wgslKernel(s, GENERIC_WEBGPU).code === matmulRows(s, GENERIC_WEBGPU).code;
    if (
      !pick(spec(q4, 128256, 64, 32)) || !pick(spec(q4, 2 * 8192, 64, 8, { epilogue: "silu_mul" }))
    ) {
      throw new Error("expected the few-rows shape for lm_head and gate_up at 8+ rows");
    }
    if (pick(spec(q4, 4096, 4096, 32)) || pick(spec(q4, 128256, 64, 4))) {
      throw new Error("expected the GEMV shape for a square weight and for 4 rows");
    }
    // with q8 activations: the few-rows shape's int8 form at 8+ rows, the q8 GEMV at one row
    // and with a K split whatever the shape
    const pick8 = (s: MatmulSpec) =>
      wgslKernel(s, Q8_WEBGPU).code === matmulRows(s, Q8_WEBGPU).code;
    const x8 = { xq8: true };
    if (!pick8(spec(q4, 128256, 64, 32, x8)) || pick8(spec(q4, 128256, 64, 1, x8))) {
      throw new Error("expected the few-rows shape for xq8 at 32 rows and the q8 GEMV at one");
    }
    if (!pick8(spec(q4, 4096, 4096, 32, { ...x8, kSplit: 4 }))) {
      throw new Error("expected the few-rows shape for a K split");
    }
    // without the packed dot product the int8 form is refused
    assertThrows(() => matmulRows(spec(q4, 4096, 4096, 32, x8), GENERIC_WEBGPU), RangeError);
  },
});

Deno.test({
  name: "matmulTiledQ8() (prefill on q8 activations) matches float64 under every tuning",
  ignore: !packedDot,
  fn: async () => {
    const rng = new Rng(15);
    const x8 = { xq8: true };
    const tunings: TiledQ8Tuning[] = [
      { rows: 128, wrows: 128, tm: 8, tn: 8, blocks: 1, double: true },
      { rows: 64, wrows: 128, tm: 4, tn: 8, blocks: 2, double: false },
      { rows: 32, wrows: 32, tm: 4, tn: 8, blocks: 3, double: true },
      { rows: 64, wrows: 32, tm: 8, tn: 4, blocks: 2, double: true },
      // 64 threads: the first unit x rows or weight rows, the rest weight rows only
      { rows: 16, wrows: 128, tm: 4, tn: 8, blocks: 3, double: true },
      { rows: 16, wrows: 64, tm: 4, tn: 8, blocks: 2, double: false },
      // 4 blocks a slice (the default on quantize_q8 rows where storage allows): block counts
      // of K it does not divide
      { rows: 32, wrows: 64, tm: 4, tn: 8, blocks: 4, double: false },
    ];
    for (const t of tunings) {
      const tune = { q8tiled: t };
      // rows past R in the last row block; N ragged against the column blocks (silu_mul's
      // half-width blocks too); K of one block, a part block (K % 32 != 0), and block counts
      // the slice does not divide; f32 scales, groups of 64 and of 96 (odd group counts)
      // (silu_mul needs 8 weight rows a thread: its gate and up halves)
      const silu = t.tn === 8 ? "silu_mul" : "none";
      await checkMatmul(rng, spec(q4, 70, 224, 512, { ...x8, epilogue: silu }), 150, tune);
      await checkMatmul(
        rng,
        spec(q4, 130, 100, 512, { ...x8, bias: "f16", epilogue: "add" }),
        37,
        tune,
      );
      await checkMatmul(rng, spec(q4s32, 45, 32, 512, { ...x8, bias: "f32" }), 70, tune);
      await checkMatmul(rng, spec(q4g64, 40, 192, 512, { ...x8, epilogue: silu }), 33, tune);
      await checkMatmul(rng, spec(q4odd, 33, 288, 512, x8), 129, tune);
      await checkMatmul(
        rng,
        spec(q4, 300, 64, 512, { ...x8, rowStart: 70, rows: 150, bias: "f32", epilogue: "add" }),
        12,
        tune,
      );
      // x as quantize_q8 rows (`xCodes`): block parities of a slice, rows past R
      const c8 = { ...x8, xCodes: true };
      await checkMatmul(rng, spec(q4, 70, 320, 512, { ...c8, epilogue: silu }), 150, tune);
      await checkMatmul(rng, spec(q4s32, 45, 192, 512, { ...c8, bias: "f32" }), 37, tune);
      // K split across workgroups: ranges the slice does not divide, an empty last range
      // (6 blocks in 4 ranges of 2), a part block at K's end, on x and on quantize_q8 rows
      await checkMatmul(rng, spec(q4, 130, 448, 512, { ...c8, kSplit: 3 }), 70, tune);
      await checkMatmul(rng, spec(q4, 70, 192, 512, { ...c8, kSplit: 4 }), 37, tune);
      await checkMatmul(rng, spec(q4g64, 40, 320, 512, { ...x8, kSplit: 2 }), 33, tune);
      await checkMatmul(rng, spec(q4, 45, 100, 512, { ...x8, kSplit: 2 }), 129, tune);
      // ranges by the dispatch's rows (kSplitRows 100): 4 at 20 rows, 3 at 33 (a count the
      // slot stride is not a power of), 1 at 100 and 150 (the other partials not written)
      const byRows = spec(q4, 70, 448, 512, { ...c8, kSplit: 4, kSplitRows: 100 });
      for (const R of [20, 33, 100, 150]) await checkMatmul(rng, byRows, R, tune);
    }
    // matmulKernel() takes it for xq8 beyond 32 rows, not at 32 or with K % 4 != 0
    const pick = (s: MatmulSpec) =>
      wgslKernel(s, Q8_WEBGPU).code === matmulTiledQ8(s, Q8_WEBGPU).code;
    if (!pick(spec(q4, 4096, 4096, 512, x8)) || pick(spec(q4, 4096, 4096, 32, x8))) {
      throw new Error("expected the q8 tiled shape for xq8 at 512 rows, not at 32");
    }
    assertThrows(() => matmulTiledQ8(spec(q4, 64, 70, 512, x8), Q8_WEBGPU), RangeError);
    assertThrows(() => matmulTiledQ8(spec(q4, 64, 64, 512, x8), GENERIC_WEBGPU), RangeError);
    await checkMatmul(rng, spec(q4, 34, 70, 64, { ...x8, epilogue: "silu_mul" }), 40);
  },
});

Deno.test("tiledQ8Defaults() takes 64-row tiles where 128-row tiles leave units idle", () => {
  // 132 units (H100): 64-row tiles where the 128 x 128 grid at min(maxRows, 512) rows has
  // fewer than 99 tiles (or ends on a thin last wave), else 128
  const h100 = {
    ...Q8_WEBGPU,
    limits: { ...Q8_WEBGPU.limits, maxComputeWorkgroupStorageSize: 49152 },
    computeUnits: 132,
  };
  const c8 = { xq8: true, xCodes: true };
  const rows = (N: number, K: number, maxRows: number, epilogue: "none" | "silu_mul" = "none") =>
    tiledQ8Defaults(spec(q4, N, K, maxRows, { ...c8, epilogue }), h100).rows;
  const cases: [string, number, number][] = [
    ["8B prefill o_proj (128 tiles)", rows(4096, 4096, 8192), 128],
    ["8B prefill qkv (192 tiles: 1.45 waves)", rows(6144, 4096, 8192), 64],
    ["8B prefill gate_up (448 tiles)", rows(28672, 4096, 8192, "silu_mul"), 128],
    ["8B 128-row qkv (48 tiles)", rows(6144, 4096, 128), 64],
    ["8B 128-row down (32 tiles)", rows(4096, 14336, 128), 64],
    ["8B 128-row gate_up (224 tiles)", rows(28672, 4096, 128, "silu_mul"), 128],
    ["0.5B prefill o_proj (28 tiles)", rows(896, 896, 8192), 64],
  ];
  for (const [what, got, want] of cases) {
    if (got !== want) throw new Error(`${what}: ${got}-row tiles, expected ${want}`);
  }
  // units unknown: 128 rows
  if (tiledQ8Defaults(spec(q4, 896, 896, 8192, c8), Q8_WEBGPU).rows !== 128) {
    throw new Error("compute units unknown: expected 128-row tiles");
  }
});

Deno.test(
  "the unrolled q8 kernels keep their packed dot products out of main (naga: time quadratic)",
  () => {
    // naga's module creation takes time quadratic in a function's expressions. The 8B's
    // gate_up: prefill's q8 tiles and batched decode's few-rows kernel on codes.
    // Written out in main they took naga ~300 and ~80 ms each on the H100 host (95% of
    // pipeline creation with the driver's cache warm); as calls, ~40 and ~25
    const c8 = { xq8: true, xCodes: true, epilogue: "silu_mul" as const };
    for (
      const [what, code] of [
        ["q8 tiles", matmulTiledQ8(spec(q4, 28672, 4096, 512, c8), Q8_WEBGPU).code],
        ["few-rows", matmulRows(spec(q4, 28672, 4096, 32, c8), Q8_WEBGPU).code],
      ]
    ) {
      const main = code.slice(code.indexOf("fn main("));
      const inMain = main.split("dot4I8Packed").length - 1;
      const all = code.split("dot4I8Packed").length - 1;
      if (inMain !== 0 || all > 8) {
        throw new Error(`${what}: ${inMain} packed dot products in main, ${all} in all`);
      }
    }
  },
);

Deno.test({
  name: "matmulGemv() reduces in passes within the 16 KiB default workgroup storage limit",
  ignore,
  fn: async () => {
    const rng = new Rng(12);
    const gemv16k = { threadsPerCol: 32, colsPerThread: 4, rowsPerGroup: 8, unroll: 2 };
    await checkMatmul(rng, spec(q4, 70, 128, 16, { epilogue: "silu_mul" }), 13, {
      gemv16k: { ...gemv16k, codeWords: 1 },
    });
    await checkMatmul(rng, spec(q4, 45, 96, 16, { bias: "f32", epilogue: "add" }), 16, {
      gemv16k: { ...gemv16k, codeWords: 2 },
    });
  },
});

Deno.test({
  name:
    "gemvDefaults() keeps accumulators within the register budget and tiles 4+ columns at R = 1",
  fn: () => {
    for (const maxRows of [1, 4, 16, 32]) {
      for (
        const s of [
          spec(q4, 4096, 4096, maxRows),
          spec(q4, 28672, 4096, maxRows, { epilogue: "silu_mul" }),
        ]
      ) {
        const t = gemvDefaults(s);
        const nw = s.epilogue === "silu_mul" ? 2 : 1;
        const accs = t.rowsPerGroup * t.colsPerThread * nw;
        // 32 at one row; 64 with several rows on large weights (gate_up's 66 MB)
        const budget = maxRows > 1 && s.epilogue === "silu_mul" ? 64 : 32;
        if (!(accs <= budget || t.colsPerThread === 1)) {
          throw new Error(`${JSON.stringify(t)}: ${accs} accumulators`);
        }
        if (t.rowsPerGroup > maxRows) {
          throw new Error(`${JSON.stringify(t)}: more rows than ${maxRows}`);
        }
        if (maxRows === 1 && t.colsPerThread < 4) {
          throw new Error(`${JSON.stringify(t)}: few columns at R = 1`);
        }
        if (256 % t.threadsPerCol !== 0) {
          throw new Error(`${JSON.stringify(t)}: threads per column`);
        }
      }
    }
    // small shapes (1B: K = 2048) keep the 32-accumulator budget at several rows
    const small = gemvDefaults(spec(q4, 2048, 2048, 32));
    if (small.rowsPerGroup * small.colsPerThread > 32) {
      throw new Error(`${JSON.stringify(small)}: over 32 accumulators on a small shape`);
    }
  },
});

Deno.test({
  name: "matmulTiled() is correct within the 16 KiB default workgroup storage limit",
  ignore,
  fn: async () => {
    const rng = new Rng(10);
    await checkMatmul(rng, spec(q4, 70, 96, 256, { epilogue: "silu_mul" }), 130, "tiled16k");
    await checkMatmul(
      rng,
      spec(q4, 130, 64, 256, { bias: "f32", epilogue: "add" }),
      20,
      "tiled16k",
    );
  },
});

Deno.test({
  name:
    "matmulTiled() is correct under every tuning (tile shapes, K slices, buffers, staging paths)",
  ignore,
  fn: async () => {
    const rng = new Rng(13);
    const q3: WeightFormat = { kind: "group", bits: 3, groupSize: 40, scaleDtype: "f16" };
    const f16: WeightFormat = { kind: "dense", dtype: "f16" };
    const f32: WeightFormat = { kind: "dense", dtype: "f32" };
    const tunings: TiledTuning[] = [
      { rows: 128, wrows: 128, tm: 8, tn: 8, bk: 16, double: true, unroll: 16 },
      { rows: 128, wrows: 128, tm: 8, tn: 8, bk: 16, double: false, unroll: 4, vectorAcc: false },
      { rows: 128, wrows: 128, tm: 8, tn: 8, bk: 8, double: true, unroll: 8 },
      { rows: 128, wrows: 128, tm: 8, tn: 8, bk: 32, double: false, unroll: 8 },
      { rows: 64, wrows: 128, tm: 4, tn: 8, bk: 16, double: true, unroll: 16 },
      { rows: 128, wrows: 64, tm: 8, tn: 8, bk: 16, double: true, unroll: 2 },
      { rows: 64, wrows: 64, tm: 4, tn: 4, bk: 12, double: false, unroll: 3 },
      { rows: 32, wrows: 64, tm: 8, tn: 8, bk: 4, double: true, unroll: 4 },
      { rows: 128, wrows: 128, tm: 4, tn: 8, bk: 16, double: false, unroll: 16 },
      { rows: 64, wrows: 96, tm: 8, tn: 8, bk: 16, double: false, unroll: 16, prefetch: false },
      { rows: 64, wrows: 128, tm: 8, tn: 8, bk: 16, double: false, unroll: 16, prefetch: false },
      { rows: 128, wrows: 128, tm: 8, tn: 8, bk: 8, double: true, unroll: 8, prefetch: false },
      { rows: 128, wrows: 256, tm: 8, tn: 8, bk: 8, double: false, unroll: 8 },
    ];
    const { maxComputeWorkgroupStorageSize: bytes, maxComputeInvocationsPerWorkgroup: threads } =
      device!.target.limits;
    const fits = (t: TiledTuning) =>
      tiledSharedBytes(t) <= bytes && (t.rows / t.tm) * (t.wrows / t.tn) <= threads;
    for (const tiled of tunings.filter(fits)) {
      const t = { tiled };
      const silu = tiled.tn === 8 ? "silu_mul" : "none"; // silu_mul needs 8 weight rows a thread
      // N, K and R ragged against every tile; every staging path (vec4/vec2/word codes,
      // f16 in vec4/word/element steps, f32 and q3 element by element, x by vec4 and scalar).
      await checkMatmul(rng, spec(q4, 140, 160, 256, { epilogue: silu }), 133, t);
      await checkMatmul(rng, spec(q4, 150, 128, 256, { bias: "f16", epilogue: "add" }), 70, t);
      await checkMatmul(rng, spec(q4s32, 70, 96, 256), 129, t);
      await checkMatmul(rng, spec(q3, 67, 120, 256, { bias: "f32" }), 35, t);
      await checkMatmul(rng, spec(f16, 132, 72, 256, { bias: "f32", epilogue: silu }), 66, t);
      await checkMatmul(rng, spec(f16, 45, 36, 256), 17, t);
      await checkMatmul(rng, spec(f16, 33, 23, 256, { epilogue: "add" }), 9, t);
      await checkMatmul(rng, spec(f32, 29, 37, 256, { bias: "f16" }), 130, t);
      await checkMatmul(
        rng,
        spec(q4, 300, 64, 256, { rowStart: 70, rows: 150, bias: "f32", epilogue: "add" }),
        65,
        t,
      );
    }
  },
});

Deno.test({
  name:
    "tiledDefaults() fits the WebGPU default limits and takes wider K slices where storage allows",
  fn: () => {
    const s = spec(q4, 4096, 4096, 512);
    const small = tiledDefaults(s, GENERIC_WEBGPU);
    if (tiledSharedBytes(small) > GENERIC_WEBGPU.limits.maxComputeWorkgroupStorageSize) {
      throw new Error(`${JSON.stringify(small)} exceeds the default workgroup storage`);
    }
    if ((small.rows / small.tm) * (small.wrows / small.tn) > 256) {
      throw new Error(`${JSON.stringify(small)} exceeds 256 invocations`);
    }
    const big = {
      ...GENERIC_WEBGPU,
      limits: { ...GENERIC_WEBGPU.limits, maxComputeWorkgroupStorageSize: 49152 },
    };
    if (tiledDefaults(s, big).bk <= small.bk) {
      throw new Error("48 KiB of storage: expected wider slices");
    }
    matmulTiled(s, GENERIC_WEBGPU);
    // with 132 compute units: 64-row tiles where 128 x 128 would end on a wave under half full
    const h100 = { ...big, computeUnits: 132 };
    const rows = (N: number, K: number, epilogue: "none" | "silu_mul" = "none") =>
      tiledDefaults(spec(q4, N, K, 512, { epilogue }), h100).rows;
    if (rows(6144, 4096) !== 64) throw new Error("qkv (192 tiles, 1.45 waves): expected 64 rows");
    if (rows(4096, 4096) !== 128) throw new Error("o_proj (128 tiles, 1 wave): expected 128 rows");
    if (rows(28672, 4096, "silu_mul") !== 128) throw new Error("gate_up (6.8 waves): 128 rows");
    if (tiledDefaults(spec(q4, 6144, 4096, 512), big).rows !== 128) {
      throw new Error("compute units unknown: expected 128 rows");
    }
  },
});

Deno.test("matmulKernel: outCodes only where the few-rows kernel runs, else a RangeError naming it", () => {
  const codes = { xq8: true, xCodes: true, outCodes: true, epilogue: "silu_mul" as const };
  // 8-32 rows of x as codes: the few-rows kernel writes them
  const rows = wgslKernel(matmulSpec(q4, 256, 128, 16, codes), Q8_WEBGPU);
  ok(rows.code.includes("var<workgroup> hq:"), "the few-rows kernel stages its outputs");
  // decode (the q8 GEMV) and prefill (the q8 tiles) do not
  for (const [maxRows, more] of [[1, { xCodes: false }], [128, {}]] as const) {
    assertThrows(
      () => wgslKernel(matmulSpec(q4, 256, 128, maxRows, { ...codes, ...more }), Q8_WEBGPU),
      RangeError,
      "only the few-rows kernel",
    );
  }
});
