import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { join } from "node:path";
import { checkMlcWeights, isMlcWeightDir } from "./mlc_weights.ts";

// md5 known answers (RFC 1321): "abc", "message digest".
const ABC = "900150983cd24fb0d6963f7d28e17f72";
const MD = "f96b697d7cb7938d525a2f31aaf161d0";
const ABD = "4911e516e5aa21d327512e0c8b197616"; // md5sum(1) of "abd"

async function folder(index: string, shards: Record<string, string>, records: unknown[]) {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(join(dir, "mlc-chat-config.json"), "{}");
  for (const [n, text] of Object.entries(shards)) await Deno.writeTextFile(join(dir, n), text);
  await Deno.writeTextFile(join(dir, index), JSON.stringify({ metadata: {}, records }));
  return dir;
}

const shard = (dataPath: string, nbytes: number, md5sum?: string, inner: unknown[] = []) => ({
  dataPath,
  format: "raw-shard",
  nbytes,
  records: inner,
  ...(md5sum ? { md5sum } : {}),
});

Deno.test("checkMlcWeights() accepts shards whose size and md5 match, in either index name", async () => {
  for (const index of ["tensor-cache.json", "ndarray-cache.json"]) {
    const dir = await folder(index, {
      "params_shard_0.bin": "abc",
      "params_shard_1.bin": "message digest",
    }, [
      shard("params_shard_0.bin", 3, ABC, [{ name: "w", nbytes: 3, byteOffset: 0 }]),
      shard("params_shard_1.bin", 14, MD),
    ]);
    try {
      assertEquals(await isMlcWeightDir(dir), true);
      assertEquals(await checkMlcWeights(dir), {
        problems: [],
        index,
        shards: 2,
        bytes: 17,
        unchecked: [],
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("checkMlcWeights() names a missing, truncated, altered or overrun shard", async () => {
  const dir = await folder("tensor-cache.json", {
    "params_shard_1.bin": "ab",
    "params_shard_2.bin": "abd",
    "params_shard_3.bin": "abc",
  }, [
    shard("params_shard_0.bin", 3, ABC),
    shard("params_shard_1.bin", 3, ABC),
    shard("params_shard_2.bin", 3, ABC),
    shard("params_shard_3.bin", 3, undefined, [{ name: "big", nbytes: 4, byteOffset: 0 }]),
  ]);
  try {
    const r = await checkMlcWeights(dir);
    assertEquals(r.problems, [
      "params_shard_0.bin: missing (listed in tensor-cache.json)",
      "params_shard_1.bin: 2 bytes, tensor-cache.json says 3 (truncated?)",
      `params_shard_2.bin: md5 ${ABD} does not match ${ABC} in tensor-cache.json`,
      "params_shard_3.bin: tensor big ends at 4 > 3",
    ]);
    assertEquals(r.unchecked, ["params_shard_3.bin"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkMlcWeights() reports a folder that is not MLC format", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "config.json"), "{}");
    assertEquals(await isMlcWeightDir(dir), false);
    const r = await checkMlcWeights(dir);
    assertEquals(r.problems.length, 2);
    assertEquals(
      r.problems[1].endsWith("neither tensor-cache.json nor ndarray-cache.json is present"),
      true,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
