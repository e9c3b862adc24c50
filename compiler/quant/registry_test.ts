import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { ConfigError, NotImplementedError } from "../errors.ts";
import { getQuantization, QUANTIZATIONS } from "./registry.ts";

// Expected values are MLC-LLM's definitions (quantization.py): q4f16_1 = int4, group 32, uint32
// storage, f16 model dtype, NK layout; q3f16_1 = int3, group 40; q4f32_1 = q4f16_1 in f32.
Deno.test("getQuantization() returns MLC's definitions of the implemented schemes", () => {
  const g = (bits: number, groupSize: number, scaleDtype: string) => ({
    kind: "group",
    bits,
    groupSize,
    scaleDtype,
  });
  const cases: [string, string, object][] = [
    ["q0f32", "f32", { kind: "dense", dtype: "f32" }],
    ["q0f16", "f16", { kind: "dense", dtype: "f16" }],
    ["q4f16_1", "f16", g(4, 32, "f16")],
    ["q4f32_1", "f32", g(4, 32, "f32")],
    ["q3f16_1", "f16", g(3, 40, "f16")],
  ];
  for (const [name, modelDtype, format] of cases) {
    const q = getQuantization(name);
    assertEquals({ ...q, linear: { ...q.linear }, embedding: { ...q.embedding } }, {
      name,
      modelDtype,
      linear: format,
      embedding: format,
    });
    assertEquals(Object.isFrozen(q) && Object.isFrozen(q.linear), true);
  }
  assertEquals([...QUANTIZATIONS].sort(), cases.map((c) => c[0]).sort());
  assertEquals(getQuantization("q4f16_1", { tensorParallelShards: 4 }).name, "q4f16_1");
});

Deno.test("getQuantization() refuses the KN layouts with what they mean", () => {
  for (const [name, alt] of [["q4f16_0", "q4f16_1"], ["q3f16_0", "q3f16_1"]]) {
    for (const tensorParallelShards of [1, 2]) {
      assertThrows(
        () => getQuantization(name, { tensorParallelShards }),
        (e: Error) =>
          e instanceof NotImplementedError && e.message.includes("KN") &&
          e.message.includes(alt),
      );
    }
  }
});

Deno.test("getQuantization() refuses q4f16_ft, with tensor parallelism as MLC does", () => {
  assertThrows(
    () => getQuantization("q4f16_ft", { tensorParallelShards: 2 }),
    (e: Error) =>
      e instanceof NotImplementedError && /FasterTransformer/.test(e.message) &&
      /tensor_parallel_shards = 2/.test(e.message) && e.message.includes("q4f16_1"),
  );
  assertThrows(
    () => getQuantization("q4f16_ft"),
    (e: Error) => e instanceof NotImplementedError && /FasterTransformer/.test(e.message),
  );
});

Deno.test("getQuantization() refuses MLC's other names as not implemented", () => {
  for (const name of ["q0bf16", "q4bf16_1", "q4f16_2", "q4f16_autoawq", "e4m3_e4m3_f16"]) {
    assertThrows(() => getQuantization(name), NotImplementedError);
  }
});

Deno.test("getQuantization() throws ConfigError listing the known names", () => {
  for (const name of ["q5f16_1", "Q4F16_1", "", "toString", "__proto__"]) {
    assertThrows(
      () => getQuantization(name),
      (e: Error) =>
        e instanceof ConfigError && e.message.includes(`"${name}"`) &&
        QUANTIZATIONS.every((n) => e.message.includes(n)),
    );
  }
});

Deno.test("getQuantization() rejects a bad shard count with RangeError", () => {
  for (const tensorParallelShards of [0, -1, 1.5, NaN]) {
    assertThrows(() => getQuantization("q4f16_1", { tensorParallelShards }), RangeError);
  }
});
