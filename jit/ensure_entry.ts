/**
 * The policy engine shared by libraries and converted weights: find an entry, verify it, and
 * — when the policy allows — build it under the key's lock and publish it atomically.
 *
 * N processes asking for the same missing key: all miss, one takes the lock and builds, the
 * others wait on the lock, then re-verify and find the published entry. A bad entry is moved
 * aside (under the lock, after re-checking) and rebuilt. A failed build leaves nothing behind
 * and its error reaches the caller unchanged.
 * @module
 */
import { join } from "node:path";
import { clearFailure, recordFailure, sharedFailure } from "./build_failure.ts";
import type { DigestMemo } from "./digest_memo.ts";
import { CacheMissError, IntegrityError } from "./errors.ts";
import { acquireLock, type LockOwner } from "./lock.ts";
import type { JitPolicy } from "./options.ts";
import {
  cleanStaleTemps,
  ENTRY_RECORD,
  entryDir,
  type EntryKind,
  type EntryRecord,
  exists,
  lockPath,
  makeBuildDir,
  moveAside,
  publish,
} from "./store.ts";
import { verifyEntry } from "./verify.ts";

export type EntryEvent =
  | { type: "wait"; owner: LockOwner }
  | { type: "takeover"; owner: LockOwner | null }
  | { type: "quarantine"; movedTo: string; problems: string[] }
  | { type: "build-start" }
  | { type: "build-end"; ms: number };

export interface EnsureOptions {
  root: string;
  kind: EntryKind;
  key: string;
  /** The key's inputs, recorded in the entry and named in errors. */
  inputs: Record<string, unknown>;
  policy: JitPolicy;
  /** For libraries: the artifact format version the manifest must carry. */
  formatVersion?: number;
  /** Build the entry's content into the folder `out` (which does not exist yet). */
  build: (out: string) => Promise<void>;
  /** The files of a finished build to pin in entry.json (path → sha256). */
  pin: (out: string) => Promise<Record<string, string>>;
  /** When the request began (ms since epoch): REDO skips its rebuild if another process
   * published the entry after this. Default: now. */
  requestedAt?: number;
  lockTimeoutMs?: number;
  onEvent?: (e: EntryEvent) => void;
  /** Reuse digests of unchanged files (weights); null re-hashes everything. */
  digestMemo?: DigestMemo | null;
}

export interface EnsuredEntry {
  dir: string;
  record: EntryRecord;
  manifest: import("./compiler_api.ts").ArtifactManifest | null;
  bytes: number;
  built: boolean;
}

/** Find, verify and (policy permitting) build the entry `kind/key`. */
export async function ensureEntry(o: EnsureOptions): Promise<EnsuredEntry> {
  const dir = entryDir(o.root, o.kind, o.key);
  const requestedAt = o.requestedAt ?? Date.now();
  const what = `${o.kind} entry ${o.key}`;
  const check = () => verifyEntry(dir, o.kind, o.key, o.formatVersion, o.digestMemo ?? null);

  if (o.policy !== "REDO") {
    const v = await check();
    if (v.status === "ok") {
      if (o.policy !== "READONLY") await touch(dir);
      return { dir, ...v, built: false };
    }
    if (o.policy === "READONLY" || (o.policy === "OFF" && v.status === "missing")) {
      throw refusal(o, dir, v.status === "bad" ? v.problems : null, null);
    }
  }

  let waited = false;
  const lock = await acquireLock(lockPath(o.root, o.kind, o.key), {
    purpose: `build ${o.kind}/${o.key}`,
    timeoutMs: o.lockTimeoutMs,
    onWait: (owner) => {
      waited = true;
      o.onEvent?.({ type: "wait", owner });
    },
    onTakeover: (owner) => o.onEvent?.({ type: "takeover", owner }),
  });
  try {
    await cleanStaleTemps(o.root, `${o.kind}-${o.key}-`);
    const v = await check();
    if (v.status === "ok") {
      const fresh = Date.parse(v.record.createdAt) >= requestedAt;
      if (o.policy !== "REDO" || fresh) {
        await touch(dir);
        return { dir, ...v, built: false };
      }
    }
    if (v.status === "bad") {
      const movedTo = await moveAside(o.root, dir, "corrupt");
      o.onEvent?.({ type: "quarantine", movedTo, problems: v.problems });
      if (o.policy === "OFF") throw refusal(o, dir, v.problems, movedTo);
    }

    // The build we waited for failed: take its error rather than failing again in turn.
    const failed = waited ? await sharedFailure(o.root, o.kind, o.key, requestedAt) : null;
    if (failed) throw failed;

    const build = await makeBuildDir(o.root, o.kind, o.key);
    try {
      o.onEvent?.({ type: "build-start" });
      const t0 = performance.now();
      await o.build(build.out);
      const files = await o.pin(build.out);
      const buildMs = performance.now() - t0;
      const record: EntryRecord = {
        kind: o.kind,
        key: o.key,
        inputs: o.inputs,
        createdAt: new Date().toISOString(),
        buildMs: Math.round(buildMs),
        files,
      };
      await Deno.writeTextFile(join(build.out, ENTRY_RECORD), JSON.stringify(record, null, 1));
      if (!(await publish(o.root, build.out, dir, await exists(dir)))) {
        throw new Error(`could not publish ${what}: ${dir} appeared while the lock was held`);
      }
      o.onEvent?.({ type: "build-end", ms: buildMs });
      await clearFailure(o.root, o.kind, o.key);
    } catch (e) {
      await recordFailure(o.root, o.kind, o.key, e).catch(() => {});
      throw e;
    } finally {
      await Deno.remove(build.dir, { recursive: true }).catch(() => {});
    }
    const after = await check();
    if (after.status !== "ok") {
      const problems = after.status === "bad" ? after.problems : ["the entry vanished"];
      const movedTo = await moveAside(o.root, dir, "unverifiable").catch(() => dir);
      throw new IntegrityError(
        movedTo,
        problems,
        `the freshly built ${what} failed verification (moved to ${movedTo}): ` +
          `${problems.join("; ")}. This is a bug in the builder: report it with this message`,
      );
    }
    return { dir, ...after, built: true };
  } finally {
    await lock.release();
  }
}

function refusal(
  o: EnsureOptions,
  dir: string,
  problems: string[] | null,
  movedTo: string | null,
): Error {
  const inputs = JSON.stringify(o.inputs, (_k, v) =>
    // the normalised model config is long: name its size instead
    _k === "model_config" ? `<${Object.keys(v ?? {}).length} fields>` : v);
  if (problems) {
    const where = movedTo ? `was moved to ${movedTo}` : `is at ${dir}`;
    return new IntegrityError(
      movedTo ?? dir,
      problems,
      `${o.kind} entry ${o.key} failed verification (${problems.join("; ")}); it ${where}. ` +
        `KILN_JIT_POLICY=${o.policy} does not rebuild: rerun with KILN_JIT_POLICY=ON`,
    );
  }
  return new CacheMissError(
    o.key,
    o.inputs,
    `no ${o.kind} entry ${o.key} in ${o.root} and KILN_JIT_POLICY=${o.policy} forbids ` +
      `building it; inputs: ${inputs}. Rerun with KILN_JIT_POLICY=ON to build it`,
  );
}

/** Record a use: the entry folder's mtime is its last-use time (read by `cache ls` and `gc`). */
async function touch(dir: string): Promise<void> {
  const now = new Date();
  await Deno.utime(dir, now, now).catch(() => {});
}
