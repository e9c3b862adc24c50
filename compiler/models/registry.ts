/**
 * Architectures by model_type, one line each. Variants are config fields of a shared
 * definition, never copies.
 * @module
 */
import type { ModelConfig } from "../config/model_config.ts";
import type { IrFunction, ParamInfo } from "../ir/graph.ts";
import type { QuantScheme } from "../quant/mod.ts";
import { ConfigError } from "../errors.ts";
import {
  buildEmbed,
  buildForward,
  buildSampling,
  forwardBounds,
  paramTable,
  weightDefs,
} from "./llama.ts";

export interface ModelDef {
  build(config: ModelConfig, quant: QuantScheme): { functions: IrFunction[]; params: ParamInfo[] };
}

const llama: ModelDef = {
  build(config, quant) {
    const defs = weightDefs(config, quant);
    const fwd = Object.entries(forwardBounds(config)).map(([name, b]) =>
      buildForward(name, b, config, defs)
    );
    return {
      functions: [buildEmbed(config, defs), ...fwd, ...buildSampling(config)],
      params: paramTable(config, defs),
    };
  },
};

const MODELS: Record<string, ModelDef> = {
  llama,
  mistral: llama,
  qwen2: llama,
};

export function getModel(modelType: string): ModelDef {
  const m = MODELS[modelType];
  if (!m) {
    throw new ConfigError(
      `model type "${modelType}" is not registered; known: ${Object.keys(MODELS).join(", ")}`,
    );
  }
  return m;
}
