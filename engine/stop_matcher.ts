/**
 * `StopMatcher`: finds stop strings in streamed text, across chunk boundaries.
 * @module
 */

/**
 * Feed text chunks with `push()`; each returns the text that is safe to emit. Text that could
 * still be the start of a stop string is held back until the next chunk decides it. When a stop
 * string appears, `push()` returns the text before it with `stopped: true`; the stop string and
 * everything after it are never returned. `flush()` returns the held text at the end of a
 * generation that did not stop on a string.
 *
 * @example
 * ```ts
 * const m = new StopMatcher(["\n\nUser:"]);
 * m.push("Hi.\n"); // { text: "Hi.", stopped: false }: "\n" could start the stop string
 * m.push("\nUser: x"); // { text: "", stopped: true }
 * ```
 */
export class StopMatcher {
  readonly #stops: readonly string[];
  #held = "";
  #stopped = false;

  constructor(stops: readonly string[]) {
    for (const s of stops) {
      if (typeof s !== "string" || s.length === 0) {
        throw new RangeError("stop strings must be non-empty strings");
      }
    }
    this.#stops = [...stops];
  }

  /** True once a stop string was seen; later pushes return "". */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Add a chunk; returns the text now safe to emit and whether a stop string ended the text. */
  push(chunk: string): { text: string; stopped: boolean } {
    if (this.#stopped) return { text: "", stopped: true };
    const buf = this.#held + chunk;
    let at = -1;
    for (const s of this.#stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.#stopped = true;
      this.#held = "";
      return { text: buf.slice(0, at), stopped: true };
    }
    const hold = this.#longestPartialSuffix(buf);
    this.#held = buf.slice(buf.length - hold);
    return { text: buf.slice(0, buf.length - hold), stopped: false };
  }

  /** The held text (no stop string followed it); call once at the end. */
  flush(): string {
    const out = this.#stopped ? "" : this.#held;
    this.#held = "";
    return out;
  }

  /** Length of the longest suffix of `buf` that is a proper prefix of some stop string. */
  #longestPartialSuffix(buf: string): number {
    let best = 0;
    for (const s of this.#stops) {
      for (let k = Math.min(s.length - 1, buf.length); k > best; k--) {
        if (buf.endsWith(s.slice(0, k))) {
          best = k;
          break;
        }
      }
    }
    return best;
  }
}
