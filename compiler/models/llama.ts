/**
 * The Llama-family decoder: Llama 2/3/3.1/3.2, Mistral and Qwen2/2.5 in one definition, the
 * variants being config fields (GQA/MQA, rope scaling, tied embeddings, sliding window, qkv
 * bias). Exports the parameter table (with the HF sources of each param, for weight
 * conversion) and the unoptimised IR of every function.
 *
 * Param names follow MLC-LLM's (q, k, v fused as `qkv_proj`; gate and up as `gate_up_proj`),
 * so MLC-converted weight folders load as they are.
 * @module
 */
import type { ModelConfig } from "../config/model_config.ts";
import type { WeightFormat } from "../codegen/contract.ts";
import {
  argmaxPartWords,
  PAGE_SIZE,
  topPGatherWords,
  topPHistWords,
  topPSlices,
} from "../ir/ops.ts";
import {
  type Dtype,
  FunctionBuilder,
  type IrFunction,
  type ParamInfo,
  type SymVar,
} from "../ir/graph.ts";
import { type QuantScheme, storedShapes } from "../quant/mod.ts";
import { ropeInvFreq } from "./rope.ts";

/** One logical weight: its stored tensors, format, and the HF tensors it is made from. */
export interface WeightDef {
  /** Param base name, e.g. `model.layers.0.self_attn.qkv_proj`. */
  base: string;
  /** Logical shape [N, K] (or [N] for vectors). */
  shape: number[];
  format: WeightFormat;
  /** HF tensors concatenated along dim 0 to make it. */
  sources: string[];
  /** Tensor-parallel sharding: dim and, for fused weights, the segment sizes along dim 0. */
  shard: { dim: number; segments?: number[] } | null;
  stage: number;
}

const DTYPE: Record<string, Dtype> = { float32: "f32", float16: "f16", uint32: "u32" };

export function storedDtype(dtype: string): Dtype {
  const d = DTYPE[dtype];
  if (!d) throw new TypeError(`unknown stored dtype ${dtype}`);
  return d;
}

/** All weights of the model, in a stable order. */
export function weightDefs(cfg: ModelConfig, q: QuantScheme): WeightDef[] {
  const { hidden_size: E, intermediate_size: I, head_dim: D } = cfg;
  const H = cfg.num_attention_heads, KV = cfg.num_key_value_heads, L = cfg.num_hidden_layers;
  const dense: WeightFormat = { kind: "dense", dtype: q.modelDtype };
  const stage = (layer: number) => Math.floor((layer * cfg.pipeline_parallel_stages) / L);
  const last = cfg.pipeline_parallel_stages - 1;
  // a weight read from the one HF tensor `<base>.weight`: an RMSNorm vector, or a linear layer
  const norm = (base: string, stage: number): WeightDef => ({
    base,
    shape: [E],
    format: dense,
    sources: [`${base}.weight`],
    shard: null,
    stage,
  });
  const linear = (
    base: string,
    shape: number[],
    shard: WeightDef["shard"],
    stage: number,
  ): WeightDef => ({ base, shape, format: q.linear, sources: [`${base}.weight`], shard, stage });
  const defs: WeightDef[] = [{
    base: "model.embed_tokens",
    shape: [cfg.vocab_size, E],
    format: q.embedding,
    sources: ["model.embed_tokens.weight"],
    shard: null,
    stage: 0,
  }];
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`, s = stage(i);
    const qkvRows = [H * D, KV * D, KV * D];
    defs.push(
      norm(`${p}.input_layernorm`, s),
      {
        base: `${p}.self_attn.qkv_proj`,
        shape: [(H + 2 * KV) * D, E],
        format: q.linear,
        sources: ["q", "k", "v"].map((x) => `${p}.self_attn.${x}_proj.weight`),
        shard: { dim: 0, segments: qkvRows },
        stage: s,
      },
    );
    if (cfg.qkv_bias) {
      defs.push({
        base: `${p}.self_attn.qkv_proj.bias`,
        shape: [(H + 2 * KV) * D],
        format: dense,
        sources: ["q", "k", "v"].map((x) => `${p}.self_attn.${x}_proj.bias`),
        shard: { dim: 0, segments: qkvRows },
        stage: s,
      });
    }
    defs.push(
      linear(`${p}.self_attn.o_proj`, [E, H * D], { dim: 1 }, s),
      norm(`${p}.post_attention_layernorm`, s),
      {
        base: `${p}.mlp.gate_up_proj`,
        shape: [2 * I, E],
        format: q.linear,
        sources: [`${p}.mlp.gate_proj.weight`, `${p}.mlp.up_proj.weight`],
        shard: { dim: 0, segments: [I, I] },
        stage: s,
      },
      linear(`${p}.mlp.down_proj`, [E, I], { dim: 1 }, s),
    );
  }
  defs.push(norm("model.norm", last));
  if (!cfg.tie_word_embeddings) defs.push(linear("lm_head", [cfg.vocab_size, E], null, last));
  return defs;
}

/** Stored tensors of a weight: `[name, shape, dtype]` (vectors are stored as they are). */
export function storedTensors(
  def: WeightDef,
): { name: string; shape: number[]; dtype: string; suffix: string }[] {
  if (def.shape.length === 1) {
    const dtype = def.format.kind === "dense" && def.format.dtype === "f32" ? "float32" : "float16";
    // a bias's base already ends in ".bias"; a norm's stored name is "<base>.weight"
    const name = def.base.endsWith(".bias") ? def.base : `${def.base}.weight`;
    return [{ name, shape: def.shape, dtype, suffix: name.slice(name.lastIndexOf(".") + 1) }];
  }
  return storedShapes(def.format, def.shape[0], def.shape[1]).map((s) => ({
    name: `${def.base}.${s.suffix}`,
    shape: s.shape,
    dtype: s.dtype,
    suffix: s.suffix,
  }));
}

/** The params[] table of the metadata, with MLC-style preprocessing annotations. */
export function paramTable(cfg: ModelConfig, defs: WeightDef[]): ParamInfo[] {
  const tp = cfg.tensor_parallel_shards;
  return defs.flatMap((def) =>
    storedTensors(def).map((t) => ({
      name: t.name,
      shape: t.shape,
      dtype: t.dtype,
      preprocs: tp > 1 && def.shard
        ? [{
          kind: "tensor_parallel_shard",
          dim: def.shard.dim,
          shards: tp,
          ...(def.shard.segments ? { segments: def.shard.segments } : {}),
        }]
        : [],
      pipeline_stages: [def.stage],
    }))
  );
}

/**
 * Calls of at most this many tokens get `<fn>_small` variants, compiled for the small bound so
 * that their matmuls take the GEMV shape (weights read once for all rows) rather than the tiled
 * one, whose cost barely depends on the row count.
 */
export const SMALL_ROWS = 32;

/** Bounds of n (tokens), s (sequences), m (logit rows) for each forward function. The decode
 * functions (`DECODE_FUNCTIONS`) run one row per sequence: its newest token. */
export function forwardBounds(cfg: ModelConfig): Record<string, Record<SymVar, number>> {
  const chunk = cfg.prefill_chunk_size, B = cfg.max_batch_size, S = SMALL_ROWS;
  const fns: Record<string, Record<SymVar, number>> = {
    prefill: { n: chunk, s: 1, m: 1 },
    decode: { n: 1, s: 1, m: 1 },
    batch_prefill: { n: chunk, s: B, m: B },
    batch_decode: { n: B, s: B, m: B },
  };
  if (chunk > S) {
    fns.prefill_small = { n: S, s: 1, m: 1 };
    fns.batch_prefill_small = { n: S, s: Math.min(B, S), m: Math.min(B, S) };
  }
  if (B > S) fns.batch_decode_small = { n: S, s: S, m: S };
  return fns;
}

/** Forward functions whose every call runs one row per sequence (`IrFunction.rowPerSequence`). */
export const DECODE_FUNCTIONS: ReadonlySet<string> = new Set([
  "decode",
  "batch_decode",
  "batch_decode_small",
]);

/** Pages a sequence can hold, and so the bound of the page table. */
export function pagesPerSequence(cfg: ModelConfig): number {
  return Math.ceil(cfg.context_window_size / PAGE_SIZE);
}

class Emitter {
  constructor(
    readonly b: FunctionBuilder,
    readonly cfg: ModelConfig,
    readonly defs: Map<string, WeightDef>,
  ) {}

  /** Param values of a weight, keyed by stored suffix. */
  params(base: string): Record<string, number> {
    const def = this.defs.get(base);
    if (!def) throw new Error(`no weight ${base}`);
    const out: Record<string, number> = {};
    for (const t of storedTensors(def)) {
      out[t.suffix] = this.b.param(t.name, t.shape, storedDtype(t.dtype));
    }
    return out;
  }

  /** y = x · Wᵀ (+ bias). Group-quantised weights are dequantised first (fused later). */
  linear(
    x: number,
    base: string,
    N: number,
    K: number,
    rows: SymVar,
    name: string,
    bias?: string,
  ): number {
    const def = this.defs.get(base)!;
    const p = this.params(base);
    let weight: WeightFormat = def.format;
    let wArgs: Record<string, number>;
    if (weight.kind === "group") {
      const w = this.b.temp(`${name}.w`, [N, K]);
      this.b.node({ op: "dequantize", N, K, weight }, N, {
        q_weight: p.q_weight,
        q_scale: p.q_scale,
        out: w,
      });
      weight = { kind: "dense", dtype: "f32" };
      wArgs = { weight: w };
    } else {
      wArgs = { weight: p.weight };
    }
    const out = this.b.temp(name, [rows, N]);
    const biasArgs: Record<string, number> = bias ? { bias: this.params(bias).bias } : {};
    const biasDtype = bias ? this.defs.get(bias)!.format : null;
    this.b.node(
      {
        op: "matmul",
        N,
        K,
        rowStart: 0,
        rows: N,
        weight,
        bias: biasDtype && biasDtype.kind === "dense" ? biasDtype.dtype : null,
        epilogue: "none",
        maxRows: this.b.bounds[rows],
      },
      rows,
      { x, ...wArgs, ...biasArgs, out },
    );
    return out;
  }

  rmsNorm(x: number, base: string, rows: SymVar, name: string): number {
    const E = this.cfg.hidden_size;
    const out = this.b.temp(name, [rows, E]);
    const fmt = this.defs.get(base)!.format as { dtype: "f32" | "f16" };
    this.b.node(
      { op: "rms_norm", hidden: E, eps: this.cfg.rms_norm_eps, weightDtype: fmt.dtype },
      rows,
      {
        x,
        w: this.params(base).weight,
        out,
      },
    );
    return out;
  }

  add(a: number, b: number, width: number, rows: SymVar, name: string): number {
    const out = this.b.temp(name, [rows, width]);
    this.b.node({ op: "add", width }, rows, { a, b, out });
    return out;
  }
}

/** One forward function (prefill, decode, batch_prefill, batch_decode): token ids → logits. */
export function buildForward(
  name: string,
  bounds: Record<SymVar, number>,
  cfg: ModelConfig,
  defs: WeightDef[],
): IrFunction {
  const b = new FunctionBuilder(name, bounds, DECODE_FUNCTIONS.has(name));
  const e = new Emitter(b, cfg, new Map(defs.map((d) => [d.base, d])));
  const { hidden_size: E, intermediate_size: I, head_dim: D, vocab_size: V } = cfg;
  const H = cfg.num_attention_heads, KV = cfg.num_key_value_heads;
  const QKV = (H + 2 * KV) * D;
  const invFreq = ropeInvFreq(cfg);
  const ids = b.input("input_ids", ["n"]); // [n]
  const paged = {
    positions: b.input("positions", ["n"]), // [n]
    tok_seq: b.input("tok_seq", ["n"]), // [n]
    page_indptr: b.input("page_indptr", ["s+1"]), // [s + 1]
    page_indices: b.input("page_indices", [bounds.s * pagesPerSequence(cfg)]), // [pages]
  };
  const lastIdx = b.input("last_idx", ["m"]); // [m]
  const kvShape = [2, KV, PAGE_SIZE, D]; // per page: [2, KV, PAGE_SIZE, D]

  const embedDef = defs[0];
  let h = b.temp("embed", ["n", E]); // [n, E]
  b.node(
    { op: "embed", vocab: V, hidden: E, rowStart: 0, rows: V, weight: embedDef.format },
    "n",
    { ids, ...e.params("model.embed_tokens"), out: h },
  );
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    const x = e.rmsNorm(h, `${p}.input_layernorm`, "n", `${p}.attn_in`); // [n, E]
    const qkv = e.linear(
      x,
      `${p}.self_attn.qkv_proj`,
      QKV,
      E,
      "n",
      `${p}.qkv`,
      cfg.qkv_bias ? `${p}.self_attn.qkv_proj.bias` : undefined,
    ); // [n, (H+2KV)D]
    const roped = b.temp(`${p}.qkv_rope`, ["n", QKV]); // [n, (H+2KV)D]
    b.node({ op: "rope", heads: H, kvHeads: KV, headDim: D, invFreq }, "n", {
      x: qkv,
      positions: paged.positions,
      out: roped,
    });
    const cache = b.kv(i, kvShape);
    b.node({ op: "kv_append", heads: H, kvHeads: KV, headDim: D }, "n", {
      qkv: roped,
      ...paged,
      cache,
    });
    const attn = b.temp(`${p}.attn`, ["n", H * D]); // [n, H*D]
    b.node(
      {
        op: "attention",
        heads: H,
        kvHeads: KV,
        headDim: D,
        qStride: QKV,
        window: cfg.sliding_window_size > 0 ? cfg.sliding_window_size : 0,
        scale: 1 / Math.sqrt(D),
        maxRows: b.bounds.n,
      },
      "n",
      { q: roped, ...paged, cache, out: attn },
    );
    const o = e.linear(attn, `${p}.self_attn.o_proj`, E, H * D, "n", `${p}.o`); // [n, E]
    h = e.add(h, o, E, "n", `${p}.h_attn`);
    const x2 = e.rmsNorm(h, `${p}.post_attention_layernorm`, "n", `${p}.mlp_in`); // [n, E]
    const gu = e.linear(x2, `${p}.mlp.gate_up_proj`, 2 * I, E, "n", `${p}.gate_up`); // [n, 2I]
    const act = b.temp(`${p}.act`, ["n", I]); // [n, I]
    b.node({ op: "silu_mul", inter: I }, "n", { x: gu, out: act });
    const down = e.linear(act, `${p}.mlp.down_proj`, E, I, "n", `${p}.down`); // [n, E]
    h = e.add(h, down, E, "n", `${p}.h_mlp`);
  }
  const normed = e.rmsNorm(h, "model.norm", "n", "final_norm"); // [n, E]
  const head = cfg.tie_word_embeddings ? "model.embed_tokens" : "lm_head";
  // A decode function's rows are each a sequence's last (last_idx is 0..n-1, m = n): its
  // logits come from every row, so that the final norm can fold into the matmuls around it
  // as a layer's norms do.
  if (b.rowPerSequence && bounds.n !== bounds.m) {
    throw new RangeError(`${name}: a decode function's n and m bounds must agree`);
  }
  const rows = b.rowPerSequence ? "n" : "m";
  let last = normed;
  if (!b.rowPerSequence) {
    last = b.temp("last_hidden", ["m", E]); // [m, E]
    b.node({ op: "take_rows", width: E }, "m", { x: normed, idx: lastIdx, out: last });
  }
  const logits = e.linear(last, head, V, E, rows, "logits"); // [m, V] (decode: [n, V])
  b.output(logits);
  return b.build();
}

/** `embed`: token ids → embeddings (the first step of prefill, exported on its own). */
export function buildEmbed(cfg: ModelConfig, defs: WeightDef[]): IrFunction {
  const b = new FunctionBuilder("embed", { n: cfg.prefill_chunk_size, s: 1, m: 1 });
  const ids = b.input("input_ids", ["n"]);
  const out = b.temp("embeddings", ["n", cfg.hidden_size]);
  const e = new Emitter(b, cfg, new Map(defs.map((d) => [d.base, d])));
  b.node(
    {
      op: "embed",
      vocab: cfg.vocab_size,
      hidden: cfg.hidden_size,
      rowStart: 0,
      rows: cfg.vocab_size,
      weight: defs[0].format,
    },
    "n",
    { ids, ...e.params("model.embed_tokens"), out },
  );
  b.output(out);
  return b.build();
}

/**
 * Penalty/bias entries (4 words each) the sampler takes per call: every distinct context token
 * of each row plus 512 biases, capped at 2^20 entries (16 MiB) for the whole batch.
 */
export const samplerEntries = (cfg: ModelConfig, rows: number): number =>
  Math.min(rows * (cfg.context_window_size + 512), 2 ** 20);

/** The top-p draw over probs [m, V] into the function's output tokens [m]: `top_p_hist`, the
 * candidates for the nucleus' edge it points at and the slices' masses (`top_p_gather`: both
 * spread over the row's slices), then `sample_top_p` from those (one workgroup a row reads a
 * row at ~30 GB/s on the H100: its passes over the row were most of its 94 us at V = 128256). */
function topPDraw(fb: FunctionBuilder, V: number, probs: number, p: number, u: number): void {
  const hist = fb.temp("hist", ["m", topPHistWords(V)], "u32");
  fb.node({ op: "top_p_hist", vocab: V }, "m", { probs, top_p: p, out: hist });
  const gathered = fb.temp("top_p_gathered", ["m", topPGatherWords(V)], "u32");
  const mass = fb.temp("top_p_mass", ["m", topPSlices(V)]);
  fb.node({ op: "top_p_gather", vocab: V }, "m", { probs, top_p: p, hist, out: gathered, mass });
  const out = fb.output(fb.temp("tokens", ["m"], "u32"));
  fb.node({ op: "sample_top_p", vocab: V }, "m", { probs, top_p: p, u, gathered, mass, out });
}

/** Elements a block of the split softmax (`softmax_stats`) reads, about. */
const SOFTMAX_BLOCK = 4096;

/** Blocks a row of V is spread over by the split softmax and argmax (< 2: one workgroup). */
const softmaxBlocks = (V: number) => Math.min(64, Math.floor(V / SOFTMAX_BLOCK));

/** softmax_temp of x [m, V] into out: split into `softmax_stats` over blocks and a
 * `softmax_temp` that combines them where the row spans two blocks or more (one workgroup
 * reads a row at ~30 GB/s on the H100: the unsplit kernel took 48 us at V = 128256, the two
 * take 8 + 8.5; blocks of 1024 or 2048 were within 2 us of that). */
function softmaxTemp(fb: FunctionBuilder, V: number, x: number, t: number, out: number): void {
  const blocks = softmaxBlocks(V);
  if (blocks < 2) {
    fb.node({ op: "softmax_temp", vocab: V }, "m", { x, temperature: t, out });
    return;
  }
  const stats = fb.temp("softmax_stats", ["m", blocks * 2]);
  const idx = fb.temp("softmax_idx", ["m", blocks], "u32");
  fb.node({ op: "softmax_stats", vocab: V, blocks }, "m", { x, temperature: t, stats, idx });
  fb.node({ op: "softmax_temp", vocab: V, blocks }, "m", {
    x,
    temperature: t,
    stats,
    stats_idx: idx,
    out,
  });
}

/** GPU sampling helpers over logits [m, V]. */
export function buildSampling(cfg: ModelConfig): IrFunction[] {
  const V = cfg.vocab_size, bounds = { n: 1, s: 1, m: cfg.max_batch_size };
  const argmax = new FunctionBuilder("sample_argmax", bounds);
  {
    const x = argmax.input("logits", ["m", V], "f32");
    const out = argmax.output(argmax.temp("tokens", ["m"], "u32"));
    // spread over the row's blocks as the softmax is, the last workgroup of a row combining
    // them (one workgroup reads a row at ~30 GB/s on the H100: 16 us at V = 128256)
    const blocks = softmaxBlocks(V);
    if (blocks < 2) argmax.node({ op: "argmax", vocab: V }, "m", { x, out });
    else {
      const part = argmax.temp("argmax_part", ["m", argmaxPartWords(blocks)], "u32");
      const counts = argmax.state("argmax_counts", [bounds.m]);
      argmax.node({ op: "argmax", vocab: V, blocks }, "m", { x, part, counts, out });
    }
  }
  const softmax = new FunctionBuilder("softmax_with_temperature", bounds);
  {
    const x = softmax.input("logits", ["m", V], "f32");
    const t = softmax.input("temperature", ["m"], "f32");
    const out = softmax.output(softmax.temp("probs", ["m", V]));
    softmaxTemp(softmax, V, x, t, out);
  }
  const topP = new FunctionBuilder("sample_top_p", bounds);
  {
    const probs = topP.input("probs", ["m", V], "f32");
    const p = topP.input("top_p", ["m"], "f32");
    const u = topP.input("uniform", ["m"], "f32");
    topPDraw(topP, V, probs, p, u);
  }
  // The engine's sampler: penalties / bias / top-k, temperature softmax, top-p draw.
  const sample = new FunctionBuilder("sample", bounds);
  {
    const x = sample.input("logits", ["m", V], "f32");
    const indptr = sample.input("indptr", ["m+1"]);
    const entries = sample.input("entries", [samplerEntries(cfg, bounds.m) * 4]);
    const params = sample.input("params", ["m", 4], "f32");
    const t = sample.input("temperature", ["m"], "f32");
    const p = sample.input("top_p", ["m"], "f32");
    const u = sample.input("uniform", ["m"], "f32");
    const processed = sample.temp("processed", ["m", V]);
    sample.node({ op: "logits_process", vocab: V }, "m", {
      x,
      indptr,
      entries,
      params,
      out: processed,
    });
    const probs = sample.temp("probs", ["m", V]);
    softmaxTemp(sample, V, processed, t, probs);
    topPDraw(sample, V, probs, p, u);
  }
  return [argmax.build(), softmax.build(), topP.build(), sample.build()];
}
