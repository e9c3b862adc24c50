/**
 * Named presets for the example model generator (`make_model.ts`): small Llama-family models in
 * Hugging Face format. Each preset is the architecture-level config; `makeModel` turns it into
 * `config.json` fields with HF's names. The golden presets share one small size (hidden 64,
 * 4 heads of 16, 2 layers, intermediate 160, vocab 512); `example` keeps that size but carries
 * the real Llama 3 tokenizer and its 128256-token vocabulary.
 * @module
 */

/** Llama 3 style RoPE scaling (HF `rope_scaling` with `rope_type: "llama3"`). */
export interface Llama3RopeScaling {
  rope_type: "llama3";
  factor: number;
  low_freq_factor: number;
  high_freq_factor: number;
  original_max_position_embeddings: number;
}

/** One preset: the fields that differ between Llama-family architectures. */
export interface ModelVariant {
  /** HF `architectures[0]`. */
  architecture: "LlamaForCausalLM" | "MistralForCausalLM" | "Qwen2ForCausalLM";
  /** HF `model_type`. */
  modelType: "llama" | "mistral" | "qwen2";
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: Llama3RopeScaling | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** Bias on q/k/v projections (Qwen2); o_proj never has one. */
  qkvBias: boolean;
  /** Sliding-window attention size in tokens (Mistral), or null for full attention. */
  slidingWindow: number | null;
  bosTokenId: number;
  /** EOS ids: a single id is written as a number, several as a list. */
  eosTokenIds: readonly number[];
  /** Copy the real Llama 3 tokenizer (tokenizer.json, tokenizer_config.json) into the model. */
  tokenizer: "llama3" | null;
  /** dtype used when the caller does not choose one. */
  defaultDtype: "f32" | "f16" | "bf16";
}

const GOLDEN_SIZE = {
  hiddenSize: 64,
  intermediateSize: 160,
  numLayers: 2,
  numHeads: 4,
  headDim: 16,
  vocabSize: 512,
  maxPositionEmbeddings: 128,
  bosTokenId: 1,
  eosTokenIds: [2],
  tokenizer: null,
  defaultDtype: "f32",
} as const;

/** The "wide" variants' size: the golden vocabulary, one layer wide enough for the few-rows
 * kernel and `split_k`. */
const WIDE_SIZE = {
  ...GOLDEN_SIZE,
  slidingWindow: null,
  hiddenSize: 1024,
  intermediateSize: 8192,
  numLayers: 1,
  numHeads: 16,
  numKvHeads: 4,
  headDim: 64,
  ropeScaling: null,
  tieWordEmbeddings: false,
} as const;

const LLAMA = {
  architecture: "LlamaForCausalLM",
  modelType: "llama",
  qkvBias: false,
  slidingWindow: null,
} as const;

/** The presets, by name. */
export const VARIANTS = {
  /** Llama 2: multi-head attention, untied, no RoPE scaling. */
  "llama2": {
    ...GOLDEN_SIZE,
    ...LLAMA,
    numKvHeads: 4,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    tieWordEmbeddings: false,
  },
  /** Llama 3.1: GQA 4:1, llama3 RoPE scaling with a small original context so it bites. */
  "llama3": {
    ...GOLDEN_SIZE,
    ...LLAMA,
    numKvHeads: 1,
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
    ropeScaling: {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 16,
    },
    tieWordEmbeddings: false,
  },
  /** Llama 3.2: GQA 2:1, tied embeddings. */
  "llama3.2": {
    ...GOLDEN_SIZE,
    ...LLAMA,
    numKvHeads: 2,
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
    ropeScaling: null,
    tieWordEmbeddings: true,
  },
  /** Multi-query attention: one KV head. */
  "mqa": {
    ...GOLDEN_SIZE,
    ...LLAMA,
    numKvHeads: 1,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    ropeScaling: null,
    tieWordEmbeddings: false,
  },
  /** Mistral: GQA 2:1, sliding-window attention of 16 tokens. */
  "mistral": {
    ...GOLDEN_SIZE,
    architecture: "MistralForCausalLM",
    modelType: "mistral",
    qkvBias: false,
    slidingWindow: 16,
    numKvHeads: 2,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    tieWordEmbeddings: false,
  },
  /** Qwen2: bias on q/k/v, tied embeddings, GQA 2:1. */
  "qwen2": {
    ...GOLDEN_SIZE,
    architecture: "Qwen2ForCausalLM",
    modelType: "qwen2",
    qkvBias: true,
    slidingWindow: null,
    numKvHeads: 2,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    ropeScaling: null,
    tieWordEmbeddings: true,
  },
  /** Qwen2 shape at a width where batched decode takes the few-rows kernel: gate_up of 8,192
   * columns (128 column blocks), K split for the rest (K of 1,024 and 8,192: the `split_k`
   * pass's ranges of at least 512), one layer; q/k/v biases. */
  "wide": {
    ...WIDE_SIZE,
    architecture: "Qwen2ForCausalLM",
    modelType: "qwen2",
    qkvBias: true,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
  },
  /** "wide" in the Llama shape (no biases): batched decode's qkv sums fold into
   * attention_decode (`fold_sum_splits`), which the Qwen2 qkv bias prevents. */
  "wide_llama": {
    ...WIDE_SIZE,
    architecture: "LlamaForCausalLM",
    modelType: "llama",
    qkvBias: false,
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
  },
  /** The bundled example: Llama 3.2 style (GQA 4:1, tied, llama3 RoPE scaling) at the golden
   * width, with the real Llama 3 tokenizer and chat template. */
  "example": {
    ...LLAMA,
    hiddenSize: 64,
    intermediateSize: 160,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 1,
    headDim: 16,
    vocabSize: 128256,
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
    ropeScaling: {
      rope_type: "llama3",
      factor: 32,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    },
    maxPositionEmbeddings: 2048,
    tieWordEmbeddings: true,
    bosTokenId: 128000,
    eosTokenIds: [128001, 128008, 128009],
    tokenizer: "llama3",
    defaultDtype: "bf16",
  },
} as const satisfies Record<string, ModelVariant>;

/** A preset's name. */
export type VariantName = keyof typeof VARIANTS;

/** The preset called `name`; throws a RangeError that lists the names when there is none. */
export function getVariant(name: string): ModelVariant {
  if (!Object.hasOwn(VARIANTS, name)) {
    throw new RangeError(
      `unknown model variant "${name}"; choose one of: ${Object.keys(VARIANTS).join(", ")}`,
    );
  }
  return VARIANTS[name as VariantName];
}
