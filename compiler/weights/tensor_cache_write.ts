/**
 * Writes MLC-LLM's weight format (`tensor-cache.json` + `params_shard_N.bin`), one tensor at a
 * time. Each shard is streamed to a temp file and renamed when it is full (it would pass
 * `shardBytes`, 32 MiB by default) or at `finish()`; the JSON is written last, also through a
 * temp file, so a folder with a `tensor-cache.json` is always complete.
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { f32ToBf16 } from "./dtype.ts";
import {
  TENSOR_CACHE_DTYPE_SIZES,
  type TensorCacheJson,
  type TensorCacheRecord,
  type TensorCacheShard,
} from "./tensor_cache.ts";

/** Options of a TensorCacheWriter. */
export interface TensorCacheWriterOptions {
  /** Shard capacity in bytes (default 32 MiB, MLC's). A larger tensor gets a shard of its own. */
  shardBytes?: number;
  /**
   * "raw" (default) stores bytes as given. "f32-to-bf16" stores float32 tensors as bfloat16
   * (MLC's default; values beyond the bf16 range are truncated, not rounded to infinity) and
   * marks every record with that format, as MLC does.
   */
  encodeFormat?: "raw" | "f32-to-bf16";
}

/**
 * Streams tensors into a tensor cache folder.
 *
 * @example
 * ```ts
 * import { openTensorCache, TensorCacheWriter } from "./mod.ts";
 * const dir = await Deno.makeTempDir();
 * const w = await TensorCacheWriter.create(dir);
 * await w.add("w", "float32", [2], new Uint8Array(new Float32Array([1, 2]).buffer));
 * await w.finish();
 * const cache = await openTensorCache(dir);
 * const x = await cache.readTensorF32("w"); // Float32Array [1, 2]
 * ```
 */
export class TensorCacheWriter {
  readonly #dir: string;
  readonly #cap: number;
  readonly #encode: "raw" | "f32-to-bf16";
  readonly #shards: TensorCacheShard[] = [];
  readonly #names = new Set<string>();
  #file: Deno.FsFile | null = null;
  #tmp = "";
  #hash: Hash | null = null;
  #records: TensorCacheRecord[] = [];
  #pending = 0;
  #paramBytes = 0;
  #elements = 0;
  #finished = false;

  private constructor(dir: string, opts: TensorCacheWriterOptions) {
    this.#dir = dir;
    this.#cap = opts.shardBytes ?? 32 * 1024 * 1024;
    this.#encode = opts.encodeFormat ?? "raw";
    if (!Number.isSafeInteger(this.#cap) || this.#cap <= 0) {
      throw new RangeError(`TensorCacheWriter: shardBytes must be a positive integer`);
    }
    if (this.#encode !== "raw" && this.#encode !== "f32-to-bf16") {
      throw new TypeError(`TensorCacheWriter: unknown encodeFormat "${this.#encode}"`);
    }
  }

  /** Create `dir` if needed and return a writer for it. */
  static async create(dir: string, opts: TensorCacheWriterOptions = {}) {
    const w = new TensorCacheWriter(dir, opts);
    await Deno.mkdir(dir, { recursive: true });
    return w;
  }

  /** Append one tensor. `data` holds its little-endian bytes in `dtype` (a TVM dtype name). */
  async add(name: string, dtype: string, shape: number[], data: Uint8Array): Promise<void> {
    if (this.#finished) throw new TypeError("TensorCacheWriter.add() after finish()");
    const size = TENSOR_CACHE_DTYPE_SIZES[dtype];
    if (size === undefined) {
      throw new TypeError(`TensorCacheWriter.add(): tensor "${name}" has unknown dtype ${dtype}`);
    }
    if (this.#names.has(name)) {
      throw new TypeError(`TensorCacheWriter.add(): tensor "${name}" was already added`);
    }
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new RangeError(`TensorCacheWriter.add(): tensor "${name}" has bad shape [${shape}]`);
    }
    const elements = shape.reduce((a, b) => a * b, 1);
    if (data.byteLength !== elements * size) {
      throw new RangeError(
        `TensorCacheWriter.add(): tensor "${name}" ${dtype}[${shape}] needs ` +
          `${elements * size} bytes, data has ${data.byteLength}`,
      );
    }
    this.#names.add(name);
    this.#paramBytes += data.byteLength;
    this.#elements += elements;
    const stored = this.#encode === "f32-to-bf16" && dtype === "float32" ? encodeBf16(data) : data;
    if (this.#pending > 0 && this.#pending + stored.byteLength > this.#cap) await this.#flush();
    if (this.#file === null) {
      this.#tmp =
        `${this.#dir}/.params_shard_${this.#shards.length}.bin.tmp-${crypto.randomUUID()}`;
      this.#file = await Deno.open(this.#tmp, { write: true, create: true, truncate: true });
      this.#hash = createHash("md5");
    }
    let done = 0;
    while (done < stored.byteLength) done += await this.#file.write(stored.subarray(done));
    this.#hash!.update(stored);
    this.#records.push({
      name,
      shape: [...shape],
      dtype,
      format: this.#encode,
      nbytes: stored.byteLength,
      byteOffset: this.#pending,
    });
    this.#pending += stored.byteLength;
  }

  /**
   * Close the last shard and write `tensor-cache.json`. `metadata` is merged over the computed
   * ParamSize (tensor count), ParamBytes (bytes before encoding) and BitsPerParam (ParamBytes × 8
   * ÷ `sourceParams` when given, e.g. the unquantized parameter count; else ÷ stored elements).
   */
  async finish(
    opts: { sourceParams?: number; metadata?: Record<string, unknown> } = {},
  ): Promise<TensorCacheJson> {
    if (this.#finished) throw new TypeError("TensorCacheWriter.finish() called twice");
    this.#finished = true;
    if (this.#file !== null) await this.#flush();
    const params = opts.sourceParams ?? this.#elements;
    const json: TensorCacheJson = {
      metadata: {
        ParamSize: this.#names.size,
        ParamBytes: this.#paramBytes,
        BitsPerParam: params > 0 ? (this.#paramBytes * 8) / params : 0,
        ...opts.metadata,
      },
      records: this.#shards,
    };
    const path = `${this.#dir}/tensor-cache.json`;
    const tmp = `${path}.tmp-${crypto.randomUUID()}`;
    await Deno.writeTextFile(tmp, JSON.stringify(json, null, 2));
    await Deno.rename(tmp, path);
    return json;
  }

  /** Give up: close and delete the shard being written (completed shards stay). */
  async abort(): Promise<void> {
    this.#finished = true;
    if (this.#file !== null) {
      this.#file.close();
      this.#file = null;
      await Deno.remove(this.#tmp).catch(() => {});
    }
  }

  async #flush(): Promise<void> {
    const file = this.#file!;
    await file.sync();
    file.close();
    this.#file = null;
    const dataPath = `params_shard_${this.#shards.length}.bin`;
    await Deno.rename(this.#tmp, `${this.#dir}/${dataPath}`);
    this.#shards.push({
      dataPath,
      format: "raw-shard",
      nbytes: this.#pending,
      records: this.#records,
      md5sum: this.#hash!.digest("hex"),
    });
    this.#records = [];
    this.#pending = 0;
    this.#hash = null;
  }
}

/** float32 bytes → bfloat16 bytes, MLC's way: nearest even inside the bf16 range, else truncate. */
function encodeBf16(data: Uint8Array): Uint8Array {
  const f32 = new Float32Array(data.slice().buffer); // [n] (copied: data may be unaligned)
  const out = f32ToBf16(f32); // [n]
  const bits = new Uint32Array(f32.buffer);
  const limit = 0x7f7f0000; // largest finite bf16 as a float32 bit pattern (sign cleared)
  for (let i = 0; i < bits.length; i++) {
    if ((bits[i] & 0x7fffffff) >= limit) out[i] = bits[i] >>> 16;
  }
  return new Uint8Array(out.buffer);
}
