#!/usr/bin/env python3
"""Golden logits for tests/models (dsk's DeepSeek-V2 reference model in examples/v2), made with Hugging Face
transformers' own DeepseekV2ForCausalLM, an implementation independent of dsk.

For each case below it builds a tiny random DeepSeek-V2 model, rounds its weights to bf16 (so that the
checkpoint is small and dsk's bf16 path reads exactly the weights transformers used), runs a fixed token
sequence through it in float32, and writes into tests/models/data/<case>/:
  config.json         in DeepSeek's published format (rope_scaling, topk_method, ...), as a user downloads it
  model.safetensors   bf16 weights under DeepSeek's checkpoint names (per-expert mlp.experts.{e}.*_proj; this
                      transformers version fuses experts in memory, so they are split back here)
  golden.json         tokens, float32 logits [T, vocab], library versions, and the attention scale used

Cases cover a q_lora_rank model and null-q_lora_rank models, greedy and group_limited_greedy routing, YaRN with
mscale (factor 40, mscale = mscale_all_dim = 0.707, as released) and plain RoPE, and a dense first layer
(first_k_dense_replace = 1). MLA widths are the tiny ones dsk_v2 compiles (kv_lora_rank 16, rope 8, nope 8, v 8).

mscale: transformers >= the July 2026 change (PR #47435) multiplies the softmax scale by mscale(factor,
mscale_all_dim)^2 as DeepSeek's modeling_deepseek.py does; older versions do not. The script checks that the
installed version does (it compares the attention module's scaling with the formula) and refuses otherwise, so
the committed logits follow DeepSeek's convention, which is the one dsk implements.

Nothing is downloaded from a model hub. Run it in a virtual environment outside the repository:
  python3 -m venv /tmp/v2venv && /tmp/v2venv/bin/pip install torch transformers safetensors numpy
  /tmp/v2venv/bin/python tools/gen_v2_golden.py
Recorded versions: see "versions" in each golden.json (generated with transformers 5.24.0, torch 2.15.0).
"""
import json
import math
import os
import sys

import numpy as np
import safetensors
import torch
import transformers
from safetensors.torch import save_file
from transformers import DeepseekV2Config, DeepseekV2ForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "models", "data")

YARN = {"type": "yarn", "factor": 40, "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707,
        "original_max_position_embeddings": 4096}

BASE = dict(vocab_size=96, hidden_size=32, intermediate_size=48, moe_intermediate_size=16, num_hidden_layers=3,
            num_attention_heads=4, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8,
            n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, first_k_dense_replace=1, moe_layer_freq=1,
            rms_norm_eps=1e-6, rope_theta=10000.0, max_position_embeddings=163840, norm_topk_prob=False,
            scoring_func="softmax", aux_loss_alpha=0.001, seq_aux=True, hidden_act="silu", bos_token_id=0,
            eos_token_id=1, tie_word_embeddings=False, attention_bias=False)

CASES = {
    # V2's shape: query LoRA, group-limited routing with a routed scaling factor, YaRN with mscale.
    "v2_qlora_group": dict(q_lora_rank=24, topk_method="group_limited_greedy", n_group=4, topk_group=2,
                           routed_scaling_factor=2.5, rope_scaling=YARN),
    # V2-Lite's shape: no query LoRA, greedy routing, YaRN with mscale.
    "lite_greedy": dict(q_lora_rank=None, topk_method="greedy", n_group=1, topk_group=1, routed_scaling_factor=1.0,
                        rope_scaling=YARN),
    # The remaining combinations: query LoRA with greedy routing, and plain RoPE (no rope_scaling).
    "qlora_greedy_norope_scaling": dict(q_lora_rank=16, topk_method="greedy", n_group=1, topk_group=1,
                                        routed_scaling_factor=1.0, rope_scaling=None),
}

TOKENS = [0, 5, 17, 42, 9, 88, 63, 3, 27, 71, 12, 50, 94, 33]


def rope_parameters(cfg):
    """transformers v5's rope_parameters for a config in DeepSeek's format (rope_theta, rope_scaling or None)."""
    rope = {"rope_type": "default", "rope_theta": cfg["rope_theta"]}
    if cfg["rope_scaling"]:
        rope = {k: v for k, v in cfg["rope_scaling"].items() if k != "type"}
        rope.update(rope_type="yarn", rope_theta=cfg["rope_theta"])
    return rope


def rounded(logits):
    """Logits [T, V] as JSON rows of 7 significant digits."""
    return [[float(f"{v:.7g}") for v in row] for row in logits.tolist()]


def versions():
    return {"transformers": transformers.__version__, "torch": torch.__version__,
            "safetensors": safetensors.__version__, "numpy": np.__version__}


def hf_config(cfg):
    kw = {k: v for k, v in cfg.items() if k not in ("rope_scaling", "rope_theta", "scoring_func", "aux_loss_alpha",
                                                      "seq_aux", "moe_layer_freq")}
    return DeepseekV2Config(**kw, rope_parameters=rope_parameters(cfg))


def checkpoint_tensors(model, cfg):
    """State dict under DeepSeek's checkpoint names, bf16."""
    out = {}
    for name, t in model.state_dict().items():
        t = t.detach().to(torch.bfloat16).contiguous()
        if name.endswith("mlp.experts.gate_up_proj"):  # [E, 2 * inter, hidden]: gate rows, then up rows
            prefix = name[: -len("gate_up_proj")]
            inter = cfg["moe_intermediate_size"]
            for e in range(t.shape[0]):
                out[f"{prefix}{e}.gate_proj.weight"] = t[e, :inter].clone()
                out[f"{prefix}{e}.up_proj.weight"] = t[e, inter:].clone()
        elif name.endswith("mlp.experts.down_proj"):  # [E, hidden, inter]
            prefix = name[: -len("down_proj")]
            for e in range(t.shape[0]):
                out[f"{prefix}{e}.down_proj.weight"] = t[e].clone()
        else:
            out[name] = t
    return out


def make_case(name, overrides, seed):
    cfg = dict(BASE, **overrides)
    torch.manual_seed(seed)
    hf = hf_config(cfg)
    model = DeepseekV2ForCausalLM(hf).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:  # random norm weights around 1, so that a missing norm shows
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:  # std 0.15: large enough that attention and routing are far from uniform in these tiny widths
                p.copy_(0.15 * torch.randn_like(p))
            p.copy_(p.to(torch.bfloat16).to(torch.float32))  # the checkpoint holds bf16; compute from exactly it
    attn = model.model.layers[0].self_attn
    expected_scale = (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]) ** -0.5
    if cfg["rope_scaling"]:
        m = 0.1 * YARN["mscale_all_dim"] * math.log(YARN["factor"]) + 1.0
        expected_scale *= m * m
    if abs(attn.scaling - expected_scale) > 1e-9:
        sys.exit(f"transformers {transformers.__version__} uses attention scale {attn.scaling}, DeepSeek's "
                 f"convention gives {expected_scale} (mscale^2): use a version with PR #47435 (July 2026) or later")
    ids = torch.tensor([TOKENS])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].to(torch.float32).numpy()
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    conf = {"architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "torch_dtype": "bfloat16"}
    conf.update({k: v for k, v in cfg.items() if k != "attention_bias"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)
        f.write("\n")
    save_file(checkpoint_tensors(model, cfg), os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    golden = {
        "versions": versions(),
        "softmax_scale": attn.scaling,
        "tokens": TOKENS,
        "logits": rounded(logits),
    }
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(golden, f)
        f.write("\n")
    print(f"{name}: logits {logits.shape}, |logits| max {np.abs(logits).max():.3f}, std {logits.std():.3f}, "
          f"argmax {logits.argmax(-1).tolist()}")


def main():
    torch.set_num_threads(1)
    for i, (name, overrides) in enumerate(CASES.items()):
        make_case(name, overrides, 1000 + i)


if __name__ == "__main__":
    main()
