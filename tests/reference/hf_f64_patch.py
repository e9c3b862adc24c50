"""Make a Hugging Face Llama-family model compute truly in float64.

`AutoModelForCausalLM.from_pretrained(..., dtype=torch.float64)` still runs three steps in
float32 (transformers 5.17): the RoPE cos/sin table (float32 `inv_freq` buffer, float32 forward),
RMSNorm (upcasts to float32) and the eager attention softmax (`dtype=torch.float32`). That leaves
logits 1e-7 to 2e-7 x max|logit| away from an exact float64 forward pass. After
`make_float64(model)` and inside `float64_softmax()`, HF agrees with
tests/reference/llama_f64.ts to about 1e-15 x max|logit| (measured on the six golden models).

    from hf_f64_patch import make_float64, float64_softmax
    model = make_float64(AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager",
                                                              dtype=torch.float64))
    with float64_softmax(), torch.no_grad():
        logits = model(input_ids=ids).logits
"""
import contextlib
import json
import math
import os

import torch


def _inv_freq_f64(cfg):
    """RoPE inverse frequencies in float64: theta^(-2i/D), with llama3 / linear scaling."""
    d = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    theta = cfg.get("rope_theta", (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    inv = [1.0 / theta ** (2 * i / d) for i in range(d // 2)]
    rs = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind == "linear":
        inv = [f / rs["factor"] for f in inv]
    elif kind == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        out = []
        for f in inv:
            wavelen = 2 * math.pi / f
            if wavelen > old / lo:
                out.append(f / factor)
            elif wavelen < old / hi:
                out.append(f)
            else:
                s = (old / wavelen - lo) / (hi - lo)
                out.append((1 - s) * f / factor + s * f)
        inv = out
    elif kind != "default":
        raise ValueError(f"rope type {kind} is not handled by hf_f64_patch")
    return torch.tensor(inv, dtype=torch.float64)


def make_float64(model, model_dir=None):
    """Patch the rotary embedding and every RMSNorm of `model` (a float64 model) to float64."""
    if model_dir is None:
        model_dir = model.config._name_or_path
    with open(os.path.join(model_dir, "config.json")) as f:
        inv = _inv_freq_f64(json.load(f))

    def rope_forward(x, position_ids):
        freqs = (inv[None, :, None] * position_ids[:, None, :].to(torch.float64)).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

    model.model.rotary_emb.forward = rope_forward
    for mod in model.modules():
        if type(mod).__name__.endswith("RMSNorm"):
            def norm_forward(h, mod=mod):
                var = h.pow(2).mean(-1, keepdim=True)
                return mod.weight * (h * torch.rsqrt(var + mod.variance_epsilon))
            mod.forward = norm_forward
    return model


@contextlib.contextmanager
def float64_softmax():
    """Inside this block softmax ignores a requested dtype (eager attention asks for float32)."""
    original = torch.nn.functional.softmax
    torch.nn.functional.softmax = lambda x, dim=None, dtype=None, **kw: original(x, dim=dim, **kw)
    try:
        yield
    finally:
        torch.nn.functional.softmax = original
