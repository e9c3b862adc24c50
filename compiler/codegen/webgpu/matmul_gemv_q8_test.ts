import type { KernelSpec, WeightFormat } from "../contract.ts";
import { device, expectClose, matmulInputs, matmulSpec, Rng, runKernel } from "./test_helpers.ts";
import { reference } from "../../../tests/conformance/reference.ts";
import { TOL } from "../../../tests/conformance/case.ts";
import { matmulGemvQ8, q8Defaults, type Q8Tuning } from "./matmul_gemv_q8.ts";
import { bindings, PACKED_DOT } from "../contract.ts";
import { GENERIC_WEBGPU } from "../../target.ts";
import { matmulKernel } from "../cpu/matmul.ts";
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { assertThrows } from "../../../tests/assert.ts";
import { attentionMergeKernel } from "./attention_decode.ts";
import { matmulKernel as gpuMatmul } from "./matmul.ts";
import { attentionMergeKernel as cpuMerge } from "../cpu/attention_decode.ts";

type MatmulSpec = Extract<KernelSpec, { op: "matmul" }>;
const target = device && device.target.features.includes(PACKED_DOT) ? device.target : null;
const ignore = !target;

/** Runs one case; compares with float64 on the q8-rounded x (tight) and on the exact x (loose:
 * the activation quantisation's own error, at most half a code step per element). */
async function check(
  rng: Rng,
  spec: MatmulSpec,
  R: number,
  tune?: Q8Tuning,
  small = false,
) {
  const inputs = matmulInputs(rng, spec, R);
  const t = small
    ? { ...target!, limits: { ...target!.limits, maxComputeWorkgroupStorageSize: 16384 } }
    : target!;
  const outs = await runKernel(spec, R, inputs, matmulGemvQ8(spec, t, tune));
  const got = new Float32Array(outs.at(-1)!);
  const what = `${JSON.stringify(spec)} R=${R} ${JSON.stringify(tune ?? q8Defaults(spec, t))}`;
  // a code that rounds the other way at a tie moves one output by |w| * d: ~1e-3 of max |ref|
  const ref = (s: MatmulSpec) => reference(s, inputs, R).out as Float64Array;
  expectClose(got, ref({ ...spec, xq8: true }), TOL.q8, `${what} (q8 x)`);
  expectClose(got, ref({ ...spec, xq8: false }), 3e-2, `${what} (exact x)`);
}

const Q4: WeightFormat = { kind: "group", bits: 4, groupSize: 32, scaleDtype: "f16" };
const Q4S32: WeightFormat = { kind: "group", bits: 4, groupSize: 32, scaleDtype: "f32" };
const Q4G64: WeightFormat = { kind: "group", bits: 4, groupSize: 64, scaleDtype: "f16" };

const spec = matmulSpec;
/** A persistent tuning: 3 workgroups a row block walk the column blocks (2 columns a lane). */
const WALK: Q8Tuning = {
  threadsPerCol: 8,
  colsPerThread: 2,
  rowsPerGroup: 1,
  loadCols: 1,
  persistent: 3,
};

Deno.test({
  name: "matmulGemvQ8() matches float64 on q8-rounded x: ragged K, units past K, every epilogue",
  ignore,
  fn: async () => {
    const rng = new Rng(21);
    for (const R of [1, 3]) {
      await check(rng, spec(Q4, 37, 256, R), R);
      await check(rng, spec(Q4, 40, 100, R, { bias: "f16", epilogue: "add" }), R); // K % 32 != 0
      await check(rng, spec(Q4, 50, 70, R, { epilogue: "silu_mul" }), R); // K % 4 != 0
      await check(rng, spec(Q4S32, 21, 96, R, { bias: "f32" }), R);
      await check(rng, spec(Q4G64, 19, 192, R), R);
      await check(rng, spec(Q4, 100, 64, R, { rowStart: 30, rows: 45, epilogue: "add" }), R);
    }
  },
});

Deno.test({
  name: "matmulGemvQ8() is correct under other tunings, several units a thread, 16 KiB storage",
  ignore,
  fn: async () => {
    const rng = new Rng(22);
    const tunes: Q8Tuning[] = [
      { threadsPerCol: 16, colsPerThread: 4, rowsPerGroup: 2, loadCols: 3 },
      { threadsPerCol: 8, colsPerThread: 2, rowsPerGroup: 4, loadCols: 2 },
      { threadsPerCol: 32, colsPerThread: 8, rowsPerGroup: 1, loadCols: 8 },
      // persistent: 3 workgroups a row block walk every column block
      { threadsPerCol: 16, colsPerThread: 4, rowsPerGroup: 2, loadCols: 2, persistent: 3 },
      { threadsPerCol: 64, colsPerThread: 2, rowsPerGroup: 1, loadCols: 1, persistent: 1 },
    ];
    for (const tune of tunes) {
      await check(rng, spec(Q4, 40, 320, 5, { epilogue: "silu_mul" }), 5, tune);
      await check(rng, spec(Q4, 33, 200, 3, { bias: "f16", epilogue: "add" }), 3, tune);
    }
    // persistent: 5 column blocks walked by 3 workgroups a row block (two rows blocks)
    await check(rng, spec(Q4, 300, 256, 1, { bias: "f32", epilogue: "add" }), 2, WALK);
    await check(rng, spec(Q4, 600, 96, 1, { epilogue: "silu_mul" }), 1, WALK);
    // 330 units on 256 threads: two units a thread, the second partly idle
    await check(rng, spec(Q4, 12, 10560, 1), 1);
    await check(rng, spec(Q4, 70, 128, 4, { epilogue: "silu_mul" }), 4, undefined, true);
  },
});

Deno.test({
  name: "matmulGemvQ8() with a folded norm read and written, persistent or not, matches float64",
  ignore,
  fn: async () => {
    const rng = new Rng(23);
    const tunes: (Q8Tuning | undefined)[] = [
      undefined,
      { threadsPerCol: 16, colsPerThread: 4, rowsPerGroup: 2, loadCols: 2, persistent: 3 },
      { threadsPerCol: 8, colsPerThread: 4, rowsPerGroup: 1, loadCols: 1, persistent: 5 },
      { threadsPerCol: 32, colsPerThread: 2, rowsPerGroup: 4, loadCols: 2 },
    ];
    for (const tune of tunes) {
      for (
        const [s, R] of [
          [
            spec(Q4, 96, 256, 3, { xq8: true, epilogue: "add", normOut: { weightDtype: "f16" } }),
            3,
          ],
          [
            spec(Q4, 100, 160, 1, {
              xq8: true,
              bias: "f32",
              norm: { eps: 1e-5 },
              normOut: { weightDtype: "f32" },
            }),
            1,
          ],
          [spec(Q4, 64, 96, 2, { xq8: true, epilogue: "silu_mul", norm: { eps: 1e-6 } }), 2],
          [
            spec(Q4, 300, 128, 1, {
              xq8: true,
              epilogue: "add",
              norm: { eps: 1e-5 },
              normOut: { weightDtype: "f16" },
            }),
            1,
          ],
        ] as const
      ) {
        const inputs = matmulInputs(rng, s, R);
        const outs = await runKernel(s, R, inputs, matmulGemvQ8(s, target!, tune));
        const ref = reference(s, inputs, R);
        const names = bindings(s).filter((b) => b.access === "read_write").map((b) => b.name);
        const written = outs.slice(outs.length - names.length);
        names.forEach((name, i) =>
          expectClose(
            new Float32Array(written[i]),
            ref[name] as Float64Array,
            TOL.q8,
            `${JSON.stringify(s)} R=${R} ${JSON.stringify(tune ?? "default")}: ${name}`,
          )
        );
      }
    }
  },
});

Deno.test({
  name: "matmulGemvQ8(): x quantised by the workgroup gives the per-thread outputs bit for bit",
  ignore,
  fn: async () => {
    const rng = new Rng(24);
    const cases: [MatmulSpec, number, Q8Tuning | undefined][] = [
      [spec(Q4, 64, 4096, 1), 1, undefined], // 1024 vec4s: 4 a thread
      [spec(Q4, 12, 10560, 1), 2, undefined], // 330 units on 256 threads (idle ones), 2640 vec4s
      [spec(Q4G64, 19, 192, 1, { bias: "f16" }), 1, undefined],
      [spec(Q4, 600, 96, 1, { epilogue: "silu_mul" }), 2, WALK],
      [
        spec(Q4, 96, 256, 1, { xq8: true, epilogue: "add", normOut: { weightDtype: "f16" } }),
        1,
        WALK,
      ],
      [spec(Q4, 64, 96, 1, { xq8: true, epilogue: "silu_mul", norm: { eps: 1e-6 } }), 3, undefined],
    ];
    for (const [s, R, tune] of cases) {
      const base = tune ?? q8Defaults(s, target!);
      const shared = matmulGemvQ8(s, target!, { ...base, sharedX: true });
      const own = matmulGemvQ8(s, target!, { ...base, sharedX: false });
      if (!/var<workgroup> xs/.test(shared.code) || /var<workgroup> xs/.test(own.code)) {
        throw new Error(`${JSON.stringify(s)}: sharedX did not pick the kernel form`);
      }
      const inputs = matmulInputs(rng, s, R);
      const a = await runKernel(s, R, inputs, shared);
      const b = await runKernel(s, R, inputs, own);
      const what = `${JSON.stringify(s)} R=${R} ${JSON.stringify(base)}`;
      const names = bindings(s).filter((x) => x.access === "read_write").map((x) => x.name);
      names.forEach((name, i) => {
        const got = new Float32Array(a[a.length - names.length + i]);
        assertEquals(got, new Float32Array(b[b.length - names.length + i]), `${what}: ${name}`);
        expectClose(
          got,
          reference({ ...s, xq8: true }, inputs, R)[name] as Float64Array,
          TOL.q8,
          `${what}: ${name}`,
        );
      });
    }
  },
});

Deno.test({
  name: "matmulGemvQ8() with unit-major x and outputs: both x forms match float64 and each other",
  ignore,
  fn: async () => {
    const rng = new Rng(25);
    const u = { xq8: true, xUnits: true } as const;
    const cases: [MatmulSpec, number, Q8Tuning | undefined][] = [
      [spec(Q4, 64, 4096, 1, u), 1, undefined], // 4 vec4s a thread
      [spec(Q4, 12, 10560, 1, u), 2, undefined], // idle threads, 10 vec4s a thread
      [spec(Q4G64, 19, 192, 1, { ...u, bias: "f16" }), 1, undefined],
      [spec(Q4, 640, 96, 1, { ...u, epilogue: "silu_mul", outUnits: true }), 2, WALK],
      [spec(Q4, 128, 320, 1, { ...u, epilogue: "silu_mul", outUnits: true }), 1, undefined],
      [
        spec(Q4, 96, 256, 1, {
          ...u,
          epilogue: "add",
          norm: { eps: 1e-5 },
          normOut: { weightDtype: "f16" },
          outUnits: true,
        }),
        1,
        WALK,
      ],
      [
        spec(Q4, 256, 2048, 1, {
          xq8: true,
          epilogue: "add",
          normOut: { weightDtype: "f32" },
          outUnits: true,
        }),
        1,
        undefined,
      ],
      [spec(Q4, 64, 96, 1, { ...u, epilogue: "silu_mul", norm: { eps: 1e-6 } }), 3, undefined],
    ];
    for (const [s, R, tune] of cases) {
      const base = tune ?? q8Defaults(s, target!);
      const inputs = matmulInputs(rng, s, R);
      const ref = reference(s, inputs, R);
      const names = bindings(s).filter((x) => x.access === "read_write").map((x) => x.name);
      const runs: Float32Array[][] = [];
      for (const sharedX of [true, false]) {
        const outs = await runKernel(s, R, inputs, matmulGemvQ8(s, target!, { ...base, sharedX }));
        const what = `${JSON.stringify(s)} R=${R} ${JSON.stringify(base)} sharedX ${sharedX}`;
        const written = outs.slice(outs.length - names.length).map((b) => new Float32Array(b));
        names.forEach((name, i) =>
          expectClose(written[i], ref[name] as Float64Array, TOL.q8, `${what}: ${name}`)
        );
        runs.push(written);
      }
      names.forEach((name, i) =>
        assertEquals(runs[0][i], runs[1][i], `${JSON.stringify(s)}: ${name}`)
      );
    }
  },
});

Deno.test("unit-major fields the shapes cannot hold are refused by both backends", () => {
  // no GPU needed: the WebGPU default limits with the packed dot product
  const generic = { ...GENERIC_WEBGPU, features: [PACKED_DOT] };
  const bad: [MatmulSpec, string][] = [
    [spec(Q4, 64, 256, 1, { xUnits: true }), "xUnits needs xq8"], // f32 x
    [spec(Q4, 64, 80, 1, { xq8: true, xUnits: true }), "K a multiple of 32"],
    [spec(Q4, 64, 256, 1, { xq8: true, epilogue: "add", outUnits: true }), "outUnits needs"],
    [spec(Q4, 96, 256, 1, { xq8: true, epilogue: "silu_mul", outUnits: true }), "outUnits needs"],
  ];
  for (const [s, what] of bad) {
    assertThrows(() => matmulKernel(s), RangeError, what);
    assertThrows(() => gpuMatmul(s, generic), RangeError, what);
  }
  const merge = {
    op: "attention_merge" as const,
    heads: 3,
    headDim: 6,
    window: 0,
    splits: 2,
    splitRows: 4,
    splitAlign: 1,
    outUnits: true,
  };
  assertThrows(() => cpuMerge(merge), RangeError, "multiple of 32");
  assertThrows(() => attentionMergeKernel(merge, generic), RangeError, "multiple of 32");
});

Deno.test({
  name: "q8Defaults() fits the register and storage budgets for the Llama-3-8B shapes",
  fn: () => {
    // no GPU needed: the WebGPU default limits with the packed dot product
    const generic = { ...GENERIC_WEBGPU, features: [PACKED_DOT] };
    for (const maxRows of [1, 4, 16, 32]) {
      for (
        const s of [
          spec(Q4, 4096, 4096, maxRows),
          spec(Q4, 28672, 4096, maxRows, { epilogue: "silu_mul" }),
          spec(Q4, 4096, 14336, maxRows, { epilogue: "add" }),
          spec(Q4, 32000, 4096, maxRows),
        ]
      ) {
        const t = q8Defaults(s, generic);
        const accs = t.rowsPerGroup * t.colsPerThread * (s.epilogue === "silu_mul" ? 2 : 1);
        if (!(accs <= 32 && t.rowsPerGroup <= maxRows)) {
          throw new Error(`${JSON.stringify(t)}: ${accs} accumulators, maxRows ${maxRows}`);
        }
        matmulGemvQ8(s, generic, t); // throws if it does not fit the target
      }
    }
  },
});

Deno.test("q8 activations round ties to even (known answers: CPU kernel, reference, WebGPU)", async () => {
  // one 32-element block with max |x| = 127, so d = 1 and the codes are x rounded: ties at
  // 2.5, 3.5, -2.5 and 0.5 go to 2, 4, -2 and 0 (half away from zero would give 3, 4, -3, 1)
  const K = 32;
  const x = new Float32Array(K);
  x.set([127, 2.5, 3.5, -2.5, 0.5, -1.25]);
  const want = [127, 2, 4, -2, 0, -1];
  // weight row n picks element n: code 8 there, 7 (zero) elsewhere, scale 1 (f16 0x3c00)
  const N = want.length;
  const words = new Uint32Array(N * (K / 8)); // [N, K / 8]
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) words[n * (K / 8) + (k >> 3)] |= (k === n ? 8 : 7) << (4 * (k & 7));
  }
  const scales = new Uint16Array(N).fill(0x3c00); // [N, 1]
  const s = { ...spec(Q4, N, K, 1), xq8: true };
  const inputs =
    () => [x.slice().buffer, words.slice().buffer, scales.slice().buffer, new ArrayBuffer(N * 4)];
  const cpu = inputs();
  matmulKernel(s)(cpu, 1);
  assertEquals(Array.from(new Float32Array(cpu[3])), want, "CPU kernel");
  assertEquals(Array.from(reference(s, inputs(), 1).out as Float64Array), want, "reference");
  if (target) {
    for (const sharedX of [true, false]) {
      const tune = { ...q8Defaults(s, target), sharedX };
      const outs = await runKernel(s, 1, inputs(), matmulGemvQ8(s, target, tune));
      assertEquals(
        Array.from(new Float32Array(outs[3])),
        want,
        `WebGPU q8 GEMV, sharedX ${sharedX}`,
      );
    }
  }
});
