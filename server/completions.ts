/**
 * `POST /v1/completions`: prompts as text or token ids, `n` generations each, `echo`, integer
 * `logprobs`; one `text_completion` or a stream of them.
 * @module
 */
import type { Context } from "hono";
import type { TokenLogprob } from "../engine/types.ts";
import { readJson, requestSignal, type ServerDeps } from "./context.ts";
import { badRequest, cancelled } from "./errors.ts";
import { generateOptions, maxTokensFor, mergeGenerations } from "./generation.ts";
import { checkModel } from "./models.ts";
import { sseResponse } from "./sse.ts";
import { validateCompletionRequest } from "./validate.ts";

/** The handler of `POST /v1/completions`. */
export function completions(deps: ServerDeps): (c: Context) => Promise<Response> {
  const { engine, metrics } = deps;
  const tok = engine.tokenizer;
  return async (c) => {
    const startedAt = performance.now();
    const req = validateCompletionRequest(await readJson(c), { vocabSize: tok.vocabSize });
    checkModel(deps, req.model);
    if (req.echo && req.logprobs !== null) {
      throw badRequest("'echo' with 'logprobs' (prompt logprobs) is not supported", "echo");
    }
    const prompts = req.prompts.map((p) => {
      const ids = typeof p === "string" ? tok.encode(p, { addSpecialTokens: true }) : [...p];
      return { ids, text: typeof p === "string" ? p : tok.decode(ids) };
    });
    const budgets = prompts.map((p) =>
      maxTokensFor(req, p.ids.length, engine.contextWindow, "prompt")
    );
    const { signal, controller } = requestSignal(c);
    const runs = prompts.flatMap((p, pi) =>
      Array.from({ length: req.n }, (_, j) => ({
        index: pi * req.n + j,
        options: generateOptions(req, p.ids, budgets[pi], req.logprobs, j, signal),
      }))
    );
    const promptOf = (index: number) => prompts[Math.floor(index / req.n)];
    const events = mergeGenerations(engine, runs, metrics, startedAt);
    const id = `cmpl-${crypto.randomUUID().replaceAll("-", "")}`;
    const created = Math.floor(Date.now() / 1000);
    const head = { id, object: "text_completion", created, model: deps.modelId };
    const promptTokens = prompts.reduce((s, p) => s + p.ids.length, 0);
    let completionTokens = 0;
    const usage = () => ({
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    });
    // Text emitted so far per choice: logprobs' text_offset counts from its start.
    const offsets = runs.map((r) => (req.echo ? promptOf(r.index).text.length : 0));

    if (req.stream) {
      const withUsage = req.includeUsage ? { usage: null } : {};
      const choice = (index: number, text: string, logprobs: unknown, finish: string | null) => ({
        ...head,
        choices: [{ index, text, logprobs, finish_reason: finish }],
        ...withUsage,
      });
      const sse = async function* (): AsyncGenerator<unknown> {
        if (req.echo) {
          for (const r of runs) yield choice(r.index, promptOf(r.index).text, null, null);
        }
        for await (const { index, chunk } of events) {
          completionTokens += chunk.tokens.length;
          const lp = chunk.logprobs?.length
            ? completionLogprobs(req.logprobs, chunk.logprobs, offsets, index)
            : null;
          const fin = chunk.finishReason === null ? null : finish(chunk.finishReason);
          if (chunk.text !== "" || lp !== null || fin !== null) {
            yield choice(index, chunk.text, lp, fin);
          }
        }
        metrics.addTokens(promptTokens, completionTokens);
        if (req.includeUsage) yield { ...head, choices: [], usage: usage() };
      };
      return sseResponse(sse(), () => controller.abort());
    }

    const choices = runs.map((r) => ({
      index: r.index,
      text: req.echo ? promptOf(r.index).text : "",
      logprobs: [] as TokenLogprob[],
      finish: "stop",
    }));
    for await (const { index, chunk } of events) {
      const ch = choices[index];
      ch.text += chunk.text;
      if (chunk.logprobs) ch.logprobs.push(...chunk.logprobs);
      completionTokens += chunk.tokens.length;
      if (chunk.finishReason !== null) ch.finish = finish(chunk.finishReason);
    }
    if (signal.aborted) throw cancelled();
    metrics.addTokens(promptTokens, completionTokens);
    return c.json({
      ...head,
      choices: choices.map((ch) => ({
        index: ch.index,
        text: ch.text,
        logprobs: completionLogprobs(req.logprobs, ch.logprobs, offsets, ch.index),
        finish_reason: ch.finish,
      })),
      usage: usage(),
    });
  };
}

function finish(reason: string): string {
  return reason === "length" ? "length" : "stop";
}

/** The legacy completions logprobs record; advances `offsets[index]` past the tokens' text. */
function completionLogprobs(
  k: number | null,
  lps: readonly TokenLogprob[],
  offsets: number[],
  index: number,
) {
  if (k === null) return null;
  const textOffset: number[] = [];
  for (const lp of lps) {
    textOffset.push(offsets[index]);
    offsets[index] += lp.text.length;
  }
  return {
    tokens: lps.map((lp) => lp.text),
    token_logprobs: lps.map((lp) => lp.logprob),
    top_logprobs: lps.map((lp) =>
      Object.fromEntries([
        ...lp.top.slice(0, k).map((t) => [t.text, t.logprob] as const),
        [lp.text, lp.logprob] as const,
      ])
    ),
    text_offset: textOffset,
  };
}
