/**
 * Cache keys: sha256 of the canonical JSON of every input that changes what is built. A change
 * in any one input gives a new key, so an entry can never be loaded stale.
 * @module
 */
import { canonicalJson } from "./canonical_json.ts";
import { digestBytes } from "./digest.ts";

/** Everything that changes a compiled library. */
export interface LibKeyInputs {
  kind: "lib";
  /** The normalised model config (after the compiler's parsing). */
  model_config: Record<string, unknown>;
  model_type: string | null;
  quantization: string;
  /** Parsed by the compiler where it can (canonical), else the string as given. */
  overrides: unknown;
  opt: unknown;
  target_fingerprint: string;
  system_lib_prefix: string | null;
  compiler_version: string;
  artifact_format_version: number;
}

/** Everything that changes converted weights. */
export interface WeightsKeyInputs {
  kind: "weights";
  /** file name → sha256 hex of each source file (configs, tokenizer, safetensors). */
  sources: Record<string, string>;
  quantization: string;
  /** The converter is part of the compiler: a new version may convert differently. */
  compiler_version: string;
}

export type KeyInputs = LibKeyInputs | WeightsKeyInputs;

/** The key of a set of inputs: 64 hex characters. */
export function cacheKey(inputs: KeyInputs): string {
  return digestBytes("sha256", canonicalJson(inputs));
}
