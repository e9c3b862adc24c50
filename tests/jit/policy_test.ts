import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { CompileError } from "../../compiler/errors.ts";
import {
  CacheMissError,
  IntegrityError,
  type JitPolicy,
  LibraryLoadError,
  resolve,
} from "../../jit/mod.ts";
import { counted, fixtureCompiler, makeHfModel } from "./fixture_compiler.ts";

async function setup() {
  const tmp = await Deno.makeTempDir({ prefix: "kiln-jit-policy-" });
  const model = await makeHfModel(join(tmp, "model"));
  const root = join(tmp, "cache");
  const count = join(tmp, "count");
  const run = (
    policy: JitPolicy,
    extra: { failStage?: string; libSource?: string; skipManifest?: boolean } = {},
  ) =>
    resolve({
      model,
      quantization: "q4f16_1",
      cacheRoot: root,
      policy,
      target: "cpu",
      compiler: fixtureCompiler({ countFile: count, ...extra }),
    });
  return { tmp, model, root, count, run };
}

/** Every path under `dir` with its size and mtime: to show that nothing was written. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      const st = await Deno.stat(p);
      out.push(`${p} ${st.size} ${st.mtime?.getTime()}`);
      if (e.isDirectory) await walk(p);
    }
  };
  await walk(dir).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  return out.sort();
}

Deno.test("resolve() with policy ON compiles on a miss and then hits the cache", async () => {
  const s = await setup();
  try {
    const a = await s.run("ON");
    const b = await s.run("ON");
    assertEquals([a.lib.origin, b.lib.origin], ["compiled", "cache"]);
    assertEquals([a.weights!.origin, b.weights!.origin], ["converted", "cache"]);
    assertEquals(a.lib.key, b.lib.key);
    assertEquals([await counted(s.count, "compile"), await counted(s.count, "convert")], [1, 1]);
  } finally {
    await Deno.remove(s.tmp, { recursive: true });
  }
});

Deno.test("resolve() with policy OFF never compiles: a miss names the key and inputs", async () => {
  const s = await setup();
  try {
    const err = await s.run("OFF").catch((e) => e);
    ok(err instanceof CacheMissError, String(err));
    ok(/^[0-9a-f]{64}$/.test(err.key));
    ok(
      err.message.includes(err.key) && err.message.includes('"quantization":"q4f16_1"'),
      err.message,
    );
    assertEquals(err.inputs.quantization, "q4f16_1");
    assertEquals(await counted(s.count, "compile"), 0);
    await s.run("ON");
    const hit = await s.run("OFF"); // a hit is fine
    assertEquals([hit.lib.origin, await counted(s.count, "compile")], ["cache", 1]);
  } finally {
    await Deno.remove(s.tmp, { recursive: true });
  }
});

Deno.test("resolve() with policy REDO recompiles every time and replaces the entry", async () => {
  const s = await setup();
  try {
    const a = await s.run("REDO");
    const before = JSON.parse(await Deno.readTextFile(join(a.lib.dir, "entry.json"))).createdAt;
    await new Promise((r) => setTimeout(r, 5));
    const b = await s.run("REDO");
    const after = JSON.parse(await Deno.readTextFile(join(b.lib.dir, "entry.json"))).createdAt;
    assertEquals([a.lib.origin, b.lib.origin], ["compiled", "compiled"]);
    assertEquals(a.lib.key, b.lib.key);
    ok(after > before, `${after} > ${before}`);
    assertEquals(await counted(s.count, "compile"), 2);
    assertEquals(await Array.fromAsync(Deno.readDir(join(s.root, "lib"))).then((l) => l.length), 1);
  } finally {
    await Deno.remove(s.tmp, { recursive: true });
  }
});

Deno.test("resolve() with policy READONLY uses the cache and never writes to it", async () => {
  const s = await setup();
  try {
    const err = await s.run("READONLY").catch((e) => e);
    ok(err instanceof CacheMissError, String(err));
    assertEquals(await snapshot(s.root), []); // not even a lock or a digest memo
    await s.run("ON");
    const before = await snapshot(s.root);
    await new Promise((r) => setTimeout(r, 20));
    const hit = await s.run("READONLY");
    assertEquals([hit.lib.origin, hit.weights!.origin], ["cache", "cache"]);
    assertEquals(await snapshot(s.root), before); // no last-use update, no lock files
    assertEquals(await counted(s.count, "compile"), 1);
  } finally {
    await Deno.remove(s.tmp, { recursive: true });
  }
});

Deno.test("resolve() surfaces the compiler's own error and leaves no entry behind", async () => {
  const s = await setup();
  try {
    await rejects(s.run("ON", { failStage: "lower" }), (e: unknown) => {
      ok(e instanceof CompileError);
      assertEquals(e.stage, "lower");
      ok(e.message.includes('compile stage "lower" failed: fixture failure in lower'));
      ok(e.cause instanceof RangeError && e.cause.message.includes("hidden_size 7"));
      return true;
    });
    assertEquals(await Array.fromAsync(Deno.readDir(join(s.root, "lib"))).catch(() => []), []);
    assertEquals(await Array.fromAsync(Deno.readDir(join(s.root, "tmp"))), []);
    const locks = (await Array.fromAsync(Deno.readDir(join(s.root, "locks"))))
      .filter((e) => e.name.endsWith(".lock"));
    assertEquals(locks, []); // released
    const ok2 = await s.run("ON"); // and the next attempt builds normally
    assertEquals(ok2.lib.origin, "compiled");
  } finally {
    await Deno.remove(s.tmp, { recursive: true });
  }
});

Deno.test("resolve() refuses a compile that wrote no manifest, leaving no entry", async () => {
  const s = await setup();
  try {
    const err = await s.run("ON", { skipManifest: true }).catch((e) => e);
    ok(err instanceof IntegrityError && err.message.includes("without writing"), String(err));
    assertEquals(await Array.fromAsync(Deno.readDir(join(s.root, "lib"))).catch(() => []), []);
    assertEquals(await Array.fromAsync(Deno.readDir(join(s.root, "tmp"))), []);
  } finally {
    await Deno.remove(s.tmp, { recursive: true });
  }
});

Deno.test("resolve() reports a verified library that fails to import as LibraryLoadError", async () => {
  const s = await setup();
  try {
    const err = await s.run("ON", { libSource: "export const = ;\n" }).catch((e) => e);
    ok(err instanceof LibraryLoadError, String(err));
    ok(err.message.includes("lib.js failed") && err.message.includes("cache rm"), err.message);
    ok(String(err.cause).includes("SyntaxError"), String(err.cause));
  } finally {
    await Deno.remove(s.tmp, { recursive: true });
  }
});
