/**
 * `convertWeights`: a Hugging Face folder → an MLC-format folder (tensor-cache.json,
 * params_shard_*.bin in 32 MiB shards, mlc-chat-config.json, tokenizer files), streaming weight
 * by weight. Written into a temp folder and renamed into place.
 * @module
 */
import { normalizeConfig, readModelConfig } from "../config/model_config.ts";
import { getQuantization } from "../quant/mod.ts";
import { weightDefs } from "../models/llama.ts";
import { hfStoredTensors } from "./hf_params.ts";
import { TensorCacheWriter } from "./tensor_cache_write.ts";

export interface ConvertOptions {
  model: string;
  quantization: string;
  output: string;
  onProgress?: (done: number, total: number, name: string) => void;
}

const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "tokenizer.model",
  "vocab.json",
  "merges.txt",
  "added_tokens.json",
  "special_tokens_map.json",
  "chat_template.jinja",
  "generation_config.json",
];

export async function convertWeights(opts: ConvertOptions): Promise<void> {
  const src = await readModelConfig(opts.model);
  const config = normalizeConfig(src.raw, src.path);
  const quant = getQuantization(opts.quantization, {
    tensorParallelShards: config.tensor_parallel_shards,
  });
  const tmp = `${opts.output}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const writer = await TensorCacheWriter.create(tmp);
    const total = weightDefs(config, quant).length;
    let done = 0, lastBase = "";
    for await (const t of hfStoredTensors(opts.model, config, quant)) {
      await writer.add(t.name, t.dtype, t.shape, t.data);
      const base = t.name.replace(/\.(q_weight|q_scale|weight)$/, "");
      if (base !== lastBase) opts.onProgress?.(++done, total, base);
      lastBase = base;
    }
    await writer.finish();
    let gen: Record<string, unknown> = {};
    try {
      gen = JSON.parse(await Deno.readTextFile(`${opts.model}/generation_config.json`));
    } catch { /* optional */ }
    const chat = {
      model_type: config.model_type,
      quantization: quant.name,
      model_config: src.raw,
      context_window_size: config.context_window_size,
      sliding_window_size: config.sliding_window_size,
      prefill_chunk_size: config.prefill_chunk_size,
      attention_sink_size: config.attention_sink_size,
      tensor_parallel_shards: config.tensor_parallel_shards,
      pipeline_parallel_stages: config.pipeline_parallel_stages,
      vocab_size: config.vocab_size,
      temperature: gen.temperature ?? 1.0,
      top_p: gen.top_p ?? 1.0,
      repetition_penalty: gen.repetition_penalty ?? 1.0,
      presence_penalty: 0.0,
      frequency_penalty: 0.0,
      bos_token_id: gen.bos_token_id ?? config.bos_token_id,
      eos_token_id: gen.eos_token_id ?? config.eos_token_id,
      tokenizer_files: [] as string[],
    };
    for (const f of TOKENIZER_FILES) {
      try {
        await Deno.copyFile(`${opts.model}/${f}`, `${tmp}/${f}`);
        chat.tokenizer_files.push(f);
      } catch { /* absent */ }
    }
    await Deno.writeTextFile(`${tmp}/mlc-chat-config.json`, JSON.stringify(chat, null, 2));
    await Deno.remove(opts.output, { recursive: true }).catch(() => {});
    await Deno.rename(tmp, opts.output);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}
