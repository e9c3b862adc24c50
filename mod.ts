/**
 * Kiln: a JIT compile runtime for large language models on WebGPU.
 *
 * Library API: `compile()` (MLC-LLM's compile contract), `convertWeights()`, `Model` (a loaded
 * library + weights). CLI:
 *
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
import { compile, type CompileOptions, formatMemoryEstimate } from "./compiler/compile.ts";
import { convertWeights } from "./compiler/weights/convert.ts";
import { Model } from "./engine/model.ts";

export { ARTIFACT_FORMAT_VERSION, compile, COMPILER_VERSION, keyInputs } from "./compiler/compile.ts";
export type { CompileOptions, CompileResult } from "./compiler/compile.ts";
export { convertWeights } from "./compiler/weights/convert.ts";
export { Model } from "./engine/model.ts";

const USAGE = `usage:
  kiln compile --model <dir> --quantization <q> [--target auto|webgpu|cpu] [--opt O2] [--overrides "k=v;…"] [--output <dir>] [--debug-dump <dir>]
  kiln convert --model <hf dir> --quantization <q> --output <dir>
  kiln logits  --model <dir> --quantization <q> --tokens 1,2,3 [--target auto|webgpu|cpu] [--all] [--lib <dir>]`;

const OPTIONS = {
  model: { type: "string" },
  quantization: { type: "string", default: "q4f16_1" },
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
} as const;

type Args = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>["values"];

function need(args: Args, key: "model" | "tokens" | "output"): string {
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
    quantization: args.quantization!,
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
    quantization: args.quantization!,
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
    await compile({ config: model, quantization: args.quantization!, target: target(args), opt: args.opt, overrides: args.overrides, output: lib, warn: (m) => console.error(`warning: ${m}`) });
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

export async function main(argv: string[]): Promise<number> {
  const { values: args, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  const cmd = positionals[0];
  if (args.help || !cmd) {
    console.log(USAGE);
    return args.help ? 0 : 2;
  }
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
    Deno.exit(await main(Deno.args));
  } catch (e) {
    const err = e as Error;
    console.error(`error: ${err.name === "Error" ? "" : err.name + ": "}${err.message}`);
    if (err.cause instanceof Error && !err.message.includes(err.cause.message)) console.error(`  cause: ${err.cause.message}`);
    Deno.exit(1);
  }
}
