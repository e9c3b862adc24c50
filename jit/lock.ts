/**
 * An exclusive, cross-process lock held as a file that names its owner (pid, process start
 * time, host). The file is written completely under a temporary name and hard-linked into
 * place, so it appears atomically and is never seen half-written. A lock whose owner on this
 * host is no longer running (pid gone, or reused by a process with another start time) is taken
 * over; the takeover itself is serialised by an OS file lock on `<path>.guard`, which the
 * kernel releases if its holder dies, so two waiters can never both break the same lock.
 * @module
 */
import { dirname } from "node:path";
import { LockTimeoutError } from "./errors.ts";
import { isAlive, selfIdentity } from "./process_info.ts";

/** What a lock file records about its holder. */
export interface LockOwner {
  pid: number;
  start: string;
  host: string;
  acquiredAt: string;
  purpose: string;
}

export interface LockOptions {
  /** Give up after this long while a live owner holds the lock (default 30 minutes). */
  timeoutMs?: number;
  /** Poll interval while waiting (default 50 ms). */
  pollMs?: number;
  /** Recorded in the lock file, shown to waiters (e.g. "compile lib/<key>"). */
  purpose?: string;
  /** Called when the lock is found held, once per distinct holder. */
  onWait?: (owner: LockOwner) => void;
  /** Called when a dead holder's lock is taken over. */
  onTakeover?: (owner: LockOwner | null) => void;
}

export interface Lock {
  readonly path: string;
  readonly owner: LockOwner;
  release(): Promise<void>;
}

/** A lock file with no parsable content older than this is treated as abandoned. */
const UNREADABLE_GRACE_MS = 10_000;

/** Acquire the exclusive lock at `path`, waiting for a live holder and taking over from a dead one. */
export async function acquireLock(path: string, options: LockOptions = {}): Promise<Lock> {
  const { timeoutMs = 30 * 60_000, pollMs = 50, purpose = "", onWait, onTakeover } = options;
  const me = await selfIdentity();
  const owner: LockOwner = {
    pid: me.pid,
    start: me.start,
    host: Deno.hostname(),
    acquiredAt: new Date().toISOString(),
    purpose,
  };
  const content = JSON.stringify(owner);
  await Deno.mkdir(dirname(path), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  let lastSeen = "";
  for (;;) {
    if (await tryCreate(path, content)) {
      return { path, owner, release: () => releaseLock(path, content) };
    }
    const held = await readHolder(path);
    if (held === "gone") continue;
    if (held.stale) {
      if (await breakStale(path, held.raw)) onTakeover?.(held.owner);
      continue;
    }
    if (held.owner && held.raw !== lastSeen) {
      lastSeen = held.raw;
      onWait?.(held.owner);
    }
    if (Date.now() >= deadline) {
      const who = held.owner
        ? `pid ${held.owner.pid} on ${held.owner.host} (${held.owner.purpose}, since ${held.owner.acquiredAt})`
        : "an unknown process";
      throw new LockTimeoutError(
        path,
        `lock ${path} is still held by ${who} after ${timeoutMs} ms; ` +
          `wait for it to finish, or delete the lock file if that process is gone`,
      );
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

async function tryCreate(path: string, content: string): Promise<boolean> {
  const tmp = `${path}.${Deno.pid}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, content);
  try {
    await Deno.link(tmp, path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return false;
    throw e;
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}

type Holder = { raw: string; owner: LockOwner | null; stale: boolean } | "gone";

async function readHolder(path: string): Promise<Holder> {
  let raw: string;
  let mtime: number;
  try {
    raw = await Deno.readTextFile(path);
    mtime = (await Deno.stat(path)).mtime?.getTime() ?? 0;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return "gone";
    throw e;
  }
  let owner: LockOwner | null = null;
  try {
    const parsed = JSON.parse(raw);
    if (typeof parsed?.pid === "number" && typeof parsed?.start === "string") owner = parsed;
  } catch { /* unreadable: judged by age below */ }
  if (!owner) return { raw, owner, stale: Date.now() - mtime > UNREADABLE_GRACE_MS };
  // A holder on another host (shared filesystem) cannot be checked: treat it as live.
  const stale = owner.host === Deno.hostname() && !(await isAlive(owner.pid, owner.start));
  return { raw, owner, stale };
}

/** Remove the lock file if it still holds `staleRaw`, under the guard lock. True if removed. */
async function breakStale(path: string, staleRaw: string): Promise<boolean> {
  using guard = await Deno.open(`${path}.guard`, { create: true, write: true });
  await guard.lock(true);
  try {
    let now: string;
    try {
      now = await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
    if (now !== staleRaw) return false; // someone else already took it over
    await Deno.remove(path);
    return true;
  } finally {
    await guard.unlock();
  }
}

async function releaseLock(path: string, content: string): Promise<void> {
  try {
    if ((await Deno.readTextFile(path)) === content) await Deno.remove(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}
