/**
 * Kiln as a library: `createEngine()` resolves the model through the JIT (cache hit, or compile
 * and convert on a miss) and returns an engine; `generate()` streams chunks.
 *
 *   deno run -A examples/make_model.ts --out examples/models/example
 *   deno run -A examples/library.ts examples/models/example
 */
import { createEngine, samplingParams } from "../mod.ts";

const dir = Deno.args[0] ?? "examples/models/example";
const engine = await createEngine({
  model: dir,
  quantization: "q4f16_1",
  cacheRoot: Deno.env.get("KILN_HOME") ?? `${Deno.env.get("HOME")}/.cache/kiln`,
  onProgress: (e) => console.error(`[${e.stage}] ${e.status}${e.message ? `: ${e.message}` : ""}`),
});
const text = engine.chatTemplate!.render([{ role: "user", content: "What is a kiln?" }], { addGenerationPrompt: true });
const prompt = engine.tokenizer.encode(text, { addSpecialTokens: false });
const sampling = samplingParams({ temperature: 0.7, top_p: 0.9, top_k: 40, seed: 1 });
for await (const chunk of engine.generate({ prompt, maxTokens: 48, sampling })) {
  await Deno.stdout.write(new TextEncoder().encode(chunk.text));
  if (chunk.finishReason) console.log(`\n[${chunk.finishReason}]`);
}
await engine.close();
