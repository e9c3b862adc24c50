import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { join } from "node:path";
import { cleanStaleTemps, makeBuildDir, publish } from "./store.ts";

async function withRoot(fn: (root: string) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "kiln-store-" });
  try {
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const names = async (d: string) =>
  (await Array.fromAsync(Deno.readDir(d))).map((e) => e.name).sort();

Deno.test("publish() renames a finished build into place and refuses an existing entry", async () => {
  await withRoot(async (root) => {
    const dest = join(root, "lib", "k");
    const b1 = await makeBuildDir(root, "lib", "k");
    await Deno.mkdir(b1.out);
    await Deno.writeTextFile(join(b1.out, "lib.js"), "one");
    assertEquals(await publish(root, b1.out, dest, false), true);
    assertEquals(await Deno.readTextFile(join(dest, "lib.js")), "one");
    const b2 = await makeBuildDir(root, "lib", "k");
    await Deno.mkdir(b2.out);
    await Deno.writeTextFile(join(b2.out, "lib.js"), "two");
    assertEquals(await publish(root, b2.out, dest, false), false);
    assertEquals(await Deno.readTextFile(join(dest, "lib.js")), "one");
    assertEquals(await publish(root, b2.out, dest, true), true); // replace
    assertEquals(await Deno.readTextFile(join(dest, "lib.js")), "two");
    assertEquals(await names(join(root, "quarantine")), []); // the replaced entry was deleted
  });
});

Deno.test("cleanStaleTemps() removes builds of dead owners and keeps live ones", async () => {
  await withRoot(async (root) => {
    const live = await makeBuildDir(root, "lib", "a");
    const dead = new Deno.Command("true").spawn();
    await dead.status;
    const deadDir = join(root, "tmp", "lib-b-x");
    await Deno.mkdir(deadDir);
    await Deno.writeTextFile(
      join(deadDir, "owner.json"),
      JSON.stringify({ pid: dead.pid, start: "linux:1", host: Deno.hostname() }),
    );
    assertEquals(await cleanStaleTemps(root, "lib-a-"), []); // prefix: only a's builds
    assertEquals(await cleanStaleTemps(root), [deadDir]);
    assertEquals(await names(join(root, "tmp")), [live.dir.split("/").at(-1)!]);
  });
});
