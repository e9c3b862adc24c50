import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { WeightError } from "../../compiler/errors.ts";
import { IntegrityError, type JitPolicy, resolve } from "../../jit/mod.ts";
import { counted, fixtureCompiler, makeHfModel } from "./fixture_compiler.ts";

async function setup() {
  const tmp = await Deno.makeTempDir({ prefix: "kiln-jit-tamper-" });
  const model = await makeHfModel(join(tmp, "model"));
  const root = join(tmp, "cache");
  const count = join(tmp, "count");
  const events: string[] = [];
  const run = (policy: JitPolicy = "ON", m = model) =>
    resolve({
      model: m,
      quantization: "q4f16_1",
      cacheRoot: root,
      policy,
      target: "cpu",
      compiler: fixtureCompiler({ countFile: count }),
      onProgress: (e) => events.push(`${e.stage}:${e.status}:${e.message}`),
    });
  return { tmp, model, root, count, events, run };
}

const quarantined = async (root: string) =>
  (await Array.fromAsync(Deno.readDir(join(root, "quarantine")))).map((e) => e.name);

Deno.test("resolve() detects a tampered lib.js before importing it, moves it aside and rebuilds", async () => {
  const s = await setup();
  try {
    const a = await s.run();
    // Code that would run on import: if it did, globalThis.tampered would be set.
    await Deno.writeTextFile(
      join(a.lib.dir, "lib.js"),
      "globalThis.tampered = true;\nexport const hello = () => 'evil';\n",
    );
    const b = await s.run();
    assertEquals((globalThis as { tampered?: boolean }).tampered, undefined);
    assertEquals([b.lib.origin, (b.lib.module.hello as () => string)()], [
      "compiled",
      "kiln-fixture",
    ]);
    assertEquals(await counted(s.count, "compile"), 2);
    ok(
      s.events.some((e) =>
        /^compile:repair:moved a bad entry .*lib\.js: sha256 [0-9a-f]{64} does not match/.test(e)
      ),
      String(s.events),
    );
    const q = await quarantined(s.root);
    assertEquals(q.length, 1);
    ok(q[0].startsWith(`lib-${a.lib.key}-`) && q[0].includes("-corrupt-"), q[0]);
  } finally {
    await Deno.remove(s.tmp, { recursive: true });
  }
});

Deno.test("resolve() reports a missing artifact file and rebuilds the entry", async () => {
  const s = await setup();
  try {
    const a = await s.run();
    await Deno.remove(join(a.lib.dir, "metadata.json"));
    const b = await s.run();
    assertEquals(b.lib.origin, "compiled");
    ok(
      s.events.some((e) => e.includes("metadata.json: missing (listed in manifest.json)")),
      String(s.events),
    );
  } finally {
    await Deno.remove(s.tmp, { recursive: true });
  }
});

Deno.test("resolve() with policy OFF or READONLY refuses a tampered entry with a clear error", async () => {
  const s = await setup();
  try {
    const a = await s.run();
    await Deno.writeTextFile(join(a.lib.dir, "lib.js"), "export {};\n");
    const ro = await s.run("READONLY").catch((e) => e);
    ok(ro instanceof IntegrityError, String(ro));
    ok(
      ro.message.includes("lib.js: sha256") && ro.message.includes("KILN_JIT_POLICY=ON"),
      ro.message,
    );
    assertEquals(await quarantined(s.root).catch(() => []), []); // READONLY moved nothing
    const off = await s.run("OFF").catch((e) => e);
    ok(off instanceof IntegrityError, String(off));
    ok(off.message.includes("was moved to"), off.message);
    assertEquals((await quarantined(s.root)).length, 1);
    assertEquals(await counted(s.count, "compile"), 1);
  } finally {
    await Deno.remove(s.tmp, { recursive: true });
  }
});

Deno.test("resolve() detects a truncated shard of converted weights and converts again", async () => {
  const s = await setup();
  try {
    const a = await s.run();
    const shard = join(a.weights!.dir, "params_shard_0.bin");
    await Deno.truncate(shard, 100);
    const b = await s.run();
    assertEquals([b.lib.origin, b.weights!.origin], ["cache", "converted"]);
    assertEquals(await counted(s.count, "convert"), 2);
    assertEquals((await Deno.stat(shard)).size, 4096);
    ok(
      s.events.some((e) =>
        e.startsWith("convert:repair:") && e.includes("params_shard_0.bin: sha256")
      ),
      String(s.events),
    );
  } finally {
    await Deno.remove(s.tmp, { recursive: true });
  }
});

Deno.test("resolve() rejects an MLC weight folder with a truncated or altered shard, naming it", async () => {
  const s = await setup();
  try {
    const a = await s.run();
    // Use the converted folder as a user's MLC folder (used in place).
    const mlc = join(s.tmp, "mlc");
    await Deno.mkdir(mlc);
    for await (const e of Deno.readDir(a.weights!.dir)) {
      if (e.name !== "entry.json") {
        await Deno.copyFile(join(a.weights!.dir, e.name), join(mlc, e.name));
      }
    }
    const good = await s.run("ON", mlc);
    assertEquals([good.weights!.origin, good.weights!.dir], ["in-place", mlc]);
    const shard = join(mlc, "params_shard_0.bin");
    const bytes = await Deno.readFile(shard);
    // Independent md5 of what the index promises, to be sure the check is against it.
    const index = JSON.parse(await Deno.readTextFile(join(mlc, "tensor-cache.json")));
    assertEquals(index.records[0].md5sum, createHash("md5").update(bytes).digest("hex"));

    bytes[10] ^= 1;
    await Deno.writeFile(shard, bytes);
    const altered = await s.run("ON", mlc).catch((e) => e);
    ok(altered instanceof WeightError, String(altered));
    ok(
      altered.message.includes("params_shard_0.bin: md5") && altered.message.includes(mlc),
      altered.message,
    );

    await Deno.truncate(shard, 1000);
    const cut = await s.run("ON", mlc).catch((e) => e);
    ok(cut instanceof WeightError, String(cut));
    ok(
      cut.message.includes(
        "params_shard_0.bin: 1000 bytes, tensor-cache.json says 4096 (truncated?)",
      ),
      cut.message,
    );
  } finally {
    await Deno.remove(s.tmp, { recursive: true });
  }
});

Deno.test("resolve() reuses a remembered shard digest; weightsVerify full re-reads the shard", async () => {
  const s = await setup();
  try {
    const a = await s.run();
    const mlc = join(s.tmp, "mlc");
    await Deno.mkdir(mlc);
    for await (const e of Deno.readDir(a.weights!.dir)) {
      if (e.name !== "entry.json") {
        await Deno.copyFile(join(a.weights!.dir, e.name), join(mlc, e.name));
      }
    }
    await new Promise((r) => setTimeout(r, 1100)); // older than the racy-timestamp window
    await s.run("ON", mlc); // md5 taken and remembered
    // Forge the remembered md5: if it is used, the (unchanged, good) shard looks altered.
    const memoDir = join(s.root, "digests");
    let forged = 0;
    for await (const e of Deno.readDir(memoDir)) {
      const m = JSON.parse(await Deno.readTextFile(join(memoDir, e.name)));
      if (m.algorithm === "md5" && m.path.endsWith(join("mlc", "params_shard_0.bin"))) {
        await Deno.writeTextFile(
          join(memoDir, e.name),
          JSON.stringify({ ...m, hex: "0".repeat(32) }),
        );
        forged++;
      }
    }
    assertEquals(forged, 1);
    const remembered = await s.run("ON", mlc).catch((e) => e);
    ok(
      remembered instanceof WeightError && remembered.message.includes(`md5 ${"0".repeat(32)}`),
      String(remembered),
    );
    const full = await resolve({
      model: mlc,
      cacheRoot: s.root,
      target: "cpu",
      weightsVerify: "full",
      compiler: fixtureCompiler({ countFile: s.count }),
    });
    assertEquals(full.weights!.origin, "in-place");
  } finally {
    await Deno.remove(s.tmp, { recursive: true });
  }
});
