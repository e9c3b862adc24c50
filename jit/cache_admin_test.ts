import { deepStrictEqual as assertEquals, ok, rejects, throws } from "node:assert/strict";
import { join } from "node:path";
import { cacheGc, cacheLs, cacheRm, cacheVerify, formatBytes, parseSize } from "./cache_admin.ts";
import { acquireLock } from "./lock.ts";
import { ENTRY_RECORD, lockPath } from "./store.ts";
import { pinAll } from "./weights.ts";

/** A weights-kind entry of `bytes` bytes, last used `ageS` seconds ago. */
async function entry(root: string, key: string, bytes: number, ageS: number): Promise<string> {
  const dir = join(root, "weights", key);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeFile(join(dir, "params_shard_0.bin"), new Uint8Array(bytes).fill(7));
  const record = {
    kind: "weights",
    key,
    inputs: { quantization: "q4f16_1", source_dir: "/m" },
    createdAt: "2026-01-01T00:00:00.000Z",
    buildMs: 5,
    files: await pinAll(dir),
  };
  await Deno.writeTextFile(join(dir, ENTRY_RECORD), JSON.stringify(record));
  const t = new Date(Date.now() - ageS * 1000);
  await Deno.utime(dir, t, t);
  return dir;
}

async function withRoot(fn: (root: string) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "kiln-admin-" });
  try {
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const recordBytes = async (dir: string) => (await Deno.stat(join(dir, ENTRY_RECORD))).size;

Deno.test("cacheLs() lists entries with sizes and last-use times, most recent first", async () => {
  await withRoot(async (root) => {
    const old = await entry(root, "a".repeat(64), 1000, 3600);
    const recent = await entry(root, "b".repeat(64), 3000, 10);
    const ls = await cacheLs(root);
    assertEquals(ls.map((e) => e.key[0]), ["b", "a"]);
    assertEquals(ls.map((e) => e.bytes), [
      3000 + await recordBytes(recent),
      1000 + await recordBytes(old),
    ]);
    ok(Math.abs(ls[1].lastUsedAt.getTime() - (Date.now() - 3600_000)) < 5000);
    assertEquals(ls[0].summary, "weights q4f16_1 from /m");
  });
});

Deno.test("cacheVerify() finds a damaged file and with repair moves the entry aside", async () => {
  await withRoot(async (root) => {
    await entry(root, "a".repeat(64), 100, 0);
    const bad = await entry(root, "b".repeat(64), 100, 0);
    await Deno.writeFile(join(bad, "params_shard_0.bin"), new Uint8Array(100));
    const rows = await cacheVerify(root);
    assertEquals(rows.map((r) => [r.key[0], r.ok]).sort(), [["a", true], ["b", false]]);
    ok(rows.find((r) => !r.ok)!.problems[0].startsWith("params_shard_0.bin: sha256"));
    const repaired = await cacheVerify(root, { repair: true });
    ok(repaired.find((r) => !r.ok)!.movedTo!.includes("quarantine"));
    assertEquals((await cacheLs(root)).map((e) => e.key[0]), ["a"]);
  });
});

Deno.test("cacheGc() removes quarantine and evicts least recently used entries over the budget", async () => {
  await withRoot(async (root) => {
    const a = await entry(root, "a".repeat(64), 1000, 300); // oldest
    const b = await entry(root, "b".repeat(64), 1000, 200);
    const c = await entry(root, "c".repeat(64), 1000, 100); // newest
    const one = 1000 + await recordBytes(c); // records are equal-sized
    await Deno.mkdir(join(root, "failures"), { recursive: true });
    const oldFailure = join(root, "failures", "lib-x.json");
    const newFailure = join(root, "failures", "lib-y.json");
    await Deno.writeTextFile(oldFailure, "{}");
    await Deno.writeTextFile(newFailure, "{}");
    const hourAgo = new Date(Date.now() - 3700_000);
    await Deno.utime(oldFailure, hourAgo, hourAgo);
    await Deno.mkdir(join(root, "quarantine", "junk"), { recursive: true });
    await Deno.writeFile(join(root, "quarantine", "junk", "x"), new Uint8Array(50));
    // "a" is being built right now (its lock held by a live process, us): gc must skip it.
    const held = await acquireLock(lockPath(root, "weights", "a".repeat(64)));
    const r = await cacheGc(root, { maxBytes: 2 * one });
    await held.release();
    assertEquals((await cacheLs(root)).map((e) => e.dir).sort(), [a, c]);
    assertEquals(r.removed.filter((p) => !p.includes("quarantine") && !p.includes("failures")), [
      b,
    ]);
    ok(r.removed.some((p) => p.endsWith(join("quarantine", "junk"))));
    ok(r.removed.includes(oldFailure) && !r.removed.includes(newFailure), String(r.removed));
    assertEquals([r.freedBytes, r.keptBytes], [50 + one, 2 * one]);
    const r2 = await cacheGc(root, { maxBytes: one });
    assertEquals([r2.removed, (await cacheLs(root)).map((e) => e.dir)], [[a], [c]]);
  });
});

Deno.test("cacheRm() removes by unique key prefix and refuses ambiguous or unknown ones", async () => {
  await withRoot(async (root) => {
    await entry(root, "abcd" + "0".repeat(60), 10, 0);
    await entry(root, "abcd" + "1".repeat(60), 10, 0);
    await rejects(cacheRm(root, "a"), /not a key or a key prefix/);
    await rejects(cacheRm(root, "ffff"), /no cache entry matches ffff/);
    await rejects(cacheRm(root, "abcd"), /abcd matches 2 entries/);
    const removed = await cacheRm(root, "abcd1");
    ok(removed.endsWith("abcd" + "1".repeat(60)));
    assertEquals((await cacheLs(root)).map((e) => e.key), ["abcd" + "0".repeat(60)]);
  });
});

Deno.test("parseSize() and formatBytes() use binary units", () => {
  assertEquals(
    ["1048576", "500M", "10G", "1.5GiB", "2kb"].map(parseSize),
    [1048576, 500 * 2 ** 20, 10 * 2 ** 30, 1.5 * 2 ** 30, 2048],
  );
  throws(() => parseSize("ten gigs"), RangeError);
  assertEquals([formatBytes(512), formatBytes(1536), formatBytes(3 * 2 ** 30)], [
    "512 B",
    "1.5 KiB",
    "3.0 GiB",
  ]);
});
