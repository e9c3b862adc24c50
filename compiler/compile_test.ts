import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { compile } from "./compile.ts";
import { CompileError, ConfigError, NotImplementedError } from "./errors.ts";
import { assertRejects } from "../tests/assert.ts";

const LLAMA3_8B = new URL("../bench/configs/llama3-8b", import.meta.url).pathname;
const LLAMA2_70B = new URL("../bench/configs/llama2-70b", import.meta.url).pathname;

async function tmp(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "kiln-compile-test-" });
}

Deno.test({
  name:
    "compile() builds a Llama-3-8B q4f16_1 WebGPU library from the config alone, with a verifiable manifest",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await tmp();
    const r = await compile({
      config: LLAMA3_8B,
      quantization: "q4f16_1",
      target: "webgpu",
      output: `${dir}/lib`,
      warn: () => {},
    });
    const files = [...Deno.readDirSync(`${dir}/lib`)].map((e) => e.name).sort();
    assertEquals(files, ["lib.js", "manifest.json", "metadata.json"]);
    const manifest = JSON.parse(await Deno.readTextFile(`${dir}/lib/manifest.json`));
    for (const [name, digest] of Object.entries(manifest.files)) {
      assertEquals(
        createHash("sha256").update(await Deno.readFile(`${dir}/lib/${name}`)).digest("hex"),
        digest,
      );
    }
    assertEquals(manifest.key_inputs.quantization, "q4f16_1");
    const m = r.metadata;
    assertEquals([m.model_type, m.quantization, m.kv_state_kind], ["llama", "q4f16_1", "kv_cache"]);
    assertEquals(m.kv_cache, {
      layers: 32,
      heads: 32,
      kv_heads: 8,
      head_dim: 128,
      page_size: 16,
      dtype: "float16", // kv_f16: q4f16_1's model dtype
    });
    // q4f16_1: int4 in uint32 words (8 per word), f16 scale per group of 32
    const qkv = m.params.find((p) => p.name === "model.layers.0.self_attn.qkv_proj.q_weight")!;
    assertEquals([qkv.shape, qkv.dtype], [[6144, 512], "uint32"]);
    const scale = m.params.find((p) => p.name === "model.layers.0.self_attn.qkv_proj.q_scale")!;
    assertEquals([scale.shape, scale.dtype], [[6144, 128], "float16"]);
    // ≤ 8 dispatches a layer + a constant
    ok(m.decode_dispatches <= 8 * 32 + 8, `${m.decode_dispatches} dispatches per decode step`);
    for (
      const f of [
        "embed",
        "prefill",
        "decode",
        "batch_prefill",
        "batch_decode",
        "sample_argmax",
        "sample_top_p",
      ]
    ) {
      ok(m.memory_usage[f] > 0, `memory_usage of ${f}`);
    }
    const lib = await import(`file://${dir}/lib/lib.js`);
    ok(
      lib.plan.kernels.every((k: { wgsl?: { code: string } }) => k.wgsl!.code.includes("@compute")),
    );
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name:
    "compile() of Llama-2-70B splits weights past the binding limit and records TP/PP annotations",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await tmp();
    const r = await compile({
      config: LLAMA2_70B,
      quantization: "q4f16_1",
      target: "webgpu",
      overrides: "tensor_parallel_shards=2;pipeline_parallel_stages=2;context_window_size=2048",
      output: `${dir}/lib`,
      warn: () => {},
    });
    const m = r.metadata;
    assertEquals([m.tensor_parallel_shards, m.pipeline_parallel_stages, m.context_window_size], [
      2,
      2,
      2048,
    ]);
    const qkv = m.params.find((p) => p.name === "model.layers.0.self_attn.qkv_proj.q_weight")!;
    assertEquals(qkv.preprocs, [{
      kind: "tensor_parallel_shard",
      dim: 0,
      shards: 2,
      segments: [8192, 1024, 1024],
    }]);
    assertEquals(
      m.params.find((p) => p.name === "model.layers.79.mlp.down_proj.q_weight")!.pipeline_stages,
      [1],
    );
    assertEquals(
      m.params.find((p) => p.name === "model.layers.0.mlp.down_proj.q_weight")!.pipeline_stages,
      [0],
    );
    const lib = await import(`file://${dir}/lib/lib.js`);
    const parts = lib.plan.functions.decode.steps.flatMap((
      s: { b: { param?: string; rows?: number }[] },
    ) => s.b).filter((b: { rows?: number }) => b.rows !== undefined);
    ok(parts.length > 0, "no split weights in a 70B plan on a 128 MiB binding limit");
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "compile() bounds a sliding-window model's KV pages per sequence by the rolling window",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await tmp();
    const mistral = {
      model_type: "mistral",
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 1,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 32768,
      sliding_window: 4096,
      vocab_size: 256,
    };
    const r = await compile({
      config: mistral,
      quantization: "q0f32",
      target: "cpu",
      output: `${dir}/lib`,
      overrides: "prefill_chunk_size=1024",
      warn: () => {},
    });
    // (window 4096 + chunk 1024) / 16 + 2, not 32768 / 16
    assertEquals(r.metadata.kv_pages_per_sequence, 322);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "compile() surfaces typed errors with their stage and leaves no output behind",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await tmp();
    const out = `${dir}/lib`;
    const expectCause = async (
      opts: Parameters<typeof compile>[0],
      cls: new (...a: never[]) => Error,
      text: string,
    ) => {
      await assertRejects(() => compile(opts), CompileError, text);
      try {
        await compile(opts);
      } catch (e) {
        ok(
          (e as Error).cause instanceof cls,
          `cause of "${(e as Error).message}" is ${(e as Error).cause}`,
        );
      }
    };
    await expectCause(
      { config: LLAMA3_8B, quantization: "q4f16_0", target: "cpu", output: out },
      NotImplementedError,
      "KN",
    );
    await expectCause(
      { config: LLAMA3_8B, quantization: "q9f99", target: "cpu", output: out },
      ConfigError,
      "q9f99",
    );
    await expectCause(
      {
        config: LLAMA3_8B,
        quantization: "q4f16_ft",
        target: "cpu",
        output: out,
        overrides: "tensor_parallel_shards=2",
      },
      NotImplementedError,
      "q4f16_ft",
    );
    await expectCause(
      {
        config: { model_type: "gpt2", hidden_size: 8 },
        quantization: "q0f32",
        target: "cpu",
        output: out,
      },
      ConfigError,
      "gpt2",
    );
    await assertRejects(
      () =>
        compile({
          config: LLAMA3_8B,
          quantization: "q0f32",
          target: "cpu",
          output: out,
          overrides: "nope=1",
        }),
      CompileError,
      "unknown override",
    );
    assertEquals([...Deno.readDirSync(dir)], []);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name:
    "compile() writes the IR after every phase with --debug-dump and replaces an existing output",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await tmp();
    const cfg = {
      model_type: "llama",
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 1,
      num_attention_heads: 4,
      max_position_embeddings: 64,
      vocab_size: 256,
    };
    await Deno.mkdir(`${dir}/lib`);
    await Deno.writeTextFile(`${dir}/lib/stale.txt`, "old");
    await compile({
      config: cfg,
      quantization: "q4f16_1",
      target: "cpu",
      output: `${dir}/lib`,
      debugDump: `${dir}/dump`,
    });
    const dumps = [...Deno.readDirSync(`${dir}/dump`)].map((e) => e.name).sort();
    assertEquals(dumps, [
      "0_input.ir",
      "1_fusion.ir",
      "2_cleanup.ir",
      "3_target.ir",
      "4_memory.ir",
    ]);
    ok((await Deno.readTextFile(`${dir}/dump/0_input.ir`)).includes("dequantize"));
    ok(!(await Deno.readTextFile(`${dir}/dump/1_fusion.ir`)).includes("dequantize"));
    ok((await Deno.readTextFile(`${dir}/dump/4_memory.ir`)).includes("@slot"));
    ok(
      !(await Deno.stat(`${dir}/lib/stale.txt`).then(() => true, () => false)),
      "old output survived",
    );
    ok((await Deno.readTextFile(`${dir}/lib/lib.js`)).includes("cpuKernel"));
    const leftovers = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
      n.includes(".tmp-") || n.includes(".old-")
    );
    assertEquals(leftovers, []);
    await Deno.remove(dir, { recursive: true });
  },
});
