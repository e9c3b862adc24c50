/**
 * `IncrementalDetokenizer`: turns a stream of token ids into a stream of text that is always
 * valid UTF-8 and equal, once flushed, to decoding all the ids at once.
 * @module
 */
import type { Tokenizer } from "./types.ts";

/** How many prompt tokens seed the decoding window (as HF's DecodeStream / vLLM do). */
const PROMPT_CONTEXT = 5;

/**
 * Decode token ids one at a time. Each `push()` decodes a short window of the ids before the
 * new one (the "prefix", so a decoder that strips a leading space or joins byte-fallback tokens
 * sees the same context it would in a whole decode) and returns the text the new id adds. While
 * the decoded window ends in U+FFFD (an incomplete UTF-8 sequence: the rest of the character is
 * in later tokens) nothing is returned; the text comes out once the character completes.
 * `flush()` returns whatever is still held (at the end of generation).
 *
 * @example
 * ```ts
 * const d = new IncrementalDetokenizer(tokenizer, { prompt });
 * for (const id of ids) out += d.push(id);
 * out += d.flush();
 * ```
 */
export class IncrementalDetokenizer {
  readonly #tok: Tokenizer;
  readonly #skipSpecial: boolean;
  /** Ids of the current window: prompt context + generated ids not yet folded into the prefix. */
  #ids: number[];
  /** ids[0 .. #read) have been emitted; ids[0 .. #prefix) only give context. */
  #prefix = 0;
  #read: number;

  constructor(
    tokenizer: Tokenizer,
    opts?: { prompt?: readonly number[]; skipSpecialTokens?: boolean },
  ) {
    this.#tok = tokenizer;
    this.#skipSpecial = opts?.skipSpecialTokens ?? true;
    this.#ids = [...(opts?.prompt ?? []).slice(-PROMPT_CONTEXT)];
    this.#read = this.#ids.length;
  }

  /** Add one generated id; returns the text that became final (often "", never broken UTF-8). */
  push(id: number): string {
    this.#ids.push(id);
    const prefixText = this.#decode(this.#prefix, this.#read);
    const fullText = this.#decode(this.#prefix, this.#ids.length);
    if (fullText.length <= prefixText.length || fullText.endsWith("\uFFFD")) return "";
    if (!fullText.startsWith(prefixText)) {
      // The decoder rewrote earlier text (rare): emit from where the two decodes part.
      this.#advance();
      return fullText.slice(commonPrefixLength(prefixText, fullText));
    }
    this.#advance();
    return fullText.slice(prefixText.length);
  }

  /** Return whatever is still held (incomplete characters decode to U+FFFD) and reset. */
  flush(): string {
    if (this.#read >= this.#ids.length) return "";
    const prefixText = this.#decode(this.#prefix, this.#read);
    const fullText = this.#decode(this.#prefix, this.#ids.length);
    this.#advance();
    return fullText.slice(commonPrefixLength(prefixText, fullText));
  }

  /** The ids just emitted become the next prefix; older ids are dropped to bound the work. */
  #advance(): void {
    this.#ids = this.#ids.slice(this.#read);
    this.#prefix = 0;
    this.#read = this.#ids.length;
  }

  #decode(from: number, to: number): string {
    if (to <= from) return "";
    return this.#tok.decode(this.#ids.slice(from, to), { skipSpecialTokens: this.#skipSpecial });
  }
}

function commonPrefixLength(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}
