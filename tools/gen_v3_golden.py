#!/usr/bin/env python3
"""Golden logits for tests/models/v3.cpp (dsk_v2::model on DeepSeek-V3-family checkpoints), made with Hugging Face
transformers' own DeepseekV3ForCausalLM, an implementation independent of dsk.

For each case below it builds a tiny random DeepSeek-V3 model (sigmoid router with e_score_correction_bias,
noaux_tc group selection, normalised weights times routed_scaling_factor), writes its checkpoint, runs a fixed
token sequence through transformers in float32, and writes into tests/models/data/<case>/:
  config.json         in DeepSeek-V3's published format (model_type deepseek_v3, topk_method noaux_tc, ...)
  model.safetensors   DeepSeek's checkpoint names (per-expert mlp.experts.{e}.*_proj)
  golden.json         tokens, float32 logits [T, vocab] (FP8: also logits_bf16_weights, the dequantized weights
                      rounded to bf16 as dsk holds them by default), versions, the softmax scale, and how far the logits move
                      when the correction bias is dropped and when q_a / kv_a_layernorm use config.rms_norm_eps
                      (so the test knows both rules are visible at its tolerance)

Cases:
  v3_fp8_group     query LoRA, 8 experts in 4 groups (2 kept), YaRN with mscale = mscale_all_dim = 1 as V3 ships,
                   and FP8: every projection of the layers (attention, dense MLP, experts) is stored as F8_E4M3 with
                   one F32 inverse scale per 16 x 16 block (weight_scale_inv; V3 uses 128 x 128, these widths are
                   too small for that), quantized here as DeepSeek does (scale = block amax / 448); transformers
                   runs on the dequantized weights (codes x scales in f32). It also carries a multi-token-prediction
                   layer (num_nextn_predict_layers = 1: tensors model.layers.3.*), which both sides skip.
  v3_bf16_moonlight  Moonlight-16B-A3B's shape: no query LoRA, one group, 3 of 8 experts, plain RoPE, bf16 weights,
                   and rms_norm_eps = 1e-2, which DeepSeek's code uses for every norm but q_a / kv_a_layernorm (1e-6).

Nothing is downloaded from a model hub. Run it in a virtual environment outside the repository:
  python3 -m venv /tmp/v3venv && /tmp/v3venv/bin/pip install torch transformers safetensors numpy
  /tmp/v3venv/bin/python tools/gen_v3_golden.py
Recorded versions: see "versions" in each golden.json (generated with transformers 5.24.0, torch 2.15.0).
"""
import json
import math
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_v2_golden as v2  # noqa: E402  (rope_parameters, rounded, versions, TOKENS)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "models", "data")

YARN = {"type": "yarn", "factor": 40, "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0,
        "original_max_position_embeddings": 4096}

BASE = dict(vocab_size=96, hidden_size=32, intermediate_size=48, moe_intermediate_size=16, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8,
            v_head_dim=8, n_routed_experts=8, n_shared_experts=1, first_k_dense_replace=1, moe_layer_freq=1,
            rope_theta=10000.0, max_position_embeddings=163840, norm_topk_prob=True, scoring_func="sigmoid",
            topk_method="noaux_tc", aux_loss_alpha=0.001, seq_aux=True, hidden_act="silu", bos_token_id=0,
            eos_token_id=1, tie_word_embeddings=False, attention_bias=False, num_nextn_predict_layers=0, ep_size=1)

CASES = {
    "v3_fp8_group": dict(q_lora_rank=24, num_experts_per_tok=2, n_group=4, topk_group=2, routed_scaling_factor=2.5,
                         rms_norm_eps=1e-6, rope_scaling=YARN, num_nextn_predict_layers=1,
                         fp8_block=[16, 16]),
    "v3_bf16_moonlight": dict(q_lora_rank=None, num_experts_per_tok=3, n_group=1, topk_group=1,
                              routed_scaling_factor=2.446, rms_norm_eps=1e-2, rope_scaling=None, rope_theta=50000.0,
                              fp8_block=None),
}

FP8_MAX = 448.0


def hf_config(cfg):
    skip = ("rope_scaling", "rope_theta", "scoring_func", "topk_method", "aux_loss_alpha", "seq_aux",
            "moe_layer_freq", "fp8_block", "num_nextn_predict_layers", "ep_size")
    kw = {k: v for k, v in cfg.items() if k not in skip}
    return DeepseekV3Config(**kw, rope_parameters=v2.rope_parameters(cfg))


def quantize_fp8(w, block):
    """DeepSeek's block quantization: per block scale = amax / 448, codes = w / scale in e4m3; returns the codes,
    the inverse scales [ceil(R / br), ceil(C / bc)] and the dequantized weight codes x scale (f32)."""
    br, bc = block
    R, C = w.shape
    nr, nc = -(-R // br), -(-C // bc)
    scale = torch.empty(nr, nc)
    for i in range(nr):
        for j in range(nc):
            amax = w[i * br:(i + 1) * br, j * bc:(j + 1) * bc].abs().max().clamp(min=1e-12)
            scale[i, j] = amax / FP8_MAX
    expanded = scale.repeat_interleave(br, 0)[:R].repeat_interleave(bc, 1)[:, :C]
    codes = (w / expanded).to(torch.float8_e4m3fn)
    return codes, scale, codes.float() * expanded


def checkpoint_tensors(model, cfg):
    """State dict under DeepSeek's checkpoint names: FP8 codes + scales for the projections when the case is FP8
    (the model's parameters are set to their dequantization), bf16 otherwise; the correction bias in f32."""
    out = {}
    block = cfg["fp8_block"]

    def put(name, t):
        if block and name.startswith("model.layers.") and name.endswith("_proj.weight"):
            codes, scale, deq = quantize_fp8(t.float(), block)
            out[name] = codes.contiguous()
            out[name + "_scale_inv"] = scale.contiguous()
            return deq
        if name.endswith("e_score_correction_bias"):
            out[name] = t.float().contiguous()
            return t.float()
        out[name] = t.to(torch.bfloat16).contiguous()
        return out[name].float()

    inter = cfg["moe_intermediate_size"]
    with torch.no_grad():
        sd = dict(model.state_dict())
        for name, t in sd.items():
            t = t.detach()
            if name.endswith("mlp.experts.gate_up_proj"):  # [E, 2 * inter, hidden]: gate rows, then up rows
                prefix = name[: -len("gate_up_proj")]
                for e in range(t.shape[0]):
                    t[e, :inter] = put(f"{prefix}{e}.gate_proj.weight", t[e, :inter].clone())
                    t[e, inter:] = put(f"{prefix}{e}.up_proj.weight", t[e, inter:].clone())
            elif name.endswith("mlp.experts.down_proj"):  # [E, hidden, inter]
                prefix = name[: -len("down_proj")]
                for e in range(t.shape[0]):
                    t[e] = put(f"{prefix}{e}.down_proj.weight", t[e].clone())
            else:
                t.copy_(put(name, t))
        model.load_state_dict(sd)  # the parameters now hold exactly what the checkpoint gives back
    if cfg["num_nextn_predict_layers"]:  # V3's MTP module as layer num_hidden_layers (skipped by both sides)
        L, D = cfg["num_hidden_layers"], cfg["hidden_size"]
        g = torch.Generator().manual_seed(5)
        out[f"model.layers.{L}.eh_proj.weight"] = torch.randn(D, 2 * D, generator=g).to(torch.bfloat16)
        out[f"model.layers.{L}.enorm.weight"] = torch.ones(D, dtype=torch.bfloat16)
        out[f"model.layers.{L}.hnorm.weight"] = torch.ones(D, dtype=torch.bfloat16)
        out[f"model.layers.{L}.shared_head.norm.weight"] = torch.ones(D, dtype=torch.bfloat16)
    return out


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits[0].to(torch.float32).numpy()


def make_case(name, cfg_over, seed):
    cfg = dict(BASE, **cfg_over)
    torch.manual_seed(seed)
    model = DeepseekV3ForCausalLM(hf_config(cfg)).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
        for layer in model.model.layers:  # the selection bias, large enough to change choices
            if hasattr(layer.mlp, "gate"):
                layer.mlp.gate.e_score_correction_bias.copy_(0.1 * torch.randn(cfg["n_routed_experts"]))
    tensors = checkpoint_tensors(model, cfg)
    attn = model.model.layers[0].self_attn
    expected_scale = (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]) ** -0.5
    if cfg["rope_scaling"]:
        m = 0.1 * cfg["rope_scaling"]["mscale_all_dim"] * math.log(cfg["rope_scaling"]["factor"]) + 1.0
        expected_scale *= m * m
    assert abs(attn.scaling - expected_scale) < 1e-9, (attn.scaling, expected_scale)
    ids = torch.tensor([v2.TOKENS])
    logits = logits_of(model, ids)

    # dsk's default for an FP8 checkpoint holds each dequantized weight rounded to bf16: the same model in torch.
    logits_bf16 = None
    if cfg["fp8_block"]:
        with torch.no_grad():
            backup = {n: p.detach().clone() for n, p in model.named_parameters()}
            for n, p in model.named_parameters():
                p.copy_(p.to(torch.bfloat16).float())
            logits_bf16 = logits_of(model, ids)
            for n, p in model.named_parameters():
                p.copy_(backup[n])

    # How visible the two V3 rules are: drop the correction bias; use config.rms_norm_eps in the latent norms.
    saved = [layer.mlp.gate.e_score_correction_bias.clone() for layer in model.model.layers if hasattr(layer.mlp, "gate")]
    with torch.no_grad():
        for layer in model.model.layers:
            if hasattr(layer.mlp, "gate"):
                layer.mlp.gate.e_score_correction_bias.zero_()
    no_bias = float(np.abs(logits_of(model, ids) - logits).max())
    with torch.no_grad():
        for layer, b in zip([l for l in model.model.layers if hasattr(l.mlp, "gate")], saved):
            layer.mlp.gate.e_score_correction_bias.copy_(b)
    for layer in model.model.layers:
        for norm in (getattr(layer.self_attn, "q_a_layernorm", None), layer.self_attn.kv_a_layernorm):
            if norm is not None:
                norm.variance_epsilon = cfg["rms_norm_eps"]
    config_eps = float(np.abs(logits_of(model, ids) - logits).max())

    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    conf = {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "torch_dtype": "bfloat16"}
    conf.update({k: v for k, v in cfg.items() if k not in ("attention_bias", "fp8_block")})
    if cfg["fp8_block"]:
        conf["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                       "weight_block_size": cfg["fp8_block"]}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)
        f.write("\n")
    save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    golden = {
        "versions": v2.versions(),
        "softmax_scale": attn.scaling,
        "tokens": v2.TOKENS,
        "logits": v2.rounded(logits),
        "max_abs_change_without_bias": no_bias,
        **({"logits_bf16_weights": v2.rounded(logits_bf16)} if logits_bf16 is not None else {}),
        "max_abs_change_with_config_eps_in_latent_norms": config_eps,
    }
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(golden, f)
        f.write("\n")
    print(f"{name}: logits {logits.shape}, |logits| max {np.abs(logits).max():.3f}, argmax "
          f"{logits.argmax(-1).tolist()}; without bias the logits move {no_bias:.3g}, with config eps in the latent "
          f"norms {config_eps:.3g}")


def main():
    torch.set_num_threads(1)
    for i, (name, over) in enumerate(CASES.items()):
        make_case(name, over, 2000 + i)


if __name__ == "__main__":
    main()
