import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import { join } from "node:path";
import { resolve } from "../../jit/mod.ts";
import { jitPrewarmer } from "../../server/prewarmer.ts";
import { counted, fixtureCompiler, makeHfModel } from "../jit/fixture_compiler.ts";
import { API_KEY, startToyServer } from "./harness.ts";

Deno.test("POST /v1/prewarm with jitPrewarmer compiles once, then hits the JIT cache", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "kiln_srv_jit_" });
  const root = join(tmp, "models");
  await Deno.mkdir(root);
  await makeHfModel(join(root, "m"));
  const countFile = join(tmp, "count");
  const compiler = fixtureCompiler({ countFile });
  const cacheRoot = join(tmp, "cache");
  const prewarm = jitPrewarmer({ cacheRoot, target: "cpu", compiler });
  const t = await startToyServer({ prewarm, modelRoots: [root] });
  const headers = { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" };
  const run = async () => {
    const res = await fetch(`${t.baseUrl}/v1/prewarm`, {
      method: "POST",
      headers,
      body: JSON.stringify({ model: "m", quantization: "q4f16_1" }),
    });
    assertEquals(res.status, 202);
    const { id } = await res.json();
    const sse = await (await fetch(`${t.baseUrl}/v1/prewarm/${id}?stream=true`, { headers }))
      .text();
    const data = sse.split("\n\n").filter((b) => b.startsWith("data: ")).map((b) => b.slice(6));
    assertEquals(data.at(-1), "[DONE]");
    return JSON.parse(data.at(-2)!);
  };
  try {
    const first = await run();
    const second = await run();
    assertEquals([first.state, second.state], ["done", "done"]);
    assertEquals([first.result.origin, second.result.origin], ["compiled", "cache"]);
    assertEquals(await counted(countFile, "compile"), 1);
    assert(first.events.some((e: { stage: string }) => e.stage === "compile"));
    // The key is the one the JIT itself computes for this model.
    const direct = await resolve({
      model: join(root, "m"),
      quantization: "q4f16_1",
      cacheRoot,
      target: "cpu",
      compiler,
      weights: false,
    });
    assertEquals(first.key, direct.lib.key);
    assertEquals(second.key, direct.lib.key);
  } finally {
    await t.close();
    await Deno.remove(tmp, { recursive: true });
  }
});
