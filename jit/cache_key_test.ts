import { deepStrictEqual as assertEquals, notDeepStrictEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import { cacheKey, type LibKeyInputs } from "./cache_key.ts";

const base: LibKeyInputs = {
  kind: "lib",
  model_config: { hidden_size: 64, num_hidden_layers: 2, rope_theta: 10000 },
  model_type: "llama",
  quantization: "q4f16_1",
  overrides: null,
  opt: "O2",
  target_fingerprint: "a".repeat(64),
  system_lib_prefix: null,
  compiler_version: "0.1.0",
  artifact_format_version: 1,
};

Deno.test("cacheKey() is the sha256 of the canonical JSON of its inputs", () => {
  // Independent reference: keys sorted by hand, no whitespace.
  const canonical = '{"artifact_format_version":1,"compiler_version":"0.1.0","kind":"lib",' +
    '"model_config":{"hidden_size":64,"num_hidden_layers":2,"rope_theta":10000},' +
    '"model_type":"llama","opt":"O2","overrides":null,"quantization":"q4f16_1",' +
    `"system_lib_prefix":null,"target_fingerprint":"${"a".repeat(64)}"}`;
  assertEquals(cacheKey(base), createHash("sha256").update(canonical).digest("hex"));
});

Deno.test("cacheKey() does not depend on key order", () => {
  const reordered = Object.fromEntries(Object.entries(base).reverse()) as unknown as LibKeyInputs;
  assertEquals(cacheKey(reordered), cacheKey(base));
});

Deno.test("cacheKey() changes when any one input changes", () => {
  const changes: Partial<LibKeyInputs>[] = [
    { model_config: { ...base.model_config, rope_theta: 500000 } },
    { model_type: "mistral" },
    { quantization: "q4f32_1" },
    { overrides: "context_window_size=1024" },
    { opt: "O3" },
    { target_fingerprint: "b".repeat(64) },
    { system_lib_prefix: "x_" },
    { compiler_version: "0.1.1" },
    { artifact_format_version: 2 },
  ];
  const keys = new Set([cacheKey(base)]);
  for (const c of changes) {
    const k = cacheKey({ ...base, ...c });
    notDeepStrictEqual(k, cacheKey(base), JSON.stringify(c));
    keys.add(k);
  }
  assertEquals(keys.size, changes.length + 1);
});
