#!/usr/bin/env python3
"""Golden logits of DeepSeek-Lite's int4 model (examples/lite/model.hpp), made with Hugging Face transformers'
DeepseekV2ForCausalLM on fake-quantized weights: an oracle independent of dsk's quantizer and kernels.

Reads the float Lite tiny of tools/gen_lite_golden.py (tests/models/data/lite_tiny: stored blocks in bf16, tied
head, share_repeats r) and quantizes it as dsk_lite_convert does by default, written out here in numpy:
  every 2-D weight except the router gates (mlp.gate.weight), one scale per output row:
    s   = f16(f32(max_k |w[n, k]|) / 7)          (abs-max, sym7; the scale is stored in f16)
    q   = clamp(round_half_even(f32(w / s)), -7, 7)   (0 where s == 0)
    w'  = f32(q * s)                               (what dsk's int4 products multiply by: exact in f32)
  norms and router gates: rounded to f16 (the Lite file stores them in f16).
transformers then runs with w' in float32, the stored block b copied into logical layers b*r .. b*r+r-1 and
the head tied to the (fake-quantized) embedding.

Writes tests/models/data/lite_tiny/golden_int4.json: versions, tokens, float32 logits [T, vocab] and the
12-token greedy continuations (full recompute each step) of TOKENS and of a second prompt, the smallest top-1 / top-2 margin over those steps,
and the number of codes of each value range (a check that the data exercises the clamp).

Nothing is downloaded. Run from a virtual environment with torch, transformers, safetensors, numpy:
  /work/venv/bin/python tools/gen_lite_int4_golden.py
"""
import json
import os
import sys

import numpy as np
import safetensors
import torch
import transformers
from safetensors.numpy import load_file
from transformers import DeepseekV2ForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_lite_golden as lite  # noqa: E402  (CFG, SHARE, TOKENS, GENERATE)
import gen_v2_golden as v2  # noqa: E402  (hf_config)

# A second prompt whose continuation does not settle on one token (the first one's repeats 88).
PROMPT2 = [0, 131, 7, 250, 64, 19]
DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "models", "data", "lite_tiny")


def bf16_to_f32(a):
    """safetensors.numpy gives BF16 as uint16 bit patterns on some versions; widen them exactly."""
    if a.dtype == np.uint16:
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def fake_quant_rows(w):
    w = w.astype(np.float32)
    amax = np.abs(w).max(axis=1).astype(np.float32)
    s = (amax / np.float32(7)).astype(np.float32).astype(np.float16).astype(np.float32)
    safe = np.where(s == 0, np.float32(1), s)
    q = np.clip(np.round((w / safe[:, None]).astype(np.float32)), -7, 7)
    q = np.where(s[:, None] == 0, 0, q).astype(np.float32)
    return (q * s[:, None]).astype(np.float32), q


def main():
    torch.set_num_threads(1)
    with open(os.path.join(DIR, "config.json")) as f:
        conf = json.load(f)
    r = conf["share_repeats"]
    cfg = lite.CFG
    L = cfg["num_hidden_layers"]
    stored = {}
    with safetensors.safe_open(os.path.join(DIR, "model.safetensors"), "pt") as f:
        for k in f.keys():
            stored[k] = f.get_tensor(k).to(torch.float32).numpy()
    codes = np.zeros(16, dtype=np.int64)
    fq = {}
    for name, w in stored.items():
        if w.ndim == 2 and not name.endswith("mlp.gate.weight"):
            fq[name], q = fake_quant_rows(w)
            codes += np.bincount((q + 8).astype(np.int64).ravel(), minlength=16)
        else:
            fq[name] = w.astype(np.float16).astype(np.float32)

    model = DeepseekV2ForCausalLM(v2.hf_config(cfg)).eval()
    inter = cfg["moe_intermediate_size"]
    sd = model.state_dict()
    new = {}
    for name in sd:
        if name == "lm_head.weight":
            continue  # tied
        src = name
        if name.startswith("model.layers."):
            i = int(name.split(".")[2])
            src = "model.layers." + str(i // r) + name[len("model.layers." + str(i)):]
        if src.endswith("mlp.experts.gate_up_proj"):
            pre = src[: -len("gate_up_proj")]
            E = sd[name].shape[0]
            new[name] = torch.from_numpy(np.stack(
                [np.concatenate([fq[f"{pre}{e}.gate_proj.weight"], fq[f"{pre}{e}.up_proj.weight"]]) for e in
                 range(E)]))
            assert new[name].shape[1] == 2 * inter
        elif src.endswith("mlp.experts.down_proj"):
            pre = src[: -len("down_proj")]
            E = sd[name].shape[0]
            new[name] = torch.from_numpy(np.stack([fq[f"{pre}{e}.down_proj.weight"] for e in range(E)]))
        else:
            new[name] = torch.from_numpy(fq[src])
        assert new[name].shape == sd[name].shape, name
    missing, unexpected = model.load_state_dict(new, strict=False)
    assert set(missing) <= {"lm_head.weight"} and not unexpected, (missing, unexpected)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "head not tied"

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([lite.TOKENS])).logits[0].to(torch.float32).numpy()
        margin = 1e9
        greedy = []
        for prompt in (lite.TOKENS, PROMPT2):
            seq = list(prompt)
            for _ in range(lite.GENERATE):
                last = model(input_ids=torch.tensor([seq])).logits[0, -1]
                top2 = torch.topk(last, 2).values
                margin = min(margin, float(top2[0] - top2[1]))
                seq.append(int(last.argmax()))
            greedy.append(seq[len(prompt):])
    golden = {
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "safetensors": safetensors.__version__, "numpy": np.__version__},
        "quantization": {"format": "int4", "range": "sym7", "group": 0, "scale_dtype": "f16", "method": "absmax"},
        "tokens": lite.TOKENS,
        "logits": [[float(f"{v:.7g}") for v in row] for row in logits.tolist()],
        "greedy": greedy[0],
        "prompt2": PROMPT2,
        "greedy2": greedy[1],
        "greedy_min_margin": margin,
        "code_histogram_-8_to_7": codes.tolist(),
    }
    with open(os.path.join(DIR, "golden_int4.json"), "w") as f:
        json.dump(golden, f)
        f.write("\n")
    print(f"lite_tiny int4: logits {logits.shape}, |max| {np.abs(logits).max():.3f}, greedy {golden['greedy']} / {golden['greedy2']}, "
          f"min margin {margin:.4f}, codes {codes.tolist()}")


if __name__ == "__main__":
    main()
