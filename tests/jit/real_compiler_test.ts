/**
 * End to end with the real compiler (compiler/mod.ts, loaded by resolve() itself): a generated
 * HF model is compiled, converted, verified and imported; the second resolve is a cache hit;
 * the compiler's own errors come through with their stage.
 * @module
 */
import { deepStrictEqual as assertEquals, notDeepStrictEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { CompileError } from "../../compiler/errors.ts";
import { childArgs, runChild } from "./child.ts";
import { makeModel } from "../../examples/make_model.ts";
import {
  checkMlcWeights,
  genericWebgpuTarget,
  makeTarget,
  resolve,
  type ResolveOptions,
} from "../../jit/mod.ts";

Deno.test("resolve() compiles, converts and loads a generated model with the real compiler", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kiln-jit-real-" });
  try {
    const model = join(tmp, "model");
    await makeModel({ out: model, variant: "llama2" });
    const opts: ResolveOptions = {
      model,
      quantization: "q4f16_1",
      cacheRoot: join(tmp, "cache"),
      target: "cpu",
    };
    const stages: string[] = [];
    const cold = await resolve({
      ...opts,
      onProgress: (e) => stages.push(`${e.stage}:${e.status}`),
    });
    assertEquals([cold.lib.origin, cold.weights!.origin, cold.target.backend], [
      "compiled",
      "converted",
      "cpu",
    ]);
    for (
      const s of [
        "detect:done",
        "compile:start",
        "compile:done",
        "convert:start",
        "convert:done",
        "load:done",
      ]
    ) {
      ok(stages.includes(s), `${s} in ${stages}`);
    }
    assertEquals(cold.lib.metadata.quantization, "q4f16_1");
    assertEquals(cold.lib.metadata.model_type, "llama");
    ok(Object.keys(cold.lib.module).length > 0, "lib.js exports something");
    const manifest = JSON.parse(await Deno.readTextFile(join(cold.lib.dir, "manifest.json")));
    ok("lib.js" in manifest.files && "metadata.json" in manifest.files);
    const weights = await checkMlcWeights(cold.weights!.dir);
    assertEquals([weights.problems, weights.unchecked], [[], []]);
    ok(weights.shards >= 1);

    const warm = await resolve(opts);
    assertEquals([warm.lib.origin, warm.weights!.origin, warm.lib.key], [
      "cache",
      "cache",
      cold.lib.key,
    ]);

    // A described WebGPU target (compiling needs no GPU): a new key, a WebGPU library.
    const gpu = makeTarget({
      ...genericWebgpuTarget(),
      features: ["shader-f16"],
      limits: { ...genericWebgpuTarget().limits, maxComputeWorkgroupStorageSize: 32768 },
    });
    const onGpu = await resolve({ ...opts, target: gpu, weights: false });
    notDeepStrictEqual(onGpu.lib.key, cold.lib.key);
    assertEquals([onGpu.lib.origin, onGpu.lib.inputs.target_fingerprint], [
      "compiled",
      gpu.fingerprint,
    ]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("resolve() passes the real compiler's CompileError through and leaves no entry", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kiln-jit-real-" });
  try {
    const model = join(tmp, "model");
    await makeModel({ out: model, variant: "llama2" });
    const root = join(tmp, "cache");
    const err = await resolve({
      model,
      quantization: "q9f16_7",
      cacheRoot: root,
      target: "cpu",
      weights: false,
    }).catch((e) => e);
    ok(err instanceof CompileError, String(err));
    assertEquals(err.stage, "quantization");
    ok(err.message.includes("q9f16_7"), err.message);
    assertEquals(await Array.fromAsync(Deno.readDir(join(root, "lib"))).catch(() => []), []);
    assertEquals(await Array.fromAsync(Deno.readDir(join(root, "tmp"))), []);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("resolve() keys the library by the config after overrides", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kiln-jit-real-" });
  try {
    const model = join(tmp, "model");
    await makeModel({ out: model, variant: "llama2" });
    const opts: ResolveOptions = {
      model,
      quantization: "q4f16_1",
      cacheRoot: join(tmp, "cache"),
      target: "cpu",
      weights: false,
    };
    const plain = await resolve(opts);
    const small = await resolve({ ...opts, overrides: "context_window_size=64" });
    notDeepStrictEqual(small.lib.key, plain.lib.key);
    assertEquals(small.lib.inputs.model_config.context_window_size, 64);
    assertEquals(small.lib.metadata.context_window_size, 64);
    const bad = await resolve({ ...opts, overrides: "no_such_field=3" }).catch((e) => e);
    ok(bad.message.includes("no_such_field"), bad.message);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("resolve() in 8 processes with the real compiler compiles once and loads 8 times", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kiln-jit-real-" });
  try {
    const model = join(tmp, "model");
    await makeModel({ out: model, variant: "llama2" });
    const root = join(tmp, "cache");
    const runs = await Promise.all(
      Array.from(
        { length: 8 },
        () => runChild({ root, model, count: join(tmp, "unused"), real: "yes" }),
      ),
    );
    for (const r of runs) assertEquals([r.code, r.error], [0, undefined]);
    const compiles = runs.flatMap((r) =>
      r.events.filter((e) => e.stage === "compile" && e.status === "start")
    );
    assertEquals(compiles.length, 1);
    assertEquals(runs.filter((r) => r.result!.origin === "compiled").length, 1);
    assertEquals(runs.filter((r) => r.result!.weights === "converted").length, 1);
    assertEquals(new Set(runs.map((r) => r.result!.key)).size, 1);
    assertEquals(new Set(runs.map((r) => r.result!.hello)).size, 1); // same exports everywhere
    assertEquals((await Array.fromAsync(Deno.readDir(join(root, "lib")))).length, 1);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("resolve() after the real compiler was killed with SIGKILL midway rebuilds", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kiln-jit-real-" });
  try {
    const model = join(tmp, "model");
    await makeModel({ out: model, variant: "llama2" });
    const root = join(tmp, "cache");
    const child = new Deno.Command(Deno.execPath(), {
      args: childArgs({ root, model, count: join(tmp, "unused"), real: "yes" }),
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes(`"stage":"compile","status":"start"`)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`child ended before compiling: ${text}`);
      text += value;
    }
    child.kill("SIGKILL"); // a compile takes hundreds of ms: this lands inside it
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    assertEquals((await child.status).signal, "SIGKILL");
    assertEquals(await Array.fromAsync(Deno.readDir(join(root, "lib"))).catch(() => []), []);
    const killedKey = /"key":"([0-9a-f]{64})"/.exec(text)![1];
    // The rebuild runs in a fresh process too, so that both load the compiler's sources at
    // nearly the same time (COMPILER_VERSION digests them: an edit in between changes the key).
    const again = await runChild({ root, model, count: join(tmp, "unused"), real: "yes" });
    assertEquals(again.error, undefined);
    assertEquals(again.result!.key, killedKey, "compiler sources changed during the test");
    assertEquals(again.result!.origin, "compiled");
    ok(
      again.events.some((e) =>
        e.stage === "compile" && e.status === "repair" && e.message.startsWith("took over")
      ),
      JSON.stringify(again.events),
    );
    assertEquals(await Array.fromAsync(Deno.readDir(join(root, "tmp"))), []);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
