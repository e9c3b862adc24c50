/**
 * Sampling presets: greedy decoding, and OpenAI's defaults with overrides.
 * @module
 */
import type { SamplingParams } from "./types.ts";

/** Greedy: temperature 0, nothing else applied. */
export const GREEDY: SamplingParams = Object.freeze({
  temperature: 0,
  top_p: 1,
  top_k: 0,
  presence_penalty: 0,
  frequency_penalty: 0,
  repetition_penalty: 1,
  logit_bias: new Map<number, number>(),
});

/** OpenAI's defaults (temperature 1, top_p 1, no penalties) with `over` applied. */
export function samplingParams(over: Partial<SamplingParams> = {}): SamplingParams {
  return Object.freeze({ ...GREEDY, temperature: 1, ...over });
}
