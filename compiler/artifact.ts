/**
 * Writing an artifact: every file into a temp folder beside the output, a manifest with the
 * sha256 of each, fsync, then one rename into place. An existing output is replaced only after
 * the new one is complete.
 * @module
 */
import { createHash } from "node:crypto";
import { dirname } from "node:path";
import { ARTIFACT_FORMAT_VERSION, COMPILER_VERSION } from "./version.ts";

export function sha256(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

async function writeSynced(path: string, data: string | Uint8Array): Promise<void> {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    let off = 0;
    while (off < bytes.length) off += await file.write(bytes.subarray(off));
    await file.sync();
  } finally {
    file.close();
  }
}

export async function writeArtifact(
  output: string,
  files: Record<string, string | Uint8Array>,
  metadata: unknown,
  keyInputs: Record<string, unknown>,
  debug: [string, string][],
  debugDump?: string,
): Promise<Record<string, unknown>> {
  const all: Record<string, string | Uint8Array> = {
    ...files,
    "metadata.json": JSON.stringify(metadata, null, 1),
  };
  for (const [name, text] of debug) all[`debug/${name}`] = text;
  await Deno.mkdir(dirname(output), { recursive: true });
  const tmp = `${output}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(debug.length > 0 ? `${tmp}/debug` : tmp, { recursive: true });
  try {
    const digests: Record<string, string> = {};
    for (const [name, data] of Object.entries(all)) {
      await writeSynced(`${tmp}/${name}`, data);
      digests[name] = sha256(data);
    }
    const manifest = {
      format_version: ARTIFACT_FORMAT_VERSION,
      kiln_version: COMPILER_VERSION,
      key_inputs: keyInputs,
      files: digests,
    };
    await writeSynced(`${tmp}/manifest.json`, JSON.stringify(manifest, null, 1));
    let old: string | null = null;
    try {
      await Deno.rename(tmp, output);
    } catch (e) {
      // rename cannot replace a non-empty folder: move the old one aside first.
      const exists = await Deno.stat(output).then(() => true, () => false);
      if (!exists) throw e;
      old = `${output}.old-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
      await Deno.rename(output, old);
      await Deno.rename(tmp, output);
    }
    if (old) await Deno.remove(old, { recursive: true });
    if (debugDump) {
      await Deno.mkdir(debugDump, { recursive: true });
      for (const [name, text] of debug) {
        const t = `${debugDump}/${name}.tmp-${Deno.pid}`;
        await Deno.writeTextFile(t, text);
        await Deno.rename(t, `${debugDump}/${name}`);
      }
    }
    return manifest;
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}
