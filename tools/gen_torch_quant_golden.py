#!/usr/bin/env python3
"""Golden codes of PyTorch's per-channel quantization for tests/quant/torch_golden.cpp.

Writes tests/quant/data/torch_codes.bin: blocks of weights (many of them within a few ulp of a rounding tie),
the scales dsk stores for them (abs-max: f32(amax) / divisor in f32, rounded to the format's scale type), and
what torch computes with exactly those scales (as f32):
  codes   torch.fake_quantize_per_channel_affine(w, scales, zero_points=0, axis=0, quant_min, quant_max),
          divided back by the scale (checked exact); for int8 also torch.quantize_per_channel(qint8)'s int_repr
          clamped to [-127, 127], checked equal
  y       the fake-quantized output (f32 bits)
  mask    the straight-through gradient: autograd of sum(fake_quantize(w)) (1 where dsk's mask passes)
Formats with groups are handed to torch per channel on w reshaped to [rows * groups, group] (a group is a
channel of its own). "quantize" blocks use the abs-max scales (so quant::quantize can be checked against them);
"fake" blocks use scales that clip part of each channel (0.6 x abs-max on odd rows) and ties at the clipping
range's ends. One block holds only bf16-representable weights (the C++ test quantizes it from a bf16 view).

Nothing is downloaded at run time. Run it in a virtual environment outside the repository:
  python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install torch numpy
  /work/venv-torch/bin/python tools/gen_torch_quant_golden.py
The output is deterministic for a given torch version (printed; the file records it).

File layout (little endian):
  magic "DSKTQ001", u32 block count, u32 length of the torch version string, the string
  per block: u8 kind (0 quantize, 1 fake), u8 qtype (0 int8, 1 int4), u8 range (0 sym7, 1 full8),
             u8 scale type (0 f32, 1 f16, 2 bf16), u8 weights_bf16 (1: every weight is a bf16 value), 3 pad bytes,
             i32 group, i32 rows, i32 cols, i32 qmin, i32 qmax,
             f32 w[rows * cols], f32 scales[rows * groups], i8 codes[rows * cols], f32 y[rows * cols],
             u8 mask[rows * cols]
"""
import os
import struct
import sys

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "quant", "data", "torch_codes.bin")

F32 = np.float32


def divisor(qtype, rng):
    return F32(127.0) if qtype == 0 else (F32(8.0) if rng == 1 else F32(7.0))


def qrange(qtype, rng):
    if qtype == 0:
        return -127, 127
    return (-8, 7) if rng == 1 else (-7, 7)


def stored(s, scale_type):
    """Rounds f32 scales to the storage type (round to nearest even) and back to f32."""
    s = np.asarray(s, dtype=F32)
    if scale_type == 0:
        return s
    if scale_type == 1:
        return s.astype(np.float16).astype(F32)
    return torch.from_numpy(s.copy()).to(torch.bfloat16).to(torch.float32).numpy()


def to_bf16(a):
    return torch.from_numpy(np.asarray(a, dtype=F32).copy()).to(torch.bfloat16).to(torch.float32).numpy()


def near_ties(scale, lo, hi, rs, n):
    """n values around (j + 0.5) * scale for j in [lo, hi): the f32 product and its neighbours +-1, +-2 ulp."""
    out = np.empty(n, dtype=F32)
    for i in range(n):
        j = rs.randint(lo, hi)
        t = F32(F32(j + 0.5) * F32(scale))
        step = rs.randint(-2, 3)
        while step > 0:
            t = np.nextafter(t, F32(np.inf), dtype=F32)
            step -= 1
        while step < 0:
            t = np.nextafter(t, F32(-np.inf), dtype=F32)
            step += 1
        out[i] = t
    return out


def segment(kind_of_row, length, amax, qtype, rng, scale_type, rs, bf16_only):
    """One channel (or group) of `length` weights whose abs-max is exactly `amax` (at a random position)."""
    d = divisor(qtype, rng)
    s = stored(F32(amax) / d, scale_type)
    qlo, qhi = qrange(qtype, rng)
    if kind_of_row == 0 and not bf16_only:  # near ties inside the range (|w| < amax)
        v = near_ties(s, qlo, qhi - 1 if rng == 0 or qtype == 0 else qhi + 1, rs, length)
        v = np.clip(v, -F32(amax) * F32(0.999), F32(amax) * F32(0.999)).astype(F32)
    elif kind_of_row == 1 or bf16_only:  # bf16 weights ~ N(0, 0.02 amax)
        v = to_bf16(rs.normal(0.0, 0.3 * float(amax), length).astype(F32))
        v = np.clip(v, -F32(amax), F32(amax)).astype(F32)
    else:  # uniform f32
        v = rs.uniform(-float(amax), float(amax), length).astype(F32)
    v[rs.randint(0, length)] = F32(amax) * F32(rs.choice([-1.0, 1.0]))
    return v


def torch_fake(w2, s1, qmin, qmax):
    """torch fake quantization per channel (axis 0) of w2 [C, L] with f32 scales s1 [C]: (codes, y, mask)."""
    x = torch.from_numpy(w2.copy()).requires_grad_(True)
    sc = torch.from_numpy(s1.copy())
    zp = torch.zeros(sc.shape[0], dtype=torch.int32)
    y = torch.fake_quantize_per_channel_affine(x, sc, zp, 0, qmin, qmax)
    y.sum().backward()
    yn = y.detach().numpy().astype(F32)
    codes = np.rint(yn / s1[:, None]).astype(np.int64)
    assert np.array_equal((codes.astype(F32) * s1[:, None]).astype(F32), yn), "codes not recoverable"
    assert codes.min() >= qmin and codes.max() <= qmax
    mask = x.grad.numpy()
    assert set(np.unique(mask)).issubset({0.0, 1.0})
    if qmin == -127 and qmax == 127:  # the int8 quantizer agrees (its range is [-128, 127]; clamp after)
        qp = torch.quantize_per_channel(torch.from_numpy(w2.copy()), sc.double(),
                                        torch.zeros(sc.shape[0], dtype=torch.int64), 0, torch.qint8)
        assert np.array_equal(np.clip(qp.int_repr().numpy().astype(np.int64), -127, 127), codes)
    return codes.astype(np.int8), yn, mask.astype(np.uint8)


def make_block(kind, qtype, rng, scale_type, group, rows, cols, seed, bf16_only=False):
    rs = np.random.RandomState(seed)
    span = cols if group == 0 else group
    assert cols % span == 0
    groups = cols // span
    w = np.empty((rows, cols), dtype=F32)
    s = np.empty((rows, groups), dtype=F32)
    qmin, qmax = qrange(qtype, rng)
    for i in range(rows):
        for g in range(groups):
            amax = F32(rs.choice([rs.uniform(0.005, 0.05), rs.uniform(0.5, 3.0), 2.0 ** rs.randint(-6, 3)]))
            if bf16_only:
                amax = to_bf16(np.array([amax]))[0]
            w[i, g * span:(g + 1) * span] = segment(i % 3, span, amax, qtype, rng, scale_type, rs, bf16_only)
            s[i, g] = stored(F32(amax) / divisor(qtype, rng), scale_type)
    if kind == 1:  # clipping scales on odd rows, and ties around the range's ends under the used scale
        for i in range(rows):
            if i % 2:
                s[i] = stored((s[i] * F32(0.6)).astype(F32), scale_type)
            for g in range(groups):
                seg = w[i, g * span:(g + 1) * span]
                n = span // 4
                seg[:n] = near_ties(s[i, g], qmin - 2, qmax + 2, rs, n)
    # The abs-max of every quantize segment is what dsk derives its scale from: recheck.
    if kind == 0:
        am = np.abs(w.reshape(rows, groups, span)).max(axis=2).astype(F32)
        assert np.array_equal(stored(am / divisor(qtype, rng), scale_type), s)
    codes, y, mask = torch_fake(w.reshape(rows * groups, span), s.reshape(rows * groups), qmin, qmax)
    # How many codes the division convention (dsk's default) gets differently: the test's sensitivity.
    w2, s2 = w.reshape(rows * groups, span), s.reshape(rows * groups)[:, None]
    by_div = np.clip(np.rint((w2 / s2).astype(F32)), qmin, qmax).astype(np.int8)
    print(f"block kind {kind} qtype {qtype} range {rng} scale {scale_type} group {group} {rows}x{cols}: "
          f"{int((by_div != codes).sum())} codes differ under division", file=sys.stderr)
    head = struct.pack("<BBBBB3xiiiii", kind, qtype, rng, scale_type, 1 if bf16_only else 0, group, rows, cols,
                       qmin, qmax)
    return (head + w.tobytes() + s.tobytes() + codes.reshape(rows, cols).tobytes() + y.reshape(rows, cols).tobytes()
            + mask.reshape(rows, cols).tobytes()), int((codes.reshape(-1) != 0).sum())


def main():
    torch.manual_seed(0)
    blocks = [
        # kind, qtype, range, scale type, group, rows, cols
        (0, 0, 0, 0, 0, 12, 128),    # int8 per channel, f32 scales
        (0, 0, 0, 2, 64, 6, 128),    # int8 groups of 64, bf16 scales
        (0, 1, 0, 0, 0, 12, 128),    # int4 sym7 per channel, f32
        (0, 1, 0, 1, 32, 6, 128),    # int4 sym7 groups of 32, f16
        (0, 1, 1, 0, 0, 12, 128),    # int4 full8 per channel, f32
        (0, 1, 1, 1, 128, 6, 128),   # int4 full8 groups of 128, f16
        (1, 0, 0, 0, 0, 12, 128),    # fake quantization, int8 per channel
        (1, 1, 0, 0, 32, 6, 128),    # fake, int4 sym7 groups of 32
        (1, 1, 1, 1, 0, 12, 128),    # fake, int4 full8 per channel (f16-rounded scales)
    ]
    out = []
    for n, b in enumerate(blocks):
        data, _ = make_block(*b, seed=1000 + n)
        out.append(data)
    # bf16 weights only (typical LLM weight statistics), int8 per channel and int4 sym7 per channel.
    out.append(make_block(0, 0, 0, 0, 0, 8, 256, seed=2000, bf16_only=True)[0])
    out.append(make_block(0, 1, 0, 1, 0, 8, 256, seed=2001, bf16_only=True)[0])
    ver = torch.__version__.encode()
    blob = b"DSKTQ001" + struct.pack("<II", len(out), len(ver)) + ver + b"".join(out)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as f:
        f.write(blob)
    print(f"wrote {OUT}: {len(out)} blocks, {len(blob)} bytes, torch {torch.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
