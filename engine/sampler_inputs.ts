/**
 * The compiled sampler's inputs for a batch of rows (see `logits_process` in the kernel
 * contract): per row, the sparse penalty/bias entries (token, times generated, in the prompt,
 * bias), the penalty parameters and top-k, temperature, top-p and one uniform draw.
 * @module
 */
import type { SamplingParams } from "./types.ts";

export interface SamplerRow {
  sampling: SamplingParams;
  /** Generated-token counts. */
  counts: ReadonlyMap<number, number>;
  promptSet: ReadonlySet<number>;
  /** The row's uniform draw in [0, 1). */
  uniform: number;
}

/** Greedy with nothing to process: the one-kernel argmax gives the same token. */
export function isPlainGreedy(s: SamplingParams): boolean {
  return !(s.temperature > 0) && s.top_k <= 0 && s.logit_bias.size === 0 && s.presence_penalty === 0 &&
    s.frequency_penalty === 0 && s.repetition_penalty === 1;
}

/** Inputs of the library's `sample` function; throws past `maxEntries` entries in all. */
export function samplerInputs(rows: readonly SamplerRow[], maxEntries: number): Record<string, ArrayBufferView> {
  const b = rows.length;
  const indptr = new Uint32Array(b + 1); // [b + 1]
  const entries: number[] = []; // 4 per entry
  const params = new Float32Array(b * 4); // [b, 4]
  const temperature = new Float32Array(b), top_p = new Float32Array(b), uniform = new Float32Array(b);
  rows.forEach((row, r) => {
    const sp = row.sampling;
    const rep = sp.repetition_penalty !== 1;
    const penal = rep || sp.presence_penalty !== 0 || sp.frequency_penalty !== 0;
    const tokens = new Set<number>(sp.logit_bias.keys());
    if (penal) for (const t of row.counts.keys()) tokens.add(t);
    if (rep) for (const t of row.promptSet) tokens.add(t);
    for (const t of tokens) {
      entries.push(t, penal ? row.counts.get(t) ?? 0 : 0, rep && row.promptSet.has(t) ? 1 : 0, sp.logit_bias.get(t) ?? 0);
    }
    indptr[r + 1] = entries.length / 4;
    params.set([sp.presence_penalty, sp.frequency_penalty, sp.repetition_penalty, sp.top_k > 0 ? sp.top_k : 0], r * 4);
    temperature[r] = sp.temperature;
    top_p[r] = sp.top_p;
    uniform[r] = row.uniform;
  });
  if (entries.length / 4 > maxEntries) {
    throw new RangeError(`the batch carries ${entries.length / 4} penalty/bias entries; the sampler takes ${maxEntries}`);
  }
  const words = new ArrayBuffer(Math.max(16, entries.length * 4));
  const u = new Uint32Array(words), f = new Float32Array(words);
  for (let i = 0; i < entries.length; i += 4) {
    u[i] = entries[i];
    f[i + 1] = entries[i + 1];
    u[i + 2] = entries[i + 2];
    f[i + 3] = entries[i + 3];
  }
  return { indptr, entries: new Uint8Array(words), params, temperature, top_p, uniform };
}
