/**
 * An independent float64 reference forward pass of Hugging Face Llama-family models
 * (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM). It reads `config.json` and the
 * safetensors weights itself and follows HF's definitions literally:
 *
 *   x = embed_tokens[token]
 *   per layer: h = x + o_proj(attn(rms(x)));  x = h + down(silu(gate(rms(h))) * up(rms(h)))
 *   logits = lm_head(rms(x))   (lm_head = embed_tokens when tie_word_embeddings)
 *
 * RMSNorm is x * 1/sqrt(mean(x²) + eps) * w; RoPE pairs i with i + D/2 (rotate_half); scores
 * are q·k / sqrt(D) with a causal mask, and under a sliding window W key j is visible to query p
 * iff p - W < j <= p. Query head h reads KV head floor(h / (heads / kvHeads)).
 * Everything is float64; slow and simple on purpose.
 * @module
 */

import { openSafetensors, readTensorF32 } from "../../compiler/weights/safetensors.ts";
import { readHfConfig, type RefConfig } from "./hf_config.ts";
import { applyRope, ropeInvFreq } from "./rope_f64.ts";

/** Options of the reference. */
export interface ReferenceOptions {
  /** Replace any HF tensor by name (e.g. with de-quantized weights), row-major, HF shape. */
  weights?: Map<string, Float64Array>;
}

/** A loaded model: config, weights by HF name, RoPE frequencies. */
export interface RefModel {
  config: RefConfig;
  weights: Map<string, Float64Array>;
  invFreq: Float64Array; // [headDim / 2]
}

/** Per-layer K and V of every position seen so far. */
export interface RefKvCache {
  k: Float64Array[][]; // [layer][pos] → [kvHeads * headDim]
  v: Float64Array[][]; // [layer][pos] → [kvHeads * headDim]
}

/** Load config and all weights of `modelDir` as float64. */
export async function loadReferenceModel(
  modelDir: string,
  opts: ReferenceOptions = {},
): Promise<RefModel> {
  const config = await readHfConfig(modelDir);
  const index = await openSafetensors(modelDir);
  const { hiddenSize: H, intermediateSize: I, numHeads, numKvHeads, headDim: D } = config;
  const want = new Map<string, number[]>();
  want.set("model.embed_tokens.weight", [config.vocabSize, H]);
  want.set("model.norm.weight", [H]);
  if (!config.tieWordEmbeddings) want.set("lm_head.weight", [config.vocabSize, H]);
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}`;
    want.set(`${p}.input_layernorm.weight`, [H]);
    want.set(`${p}.post_attention_layernorm.weight`, [H]);
    want.set(`${p}.self_attn.q_proj.weight`, [numHeads * D, H]);
    want.set(`${p}.self_attn.k_proj.weight`, [numKvHeads * D, H]);
    want.set(`${p}.self_attn.v_proj.weight`, [numKvHeads * D, H]);
    want.set(`${p}.self_attn.o_proj.weight`, [H, numHeads * D]);
    if (config.qkvBias) {
      want.set(`${p}.self_attn.q_proj.bias`, [numHeads * D]);
      want.set(`${p}.self_attn.k_proj.bias`, [numKvHeads * D]);
      want.set(`${p}.self_attn.v_proj.bias`, [numKvHeads * D]);
    }
    if (config.oBias) want.set(`${p}.self_attn.o_proj.bias`, [H]);
    want.set(`${p}.mlp.gate_proj.weight`, [I, H]);
    want.set(`${p}.mlp.up_proj.weight`, [I, H]);
    want.set(`${p}.mlp.down_proj.weight`, [H, I]);
    if (config.mlpBias) {
      want.set(`${p}.mlp.gate_proj.bias`, [I]);
      want.set(`${p}.mlp.up_proj.bias`, [I]);
      want.set(`${p}.mlp.down_proj.bias`, [H]);
    }
  }
  for (const name of opts.weights?.keys() ?? []) {
    if (!want.has(name)) {
      throw new RangeError(
        `override "${name}" is not a tensor this model reads` +
          (name === "lm_head.weight" ? " (tie_word_embeddings: override embed_tokens)" : ""),
      );
    }
  }
  const weights = new Map<string, Float64Array>();
  for (const [name, shape] of want) {
    const numel = shape.reduce((a, b) => a * b, 1);
    const override = opts.weights?.get(name);
    if (override !== undefined) {
      if (override.length !== numel) {
        throw new RangeError(`override "${name}" has ${override.length} values, want [${shape}]`);
      }
      weights.set(name, override);
      continue;
    }
    const entry = index.byName.get(name);
    if (entry === undefined) throw new Error(`${modelDir}: tensor "${name}" is missing`);
    if (entry.shape.join() !== shape.join()) {
      throw new Error(`${modelDir}: tensor "${name}" has shape [${entry.shape}], want [${shape}]`);
    }
    weights.set(name, Float64Array.from(await readTensorF32(entry)));
  }
  const invFreq = ropeInvFreq(D, config.ropeTheta, config.ropeScaling);
  return { config, weights, invFreq };
}

/** An empty KV cache for `model`. */
export function newKvCache(model: RefModel): RefKvCache {
  const L = model.config.numLayers;
  return { k: Array.from({ length: L }, () => []), v: Array.from({ length: L }, () => []) };
}

/** Run `tokens` after the positions already in `cache`; returns logits [n, vocab]. */
export function forward(model: RefModel, tokens: number[], cache: RefKvCache): Float64Array {
  const c = model.config;
  const w = (name: string) => model.weights.get(name)!;
  const { hiddenSize: H, vocabSize: V } = c;
  const n = tokens.length;
  const start = cache.k[0]?.length ?? 0;
  const embed = w("model.embed_tokens.weight"); // [vocab, H]
  const xs: Float64Array[] = tokens.map((t) => { // [n][H]
    if (!Number.isInteger(t) || t < 0 || t >= V) throw new RangeError(`token ${t} out of range`);
    return embed.slice(t * H, (t + 1) * H);
  });
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    for (let i = 0; i < n; i++) {
      const pos = start + i;
      const a = rmsNorm(xs[i], w(`${p}.input_layernorm.weight`), c.rmsNormEps); // [H]
      const q = linear(
        a,
        w(`${p}.self_attn.q_proj.weight`),
        model.weights.get(`${p}.self_attn.q_proj.bias`),
      ); // [heads*D]
      const k = linear(
        a,
        w(`${p}.self_attn.k_proj.weight`),
        model.weights.get(`${p}.self_attn.k_proj.bias`),
      ); // [kvHeads*D]
      const v = linear(
        a,
        w(`${p}.self_attn.v_proj.weight`),
        model.weights.get(`${p}.self_attn.v_proj.bias`),
      ); // [kvHeads*D]
      applyRope(q, c.numHeads, pos, model.invFreq);
      applyRope(k, c.numKvHeads, pos, model.invFreq);
      cache.k[l].push(k);
      cache.v[l].push(v);
      const att = attention(q, cache.k[l], cache.v[l], pos, c, c.layerWindows[l]); // [heads*D]
      const o = linear(
        att,
        w(`${p}.self_attn.o_proj.weight`),
        model.weights.get(`${p}.self_attn.o_proj.bias`),
      ); // [H]
      const h = xs[i].map((x, j) => x + o[j]); // [H]
      const m = rmsNorm(h, w(`${p}.post_attention_layernorm.weight`), c.rmsNormEps); // [H]
      const g = linear(
        m,
        w(`${p}.mlp.gate_proj.weight`),
        model.weights.get(`${p}.mlp.gate_proj.bias`),
      ); // [I]
      const u = linear(m, w(`${p}.mlp.up_proj.weight`), model.weights.get(`${p}.mlp.up_proj.bias`)); // [I]
      const act = g.map((gj, j) => (gj / (1 + Math.exp(-gj))) * u[j]); // [I]
      const d = linear(
        act,
        w(`${p}.mlp.down_proj.weight`),
        model.weights.get(`${p}.mlp.down_proj.bias`),
      ); // [H]
      xs[i] = h.map((x, j) => x + d[j]);
    }
  }
  const head = c.tieWordEmbeddings ? embed : w("lm_head.weight"); // [vocab, H]
  const logits = new Float64Array(n * V); // [n, vocab]
  for (let i = 0; i < n; i++) {
    logits.set(linear(rmsNorm(xs[i], w("model.norm.weight"), c.rmsNormEps), head), i * V);
  }
  return logits;
}

/** Logits [n, vocab] of every position of `tokens`. */
export async function referenceLogits(
  modelDir: string,
  tokens: number[],
  opts: ReferenceOptions = {},
): Promise<Float64Array> {
  const model = await loadReferenceModel(modelDir, opts);
  return forward(model, tokens, newKvCache(model));
}

/** Greedy decoding: the `steps` tokens that follow `prompt` (argmax, lowest id on ties). */
export async function referenceGreedy(
  modelDir: string,
  prompt: number[],
  steps: number,
  opts: ReferenceOptions = {},
): Promise<number[]> {
  if (prompt.length === 0) throw new RangeError("referenceGreedy: prompt is empty");
  const model = await loadReferenceModel(modelDir, opts);
  const V = model.config.vocabSize;
  const cache = newKvCache(model);
  let logits = forward(model, prompt, cache);
  let last = logits.subarray((prompt.length - 1) * V);
  const out: number[] = [];
  for (let s = 0; s < steps; s++) {
    const next = argmax(last);
    out.push(next);
    if (s + 1 < steps) {
      logits = forward(model, [next], cache);
      last = logits;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pieces

/** x / sqrt(mean(x²) + eps) * w. */
export function rmsNorm(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const r = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((xi, i) => xi * r * w[i]);
}

/** y = W x (+ b) with W [out, in] row-major. */
export function linear(x: Float64Array, W: Float64Array, b?: Float64Array): Float64Array {
  const K = x.length, N = W.length / K;
  const y = new Float64Array(N); // [out]
  for (let r = 0; r < N; r++) {
    let s = 0;
    const o = r * K;
    for (let k = 0; k < K; k++) s += W[o + k] * x[k];
    y[r] = b === undefined ? s : s + b[r];
  }
  return y;
}

/** Causal (optionally sliding-window) GQA attention of one query at position `pos`. */
export function attention(
  q: Float64Array, // [heads * D]
  ks: Float64Array[], // [pos + 1][kvHeads * D]
  vs: Float64Array[], // [pos + 1][kvHeads * D]
  pos: number,
  c: Pick<RefConfig, "numHeads" | "numKvHeads" | "headDim">,
  window: number | null,
): Float64Array {
  const D = c.headDim, group = c.numHeads / c.numKvHeads;
  const first = window === null ? 0 : Math.max(0, pos - window + 1);
  const out = new Float64Array(c.numHeads * D); // [heads * D]
  const scale = 1 / Math.sqrt(D);
  for (let h = 0; h < c.numHeads; h++) {
    const kvOff = Math.floor(h / group) * D;
    const scores: number[] = [];
    for (let j = first; j <= pos; j++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += q[h * D + d] * ks[j][kvOff + d];
      scores.push(s * scale);
    }
    const mx = Math.max(...scores);
    const e = scores.map((s) => Math.exp(s - mx));
    const z = e.reduce((a, b) => a + b, 0);
    for (let j = first; j <= pos; j++) {
      const p = e[j - first] / z;
      for (let d = 0; d < D; d++) out[h * D + d] += p * vs[j][kvOff + d];
    }
  }
  return out;
}

/** Index of the largest value (the lowest index on ties, like torch.argmax). */
export function argmax(x: Float64Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}
