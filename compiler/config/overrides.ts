/**
 * `ModelConfigOverride`: the fields a user may override at compile time, as MLC-LLM's
 * `--overrides "context_window_size=…;prefill_chunk_size=…"`.
 * @module
 */
import type { ModelConfig } from "./model_config.ts";

export interface ModelConfigOverride {
  context_window_size?: number;
  sliding_window_size?: number;
  prefill_chunk_size?: number;
  attention_sink_size?: number;
  max_batch_size?: number;
  tensor_parallel_shards?: number;
  pipeline_parallel_stages?: number;
}

export const OVERRIDE_FIELDS = [
  "context_window_size",
  "sliding_window_size",
  "prefill_chunk_size",
  "attention_sink_size",
  "max_batch_size",
  "tensor_parallel_shards",
  "pipeline_parallel_stages",
] as const;

/** Parse `"k=v;k=v"` (or accept an object); unknown keys and non-integers are TypeErrors. */
export function parseOverrides(
  input: string | ModelConfigOverride | undefined,
): ModelConfigOverride {
  if (input === undefined || input === "") return {};
  const entries: [string, unknown][] = typeof input === "string"
    ? input.split(";").filter((s) => s.trim() !== "").map((kv) => {
      const i = kv.indexOf("=");
      if (i < 0) throw new TypeError(`override "${kv}" is not of the form key=value`);
      return [kv.slice(0, i).trim(), Number(kv.slice(i + 1).trim())];
    })
    : Object.entries(input);
  const out: Record<string, number> = {};
  for (const [k, v] of entries) {
    if (!(OVERRIDE_FIELDS as readonly string[]).includes(k)) {
      throw new TypeError(`unknown override "${k}"; known: ${OVERRIDE_FIELDS.join(", ")}`);
    }
    if (typeof v !== "number" || !Number.isInteger(v)) {
      throw new TypeError(`override "${k}" must be an integer, got ${JSON.stringify(v)}`);
    }
    out[k] = v;
  }
  return Object.freeze(out);
}

/** Apply overrides, warning for fields the model lacks (as MLC does) and ignoring them. */
export function applyOverrides(
  config: ModelConfig,
  overrides: ModelConfigOverride,
  warn: (msg: string) => void,
): ModelConfig {
  const out: Record<string, unknown> = { ...config };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) continue;
    const lacks = (k === "sliding_window_size" || k === "attention_sink_size") &&
      config.sliding_window_size <= 0;
    if (lacks) {
      warn(`model ${config.model_type} has no sliding window: override ${k}=${v} is ignored`);
      continue;
    }
    out[k] = v;
  }
  return out as unknown as ModelConfig;
}
