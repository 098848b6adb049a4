#!/usr/bin/env python3
"""Golden logits for DeepSeek-Lite's float form (examples/lite), made with Hugging Face transformers' own
DeepseekV2ForCausalLM, an implementation independent of dsk.

Lite is a V2-family decoder with immediate block-wise parameter sharing (stored block b runs as logical layers
b*r .. b*r + r - 1, r = "share_repeats" in config.json) and the output head tied to the embedding. transformers
has no sharing, so the oracle is a plain DeepseekV2ForCausalLM with num_hidden_layers = logical layers whose
repeated layers hold IDENTICAL weights (copied from one random block) and tie_word_embeddings = True. The
checkpoint written stores each block once, under model.layers.<b>.*, and no lm_head.weight.

Writes tests/models/data/lite_tiny/:
  config.json         DeepSeek's config format (as tools/gen_v2_golden.py) plus "share_repeats": r,
                      "tie_word_embeddings": true and num_hidden_layers = logical layers
  model.safetensors   bf16 weights of the stored blocks (per-expert mlp.experts.{e}.*_proj names)
  golden.json         tokens, float32 logits [T, vocab], versions, the attention scale, and the
                      greedy continuation of the prompt (12 tokens, argmax of transformers' logits)

The shapes are dsk_lite::tiny's (examples/lite/presets.hpp): vocab 256, hidden 32, 4 logical layers = 2 stored
blocks run twice, the first block dense, 8 routed + 1 shared expert (2 per token), MLA 16/8/8/8, YaRN.

Nothing is downloaded. Run from a virtual environment with torch, transformers, safetensors, numpy:
  /work/venv-torch/bin/python tools/gen_lite_golden.py
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
from transformers import DeepseekV2ForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_v2_golden as v2  # noqa: E402  (hf_config, checkpoint_tensors, YARN, BASE)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "models", "data")

SHARE = 2
CFG = dict(v2.BASE, vocab_size=256, hidden_size=32, intermediate_size=48, moe_intermediate_size=16,
           num_hidden_layers=4, n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2,
           first_k_dense_replace=2, q_lora_rank=None, topk_method="greedy", n_group=1, topk_group=1,
           routed_scaling_factor=1.0, rope_scaling=v2.YARN, tie_word_embeddings=True)

TOKENS = [0, 5, 17, 42, 9, 88, 63, 3, 27, 71, 12, 50, 94, 33, 200, 129]
GENERATE = 12


def main():
    torch.set_num_threads(1)
    torch.manual_seed(2026120213)
    cfg = CFG
    model = DeepseekV2ForCausalLM(v2.hf_config(cfg)).eval()
    layers = model.model.layers
    L = cfg["num_hidden_layers"]
    assert L % SHARE == 0 and cfg["first_k_dense_replace"] % SHARE == 0
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
        # Sharing: logical layer i holds stored block i // SHARE's weights (the first layer of each run).
        for i in range(L):
            if i % SHARE:
                layers[i].load_state_dict(layers[i - i % SHARE].state_dict())
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "head not tied"
    for i in range(L):  # the oracle really repeats the blocks
        for (na, a), (nb, b) in zip(layers[i].state_dict().items(), layers[i - i % SHARE].state_dict().items()):
            assert na == nb and torch.equal(a, b)
    attn = layers[0].self_attn
    m = 0.1 * v2.YARN["mscale_all_dim"] * math.log(v2.YARN["factor"]) + 1.0
    expected_scale = (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]) ** -0.5 * m * m
    if abs(attn.scaling - expected_scale) > 1e-9:
        sys.exit(f"transformers {transformers.__version__}: attention scale {attn.scaling} is not DeepSeek's "
                 f"{expected_scale} (mscale^2): use a version with PR #47435 or later")
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([TOKENS])).logits[0].to(torch.float32).numpy()
        seq = list(TOKENS)
        for _ in range(GENERATE):  # greedy, full recompute each step (no cache: the plainest oracle)
            nxt = int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax())
            seq.append(nxt)
    full = v2.checkpoint_tensors(model, cfg)
    stored = {}
    for name, t in full.items():
        if name == "lm_head.weight":
            continue  # tied: the embedding is the head
        if name.startswith("model.layers."):
            i = int(name.split(".")[2])
            if i % SHARE:
                continue
            name = "model.layers." + str(i // SHARE) + name[len("model.layers." + str(i)):]
        stored[name] = t.clone()
    d = os.path.join(OUT, "lite_tiny")
    os.makedirs(d, exist_ok=True)
    conf = {"architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "torch_dtype": "bfloat16"}
    conf.update({k: v for k, v in cfg.items() if k != "attention_bias"})
    conf["share_repeats"] = SHARE
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)
        f.write("\n")
    save_file(stored, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    golden = {
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "safetensors": safetensors.__version__, "numpy": np.__version__},
        "softmax_scale": attn.scaling,
        "tokens": TOKENS,
        "logits": [[float(f"{v:.7g}") for v in row] for row in logits.tolist()],
        "greedy": seq[len(TOKENS):],
    }
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(golden, f)
        f.write("\n")
    print(f"lite_tiny: {len(stored)} stored tensors ({L // SHARE} blocks x {SHARE}), logits {logits.shape}, "
          f"|max| {np.abs(logits).max():.3f}, std {logits.std():.3f}, greedy {golden['greedy']}")


if __name__ == "__main__":
    main()
