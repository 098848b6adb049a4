#!/usr/bin/env python3
"""Golden data of the DeepSeek-V1 reference model (examples/v1) on its tiny preset, computed in float64 with
numpy from the architecture's formulas (docs/models.md, V1) -- independently of dsk's kernels: explicit masks
over full score matrices, NSA's compressed / selected / window branches written from the paper (arXiv
2502.11089) and from the bidirectional rules of attention::nsa (causal = false).

The weights are the ones dsk_v1::model::random(tiny, seed) builds: element i of tensor NAME is
(r - 2^23) * 2^(e - 23), r the top 24 bits of splitmix64 keyed by FNV-1a(NAME) ^ seed (exact in float32).

Writes tests/models/data/v1_tiny/golden.json: the source and decoder prompt ids, rows of the encoder output,
rows of the decoder prefill logits, and greedy tokens with the logits of each decoded step. Every block
choice that importance decides, and every greedy argmax, is checked to have a margin (the script fails
otherwise: a near tie would make the float32 comparison meaningless).

Needs numpy only:  python3 tools/gen_v1_golden.py [--out DIR]
"""
import argparse
import json
import math
import os

import numpy as np

M64 = (1 << 64) - 1

# examples/v1/presets.hpp: tiny
P = dict(vocab=512, d=64, inter=128, enc_layers=2, dec_layers=2, H=4, Hkv=2, dh=16, cmp_block=8, cmp_stride=4,
         sel_block=16, sel_count=5, init_blocks=1, local_blocks=2, window=16, theta=10000.0, eps=1e-6)
SEED = 20261203
MARGIN = 1e-3  # relative margin required of importance-decided block choices and greedy argmaxes


def fnv1a(name):
    h = 0xcbf29ce484222325
    for ch in name.encode():
        h = ((h ^ ch) * 0x100000001b3) & M64
    return h


def weights(name, shape, e=-5):
    key = fnv1a(name) ^ SEED
    n = int(np.prod(shape))
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(key) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    r = (z >> np.uint64(40)).astype(np.int64) - (1 << 23)
    return (r.astype(np.float64) * 2.0 ** (e - 23)).reshape(shape)


def rmsnorm(x, w):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + P["eps"]) * w


def rope(x, pos):  # x [T, heads, dh], half-split pairs (i, i + dh/2)
    dh = x.shape[-1]
    half = dh // 2
    inv = P["theta"] ** (-2.0 * np.arange(half) / dh)
    ang = np.asarray(pos, dtype=np.float64)[:, None] * inv[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)


def softmax_masked(s, mask):  # rows with no visible key give 0
    s = np.where(mask, s, -np.inf)
    mx = np.max(s, axis=-1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    e = np.where(mask, np.exp(s - mx), 0.0)
    den = e.sum(axis=-1, keepdims=True)
    return np.where(den > 0, e / np.where(den > 0, den, 1.0), 0.0)


def choose(imp, count, forced, what):
    """Forced blocks, then the most important of the rest (ties: lower index) up to sel_count; checks the
    margin between the last block taken by importance and the first left out."""
    chosen = [b for b in range(count) if forced(b)]
    rest = sorted([b for b in range(count) if not forced(b)], key=lambda b: (-imp[b], b))
    room = P["sel_count"] - len(chosen)
    if 0 < room < len(rest):
        a, b = imp[rest[room - 1]], imp[rest[room]]
        assert a - b > MARGIN * max(abs(a), 1e-30), f"near tie in the block choice of {what}: {a} vs {b}"
    return sorted(chosen + rest[:max(room, 0)])


def nsa(q, k, v, g, causal, what):
    """q [T, H, dh], k / v [T, Hkv, dh], g [T, H, 3] -> o [T, H, dh]. Mean pooling."""
    T, H, D = q.shape
    Hkv = k.shape[1]
    G = H // Hkv
    l, dc, ls = P["cmp_block"], P["cmp_stride"], P["sel_block"]
    scale = 1.0 / math.sqrt(D)
    if causal:
        nc = (T - l) // dc + 1 if T >= l else 0
        spans = [(i * dc, i * dc + l) for i in range(nc)]
    else:
        nc = 0 if T == 0 else (1 if T <= l else (T - l + dc - 1) // dc + 1)
        spans = [(i * dc, min(i * dc + l, T)) for i in range(nc)]
    kc = np.array([k[a:b].mean(axis=0) for a, b in spans]).reshape(nc, Hkv, D)
    vc = np.array([v[a:b].mean(axis=0) for a, b in spans]).reshape(nc, Hkv, D)
    t_idx = np.arange(T)
    o = np.zeros((T, H, D))
    NB = (T + ls - 1) // ls
    for kvh in range(Hkv):
        heads = range(kvh * G, (kvh + 1) * G)
        # compressed branch: block i visible to query t when causal and it ends at or before t
        cmask = np.ones((T, nc), bool) if not causal else \
            np.array([[spans[i][1] - 1 <= t for i in range(nc)] for t in range(T)]).reshape(T, nc)
        pc = {h: softmax_masked(scale * q[:, h] @ kc[:, kvh].T, cmask) for h in heads}
        # block -> selection block overlap
        ov = np.array([[a < (b + 1) * ls and b * ls < e for b in range(NB)] for a, e in spans]).reshape(nc, NB)
        sel_mask = np.zeros((T, T), bool)
        if causal:
            for t in range(T):
                imp = sum(pc[h][t] for h in heads) @ ov
                last = t // ls
                ch = choose(imp[:last + 1], last + 1,
                            lambda b: b < P["init_blocks"] or b > last - P["local_blocks"], f"{what} t={t}")
                for b in ch:
                    sel_mask[t, b * ls:min((b + 1) * ls, t + 1)] = True
            win_mask = (t_idx[None, :] <= t_idx[:, None]) & (t_idx[None, :] > t_idx[:, None] - P["window"])
        else:
            for qb in range(NB):
                rows = slice(qb * ls, min((qb + 1) * ls, T))
                imp = sum(pc[h][rows].sum(axis=0) for h in heads) @ ov
                ch = choose(imp, NB, lambda b: b < P["init_blocks"] or abs(b - qb) < P["local_blocks"],
                            f"{what} qb={qb}")
                for b in ch:
                    sel_mask[rows, b * ls:(b + 1) * ls] = True
            win_mask = np.abs(t_idx[None, :] - t_idx[:, None]) <= P["window"]
        for h in heads:
            s = scale * q[:, h] @ k[:, kvh].T
            o_cmp = pc[h] @ vc[:, kvh]
            o_sel = softmax_masked(s, sel_mask) @ v[:, kvh]
            o_win = softmax_masked(s, win_mask) @ v[:, kvh]
            o[:, h] = g[:, h, 0:1] * o_cmp + g[:, h, 1:2] * o_sel + g[:, h, 2:3] * o_win
    return o


def attention_block(x, pre, pos, causal, what):
    T = x.shape[0]
    H, Hkv, D = P["H"], P["Hkv"], P["dh"]
    q = (x @ weights(pre + "q_proj.weight", (H * D, P["d"]), -2).T).reshape(T, H, D)
    k = (x @ weights(pre + "k_proj.weight", (Hkv * D, P["d"]), -2).T).reshape(T, Hkv, D)
    v = (x @ weights(pre + "v_proj.weight", (Hkv * D, P["d"])).T).reshape(T, Hkv, D)
    g = 1.0 / (1.0 + np.exp(-(x @ weights(pre + "gate_proj.weight", (3 * H, P["d"]), -2).T))).reshape(T, H, 3)
    o = nsa(rope(q, pos), rope(k, pos), v, g, causal, what)
    return o.reshape(T, H * D) @ weights(pre + "o_proj.weight", (P["d"], H * D)).T


def cross_block(x, mem, pre):
    T, S = x.shape[0], mem.shape[0]
    H, Hkv, D = P["H"], P["Hkv"], P["dh"]
    q = (x @ weights(pre + "q_proj.weight", (H * D, P["d"]), -2).T).reshape(T, H, D)
    k = (mem @ weights(pre + "k_proj.weight", (Hkv * D, P["d"]), -2).T).reshape(S, Hkv, D)
    v = (mem @ weights(pre + "v_proj.weight", (Hkv * D, P["d"])).T).reshape(S, Hkv, D)
    o = np.zeros((T, H, D))
    for h in range(H):
        p = softmax_masked(q[:, h] @ k[:, h // (H // Hkv)].T / math.sqrt(D), np.ones((T, S), bool))
        o[:, h] = p @ v[:, h // (H // Hkv)]
    return o.reshape(T, H * D) @ weights(pre + "o_proj.weight", (P["d"], H * D)).T


def mlp(x, pre):
    gt = x @ weights(pre + "mlp.gate_proj.weight", (P["inter"], P["d"])).T
    up = x @ weights(pre + "mlp.up_proj.weight", (P["inter"], P["d"])).T
    return (gt / (1.0 + np.exp(-gt)) * up) @ weights(pre + "mlp.down_proj.weight", (P["d"], P["inter"])).T


EMB = None


def embed(ids):
    return EMB[np.asarray(ids)]


def encode(src):
    h = embed(src)
    pos = np.arange(len(src))
    for i in range(P["enc_layers"]):
        pre = f"model.encoder.layers.{i}."
        h = h + attention_block(rmsnorm(h, 1.0), pre + "self_attn.", pos, False, f"encoder layer {i}")
        h = h + mlp(rmsnorm(h, 1.0), pre)
    return rmsnorm(h, 1.0)


def decode(tgt, mem):
    h = embed(tgt)
    pos = np.arange(len(tgt))
    for i in range(P["dec_layers"]):
        pre = f"model.decoder.layers.{i}."
        h = h + attention_block(rmsnorm(h, 1.0), pre + "self_attn.", pos, True, f"decoder layer {i}")
        h = h + cross_block(rmsnorm(h, 1.0), mem, pre + "cross_attn.")
        h = h + mlp(rmsnorm(h, 1.0), pre)
    return rmsnorm(h, 1.0) @ EMB.T


def main():
    global EMB
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "models", "data",
                                                  "v1_tiny"))
    a = ap.parse_args()
    EMB = weights("model.embed_tokens.weight", (P["vocab"], P["d"]), 0)
    src = [(i * 7919 + 13) % P["vocab"] for i in range(150)]  # 10 selection blocks, the last partial
    tgt = [(i * 104729 + 5) % P["vocab"] for i in range(90)]  # decoder prompt: importance decides from t = 80
    mem = encode(src)
    logits = decode(tgt, mem)
    greedy, steps, seq = [], [], list(tgt)
    last = logits[-1]
    for _ in range(12):
        top = np.argsort(-last)
        assert last[top[0]] - last[top[1]] > MARGIN * abs(last[top[0]]), "near tie in a greedy argmax"
        greedy.append(int(top[0]))
        seq.append(int(top[0]))
        last = decode(seq, mem)[-1]
        steps.append(last.tolist())
    rows_mem = [0, 75, 149]
    rows_logits = [0, 45, 79, 80, 89]
    out = dict(preset="tiny", seed=SEED, source=src, prompt=tgt,
               memory_rows=rows_mem, memory=[mem[r].tolist() for r in rows_mem],
               logits_rows=rows_logits, logits=[logits[r].tolist() for r in rows_logits],
               greedy=greedy, step_logits=steps,
               generator="tools/gen_v1_golden.py (numpy float64 from the formulas)")
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "golden.json"), "w") as f:
        json.dump(out, f)
    print("wrote", os.path.join(a.out, "golden.json"), "greedy:", greedy)


if __name__ == "__main__":
    main()
