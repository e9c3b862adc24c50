import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { join } from "node:path";
import { sourceDigests } from "./source_digests.ts";

// sha256 known answers (FIPS 180-2): "abc" and "".
const ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

Deno.test("sourceDigests() hashes top-level files, skipping dot files and folders", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "config.json"), "abc");
    await Deno.writeTextFile(join(dir, "model.safetensors"), "");
    await Deno.writeTextFile(join(dir, ".DS_Store"), "x");
    await Deno.mkdir(join(dir, "lib"));
    await Deno.writeTextFile(join(dir, "lib", "lib.js"), "x");
    assertEquals(await sourceDigests(dir, null), {
      "config.json": ABC,
      "model.safetensors": EMPTY,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sourceDigests() reuses a remembered digest until the file changes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const root = join(dir, "cache");
    const model = join(dir, "model");
    await Deno.mkdir(model);
    await Deno.writeTextFile(join(model, "w.bin"), "abc");
    const memo = { root, remember: true };
    // Hashed right after a change: remembered but not trusted (a racy timestamp).
    assertEquals(await sourceDigests(model, memo), { "w.bin": ABC });
    const memoFile = join(
      root,
      "digests",
      (await Array.fromAsync(Deno.readDir(join(root, "digests"))))[0].name,
    );
    const forge = async () => {
      const m = JSON.parse(await Deno.readTextFile(memoFile));
      await Deno.writeTextFile(memoFile, JSON.stringify({ ...m, hex: "f".repeat(64) }));
    };
    await forge();
    assertEquals(await sourceDigests(model, memo), { "w.bin": ABC }); // re-hashed
    await new Promise((r) => setTimeout(r, 1100));
    assertEquals(await sourceDigests(model, memo), { "w.bin": ABC }); // now trusted
    await forge(); // so a forged memo shows whether the file was read again
    assertEquals(await sourceDigests(model, memo), { "w.bin": "f".repeat(64) });
    // Same size, any change (content rewritten, even with the old mtime put back): hashed again.
    const st = await Deno.stat(join(model, "w.bin"));
    await Deno.writeTextFile(join(model, "w.bin"), "abd");
    await Deno.utime(join(model, "w.bin"), st.atime!, st.mtime!);
    const abd = "a52d159f262b2c6ddb724a61840befc36eb30c88877a4030b65cbe86298449c9";
    assertEquals(await sourceDigests(model, memo), { "w.bin": abd });
    // remember: false reads memos but writes none.
    await Deno.remove(join(root, "digests"), { recursive: true });
    await sourceDigests(model, { root, remember: false });
    assertEquals(await Deno.stat(join(root, "digests")).catch(() => null), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
