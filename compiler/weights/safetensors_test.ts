import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { WeightError } from "../errors.ts";
import { openSafetensors, readTensor, readTensorF32 } from "./safetensors.ts";
import { writeSafetensors } from "./safetensors_write.ts";

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** A safetensors file built by hand from a header string and data bytes. */
async function writeRaw(path: string, header: string, data: Uint8Array, lenOverride?: number) {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(lenOverride ?? h.byteLength), true);
  out.set(h, 8);
  out.set(data, 8 + h.byteLength);
  await Deno.writeFile(path, out);
}

async function rejectsWith(p: Promise<unknown>, ...parts: string[]) {
  await rejects(p, (e: unknown) => {
    ok(e instanceof WeightError, `expected WeightError, got ${e}`);
    for (const part of parts) ok(e.message.includes(part), `"${e.message}" lacks "${part}"`);
    return true;
  });
}

Deno.test("openSafetensors() indexes a single file and readTensorF32() decodes each dtype", async () => {
  const dir = await Deno.makeTempDir();
  // Values exactly representable in f16 and bf16, so the expected float32 is known exactly.
  const vals = [1.5, -2, 0.25, 3];
  const f16 = new Uint16Array([0x3e00, 0xc000, 0x3400, 0x4200]); // IEEE half of vals
  const bf16 = new Uint16Array([0x3fc0, 0xc000, 0x3e80, 0x4040]); // bf16 of vals
  const u32 = new Uint32Array([7, 0xffffffff]);
  await writeSafetensors(`${dir}/model.safetensors`, [
    { name: "a.f32", dtype: "F32", shape: [2, 2], data: bytesOf(new Float32Array(vals)) },
    { name: "b.f16", dtype: "F16", shape: [4], data: bytesOf(f16) },
    { name: "c.bf16", dtype: "BF16", shape: [4, 1], data: bytesOf(bf16) },
    { name: "d.u32", dtype: "U32", shape: [2], data: bytesOf(u32) },
  ], { format: "pt" });
  const idx = await openSafetensors(dir);
  assertEquals(idx.tensors.map((t) => t.name), ["a.f32", "b.f16", "c.bf16", "d.u32"]);
  assertEquals(idx.metadata, { format: "pt" });
  const a = idx.byName.get("a.f32")!;
  assertEquals([a.dtype, a.shape, a.nbytes], ["F32", [2, 2], 16]);
  for (const n of ["a.f32", "b.f16", "c.bf16"]) {
    assertEquals([...await readTensorF32(idx.byName.get(n)!)], vals, n);
  }
  assertEquals([...new Uint32Array((await readTensor(idx.byName.get("d.u32")!)).buffer)], [
    7,
    0xffffffff,
  ]);
  await rejectsWith(readTensorF32(idx.byName.get("d.u32")!), "d.u32", "U32", "readTensor()");
});

Deno.test("openSafetensors() reads a sharded set through model.safetensors.index.json", async () => {
  const dir = await Deno.makeTempDir();
  const x = new Float32Array([1, 2, 3]), y = new Float32Array([4]), z = new Float32Array([5, 6]);
  await writeSafetensors(`${dir}/model-00001-of-00002.safetensors`, [
    { name: "x", dtype: "F32", shape: [3], data: bytesOf(x) },
    { name: "y", dtype: "F32", shape: [1], data: bytesOf(y) },
  ]);
  await writeSafetensors(`${dir}/model-00002-of-00002.safetensors`, [
    { name: "z", dtype: "F32", shape: [2], data: bytesOf(z) },
  ]);
  const weightMap = {
    x: "model-00001-of-00002.safetensors",
    y: "model-00001-of-00002.safetensors",
    z: "model-00002-of-00002.safetensors",
  };
  await Deno.writeTextFile(
    `${dir}/model.safetensors.index.json`,
    JSON.stringify({ metadata: { total_size: 24 }, weight_map: weightMap }),
  );
  const idx = await openSafetensors(dir);
  assertEquals(idx.tensors.map((t) => t.name), ["x", "y", "z"]);
  assertEquals([...await readTensorF32(idx.byName.get("y")!)], [4]);
  assertEquals([...await readTensorF32(idx.byName.get("z")!)], [5, 6]);

  // A shard named in the index but absent.
  await Deno.remove(`${dir}/model-00002-of-00002.safetensors`);
  await rejectsWith(openSafetensors(dir), "model-00002-of-00002.safetensors", '"z"', "download");
  // The index places a tensor in a shard that does not hold it.
  await writeSafetensors(`${dir}/model-00002-of-00002.safetensors`, [
    { name: "w", dtype: "F32", shape: [2], data: bytesOf(z) },
  ]);
  await rejectsWith(openSafetensors(dir), '"z"', "no such tensor");
});

Deno.test("openSafetensors() rejects corrupt headers with a WeightError naming file and tensor", async () => {
  const dir = await Deno.makeTempDir();
  const p = `${dir}/model.safetensors`;
  const ok8 = '{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  // Header length beyond the file.
  await writeRaw(p, ok8, new Uint8Array(8), 1 << 20);
  await rejectsWith(openSafetensors(dir), p, "header length 1048576");
  // Bad JSON.
  await writeRaw(p, '{"t":{"dtype":', new Uint8Array(8));
  await rejectsWith(openSafetensors(dir), p, "not valid UTF-8 JSON");
  // Unknown dtype.
  await writeRaw(p, '{"t":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}}', new Uint8Array(8));
  await rejectsWith(openSafetensors(dir), p, '"t"', "unknown dtype");
  // Offsets that disagree with the shape.
  await writeRaw(p, '{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', new Uint8Array(8));
  await rejectsWith(openSafetensors(dir), '"t"', "needs 12 bytes");
  // Data offsets beyond the file (truncated file).
  await writeRaw(p, ok8, new Uint8Array(5));
  await rejectsWith(openSafetensors(dir), p, '"t"', "truncated");
  // Overlapping tensors.
  await writeRaw(
    p,
    '{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"u":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
    new Uint8Array(8),
  );
  await rejectsWith(openSafetensors(dir), '"t"', '"u"', "overlap");
  // Shorter than the length prefix.
  await Deno.writeFile(p, new Uint8Array(5));
  await rejectsWith(openSafetensors(dir), p, "shorter than the 8-byte");
  // No weights at all.
  await Deno.remove(p);
  await rejectsWith(openSafetensors(dir), "model.safetensors.index.json");
});

Deno.test("readTensor() reports a file truncated after it was opened", async () => {
  const dir = await Deno.makeTempDir();
  const p = `${dir}/model.safetensors`;
  await writeSafetensors(p, [
    { name: "t", dtype: "F32", shape: [4], data: new Uint8Array(16) },
  ]);
  const idx = await openSafetensors(dir);
  await Deno.truncate(p, (await Deno.stat(p)).size - 4);
  await rejectsWith(readTensor(idx.byName.get("t")!), p, '"t"', "truncated");
});

Deno.test("readTensor() reads only its own span from a large file", async () => {
  const dir = await Deno.makeTempDir();
  const big = new Uint8Array(8 << 20).fill(0xab); // 8 MiB U8 tensor before the small one
  const small = new Float32Array([9, 8, 7]);
  await writeSafetensors(`${dir}/model.safetensors`, [
    { name: "big", dtype: "F16", shape: [4 << 20], data: big },
    { name: "small", dtype: "F32", shape: [3], data: bytesOf(small) },
  ]);
  const idx = await openSafetensors(dir);
  const got = await readTensor(idx.byName.get("small")!);
  assertEquals(got.buffer.byteLength, 12); // the buffer holds the tensor and nothing else
  assertEquals([...new Float32Array(got.buffer)], [9, 8, 7]);
});
