/**
 * The KV cache in f16 where the model's dtype is f16 (MLC's q*f16* schemes: q0f16, q3f16_1,
 * q4f16_1): every cache value becomes f16 and every kernel that reads or writes it says so
 * (`kvDtype`). Half the cache memory a token, half attention's cache reads; keys and values
 * carry one f16 rounding. Models of dtype f32 keep an f32 cache.
 * @module
 */
import type { Pass } from "./pass.ts";

const CACHE_OPS = new Set(["kv_append", "rope_kv_append", "attention", "attention_decode"]);

export const kvF16Pass: Pass = {
  name: "kv_f16",
  flag: "kv_f16",
  run(fn, ctx) {
    if (ctx.modelDtype !== "f16" || !fn.values.some((v) => v.kind === "kv")) return fn;
    const values = fn.values.map((v) => (v.kind === "kv" ? { ...v, dtype: "f16" as const } : v));
    const nodes = fn.nodes.map((n) =>
      CACHE_OPS.has(n.spec.op) ? { ...n, spec: { ...n.spec, kvDtype: "f16" } as typeof n.spec } : n
    );
    return { ...fn, values, nodes };
  },
};
