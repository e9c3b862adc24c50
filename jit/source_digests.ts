/**
 * Digests of a model folder's source files (the top-level regular files: configs, tokenizer,
 * safetensors), which key converted weights. Remembered across starts (see digest_memo.ts).
 * @module
 */
import { join } from "node:path";
import { type DigestMemo, rememberedDigest } from "./digest_memo.ts";

/** name → sha256 hex of every top-level regular file of `dir` (dot files excluded). */
export async function sourceDigests(
  dir: string,
  memo: DigestMemo | null,
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && !e.name.startsWith(".")) names.push(e.name);
  }
  for (const name of names.sort()) {
    out[name] = (await rememberedDigest("sha256", join(dir, name), memo)).hex;
  }
  return out;
}
