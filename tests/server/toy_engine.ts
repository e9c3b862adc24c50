/**
 * TEST DOUBLE — `ToyEngine`: a tiny deterministic CPU "language model" over the real Llama 3
 * tokenizer, for the server's tests only (never exported from `server/` or `engine/`).
 *
 * The model: its vocabulary is the (distinct) tokens of `TOY_SCRIPT` followed by
 * `<|eot_id|>`. Given the tokens so far, the favoured next token is the one after the last
 * token in the script (cyclically), or — when the last token is not in the script — the
 * script's first token. Logits: 4 for the favoured token, 2 for the one after it, 0 for
 * the rest. Greedy (temperature 0) follows the script; sampling draws from softmax(logits / T)
 * with a seeded generator. Text goes through the real `IncrementalDetokenizer` and `StopMatcher`.
 * @module
 */
import { IncrementalDetokenizer } from "../../engine/detokenizer.ts";
import { StopMatcher } from "../../engine/stop_matcher.ts";
import type {
  ChatTemplate,
  Engine,
  EngineStats,
  FinishReason,
  GenerateOptions,
  GenerationChunk,
  Tokenizer,
} from "../../engine/types.ts";

export const TOY_SCRIPT = " Kiln fires clay into pottery 😀 while glazes melt. END";
export const EOT_ID = 128009;

/** What one `generate()` call saw and how it ended. */
export interface ToyGenerationRecord {
  readonly options: GenerateOptions;
  finish: FinishReason | null;
  tokens: number;
}

export class ToyEngine implements Engine {
  readonly modelId = "toy-llama3";
  readonly contextWindow: number;
  /** The model's vocabulary: script tokens, then EOT. */
  readonly vocab: readonly number[];
  readonly records: ToyGenerationRecord[] = [];
  readonly #delayMs: number;
  #running = 0;
  #generated = 0;
  #prompt = 0;
  #steps = 0;

  constructor(
    readonly tokenizer: Tokenizer,
    readonly chatTemplate: ChatTemplate | null,
    opts: { contextWindow?: number; delayMs?: number } = {},
  ) {
    this.contextWindow = opts.contextWindow ?? 256;
    this.#delayMs = opts.delayMs ?? 0;
    const ids = [...tokenizer.encode(TOY_SCRIPT, { addSpecialTokens: false }), EOT_ID];
    if (new Set(ids).size !== ids.length) throw new Error("TOY_SCRIPT must have distinct tokens");
    this.vocab = Object.freeze(ids);
  }

  /** The model's logits over `vocab` after `tokens`. */
  logits(tokens: readonly number[]): number[] {
    const L = this.vocab.length;
    const last = this.vocab.indexOf(tokens.at(-1) ?? -1);
    const fav = last >= 0 ? (last + 1) % L : 0;
    return this.vocab.map((_, j) => (j === fav ? 4 : j === (fav + 1) % L ? 2 : 0));
  }

  async *generate(opts: GenerateOptions): AsyncGenerator<GenerationChunk> {
    const rec: ToyGenerationRecord = { options: opts, finish: null, tokens: 0 };
    this.records.push(rec);
    this.#running++;
    this.#prompt += opts.prompt.length;
    const tokens = [...opts.prompt];
    const detok = new IncrementalDetokenizer(this.tokenizer, { prompt: opts.prompt });
    const stop = new StopMatcher(opts.stop ?? []);
    const rng = mulberry32(opts.sampling.seed ?? 0x5eed);
    const eos = new Set([...this.tokenizer.eosTokenIds, EOT_ID, ...(opts.stopTokenIds ?? [])]);
    const end = (finishReason: FinishReason, text = ""): GenerationChunk => {
      rec.finish = finishReason;
      return {
        text,
        tokens: [],
        finishReason,
        usage: { promptTokens: opts.prompt.length, completionTokens: rec.tokens },
      };
    };
    try {
      for (let step = 0; step < opts.maxTokens; step++) {
        if (this.#delayMs > 0) await new Promise((r) => setTimeout(r, this.#delayMs));
        else await Promise.resolve();
        if (opts.signal?.aborted) {
          yield end("abort");
          return;
        }
        const logits = this.logits(tokens).map((l, j) =>
          l + (opts.sampling.logit_bias.get(this.vocab[j]) ?? 0)
        );
        const j = pick(logits, opts.sampling.temperature, rng);
        const id = this.vocab[j];
        tokens.push(id);
        rec.tokens++;
        this.#generated++;
        this.#steps++;
        const lps = logSoftmax(logits);
        const logprobs = opts.logprobs == null ? undefined : [{
          token: id,
          text: this.tokenizer.tokenText(id),
          logprob: lps[j],
          top: lps.map((lp, k) => ({ token: this.vocab[k], text: "", logprob: lp }))
            .sort((a, b) => b.logprob - a.logprob).slice(0, opts.logprobs)
            .map((t) => ({ ...t, text: this.tokenizer.tokenText(t.token) })),
        }];
        if (eos.has(id) && !opts.ignoreEos) {
          const tail = stop.push(detok.flush());
          const text = tail.stopped ? tail.text : tail.text + stop.flush();
          yield { ...end("stop", text), tokens: [id], logprobs };
          return;
        }
        const r = stop.push(detok.push(id));
        if (r.stopped) {
          yield { ...end("stop", r.text), tokens: [id], logprobs };
          return;
        }
        yield { text: r.text, tokens: [id], logprobs, finishReason: null };
      }
      const tail = stop.push(detok.flush());
      yield end(
        tail.stopped ? "stop" : "length",
        tail.stopped ? tail.text : tail.text + stop.flush(),
      );
    } finally {
      if (rec.finish === null) rec.finish = "abort"; // closed early by the consumer
      this.#running--;
    }
  }

  stats(): EngineStats {
    return {
      runningSequences: this.#running,
      waitingRequests: 0,
      kvPagesUsed: this.#running,
      kvPagesTotal: 64,
      lastBatchSize: this.#running,
      maxBatchSize: 1,
      promptTokensTotal: this.#prompt,
      generatedTokensTotal: this.#generated,
      stepsTotal: this.#steps,
    };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function pick(logits: number[], temperature: number, rng: () => number): number {
  if (temperature === 0) return logits.indexOf(Math.max(...logits));
  const p = logSoftmax(logits.map((l) => l / temperature)).map(Math.exp);
  let u = rng();
  for (let j = 0; j < p.length; j++) if ((u -= p[j]) < 0) return j;
  return p.length - 1;
}

function logSoftmax(x: number[]): number[] {
  const m = Math.max(...x);
  const lse = m + Math.log(x.reduce((s, v) => s + Math.exp(v - m), 0));
  return x.map((v) => v - lse);
}

/** A small seeded uniform generator in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
