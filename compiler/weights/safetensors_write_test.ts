import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { writeSafetensors } from "./safetensors_write.ts";

Deno.test("writeSafetensors() writes the standard layout byte for byte", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/model.safetensors`;
  const a = new Uint8Array(new Float32Array([1.5, -2]).buffer);
  const b = new Uint8Array([1, 2, 3, 4, 5, 6]); // F16 [3]
  await writeSafetensors(path, [
    { name: "a", dtype: "F32", shape: [2], data: a },
    { name: "b", dtype: "F16", shape: [1, 3], data: b },
  ], { format: "pt" });
  const bytes = await Deno.readFile(path);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  // Hand-built expected header (keys in insertion order), padded with spaces to 8 bytes.
  let want = '{"__metadata__":{"format":"pt"},' +
    '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"F16","shape":[1,3],"data_offsets":[8,14]}}';
  while (want.length % 8 !== 0) want += " ";
  assertEquals(n, want.length);
  assertEquals(new TextDecoder().decode(bytes.subarray(8, 8 + n)), want);
  assertEquals([...bytes.subarray(8 + n)], [...a, ...b]);
  assertEquals(bytes.byteLength, 8 + n + 14);
  // No temp file is left behind.
  assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["model.safetensors"]);
});

Deno.test("writeSafetensors() rejects a data length that does not match the shape", async () => {
  const dir = await Deno.makeTempDir();
  await rejects(
    writeSafetensors(`${dir}/x.safetensors`, [
      { name: "w", dtype: "U32", shape: [2, 2], data: new Uint8Array(12) },
    ]),
    RangeError,
  );
  assertEquals([...Deno.readDirSync(dir)].length, 0);
});

Deno.test("writeSafetensors() rejects duplicate names", async () => {
  const dir = await Deno.makeTempDir();
  const t = { name: "w", dtype: "BF16" as const, shape: [1], data: new Uint8Array(2) };
  await rejects(writeSafetensors(`${dir}/x.safetensors`, [t, t]), TypeError);
});
