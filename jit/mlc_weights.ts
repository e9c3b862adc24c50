/**
 * Check an MLC-format weight folder in place: `mlc-chat-config.json`, a tensor cache index
 * (`tensor-cache.json`, or the older `ndarray-cache.json`) and every `params_shard_*.bin` it
 * names — present, of the recorded size, with the recorded md5, and every tensor record inside
 * its shard.
 * @module
 */
import { join } from "node:path";
import { type DigestMemo, rememberedDigest } from "./digest_memo.ts";
import { exists } from "./store.ts";

export const TENSOR_CACHE_FILES = ["tensor-cache.json", "ndarray-cache.json"];

interface ShardRecord {
  dataPath: string;
  nbytes?: number;
  md5sum?: string;
  records?: { name: string; nbytes: number; byteOffset: number }[];
}

export interface MlcWeightsCheck {
  /** Problems found; empty when the folder is usable. */
  problems: string[];
  /** The index file found (tensor-cache.json or ndarray-cache.json), or null. */
  index: string | null;
  shards: number;
  bytes: number;
  /** Shards whose index carries no md5sum (checked by size only). */
  unchecked: string[];
}

/** True when `dir` looks like an MLC weight folder (has mlc-chat-config.json and an index). */
export async function isMlcWeightDir(dir: string): Promise<boolean> {
  if (!(await exists(join(dir, "mlc-chat-config.json")))) return false;
  for (const f of TENSOR_CACHE_FILES) if (await exists(join(dir, f))) return true;
  return false;
}

/** Verify an MLC weight folder. `md5: false` checks sizes only; with a memo, an md5 taken
 * earlier of an unchanged shard is reused (see digest_memo.ts). */
export async function checkMlcWeights(
  dir: string,
  opts: { md5?: boolean; memo?: DigestMemo | null } = {},
): Promise<MlcWeightsCheck> {
  const { md5 = true, memo = null } = opts;
  const out: MlcWeightsCheck = { problems: [], index: null, shards: 0, bytes: 0, unchecked: [] };
  if (!(await exists(join(dir, "mlc-chat-config.json")))) {
    out.problems.push(`${dir}: mlc-chat-config.json is missing`);
  }
  for (const f of TENSOR_CACHE_FILES) {
    if (await exists(join(dir, f))) {
      out.index = f;
      break;
    }
  }
  if (!out.index) {
    out.problems.push(`${dir}: neither tensor-cache.json nor ndarray-cache.json is present`);
    return out;
  }
  let shards: ShardRecord[];
  try {
    shards = JSON.parse(await Deno.readTextFile(join(dir, out.index))).records;
    if (!Array.isArray(shards)) throw new Error("it has no records[] array");
  } catch (e) {
    out.problems.push(
      `${join(dir, out.index)} is not a tensor cache index: ${(e as Error).message}`,
    );
    return out;
  }
  for (const s of shards) {
    const path = join(dir, s.dataPath);
    let size: number;
    try {
      size = (await Deno.stat(path)).size;
    } catch {
      out.problems.push(`${s.dataPath}: missing (listed in ${out.index})`);
      continue;
    }
    out.shards++;
    out.bytes += size;
    if (s.nbytes !== undefined && size !== s.nbytes) {
      out.problems.push(`${s.dataPath}: ${size} bytes, ${out.index} says ${s.nbytes} (truncated?)`);
      continue;
    }
    for (const r of s.records ?? []) {
      if (r.byteOffset + r.nbytes > size) {
        out.problems.push(
          `${s.dataPath}: tensor ${r.name} ends at ${r.byteOffset + r.nbytes} > ${size}`,
        );
        break;
      }
    }
    if (!s.md5sum) out.unchecked.push(s.dataPath);
    else if (md5) {
      const got = (await rememberedDigest("md5", path, memo)).hex;
      if (got !== s.md5sum.toLowerCase()) {
        out.problems.push(`${s.dataPath}: md5 ${got} does not match ${s.md5sum} in ${out.index}`);
      }
    }
  }
  return out;
}
