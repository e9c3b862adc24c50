import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { writeSafetensors } from "../../compiler/weights/safetensors_write.ts";
import {
  argmax,
  attention,
  linear,
  referenceGreedy,
  referenceLogits,
  rmsNorm,
} from "./llama_f64.ts";

const close = (a: number, b: number, tol = 1e-12) =>
  ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

/** Write a tiny HF model (F32) from plain arrays; returns its folder. */
async function tinyModel(
  config: Record<string, unknown>,
  tensors: Record<string, { shape: number[]; data: number[] }>,
): Promise<string> {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config));
  await writeSafetensors(
    `${dir}/model.safetensors`,
    Object.entries(tensors).map(([name, t]) => ({
      name,
      dtype: "F32" as const,
      shape: t.shape,
      data: new Uint8Array(new Float32Array(t.data).buffer),
    })),
  );
  return dir;
}

const zeros = (n: number) => new Array(n).fill(0);
const BASE = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 4,
  intermediate_size: 2,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  head_dim: 2,
  vocab_size: 3,
  rms_norm_eps: 0,
  rope_theta: 10000,
  tie_word_embeddings: true,
};
const EMBED = [1, 2, 0, -2, 0.5, 0.5, -1, 1, -3, 1, 1, 1]; // [3, 4]
const NORM = [1, 0.5, 2, 1];

/** Hand-written: rmsnorm with eps 0. */
function hand_rms(x: number[], w: number[]) {
  const r = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
  return x.map((v, i) => v * r * w[i]);
}
const row = (m: number[], r: number, k: number) => m.slice(r * k, (r + 1) * k);
const dot = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i], 0);

Deno.test("rmsNorm(), linear() and argmax() match hand-computed values", () => {
  const y = rmsNorm(new Float64Array([1, 2, 3, 4]), new Float64Array([1, 1, 2, 1]), 0);
  const r = 1 / Math.sqrt(7.5);
  [r, 2 * r, 6 * r, 4 * r].forEach((v, i) => close(y[i], v));
  const z = linear(
    new Float64Array([1, 2]),
    new Float64Array([1, 0, 3, -1, 0.5, 0.5]),
    new Float64Array([0, 1, 2]),
  );
  assertEquals([...z], [1, 2, 3.5]);
  assertEquals(argmax(new Float64Array([1, 5, 5, 2])), 1);
});

Deno.test("attention() scales by 1/sqrt(D), shares KV heads and honours the window", () => {
  // D = 2, 2 query heads over 1 KV head; keys at positions 0..2.
  const ks = [[1, 0], [0, 1], [1, 1]].map((k) => new Float64Array(k));
  const vs = [[1, 0], [0, 1], [5, 5]].map((v) => new Float64Array(v));
  const q = new Float64Array([2, 0, 0, 0]); // head 0 prefers key 0 and 2, head 1 is uniform
  const cfg = { numHeads: 2, numKvHeads: 1, headDim: 2 };
  const out = attention(q, ks, vs, 1, cfg, null); // query at position 1 sees keys 0, 1
  const e0 = Math.exp(2 / Math.sqrt(2)), e1 = 1;
  close(out[0], e0 / (e0 + e1));
  close(out[1], e1 / (e0 + e1));
  close(out[2], 0.5);
  close(out[3], 0.5);
  // Window 2 at position 2: keys 1 and 2 only (2 - 2 < j <= 2).
  const w = attention(q, ks, vs, 2, cfg, 2);
  const s1 = 0, s2 = 2 / Math.sqrt(2);
  const p2 = Math.exp(s2) / (Math.exp(s1) + Math.exp(s2));
  close(w[0], 5 * p2);
  close(w[1], (1 - p2) + 5 * p2);
});

Deno.test("referenceLogits() follows the residual path, GQA and causal averaging by hand", async () => {
  // q = k = 0 → uniform attention over visible keys; down_proj = 0 → the MLP adds nothing.
  const WV = [1, 0, 0.5, 0, 0, 1, 0, -1]; // [2, 4]
  const WO = [1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 2]; // [4, 4]
  const LN1 = [1, 2, 1, 0.5];
  const tensors = {
    "model.embed_tokens.weight": { shape: [3, 4], data: EMBED },
    "model.norm.weight": { shape: [4], data: NORM },
    "model.layers.0.input_layernorm.weight": { shape: [4], data: LN1 },
    "model.layers.0.post_attention_layernorm.weight": { shape: [4], data: [1, 1, 1, 1] },
    "model.layers.0.self_attn.q_proj.weight": { shape: [4, 4], data: zeros(16) },
    "model.layers.0.self_attn.k_proj.weight": { shape: [2, 4], data: zeros(8) },
    "model.layers.0.self_attn.v_proj.weight": { shape: [2, 4], data: WV },
    "model.layers.0.self_attn.o_proj.weight": { shape: [4, 4], data: WO },
    "model.layers.0.mlp.gate_proj.weight": { shape: [2, 4], data: [1, 1, 1, 1, 0, 1, 0, 1] },
    "model.layers.0.mlp.up_proj.weight": { shape: [2, 4], data: [1, 0, 0, 1, 1, 1, 0, 0] },
    "model.layers.0.mlp.down_proj.weight": { shape: [4, 2], data: zeros(8) },
  };
  const tokens = [2, 0, 1];
  const expected = (window: number | null) => {
    const v = tokens.map((t) => { // [n][2]
      const a = hand_rms(row(EMBED, t, 4), LN1);
      return [dot(row(WV, 0, 4), a), dot(row(WV, 1, 4), a)];
    });
    return tokens.flatMap((t, p) => {
      const lo = window === null ? 0 : Math.max(0, p - window + 1);
      const seen = v.slice(lo, p + 1);
      const m = [0, 1].map((d) => seen.reduce((s, x) => s + x[d], 0) / seen.length);
      const att = [...m, ...m]; // both query heads read the one KV head
      const h = row(EMBED, t, 4).map((x, i) => x + dot(row(WO, i, 4), att));
      const f = hand_rms(h, NORM);
      return [0, 1, 2].map((r) => dot(row(EMBED, r, 4), f)); // tied lm_head
    });
  };
  const dir = await tinyModel(BASE, tensors);
  const got = await referenceLogits(dir, tokens);
  expected(null).forEach((v, i) => close(got[i], v));
  // Mistral with a 2-token window: position 2 averages positions 1 and 2 only.
  const mdir = await tinyModel({
    ...BASE,
    architectures: ["MistralForCausalLM"],
    model_type: "mistral",
    sliding_window: 2,
  }, tensors);
  const gotM = await referenceLogits(mdir, tokens);
  expected(2).forEach((v, i) => close(gotM[i], v));
  ok(Math.abs(gotM[8] - got[8]) > 1e-3, "the window must change the last position");
});

Deno.test("referenceLogits() computes the SiLU-gated MLP, untied head and qwen2 biases by hand", async () => {
  const WG = [1, -1, 0, 0.5, 0, 1, 2, 0]; // [2, 4]
  const WU = [0.5, 0, 1, 0, 1, 1, 0, -1]; // [2, 4]
  const WD = [1, 0, 0, 1, 2, 0, 0, -1]; // [4, 2]
  const LN2 = [1, 0.5, 1, 2];
  const HEAD = [0, 1, 0, 0, 1, 0, 0, 1, 0.5, 0.5, 0.5, 0.5]; // [3, 4]
  const VB = [0.25, -0.5];
  const dir = await tinyModel({
    ...BASE,
    architectures: ["Qwen2ForCausalLM"],
    model_type: "qwen2",
    tie_word_embeddings: false,
  }, {
    "model.embed_tokens.weight": { shape: [3, 4], data: EMBED },
    "lm_head.weight": { shape: [3, 4], data: HEAD },
    "model.norm.weight": { shape: [4], data: NORM },
    "model.layers.0.input_layernorm.weight": { shape: [4], data: [1, 1, 1, 1] },
    "model.layers.0.post_attention_layernorm.weight": { shape: [4], data: LN2 },
    "model.layers.0.self_attn.q_proj.weight": { shape: [4, 4], data: zeros(16) },
    "model.layers.0.self_attn.k_proj.weight": { shape: [2, 4], data: zeros(8) },
    "model.layers.0.self_attn.v_proj.weight": { shape: [2, 4], data: zeros(8) },
    "model.layers.0.self_attn.q_proj.bias": { shape: [4], data: [1, 2, 3, 4] },
    "model.layers.0.self_attn.k_proj.bias": { shape: [2], data: [1, -1] },
    "model.layers.0.self_attn.v_proj.bias": { shape: [2], data: VB },
    "model.layers.0.self_attn.o_proj.weight": { shape: [4, 4], data: [...zeros(15), 1] },
    "model.layers.0.mlp.gate_proj.weight": { shape: [2, 4], data: WG },
    "model.layers.0.mlp.up_proj.weight": { shape: [2, 4], data: WU },
    "model.layers.0.mlp.down_proj.weight": { shape: [4, 2], data: WD },
  });
  const tokens = [1, 2];
  const got = await referenceLogits(dir, tokens);
  // Every v equals the bias, so attention returns it whatever the scores; o_proj keeps the
  // last element of head 1's output: VB[1].
  const silu = (x: number) => x / (1 + Math.exp(-x));
  const want = tokens.flatMap((t) => {
    const h = row(EMBED, t, 4).map((x, i) => (i === 3 ? x + VB[1] : x));
    const m = hand_rms(h, LN2);
    const act = [0, 1].map((j) => silu(dot(row(WG, j, 4), m)) * dot(row(WU, j, 4), m));
    const out = h.map((x, i) => x + dot(row(WD, i, 2), act));
    const f = hand_rms(out, NORM);
    return [0, 1, 2].map((r) => dot(row(HEAD, r, 4), f));
  });
  want.forEach((v, i) => close(got[i], v));
});

Deno.test("referenceGreedy() with its KV cache agrees with full recomputation", async () => {
  let s = 42;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const arr = (n: number) => Array.from({ length: n }, rnd);
  const cfg = { ...BASE, vocab_size: 11, num_hidden_layers: 2, rms_norm_eps: 1e-5 };
  const t: Record<string, { shape: number[]; data: number[] }> = {
    "model.embed_tokens.weight": { shape: [11, 4], data: arr(44) },
    "model.norm.weight": { shape: [4], data: arr(4) },
  };
  for (let l = 0; l < 2; l++) {
    const p = `model.layers.${l}`;
    t[`${p}.input_layernorm.weight`] = { shape: [4], data: arr(4) };
    t[`${p}.post_attention_layernorm.weight`] = { shape: [4], data: arr(4) };
    t[`${p}.self_attn.q_proj.weight`] = { shape: [4, 4], data: arr(16) };
    t[`${p}.self_attn.k_proj.weight`] = { shape: [2, 4], data: arr(8) };
    t[`${p}.self_attn.v_proj.weight`] = { shape: [2, 4], data: arr(8) };
    t[`${p}.self_attn.o_proj.weight`] = { shape: [4, 4], data: arr(16) };
    t[`${p}.mlp.gate_proj.weight`] = { shape: [2, 4], data: arr(8) };
    t[`${p}.mlp.up_proj.weight`] = { shape: [2, 4], data: arr(8) };
    t[`${p}.mlp.down_proj.weight`] = { shape: [4, 2], data: arr(8) };
  }
  const dir = await tinyModel(cfg, t);
  const prompt = [3, 7, 1];
  const greedy = await referenceGreedy(dir, prompt, 5);
  const seq = [...prompt];
  for (let i = 0; i < 5; i++) {
    const logits = await referenceLogits(dir, seq);
    seq.push(argmax(logits.subarray((seq.length - 1) * 11)));
  }
  assertEquals(greedy, seq.slice(3));
  // Overriding a weight with its own values changes nothing; with other values it does.
  const base = await referenceLogits(dir, prompt);
  const same = new Map([[
    "model.norm.weight",
    Float64Array.from(new Float32Array(t["model.norm.weight"].data)),
  ]]);
  assertEquals([...await referenceLogits(dir, prompt, { weights: same })], [...base]);
  const other = new Map([["model.norm.weight", new Float64Array([1, 1, 1, 1])]]);
  ok((await referenceLogits(dir, prompt, { weights: other })).some((v, i) => v !== base[i]));
  // An override the model does not read (a typo, or lm_head of a tied model) is refused.
  await rejects(
    referenceLogits(dir, prompt, { weights: new Map([["lm_head.weight", new Float64Array(44)]]) }),
    RangeError,
  );
});
