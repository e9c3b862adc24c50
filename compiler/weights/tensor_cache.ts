/**
 * Reads MLC-LLM's weight format: `tensor-cache.json` (older name `ndarray-cache.json`) listing
 * shards `params_shard_N.bin`, each `{dataPath, format: "raw-shard", nbytes, records, md5sum}`
 * with records `{name, shape, dtype, format: "raw" | "f32-to-bf16", nbytes, byteOffset}`.
 * A shard's size is checked on open and its md5 once, on the first read from it.
 * @module
 */

import { createHash } from "node:crypto";
import { WeightError } from "../errors.ts";
import { bf16ToF32, f16ToF32 } from "./dtype.ts";

/** Element sizes in bytes of the dtypes a tensor cache may hold (TVM dtype names). */
export const TENSOR_CACHE_DTYPE_SIZES: Readonly<Record<string, number>> = Object.freeze({
  float64: 8,
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint64: 8,
  uint32: 4,
  uint16: 2,
  uint8: 1,
  bool: 1,
  e4m3_float8: 1,
  e5m2_float8: 1,
});

/** One tensor inside a shard. `nbytes` counts stored bytes (bf16 for an encoded float32). */
export interface TensorCacheRecord {
  name: string;
  shape: number[];
  dtype: string;
  format: "raw" | "f32-to-bf16";
  nbytes: number;
  byteOffset: number;
}

/** One `params_shard_N.bin`. */
export interface TensorCacheShard {
  dataPath: string;
  format: "raw-shard";
  nbytes: number;
  records: TensorCacheRecord[];
  md5sum: string;
}

/** The whole `tensor-cache.json`. */
export interface TensorCacheJson {
  metadata: { ParamSize: number; ParamBytes: number; BitsPerParam: number; [k: string]: unknown };
  records: TensorCacheShard[];
}

/** An opened tensor cache. */
export interface TensorCache {
  readonly dir: string;
  readonly jsonPath: string;
  readonly metadata: TensorCacheJson["metadata"];
  readonly shards: readonly TensorCacheShard[];
  /** name → record and the index of its shard. */
  readonly byName: ReadonlyMap<string, TensorCacheRecord & { shard: number }>;
  /** Bytes in the record's dtype: an `f32-to-bf16` float32 record comes back as float32. */
  readTensor(name: string): Promise<Uint8Array>;
  /** A float32/float16/bfloat16 tensor as float32. */
  readTensorF32(name: string): Promise<Float32Array>;
}

/** Open the tensor cache in `dir` (`tensor-cache.json`, else `ndarray-cache.json`). */
export async function openTensorCache(dir: string): Promise<TensorCache> {
  let jsonPath = `${dir}/tensor-cache.json`;
  let text: string;
  try {
    text = await Deno.readTextFile(jsonPath);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    jsonPath = `${dir}/ndarray-cache.json`;
    try {
      text = await Deno.readTextFile(jsonPath);
    } catch (e2) {
      if (!(e2 instanceof Deno.errors.NotFound)) throw e2;
      throw new WeightError(
        `no tensor-cache.json or ndarray-cache.json in ${dir}; convert the weights first ` +
          `(or point --model at an MLC-converted folder)`,
      );
    }
  }
  const json = parseJson(jsonPath, text);
  const byName = new Map<string, TensorCacheRecord & { shard: number }>();
  for (const [i, shard] of json.records.entries()) {
    const path = `${dir}/${shard.dataPath}`;
    let size: number;
    try {
      size = (await Deno.stat(path)).size;
    } catch (e) {
      throw new WeightError(
        `shard ${path} listed in ${jsonPath} is missing (${(e as Error).message}); ` +
          `re-download or re-convert the weights`,
        { cause: e },
      );
    }
    if (size !== shard.nbytes) {
      throw new WeightError(
        `shard ${path} is ${size} bytes but ${jsonPath} says ${shard.nbytes}; the shard is ` +
          `truncated or stale, re-download or re-convert the weights`,
      );
    }
    for (const r of shard.records) {
      if (byName.has(r.name)) {
        throw new WeightError(`${jsonPath} lists tensor "${r.name}" twice; re-convert the weights`);
      }
      byName.set(r.name, { ...r, shard: i });
    }
  }

  const verified = new Map<number, Promise<void>>();
  const verify = (i: number) => {
    let p = verified.get(i);
    if (p === undefined) {
      p = verifyShard(`${dir}/${json.records[i].dataPath}`, json.records[i], jsonPath);
      verified.set(i, p);
    }
    return p;
  };
  const lookup = (name: string) => {
    const r = byName.get(name);
    if (r === undefined) {
      throw new WeightError(
        `tensor "${name}" is not in ${jsonPath}; the weights do not match the model definition`,
      );
    }
    return r;
  };
  const readStored = async (name: string) => {
    const r = lookup(name);
    await verify(r.shard);
    const path = `${dir}/${json.records[r.shard].dataPath}`;
    return { r, bytes: await readSpan(path, r.byteOffset, r.nbytes, name) };
  };
  const isEncoded = (r: TensorCacheRecord) => r.format === "f32-to-bf16" && r.dtype === "float32";

  return {
    dir,
    jsonPath,
    metadata: json.metadata,
    shards: json.records,
    byName,
    async readTensor(name) {
      const { r, bytes } = await readStored(name);
      if (!isEncoded(r)) return bytes;
      const f32 = bf16ToF32(new Uint16Array(bytes.buffer)); // [prod(shape)]
      return new Uint8Array(f32.buffer);
    },
    async readTensorF32(name) {
      const { r, bytes } = await readStored(name);
      if (isEncoded(r) || r.dtype === "bfloat16") return bf16ToF32(new Uint16Array(bytes.buffer));
      if (r.dtype === "float32") return new Float32Array(bytes.buffer);
      if (r.dtype === "float16") return f16ToF32(new Uint16Array(bytes.buffer));
      throw new WeightError(
        `tensor "${name}" in ${jsonPath} has dtype ${r.dtype}; only float32, float16 and ` +
          `bfloat16 convert to float32; use readTensor() instead`,
      );
    },
  };
}

function parseJson(jsonPath: string, text: string): TensorCacheJson {
  const bad = (what: string) =>
    new WeightError(`${jsonPath}: ${what}; the file is corrupt, re-convert the weights`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new WeightError(
      `${jsonPath} is not valid JSON (${(e as Error).message}); re-convert the weights`,
      { cause: e },
    );
  }
  const j = json as Partial<TensorCacheJson> | null;
  if (typeof j !== "object" || j === null || !Array.isArray(j.records)) {
    throw bad(`no "records" array`);
  }
  const isInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
  for (const [i, s] of j.records.entries()) {
    if (
      typeof s?.dataPath !== "string" || s.dataPath === "" || s.dataPath.startsWith("/") ||
      s.dataPath.split(/[\\/]/).includes("..")
    ) throw bad(`shard ${i} has invalid dataPath ${JSON.stringify(s?.dataPath)}`);
    if (s.format !== "raw-shard") throw bad(`shard ${s.dataPath} has format ${s.format}`);
    if (!isInt(s.nbytes) || !Array.isArray(s.records)) {
      throw bad(`shard ${s.dataPath} lacks nbytes or records`);
    }
    for (const r of s.records) {
      const where = `tensor "${r?.name}" in shard ${s.dataPath}`;
      if (typeof r?.name !== "string") throw bad(`shard ${s.dataPath} has a record without name`);
      const size = TENSOR_CACHE_DTYPE_SIZES[r.dtype];
      if (size === undefined) throw bad(`${where} has unknown dtype ${JSON.stringify(r.dtype)}`);
      if (r.format !== "raw" && r.format !== "f32-to-bf16") {
        throw bad(`${where} has unknown format ${JSON.stringify(r.format)}`);
      }
      if (!Array.isArray(r.shape) || !r.shape.every(isInt)) {
        throw bad(`${where} has invalid shape ${JSON.stringify(r.shape)}`);
      }
      const stored = r.format === "f32-to-bf16" && r.dtype === "float32" ? 2 : size;
      const want = r.shape.reduce((a, b) => a * b, 1) * stored;
      if (r.nbytes !== want) throw bad(`${where} has nbytes ${r.nbytes}, shape needs ${want}`);
      if (!isInt(r.byteOffset) || r.byteOffset + r.nbytes > s.nbytes) {
        throw bad(`${where} spans [${r.byteOffset}, +${r.nbytes}) outside the shard`);
      }
    }
  }
  const m = (j.metadata ?? {}) as TensorCacheJson["metadata"];
  return { metadata: m, records: j.records as TensorCacheShard[] };
}

async function verifyShard(path: string, shard: TensorCacheShard, jsonPath: string) {
  const hash = createHash("md5");
  const file = await Deno.open(path, { read: true }).catch((e) => {
    throw new WeightError(`shard ${path} cannot be opened (${e.message}); re-convert the weights`, {
      cause: e,
    });
  });
  let total = 0;
  try {
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
      total += n;
    }
  } finally {
    file.close();
  }
  if (total !== shard.nbytes) {
    throw new WeightError(
      `shard ${path} is ${total} bytes but ${jsonPath} says ${shard.nbytes}; it is truncated ` +
        `or stale, re-download or re-convert the weights`,
    );
  }
  if (typeof shard.md5sum === "string" && shard.md5sum !== "") {
    const got = hash.digest("hex");
    if (got !== shard.md5sum.toLowerCase()) {
      throw new WeightError(
        `shard ${path} has md5 ${got} but ${jsonPath} records ${shard.md5sum}; the shard is ` +
          `corrupt, re-download or re-convert the weights`,
      );
    }
  }
}

async function readSpan(path: string, offset: number, n: number, name: string) {
  const out = new Uint8Array(n); // [nbytes]
  const file = await Deno.open(path, { read: true });
  try {
    await file.seek(offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < n) {
      const got = await file.read(out.subarray(done));
      if (got === null || got === 0) {
        throw new WeightError(
          `shard ${path} ends inside tensor "${name}"; re-download or re-convert the weights`,
        );
      }
      done += got;
    }
  } finally {
    file.close();
  }
  return out;
}
