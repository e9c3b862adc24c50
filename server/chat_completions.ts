/**
 * `POST /v1/chat/completions`: render the chat template, run `n` generations, answer as one
 * `chat.completion` or as a stream of `chat.completion.chunk` events.
 * @module
 */
import type { Context } from "hono";
import type { TokenLogprob } from "../engine/types.ts";
import { badRequest, cancelled } from "./errors.ts";
import { readJson, requestSignal, type ServerDeps } from "./context.ts";
import { generateOptions, maxTokensFor, mergeGenerations } from "./generation.ts";
import { checkModel } from "./models.ts";
import { sseResponse } from "./sse.ts";
import { validateChatRequest } from "./validate.ts";

const encoder = new TextEncoder();

/** The handler of `POST /v1/chat/completions`. */
export function chatCompletions(deps: ServerDeps): (c: Context) => Promise<Response> {
  const { engine, metrics } = deps;
  return async (c) => {
    const startedAt = performance.now();
    const req = validateChatRequest(await readJson(c), { vocabSize: engine.tokenizer.vocabSize });
    checkModel(deps, req.model);
    if (engine.chatTemplate === null) {
      throw badRequest(
        `model ${deps.modelId} has no chat template; use /v1/completions with a plain prompt`,
        "messages",
        "no_chat_template",
      );
    }
    let text: string;
    try {
      text = engine.chatTemplate.render([...req.messages], {
        addGenerationPrompt: req.addGenerationPrompt,
      });
    } catch (e) {
      if (e instanceof TypeError) throw badRequest(e.message, "messages");
      throw e;
    }
    // The template writes BOS and friends itself.
    const prompt = engine.tokenizer.encode(text, { addSpecialTokens: false });
    const maxTokens = maxTokensFor(req, prompt.length, engine.contextWindow, "messages");
    const { signal, controller } = requestSignal(c);
    const runs = Array.from({ length: req.n }, (_, i) => ({
      index: i,
      options: generateOptions(req, prompt, maxTokens, req.logprobs, i, signal),
    }));
    const events = mergeGenerations(engine, runs, metrics, startedAt);
    const id = `chatcmpl-${crypto.randomUUID().replaceAll("-", "")}`;
    const created = Math.floor(Date.now() / 1000);
    const head = { id, object: "chat.completion.chunk", created, model: deps.modelId };
    let completionTokens = 0;
    const usage = () => ({
      prompt_tokens: prompt.length,
      completion_tokens: completionTokens,
      total_tokens: prompt.length + completionTokens,
    });
    const wantLogprobs = req.logprobs !== null;

    if (req.stream) {
      const withUsage = req.includeUsage ? { usage: null } : {};
      const sse = async function* (): AsyncGenerator<unknown> {
        for (let i = 0; i < req.n; i++) {
          yield {
            ...head,
            choices: [{
              index: i,
              delta: { role: "assistant", content: "" },
              logprobs: null,
              finish_reason: null,
            }],
            ...withUsage,
          };
        }
        for await (const { index, chunk } of events) {
          completionTokens += chunk.tokens.length;
          const logprobs = wantLogprobs && chunk.logprobs
            ? { content: chunk.logprobs.map(chatLogprob) }
            : null;
          if (chunk.text !== "" || logprobs) {
            yield {
              ...head,
              choices: [{ index, delta: { content: chunk.text }, logprobs, finish_reason: null }],
              ...withUsage,
            };
          }
          if (chunk.finishReason !== null) {
            yield {
              ...head,
              choices: [{ index, delta: {}, logprobs: null, finish_reason: finish(chunk) }],
              ...withUsage,
            };
          }
        }
        metrics.addTokens(prompt.length, completionTokens);
        if (req.includeUsage) yield { ...head, choices: [], usage: usage() };
      };
      return sseResponse(sse(), () => controller.abort());
    }

    const choices = Array.from({ length: req.n }, (_, index) => ({
      index,
      text: "",
      logprobs: [] as TokenLogprob[],
      finish: null as string | null,
    }));
    for await (const { index, chunk } of events) {
      const ch = choices[index];
      ch.text += chunk.text;
      if (chunk.logprobs) ch.logprobs.push(...chunk.logprobs);
      completionTokens += chunk.tokens.length;
      if (chunk.finishReason !== null) ch.finish = finish(chunk);
    }
    if (signal.aborted) throw cancelled();
    metrics.addTokens(prompt.length, completionTokens);
    return c.json({
      id,
      object: "chat.completion",
      created,
      model: deps.modelId,
      choices: choices.map((ch) => ({
        index: ch.index,
        message: { role: "assistant", content: ch.text },
        logprobs: wantLogprobs ? { content: ch.logprobs.map(chatLogprob) } : null,
        finish_reason: ch.finish ?? "stop",
      })),
      usage: usage(),
    });
  };
}

function finish(chunk: { finishReason: string | null }): string {
  return chunk.finishReason === "length" ? "length" : "stop";
}

function chatLogprob(lp: TokenLogprob) {
  return {
    token: lp.text,
    logprob: lp.logprob,
    bytes: [...encoder.encode(lp.text)],
    top_logprobs: lp.top.map((t) => ({
      token: t.text,
      logprob: t.logprob,
      bytes: [...encoder.encode(t.text)],
    })),
  };
}
