#!/usr/bin/env python3
"""Golden logits for tests/models/lora.cpp (dsk_v2 with a PEFT LoRA adapter, --lora and --lora-merge), made with the
`peft` package on Hugging Face transformers' DeepseekV2ForCausalLM / DeepseekV3ForCausalLM.

For each base case (a golden checkpoint of tools/gen_v2_golden.py / gen_v3_golden.py, loaded with from_pretrained)
it attaches a random rank-16 LoRA adapter (init_lora_weights=False: A and B both random, B scaled so that the
adapter moves the logits clearly but not wildly) to every attention projection (q_a/q_b or q_proj,
kv_a_proj_with_mqa, kv_b_proj, o_proj), saves it with save_pretrained, and writes into tests/models/data/<case>_lora/:
  adapter_config.json, adapter_model.safetensors   as peft saves them (f32)
  golden_lora.json    tokens; logits of the PeftModel (the adapter applied on the fly) and of merge_and_unload()
                      (merged into the f32 weights); versions; how far the adapter moves the logits

Cases: v2_qlora_group_lora (lora_alpha 32 / r 16) and v3_bf16_moonlight_lora (rsLoRA: lora_alpha / sqrt(r), with an
alpha_pattern giving o_proj its own alpha), so that both scale rules are exercised.

Nothing is downloaded. Run it in a virtual environment outside the repository:
  python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch transformers safetensors numpy peft
  /tmp/venv/bin/python tools/gen_lora_golden.py
Recorded versions: see "versions" in each golden_lora.json (generated with peft 0.21.2, transformers 5.24.0,
torch 2.15.0).
"""
import json
import os
import sys

import numpy as np
import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_v2_golden as v2  # noqa: E402  (rounded)

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "models", "data")
TARGETS = ["q_a_proj", "q_b_proj", "q_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"]

CASES = {
    "v2_qlora_group": dict(r=16, lora_alpha=32, use_rslora=False, alpha_pattern={}),
    "v3_bf16_moonlight": dict(r=16, lora_alpha=16, use_rslora=True, alpha_pattern={"o_proj": 8}),
}


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits[0].to(torch.float32).numpy()


def make_case(base, lora, seed):
    d = os.path.join(DATA, base)
    with open(os.path.join(d, "golden.json")) as f:
        tokens = json.load(f)["tokens"]
    ids = torch.tensor([tokens])
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    plain = logits_of(model, ids)
    torch.manual_seed(seed)
    cfg = LoraConfig(target_modules=TARGETS, init_lora_weights=False, lora_dropout=0.0, **lora)
    pm = get_peft_model(model, cfg).eval()
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.mul_(0.3)
    fused = logits_of(pm, ids)
    out = os.path.join(DATA, base + "_lora")
    pm.peft_config["default"].base_model_name_or_path = base  # not this machine's path
    pm.save_pretrained(out)
    os.chmod(os.path.join(out, "adapter_model.safetensors"), 0o644)
    merged_model = pm.merge_and_unload()
    merged = logits_of(merged_model, ids)
    golden = {
        "versions": {"peft": peft.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
        "tokens": tokens,
        "logits_fused": v2.rounded(fused),
        "logits_merged": v2.rounded(merged),
        "max_abs_change_from_adapter": float(np.abs(fused - plain).max()),
    }
    with open(os.path.join(out, "golden_lora.json"), "w") as f:
        json.dump(golden, f)
        f.write("\n")
    if os.path.exists(os.path.join(out, "README.md")):  # peft's model-card stub
        os.remove(os.path.join(out, "README.md"))
    print(f"{base}: adapter moves logits by {golden['max_abs_change_from_adapter']:.3g}; fused vs merged "
          f"{np.abs(fused - merged).max():.3g}")


def main():
    torch.set_num_threads(1)
    for i, (base, lora) in enumerate(CASES.items()):
        make_case(base, lora, 3000 + i)


if __name__ == "__main__":
    main()
