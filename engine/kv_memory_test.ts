import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { normalizeConfig } from "../compiler/config/model_config.ts";
import { parseOptFlags } from "../compiler/config/opt_flags.ts";
import { getQuantization } from "../compiler/quant/mod.ts";
import { getModel } from "../compiler/models/registry.ts";
import { runPipeline } from "../compiler/passes/pipeline.ts";
import { CPU_TARGET } from "../compiler/target.ts";
import { buildMetadata, kvElementBytes, memoryEstimate } from "../compiler/metadata.ts";
import { kvPages } from "./create.ts";

const RAW = {
  model_type: "llama",
  hidden_size: 64,
  intermediate_size: 160,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 256,
  vocab_size: 512,
};

function metadata(quantization: string, opt: string) {
  const config = normalizeConfig(RAW);
  const quant = getQuantization(quantization);
  const { functions, params } = getModel("llama").build(config, quant);
  const flags = parseOptFlags(opt);
  const fns = runPipeline(functions, {
    config,
    target: CPU_TARGET,
    flags,
    modelDtype: quant.modelDtype,
  });
  return buildMetadata({ config, quant, params, functions: fns, target: CPU_TARGET, flags });
}

Deno.test("metadata: the KV cache's dtype follows kv_f16, and the memory figures and page counts follow it", () => {
  const f16 = metadata("q4f16_1", "O2");
  const f32 = metadata("q4f16_1", "kv_f16=0");
  const f32Model = metadata("q4f32_1", "O2");
  assertEquals([f16.kv_cache.dtype, f32.kv_cache.dtype, f32Model.kv_cache.dtype], [
    "float16",
    "float32",
    "float32",
  ]);
  assertEquals([kvElementBytes(f16), kvElementBytes(f32)], [2, 4]);
  // layers x (K and V) x kv heads x head dim x bytes
  assertEquals(memoryEstimate(f16).kvPerToken, 3 * 2 * 2 * 16 * 2);
  assertEquals(memoryEstimate(f32).kvPerToken, 3 * 2 * 2 * 16 * 4);
  // the same budget holds twice the pages in f16 (below the sequences' and binding caps)
  const budget = 3 * 2 * 2 * 16 * 4 * 16 * 10; // 10 f32 pages of every layer
  assertEquals(kvPages(f32, budget, 2 ** 30, 64), 10);
  assertEquals(kvPages(f16, budget, 2 ** 30, 64), 20);
  ok(kvPages(f16, budget, 2 ** 30, 1) <= f16.kv_pages_per_sequence);
});
