import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { digestBytes, digestFile } from "./digest.ts";

// Known-answer vectors: RFC 1321 (md5) and FIPS 180-2 (sha256).
const ABC_MD5 = "900150983cd24fb0d6963f7d28e17f72";
const ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e";

Deno.test("digestBytes() matches the md5 and sha256 known answers", () => {
  assertEquals(digestBytes("md5", "abc"), ABC_MD5);
  assertEquals(digestBytes("sha256", "abc"), ABC_SHA256);
  assertEquals(digestBytes("md5", new Uint8Array()), EMPTY_MD5);
});

Deno.test("digestFile() streams files larger than its buffer to the same digest", async () => {
  const path = await Deno.makeTempFile();
  try {
    // sha256 of one million "a" (FIPS 180-2 vector).
    await Deno.writeTextFile(path, "a".repeat(1_000_000));
    assertEquals(await digestFile("sha256", path), {
      hex: "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
      bytes: 1_000_000,
    });
    // 2.5 MiB (three reads): the same as hashing the bytes in one call.
    const big = new Uint8Array(2.5 * 2 ** 20).map((_, i) => (i * 7919) & 255);
    await Deno.writeFile(path, big);
    assertEquals(await digestFile("md5", path), {
      hex: digestBytes("md5", big),
      bytes: big.length,
    });
    await Deno.writeTextFile(path, "abc");
    assertEquals(await digestFile("md5", path), { hex: ABC_MD5, bytes: 3 });
  } finally {
    await Deno.remove(path);
  }
});
