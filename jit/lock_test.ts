import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { LockTimeoutError } from "./errors.ts";
import { acquireLock, type LockOwner } from "./lock.ts";
import { processStartTime } from "./process_info.ts";

async function withTmp(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "kiln-lock-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function ownerFile(path: string, o: Partial<LockOwner>) {
  const full = { host: Deno.hostname(), acquiredAt: "2026-01-01T00:00:00Z", purpose: "test", ...o };
  return Deno.writeTextFile(path, JSON.stringify(full));
}

Deno.test("acquireLock() writes an owner record and excludes a second holder until release", async () => {
  await withTmp(async (dir) => {
    const path = join(dir, "locks", "k.lock");
    const a = await acquireLock(path, { purpose: "first" });
    const rec = JSON.parse(await Deno.readTextFile(path));
    assertEquals([rec.pid, rec.start, rec.purpose], [
      Deno.pid,
      await processStartTime(Deno.pid),
      "first",
    ]);
    const seen: number[] = [];
    await rejects(
      acquireLock(path, { timeoutMs: 120, onWait: (o) => seen.push(o.pid) }),
      (e: unknown) =>
        e instanceof LockTimeoutError && e.message.includes(`pid ${Deno.pid}`) &&
        e.message.includes("first"),
    );
    assertEquals(seen, [Deno.pid]);
    await a.release();
    const b = await acquireLock(path, { timeoutMs: 0 });
    await b.release();
    assertEquals(await Deno.stat(path).catch(() => null), null);
  });
});

Deno.test("acquireLock() takes over a lock whose owner has exited", async () => {
  await withTmp(async (dir) => {
    const child = new Deno.Command("true").spawn();
    const pid = child.pid;
    await child.status; // reaped: pid no longer exists
    const path = join(dir, "k.lock");
    await ownerFile(path, { pid, start: "linux:12345" });
    const taken: (number | undefined)[] = [];
    const l = await acquireLock(path, { timeoutMs: 0, onTakeover: (o) => taken.push(o?.pid) });
    assertEquals(taken, [pid]);
    assertEquals(JSON.parse(await Deno.readTextFile(path)).pid, Deno.pid);
    await l.release();
  });
});

Deno.test("acquireLock() takes over a lock whose pid was reused by another process", async () => {
  await withTmp(async (dir) => {
    const path = join(dir, "k.lock");
    // Our own pid, but a start time that is not ours: the recorded owner is gone.
    await ownerFile(path, { pid: Deno.pid, start: "linux:1" });
    const l = await acquireLock(path, { timeoutMs: 0 });
    assertEquals(JSON.parse(await Deno.readTextFile(path)).start, await processStartTime(Deno.pid));
    await l.release();
  });
});

Deno.test("acquireLock() treats a holder on another host as live", async () => {
  await withTmp(async (dir) => {
    const path = join(dir, "k.lock");
    await ownerFile(path, { pid: 1, start: "linux:1", host: "some-other-host" });
    await rejects(acquireLock(path, { timeoutMs: 60 }), LockTimeoutError);
  });
});

Deno.test("acquireLock() serialises many concurrent holders", async () => {
  await withTmp(async (dir) => {
    const path = join(dir, "k.lock");
    let inside = 0;
    let maxInside = 0;
    let total = 0;
    await Promise.all(Array.from({ length: 20 }, async () => {
      const l = await acquireLock(path, { pollMs: 2 });
      inside++;
      maxInside = Math.max(maxInside, inside);
      await new Promise((r) => setTimeout(r, 1));
      total++;
      inside--;
      await l.release();
    }));
    assertEquals([maxInside, total], [1, 20]);
    ok(!(await Array.fromAsync(Deno.readDir(dir))).some((e) => e.name.endsWith(".tmp")));
  });
});
