import { deepStrictEqual as assertEquals } from "node:assert/strict";
import type { LibraryPlan } from "../../compiler/codegen/plan.ts";
import type { KernelSpec } from "../../compiler/codegen/contract.ts";
import { dispatchesPerLayer, kernelLabel, stepWeightBytes } from "./plan_figures.ts";

const q4 = { kind: "group", bits: 4, groupSize: 32, scaleDtype: "f16" } as const;
const embed: KernelSpec = {
  op: "embed",
  vocab: 100,
  hidden: 64,
  rowStart: 0,
  rows: 100,
  weight: q4,
};
const mm: KernelSpec = {
  op: "matmul",
  N: 100,
  K: 64,
  rowStart: 0,
  rows: 100,
  weight: q4,
  bias: null,
  epilogue: "none",
  maxRows: 1,
};
const norm: KernelSpec = { op: "rms_norm", hidden: 64, eps: 1e-5, weightDtype: "f16" };
const params = [
  { name: "embed.q_weight", shape: [100, 8], dtype: "uint32", preprocs: [], pipeline_stages: [0] },
  { name: "embed.q_scale", shape: [100, 2], dtype: "float16", preprocs: [], pipeline_stages: [0] },
  { name: "layers.0.norm", shape: [64], dtype: "float16", preprocs: [], pipeline_stages: [0] },
  { name: "lm.q_weight", shape: [100, 8], dtype: "uint32", preprocs: [], pipeline_stages: [0] },
  { name: "lm.q_scale", shape: [100, 2], dtype: "float16", preprocs: [], pipeline_stages: [0] },
];
const plan = (lmWeight: string): LibraryPlan => ({
  kernels: [{ spec: embed }, { spec: norm }, { spec: mm }],
  functions: {
    decode: {
      bounds: { n: 1, s: 1, m: 1 },
      inputs: [],
      outputs: [],
      slots: [],
      steps: [
        {
          k: 0,
          rows: "n",
          b: [{ slot: 0 }, { param: "embed.q_weight" }, { param: "embed.q_scale" }, { slot: 1 }],
        },
        { k: 1, rows: "n", b: [{ slot: 1 }, { param: "layers.0.norm" }, { slot: 2 }] },
        { k: 1, rows: "n", b: [{ slot: 1 }, { kv: 0 }, { slot: 2 }] },
        { k: 1, rows: "n", b: [{ slot: 2 }, { slot: 3 }] }, // within layer 0 (a merge)
        { k: 1, rows: "n", b: [{ slot: 1 }, { param: "layers.0.norm" }, { slot: 2 }] },
        {
          k: 2,
          rows: "n",
          b: [{ slot: 2 }, { param: `${lmWeight}.q_weight` }, { param: `${lmWeight}.q_scale` }, {
            slot: 3,
          }],
        },
      ],
    },
  },
});

Deno.test("stepWeightBytes() counts embed tables per row and other params whole", () => {
  // untied: embed 3 rows of (32 + 4) bytes; norm 128; lm head 100 * 36
  assertEquals(stepWeightBytes(plan("lm"), { params }, "decode", 3), 3 * 36 + 128 + 3600);
  // tied: the table the lm head reads whole is counted once, whole
  assertEquals(stepWeightBytes(plan("embed"), { params }, "decode", 3), 128 + 3600);
});

Deno.test("dispatchesPerLayer() groups steps by layer params and KV (and unbound steps inside a layer), the rest is constant", () => {
  assertEquals(dispatchesPerLayer(plan("lm"), "decode"), {
    total: 6,
    layers: 1,
    maxPerLayer: 4,
    constant: 2,
  });
});

Deno.test("kernelLabel() names matmuls by shape and epilogue", () => {
  assertEquals(kernelLabel(mm), "matmul 100x64");
  assertEquals(kernelLabel({ ...mm, epilogue: "add", maxRows: 128 }), "matmul 100x64 +add tiled");
  assertEquals(kernelLabel(norm), "rms_norm");
});
