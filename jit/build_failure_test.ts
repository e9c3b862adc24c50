import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { CompileError, WeightError } from "../compiler/errors.ts";
import { clearFailure, recordFailure, sharedFailure } from "./build_failure.ts";

Deno.test("sharedFailure() rebuilds the recorded error for requests made before it", async () => {
  const root = await Deno.makeTempDir();
  try {
    const before = Date.now();
    await recordFailure(
      root,
      "lib",
      "k",
      new CompileError("codegen", "too much workgroup storage"),
    );
    const e = await sharedFailure(root, "lib", "k", before);
    ok(e instanceof CompileError);
    assertEquals([e.stage, e.message], [
      "codegen",
      'compile stage "codegen" failed: too much workgroup storage',
    ]);
    ok(String((e.cause as Error).message).includes(`pid ${Deno.pid}`));
    // A request made after the failure builds again.
    assertEquals(await sharedFailure(root, "lib", "k", Date.now() + 1), null);
    await recordFailure(root, "weights", "w", new WeightError("shard 3 is short"));
    const w = await sharedFailure(root, "weights", "w", before);
    ok(w instanceof WeightError && w.message === "shard 3 is short");
    await recordFailure(root, "lib", "x", new RangeError("odd"));
    assertEquals((await sharedFailure(root, "lib", "x", before))!.message, "RangeError: odd");
    await clearFailure(root, "lib", "k");
    assertEquals(await sharedFailure(root, "lib", "k", before), null);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
