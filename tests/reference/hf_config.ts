/**
 * Reads a Hugging Face `config.json` of a Llama-family model (LlamaForCausalLM,
 * MistralForCausalLM, Qwen2ForCausalLM) into the fields the float64 reference needs, with HF's
 * defaults. Independent of `compiler/config/` on purpose: the reference must not share code with
 * what it checks.
 * @module
 */

/** RoPE frequency scaling, as HF's `rope_scaling` / `rope_parameters`. */
export type RefRopeScaling =
  | { type: "default" }
  | { type: "linear"; factor: number }
  | {
    type: "llama3";
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositionEmbeddings: number;
  };

/** Everything the reference forward pass reads from config.json. */
export interface RefConfig {
  modelType: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RefRopeScaling;
  tieWordEmbeddings: boolean;
  /** Bias on q/k/v projections. */
  qkvBias: boolean;
  /** Bias on o_proj (Llama's attention_bias). */
  oBias: boolean;
  /** Bias on gate/up/down (Llama's mlp_bias). */
  mlpBias: boolean;
  /** Sliding window per layer (null = full causal attention). */
  layerWindows: (number | null)[];
}

/** Parse HF config JSON (already decoded) into a RefConfig. */
export function parseHfConfig(raw: Record<string, unknown>): RefConfig {
  const num = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new TypeError(`config.json: "${key}" must be a number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const arch = Array.isArray(raw.architectures) ? String(raw.architectures[0]) : "";
  const modelType = String(raw.model_type ?? "");
  const isQwen2 = modelType === "qwen2" || arch === "Qwen2ForCausalLM";
  const isMistral = modelType === "mistral" || arch === "MistralForCausalLM";
  const isLlama = modelType === "llama" || arch === "LlamaForCausalLM";
  if (!isQwen2 && !isMistral && !isLlama) {
    throw new TypeError(`config.json: model_type "${modelType}" / "${arch}" is not Llama-family`);
  }
  const hiddenSize = num("hidden_size");
  const numHeads = num("num_attention_heads");
  const numLayers = num("num_hidden_layers");
  const headDim = raw.head_dim == null ? hiddenSize / numHeads : num("head_dim");
  // transformers ≥ 4.5x may nest theta and scaling in `rope_parameters`.
  const ropeParams = (raw.rope_parameters ?? null) as Record<string, unknown> | null;
  const ropeTheta = raw.rope_theta != null
    ? num("rope_theta")
    : Number(ropeParams?.rope_theta ?? 10000);
  const scalingRaw = (raw.rope_scaling ?? ropeParams ?? null) as Record<string, unknown> | null;

  const layerWindows: (number | null)[] = new Array(numLayers).fill(null);
  const window = raw.sliding_window == null ? null : num("sliding_window");
  if (Array.isArray(raw.layer_types)) {
    raw.layer_types.forEach((t, i) => {
      if (t === "sliding_attention") layerWindows[i] = window;
    });
  } else if (isMistral && window !== null) {
    layerWindows.fill(window);
  } else if (isQwen2 && raw.use_sliding_window === true && window !== null) {
    const maxWindowLayers = num("max_window_layers", 28);
    for (let i = maxWindowLayers; i < numLayers; i++) layerWindows[i] = window;
  }

  return {
    modelType: isQwen2 ? "qwen2" : isMistral ? "mistral" : "llama",
    hiddenSize,
    intermediateSize: num("intermediate_size"),
    numLayers,
    numHeads,
    numKvHeads: num("num_key_value_heads", numHeads),
    headDim,
    vocabSize: num("vocab_size"),
    rmsNormEps: num("rms_norm_eps", 1e-6),
    ropeTheta,
    ropeScaling: parseRopeScaling(scalingRaw),
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    qkvBias: isQwen2 || (isLlama && raw.attention_bias === true),
    oBias: isLlama && raw.attention_bias === true,
    mlpBias: isLlama && raw.mlp_bias === true,
    layerWindows,
  };
}

function parseRopeScaling(s: Record<string, unknown> | null): RefRopeScaling {
  if (s === null) return { type: "default" };
  const type = String(s.rope_type ?? s.type ?? "default");
  const n = (k: string) => {
    if (typeof s[k] !== "number") throw new TypeError(`rope_scaling.${k} must be a number`);
    return s[k] as number;
  };
  switch (type) {
    case "default":
      return { type: "default" };
    case "linear":
      return { type: "linear", factor: n("factor") };
    case "llama3":
      return {
        type: "llama3",
        factor: n("factor"),
        lowFreqFactor: n("low_freq_factor"),
        highFreqFactor: n("high_freq_factor"),
        originalMaxPositionEmbeddings: n("original_max_position_embeddings"),
      };
    default:
      throw new TypeError(`rope_scaling type "${type}" is not supported by the reference`);
  }
}

/** Read and parse `<dir>/config.json`. */
export async function readHfConfig(dir: string): Promise<RefConfig> {
  return parseHfConfig(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)));
}
