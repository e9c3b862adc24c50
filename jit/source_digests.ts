/**
 * Digests of a model folder's source files (the top-level regular files: configs, tokenizer,
 * safetensors), which key converted weights. Hashing gigabytes on every start would be slow, so
 * each digest is remembered under `<root>/digests/` against the file's path, size, mtime, ctime
 * and inode; a changed file is hashed again. A digest taken less than a second after the file's
 * last change is not trusted later (the change and a following one could share a timestamp).
 * @module
 */
import { join, resolve } from "node:path";
import { digestBytes, digestFile } from "./digest.ts";

const RACY_MS = 1000;

/** name → sha256 hex of every top-level regular file of `dir` (dot files excluded). With a
 * cache root and `remember`, digests are reused and stored. */
export async function sourceDigests(
  dir: string,
  memo: { root: string; remember: boolean } | null,
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && !e.name.startsWith(".")) names.push(e.name);
  }
  for (const name of names.sort()) out[name] = await fileDigest(join(dir, name), memo);
  return out;
}

async function fileDigest(
  path: string,
  memo: { root: string; remember: boolean } | null,
): Promise<string> {
  const st = await Deno.stat(path);
  const abs = resolve(path);
  const stamp = {
    path: abs,
    size: st.size,
    mtimeMs: st.mtime?.getTime() ?? 0,
    ctimeMs: st.ctime?.getTime() ?? 0,
    ino: st.ino ?? 0,
  };
  const memoPath = memo ? join(memo.root, "digests", `${digestBytes("sha256", abs)}.json`) : null;
  if (memoPath) {
    try {
      const m = JSON.parse(await Deno.readTextFile(memoPath));
      if (
        m.path === stamp.path && m.size === stamp.size && m.mtimeMs === stamp.mtimeMs &&
        m.ctimeMs === stamp.ctimeMs && m.ino === stamp.ino && typeof m.sha256 === "string" &&
        m.hashedAt > Math.max(stamp.mtimeMs, stamp.ctimeMs) + RACY_MS
      ) return m.sha256;
    } catch { /* no memo yet */ }
  }
  const hashedAt = Date.now();
  const { hex } = await digestFile("sha256", path);
  if (memoPath && memo?.remember) {
    await Deno.mkdir(join(memo.root, "digests"), { recursive: true });
    const tmp = `${memoPath}.${crypto.randomUUID()}.tmp`;
    await Deno.writeTextFile(tmp, JSON.stringify({ ...stamp, hashedAt, sha256: hex }));
    await Deno.rename(tmp, memoPath);
  }
  return hex;
}
