/**
 * The library key takes the compiler's parsed option values: spellings of the same options key
 * alike (so a prewarm without `opt` finds the library a server built with the default "O2").
 */
import { deepStrictEqual as assertEquals, notDeepStrictEqual } from "node:assert/strict";
import { join } from "node:path";
import { resolve } from "../../jit/mod.ts";

const CONFIG = new URL("../../bench/configs/llama3.2-1b", import.meta.url).pathname;

Deno.test({
  name: "resolve() keys the library by the parsed opt flags and overrides, not their spelling",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "kiln-key-norm-" });
    const key = async (opt?: string, overrides?: string) =>
      (await resolve({
        model: CONFIG,
        quantization: "q4f16_1",
        target: "webgpu-generic",
        opt,
        overrides,
        cacheRoot: join(root, "cache"),
        weights: false,
        notify: () => {},
      })).lib.key;
    const base = await key(undefined, "context_window_size=512;prefill_chunk_size=128");
    assertEquals(await key("O2", "prefill_chunk_size=128; context_window_size=512"), base);
    notDeepStrictEqual(await key("O1", "context_window_size=512;prefill_chunk_size=128"), base);
    notDeepStrictEqual(await key(undefined, "context_window_size=512;prefill_chunk_size=64"), base);
    await Deno.remove(root, { recursive: true });
  },
});
