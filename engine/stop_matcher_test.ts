import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { StopMatcher } from "./stop_matcher.ts";

/** Reference: the text before the earliest stop string in the whole text, or all of it. */
function reference(text: string, stops: string[]): { text: string; stopped: boolean } {
  let at = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at < 0 ? { text, stopped: false } : { text: text.slice(0, at), stopped: true };
}

function run(
  chunks: string[],
  stops: string[],
): { text: string; stopped: boolean; pieces: string[] } {
  const m = new StopMatcher(stops);
  const pieces: string[] = [];
  let stopped = false;
  for (const c of chunks) {
    const r = m.push(c);
    pieces.push(r.text);
    if (r.stopped) {
      stopped = true;
      break;
    }
  }
  if (!stopped) pieces.push(m.flush());
  return { text: pieces.join(""), stopped, pieces };
}

Deno.test("StopMatcher holds a possible stop prefix across chunks and drops the stop", () => {
  const r = run(["Hi.\n", "\nUs", "er: more"], ["\n\nUser:"]);
  assertEquals(r.pieces, ["Hi.", "", ""]);
  assertEquals(r.stopped, true);
  // A false start is released once it cannot match any more.
  assertEquals(run(["ab\n", "x"], ["\n\nUser:"]).pieces, ["ab", "\nx", ""]);
});

Deno.test("StopMatcher agrees with a whole-text reference for every split of the text", () => {
  const cases: [string, string[]][] = [
    ["The answer is 42. END and more END", ["END"]],
    ["😀 smile 😀😀 stop here 世界", ["😀😀", "世界"]],
    ["aaab aab ab", ["aab", "b a"]],
    ["no stop string in here", ["zz", "ere!"]],
    ["café—naïve", ["é—n"]],
  ];
  for (const [text, stops] of cases) {
    const ref = reference(text, stops);
    // Every two-way and three-way split point (on UTF-16 code units of whole characters).
    const cuts = [...text].map((_, i) => [...text].slice(0, i).join("").length);
    for (const a of cuts) {
      for (const b of cuts) {
        if (b < a) continue;
        const r = run([text.slice(0, a), text.slice(a, b), text.slice(b)], stops);
        assertEquals({ text: r.text, stopped: r.stopped }, ref, `split ${a},${b} of ${text}`);
        for (const s of stops) {
          for (const p of r.pieces) {
            if (r.stopped && p.includes(s)) throw new Error(`emitted a stop string in ${p}`);
          }
        }
      }
    }
  }
});

Deno.test("StopMatcher picks the earliest of several stop strings", () => {
  assertEquals(run(["xx STOP2 yy STOP1"], ["STOP1", "STOP2"]).text, "xx ");
});

Deno.test("StopMatcher rejects empty stop strings", () => {
  throws(() => new StopMatcher([""]), RangeError);
});
