import { ok, strictEqual } from "node:assert/strict";
import {
  fillKind,
  fillSynthetic,
  seedOf,
  syntheticWeights,
  syntheticWord,
} from "./synthetic_weights.ts";
import { placeholderOf } from "./synthetic_weights.ts";

const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
const gpu = adapter
  ? await adapter.requestDevice({
    requiredFeatures: adapter.features.has("shader-f16") ? ["shader-f16"] : [],
  })
  : null;

function h2f(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  return e === 0 ? s * m * 2 ** -24 : e === 31 ? NaN : s * (1 + m / 1024) * 2 ** (e - 15);
}

async function fillAndRead(
  words: number,
  p: Parameters<typeof fillSynthetic>[3],
): Promise<Uint32Array> {
  const buf = gpu!.createBuffer({
    size: words * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const rb = gpu!.createBuffer({
    size: words * 4,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  fillSynthetic(gpu!, buf, words, p);
  const enc = gpu!.createCommandEncoder();
  enc.copyBufferToBuffer(buf, 0, rb, 0, words * 4);
  gpu!.queue.submit([enc.finish()]);
  await rb.mapAsync(GPUMapMode.READ);
  const out = new Uint32Array(rb.getMappedRange().slice(0));
  buf.destroy();
  rb.destroy();
  return out;
}

Deno.test("fillKind() picks the fill by dtype and name", () => {
  strictEqual(fillKind("model.layers.0.mlp.down_proj.q_weight", "uint32"), "bits");
  strictEqual(fillKind("model.layers.0.mlp.down_proj.q_scale", "float16"), "scale");
  strictEqual(fillKind("model.layers.0.input_layernorm.weight", "float16"), "norm");
  strictEqual(fillKind("model.layers.0.self_attn.qkv_proj.bias", "float16"), "small");
  strictEqual(fillKind("model.norm.weight", "float32"), "f32norm");
});

Deno.test("syntheticWeights() placeholders carry the param and the first word of a row slice", async () => {
  const w = syntheticWeights();
  const data = await w.tensor("a.q_scale", {
    name: "a.q_scale",
    shape: [6, 4],
    dtype: "float16",
    preprocs: [],
    pipeline_stages: [0],
  });
  strictEqual(data.byteLength, 48);
  const p = placeholderOf(data.subarray(16, 32))!;
  strictEqual(p.kind, "scale");
  strictEqual(p.seed, seedOf("a.q_scale"));
  strictEqual(p.firstWord, 4);
  strictEqual(placeholderOf(new Uint8Array(8)), null);
});

Deno.test({
  name: "fillSynthetic() writes the words syntheticWord() computes on the CPU",
  ignore: !gpu,
  fn: async () => {
    const words = 5000, firstWord = 123;
    const bits = await fillAndRead(words, { kind: "bits", seed: 42, firstWord });
    for (let i = 0; i < words; i++) {
      strictEqual(bits[i], syntheticWord("bits", 42, firstWord + i)[0]);
    }
    for (const kind of ["scale", "norm", "small"] as const) {
      const got = await fillAndRead(words, { kind, seed: 7, firstWord });
      for (let i = 0; i < words; i++) {
        const want = syntheticWord(kind, 7, firstWord + i);
        const halves = [h2f(got[i] & 0xffff), h2f(got[i] >>> 16)];
        // f16 rounding: relative error <= 2^-11
        halves.forEach((v, j) =>
          ok(
            Math.abs(v - want[j]) <= Math.abs(want[j]) * 2 ** -11 + 1e-7,
            `${kind} word ${i}.${j}: ${v} vs ${want[j]}`,
          )
        );
      }
    }
    const f = new Float32Array(
      (await fillAndRead(words, { kind: "f32norm", seed: 9, firstWord: 0 })).buffer,
    );
    for (let i = 0; i < words; i++) ok(Math.abs(f[i] - syntheticWord("f32norm", 9, i)[0]) <= 1e-6);
  },
});

Deno.test({
  name: "synthetic weights tests release the GPU device",
  ignore: !gpu,
  fn: () => gpu!.destroy(),
});
