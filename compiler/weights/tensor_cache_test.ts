import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { WeightError } from "../errors.ts";
import { openTensorCache } from "./tensor_cache.ts";
import { TensorCacheWriter } from "./tensor_cache_write.ts";

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const ABC_MD5 = "900150983cd24fb0d6963f7d28e17f72"; // RFC 1321 test vector: md5("abc")

async function rejectsWith(p: Promise<unknown>, ...parts: string[]) {
  await rejects(p, (e: unknown) => {
    ok(e instanceof WeightError, `expected WeightError, got ${e}`);
    for (const part of parts) ok(e.message.includes(part), `"${e.message}" lacks "${part}"`);
    return true;
  });
}

Deno.test("TensorCacheWriter writes MLC's field names and md5 known answers", async () => {
  const dir = await Deno.makeTempDir();
  const w = await TensorCacheWriter.create(dir);
  await w.add("t", "uint8", [3], new TextEncoder().encode("abc"));
  const json = await w.finish({ sourceParams: 12 });
  const onDisk = JSON.parse(await Deno.readTextFile(`${dir}/tensor-cache.json`));
  assertEquals(onDisk, json);
  assertEquals(onDisk, {
    metadata: { ParamSize: 1, ParamBytes: 3, BitsPerParam: 2 },
    records: [{
      dataPath: "params_shard_0.bin",
      format: "raw-shard",
      nbytes: 3,
      records: [{ name: "t", shape: [3], dtype: "uint8", format: "raw", nbytes: 3, byteOffset: 0 }],
      md5sum: ABC_MD5,
    }],
  });
  assertEquals(await Deno.readTextFile(`${dir}/params_shard_0.bin`), "abc");
  assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
    "params_shard_0.bin",
    "tensor-cache.json",
  ]);
});

Deno.test("openTensorCache() round-trips tensors across shards", async () => {
  const dir = await Deno.makeTempDir();
  const w = await TensorCacheWriter.create(dir, { shardBytes: 64 });
  const a = new Float32Array(10).map((_, i) => i - 4.5); // 40 bytes
  const b = new Uint32Array([1, 2, 3, 4, 5, 6]); // 24 bytes: 40 + 24 = 64 fits shard 0
  const c = new Uint16Array([0x3c00, 0xc000]); // f16 [1, -2]: 4 bytes, overflows → shard 1
  const big = new Uint8Array(100).map((_, i) => i); // larger than a shard → its own shard 2
  await w.add("a", "float32", [2, 5], bytesOf(a));
  await w.add("b", "uint32", [6], bytesOf(b));
  await w.add("c", "float16", [2], bytesOf(c));
  await w.add("big", "int8", [100], big);
  const json = await w.finish();
  assertEquals(json.records.map((s) => [s.dataPath, s.nbytes, s.records.map((r) => r.name)]), [
    ["params_shard_0.bin", 64, ["a", "b"]],
    ["params_shard_1.bin", 4, ["c"]],
    ["params_shard_2.bin", 100, ["big"]],
  ]);
  assertEquals(json.records[0].records[1].byteOffset, 40);
  const cache = await openTensorCache(dir);
  assertEquals([...await cache.readTensorF32("a")], [...a]);
  assertEquals([...new Uint32Array((await cache.readTensor("b")).buffer)], [...b]);
  assertEquals([...await cache.readTensorF32("c")], [1, -2]);
  assertEquals([...await cache.readTensor("big")], [...big]);
  assertEquals(cache.byName.get("big")!.shard, 2);
  await rejectsWith(cache.readTensor("nope"), '"nope"');
  await rejectsWith(cache.readTensorF32("b"), '"b"', "uint32");
});

Deno.test("openTensorCache() decodes f32-to-bf16 records back to float32", async () => {
  const dir = await Deno.makeTempDir();
  const w = await TensorCacheWriter.create(dir, { encodeFormat: "f32-to-bf16" });
  // 1 + 2^-8 is a tie (→ 1), 1 + 3·2^-8 a tie (→ 1 + 2^-6), max float32 is truncated to the
  // largest bf16 (0x7f7f → 3.3895313892515355e38) instead of rounding to infinity.
  const x = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -0.5, 3.4028234663852886e38]);
  await w.add("x", "float32", [4], bytesOf(x));
  await w.add("q", "uint32", [1], bytesOf(new Uint32Array([0xdeadbeef])));
  const json = await w.finish();
  assertEquals(json.records[0].records.map((r) => [r.format, r.nbytes]), [
    ["f32-to-bf16", 8],
    ["f32-to-bf16", 4],
  ]);
  assertEquals(json.metadata.ParamBytes, 20); // bytes before encoding, as MLC counts them
  const cache = await openTensorCache(dir);
  const want = [1, 1 + 2 ** -6, -0.5, 3.3895313892515355e38];
  assertEquals([...new Float32Array((await cache.readTensor("x")).buffer)], want);
  assertEquals([...await cache.readTensorF32("x")], want);
  assertEquals([...new Uint32Array((await cache.readTensor("q")).buffer)], [0xdeadbeef]);
});

Deno.test("openTensorCache() detects tampered, truncated and missing shards", async () => {
  const dir = await Deno.makeTempDir();
  const w = await TensorCacheWriter.create(dir, { shardBytes: 16 });
  await w.add("a", "float32", [4], bytesOf(new Float32Array([1, 2, 3, 4])));
  await w.add("b", "float32", [4], bytesOf(new Float32Array([5, 6, 7, 8])));
  await w.finish();
  const shard1 = `${dir}/params_shard_1.bin`;
  const good = await Deno.readFile(shard1);
  // One flipped bit: size matches, md5 does not; the shard is named on read.
  const bad = good.slice();
  bad[5] ^= 1;
  await Deno.writeFile(shard1, bad);
  const cache = await openTensorCache(dir);
  assertEquals([...await cache.readTensorF32("a")], [1, 2, 3, 4]); // shard 0 is fine
  await rejectsWith(cache.readTensor("b"), "params_shard_1.bin", "md5");
  // Truncated: caught when opening.
  await Deno.writeFile(shard1, good.subarray(0, 12));
  await rejectsWith(openTensorCache(dir), "params_shard_1.bin", "12 bytes", "16");
  // Missing.
  await Deno.remove(shard1);
  await rejectsWith(openTensorCache(dir), "params_shard_1.bin", "missing");
});

Deno.test("openTensorCache() reads the older ndarray-cache.json and validates records", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/params_shard_0.bin`, "abc");
  const rec = { name: "t", shape: [3], dtype: "uint8", format: "raw", nbytes: 3, byteOffset: 0 };
  const write = (r: object, md5sum = ABC_MD5) =>
    Deno.writeTextFile(
      `${dir}/ndarray-cache.json`,
      JSON.stringify({
        metadata: { ParamSize: 1, ParamBytes: 3, BitsPerParam: 8 },
        records: [{
          dataPath: "params_shard_0.bin",
          format: "raw-shard",
          nbytes: 3,
          records: [r],
          md5sum,
        }],
      }),
    );
  await write(rec);
  const cache = await openTensorCache(dir);
  assertEquals(cache.jsonPath, `${dir}/ndarray-cache.json`);
  assertEquals(new TextDecoder().decode(await cache.readTensor("t")), "abc");
  await write({ ...rec, dtype: "float7" });
  await rejectsWith(openTensorCache(dir), '"t"', "unknown dtype");
  await write({ ...rec, byteOffset: 1 });
  await rejectsWith(openTensorCache(dir), '"t"', "outside the shard");
  await write({ ...rec, shape: [4] });
  await rejectsWith(openTensorCache(dir), '"t"', "nbytes 3, shape needs 4");
  await write({ ...rec, format: "zip" });
  await rejectsWith(openTensorCache(dir), '"t"', "unknown format");
  await Deno.writeTextFile(`${dir}/ndarray-cache.json`, "{");
  await rejectsWith(openTensorCache(dir), "ndarray-cache.json", "not valid JSON");
  await Deno.remove(`${dir}/ndarray-cache.json`);
  await rejectsWith(openTensorCache(dir), "no tensor-cache.json");
});

Deno.test("TensorCacheWriter.add() rejects bad arguments", async () => {
  const dir = await Deno.makeTempDir();
  const w = await TensorCacheWriter.create(dir);
  await rejects(w.add("a", "float32", [3], new Uint8Array(8)), RangeError);
  await rejects(w.add("a", "float7", [2], new Uint8Array(8)), TypeError);
  await w.add("a", "float32", [2], new Uint8Array(8));
  await rejects(w.add("a", "float32", [2], new Uint8Array(8)), TypeError);
  await w.abort();
  assertEquals([...Deno.readDirSync(dir)].length, 0);
});
