/**
 * Verify a cache entry before anything in it is used: the entry record names the key, every
 * file it lists must exist with the recorded sha256, and for a library the compiler's
 * `manifest.json` (pinned by the record) must list `lib.js` and match every file it names.
 * @module
 */
import { isAbsolute, join, normalize } from "node:path";
import type { ArtifactManifest } from "./compiler_api.ts";
import { type DigestMemo, rememberedDigest } from "./digest_memo.ts";
import { ENTRY_RECORD, type EntryKind, type EntryRecord, exists } from "./store.ts";

export type Verification =
  | { status: "ok"; record: EntryRecord; manifest: ArtifactManifest | null; bytes: number }
  | { status: "missing" }
  | { status: "bad"; problems: string[] };

/** Check the entry at `dir`. `formatVersion`: the artifact format a library must have. With a
 * memo, digests of unchanged files taken earlier are reused (weights only: see digest_memo.ts). */
export async function verifyEntry(
  dir: string,
  kind: EntryKind,
  key: string,
  formatVersion?: number,
  memo: DigestMemo | null = null,
): Promise<Verification> {
  if (!(await exists(dir))) return { status: "missing" };
  let record: EntryRecord;
  try {
    record = JSON.parse(await Deno.readTextFile(join(dir, ENTRY_RECORD)));
  } catch (e) {
    return { status: "bad", problems: [`${ENTRY_RECORD}: ${(e as Error).message}`] };
  }
  const problems: string[] = [];
  if (record.kind !== kind || record.key !== key) {
    problems.push(`${ENTRY_RECORD} names ${record.kind}/${record.key}, expected ${kind}/${key}`);
  }
  if (typeof record.files !== "object" || record.files === null) {
    return { status: "bad", problems: [...problems, `${ENTRY_RECORD} has no file list`] };
  }
  let bytes = await checkFiles(dir, record.files, ENTRY_RECORD, problems, memo);
  let manifest: ArtifactManifest | null = null;
  if (kind === "lib" && problems.length === 0) {
    try {
      manifest = JSON.parse(await Deno.readTextFile(join(dir, "manifest.json")));
    } catch (e) {
      problems.push(`manifest.json: ${(e as Error).message}`);
    }
    if (manifest) {
      if (formatVersion !== undefined && manifest.format_version !== formatVersion) {
        problems.push(
          `manifest.json has format_version ${manifest.format_version}, expected ${formatVersion}`,
        );
      }
      const files = manifest.files ?? {};
      if (!("lib.js" in files)) problems.push("manifest.json does not list lib.js");
      bytes += await checkFiles(dir, files, "manifest.json", problems, null);
    }
  }
  return problems.length ? { status: "bad", problems } : { status: "ok", record, manifest, bytes };
}

async function checkFiles(
  dir: string,
  files: Record<string, string>,
  listedIn: string,
  problems: string[],
  memo: DigestMemo | null,
): Promise<number> {
  let bytes = 0;
  for (const [rel, want] of Object.entries(files)) {
    const clean = normalize(rel);
    if (isAbsolute(rel) || clean.startsWith("..")) {
      problems.push(`${listedIn} lists ${rel}, which is outside the entry`);
      continue;
    }
    try {
      const got = await rememberedDigest("sha256", join(dir, clean), memo);
      bytes += got.bytes;
      if (got.hex !== want) {
        problems.push(`${rel}: sha256 ${got.hex} does not match ${want} in ${listedIn}`);
      }
    } catch (e) {
      problems.push(
        e instanceof Deno.errors.NotFound
          ? `${rel}: missing (listed in ${listedIn})`
          : `${rel}: ${(e as Error).message}`,
      );
    }
  }
  return bytes;
}
