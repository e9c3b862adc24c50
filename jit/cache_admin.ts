/**
 * `kiln cache ls | verify | gc | rm`: list entries with sizes and last-use times, verify them,
 * collect garbage (dead builds, quarantined entries, least-recently-used entries over a size
 * budget) and remove one entry by key or unique key prefix. Removal takes the entry's lock, so
 * it never races a build of the same key.
 * @module
 */
import { join } from "node:path";
import { LockTimeoutError } from "./errors.ts";
import { acquireLock } from "./lock.ts";
import {
  cleanStaleTemps,
  ENTRY_RECORD,
  type EntryKind,
  type EntryRecord,
  lockPath,
  moveAside,
} from "./store.ts";
import { verifyEntry } from "./verify.ts";

export interface CacheEntryInfo {
  kind: EntryKind;
  key: string;
  dir: string;
  bytes: number;
  createdAt: string | null;
  /** The entry folder's mtime, which every load updates. */
  lastUsedAt: Date;
  buildMs: number | null;
  /** e.g. "llama q4f16_1 target 3fa2…" or "weights q4f16_1 from /models/x". */
  summary: string;
}

const KINDS: EntryKind[] = ["lib", "weights"];

/** Every entry under `root`, most recently used first. */
export async function cacheLs(root: string): Promise<CacheEntryInfo[]> {
  const out: CacheEntryInfo[] = [];
  for (const kind of KINDS) {
    for (const name of await listDir(join(root, kind))) {
      const dir = join(root, kind, name);
      const st = await Deno.stat(dir).catch(() => null);
      if (!st?.isDirectory) continue;
      let record: Partial<EntryRecord> = {};
      try {
        record = JSON.parse(await Deno.readTextFile(join(dir, ENTRY_RECORD)));
      } catch { /* listed anyway; verify reports it */ }
      out.push({
        kind,
        key: name,
        dir,
        bytes: await treeBytes(dir),
        createdAt: record.createdAt ?? null,
        lastUsedAt: st.mtime ?? new Date(0),
        buildMs: record.buildMs ?? null,
        summary: summarise(kind, record.inputs ?? {}),
      });
    }
  }
  return out.sort((a, b) => b.lastUsedAt.getTime() - a.lastUsedAt.getTime());
}

/** Verify every entry (sha256 of every file). With `repair`, bad entries are moved aside. */
export async function cacheVerify(
  root: string,
  opts: { formatVersion?: number; repair?: boolean } = {},
): Promise<{ kind: EntryKind; key: string; ok: boolean; problems: string[]; movedTo?: string }[]> {
  const out = [];
  for (const e of await cacheLs(root)) {
    const v = await verifyEntry(
      e.dir,
      e.kind,
      e.key,
      e.kind === "lib" ? opts.formatVersion : undefined,
    );
    const problems = v.status === "bad" ? v.problems : v.status === "missing" ? ["vanished"] : [];
    const row: { kind: EntryKind; key: string; ok: boolean; problems: string[]; movedTo?: string } =
      {
        kind: e.kind,
        key: e.key,
        ok: problems.length === 0,
        problems,
      };
    if (!row.ok && opts.repair) {
      row.movedTo = await withLock(root, e.kind, e.key, () => moveAside(root, e.dir, "corrupt")) ??
        undefined;
    }
    out.push(row);
  }
  return out;
}

/** Remove dead builds, quarantined entries and hour-old failure records; then, with `maxBytes`,
 * evict the least recently used entries until the cache fits. Entries being built (lock held)
 * are skipped. Lock files and their `.guard` companions stay (removing a guard another process
 * holds would let two processes break the same stale lock). */
export async function cacheGc(
  root: string,
  opts: { maxBytes?: number } = {},
): Promise<{ removed: string[]; freedBytes: number; keptBytes: number }> {
  const removed: string[] = [];
  let freedBytes = 0;
  for (const dir of await cleanStaleTemps(root)) removed.push(dir);
  for (const name of await listDir(join(root, "quarantine"))) {
    const dir = join(root, "quarantine", name);
    freedBytes += await treeBytes(dir);
    await Deno.remove(dir, { recursive: true });
    removed.push(dir);
  }
  // Failure records are hints for processes waiting right now; stray lock temp files are
  // left by a process killed while taking a lock. Both are safe to drop after an hour.
  for (const [sub, match] of [["failures", /\.json$/], ["locks", /\.tmp$/]] as const) {
    for (const name of await listDir(join(root, sub))) {
      const p = join(root, sub, name);
      const st = await Deno.stat(p).catch(() => null);
      if (match.test(name) && st && Date.now() - (st.mtime?.getTime() ?? 0) > 3600_000) {
        await Deno.remove(p).catch(() => {});
        removed.push(p);
      }
    }
  }
  const entries = await cacheLs(root); // most recent first
  let keptBytes = entries.reduce((s, e) => s + e.bytes, 0);
  if (opts.maxBytes !== undefined) {
    for (const e of [...entries].reverse()) {
      if (keptBytes <= opts.maxBytes) break;
      const ok = await withLock(root, e.kind, e.key, () => removeEntry(root, e.dir));
      if (ok === null) continue;
      keptBytes -= e.bytes;
      freedBytes += e.bytes;
      removed.push(e.dir);
    }
  }
  return { removed, freedBytes, keptBytes };
}

/** Remove the entry whose key is `keyOrPrefix` (or starts with it, if unique). Throws
 * RangeError when nothing or more than one entry matches. Returns the removed folder. */
export async function cacheRm(root: string, keyOrPrefix: string): Promise<string> {
  if (!/^[0-9a-f]{4,64}$/.test(keyOrPrefix)) {
    throw new RangeError(`"${keyOrPrefix}" is not a key or a key prefix (4–64 hex digits)`);
  }
  const hits = (await cacheLs(root)).filter((e) => e.key.startsWith(keyOrPrefix));
  if (hits.length !== 1) {
    throw new RangeError(
      hits.length === 0
        ? `no cache entry matches ${keyOrPrefix} in ${root} (see \`cache ls\`)`
        : `${keyOrPrefix} matches ${hits.length} entries: ${
          hits.map((h) => `${h.kind}/${h.key}`).join(", ")
        }`,
    );
  }
  const e = hits[0];
  const done = await withLock(root, e.kind, e.key, () => removeEntry(root, e.dir));
  if (done === null) {
    throw new LockTimeoutError(
      lockPath(root, e.kind, e.key),
      `${e.kind}/${e.key} is being built now; try again when it is done`,
    );
  }
  return e.dir;
}

/** Parse a size such as "500M", "10GB", "1.5GiB", "1048576" (binary units). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) throw new RangeError(`"${text}" is not a size: use e.g. 500M, 10G, 1.5GiB`);
  const mult = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2].toLowerCase()]!;
  return Math.floor(Number(m[1]) * mult);
}

/** "1.5 GiB"-style size. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

/** Make the entry disappear in one step (rename), then delete it. */
async function removeEntry(root: string, dir: string): Promise<void> {
  await Deno.remove(await moveAside(root, dir, "removed"), { recursive: true });
}

/** Run `fn` holding the entry's lock; null (and `fn` not run) if the lock is held by a live process. */
async function withLock<T>(
  root: string,
  kind: EntryKind,
  key: string,
  fn: () => Promise<T>,
): Promise<T | null> {
  let lock;
  try {
    lock = await acquireLock(lockPath(root, kind, key), {
      timeoutMs: 0,
      purpose: `cache admin ${kind}/${key}`,
    });
  } catch (e) {
    if (e instanceof LockTimeoutError) return null;
    throw e;
  }
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

function summarise(kind: EntryKind, inputs: Record<string, unknown>): string {
  const q = String(inputs.quantization ?? "?");
  if (kind === "weights") return `weights ${q} from ${inputs.source_dir ?? "?"}`;
  const cfg = (inputs.model_config ?? {}) as Record<string, unknown>;
  const type = inputs.model_type ?? cfg.model_type ?? "?";
  const target = inputs.target ?? `target ${String(inputs.target_fingerprint ?? "?").slice(0, 12)}`;
  return `${type} ${q} ${target}`;
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

async function treeBytes(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) n += await treeBytes(p);
    else if (e.isFile) n += (await Deno.stat(p)).size;
  }
  return n;
}
