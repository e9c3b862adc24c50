/**
 * `loadTokenizer()`: the tokenizer of a model folder (`tokenizer.json` + `tokenizer_config.json`
 * through `@huggingface/tokenizers`), with BOS/EOS taken from the tokenizer config,
 * `generation_config.json` and `config.json`.
 * @module
 */
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { ConfigError } from "../compiler/errors.ts";
import type { Tokenizer } from "./types.ts";

type Json = Record<string, unknown>;

/**
 * Load the tokenizer of `modelDir`. BOS/EOS ids come from `tokenizer_config.json`
 * (`bos_token`/`eos_token`, strings or `{content}` records), then `generation_config.json` and
 * `config.json` (`eos_token_id`: a number or a list; all are collected). An explicit
 * `add_bos_token` in `tokenizer_config.json` decides whether `encode()` adds BOS; without it the
 * tokenizer's own post-processor decides (as in HF transformers). Decoding never applies
 * `clean_up_tokenization_spaces`: `decode(encode(s)) === s` for text without special tokens.
 *
 * @example
 * ```ts
 * const tok = await loadTokenizer("examples/models/tiny-llama");
 * tok.encode("Hello, world!", { addSpecialTokens: false }); // [9906, 11, 1917, 0] for Llama 3
 * ```
 */
export async function loadTokenizer(modelDir: string): Promise<Tokenizer> {
  const tokenizerJson = await readJson(join(modelDir, "tokenizer.json"), true);
  const tokenizerConfig = (await readJson(join(modelDir, "tokenizer_config.json"), false)) ?? {};
  const generationConfig = (await readJson(join(modelDir, "generation_config.json"), false)) ?? {};
  const modelConfig = (await readJson(join(modelDir, "config.json"), false)) ?? {};
  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(tokenizerJson!, tokenizerConfig);
  } catch (e) {
    throw new ConfigError(
      `${modelDir}/tokenizer.json could not be loaded (${(e as Error).message}); ` +
        `check that it is a Hugging Face tokenizers file`,
      { cause: e },
    );
  }
  return new HfBackedTokenizer(hf, modelDir, tokenizerConfig, generationConfig, modelConfig);
}

class HfBackedTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
  readonly #hf: HfTokenizer;
  readonly #addBos: boolean | null;

  constructor(hf: HfTokenizer, dir: string, tc: Json, gen: Json, cfg: Json) {
    this.#hf = hf;
    let maxId = -1;
    for (const id of hf.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const idOf = (field: string): number | null => {
      const tok = tokenContent(tc[field]);
      if (tok === null) return null;
      const id = hf.token_to_id(tok);
      if (id === undefined) {
        throw new ConfigError(
          `${dir}/tokenizer_config.json names ${field} "${tok}", which is not in tokenizer.json's ` +
            `vocabulary; fix the token or remove the field`,
        );
      }
      return id;
    };
    this.bosTokenId = idOf("bos_token") ?? numberOrNull(gen.bos_token_id) ??
      numberOrNull(cfg.bos_token_id);
    const eos = new Set<number>();
    const tcEos = idOf("eos_token");
    if (tcEos !== null) eos.add(tcEos);
    for (const src of [gen.eos_token_id, cfg.eos_token_id]) {
      for (const id of Array.isArray(src) ? src : [src]) {
        if (typeof id === "number" && Number.isInteger(id) && id >= 0) eos.add(id);
      }
    }
    this.eosTokenIds = Object.freeze([...eos]);
    this.#addBos = typeof tc.add_bos_token === "boolean" ? tc.add_bos_token : null;
  }

  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[] {
    const add = opts?.addSpecialTokens ?? true;
    const ids = this.#hf.encode(text, { add_special_tokens: add }).ids;
    if (!add || this.#addBos === null || this.bosTokenId === null) return ids;
    const bos = this.bosTokenId;
    if (this.#addBos && ids[0] !== bos) return [bos, ...ids];
    if (!this.#addBos && ids[0] === bos) {
      // Drop the BOS the post-processor added, but not one written in the text itself.
      const plain = this.#hf.encode(text, { add_special_tokens: false }).ids;
      if (plain.length < ids.length) return ids.slice(1);
    }
    return ids;
  }

  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string {
    if (ids.length === 0) return "";
    return this.#hf.decode([...ids], {
      skip_special_tokens: opts?.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: false,
    });
  }

  tokenText(id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
    return this.decode([id]);
  }
}

function tokenContent(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v !== null && typeof v === "object" && typeof (v as Json).content === "string") {
    return (v as Json).content as string;
  }
  return null;
}

function numberOrNull(v: unknown): number | null {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : null;
}

async function readJson(path: string, required: boolean): Promise<Json | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound && !required) return null;
    throw new ConfigError(
      `cannot read ${path} (${(e as Error).message}); a model folder needs tokenizer.json ` +
        `(and usually tokenizer_config.json) to serve text`,
      { cause: e },
    );
  }
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw new ConfigError(`${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}
