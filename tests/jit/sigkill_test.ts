import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { join } from "node:path";
import { resolve } from "../../jit/mod.ts";
import { childArgs, parseLines } from "./child.ts";
import { counted, fixtureCompiler, makeHfModel } from "./fixture_compiler.ts";

Deno.test("resolve() after a compile killed with SIGKILL midway finds no entry and rebuilds", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kiln-jit-kill-" });
  try {
    const model = await makeHfModel(join(tmp, "model"));
    const root = join(tmp, "cache");
    const count = join(tmp, "count");
    // The child's compile writes lib.js, then sleeps 30 s before its manifest: kill it there.
    const child = new Deno.Command(Deno.execPath(), {
      args: childArgs({ root, model, count, "delay-ms": 30_000 }),
      stdout: "piped",
      stderr: "null",
    }).spawn();
    let text = "";
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    while (!text.includes(`"stage":"compile","status":"start"`)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`child ended before compiling: ${text}`);
      text += value;
    }
    await new Promise((r) => setTimeout(r, 200)); // let it write lib.js into its build folder
    child.kill("SIGKILL");
    await reader.cancel();
    const status = await child.status;
    assertEquals(status.signal, "SIGKILL");
    const out = parseLines(text, -1);
    assertEquals(out.result, undefined);

    // Nothing visible: no lib entry; the dead build folder and the dead owner's lock remain.
    assertEquals(await Array.fromAsync(Deno.readDir(join(root, "lib"))).catch(() => []), []);
    const temps = await Array.fromAsync(Deno.readDir(join(root, "tmp")));
    assertEquals(temps.length, 1);
    // ...and it was killed midway: lib.js written, manifest.json not yet.
    const out0 = join(root, "tmp", temps[0].name, "out");
    assertEquals(
      (await Array.fromAsync(Deno.readDir(out0))).map((e) => e.name).sort(),
      ["lib.js", "metadata.json"],
    );
    const locks = (await Array.fromAsync(Deno.readDir(join(root, "locks")))).filter((e) =>
      e.name.endsWith(".lock")
    );
    assertEquals(locks.length, 1);

    const events: string[] = [];
    const r = await resolve({
      model,
      quantization: "q4f16_1",
      cacheRoot: root,
      target: "cpu",
      weights: false,
      compiler: fixtureCompiler({ countFile: count }),
      onProgress: (e) => events.push(`${e.stage}:${e.status}:${e.message}`),
    });
    assertEquals(r.lib.origin, "compiled");
    assertEquals((r.lib.module.hello as () => string)(), "kiln-fixture");
    assertEquals(await counted(count, "compile"), 2);
    ok(
      events.some((e) => e.startsWith("compile:repair:took over the lock of dead process")),
      String(events),
    );
    assertEquals(await Array.fromAsync(Deno.readDir(join(root, "tmp"))), []);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
