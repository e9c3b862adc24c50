/**
 * Decode and prefill end to end through `KilnEngine` (continuous batching, device-side
 * sampling, rounds of `stepsAhead` decode steps read back once), greedy (and once at batch 1
 * with temperature 1 and top_p 0.9, the sampler's search in every step), on a loaded model.
 * Decode speed comes from the difference of a short and a long run of the same requests: the
 * extra tokens over the extra time, so prefill, the first readback and round pipelining cancel.
 * A throwaway run first brings the GPU's clock up (the H100's idles at 345 MHz between runs and
 * takes ~0.2 s of work to reach full speed), then `PAIRS` (or `pairs`) (short, long) pairs give
 * the median rate: one pair moved by up to ±10% (and once 30%) between runs of the same tree.
 * @module
 */
import { KilnEngine } from "../../engine/engine.ts";
import type { Model } from "../../engine/model.ts";
import type { GenerateOptions, SamplingParams, Tokenizer } from "../../engine/types.ts";
import { GREEDY as GREEDY_SAMPLING, samplingParams } from "../../engine/sampling_params.ts";

export interface EngineFigures {
  batch: number;
  stepsAhead: number;
  /** Mean time to first token, ms. */
  ttftMs: number;
  /** Aggregate decode tokens/s: (long - short run's tokens) / (long - short run's time), the
   * median over the pairs. */
  decodeTokS: number;
  /** Each pair's rate, in run order. */
  pairTokS: number[];
  tokens: number;
  /** Wall ms of the short and the long run of the median pair (submit to the last token of
   * every sequence). */
  shortMs: number;
  longMs: number;
  /** Absent: greedy; else the sampling the requests asked for. */
  sampling?: string;
}

/** A tokenizer for synthetic models: every id has a printable text. */
const TOKENIZER: Tokenizer = {
  vocabSize: 0,
  bosTokenId: null,
  eosTokenIds: [],
  encode: () => [],
  decode: (ids) => ids.map((i) => `<${i}>`).join(""),
  tokenText: (i) => `<${i}>`,
};

export function tokens(n: number, vocab: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % vocab);
}

const GREEDY = { ...GREEDY_SAMPLING, seed: 1 };
/** (short, long) run pairs a figure by default: the median pair's rate is reported. */
const PAIRS = 3;
const TOP_P = {
  sampling: { ...samplingParams({ top_p: 0.9 }), seed: 1 },
  label: "temperature 1, top_p 0.9",
};

export interface EngineBenchOptions {
  name: string;
  promptLen: number;
  decodeTokens: number;
  batches: number[];
  /** Round sizes to try at batch 1 (larger batches use the last). */
  stepsAhead: number[];
  /** (short, long) pairs a figure (default `PAIRS`). */
  pairs?: number;
}

/** Engine figures per (batch, stepsAhead). The engines are left idle, not closed: closing one
 * destroys the model's device, which the bench goes on using. */
export async function benchEngine(
  model: Model,
  o: EngineBenchOptions,
  log: (s: string) => void,
): Promise<EngineFigures[]> {
  const V = model.metadata.vocab_size;
  const out: EngineFigures[] = [];
  // Decode speed by difference: the same requests with a short and a long budget; the extra
  // tokens over the extra time cancel prefill, the first readback and round pipelining.
  const generate = async (
    engine: KilnEngine,
    b: number,
    decode: number,
    sampling: SamplingParams = GREEDY,
  ) => {
    const start = performance.now();
    const arrivals = await Promise.all(Array.from({ length: b }, async (_, i) => {
      const opts: GenerateOptions = {
        prompt: tokens(o.promptLen, V, 100 + i),
        maxTokens: decode + 1,
        sampling,
        ignoreEos: true,
      };
      const times: number[] = [];
      for await (const c of engine.generate(opts)) {
        for (const _t of c.tokens) times.push(performance.now());
      }
      return times;
    }));
    return {
      ms: Math.max(...arrivals.map((a) => a.at(-1)!)) - start,
      ttftMs: arrivals.reduce((acc, a) => acc + a[0] - start, 0) / b,
      tokens: arrivals.reduce((acc, a) => acc + a.length, 0),
    };
  };
  const short = Math.max(1, Math.floor(o.decodeTokens / 4));
  const runs = o.batches.flatMap((b) =>
    (b === 1 ? o.stepsAhead : o.stepsAhead.slice(-1)).map((ahead) => ({ b, ahead, top: false }))
  );
  if (o.batches.includes(1)) runs.push({ b: 1, ahead: o.stepsAhead.at(-1)!, top: true });
  for (const { b, ahead, top } of runs) {
    const engine = new KilnEngine(model, TOKENIZER, null, o.name, {
      stepsAhead: ahead,
      maxNumSequence: Math.max(b, 1),
    });
    const sampling = top ? TOP_P.sampling : GREEDY;
    await generate(engine, b, short, sampling); // a throwaway run: the GPU's clock comes up
    const pairs = [];
    const n = o.pairs ?? PAIRS;
    for (let i = 0; i < n; i++) {
      const s = await generate(engine, b, short, sampling);
      const l = await generate(engine, b, o.decodeTokens, sampling);
      pairs.push({ s, l, rate: (l.tokens - s.tokens) / ((l.ms - s.ms) / 1000) });
    }
    const { s, l, rate } = [...pairs].sort((x, y) => x.rate - y.rate)[n >> 1];
    const e: EngineFigures = {
      batch: b,
      stepsAhead: ahead,
      ttftMs: l.ttftMs,
      decodeTokS: rate,
      pairTokS: pairs.map((p) => p.rate),
      tokens: l.tokens,
      shortMs: s.ms,
      longMs: l.ms,
      ...(top ? { sampling: TOP_P.label } : {}),
    };
    out.push(e);
    log(
      `  ${o.name}: engine b=${b} stepsAhead=${ahead}${top ? ` ${TOP_P.label}` : ""}: ${
        e.decodeTokS.toFixed(1)
      } tok/s decode, median of ${
        e.pairTokS.map((r) => r.toFixed(1)).join(", ")
      } (${short} and ${o.decodeTokens} tokens in ${s.ms.toFixed(0)} and ${
        l.ms.toFixed(0)
      } ms), TTFT ${e.ttftMs.toFixed(0)} ms`,
    );
  }
  return out;
}
