/**
 * Request validation, once, at the edge: a parsed JSON body becomes a typed, frozen request or
 * a 400 `invalid_request_error` naming the parameter. Unknown fields are ignored (clients send
 * extras); known fields must have the right type and range.
 * @module
 */
import type { ChatMessage, SamplingParams } from "../engine/types.ts";
import { badRequest } from "./errors.ts";

/** Most generations one request may ask for (`n` × number of prompts). */
export const MAX_N = 16;
/** Most alternatives per token (`top_logprobs`, completions' `logprobs`). */
export const MAX_LOGPROBS = 20;
const MAX_STOPS = 16;

/** What validation needs to know about the served model. */
export interface ValidationContext {
  readonly vocabSize: number;
}

/** Fields shared by chat and completion requests. */
export interface GenerationRequest {
  readonly model: string;
  readonly n: number;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  /** null: up to the context window (chat) or the endpoint default (completions). */
  readonly maxTokens: number | null;
  readonly sampling: Readonly<SamplingParams>;
  readonly stop: readonly string[];
  readonly stopTokenIds: readonly number[];
  readonly ignoreEos: boolean;
}

export interface ChatRequest extends GenerationRequest {
  readonly messages: readonly ChatMessage[];
  /** null: no logprobs; else the number of alternatives per token. */
  readonly logprobs: number | null;
  readonly addGenerationPrompt: boolean;
}

export interface CompletionRequest extends GenerationRequest {
  /** One or more prompts, each text or token ids. */
  readonly prompts: readonly (string | readonly number[])[];
  readonly echo: boolean;
  readonly logprobs: number | null;
}

type Body = Record<string, unknown>;
const ROLES = new Set(["system", "user", "assistant", "tool", "developer"]);

/** Validate a `/v1/chat/completions` body. */
export function validateChatRequest(raw: unknown, ctx: ValidationContext): ChatRequest {
  const b = asObject(raw);
  const messages = b.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw badRequest("'messages' must be a non-empty array", "messages");
  }
  if (Array.isArray(b.tools) && b.tools.length > 0) {
    throw badRequest(
      "'tools' (function calling) is not supported",
      "tools",
      "unsupported_parameter",
    );
  }
  const format = (b.response_format as Body | null | undefined)?.type;
  if (format !== undefined && format !== null && format !== "text") {
    throw badRequest(
      `'response_format' ${String(format)} is not supported; only "text"`,
      "response_format",
      "unsupported_parameter",
    );
  }
  const logprobs = optBool(b, "logprobs") ?? false;
  const top = optInt(b, "top_logprobs", 0, MAX_LOGPROBS);
  if (top !== null && !logprobs) {
    throw badRequest("'top_logprobs' requires 'logprobs': true", "top_logprobs");
  }
  return Object.freeze({
    ...generation(b, ctx, null),
    messages: Object.freeze(messages.map(message)),
    logprobs: logprobs ? (top ?? 0) : null,
    addGenerationPrompt: optBool(b, "add_generation_prompt") ?? true,
  });
}

/** Validate a `/v1/completions` body. */
export function validateCompletionRequest(
  raw: unknown,
  ctx: ValidationContext,
): CompletionRequest {
  const b = asObject(raw);
  const prompts = promptList(b.prompt, ctx);
  if (b.suffix !== undefined && b.suffix !== null) {
    throw badRequest("'suffix' is not supported", "suffix", "unsupported_parameter");
  }
  const gen = generation(b, ctx, 16);
  const bestOf = optInt(b, "best_of", 1, MAX_N);
  if (bestOf !== null && bestOf !== gen.n) {
    throw badRequest("'best_of' other than 'n' is not supported", "best_of");
  }
  if (gen.n * prompts.length > MAX_N) {
    throw badRequest(
      `n × prompts = ${gen.n * prompts.length} generations; at most ${MAX_N} per request`,
      "n",
    );
  }
  return Object.freeze({
    ...gen,
    prompts: Object.freeze(prompts),
    echo: optBool(b, "echo") ?? false,
    logprobs: optInt(b, "logprobs", 0, MAX_LOGPROBS),
  });
}

function generation(b: Body, ctx: ValidationContext, defaultMax: number | null): GenerationRequest {
  if (typeof b.model !== "string" || b.model.length === 0) {
    throw badRequest("'model' must be a non-empty string", "model");
  }
  const streamOptions = b.stream_options;
  if (streamOptions !== undefined && streamOptions !== null && typeof streamOptions !== "object") {
    throw badRequest("'stream_options' must be an object", "stream_options");
  }
  const stream = optBool(b, "stream") ?? false;
  const includeUsage = streamOptions ? optBool(streamOptions as Body, "include_usage") : null;
  if (streamOptions && !stream) {
    throw badRequest("'stream_options' is only allowed with 'stream': true", "stream_options");
  }
  const maxTokens = optInt(b, "max_completion_tokens", 1, Number.MAX_SAFE_INTEGER) ??
    optInt(b, "max_tokens", 1, Number.MAX_SAFE_INTEGER) ?? defaultMax;
  const topK = optInt(b, "top_k", -1, Number.MAX_SAFE_INTEGER) ?? 0;
  const seed = optInt(b, "seed", Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const sampling: SamplingParams = {
    temperature: optNum(b, "temperature", 0, 2) ?? 1,
    top_p: optNum(b, "top_p", 0, 1, true) ?? 1,
    top_k: topK < 0 ? 0 : topK,
    presence_penalty: optNum(b, "presence_penalty", -2, 2) ?? 0,
    frequency_penalty: optNum(b, "frequency_penalty", -2, 2) ?? 0,
    repetition_penalty: optNum(b, "repetition_penalty", 0, 10, true) ?? 1,
    logit_bias: logitBias(b.logit_bias, ctx),
    ...(seed === null ? {} : { seed }),
  };
  return {
    model: b.model,
    n: optInt(b, "n", 1, MAX_N) ?? 1,
    stream,
    includeUsage: includeUsage ?? false,
    maxTokens,
    sampling: Object.freeze(sampling),
    stop: Object.freeze(stopList(b.stop)),
    stopTokenIds: Object.freeze(tokenIds(b.stop_token_ids ?? [], "stop_token_ids", ctx, true)),
    ignoreEos: optBool(b, "ignore_eos") ?? false,
  };
}

function asObject(raw: unknown): Body {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw badRequest("the request body must be a JSON object");
  }
  return raw as Body;
}

function message(m: unknown, i: number): ChatMessage {
  const param = `messages[${i}]`;
  if (m === null || typeof m !== "object") throw badRequest(`${param} must be an object`, param);
  const { role, content, name } = m as Body;
  if (typeof role !== "string" || !ROLES.has(role)) {
    throw badRequest(`${param}.role must be one of ${[...ROLES].join(", ")}`, `${param}.role`);
  }
  let text: string;
  if (typeof content === "string") text = content;
  else if ((content === null || content === undefined) && role === "assistant") text = "";
  else if (Array.isArray(content)) {
    text = content.map((part, j) => {
      const p = part as Body;
      if (p?.type !== "text" || typeof p.text !== "string") {
        throw badRequest(
          `${param}.content[${j}]: only {type: "text", text} parts are supported`,
          `${param}.content`,
        );
      }
      return p.text;
    }).join("");
  } else throw badRequest(`${param}.content must be a string or text parts`, `${param}.content`);
  if (name !== undefined && typeof name !== "string") {
    throw badRequest(`${param}.name must be a string`, `${param}.name`);
  }
  const out: ChatMessage = { role: role as ChatMessage["role"], content: text };
  if (typeof name === "string") out.name = name;
  return Object.freeze(out);
}

function promptList(p: unknown, ctx: ValidationContext): (string | readonly number[])[] {
  if (typeof p === "string") return [p];
  if (Array.isArray(p) && p.length > 0) {
    if (p.every((x) => typeof x === "number")) return [tokenIds(p, "prompt", ctx, false)];
    if (p.every((x) => typeof x === "string")) return p as string[];
    if (p.every((x) => Array.isArray(x))) return p.map((x) => tokenIds(x, "prompt", ctx, false));
  }
  throw badRequest(
    "'prompt' must be a string, a list of strings, a list of token ids or a list of such lists",
    "prompt",
  );
}

function tokenIds(v: unknown, param: string, ctx: ValidationContext, emptyOk: boolean): number[] {
  if (!Array.isArray(v) || (!emptyOk && v.length === 0)) {
    throw badRequest(`'${param}' must be a non-empty list of token ids`, param);
  }
  for (const id of v) {
    if (!Number.isInteger(id) || id < 0 || id >= ctx.vocabSize) {
      throw badRequest(`'${param}' holds ${id}, not a token id in [0, ${ctx.vocabSize})`, param);
    }
  }
  return Object.freeze([...v]) as number[];
}

function stopList(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.length > MAX_STOPS) {
    throw badRequest(`'stop' must be a string or a list of at most ${MAX_STOPS} strings`, "stop");
  }
  for (const s of list) {
    if (typeof s !== "string" || s.length === 0) {
      throw badRequest("'stop' strings must be non-empty", "stop");
    }
  }
  return [...list];
}

function logitBias(v: unknown, ctx: ValidationContext): ReadonlyMap<number, number> {
  const map = new Map<number, number>();
  if (v === undefined || v === null) return map;
  if (typeof v !== "object" || Array.isArray(v)) {
    throw badRequest("'logit_bias' must be an object of token id → bias", "logit_bias");
  }
  for (const [k, bias] of Object.entries(v as Body)) {
    const id = Number(k);
    if (!/^\d+$/.test(k) || id >= ctx.vocabSize) {
      throw badRequest(
        `'logit_bias' key ${k} is not a token id in [0, ${ctx.vocabSize})`,
        "logit_bias",
      );
    }
    if (typeof bias !== "number" || !(bias >= -100 && bias <= 100)) {
      throw badRequest(`'logit_bias' value for ${k} must be a number in [-100, 100]`, "logit_bias");
    }
    map.set(id, bias);
  }
  return map;
}

function optBool(b: Body, key: string): boolean | null {
  const v = b[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "boolean") throw badRequest(`'${key}' must be a boolean`, key);
  return v;
}

function optNum(b: Body, key: string, min: number, max: number, openMin = false): number | null {
  const v = b[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw badRequest(`'${key}' must be a number`, key);
  }
  if (v < min || v > max || (openMin && v === min)) {
    throw badRequest(`'${key}' is ${v}; it must be in ${openMin ? "(" : "["}${min}, ${max}]`, key);
  }
  return v;
}

function optInt(b: Body, key: string, min: number, max: number): number | null {
  const v = b[key];
  if (v === undefined || v === null) return null;
  if (!Number.isInteger(v)) throw badRequest(`'${key}' must be an integer`, key);
  const n = v as number;
  if (n < min || n > max) {
    throw badRequest(`'${key}' is ${n}; it must be in [${min}, ${max}]`, key);
  }
  return n;
}

/** A `POST /v1/prewarm` body before its model path is checked against the roots. */
export interface PrewarmBody {
  readonly model: string;
  readonly quantization: string | null;
  /** MLC's override string ("context_window_size=4096;prefill_chunk_size=512"). */
  readonly overrides: string | null;
  readonly opt: string | null;
}

/** Validate a `/v1/prewarm` body; `overrides` may also be an object of numbers. */
export function validatePrewarmRequest(raw: unknown): PrewarmBody {
  const b = asObject(raw);
  if (typeof b.model !== "string" || b.model.length === 0) {
    throw badRequest("'model' must be a non-empty string (a model folder)", "model");
  }
  const str = (key: string): string | null => {
    const v = b[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== "string") throw badRequest(`'${key}' must be a string`, key);
    return v;
  };
  let overrides: string | null;
  const o = b.overrides;
  if (o !== null && typeof o === "object" && !Array.isArray(o)) {
    overrides = Object.entries(o as Body).map(([k, v]) => {
      if (typeof v !== "number" || !Number.isInteger(v)) {
        throw badRequest(`'overrides.${k}' must be an integer`, "overrides");
      }
      return `${k}=${v}`;
    }).join(";");
  } else overrides = str("overrides");
  return Object.freeze({
    model: b.model,
    quantization: str("quantization"),
    overrides,
    opt: str("opt"),
  });
}
