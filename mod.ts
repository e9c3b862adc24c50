/**
 * Kiln: a JIT compile runtime for large language models on WebGPU.
 *
 * Library API: `compile()` (MLC-LLM's compile contract), `convertWeights()`, `createEngine()`
 * (JIT-resolved engine), `Model` (a loaded library + weights). CLI:
 *
 *   deno run -A mod.ts --model <dir> [--quantization q4f16_1] [--target auto|webgpu|cpu]
 *       [--opt …] [--overrides …] [--host 127.0.0.1] [--port 8000] [--api-key K]
 *       [--model-root <dir>]… [--model-lib <dir>] [--prompt "…" [--max-tokens N]]
 *       [--max-num-seq N] [--prefill-chunk-size N] [--max-total-seq-len N | --gpu-memory-gb G
 *        [--gpu-memory-utilization 0.85]]
 *     resolve (cache hit, or compile + convert on a miss) → serve the OpenAI-compatible API
 *     (or, with --prompt, generate once and exit)
 *   deno run -A mod.ts cache ls | verify [--repair] | gc [--max-size 10G] | rm <key>
 *   deno run -A mod.ts compile --model <dir> --quantization <q> [--target auto|webgpu|cpu]
 *       [--opt O0..O3 | "k=v;…"] [--overrides "context_window_size=…;…"] [--output <dir>]
 *       [--debug-dump <dir>] [--system-lib-prefix <p>]
 *   deno run -A mod.ts convert --model <hf dir> --quantization <q> --output <dir>
 *   deno run -A mod.ts logits --model <dir> --quantization <q> --tokens 1,2,3
 *       [--target webgpu|cpu] [--all] [--lib <artifact dir>]
 *
 * This is the only module that reads the environment and process arguments.
 * @module
 */
import { parseArgs } from "node:util";
import { dirname, resolve as resolvePath } from "node:path";
import { compile, type CompileOptions, formatMemoryEstimate } from "./compiler/compile.ts";
import { convertWeights } from "./compiler/weights/convert.ts";
import { Model } from "./engine/model.ts";
import { createEngine } from "./engine/create.ts";
import { cacheCommand, formatProgress, jitOptionsFromEnv } from "./jit/mod.ts";
import { ARTIFACT_FORMAT_VERSION as FORMAT } from "./compiler/version.ts";
import { createApp, jitPrewarmer, serve } from "./server/mod.ts";
import { GREEDY } from "./engine/sampling_params.ts";

export { ARTIFACT_FORMAT_VERSION, compile, COMPILER_VERSION, keyInputs } from "./compiler/compile.ts";
export type { CompileOptions, CompileResult } from "./compiler/compile.ts";
export { convertWeights } from "./compiler/weights/convert.ts";
export { Model } from "./engine/model.ts";
export { createEngine } from "./engine/create.ts";
export type { CreateEngineOptions } from "./engine/create.ts";
export { KilnEngine } from "./engine/engine.ts";
export { GREEDY, samplingParams } from "./engine/sampling_params.ts";
export type { Engine, GenerateOptions, GenerationChunk } from "./engine/types.ts";
export { resolve } from "./jit/mod.ts";
export { createApp, serve } from "./server/mod.ts";

const USAGE = `usage:
  kiln --model <dir> [--quantization q4f16_1] [--target auto|webgpu|cpu] [--port 8000] [--host 127.0.0.1] [--api-key K] [--model-root <dir>]… [--prompt "…"]
  kiln cache ls | verify [--repair] | gc [--max-size 10G] | rm <key>
  kiln compile --model <dir> --quantization <q> [--target auto|webgpu|cpu] [--opt O2] [--overrides "k=v;…"] [--output <dir>] [--debug-dump <dir>]
  kiln convert --model <hf dir> --quantization <q> --output <dir>
  kiln logits  --model <dir> --quantization <q> --tokens 1,2,3 [--target auto|webgpu|cpu] [--all] [--lib <dir>]`;

const OPTIONS = {
  model: { type: "string" },
  quantization: { type: "string" },
  target: { type: "string", default: "auto" },
  opt: { type: "string", default: "O2" },
  overrides: { type: "string", default: "" },
  output: { type: "string" },
  "debug-dump": { type: "string" },
  "system-lib-prefix": { type: "string", default: "" },
  "model-type": { type: "string", default: "auto" },
  tokens: { type: "string" },
  all: { type: "boolean", default: false },
  lib: { type: "string" },
  help: { type: "boolean", default: false },
  host: { type: "string", default: "127.0.0.1" },
  port: { type: "string", default: "8000" },
  "api-key": { type: "string" },
  "model-root": { type: "string", multiple: true },
  "model-lib": { type: "string" },
  prompt: { type: "string" },
  "max-tokens": { type: "string", default: "128" },
  "max-total-seq-len": { type: "string" },
  "gpu-memory-gb": { type: "string" },
  "gpu-memory-utilization": { type: "string" },
  "max-num-seq": { type: "string" },
  "prefill-chunk-size": { type: "string" },
  cors: { type: "string", multiple: true },
} as const;

type Args = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>["values"];

function need(args: Args, key: "model" | "tokens" | "output" | "quantization"): string {
  const v = args[key];
  if (!v) throw new TypeError(`--${key} is required\n${USAGE}`);
  return v;
}

function target(args: Args): CompileOptions["target"] {
  const t = args.target ?? "auto";
  if (t !== "auto" && t !== "webgpu" && t !== "cpu") throw new TypeError(`--target must be auto, webgpu or cpu, got "${t}"`);
  return t;
}

async function cmdCompile(args: Args): Promise<void> {
  const model = need(args, "model");
  const output = args.output ?? `${model}/${args.quantization}-${args.target}-lib`;
  const r = await compile({
    config: model,
    quantization: need(args, "quantization"),
    modelType: args["model-type"],
    target: target(args),
    opt: args.opt,
    overrides: args.overrides,
    output,
    debugDump: args["debug-dump"],
    systemLibPrefix: args["system-lib-prefix"],
  });
  const total = Object.values(r.timings).reduce((a, b) => a + b, 0);
  console.log(`compiled ${r.metadata.model_type} ${r.metadata.quantization} for ${r.metadata.target.backend} in ${total.toFixed(0)} ms → ${r.output}`);
  console.log(`decode: ${r.metadata.decode_dispatches} dispatches per step`);
  console.log(formatMemoryEstimate(r.metadata));
}

async function cmdConvert(args: Args): Promise<void> {
  const output = need(args, "output");
  await convertWeights({
    model: need(args, "model"),
    quantization: need(args, "quantization"),
    output,
    onProgress: (done, total, name) => {
      Deno.stderr.writeSync(new TextEncoder().encode(`\r[${done}/${total}] ${name.padEnd(48)}`));
    },
  });
  console.error(`\nconverted → ${output}`);
}

async function cmdLogits(args: Args): Promise<void> {
  const model = need(args, "model");
  const tokens = need(args, "tokens").split(",").map((s) => {
    const t = Number(s.trim());
    if (!Number.isInteger(t) || t < 0) throw new TypeError(`--tokens: "${s}" is not a token id`);
    return t;
  });
  let lib = args.lib;
  let tmp: string | null = null;
  if (!lib) {
    tmp = await Deno.makeTempDir({ prefix: "kiln-lib-" });
    lib = `${tmp}/lib`;
    await compile({ config: model, quantization: need(args, "quantization"), target: target(args), opt: args.opt, overrides: args.overrides, output: lib, warn: (m) => console.error(`warning: ${m}`) });
  }
  const m = await Model.load({ lib, weights: model });
  try {
    const V = m.metadata.vocab_size;
    for (const t of tokens) if (t >= V) throw new RangeError(`--tokens: ${t} is not below the vocabulary size ${V}`);
    const rows = await m.forward([{ seq: 0, tokens, start: 0 }], { all: args.all });
    const logits = rows.flatMap((r) => Array.from(r));
    console.log(JSON.stringify({ shape: [rows.length, V], logits }));
  } finally {
    m.destroy();
    if (tmp) await Deno.remove(tmp, { recursive: true });
  }
}

/** resolve → engine → serve, or one generation with --prompt. */
async function cmdRun(args: Args, env: Record<string, string | undefined>): Promise<number> {
  const model = need(args, "model");
  const jit = jitOptionsFromEnv(env);
  // an HF folder defaults to q4f16_1; an MLC folder carries its own quantization
  const isMlc = await Deno.stat(`${model}/mlc-chat-config.json`).then(() => true, () => false);
  const t0 = performance.now();
  const engine = await createEngine({
    model,
    modelLib: args["model-lib"],
    quantization: args.quantization ?? (isMlc ? undefined : "q4f16_1"),
    target: args.target,
    opt: args.opt,
    overrides: args.overrides || undefined,
    cacheRoot: jit.cacheRoot,
    policy: jit.policy,
    maxTotalSequenceLength: args["max-total-seq-len"] ? Number(args["max-total-seq-len"]) : undefined,
    deviceMemoryBytes: args["gpu-memory-gb"] ? Number(args["gpu-memory-gb"]) * 2 ** 30 : undefined,
    gpuMemoryUtilization: args["gpu-memory-utilization"] ? Number(args["gpu-memory-utilization"]) : undefined,
    engine: { maxNumSequence: args["max-num-seq"] ? Number(args["max-num-seq"]) : undefined, prefillChunkSize: args["prefill-chunk-size"] ? Number(args["prefill-chunk-size"]) : undefined },
    onProgress: (e) => console.error(formatProgress(e)),
  });
  console.error(`ready in ${((performance.now() - t0) / 1000).toFixed(2)} s: ${engine.modelId}, context ${engine.contextWindow}`);
  if (args.prompt !== undefined) {
    const messages = [{ role: "user" as const, content: args.prompt }];
    const text = engine.chatTemplate ? engine.chatTemplate.render(messages, { addGenerationPrompt: true }) : args.prompt;
    const prompt = engine.tokenizer.encode(text, { addSpecialTokens: !engine.chatTemplate });
    for await (const c of engine.generate({ prompt, maxTokens: Number(args["max-tokens"]), sampling: GREEDY })) {
      await Deno.stdout.write(new TextEncoder().encode(c.text));
      if (c.finishReason) console.error(`\n[${c.finishReason}: ${c.usage?.promptTokens} prompt + ${c.usage?.completionTokens} generated tokens]`);
    }
    await engine.close();
    return 0;
  }
  const app = createApp({
    engine,
    modelId: engine.modelId,
    apiKey: args["api-key"] ?? env.KILN_API_KEY,
    cors: args.cors ? { origins: args.cors } : undefined,
    modelRoots: args["model-root"] ?? [dirname(resolvePath(model))],
    prewarm: jitPrewarmer({ cacheRoot: jit.cacheRoot, policy: jit.policy, target: args.target }),
  });
  const server = serve({
    app,
    hostname: args.host,
    port: Number(args.port),
    onListen: ({ hostname, port }) => console.error(`serving ${engine.modelId} on http://${hostname}:${port}/v1`),
  });
  await server.finished;
  await engine.close();
  return 0;
}

export async function main(argv: string[], env: Record<string, string | undefined> = {}): Promise<number> {
  if (argv[0] === "cache") return await cacheCommand(argv.slice(1), jitOptionsFromEnv(env), { formatVersion: FORMAT });
  const { values: args, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  const cmd = positionals[0];
  if (args.help || (!cmd && !args.model)) {
    console.log(USAGE);
    return args.help ? 0 : 2;
  }
  if (!cmd) return await cmdRun(args, env);
  switch (cmd) {
    case "compile":
      await cmdCompile(args);
      return 0;
    case "convert":
      await cmdConvert(args);
      return 0;
    case "logits":
      await cmdLogits(args);
      return 0;
    default:
      console.error(`unknown command "${cmd}"\n${USAGE}`);
      return 2;
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args, Deno.env.toObject()));
  } catch (e) {
    const err = e as Error;
    console.error(`error: ${err.name === "Error" ? "" : err.name + ": "}${err.message}`);
    if (err.cause instanceof Error && !err.message.includes(err.cause.message)) console.error(`  cause: ${err.cause.message}`);
    Deno.exit(1);
  }
}
