/**
 * Remembered file digests. Hashing gigabytes of weights on every start would be slow, so a
 * digest is remembered under `<root>/digests/` against the file's path, size, mtime, ctime and
 * inode, and reused while all five are unchanged; any write to the file changes its ctime,
 * which no user-level call can set back. A digest taken less than a second after the file's
 * last change is not trusted later (that change and a next one could share a timestamp).
 * What this cannot see: bits that rot on disk without a write. `full` verification (a memo of
 * null) re-reads everything.
 * @module
 */
import { join, resolve } from "node:path";
import { digestBytes, digestFile } from "./digest.ts";

/** Where digests are remembered; `remember: false` reads memos but writes none (READONLY). */
export interface DigestMemo {
  root: string;
  remember: boolean;
}

const RACY_MS = 1000;

/** Hex digest of the file at `path`, from the memo when the file is unchanged since. */
export async function rememberedDigest(
  algorithm: "sha256" | "md5",
  path: string,
  memo: DigestMemo | null,
): Promise<{ hex: string; bytes: number }> {
  const st = await Deno.stat(path);
  const abs = resolve(path);
  const stamp = {
    algorithm,
    path: abs,
    size: st.size,
    mtimeMs: st.mtime?.getTime() ?? 0,
    ctimeMs: st.ctime?.getTime() ?? 0,
    ino: st.ino ?? 0,
  };
  const memoPath = memo
    ? join(memo.root, "digests", `${digestBytes("sha256", `${algorithm}:${abs}`)}.json`)
    : null;
  if (memoPath) {
    try {
      const m = JSON.parse(await Deno.readTextFile(memoPath));
      const same = Object.entries(stamp).every(([k, v]) => m[k] === v);
      if (
        same && typeof m.hex === "string" &&
        m.hashedAt > Math.max(stamp.mtimeMs, stamp.ctimeMs) + RACY_MS
      ) {
        return { hex: m.hex, bytes: st.size };
      }
    } catch { /* no memo yet */ }
  }
  const hashedAt = Date.now();
  const got = await digestFile(algorithm, path);
  if (memoPath && memo?.remember) {
    await Deno.mkdir(join(memo.root, "digests"), { recursive: true });
    const tmp = `${memoPath}.${crypto.randomUUID()}.tmp`;
    await Deno.writeTextFile(tmp, JSON.stringify({ ...stamp, hashedAt, hex: got.hex }));
    await Deno.rename(tmp, memoPath);
  }
  return got;
}
