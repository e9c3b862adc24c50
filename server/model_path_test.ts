import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { join } from "node:path";
import { ApiError } from "./errors.ts";
import { realRoots, resolveModelPath } from "./model_path.ts";

const status = (s: number) => (e: unknown) => e instanceof ApiError && e.status === s;

Deno.test("resolveModelPath() keeps models inside the roots, through .. and symlinks", async () => {
  const tmp = await Deno.realPath(await Deno.makeTempDir({ prefix: "kiln_roots_" }));
  try {
    const a = join(tmp, "a"), b = join(tmp, "b"), secret = join(tmp, "secret");
    for (const d of [a, b, join(a, "m1"), join(b, "m2"), secret]) await Deno.mkdir(d);
    await Deno.symlink(join(b, "m2"), join(a, "to_b")); // into another root: allowed
    await Deno.symlink(secret, join(a, "to_secret")); // out of every root: refused
    await Deno.symlink(join(tmp, "missing_target"), join(a, "dangling"));
    const roots = await realRoots([a, b]);
    assertEquals(await resolveModelPath("m1", roots), join(a, "m1"));
    assertEquals(await resolveModelPath("m2", roots), join(b, "m2")); // second root
    assertEquals(await resolveModelPath(join(a, "m1"), roots), join(a, "m1"));
    assertEquals(await resolveModelPath("to_b", roots), join(b, "m2"));
    assertEquals(await resolveModelPath("m1/../m1", roots), join(a, "m1"));
    await rejects(resolveModelPath("to_secret", roots), status(403));
    await rejects(resolveModelPath("../secret", roots), status(403));
    await rejects(resolveModelPath("m1/../../secret", roots), status(403));
    await rejects(resolveModelPath(secret, roots), status(403));
    await rejects(resolveModelPath("/definitely/not/here", roots), status(403));
    await rejects(resolveModelPath("nope", roots), status(404));
    await rejects(resolveModelPath("dangling", roots), status(404));
    await rejects(resolveModelPath("m1", []), status(403));
    await rejects(realRoots([join(tmp, "no_root")]), TypeError);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
