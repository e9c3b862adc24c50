import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { cacheRootFromEnv, jitOptionsFromEnv } from "./options.ts";

Deno.test("jitOptionsFromEnv() defaults to ON and reads KILN_JIT_POLICY in any case", () => {
  assertEquals(jitOptionsFromEnv({ HOME: "/h" }), { policy: "ON", cacheRoot: "/h/.cache/kiln" });
  assertEquals(jitOptionsFromEnv({ HOME: "/h", KILN_JIT_POLICY: "readonly" }).policy, "READONLY");
  for (const p of ["ON", "OFF", "REDO", "READONLY"]) {
    assertEquals(jitOptionsFromEnv({ HOME: "/h", KILN_JIT_POLICY: p }).policy, p);
  }
  throws(() => jitOptionsFromEnv({ HOME: "/h", KILN_JIT_POLICY: "MAYBE" }), RangeError);
});

Deno.test("cacheRootFromEnv() prefers KILN_HOME, then XDG_CACHE_HOME/kiln, then ~/.cache/kiln", () => {
  const all = { KILN_HOME: "/k", XDG_CACHE_HOME: "/x", HOME: "/h" };
  assertEquals(cacheRootFromEnv(all), "/k");
  assertEquals(cacheRootFromEnv({ ...all, KILN_HOME: undefined }), "/x/kiln");
  assertEquals(cacheRootFromEnv({ HOME: "/h" }), "/h/.cache/kiln");
  throws(() => cacheRootFromEnv({}), TypeError);
});
