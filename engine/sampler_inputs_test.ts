import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { isPlainGreedy, samplerInputs } from "./sampler_inputs.ts";
import { GREEDY, samplingParams } from "./sampling_params.ts";
import { assertThrows } from "../tests/assert.ts";

Deno.test("samplerInputs() lays out penalty and bias entries per row as logits_process reads them", () => {
  const rows = [
    { sampling: GREEDY, counts: new Map([[5, 2]]), promptSet: new Set([1, 2]), uniform: 0.25 },
    {
      sampling: samplingParams({ temperature: 0.5, top_p: 0.9, top_k: 40, repetition_penalty: 1.2, presence_penalty: 0.5, logit_bias: new Map([[9, -3]]) }),
      counts: new Map([[5, 2]]),
      promptSet: new Set([1, 5]),
      uniform: 0.75,
    },
  ];
  const x = samplerInputs(rows, 100);
  // row 0 greedy: no entries; row 1: bias 9, generated 5 (also in the prompt), prompt 1
  assertEquals(Array.from(x.indptr as Uint32Array), [0, 0, 3]);
  const u = new Uint32Array((x.entries as Uint8Array).buffer), f = new Float32Array((x.entries as Uint8Array).buffer);
  const entry = (i: number) => [u[i * 4], f[i * 4 + 1], u[i * 4 + 2], f[i * 4 + 3]];
  assertEquals([entry(0), entry(1), entry(2)], [[9, 0, 0, -3], [5, 2, 1, 0], [1, 0, 1, 0]]);
  assertEquals(Array.from(x.params as Float32Array), [0, 0, 1, 0, 0.5, 0, Math.fround(1.2), 40]);
  assertEquals(Array.from(x.temperature as Float32Array), [0, 0.5]);
  assertEquals(Array.from(x.uniform as Float32Array), [0.25, 0.75]);
  assertThrows(() => samplerInputs(rows, 2), RangeError, "3 penalty/bias entries");
});

Deno.test("isPlainGreedy() is true only for temperature 0 with nothing to process", () => {
  assertEquals(isPlainGreedy(GREEDY), true);
  assertEquals(isPlainGreedy(samplingParams()), false);
  assertEquals(isPlainGreedy({ ...GREEDY, logit_bias: new Map([[1, 1]]) }), false);
  assertEquals(isPlainGreedy({ ...GREEDY, repetition_penalty: 1.1 }), false);
});
