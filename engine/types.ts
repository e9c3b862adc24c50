/**
 * The engine's public types: what the server (and library users) talk to.
 * @module
 */

/** Tokenizer of a model folder (tokenizer.json via @huggingface/tokenizers). */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** The text of one token as it would appear alone (for logprobs' `token` field). */
  tokenText(id: number): string;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool" | "developer";
  content: string;
  name?: string;
}

/** A chat template (tokenizer_config.json `chat_template` or chat_template.jinja). */
export interface ChatTemplate {
  render(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string;
}

export interface SamplingParams {
  /** 0 → greedy. */
  temperature: number;
  top_p: number;
  /** 0 or -1 → no top-k. */
  top_k: number;
  presence_penalty: number;
  frequency_penalty: number;
  repetition_penalty: number;
  /** token id → bias added to its logit. */
  logit_bias: ReadonlyMap<number, number>;
  /** Same seed + same request → same output. */
  seed?: number;
}

export interface GenerateOptions {
  prompt: readonly number[];
  maxTokens: number;
  sampling: SamplingParams;
  /** Strings that end generation (matched across token boundaries, never emitted). */
  stop?: readonly string[];
  stopTokenIds?: readonly number[];
  ignoreEos?: boolean;
  /** Return the chosen token's logprob and this many top alternatives (null: none). */
  logprobs?: number | null;
  signal?: AbortSignal;
}

export interface TokenLogprob {
  token: number;
  text: string;
  logprob: number;
  top: { token: number; text: string; logprob: number }[];
}

export type FinishReason = "stop" | "length" | "abort";

/** One piece of output. `text` is valid UTF-8 and never contains (part of) a stop string. */
export interface GenerationChunk {
  text: string;
  tokens: number[];
  logprobs?: TokenLogprob[];
  /** Set on the last chunk. */
  finishReason: FinishReason | null;
  usage?: { promptTokens: number; completionTokens: number };
}

export interface EngineStats {
  runningSequences: number;
  waitingRequests: number;
  kvPagesUsed: number;
  kvPagesTotal: number;
  /** Sequences in the last decode step. */
  lastBatchSize: number;
  /** Largest decode batch so far. */
  maxBatchSize: number;
  promptTokensTotal: number;
  generatedTokensTotal: number;
  stepsTotal: number;
}

export interface Engine {
  readonly modelId: string;
  readonly contextWindow: number;
  readonly tokenizer: Tokenizer;
  readonly chatTemplate: ChatTemplate | null;
  generate(opts: GenerateOptions): AsyncIterable<GenerationChunk>;
  stats(): EngineStats;
  close(): Promise<void>;
}
