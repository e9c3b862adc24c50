import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { parseHfConfig } from "./hf_config.ts";

const LLAMA = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 64,
  intermediate_size: 160,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  vocab_size: 512,
};

Deno.test("parseHfConfig() applies HF defaults", () => {
  const c = parseHfConfig(LLAMA);
  assertEquals(
    [c.headDim, c.numKvHeads, c.ropeTheta, c.ropeScaling, c.tieWordEmbeddings, c.qkvBias, c.oBias],
    [16, 4, 10000, { type: "default" }, false, false, false],
  );
  assertEquals(c.layerWindows, [null, null, null]);
});

Deno.test("parseHfConfig() reads llama3 rope_scaling and attention_bias", () => {
  const c = parseHfConfig({
    ...LLAMA,
    head_dim: 32,
    attention_bias: true,
    rope_theta: 500000,
    rope_scaling: {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    },
  });
  assertEquals([c.headDim, c.qkvBias, c.oBias, c.ropeTheta], [32, true, true, 500000]);
  assertEquals(c.ropeScaling, {
    type: "llama3",
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  });
  // transformers ≥ 4.5x style: theta and scaling nested in rope_parameters.
  const n = parseHfConfig({ ...LLAMA, rope_parameters: { rope_type: "default", rope_theta: 1e6 } });
  assertEquals([n.ropeTheta, n.ropeScaling], [1e6, { type: "default" }]);
  throws(() => parseHfConfig({ ...LLAMA, rope_scaling: { type: "yarn", factor: 2 } }), TypeError);
});

Deno.test("parseHfConfig() places sliding windows per architecture", () => {
  const mistral = { ...LLAMA, architectures: ["MistralForCausalLM"], model_type: "mistral" };
  assertEquals(parseHfConfig({ ...mistral, sliding_window: 16 }).layerWindows, [16, 16, 16]);
  assertEquals(parseHfConfig({ ...mistral, sliding_window: null }).layerWindows, [
    null,
    null,
    null,
  ]);
  const qwen = { ...LLAMA, architectures: ["Qwen2ForCausalLM"], model_type: "qwen2" };
  const off = parseHfConfig({ ...qwen, use_sliding_window: false, sliding_window: 8 });
  assertEquals([off.layerWindows, off.qkvBias, off.oBias], [[null, null, null], true, false]);
  const on = { ...qwen, use_sliding_window: true, sliding_window: 8, max_window_layers: 1 };
  assertEquals(parseHfConfig(on).layerWindows, [null, 8, 8]);
  const typed = {
    ...mistral,
    sliding_window: 4,
    layer_types: ["full_attention", "sliding_attention", "full_attention"],
  };
  assertEquals(parseHfConfig(typed).layerWindows, [null, 4, null]);
  // Llama ignores a stray sliding_window.
  assertEquals(parseHfConfig({ ...LLAMA, sliding_window: 4 }).layerWindows, [null, null, null]);
});
