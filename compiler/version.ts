/**
 * Kiln's compiler version as it enters the cache key: the release number plus a digest of the
 * compiler's own source files, so that any change to the compiler — a release or a local edit —
 * gives new keys and a library built by other code is never loaded.
 * @module
 */
import { createHash } from "node:crypto";

export const RELEASE = "0.1.0";
export const ARTIFACT_FORMAT_VERSION = 1;

function sourceDigest(): string {
  const root = new URL("./", import.meta.url);
  if (root.protocol !== "file:") return "remote";
  const files: string[] = [];
  const walk = (dir: URL, rel: string) => {
    for (const e of Deno.readDirSync(dir)) {
      if (e.isDirectory) walk(new URL(`${e.name}/`, dir), `${rel}${e.name}/`);
      else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) {
        files.push(`${rel}${e.name}`);
      }
    }
  };
  try {
    walk(root, "");
  } catch {
    return "unreadable";
  }
  const h = createHash("sha256");
  for (const f of files.sort()) {
    h.update(f).update("\0").update(Deno.readFileSync(new URL(f, root))).update("\0");
  }
  return h.digest("hex").slice(0, 16);
}

/** e.g. "0.1.0+3f2a…": the release and the digest of compiler/**.ts. */
export const COMPILER_VERSION = `${RELEASE}+${sourceDigest()}`;
