/** End-to-end tests of the CLI (`deno run -A mod.ts …`) in a child process. */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { loadGolden } from "./fixtures/golden.ts";
import { relMaxError } from "./assert.ts";

const MOD = new URL("../mod.ts", import.meta.url).pathname;

async function kiln(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", MOD, ...args], stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: p.code, stdout: dec.decode(p.stdout), stderr: dec.decode(p.stderr) };
}

Deno.test("mod.ts logits prints the last position's logits, and every position's with --all, matching transformers", async () => {
  const g = await loadGolden("llama3");
  const c = g.cases[2]; // 23 tokens
  const V = g.file.vocab_size;
  const last = await kiln("logits", "--model", g.modelDir, "--quantization", "q0f32", "--target", "cpu", "--tokens", c.tokens.join(","));
  assertEquals(last.code, 0, last.stderr);
  const a = JSON.parse(last.stdout);
  assertEquals(a.shape, [1, V]);
  ok(relMaxError(a.logits, c.logits.subarray((c.tokens.length - 1) * V)).rel < 1e-3);
  const all = await kiln("logits", "--model", g.modelDir, "--quantization", "q0f32", "--target", "cpu", "--all", "--tokens", c.tokens.join(","));
  const b = JSON.parse(all.stdout);
  assertEquals(b.shape, [c.tokens.length, V]);
  ok(relMaxError(b.logits, c.logits).rel < 1e-3);
});

Deno.test("mod.ts compile prints the memory estimate; convert then logits from the MLC folder gives the same logits", async () => {
  const g = await loadGolden("qwen2");
  const dir = await Deno.makeTempDir();
  const r = await kiln("compile", "--model", g.modelDir, "--quantization", "q4f16_1", "--target", "cpu", "--output", `${dir}/lib`);
  assertEquals(r.code, 0, r.stderr);
  ok(r.stdout.includes("KV cache: ") && r.stdout.includes("parameters: ") && r.stdout.includes("dispatches per step"), r.stdout);
  const conv = await kiln("convert", "--model", g.modelDir, "--quantization", "q4f16_1", "--output", `${dir}/mlc`);
  assertEquals(conv.code, 0, conv.stderr);
  const tokens = g.cases[1].tokens.join(",");
  const fromHf = JSON.parse((await kiln("logits", "--model", g.modelDir, "--lib", `${dir}/lib`, "--tokens", tokens)).stdout);
  const fromMlc = JSON.parse((await kiln("logits", "--model", `${dir}/mlc`, "--lib", `${dir}/lib`, "--tokens", tokens)).stdout);
  assertEquals(fromMlc.logits, fromHf.logits);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("mod.ts reports bad input clearly and exits non-zero", async () => {
  const g = await loadGolden("llama2");
  const bad = await kiln("logits", "--model", g.modelDir, "--quantization", "q0f32", "--target", "cpu", "--tokens", "1,99999");
  assertEquals(bad.code, 1);
  ok(bad.stderr.includes("99999") && bad.stderr.includes("vocabulary"), bad.stderr);
  const noModel = await kiln("compile", "--quantization", "q0f32");
  assertEquals(noModel.code, 1);
  ok(noModel.stderr.includes("--model is required"), noModel.stderr);
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/config.json`, '{"model_type": "llama", "hidden_size": 64');
  const malformed = await kiln("compile", "--model", dir, "--quantization", "q0f32", "--target", "cpu");
  assertEquals(malformed.code, 1);
  ok(malformed.stderr.includes(`${dir}/config.json: not valid JSON`), malformed.stderr);
  const unknownQ = await kiln("compile", "--model", g.modelDir, "--quantization", "q5f16_9", "--target", "cpu");
  ok(unknownQ.code === 1 && unknownQ.stderr.includes("q5f16_9") && unknownQ.stderr.includes("q4f16_1"), unknownQ.stderr);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("mod.ts logits reports truncated weights with the file named", async () => {
  const g = await loadGolden("mqa");
  const dir = await Deno.makeTempDir();
  for (const f of Deno.readDirSync(g.modelDir)) await Deno.copyFile(`${g.modelDir}/${f.name}`, `${dir}/${f.name}`);
  const st = `${dir}/model.safetensors`;
  const size = (await Deno.stat(st)).size;
  await Deno.truncate(st, size - 1000);
  const r = await kiln("logits", "--model", dir, "--quantization", "q0f32", "--target", "cpu", "--tokens", "1,2");
  assertEquals(r.code, 1);
  ok(r.stderr.includes("model.safetensors") && r.stderr.includes("WeightError"), r.stderr);
  await Deno.remove(dir, { recursive: true });
});
