import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import { makeModel } from "./make_model.ts";
import { VARIANTS } from "./variants.ts";

// An independent safetensors reader: u64 LE header length, JSON header, then the data.
async function readSt(
  path: string,
): Promise<Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>> {
  const buf = await Deno.readFile(path);
  const n = Number(new DataView(buf.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n)));
  assertEquals(header.__metadata__, { format: "pt" });
  const out = new Map();
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype, shape, data_offsets: [a, b] } = info as {
      dtype: string;
      shape: number[];
      data_offsets: [number, number];
    };
    out.set(name, { dtype, shape, bytes: buf.subarray(8 + n + a, 8 + n + b) });
  }
  return out;
}

function f32(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.slice().buffer);
}

// Expected HF names and shapes, written out from the HF Llama/Qwen2 module layout.
function expectedShapes(v: (typeof VARIANTS)[keyof typeof VARIANTS]): Map<string, number[]> {
  const m = new Map<string, number[]>([["model.embed_tokens.weight", [v.vocabSize, v.hiddenSize]]]);
  const q = v.numHeads * v.headDim, kv = v.numKvHeads * v.headDim;
  for (let i = 0; i < v.numLayers; i++) {
    const p = `model.layers.${i}.`;
    m.set(p + "input_layernorm.weight", [v.hiddenSize]);
    m.set(p + "post_attention_layernorm.weight", [v.hiddenSize]);
    m.set(p + "self_attn.q_proj.weight", [q, v.hiddenSize]);
    m.set(p + "self_attn.k_proj.weight", [kv, v.hiddenSize]);
    m.set(p + "self_attn.v_proj.weight", [kv, v.hiddenSize]);
    m.set(p + "self_attn.o_proj.weight", [v.hiddenSize, q]);
    if (v.qkvBias) {
      m.set(p + "self_attn.q_proj.bias", [q]);
      m.set(p + "self_attn.k_proj.bias", [kv]);
      m.set(p + "self_attn.v_proj.bias", [kv]);
    }
    m.set(p + "mlp.gate_proj.weight", [v.intermediateSize, v.hiddenSize]);
    m.set(p + "mlp.up_proj.weight", [v.intermediateSize, v.hiddenSize]);
    m.set(p + "mlp.down_proj.weight", [v.hiddenSize, v.intermediateSize]);
  }
  m.set("model.norm.weight", [v.hiddenSize]);
  if (!v.tieWordEmbeddings) m.set("lm_head.weight", [v.vocabSize, v.hiddenSize]);
  return m;
}

const golden = ["llama2", "llama3", "llama3.2", "mqa", "mistral", "qwen2"] as const;

Deno.test("makeModel() writes HF tensor names, shapes and config fields for each variant", async () => {
  for (const name of golden) {
    const dir = await Deno.makeTempDir();
    await makeModel({ out: dir, variant: name, seed: 3 });
    const v = VARIANTS[name];
    const st = await readSt(`${dir}/model.safetensors`);
    const got = new Map([...st].map(([k, t]) => [k, t.shape]));
    assertEquals(new Map([...got].sort()), new Map([...expectedShapes(v)].sort()), name);
    for (const t of st.values()) assertEquals(t.dtype, "F32");
    const cfg = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assertEquals(cfg.architectures, [v.architecture]);
    assertEquals(cfg.model_type, v.modelType);
    assertEquals(
      [cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.num_attention_heads],
      [64, 160, 2, 4],
    );
    assertEquals([cfg.num_key_value_heads, cfg.head_dim, cfg.vocab_size], [v.numKvHeads, 16, 512]);
    assertEquals(cfg.tie_word_embeddings, v.tieWordEmbeddings);
    assertEquals(cfg.rope_scaling, v.ropeScaling);
    assertEquals(cfg.torch_dtype, "float32");
    if (name === "mistral") assertEquals(cfg.sliding_window, 16);
    if (name === "qwen2") assertEquals(cfg.use_sliding_window, false);
    const gen = JSON.parse(await Deno.readTextFile(`${dir}/generation_config.json`));
    assertEquals([gen.bos_token_id, gen.eos_token_id], [1, 2]);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("makeModel() is deterministic by seed and draws the documented init", async () => {
  const [a, b, c] = [await Deno.makeTempDir(), await Deno.makeTempDir(), await Deno.makeTempDir()];
  await makeModel({ out: a, variant: "llama2", seed: 9 });
  await makeModel({ out: b, variant: "llama2", seed: 9 });
  await makeModel({ out: c, variant: "llama2", seed: 10 });
  const [fa, fb, fc] = await Promise.all(
    [a, b, c].map((d) => Deno.readFile(`${d}/model.safetensors`)),
  );
  assertEquals(fa, fb);
  assert(!fa.every((x, i) => x === fc[i]), "different seeds gave the same weights");
  const st = await readSt(`${a}/model.safetensors`);
  const stats = (name: string) => {
    const x = f32(st.get(name)!.bytes);
    const mean = x.reduce((s, v) => s + v, 0) / x.length;
    return [mean, Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length)];
  };
  const near = (got: number[], want: number[], tol: number, what: string) =>
    assert(got.every((g, i) => Math.abs(g - want[i]) < tol), `${what}: ${got} vs ${want}`);
  near(stats("model.embed_tokens.weight"), [0, 1], 0.03, "embed"); // 32768 draws
  near(stats("model.layers.0.mlp.up_proj.weight"), [0, 1 / 8], 0.005, "up_proj"); // fan_in 64
  near(stats("model.layers.1.mlp.down_proj.weight"), [0, 1 / Math.sqrt(160)], 0.005, "down_proj");
  near(stats("model.norm.weight"), [1, 0.2], 0.08, "final norm"); // 64 draws
  for (const d of [a, b, c]) await Deno.remove(d, { recursive: true });
});

Deno.test("makeModel() stores f16/bf16 as the rounded f32 weights and shards without change", async () => {
  const dirs = await Promise.all([0, 1, 2, 3].map(() => Deno.makeTempDir()));
  await makeModel({ out: dirs[0], variant: "qwen2", seed: 4, dtype: "f32" });
  await makeModel({ out: dirs[1], variant: "qwen2", seed: 4, dtype: "bf16" });
  await makeModel({ out: dirs[2], variant: "qwen2", seed: 4, dtype: "f16" });
  await makeModel({ out: dirs[3], variant: "qwen2", seed: 4, dtype: "f32", shards: 3 });
  const ref = await readSt(`${dirs[0]}/model.safetensors`);
  const bf = await readSt(`${dirs[1]}/model.safetensors`);
  const hf = await readSt(`${dirs[2]}/model.safetensors`);
  for (const [name, t] of ref) {
    const x = f32(t.bytes);
    const bits = new Uint16Array(bf.get(name)!.bytes.slice().buffer);
    const half = new Float16Array(hf.get(name)!.bytes.slice().buffer);
    assertEquals([bf.get(name)!.dtype, hf.get(name)!.dtype], ["BF16", "F16"]);
    for (let i = 0; i < x.length; i++) {
      const b = new Float32Array(new Uint32Array([bits[i] << 16]).buffer)[0];
      assert(Math.abs(b - x[i]) <= Math.abs(x[i]) * 2 ** -8, `${name}[${i}] bf16 ${b} vs ${x[i]}`);
      assert(Math.abs(half[i] - x[i]) <= Math.abs(x[i]) * 2 ** -11 + 2 ** -25, `${name}[${i}] f16`);
    }
  }
  const cfg16 = JSON.parse(await Deno.readTextFile(`${dirs[1]}/config.json`));
  assertEquals(cfg16.torch_dtype, "bfloat16");
  const index = JSON.parse(await Deno.readTextFile(`${dirs[3]}/model.safetensors.index.json`));
  const files = [...new Set(Object.values(index.weight_map) as string[])].sort();
  assertEquals(files, [1, 2, 3].map((k) => `model-0000${k}-of-00003.safetensors`));
  const merged = new Map();
  for (const f of files) {
    for (const [name, t] of await readSt(`${dirs[3]}/${f}`)) {
      assertEquals(index.weight_map[name], f);
      merged.set(name, t);
    }
  }
  assertEquals(merged, ref);
  assertEquals(
    index.metadata.total_size,
    [...ref.values()].reduce((s, t) => s + t.bytes.length, 0),
  );
  // Re-running into the same dir with one shard removes the old shards and index.
  await makeModel({ out: dirs[3], variant: "qwen2", seed: 4, dtype: "f32" });
  const left = [];
  for await (const e of Deno.readDir(dirs[3])) left.push(e.name);
  assertEquals(left.sort(), ["config.json", "generation_config.json", "model.safetensors"]);
  for (const d of dirs) await Deno.remove(d, { recursive: true });
});

Deno.test("makeModel() copies the real Llama 3 tokenizer into the example model", async () => {
  const dir = await Deno.makeTempDir();
  await makeModel({ out: dir });
  const cfg = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  assertEquals([cfg.vocab_size, cfg.bos_token_id, cfg.torch_dtype], [128256, 128000, "bfloat16"]);
  const tok = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer.json`));
  // The BPE vocabulary plus the 256 special tokens fill the 128256 ids.
  assertEquals(Object.keys(tok.model.vocab).length + tok.added_tokens.length, 128256);
  const special = Object.fromEntries(
    tok.added_tokens.map((t: { id: number; content: string }) => [t.content, t.id]),
  );
  assertEquals([special["<|begin_of_text|>"], special["<|eot_id|>"]], [128000, 128009]);
  const tc = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer_config.json`));
  assert(tc.chat_template.includes("<|start_header_id|>"), "chat template missing");
  const st = await readSt(`${dir}/model.safetensors`);
  assertEquals(st.get("model.embed_tokens.weight")!.shape, [128256, 64]);
  assert(!st.has("lm_head.weight"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("makeModel() rejects an unknown variant, a bad dtype and too many shards", async () => {
  const dir = await Deno.makeTempDir();
  await assert.rejects(() => makeModel({ out: dir, variant: "gpt2" }), RangeError);
  await assert.rejects(
    () => makeModel({ out: dir, variant: "llama2", dtype: "f8" as unknown as "f32" }),
    RangeError,
  );
  await assert.rejects(() => makeModel({ out: dir, variant: "llama2", shards: 100 }), RangeError);
  await Deno.remove(dir, { recursive: true });
});
