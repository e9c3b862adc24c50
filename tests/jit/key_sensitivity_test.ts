import { deepStrictEqual as assertEquals, notDeepStrictEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { cpuTarget, makeTarget, resolve, type ResolveOptions } from "../../jit/mod.ts";
import { fixtureCompiler, makeHfModel } from "./fixture_compiler.ts";

// Each resolve-level input changed on its own must give a new key; a repeat gives the same key.
Deno.test("resolve() gives a new key when any one key input changes", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kiln-jit-keys-" });
  try {
    const model = await makeHfModel(join(tmp, "model"));
    const wider = await makeHfModel(join(tmp, "wider"), { hidden_size: 128 });
    const countFile = join(tmp, "count");
    const compiler = fixtureCompiler({ countFile });
    const cpu = cpuTarget();
    const f16 = makeTarget({ ...cpu, features: ["shader-f16"] });
    const base: ResolveOptions = {
      model,
      quantization: "q4f16_1",
      cacheRoot: join(tmp, "cache"),
      target: cpu,
      weights: false,
      compiler,
    };
    const variants: Record<string, Partial<ResolveOptions>> = {
      "same inputs": {},
      "model config": { model: wider },
      "model type": { modelType: "mistral" },
      quantization: { quantization: "q4f32_1" },
      overrides: { overrides: "context_window_size=1024" },
      "opt flags": { opt: "O0" },
      "target fingerprint": { target: f16 },
      "system lib prefix": { systemLibPrefix: "llama_q4_" },
      "compiler version": { compiler: { ...compiler, COMPILER_VERSION: "fixture-2" } },
      "artifact format version": { compiler: { ...compiler, ARTIFACT_FORMAT_VERSION: 2 } },
    };
    const baseKey = (await resolve(base)).lib.key;
    const keys = new Map<string, string>();
    for (const [name, v] of Object.entries(variants)) {
      if (name === "artifact format version") continue; // its artifacts say format 1: see below
      keys.set(name, (await resolve({ ...base, ...v })).lib.key);
    }
    assertEquals(keys.get("same inputs"), baseKey);
    keys.delete("same inputs");
    for (const [name, key] of keys) {
      notDeepStrictEqual(key, baseKey, `${name} did not change the key`);
    }
    assertEquals(new Set(keys.values()).size, keys.size, "two inputs collided");
    // A compiler claiming format 2 that writes format-1 artifacts: new key, and the freshly built
    // entry is refused rather than loaded.
    const err = await resolve({ ...base, ...variants["artifact format version"] }).catch((e) => e);
    ok(String(err.message).includes("format_version 1, expected 2"), err.message);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("resolve() keys converted weights by source content and quantization, not location", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kiln-jit-wkeys-" });
  try {
    const model = await makeHfModel(join(tmp, "model"));
    const copy = join(tmp, "copy");
    await Deno.mkdir(copy);
    for (const f of ["config.json", "model.safetensors"]) {
      await Deno.copyFile(join(model, f), join(copy, f));
    }
    const countFile = join(tmp, "count");
    const run = (m: string, quantization = "q4f16_1") =>
      resolve({
        model: m,
        quantization,
        cacheRoot: join(tmp, "cache"),
        target: cpuTarget(),
        compiler: fixtureCompiler({ countFile }),
      }).then((r) => r.weights!);
    const a = await run(model);
    const b = await run(copy); // same bytes elsewhere: same key, no second conversion
    assertEquals([b.key, b.origin], [a.key, "cache"]);
    const q = await run(model, "q0f16");
    notDeepStrictEqual(q.key, a.key);
    const bytes = await Deno.readFile(join(copy, "model.safetensors"));
    bytes[0] ^= 1;
    await Deno.writeFile(join(copy, "model.safetensors"), bytes);
    const changed = await run(copy);
    notDeepStrictEqual(changed.key, a.key);
    assertEquals(changed.origin, "converted");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
