import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { join } from "node:path";
import { counted, makeHfModel } from "./fixture_compiler.ts";
import { runChild } from "./child.ts";

Deno.test("resolve() in 8 processes for the same missing key compiles once and loads 8 times", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kiln-jit-conc-" });
  try {
    const model = await makeHfModel(join(tmp, "model"));
    const root = join(tmp, "cache");
    const count = join(tmp, "count");
    // The compile and the conversion each take 2.5 s, so the children arrive while one builds.
    const runs = await Promise.all(
      Array.from({ length: 8 }, () => runChild({ root, model, count, "delay-ms": 2500 })),
    );
    for (const r of runs) assertEquals([r.code, r.error], [0, undefined]);
    assertEquals(await counted(count, "compile"), 1);
    assertEquals(await counted(count, "convert"), 1);
    assertEquals(new Set(runs.map((r) => r.result!.key)).size, 1);
    assertEquals(runs.map((r) => r.result!.hello), Array(8).fill("kiln-fixture"));
    assertEquals(runs.filter((r) => r.result!.origin === "compiled").length, 1);
    assertEquals(runs.filter((r) => r.result!.weights === "converted").length, 1);
    // The 7 others waited on the lock (or arrived after publication): none compiled.
    const waited = runs.filter((r) => r.events.some((e) => e.status === "wait")).length;
    console.log(`children that waited on the lock: ${waited}/7`);
    ok(waited >= 1, "no child overlapped the compile: the test did not exercise the lock");
    assertEquals(await Array.fromAsync(Deno.readDir(join(root, "tmp"))), []);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("resolve() in 8 processes behind a dead process's lock: one takes over, one compile", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kiln-jit-conc-" });
  try {
    const model = await makeHfModel(join(tmp, "model"));
    const root = join(tmp, "cache");
    const count = join(tmp, "count");
    // Learn the key from a refused (OFF) resolve, then plant a lock left by an exited process.
    const off = await runChild({ root, model, count, policy: "OFF" });
    const key = /no lib entry ([0-9a-f]{64})/.exec(off.error!.message)![1];
    const dead = new Deno.Command("true").spawn();
    await dead.status;
    await Deno.mkdir(join(root, "locks"), { recursive: true });
    await Deno.writeTextFile(
      join(root, "locks", `lib-${key}.lock`),
      JSON.stringify({
        pid: dead.pid,
        start: "linux:1",
        host: Deno.hostname(),
        acquiredAt: "",
        purpose: "x",
      }),
    );
    const runs = await Promise.all(
      Array.from({ length: 8 }, () => runChild({ root, model, count, "delay-ms": 500 })),
    );
    for (const r of runs) assertEquals([r.code, r.error], [0, undefined]);
    assertEquals(runs.map((r) => r.result!.key), Array(8).fill(key));
    assertEquals(await counted(count, "compile"), 1);
    const takeovers = runs.flatMap((r) =>
      r.events.filter((e) => e.message.startsWith("took over the lock"))
    );
    assertEquals(takeovers.length, 1);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("resolve() in 8 processes whose compile fails: waiters get that CompileError, not a retry", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kiln-jit-conc-" });
  try {
    const model = await makeHfModel(join(tmp, "model"));
    const root = join(tmp, "cache");
    const count = join(tmp, "count");
    const runs = await Promise.all(
      Array.from(
        { length: 8 },
        () => runChild({ root, model, count, "delay-ms": 2500, "fail-stage": "lower" }),
      ),
    );
    for (const r of runs) {
      assertEquals([r.code, r.error?.name, r.error?.stage], [1, "CompileError", "lower"]);
      assertEquals(r.error?.message, 'compile stage "lower" failed: fixture failure in lower');
    }
    const waiters = runs.filter((r) => r.events.some((e) => e.status === "wait"));
    ok(waiters.length >= 1, "no child overlapped the compile");
    for (const w of waiters) {
      ok(w.error!.cause!.includes("while this process waited"), w.error!.cause);
    }
    assertEquals(await counted(count, "compile"), 8 - waiters.length);
    assertEquals(await Array.fromAsync(Deno.readDir(join(root, "lib"))).catch(() => []), []);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
