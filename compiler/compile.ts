/**
 * `compile()`: Kiln's mirror of MLC-LLM's `mlc_llm.interface.compile.compile`. Needs the model
 * config only (no weights, no GPU). Steps:
 *   1 config + overrides → ModelConfig       6 metadata
 *   2 quantization scheme                    7 optimisation pipeline (named phases)
 *   3 export the tensor IR                   8 buildFunc: codegen + esbuild bundle → artifact
 *   4 param preprocessing annotations        9 memory estimate
 *   5 bounds of the symbolic vars
 * @module
 */
import { CompileError } from "./errors.ts";
import { type ModelConfig, normalizeConfig, readModelConfig } from "./config/model_config.ts";
import { type ModelConfigOverride, parseOverrides } from "./config/overrides.ts";
import { type OptimizationFlags, parseOptFlags, updateForTarget } from "./config/opt_flags.ts";
import type { TargetInfo } from "./codegen/contract.ts";
import { resolveTarget } from "./target.ts";
import { getQuantization, type QuantScheme } from "./quant/mod.ts";
import { getModel } from "./models/registry.ts";
import type { IrFunction } from "./ir/graph.ts";
import { printFunction } from "./ir/print.ts";
import { runPipeline } from "./passes/pipeline.ts";
import { checkBindingSizes } from "./passes/split_large_weights.ts";
import { lowerToPlan } from "./codegen/lower.ts";
import { type BuildFunc, defaultBuild, init as initBundler } from "./build.ts";
import { buildMetadata, type CompileMetadata, memoryEstimate } from "./metadata.ts";
import { writeArtifact } from "./artifact.ts";

import { ARTIFACT_FORMAT_VERSION, COMPILER_VERSION } from "./version.ts";
export { ARTIFACT_FORMAT_VERSION, COMPILER_VERSION };

export interface CompileOptions {
  /** A model folder (config.json or mlc-chat-config.json) or a raw config object. */
  config: string | Record<string, unknown>;
  quantization: string;
  /** "auto" (from the config) or an explicit model type. */
  modelType?: string;
  target?: TargetInfo | "auto" | "webgpu" | "cpu";
  /** "O0".."O3" or "k=v;…". */
  opt?: string;
  buildFunc?: BuildFunc;
  systemLibPrefix?: string;
  /** The artifact folder to create (replaced atomically). */
  output: string;
  overrides?: string | ModelConfigOverride;
  /** Write the IR after every phase here. */
  debugDump?: string;
  /** Warnings (default: console.warn). */
  warn?: (msg: string) => void;
}

export interface CompileResult {
  output: string;
  metadata: CompileMetadata;
  manifest: Record<string, unknown>;
  /** Milliseconds per stage. */
  timings: Record<string, number>;
}

/** Everything that changes the artifact; the JIT cache key is the sha256 of its canonical JSON. */
export function keyInputs(a: {
  config: ModelConfig;
  quantization: string;
  overrides: ModelConfigOverride;
  flags: OptimizationFlags;
  target: TargetInfo;
  systemLibPrefix: string;
}): Record<string, unknown> {
  return {
    model_config: a.config,
    quantization: a.quantization,
    overrides: a.overrides,
    opt: a.flags,
    target: a.target,
    system_lib_prefix: a.systemLibPrefix,
    compiler_version: COMPILER_VERSION,
    format_version: ARTIFACT_FORMAT_VERSION,
  };
}

async function stage<T>(
  name: string,
  timings: Record<string, number>,
  f: () => T | Promise<T>,
): Promise<T> {
  const t0 = performance.now();
  try {
    return await f();
  } catch (e) {
    if (e instanceof CompileError) throw e;
    throw new CompileError(name, (e as Error).message ?? String(e), { cause: e });
  } finally {
    timings[name] = performance.now() - t0;
  }
}

/** Clamp prefill_chunk_size / max_batch_size so every activation fits one storage binding. */
function fitToTarget(cfg: ModelConfig, target: TargetInfo, warn: (m: string) => void): ModelConfig {
  const limit = target.limits.maxStorageBufferBindingSize;
  const widest = Math.max(
    2 * cfg.intermediate_size,
    (cfg.num_attention_heads + 2 * cfg.num_key_value_heads) * cfg.head_dim,
    cfg.hidden_size,
  ) * 4;
  const out = { ...cfg };
  const maxTokens = Math.floor(limit / widest);
  if (out.prefill_chunk_size > maxTokens) {
    warn(
      `prefill_chunk_size ${out.prefill_chunk_size} → ${maxTokens}: a ${widest}-byte activation row times the chunk must fit the target's storage-binding limit (${limit} bytes)`,
    );
    out.prefill_chunk_size = maxTokens;
  }
  const maxRows = Math.min(maxTokens, Math.floor(limit / (cfg.vocab_size * 4)));
  if (out.max_batch_size > maxRows) {
    warn(
      `max_batch_size ${out.max_batch_size} → ${maxRows}: the logits of a batch must fit the storage-binding limit (${limit} bytes)`,
    );
    out.max_batch_size = maxRows;
  }
  if (out.max_batch_size < 1 || out.prefill_chunk_size < 1) {
    throw new RangeError(
      `the model's activations do not fit the target's storage-binding limit (${limit} bytes)`,
    );
  }
  return Object.freeze(out);
}

export async function compile(opts: CompileOptions): Promise<CompileResult> {
  const timings: Record<string, number> = {};
  const warn = opts.warn ?? ((m: string) => console.warn(`warning: ${m}`));
  const systemLibPrefix = opts.systemLibPrefix ?? "";
  // Overlap esbuild-wasm's start-up with the stages before the build.
  if (!opts.buildFunc) initBundler().catch(() => {});
  // 1. config + overrides
  const overrides = await stage("overrides", timings, () => parseOverrides(opts.overrides));
  const target = await stage("target", timings, () => resolveTarget(opts.target ?? "auto"));
  const config = await stage("config", timings, async () => {
    const src = typeof opts.config === "string"
      ? await readModelConfig(opts.config)
      : { raw: opts.config, path: "<config object>" };
    const raw = { ...src.raw };
    if (opts.modelType && opts.modelType !== "auto") raw.model_type = opts.modelType;
    return fitToTarget(normalizeConfig(raw, src.path, overrides, warn), target, warn);
  });
  const flags = updateForTarget(parseOptFlags(opts.opt), target);
  // 2. quantization
  const quant: QuantScheme = await stage(
    "quantization",
    timings,
    () =>
      getQuantization(opts.quantization, { tensorParallelShards: config.tensor_parallel_shards }),
  );
  // 3–5. IR export with annotations and bounds
  const model = getModel(config.model_type);
  const { functions, params } = await stage("export", timings, () => model.build(config, quant));
  // 7. optimisation pipeline
  const dumps: [string, string][] = [];
  const optimized: IrFunction[] = await stage("optimize", timings, () => {
    const fns = runPipeline(functions, { config, target, flags, modelDtype: quant.modelDtype }, (phase, fns) => {
      if (opts.debugDump) {
        dumps.push([`${dumps.length}_${phase}.ir`, fns.map(printFunction).join("\n\n") + "\n"]);
      }
    });
    for (const fn of fns) {
      const problem = checkBindingSizes(fn, target.limits.maxStorageBufferBindingSize);
      if (problem) {
        throw new RangeError(
          `${problem}; use a higher opt level (O1+) or a smaller prefill_chunk_size`,
        );
      }
    }
    return fns;
  });
  // 6. metadata
  const metadata = buildMetadata({ config, quant, params, functions: optimized, target, flags });
  // 8. build
  // Kernels may use shader-f16 only where the flag (and so the tolerance) allows it.
  const codegenTarget = flags.shader_f16
    ? target
    : { ...target, features: target.features.filter((f) => f !== "shader-f16") };
  const plan = await stage("codegen", timings, () => lowerToPlan(optimized, codegenTarget));
  const files = await stage(
    "build",
    timings,
    () => (opts.buildFunc ?? defaultBuild)({ plan, metadata: { ...metadata }, target }),
  );
  const inputs = keyInputs({
    config,
    quantization: quant.name,
    overrides,
    flags,
    target,
    systemLibPrefix,
  });
  const manifest = await stage(
    "write",
    timings,
    () => writeArtifact(opts.output, files, metadata, inputs, dumps, opts.debugDump),
  );
  return { output: opts.output, metadata, manifest, timings };
}

/** The one-paragraph memory report MLC prints after compiling. */
export function formatMemoryEstimate(m: CompileMetadata): string {
  const e = memoryEstimate(m);
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(2)} MB`;
  return [
    `parameters: ${mb(e.params)}; temporary buffers: ${mb(e.temp)}`,
    `KV cache: ${(e.kvPerToken / 1024).toFixed(2)} KB per token`,
    `total for a ${m.context_window_size}-token context: ${mb(e.total)}`,
  ].join("\n");
}
