/**
 * The compiler's public surface: `compile()` (MLC-LLM's compile contract), model configs,
 * weight conversion, and the versions that enter the JIT cache key.
 * @module
 */
import { normalizeConfig, readModelConfig } from "./config/model_config.ts";
import { parseOverrides } from "./config/overrides.ts";

export { compile, formatMemoryEstimate, keyInputs } from "./compile.ts";
export type { CompileOptions, CompileResult } from "./compile.ts";
export { ARTIFACT_FORMAT_VERSION, COMPILER_VERSION } from "./version.ts";
export { convertWeights } from "./weights/convert.ts";
export type { ConvertOptions } from "./weights/convert.ts";
export { normalizeConfig, readModelConfig } from "./config/model_config.ts";
export type { ModelConfig } from "./config/model_config.ts";
export { parseOverrides } from "./config/overrides.ts";
export { parseOptFlags } from "./config/opt_flags.ts";
export { QUANTIZATIONS } from "./quant/mod.ts";
export type { TargetInfo } from "./codegen/contract.ts";
export { CPU_TARGET, GENERIC_WEBGPU, resolveTarget, targetFromAdapter } from "./target.ts";
export type { CompileMetadata } from "./metadata.ts";
export { CompileError, ConfigError, NotImplementedError, WeightError } from "./errors.ts";

/** The normalised config of a model folder (after overrides), and which format described it. */
export async function loadModelConfig(
  modelDir: string,
  overrides?: string,
): Promise<{ normalized: Record<string, unknown>; format: "hf" | "mlc" }> {
  const src = await readModelConfig(modelDir);
  const config = normalizeConfig(src.raw, src.path, parseOverrides(overrides), () => {});
  return { normalized: { ...config }, format: src.format };
}
