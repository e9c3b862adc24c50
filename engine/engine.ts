/**
 * The inference engine: continuous batching over a loaded model.
 *
 * One loop: admit waiting requests while KV pages and sequence slots allow; run one prefill
 * chunk (up to `prefillChunkSize` tokens, over several sequences, so long prompts interleave
 * with decoding); then one decode round over every decoding sequence. A round enqueues up to
 * `stepsAhead` decode steps at once: the sampler's tokens (sampled on the device) feed the next
 * step's embedding on the device, each step's tokens are copied into a history buffer, and the
 * round's tokens come back in one readback (each readback costs ≥ 10 ms in Deno, and blocks
 * until the GPU has run everything submitted: it is issued once the next round's first step is
 * queued, and that step is handed over as the wait ends, so the GPU does not idle). Tokens
 * sampled after a sequence stopped are discarded. Rounds shrink to one step when a sequence
 * needs the host between steps (penalties need the counts, logprobs need the logits).
 * Finished and aborted sequences free their pages at once.
 * @module
 */
import type { DeviceBuffer } from "./device.ts";
import { KvCacheFullError } from "./kv_cache.ts";
import type { Model, SeqChunk } from "./model.ts";
import { ChunkQueue, Sequence } from "./sequence.ts";
import { isPlainGreedy, samplerInputs } from "./sampler_inputs.ts";
import type { ChatTemplate, Engine, EngineStats, GenerateOptions, GenerationChunk, TokenLogprob, Tokenizer } from "./types.ts";
import { PAGE_SIZE } from "../compiler/codegen/contract.ts";

/** Inputs that stay the same from one decode step of a round to the next. */
const DECODE_KEEP: ReadonlySet<string> = new Set(["tok_seq", "page_indptr", "page_indices", "last_idx"]);

export interface EngineConfig {
  /** Sequences decoded together at most (≤ the library's max_batch_size). */
  maxNumSequence?: number;
  /** Prompt tokens per prefill chunk (≤ the library's prefill_chunk_size). */
  prefillChunkSize?: number;
  /**
   * Decode steps enqueued per round (default 16; measured on the H100: 16 beats 4 by 15% on
   * Llama-3-8B and 35–75% on Llama-3.2-1B, and beat sizing rounds to ~16 ms of GPU work).
   */
  stepsAhead?: number;
}

export class KilnEngine implements Engine {
  readonly contextWindow: number;
  readonly #waiting: Sequence[] = [];
  readonly #running: Sequence[] = [];
  readonly #maxSeqs: number;
  readonly #chunk: number;
  readonly #ahead: number;
  #nextId = 1;
  #wake: (() => void) | null = null;
  #closed = false;
  #loop: Promise<void>;
  /** Two token-history buffers: one being read back while the next round fills the other. */
  #histories: [DeviceBuffer, DeviceBuffer];
  #flip = 0;
  #inflight: Round | null = null;
  /** The names of the sampler's inputs (all written by `#prepareSample` before its run). */
  #samplerInputs: ReadonlySet<string> | null = null;
  #stats = { lastBatchSize: 0, maxBatchSize: 0, promptTokensTotal: 0, generatedTokensTotal: 0, stepsTotal: 0 };

  constructor(
    readonly model: Model,
    readonly tokenizer: Tokenizer,
    readonly chatTemplate: ChatTemplate | null,
    readonly modelId: string,
    config: EngineConfig = {},
  ) {
    const md = model.metadata;
    this.contextWindow = md.context_window_size;
    this.#maxSeqs = Math.min(config.maxNumSequence ?? md.max_batch_size, md.max_batch_size);
    this.#chunk = Math.min(config.prefillChunkSize ?? md.prefill_chunk_size, md.prefill_chunk_size);
    this.#ahead = Math.max(1, config.stepsAhead ?? 16);
    const dev = model.runtime.device;
    this.#histories = [0, 1].map((i) => dev.createBuffer(this.#ahead * this.#maxSeqs * 4, `token history ${i}`)) as [DeviceBuffer, DeviceBuffer];
    this.#loop = this.#run();
  }

  generate(opts: GenerateOptions): AsyncIterable<GenerationChunk> {
    if (this.#closed) throw new Error("the engine is closed");
    if (opts.prompt.length === 0) throw new RangeError("the prompt is empty");
    if (opts.prompt.length >= this.contextWindow) {
      throw new RangeError(`the prompt has ${opts.prompt.length} tokens; the context window is ${this.contextWindow}`);
    }
    const V = this.model.metadata.vocab_size;
    for (const t of opts.prompt) if (!(t >= 0 && t < V)) throw new RangeError(`prompt token ${t} is outside the vocabulary (${V})`);
    const out = new ChunkQueue();
    const seq = new Sequence(this.#nextId++, opts, out, this.tokenizer, this.contextWindow);
    if (seq.budget <= 0) throw new RangeError("max_tokens must be at least 1");
    opts.signal?.addEventListener("abort", () => this.#kick(), { once: true });
    this.#waiting.push(seq);
    this.#kick();
    return out;
  }

  stats(): EngineStats {
    const kv = this.model.kv;
    return {
      runningSequences: this.#running.length,
      waitingRequests: this.#waiting.length,
      kvPagesUsed: kv.usedPages,
      kvPagesTotal: kv.numPages,
      ...this.#stats,
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const s of [...this.#waiting, ...this.#running]) s.finish("abort");
    this.#kick();
    await this.#loop;
    this.model.destroy();
  }

  #kick(): void {
    this.#wake?.();
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      this.#reap();
      this.#admit();
      if (this.#running.length === 0) {
        await this.#drain();
        if (this.#running.length > 0 || this.#waiting.length > 0) continue;
        await new Promise<void>((r) => (this.#wake = r));
        this.#wake = null;
        continue;
      }
      try {
        const prefilling = this.#running.filter((s) => s.prefilled < s.prompt.length);
        if (prefilling.length > 0) {
          // the prefill's sampling reuses the sampler's buffers: finish the round in flight first
          await this.#drain();
          // a first token goes out before the next decode round is queued (queueing a round
          // of 16 steps holds the event loop for ~20 ms at 8B: the time to first token)
          if (await this.#prefill(prefilling)) await new Promise((r) => setTimeout(r, 0));
        }
        this.#reap();
        const decoding = this.#running.filter((s) => s.prefilled === s.prompt.length && !s.finished);
        if (decoding.length > 0) await this.#decodeRound(decoding);
        else await this.#drain();
      } catch (e) {
        // A device or kernel failure ends the sequences in flight with the error.
        this.#inflight = null;
        for (const s of this.#running) s.out.fail(e);
        for (const s of this.#running) this.model.kv.release(s.id);
        this.#running.length = 0;
      }
    }
  }

  /** Drop finished and aborted sequences, freeing their pages. */
  #reap(): void {
    for (const list of [this.#running, this.#waiting]) {
      for (let i = list.length - 1; i >= 0; i--) {
        const s = list[i];
        if (s.opts.signal?.aborted) s.finish("abort");
        if (s.finished) {
          this.model.kv.release(s.id);
          list.splice(i, 1);
        }
      }
    }
  }

  /** Move waiting sequences in while sequence slots and KV pages (for their prompt) allow. */
  #admit(): void {
    while (this.#waiting.length > 0 && this.#running.length < this.#maxSeqs) {
      const s = this.#waiting[0];
      const need = Math.ceil((s.prompt.length + 1) / PAGE_SIZE);
      const reserved = this.#running.reduce((a, r) => a + Math.max(0, Math.ceil((r.prompt.length + 1) / PAGE_SIZE) - this.model.kv.length(r.id)), 0);
      if (need + reserved > this.model.kv.freePages) {
        if (this.#running.length === 0) {
          this.#waiting.shift();
          s.out.fail(new KvCacheFullError(`the prompt needs ${need} KV pages; the cache has ${this.model.kv.freePages} free`));
          continue;
        }
        return;
      }
      this.#running.push(this.#waiting.shift()!);
    }
  }

  /** One prefill chunk over the sequences still in their prompt; samples the first token of
   * those that finish it. Returns whether any did. */
  async #prefill(seqs: Sequence[]): Promise<boolean> {
    const chunks: SeqChunk[] = [];
    const done: Sequence[] = [];
    let budget = this.#chunk;
    for (const s of seqs) {
      if (budget === 0 || chunks.length === this.model.metadata.max_batch_size) break;
      const take = Math.min(budget, s.prompt.length - s.prefilled);
      chunks.push({ seq: s.id, tokens: s.prompt.slice(s.prefilled, s.prefilled + take), start: s.prefilled });
      budget -= take;
      if (s.prefilled + take === s.prompt.length) done.push(s);
    }
    const { m, fn } = this.model.run(chunks.length === 1 ? "prefill" : "batch_prefill", chunks);
    chunks.forEach((c, i) => (seqs[i].prefilled += c.tokens.length));
    this.#stats.promptTokensTotal += chunks.reduce((a, c) => a + c.tokens.length, 0);
    if (done.length === 0) return false;
    // rows of the logits are the chunks' last tokens, in chunk order
    const rows = chunks.map((_, i) => (done.includes(seqs[i]) ? i : -1)).filter((i) => i >= 0);
    const all = seqs.slice(0, chunks.length);
    const tokens = await this.#sampleRows(fn, m, rows.map((i) => all[i]), rows);
    rows.forEach((i, j) => all[i].accept(tokens[j].token, tokens[j].logprob));
    this.#stats.generatedTokensTotal += rows.length;
    return true;
  }

  /** Sample rows `rows` of the logits of `fn` (m rows) for `seqs`, reading the tokens back. */
  async #sampleRows(fn: string, m: number, seqs: Sequence[], rows: number[]): Promise<{ token: number; logprob?: TokenLogprob }[]> {
    const V = this.model.metadata.vocab_size;
    const logits = this.model.runtime.output(fn, "logits");
    let src = logits;
    if (rows.length !== m || rows.some((r, i) => r !== i)) {
      // gather the wanted rows into a buffer of their own, in order
      src = this.model.runtime.device.createBuffer(rows.length * V * 4, "sample rows");
      rows.forEach((r, i) => this.model.runtime.device.copy(logits, r * V * 4, src, i * V * 4, V * 4));
    }
    const logprobs = await this.#logprobs(src, seqs);
    const tokens = this.#sample(seqs, src);
    const data = new Uint32Array(await this.model.runtime.device.read(tokens, seqs.length * 4));
    if (src !== logits) this.model.runtime.device.release(src);
    return Array.from(data, (token, i) => ({ token, logprob: logprobs[i] ? withToken(logprobs[i]!, token, seqs[i].opts.logprobs ?? 0, this.tokenizer) : undefined }));
  }

  /**
   * Queue the sampler over `b` rows of `logits`; returns the device buffer its tokens land in.
   * All-greedy rows with nothing to process take the one-kernel argmax. With `again`, the rows
   * are the previous call's: only the uniforms are new.
   */
  #sample(seqs: Sequence[], logits: DeviceBuffer, again = false): DeviceBuffer {
    return this.#prepareSample(seqs, again)(logits);
  }

  /**
   * `#sample` in two halves: the sampler's inputs are written now, and the returned function
   * queues the sampler over the logits given later. A decode step writes them before its
   * forward: a write submits what is queued, so the step's dispatches then stay queued as one
   * (held back whole at a round's readback, `#enqueue`).
   */
  #prepareSample(seqs: Sequence[], again = false): (logits: DeviceBuffer) => DeviceBuffer {
    const rt = this.model.runtime;
    const vars = { n: 1, s: 1, m: seqs.length };
    if (seqs.every((s) => isPlainGreedy(s.opts.sampling))) {
      return (logits) => {
        rt.run("sample_argmax", {}, vars, { logits });
        return rt.output("sample_argmax", "tokens");
      };
    }
    if (again) {
      rt.write("sample", { uniform: Float32Array.from(seqs, (s) => s.rng.next()) }, vars);
    } else {
      const cap = (rt.fn("sample").inputs.find((i) => i.name === "entries")!.shape[0] as number) / 4;
      const rows = seqs.map((s) => ({ sampling: s.opts.sampling, counts: s.counts, promptSet: s.promptSet, uniform: s.rng.next() }));
      rt.write("sample", samplerInputs(rows, cap), vars);
    }
    this.#samplerInputs ??= new Set(rt.fn("sample").inputs.map((i) => i.name));
    const written = this.#samplerInputs;
    return (logits) => {
      rt.run("sample", {}, vars, { logits }, written);
      return rt.output("sample", "tokens");
    };
  }

  /** Log-softmax of the rows whose sequences asked for logprobs (read back; one-step rounds only). */
  async #logprobs(logits: DeviceBuffer, seqs: Sequence[]): Promise<(Float32Array | null)[]> {
    if (!seqs.some((s) => s.opts.logprobs != null)) return seqs.map(() => null);
    const V = this.model.metadata.vocab_size;
    const data = new Float32Array(await this.model.runtime.device.read(logits, seqs.length * V * 4));
    return seqs.map((s, r) => {
      if (s.opts.logprobs == null) return null;
      const row = data.subarray(r * V, (r + 1) * V);
      let mx = -Infinity;
      for (const v of row) mx = Math.max(mx, v);
      let sum = 0;
      for (const v of row) sum += Math.exp(v - mx);
      const lse = mx + Math.log(sum);
      return row.map((v) => v - lse);
    });
  }

  /**
   * Decode for every decoding sequence. Rounds are pipelined: while the batch stays the same,
   * the next round is enqueued (its first step reading the last sampled tokens on the device)
   * before the previous round's tokens are read back, so the GPU works through the readback.
   */
  async #decodeRound(all: Sequence[]): Promise<void> {
    const seqs = all.slice(0, this.#maxSeqs);
    const host = seqs.some((s) => s.needsHostEachStep);
    const prev = this.#inflight;
    if (prev) {
      this.#inflight = null;
      const same = prev.seqs.length === seqs.length && prev.seqs.every((s, i) => s === seqs[i]);
      const K = Math.min(this.#ahead, ...seqs.map((s) => s.budget - prev.K));
      if (same && !host && K >= 1 && this.#waiting.length === 0 && this.#reserve(seqs, prev.K + K)) {
        this.#inflight = this.#enqueue(seqs, K, prev.K, prev);
      }
      return await this.#complete(prev);
    }
    const K = host ? 1 : Math.max(1, Math.min(this.#ahead, ...seqs.map((s) => s.budget)));
    if (!this.#reserve(seqs, K)) {
      // sequences that cannot grow ended with "length"; the rest go on next time
      return;
    }
    const round = this.#enqueue(seqs, K, 0);
    if (host) await this.#complete(round);
    else this.#inflight = round;
  }

  /** Reserve pages for `ahead` more tokens of each sequence; one that cannot grow ends. */
  #reserve(seqs: Sequence[], ahead: number): boolean {
    let ok = true;
    for (const s of seqs) {
      try {
        this.model.kv.reserve(s.id, s.position + ahead);
      } catch (e) {
        if (!(e instanceof KvCacheFullError)) throw e;
        s.finish("length");
        ok = false;
      }
    }
    return ok;
  }

  /** Read back and hand out the round still in flight, if any (before the batch changes). */
  async #drain(): Promise<void> {
    const prev = this.#inflight;
    this.#inflight = null;
    if (prev) await this.#complete(prev);
  }

  /**
   * Queue K decode steps for `seqs`, `offset` tokens past what the host has accepted (a chained
   * round's first step reads `prev`'s last sampled tokens on the device); each step's tokens are
   * copied into a history buffer. `prev`'s history is read back once this round's first step is
   * queued (`readSubmitted`): Deno's readback waits for the GPU to finish all it was given, and
   * that step, handed over as the wait ends, keeps the GPU busy while the host queues the rest.
   * A round's own readback starts there, or in `#complete` when no round follows it.
   */
  #enqueue(seqs: Sequence[], K: number, offset: number, prev: Round | null = null): Round {
    const b = seqs.length;
    const fn = b === 1 ? "decode" : "batch_decode";
    const dev = this.model.runtime.device;
    const history = this.#histories[this.#flip ^= 1];
    const host = seqs.some((s) => s.needsHostEachStep);
    const round: Round = { seqs, K, history, data: null, logprobs: [], tokens: prev?.tokens ?? null };
    const step = (k: number) => {
      const fromHost = k === 0 && offset === 0;
      const chunks = seqs.map((s) => ({ seq: s.id, tokens: [fromHost ? s.lastToken : 0], start: s.position + offset + k }));
      // after the first step only the positions (and the uniforms) change; the tokens come from the sampler
      const ran = this.model.run(fn, chunks, false, fromHost ? {} : { input_ids: round.tokens! }, k === 0 ? undefined : DECODE_KEEP).fn;
      return this.model.runtime.output(ran, "logits");
    };
    const keep = (k: number) => dev.copy(round.tokens!, 0, history, k * b * 4, b * 4);
    if (host) {
      // one step, its logprobs read back first (rounds that need the host are not chained)
      round.data = (async () => {
        for (let k = 0; k < K; k++) {
          const logits = step(k);
          round.logprobs = await this.#logprobs(logits, seqs);
          round.tokens = this.#sample(seqs, logits, k > 0);
          keep(k);
        }
        return await dev.read(history, K * b * 4);
      })();
      return round;
    }
    for (let k = 0; k < K; k++) {
      const sample = this.#prepareSample(seqs, k > 0); // (its writes before the step's forward)
      round.tokens = sample(step(k));
      keep(k);
      if (k === 0 && prev) prev.data ??= dev.readSubmitted(prev.history, prev.K * prev.seqs.length * 4);
    }
    return round;
  }

  /** Wait for a round's tokens and give them to their sequences (none after a finish). */
  async #complete(round: Round): Promise<void> {
    const { seqs, K } = round;
    const b = seqs.length;
    round.data ??= this.model.runtime.device.read(round.history, K * b * 4);
    const data = new Uint32Array(await round.data);
    this.#stats.stepsTotal += K;
    this.#stats.lastBatchSize = b;
    this.#stats.maxBatchSize = Math.max(this.#stats.maxBatchSize, b);
    for (let k = 0; k < K; k++) {
      seqs.forEach((s, r) => {
        if (s.finished) return;
        const token = data[k * b + r];
        const lp = round.logprobs[r];
        s.accept(token, lp ? withToken(lp, token, s.opts.logprobs ?? 0, this.tokenizer) : undefined);
        this.#stats.generatedTokensTotal++;
      });
    }
  }
}

/** A decode round in flight: its sequences, steps, and the readback of their tokens. */
interface Round {
  seqs: Sequence[];
  K: number;
  /** Where each step's tokens are copied. */
  history: DeviceBuffer;
  /** The readback of `history`, once started (see `#enqueue`). */
  data: Promise<ArrayBuffer> | null;
  logprobs: (Float32Array | null)[];
  /** The device buffer that holds the last step's tokens (a chained round starts from it). */
  tokens: DeviceBuffer | null;
}

/** The chosen token's logprob and the `n` most likely alternatives. */
function withToken(lp: Float32Array, token: number, n: number, tok: Tokenizer): TokenLogprob {
  const top: { token: number; text: string; logprob: number }[] = [];
  if (n > 0) {
    // one pass keeping the n best (lowest id first on ties), not a sort of the vocabulary
    const best: number[] = [];
    for (let i = 0; i < lp.length; i++) {
      if (best.length === n && lp[i] <= lp[best[n - 1]]) continue;
      let at = best.length;
      while (at > 0 && lp[best[at - 1]] < lp[i]) at--;
      best.splice(at, 0, i);
      if (best.length > n) best.pop();
    }
    for (const i of best) top.push({ token: i, text: tok.tokenText(i), logprob: lp[i] });
  }
  return { token, text: tok.tokenText(token), logprob: lp[token], top };
}
