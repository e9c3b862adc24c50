/**
 * One request in the engine: its tokens, position in the KV cache, sampling state, and the
 * text pipeline (incremental detokenizer → stop matcher) that turns tokens into chunks.
 * @module
 */
import { IncrementalDetokenizer } from "./detokenizer.ts";
import { StopMatcher } from "./stop_matcher.ts";
import { SamplingRng } from "./rng.ts";
import type { FinishReason, GenerateOptions, GenerationChunk, TokenLogprob, Tokenizer } from "./types.ts";

/** An async queue of chunks: the engine pushes, `generate()`'s caller iterates. */
export class ChunkQueue implements AsyncIterable<GenerationChunk> {
  #items: GenerationChunk[] = [];
  #wait: (() => void) | null = null;
  #done = false;
  #error: unknown = null;

  push(c: GenerationChunk): void {
    this.#items.push(c);
    if (c.finishReason) this.#done = true;
    this.#wait?.();
  }

  fail(e: unknown): void {
    this.#error = e;
    this.#done = true;
    this.#wait?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<GenerationChunk> {
    while (true) {
      if (this.#items.length > 0) {
        const c = this.#items.shift()!;
        yield c;
        if (c.finishReason) return;
        continue;
      }
      if (this.#error) throw this.#error;
      if (this.#done) return;
      await new Promise<void>((r) => (this.#wait = r));
      this.#wait = null;
    }
  }
}

export class Sequence {
  /** Prompt tokens already in the KV cache. */
  prefilled = 0;
  readonly generated: number[] = [];
  /** Generated-token counts (for presence/frequency penalties). */
  readonly counts = new Map<number, number>();
  readonly promptSet: Set<number>;
  readonly rng: SamplingRng;
  finished: FinishReason | null = null;
  readonly startedAt = performance.now();
  firstTokenAt: number | null = null;
  readonly #detok: IncrementalDetokenizer;
  readonly #stop: StopMatcher;
  readonly #eos: Set<number>;

  constructor(
    readonly id: number,
    readonly opts: GenerateOptions,
    readonly out: ChunkQueue,
    tokenizer: Tokenizer,
    readonly contextWindow: number,
  ) {
    this.promptSet = new Set(opts.prompt);
    this.rng = new SamplingRng(opts.sampling.seed ?? Math.floor(Math.random() * 2 ** 32));
    this.#detok = new IncrementalDetokenizer(tokenizer, { prompt: opts.prompt });
    this.#stop = new StopMatcher(opts.stop ?? []);
    this.#eos = new Set([...(opts.ignoreEos ? [] : tokenizer.eosTokenIds), ...(opts.stopTokenIds ?? [])]);
  }

  get prompt(): readonly number[] {
    return this.opts.prompt;
  }

  /** Tokens in the KV cache (prompt + generated, the last generated one not yet fed back). */
  get position(): number {
    return this.prefilled + Math.max(0, this.generated.length - 1);
  }

  get lastToken(): number {
    return this.generated[this.generated.length - 1];
  }

  /** Tokens this sequence may still generate. */
  get budget(): number {
    return Math.min(this.opts.maxTokens - this.generated.length, this.contextWindow - this.prompt.length - this.generated.length);
  }

  /** Needs the CPU to know every generated token before the next step (penalties, logprobs). */
  get needsHostEachStep(): boolean {
    const s = this.opts.sampling;
    return s.presence_penalty !== 0 || s.frequency_penalty !== 0 || s.repetition_penalty !== 1 || this.opts.logprobs != null;
  }

  /** Take one sampled token: emit its text, or finish. Tokens after a finish are ignored. */
  accept(token: number, logprob?: TokenLogprob): void {
    if (this.finished) return;
    this.firstTokenAt ??= performance.now();
    this.generated.push(token);
    this.counts.set(token, (this.counts.get(token) ?? 0) + 1);
    if (this.#eos.has(token)) return this.finish("stop", [token], logprob);
    const piece = this.#stop.push(this.#detok.push(token));
    if (piece.stopped) return this.finish("stop", [token], logprob, piece.text);
    if (this.budget <= 0) return this.finish("length", [token], logprob, piece.text);
    this.out.push({ text: piece.text, tokens: [token], logprobs: logprob ? [logprob] : undefined, finishReason: null });
  }

  /** End the sequence, flushing held text (unless a stop string ended it). */
  finish(reason: FinishReason, tokens: number[] = [], logprob?: TokenLogprob, text = ""): void {
    if (this.finished) return;
    this.finished = reason;
    if (!this.#stop.stopped) text += this.#stop.push(this.#detok.flush()).text + this.#stop.flush();
    this.out.push({
      text,
      tokens,
      logprobs: logprob ? [logprob] : undefined,
      finishReason: reason,
      usage: { promptTokens: this.prompt.length, completionTokens: this.generated.length },
    });
  }
}
