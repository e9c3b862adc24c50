/**
 * Streaming file digests (sha256, md5) through `node:crypto`.
 * @module
 */
import { createHash } from "node:crypto";

/** Hex digest of a string or bytes. */
export function digestBytes(algorithm: "sha256" | "md5", data: string | Uint8Array): string {
  return createHash(algorithm).update(data).digest("hex");
}

/** Hex digest of a file's bytes, read in chunks (constant memory for multi-GB shards).
 * Also returns the number of bytes read. */
export async function digestFile(
  algorithm: "sha256" | "md5",
  path: string,
): Promise<{ hex: string; bytes: number }> {
  const hash = createHash(algorithm);
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1 << 20);
  let bytes = 0;
  for (;;) {
    const n = await file.read(buf);
    if (n === null) break;
    hash.update(buf.subarray(0, n));
    bytes += n;
  }
  return { hex: hash.digest("hex"), bytes };
}
