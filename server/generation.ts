/**
 * Running the generations of one request: the token budget check, the engine options of each
 * choice, and the merge of `n` concurrent generations into one stream of choice events.
 * @module
 */
import type { Engine, GenerateOptions, GenerationChunk } from "../engine/types.ts";
import { badRequest } from "./errors.ts";
import type { MetricsRegistry } from "./metrics_registry.ts";
import type { GenerationRequest } from "./validate.ts";

/** One chunk of one choice. */
export interface ChoiceEvent {
  readonly index: number;
  readonly chunk: GenerationChunk;
}

/** The token budget of a prompt: 400 when the prompt (plus max_tokens) exceeds the context. */
export function maxTokensFor(
  req: GenerationRequest,
  promptLength: number,
  contextWindow: number,
  promptParam: "messages" | "prompt",
): number {
  if (promptLength === 0) {
    throw badRequest("the prompt is empty (no tokens): send some text or token ids", promptParam);
  }
  if (promptLength >= contextWindow) {
    throw badRequest(
      `the prompt is ${promptLength} tokens; this model's context window is ${contextWindow} ` +
        `tokens, which must also hold at least one generated token: shorten the prompt`,
      promptParam,
      "context_length_exceeded",
    );
  }
  const room = contextWindow - promptLength;
  if (req.maxTokens === null) return room;
  if (req.maxTokens > room) {
    throw badRequest(
      `the prompt is ${promptLength} tokens and max_tokens is ${req.maxTokens}, together more than ` +
        `the context window of ${contextWindow} tokens: lower max_tokens to at most ${room}`,
      "max_tokens",
      "context_length_exceeded",
    );
  }
  return req.maxTokens;
}

/** The engine options for choice `index` (seeded requests get seed + index so n > 1 differs). */
export function generateOptions(
  req: GenerationRequest,
  prompt: readonly number[],
  maxTokens: number,
  logprobs: number | null,
  index: number,
  signal: AbortSignal,
): GenerateOptions {
  const { seed, ...rest } = req.sampling;
  return {
    prompt,
    maxTokens,
    sampling: seed === undefined ? rest : { ...rest, seed: seed + index },
    stop: req.stop,
    stopTokenIds: req.stopTokenIds,
    ignoreEos: req.ignoreEos,
    logprobs,
    signal,
  };
}

/**
 * Run one generation per entry of `runs` concurrently and yield their chunks as they come,
 * recording time to first token and inter-token latency. Returning early (client gone) closes
 * every generation still running.
 */
export async function* mergeGenerations(
  engine: Engine,
  runs: readonly { index: number; options: GenerateOptions }[],
  metrics: MetricsRegistry,
  startedAt: number,
): AsyncGenerator<ChoiceEvent> {
  type Step = { i: number; r: IteratorResult<GenerationChunk> };
  const iters = runs.map((r) => engine.generate(r.options)[Symbol.asyncIterator]());
  const last = runs.map(() => -1);
  const pending = new Map<number, Promise<Step>>();
  const pull = (i: number) => {
    const p = iters[i].next().then((r) => ({ i, r }));
    p.catch(() => {}); // surfaced by the race below; never unhandled
    pending.set(i, p);
  };
  iters.forEach((_, i) => pull(i));
  try {
    while (pending.size > 0) {
      const { i, r } = await Promise.race(pending.values());
      if (r.done) {
        pending.delete(i);
        continue;
      }
      pull(i);
      const now = performance.now();
      const k = r.value.tokens.length;
      if (k > 0) {
        if (last[i] < 0) metrics.observeTtft((now - startedAt) / 1000);
        else for (let t = 0; t < k; t++) metrics.observeItl((now - last[i]) / 1000 / k);
        last[i] = now;
      }
      yield { index: runs[i].index, chunk: r.value };
    }
  } finally {
    await Promise.allSettled([...pending.keys()].map((i) => iters[i].return?.()));
  }
}
