/**
 * The compile metadata (MLC's fields, plus Kiln's plan figures) and the memory estimate.
 * @module
 */
import type { ModelConfig } from "./config/model_config.ts";
import type { OptimizationFlags } from "./config/opt_flags.ts";
import type { TargetInfo } from "./codegen/contract.ts";
import { PAGE_SIZE } from "./ir/ops.ts";
import type { IrFunction, ParamInfo } from "./ir/graph.ts";
import type { QuantScheme } from "./quant/mod.ts";

export interface CompileMetadata {
  model_type: string;
  quantization: string;
  context_window_size: number;
  sliding_window_size: number;
  attention_sink_size: number;
  prefill_chunk_size: number;
  tensor_parallel_shards: number;
  pipeline_parallel_stages: number;
  kv_state_kind: "kv_cache";
  max_batch_size: number;
  vocab_size: number;
  params: ParamInfo[];
  kv_cache: {
    layers: number;
    heads: number;
    kv_heads: number;
    head_dim: number;
    page_size: number;
    /** The cache's element type (`kv_f16`). */
    dtype: "float32" | "float16";
  };
  /** KV pages one sequence holds at most: the context, or under a sliding window the rolling
   * bound (the window plus one prefill chunk, and a page either side). */
  kv_pages_per_sequence: number;
  /** Bytes of temporary and I/O buffers per function, at its bounds. */
  memory_usage: Record<string, number>;
  /** GPU dispatches of one decode step. */
  decode_dispatches: number;
  /** Dispatches per function. */
  dispatches: Record<string, number>;
  target: { backend: string; features: string[] };
  opt: OptimizationFlags;
  model_config: ModelConfig;
}

const DTYPE_BYTES: Record<string, number> = { float32: 4, float16: 2, uint32: 4, bfloat16: 2 };

export function buildMetadata(a: {
  config: ModelConfig;
  quant: QuantScheme;
  params: ParamInfo[];
  functions: IrFunction[];
  target: TargetInfo;
  flags: OptimizationFlags;
}): CompileMetadata {
  const c = a.config;
  const memory_usage: Record<string, number> = {};
  const dispatches: Record<string, number> = {};
  for (const fn of a.functions) {
    memory_usage[fn.name] = (fn.slots ?? []).reduce((x, y) => x + y, 0);
    dispatches[fn.name] = fn.nodes.length;
  }
  return {
    model_type: c.model_type,
    quantization: a.quant.name,
    context_window_size: c.context_window_size,
    sliding_window_size: c.sliding_window_size,
    attention_sink_size: c.attention_sink_size,
    prefill_chunk_size: c.prefill_chunk_size,
    tensor_parallel_shards: c.tensor_parallel_shards,
    pipeline_parallel_stages: c.pipeline_parallel_stages,
    kv_state_kind: "kv_cache",
    max_batch_size: c.max_batch_size,
    vocab_size: c.vocab_size,
    params: a.params,
    kv_cache: {
      layers: c.num_hidden_layers,
      heads: c.num_attention_heads,
      kv_heads: c.num_key_value_heads,
      head_dim: c.head_dim,
      page_size: PAGE_SIZE,
      dtype: a.functions.some((f) => f.values.some((v) => v.kind === "kv" && v.dtype === "f16"))
        ? "float16"
        : "float32",
    },
    kv_pages_per_sequence: c.sliding_window_size > 0
      ? Math.min(
        Math.ceil(c.context_window_size / PAGE_SIZE),
        Math.ceil((c.sliding_window_size + c.prefill_chunk_size) / PAGE_SIZE) + 2,
      )
      : Math.ceil(c.context_window_size / PAGE_SIZE),
    memory_usage,
    decode_dispatches: dispatches.decode ?? 0,
    dispatches,
    target: { backend: a.target.backend, features: a.target.features },
    opt: a.flags,
    model_config: c,
  };
}

export function paramBytes(p: { shape: number[]; dtype: string }): number {
  return p.shape.reduce((x, y) => x * y, 1) * (DTYPE_BYTES[p.dtype] ?? 4);
}

/** Parameters, temporary buffers (the largest function), KV bytes per token, total for the context. */
export function memoryEstimate(
  m: CompileMetadata,
): { params: number; temp: number; kvPerToken: number; total: number } {
  const params = m.params.reduce((s, p) => s + paramBytes(p), 0);
  const temp = Math.max(0, ...Object.values(m.memory_usage));
  const kvPerToken = m.kv_cache.layers * kvLayerTokenBytes(m);
  return { params, temp, kvPerToken, total: params + temp + kvPerToken * m.context_window_size };
}

/** Bytes of one KV-cache element of a library (its `kv_cache.dtype`). */
export function kvElementBytes(m: { kv_cache: { dtype: string } }): number {
  return m.kv_cache.dtype === "float16" ? 2 : 4;
}

/** Bytes one token's K and V take in one layer's cache (a page of a layer: PAGE_SIZE times
 * this; a token of every layer: `memoryEstimate().kvPerToken`). */
export function kvLayerTokenBytes(m: Pick<CompileMetadata, "kv_cache">): number {
  const k = m.kv_cache;
  return 2 * k.kv_heads * k.head_dim * kvElementBytes(m);
}
