#!/usr/bin/env python3
"""Golden data for tests/io/fp8.cpp (dsk's FP8 decoding and DeepSeek-V3 block-scaled weights), made with torch.

Writes into tests/io/data/:
  fp8_cases.json          for every byte 0..255 torch's float8_e4m3fn and float8_e5m2 decodings (NaN as null,
                          infinities as "inf" / "-inf"), the versions used, and the expected f32 dequantization
                          of the block-scaled weight below
  st_fp8.safetensors      written by the `safetensors` library from torch tensors: every byte as an F8_E4M3 and
                          an F8_E5M2 tensor [16, 16]; a weight "w.weight" [5, 7] in F8_E4M3 with
                          "w.weight_scale_inv" [3, 3] (F32, blocks of 2 x 3) as DeepSeek-V3 checkpoints store
                          them, its dequantization computed by torch as weight.float() * scale (f32)

Nothing is downloaded. Run it in a virtual environment outside the repository:
  python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch safetensors numpy
  /tmp/venv/bin/python tools/gen_fp8_golden.py
"""
import json
import math
import os

import numpy as np
import safetensors
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "io", "data")


def as_json(x):
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def main():
    codes = torch.arange(256, dtype=torch.uint8)
    e4m3 = codes.clone().view(torch.float8_e4m3fn)
    e5m2 = codes.clone().view(torch.float8_e5m2)
    g = torch.Generator().manual_seed(7)
    w = (torch.randn(5, 7, generator=g) * 100).to(torch.float8_e4m3fn)
    scale = torch.rand(3, 3, generator=g) * 0.01 + 1e-4
    # Each element times its block's scale: row r -> r // 2, column c -> c // 3.
    expanded = scale.repeat_interleave(2, 0)[:5].repeat_interleave(3, 1)[:, :7]
    deq = w.float() * expanded
    save_file({"e4m3": e4m3.reshape(16, 16).contiguous(), "e5m2": e5m2.reshape(16, 16).contiguous(),
               "w.weight": w.contiguous(), "w.weight_scale_inv": scale.contiguous()},
              os.path.join(OUT, "st_fp8.safetensors"), metadata={"format": "pt"})
    cases = {
        "versions": {"torch": torch.__version__, "safetensors": safetensors.__version__, "numpy": np.__version__},
        "e4m3": [as_json(v) for v in e4m3.float().tolist()],
        "e5m2": [as_json(v) for v in e5m2.float().tolist()],
        "block": [2, 3],
        "dequantized": deq.tolist(),
    }
    with open(os.path.join(OUT, "fp8_cases.json"), "w") as f:
        json.dump(cases, f)
        f.write("\n")
    print("e4m3 max", e4m3.float().nan_to_num(0).abs().max().item(), "e5m2 max",
          e5m2.float()[~e5m2.float().isinf()].nan_to_num(0).abs().max().item())


if __name__ == "__main__":
    main()
