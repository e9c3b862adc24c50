/**
 * A failed build, shared with the processes that were waiting for it. When one process fails to
 * compile a key that seven others are waiting on, the seven should get that error at once, not
 * compile (and fail) seven more times in turn. The failure is recorded under
 * `<root>/failures/<kind>-<key>.json`; a waiter that acquires the lock and finds a failure
 * newer than its own request rethrows it as the same domain error (same name, stage and
 * message). A later, new request builds again. A successful build clears the record.
 * @module
 */
import { join } from "node:path";
import { CompileError, ConfigError, NotImplementedError, WeightError } from "../compiler/errors.ts";
import type { EntryKind } from "./store.ts";

interface FailureRecord {
  name: string;
  message: string;
  stage: string | null;
  pid: number;
  host: string;
  at: number;
}

const path = (root: string, kind: EntryKind, key: string) =>
  join(root, "failures", `${kind}-${key}.json`);

/** Record that building `kind/key` failed with `err` (written atomically). */
export async function recordFailure(root: string, kind: EntryKind, key: string, err: unknown) {
  const e = err instanceof Error ? err : new Error(String(err));
  const rec: FailureRecord = {
    name: e.name,
    message: e.message,
    stage: typeof (e as { stage?: unknown }).stage === "string" ? (e as CompileError).stage : null,
    pid: Deno.pid,
    host: Deno.hostname(),
    at: Date.now(),
  };
  const p = path(root, kind, key);
  await Deno.mkdir(join(root, "failures"), { recursive: true });
  const tmp = `${p}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(rec));
  await Deno.rename(tmp, p);
}

export async function clearFailure(root: string, kind: EntryKind, key: string) {
  await Deno.remove(path(root, kind, key)).catch(() => {});
}

/** The error of a build of `kind/key` that failed at or after `since` (ms), or null. */
export async function sharedFailure(
  root: string,
  kind: EntryKind,
  key: string,
  since: number,
): Promise<Error | null> {
  let rec: FailureRecord;
  try {
    rec = JSON.parse(await Deno.readTextFile(path(root, kind, key)));
  } catch {
    return null;
  }
  if (!(rec.at >= since)) return null;
  const cause = new Error(
    `raised in pid ${rec.pid} on ${rec.host} at ${new Date(rec.at).toISOString()}, which built ` +
      `${kind}/${key} while this process waited for it; not retried (a new request builds again)`,
  );
  if (rec.name === "CompileError" && rec.stage !== null) {
    const detail = rec.message.replace(/^compile stage ".*?" failed: /, "");
    return new CompileError(rec.stage, detail, { cause });
  }
  const named = { ConfigError, WeightError, NotImplementedError }[rec.name];
  if (named) return new named(rec.message, { cause });
  return new Error(`${rec.name}: ${rec.message}`, { cause });
}
