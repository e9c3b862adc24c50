/**
 * Model configs: HF `config.json` or MLC `mlc-chat-config.json` → one normalised, frozen
 * `ModelConfig` for the Llama family (Llama 2/3/3.1/3.2, Mistral, Qwen2/2.5).
 * @module
 */
import { ConfigError, NotImplementedError } from "../errors.ts";
import { applyOverrides, type ModelConfigOverride } from "./overrides.ts";

export type RopeScaling =
  | null
  | {
    rope_type: "llama3";
    factor: number;
    low_freq_factor: number;
    high_freq_factor: number;
    original_max_position_embeddings: number;
  }
  | { rope_type: "linear"; factor: number };

/** The normalised config Kiln compiles from. Sizes are in elements; -1 means "none". */
export interface ModelConfig {
  readonly model_type: "llama" | "mistral" | "qwen2";
  readonly hidden_size: number;
  readonly intermediate_size: number;
  readonly num_hidden_layers: number;
  readonly num_attention_heads: number;
  readonly num_key_value_heads: number;
  readonly head_dim: number;
  readonly rms_norm_eps: number;
  readonly rope_theta: number;
  readonly rope_scaling: RopeScaling;
  readonly vocab_size: number;
  readonly tie_word_embeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2, or Llama with attention_bias). */
  readonly qkv_bias: boolean;
  readonly context_window_size: number;
  readonly sliding_window_size: number;
  readonly attention_sink_size: number;
  readonly prefill_chunk_size: number;
  readonly max_batch_size: number;
  readonly tensor_parallel_shards: number;
  readonly pipeline_parallel_stages: number;
  readonly bos_token_id: number | null;
  readonly eos_token_id: number[];
}

const MODEL_TYPES: Record<string, ModelConfig["model_type"]> = {
  llama: "llama",
  mistral: "mistral",
  qwen2: "qwen2",
};

/** Default max batch size, as MLC's compile uses. */
export const DEFAULT_MAX_BATCH_SIZE = 128;

type Raw = Record<string, unknown>;

function num(raw: Raw, key: string, where: string, fallback?: number): number {
  const v = raw[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ConfigError(`${where}: required field "${key}" is missing`);
  }
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new ConfigError(`${where}: field "${key}" must be a number, got ${JSON.stringify(v)}`);
  }
  return v;
}

function posInt(raw: Raw, key: string, where: string, fallback?: number): number {
  const v = num(raw, key, where, fallback);
  if (!Number.isInteger(v) || v <= 0) {
    throw new ConfigError(`${where}: field "${key}" must be a positive integer, got ${v}`);
  }
  return v;
}

function ropeScaling(raw: Raw, where: string): RopeScaling {
  const rs = raw.rope_scaling as Raw | null | undefined;
  if (rs === undefined || rs === null) return null;
  if (typeof rs !== "object") throw new ConfigError(`${where}: "rope_scaling" must be an object`);
  const type = (rs.rope_type ?? rs.type) as string | undefined;
  const w = `${where}: rope_scaling`;
  if (type === "llama3") {
    return {
      rope_type: "llama3",
      factor: num(rs, "factor", w),
      low_freq_factor: num(rs, "low_freq_factor", w),
      high_freq_factor: num(rs, "high_freq_factor", w),
      original_max_position_embeddings: posInt(rs, "original_max_position_embeddings", w),
    };
  }
  if (type === "linear") return { rope_type: "linear", factor: num(rs, "factor", w) };
  if (type === "default") return null;
  throw new ConfigError(
    `${where}: rope_scaling type "${type}" is not supported (supported: llama3, linear)`,
  );
}

function eosIds(v: unknown): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number");
  return [];
}

/** Normalise a raw HF config (or an MLC config already merged by `readModelConfig`). */
export function normalizeConfig(
  raw: Raw,
  where = "config.json",
  overrides: ModelConfigOverride = {},
  warn: (msg: string) => void = console.warn,
): ModelConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`${where}: expected a JSON object`);
  }
  const typeName = String(raw.model_type ?? "");
  const model_type = MODEL_TYPES[typeName];
  if (!model_type) {
    throw new ConfigError(
      `${where}: model_type "${typeName}" is not supported; Kiln compiles ${
        Object.keys(MODEL_TYPES).join(", ")
      }`,
    );
  }
  const hidden = posInt(raw, "hidden_size", where);
  const heads = posInt(raw, "num_attention_heads", where);
  const kvHeads = posInt(raw, "num_key_value_heads", where, heads);
  if (heads % kvHeads !== 0) {
    throw new ConfigError(
      `${where}: num_attention_heads (${heads}) must be a multiple of num_key_value_heads (${kvHeads})`,
    );
  }
  const headDim = posInt(raw, "head_dim", where, Math.floor(hidden / heads));
  if (headDim % 2 !== 0) throw new ConfigError(`${where}: head_dim must be even, got ${headDim}`);
  const ctx = (raw.context_window_size as number | undefined) ??
    (raw.max_position_embeddings as number | undefined) ??
    (raw.max_sequence_length as number | undefined);
  if (typeof ctx !== "number" || !(ctx > 0)) {
    throw new ConfigError(
      `${where}: cannot find the context window (context_window_size or max_position_embeddings)`,
    );
  }
  // Sliding window: Mistral always (unless null), Qwen2 only with use_sliding_window.
  let sliding = -1;
  const sw = raw.sliding_window_size ?? raw.sliding_window;
  if (typeof sw === "number" && sw > 0) {
    if (model_type === "mistral" || (model_type === "qwen2" && raw.use_sliding_window === true)) {
      sliding = sw;
    } else if (model_type === "llama" && raw.sliding_window_size !== undefined) sliding = sw;
  }
  const base: ModelConfig = {
    model_type,
    hidden_size: hidden,
    intermediate_size: posInt(raw, "intermediate_size", where),
    num_hidden_layers: posInt(raw, "num_hidden_layers", where),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    rms_norm_eps: num(raw, "rms_norm_eps", where, 1e-6),
    rope_theta: num(raw, "rope_theta", where, 10000),
    rope_scaling: ropeScaling(raw, where),
    vocab_size: posInt(raw, "vocab_size", where),
    tie_word_embeddings: Boolean(raw.tie_word_embeddings ?? false),
    qkv_bias: model_type === "qwen2" ? true : Boolean(raw.attention_bias ?? false),
    context_window_size: ctx,
    sliding_window_size: sliding,
    attention_sink_size: num(raw, "attention_sink_size", where, 0),
    prefill_chunk_size: num(raw, "prefill_chunk_size", where, 0),
    max_batch_size: num(raw, "max_batch_size", where, DEFAULT_MAX_BATCH_SIZE),
    tensor_parallel_shards: num(raw, "tensor_parallel_shards", where, 1),
    pipeline_parallel_stages: num(raw, "pipeline_parallel_stages", where, 1),
    bos_token_id: typeof raw.bos_token_id === "number" ? raw.bos_token_id : null,
    eos_token_id: eosIds(raw.eos_token_id),
  };
  return Object.freeze(finalize(applyOverrides(base, overrides, warn), where));
}

/** Derived defaults, recomputed after overrides, and cross-field checks. */
function finalize(c: ModelConfig, where: string): ModelConfig {
  const out = { ...c };
  if (!(out.prefill_chunk_size > 0)) {
    out.prefill_chunk_size = Math.min(out.context_window_size, 8192);
  }
  out.prefill_chunk_size = Math.min(out.prefill_chunk_size, out.context_window_size);
  if (out.attention_sink_size > 0) {
    if (out.sliding_window_size <= 0) {
      throw new ConfigError(`${where}: attention_sink_size needs a sliding window`);
    }
    throw new NotImplementedError(
      `${where}: attention_sink_size ${out.attention_sink_size}: attention sinks (StreamingLLM) are not implemented in Kiln; compile with attention_sink_size=0`,
    );
  }
  for (
    const k of [
      "num_attention_heads",
      "num_key_value_heads",
      "intermediate_size",
      "vocab_size",
    ] as const
  ) {
    if (out[k] % out.tensor_parallel_shards !== 0) {
      throw new ConfigError(
        `${where}: ${k} (${
          out[k]
        }) is not divisible by tensor_parallel_shards (${out.tensor_parallel_shards})`,
      );
    }
  }
  if (out.num_hidden_layers < out.pipeline_parallel_stages) {
    throw new ConfigError(
      `${where}: pipeline_parallel_stages (${out.pipeline_parallel_stages}) exceeds num_hidden_layers`,
    );
  }
  return out;
}

/** Which file describes the model in `dir`. */
export type ConfigSource = { format: "hf" | "mlc"; path: string; raw: Raw };

/** Read `mlc-chat-config.json` (its `model_config` laid under the top-level keys) or `config.json`. */
export async function readModelConfig(dir: string): Promise<ConfigSource> {
  for (const [file, format] of [["mlc-chat-config.json", "mlc"], ["config.json", "hf"]] as const) {
    const path = `${dir}/${file}`;
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw new ConfigError(`${path}: cannot read (${(e as Error).message})`, { cause: e });
    }
    let raw: Raw;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new ConfigError(`${path}: not valid JSON (${(e as Error).message})`, { cause: e });
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new ConfigError(`${path}: expected a JSON object`);
    }
    if (format === "mlc") {
      const { model_config, ...top } = raw;
      if (typeof model_config !== "object" || model_config === null) {
        throw new ConfigError(`${path}: "model_config" is missing`);
      }
      raw = { ...(model_config as Raw), ...top };
    }
    return { format, path, raw };
  }
  throw new ConfigError(
    `${dir}: no config.json or mlc-chat-config.json found; pass a Hugging Face or MLC model folder`,
  );
}
