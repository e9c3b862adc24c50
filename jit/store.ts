/**
 * The cache's layout on disk and the operations that keep it consistent:
 *
 *   <root>/lib/<key>/          a compiled library (manifest.json, metadata.json, lib.js, entry.json)
 *   <root>/weights/<key>/      converted weights (MLC format + entry.json)
 *   <root>/locks/<kind>-<key>.lock
 *   <root>/tmp/<kind>-<key>-<uuid>/{owner.json, out/}   an entry being built
 *   <root>/quarantine/<kind>-<key>-<time>-<reason>/      entries moved aside
 *
 * An entry is built under tmp/ (same filesystem), every file fsynced, then renamed into place
 * in one step: a reader sees either no entry or a whole one. A build killed midway leaves only
 * a tmp/ folder whose owner is dead, which `cleanStaleTemps` removes.
 * @module
 */
import { join } from "node:path";
import { isAlive, selfIdentity } from "./process_info.ts";

export type EntryKind = "lib" | "weights";

/** The sidecar each entry carries: which key it is, what went in, and digests of its files. */
export interface EntryRecord {
  kind: EntryKind;
  key: string;
  inputs: Record<string, unknown>;
  createdAt: string;
  buildMs: number;
  /** relative path → sha256 hex. For a library: manifest.json (which covers the rest). */
  files: Record<string, string>;
}

export const ENTRY_RECORD = "entry.json";

export function entryDir(root: string, kind: EntryKind, key: string): string {
  return join(root, kind, key);
}

export function lockPath(root: string, kind: EntryKind, key: string): string {
  return join(root, "locks", `${kind}-${key}.lock`);
}

/** Create `<root>/tmp/<kind>-<key>-<uuid>/` with an owner record; build into the returned `out`. */
export async function makeBuildDir(
  root: string,
  kind: EntryKind,
  key: string,
): Promise<{ dir: string; out: string }> {
  const dir = join(root, "tmp", `${kind}-${key}-${crypto.randomUUID()}`);
  await Deno.mkdir(dir, { recursive: true });
  const me = await selfIdentity();
  await Deno.writeTextFile(
    join(dir, "owner.json"),
    JSON.stringify({ pid: me.pid, start: me.start, host: Deno.hostname() }),
  );
  return { dir, out: join(dir, "out") };
}

/** fsync every file under `dir`, then the directories themselves. */
export async function fsyncTree(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) await fsyncTree(p);
    else if (e.isFile) {
      using f = await Deno.open(p, { read: true });
      await f.sync();
    }
  }
  using d = await Deno.open(dir, { read: true });
  await d.sync();
}

/** Rename the finished build `out` to `dest`. With `replace`, an existing entry is first moved
 * to quarantine/ (and then deleted). Returns false if `dest` exists and `replace` is false. */
export async function publish(
  root: string,
  out: string,
  dest: string,
  replace: boolean,
): Promise<boolean> {
  await fsyncTree(out);
  await Deno.mkdir(join(dest, ".."), { recursive: true });
  let old: string | null = null;
  if (replace && await exists(dest)) {
    old = await moveAside(root, dest, "replaced");
  }
  try {
    await Deno.rename(out, dest);
  } catch (e) {
    if (await exists(dest)) return false; // a non-empty folder is already there
    throw e;
  }
  using parent = await Deno.open(join(dest, ".."), { read: true });
  await parent.sync();
  if (old) await Deno.remove(old, { recursive: true }).catch(() => {});
  return true;
}

/** Move an entry folder to `<root>/quarantine/` (kept for inspection; `gc` deletes it). */
export async function moveAside(root: string, dir: string, reason: string): Promise<string> {
  const name = dir.split(/[\\/]/).filter(Boolean).slice(-2).join("-");
  const stamp = new Date().toISOString().replace(/[:.]/g, "");
  const dest = join(
    root,
    "quarantine",
    `${name}-${stamp}-${reason}-${crypto.randomUUID().slice(0, 8)}`,
  );
  await Deno.mkdir(join(root, "quarantine"), { recursive: true });
  await Deno.rename(dir, dest);
  return dest;
}

/** Remove build folders under tmp/ whose owner is no longer running (optionally only those of
 * one entry). A folder without a readable owner record is removed once older than an hour. */
export async function cleanStaleTemps(root: string, prefix = ""): Promise<string[]> {
  const tmp = join(root, "tmp");
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(tmp));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return removed;
    throw e;
  }
  for (const e of entries) {
    if (!e.name.startsWith(prefix)) continue;
    const dir = join(tmp, e.name);
    let dead: boolean;
    try {
      const o = JSON.parse(await Deno.readTextFile(join(dir, "owner.json")));
      dead = o.host === Deno.hostname() && !(await isAlive(o.pid, o.start));
    } catch {
      const st = await Deno.stat(dir).catch(() => null);
      dead = st !== null && Date.now() - (st.mtime?.getTime() ?? 0) > 3600_000;
    }
    if (dead) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      removed.push(dir);
    }
  }
  return removed;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
