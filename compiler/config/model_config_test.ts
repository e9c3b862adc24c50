import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { assertRejects, assertThrows } from "../../tests/assert.ts";
import { normalizeConfig, readModelConfig } from "./model_config.ts";
import { parseOverrides } from "./overrides.ts";
import { ConfigError, NotImplementedError } from "../errors.ts";

const LLAMA3_8B = {
  model_type: "llama",
  hidden_size: 4096,
  intermediate_size: 14336,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  max_position_embeddings: 8192,
  vocab_size: 128256,
  eos_token_id: [128001, 128009],
};

Deno.test("normalizeConfig() derives head_dim and prefill_chunk_size = min(context, 8192)", () => {
  const c = normalizeConfig(LLAMA3_8B);
  assertEquals(c.head_dim, 128);
  assertEquals(c.context_window_size, 8192);
  assertEquals(c.prefill_chunk_size, 8192);
  assertEquals(c.sliding_window_size, -1);
  assertEquals(c.eos_token_id, [128001, 128009]);
  assertEquals(c.max_batch_size, 128);
});

Deno.test("normalizeConfig() recomputes derived defaults after overrides", () => {
  const c = normalizeConfig(LLAMA3_8B, "x", parseOverrides("context_window_size=4096"));
  assertEquals(c.context_window_size, 4096);
  assertEquals(c.prefill_chunk_size, 4096);
  const d = normalizeConfig(
    LLAMA3_8B,
    "x",
    parseOverrides("context_window_size=4096;prefill_chunk_size=512"),
  );
  assertEquals(d.prefill_chunk_size, 512);
});

Deno.test("normalizeConfig() warns for override fields the model lacks and ignores them", () => {
  const warnings: string[] = [];
  const c = normalizeConfig(LLAMA3_8B, "x", { sliding_window_size: 128 }, (m) => warnings.push(m));
  assertEquals(c.sliding_window_size, -1);
  assertEquals(warnings.length, 1);
});

Deno.test("normalizeConfig() reads Mistral's sliding window and Qwen2's qkv bias", () => {
  const m = normalizeConfig({ ...LLAMA3_8B, model_type: "mistral", sliding_window: 4096 });
  assertEquals(m.sliding_window_size, 4096);
  const q = normalizeConfig({
    ...LLAMA3_8B,
    model_type: "qwen2",
    sliding_window: 4096,
    use_sliding_window: false,
  });
  assertEquals(q.sliding_window_size, -1);
  assertEquals(q.qkv_bias, true);
});

Deno.test("normalizeConfig() rejects bad configs with the field and file named", () => {
  assertThrows(
    () => normalizeConfig({ ...LLAMA3_8B, model_type: "gpt2" }, "m/config.json"),
    ConfigError,
    'model_type "gpt2"',
  );
  const { hidden_size: _, ...noHidden } = LLAMA3_8B;
  assertThrows(
    () => normalizeConfig(noHidden, "m/config.json"),
    ConfigError,
    '"hidden_size" is missing',
  );
  assertThrows(
    () => normalizeConfig({ ...LLAMA3_8B, num_key_value_heads: 5 }),
    ConfigError,
    "multiple of num_key_value_heads",
  );
  assertThrows(
    () => normalizeConfig({ ...LLAMA3_8B, hidden_size: "4096" }),
    ConfigError,
    "must be a number",
  );
  assertThrows(
    () => normalizeConfig({ ...LLAMA3_8B, rope_scaling: { rope_type: "yarn", factor: 2 } }),
    ConfigError,
    "yarn",
  );
  assertThrows(
    () => normalizeConfig({ ...LLAMA3_8B, tensor_parallel_shards: 3 }),
    ConfigError,
    "tensor_parallel_shards",
  );
});

Deno.test("normalizeConfig() refuses attention sinks (not implemented) rather than ignoring them", () => {
  const mistral = { ...LLAMA3_8B, model_type: "mistral", sliding_window: 4096 };
  assertThrows(
    () => normalizeConfig(mistral, "x", { attention_sink_size: 4 }),
    NotImplementedError,
    "attention sinks",
  );
});

Deno.test("parseOverrides() rejects unknown keys and non-integers", () => {
  assertThrows(() => parseOverrides("context_size=5"), TypeError, "unknown override");
  assertThrows(() => parseOverrides("context_window_size=abc"), TypeError, "integer");
  assertThrows(() => parseOverrides("context_window_size"), TypeError, "key=value");
  assertEquals(parseOverrides("max_batch_size=4; prefill_chunk_size=64"), {
    max_batch_size: 4,
    prefill_chunk_size: 64,
  });
});

Deno.test("readModelConfig() lays an MLC model_config under the top-level keys", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/mlc-chat-config.json`,
    JSON.stringify({
      model_type: "llama",
      context_window_size: 1024,
      prefill_chunk_size: 128,
      model_config: { ...LLAMA3_8B, context_window_size: 8192 },
    }),
  );
  const src = await readModelConfig(dir);
  assertEquals(src.format, "mlc");
  const c = normalizeConfig(src.raw, src.path);
  assertEquals(c.context_window_size, 1024);
  assertEquals(c.prefill_chunk_size, 128);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("readModelConfig() names the folder when no config exists and the file when JSON is bad", async () => {
  const dir = await Deno.makeTempDir();
  await assertRejects(() => readModelConfig(dir), ConfigError, "no config.json");
  await Deno.writeTextFile(`${dir}/config.json`, "{ nope");
  await assertRejects(() => readModelConfig(dir), ConfigError, "config.json: not valid JSON");
  await Deno.remove(dir, { recursive: true });
});
