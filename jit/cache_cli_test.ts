import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { cacheCommand } from "./cache_cli.ts";
import { ENTRY_RECORD } from "./store.ts";
import { pinAll } from "./weights.ts";

Deno.test("cacheCommand() lists, verifies, collects and removes entries", async () => {
  const root = await Deno.makeTempDir({ prefix: "kiln-cli-" });
  try {
    const key = "e".repeat(64);
    const dir = join(root, "weights", key);
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeFile(join(dir, "params_shard_0.bin"), new Uint8Array(3000));
    const files = await pinAll(dir);
    await Deno.writeTextFile(
      join(dir, ENTRY_RECORD),
      JSON.stringify({
        kind: "weights",
        key,
        inputs: { quantization: "q0f16" },
        createdAt: "",
        buildMs: 1,
        files,
      }),
    );
    const out: string[] = [];
    const run = (...args: string[]) =>
      cacheCommand(args, { cacheRoot: root }, { print: (t) => out.push(t) });
    assertEquals(await run("ls"), 0);
    ok(out[0].includes(`weights  ${"e".repeat(16)}`) && out[0].includes("1 entries"), out[0]);
    assertEquals(await run("verify"), 0);
    assertEquals(out.slice(-2), [`weights ${"e".repeat(16)} ok`, "1 entries, 0 bad"]);
    await Deno.writeFile(join(dir, "params_shard_0.bin"), new Uint8Array(3));
    assertEquals(await run("verify"), 1);
    ok(out.at(-2)!.includes("BAD: params_shard_0.bin: sha256"), out.at(-2));
    assertEquals(await run("rm", "eeee"), 0);
    assertEquals(out.at(-1), `removed ${dir}`);
    assertEquals(await run("gc", "--max-size", "1M"), 0);
    ok(out.at(-1)!.startsWith("freed"), out.at(-1));
    await rejects(run("frobnicate"), /unknown cache command "frobnicate"/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
