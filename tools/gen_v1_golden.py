#!/usr/bin/env python3
"""Golden data of the DeepSeek-V1 reference model (examples/v1) on tiny checkpoints, computed in float64 with
numpy from the architecture's formulas (docs/models.md, V1) -- independently of dsk's kernels: explicit masks
over full score matrices, NSA's compressed / selected / window branches written from the paper (arXiv
2502.11089) and from the definitions of attention::nsa in docs/attention.md (causal decoder; bidirectional
encoder, causal = false; mean or learned-linear compression).

The weights are the ones dsk_v1::model::random(preset, fmt, seed) builds: element i of tensor NAME is
(r - 2^23) * 2^(e - 23), r the top 24 bits of splitmix64 keyed by FNV-1a(NAME) ^ seed (exact in float32).

Checkpoints (CONFIGS below), each written to tests/models/data/<name>/golden.json:
  v1_tiny          the tiny preset (GQA 4/2, mean pooling); a 150-token source (10 selection blocks, the last
                   partial; a partial last compressed block), a 90-token decoder prompt. Also the logits of
                   deliberately wrong models (VARIANTS: window one token narrower, selected-branch gate 0, the
                   decoder's causal mask one token too far), so the test can show its tolerance discriminates.
  v1_tiny_mha      tiny with num_kv_heads = 4 (MHA); a 128-token source (a multiple of the selection and
                   compressed blocks, 8 times the window), a 96-token prompt.
  v1_tiny_learned  tiny with learned-linear compression: compressed key of block [a, b) = W_k vec(k_j + pe_j)
                   (W_k [dh, l dh], vec stacking the block's l rows of dh, zero rows for the tokens a partial
                   bidirectional block lacks), values likewise; a 141-token source (partial last compressed and
                   selection blocks), an 85-token prompt.
Each golden.json holds the preset's differences from tiny, the seed, the source and prompt ids, rows of the
encoder output, rows of the decoder prefill logits, and greedy tokens with the logits of each decoded step.
Every block choice that importance decides, and every greedy argmax, of the true model is checked to have a
margin (the script fails otherwise: a near tie would make the float32 comparison meaningless).

Needs numpy only:  python3 tools/gen_v1_golden.py [--out DATA_DIR] [--only NAME]
"""
import argparse
import json
import math
import os

import numpy as np

M64 = (1 << 64) - 1

# examples/v1/presets.hpp: tiny (learned = preset.learned_compression)
TINY = dict(vocab=512, d=64, inter=128, enc_layers=2, dec_layers=2, H=4, Hkv=2, dh=16, cmp_block=8, cmp_stride=4,
            sel_block=16, sel_count=5, init_blocks=1, local_blocks=2, window=16, learned=False, theta=10000.0,
            eps=1e-6)
MARGIN = 1e-3  # relative margin required of importance-decided block choices and greedy argmaxes

# Token ids: (i * mul + add) % vocab for i < n.
CONFIGS = [
    dict(name="v1_tiny", preset=TINY, seed=20261203, source=(150, 7919, 13), prompt=(90, 104729, 5), steps=12,
         memory_rows=[0, 75, 149], logits_rows=[0, 45, 79, 80, 89], variants=True),
    dict(name="v1_tiny_mha", preset=dict(TINY, Hkv=4), seed=20261204, source=(128, 7919, 35),
         prompt=(96, 104729, 39), steps=10, memory_rows=[0, 63, 64, 127], logits_rows=[0, 47, 80, 95],
         variants=False),
    dict(name="v1_tiny_learned", preset=dict(TINY, learned=True), seed=20261205, source=(141, 7919, 44),
         prompt=(85, 104729, 48), steps=12, memory_rows=[0, 70, 136, 140], logits_rows=[0, 40, 80, 84],
         variants=False),
]

# Deliberately wrong models: (key in golden.json, what differs, keyword arguments of Model).
VARIANTS = [
    ("window-1", "the local window one token narrower (encoder |i - j| <= w - 1, decoder the last w - 1 tokens)",
     dict(window_delta=-1)),
    ("sel_gate=0", "the selected branch's gate forced to 0 (encoder and decoder)", dict(gate_off=1)),
    ("causal+1", "the decoder's causal masks one token too far: query t sees key t + 1 (clamped to the prompt)",
     dict(causal_shift=1)),
]


def fnv1a(name):
    h = 0xcbf29ce484222325
    for ch in name.encode():
        h = ((h ^ ch) * 0x100000001b3) & M64
    return h


def softmax_masked(s, mask):  # rows with no visible key give 0
    s = np.where(mask, s, -np.inf)
    mx = np.max(s, axis=-1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    e = np.where(mask, np.exp(s - mx), 0.0)
    den = e.sum(axis=-1, keepdims=True)
    return np.where(den > 0, e / np.where(den > 0, den, 1.0), 0.0)


class Model:
    """The V1 model of preset p on the weights of `seed`. window_delta, gate_off (a branch whose gate is 0) and
    causal_shift make it deliberately wrong; check enables the margin checks (the true model only)."""

    def __init__(self, p, seed, window_delta=0, gate_off=None, causal_shift=0, check=True):
        self.P, self.seed, self.check = p, seed, check
        self.window = p["window"] + window_delta
        self.gate_off, self.causal_shift = gate_off, causal_shift
        self.cache = {}
        self.emb = self.weights("model.embed_tokens.weight", (p["vocab"], p["d"]), 0)

    def weights(self, name, shape, e=-5):
        if name in self.cache:
            return self.cache[name]
        key = fnv1a(name) ^ self.seed
        n = int(np.prod(shape))
        i = np.arange(1, n + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            z = np.uint64(key) + i * np.uint64(0x9E3779B97F4A7C15)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z ^= z >> np.uint64(31)
        r = (z >> np.uint64(40)).astype(np.int64) - (1 << 23)
        w = (r.astype(np.float64) * 2.0 ** (e - 23)).reshape(shape)
        self.cache[name] = w
        return w

    def rmsnorm(self, x):  # the checkpoint's norm weights are 1
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.P["eps"])

    def rope(self, x, pos):  # x [T, heads, dh], half-split pairs (i, i + dh/2)
        dh = x.shape[-1]
        half = dh // 2
        inv = self.P["theta"] ** (-2.0 * np.arange(half) / dh)
        ang = np.asarray(pos, dtype=np.float64)[:, None] * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., :half], x[..., half:]
        return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)

    def choose(self, imp, count, forced, what):
        """Forced blocks, then the most important of the rest (ties: lower index) up to sel_count; checks the
        margin between the last block taken by importance and the first left out."""
        chosen = [b for b in range(count) if forced(b)]
        rest = sorted([b for b in range(count) if not forced(b)], key=lambda b: (-imp[b], b))
        room = self.P["sel_count"] - len(chosen)
        if self.check and 0 < room < len(rest):
            a, b = imp[rest[room - 1]], imp[rest[room]]
            assert a - b > MARGIN * max(abs(a), 1e-30), f"near tie in the block choice of {what}: {a} vs {b}"
        return sorted(chosen + rest[:max(room, 0)])

    def compress(self, x, spans, w, pe):
        """Compressed keys (or values) [n, Hkv, D] of x [T, Hkv, D] over the token spans [a, b). Mean pooling
        (w None): the mean of the span's rows. Learned: W vec(x_j + pe_j), vec = the l rows of D stacked
        (index j D + c), zero rows where a span shorter than l has no token."""
        T, Hkv, D = x.shape
        l = self.P["cmp_block"]
        out = np.zeros((len(spans), Hkv, D))
        for i, (a, b) in enumerate(spans):
            if w is None:
                out[i] = x[a:b].mean(axis=0)
            else:
                blk = np.zeros((l, Hkv, D))
                blk[:b - a] = x[a:b] + pe[:b - a, None, :]
                out[i] = blk.transpose(1, 0, 2).reshape(Hkv, l * D) @ w.T
        return out

    def nsa(self, q, k, v, g, causal, cw, what):
        """q [T, H, dh], k / v [T, Hkv, dh], g [T, H, 3], cw = (w_k, pe_k, w_v, pe_v) or None -> o [T, H, dh]."""
        P = self.P
        T, H, D = q.shape
        Hkv = k.shape[1]
        G = H // Hkv
        l, dc, ls, w = P["cmp_block"], P["cmp_stride"], P["sel_block"], self.window
        scale = 1.0 / math.sqrt(D)
        if causal:
            nc = (T - l) // dc + 1 if T >= l else 0
            spans = [(i * dc, i * dc + l) for i in range(nc)]
        else:
            nc = 0 if T == 0 else (1 if T <= l else (T - l + dc - 1) // dc + 1)
            spans = [(i * dc, min(i * dc + l, T)) for i in range(nc)]
        kc = self.compress(k, spans, *((cw[0], cw[1]) if cw else (None, None)))
        vc = self.compress(v, spans, *((cw[2], cw[3]) if cw else (None, None)))
        t_idx = np.arange(T)
        te = np.minimum(t_idx + self.causal_shift, T - 1) if causal else t_idx  # the position the masks use
        o = np.zeros((T, H, D))
        NB = (T + ls - 1) // ls
        for kvh in range(Hkv):
            heads = range(kvh * G, (kvh + 1) * G)
            # compressed branch: block i visible to query t when causal and it ends at or before t
            cmask = np.ones((T, nc), bool) if not causal else \
                np.array([[spans[i][1] - 1 <= te[t] for i in range(nc)] for t in range(T)]).reshape(T, nc)
            pc = {h: softmax_masked(scale * q[:, h] @ kc[:, kvh].T, cmask) for h in heads}
            # compressed block -> selection block overlap
            ov = np.array([[a < (b + 1) * ls and b * ls < e for b in range(NB)] for a, e in spans]).reshape(nc, NB)
            sel_mask = np.zeros((T, T), bool)
            if causal:
                for t in range(T):
                    imp = sum(pc[h][t] for h in heads) @ ov
                    last = te[t] // ls
                    ch = self.choose(imp[:last + 1], last + 1,
                                     lambda b: b < P["init_blocks"] or b > last - P["local_blocks"], f"{what} t={t}")
                    for b in ch:
                        sel_mask[t, b * ls:min((b + 1) * ls, te[t] + 1)] = True
                win_mask = (t_idx[None, :] <= te[:, None]) & (t_idx[None, :] > te[:, None] - w)
            else:
                for qb in range(NB):
                    rows = slice(qb * ls, min((qb + 1) * ls, T))
                    imp = sum(pc[h][rows].sum(axis=0) for h in heads) @ ov
                    ch = self.choose(imp, NB, lambda b: b < P["init_blocks"] or abs(b - qb) < P["local_blocks"],
                                     f"{what} qb={qb}")
                    for b in ch:
                        sel_mask[rows, b * ls:(b + 1) * ls] = True
                win_mask = np.abs(t_idx[None, :] - t_idx[:, None]) <= w
            for h in heads:
                s = scale * q[:, h] @ k[:, kvh].T
                o_cmp = pc[h] @ vc[:, kvh]
                o_sel = softmax_masked(s, sel_mask) @ v[:, kvh]
                o_win = softmax_masked(s, win_mask) @ v[:, kvh]
                o[:, h] = g[:, h, 0:1] * o_cmp + g[:, h, 1:2] * o_sel + g[:, h, 2:3] * o_win
        return o

    def attention_block(self, x, pre, pos, causal, what):
        P, W = self.P, self.weights
        T = x.shape[0]
        H, Hkv, D, d = P["H"], P["Hkv"], P["dh"], P["d"]
        q = (x @ W(pre + "q_proj.weight", (H * D, d), -2).T).reshape(T, H, D)
        k = (x @ W(pre + "k_proj.weight", (Hkv * D, d), -2).T).reshape(T, Hkv, D)
        v = (x @ W(pre + "v_proj.weight", (Hkv * D, d)).T).reshape(T, Hkv, D)
        g = 1.0 / (1.0 + np.exp(-(x @ W(pre + "gate_proj.weight", (3 * H, d), -2).T))).reshape(T, H, 3)
        if self.gate_off is not None:
            g[:, :, self.gate_off] = 0.0
        cw = None
        if P["learned"]:
            l = P["cmp_block"]
            cw = (W(pre + "compress_k.weight", (D, l * D), -4), W(pre + "compress_k.pe", (l, D)),
                  W(pre + "compress_v.weight", (D, l * D), -4), W(pre + "compress_v.pe", (l, D)))
        o = self.nsa(self.rope(q, pos), self.rope(k, pos), v, g, causal, cw, what)
        return o.reshape(T, H * D) @ W(pre + "o_proj.weight", (d, H * D)).T

    def cross_block(self, x, mem, pre):
        P, W = self.P, self.weights
        T, S = x.shape[0], mem.shape[0]
        H, Hkv, D, d = P["H"], P["Hkv"], P["dh"], P["d"]
        q = (x @ W(pre + "q_proj.weight", (H * D, d), -2).T).reshape(T, H, D)
        k = (mem @ W(pre + "k_proj.weight", (Hkv * D, d), -2).T).reshape(S, Hkv, D)
        v = (mem @ W(pre + "v_proj.weight", (Hkv * D, d)).T).reshape(S, Hkv, D)
        o = np.zeros((T, H, D))
        for h in range(H):
            p = softmax_masked(q[:, h] @ k[:, h // (H // Hkv)].T / math.sqrt(D), np.ones((T, S), bool))
            o[:, h] = p @ v[:, h // (H // Hkv)]
        return o.reshape(T, H * D) @ W(pre + "o_proj.weight", (d, H * D)).T

    def mlp(self, x, pre):
        P, W = self.P, self.weights
        gt = x @ W(pre + "mlp.gate_proj.weight", (P["inter"], P["d"])).T
        up = x @ W(pre + "mlp.up_proj.weight", (P["inter"], P["d"])).T
        return (gt / (1.0 + np.exp(-gt)) * up) @ W(pre + "mlp.down_proj.weight", (P["d"], P["inter"])).T

    def encode(self, src):
        h = self.emb[np.asarray(src)]
        pos = np.arange(len(src))
        for i in range(self.P["enc_layers"]):
            pre = f"model.encoder.layers.{i}."
            h = h + self.attention_block(self.rmsnorm(h), pre + "self_attn.", pos, False, f"encoder layer {i}")
            h = h + self.mlp(self.rmsnorm(h), pre)
        return self.rmsnorm(h)

    def decode(self, tgt, mem):
        h = self.emb[np.asarray(tgt)]
        pos = np.arange(len(tgt))
        for i in range(self.P["dec_layers"]):
            pre = f"model.decoder.layers.{i}."
            h = h + self.attention_block(self.rmsnorm(h), pre + "self_attn.", pos, True, f"decoder layer {i}")
            h = h + self.cross_block(self.rmsnorm(h), mem, pre + "cross_attn.")
            h = h + self.mlp(self.rmsnorm(h), pre)
        return self.rmsnorm(h) @ self.emb.T


def row_distance(a, b):
    """max |a - b| over a row relative to the row's largest |b|, the largest over the rows (as the test)."""
    return max(float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-30)) for x, y in zip(a, b))


def golden(cfg):
    p = cfg["preset"]
    m = Model(p, cfg["seed"])
    ids = lambda n, mul, add: [(i * mul + add) % p["vocab"] for i in range(n)]
    src, tgt = ids(*cfg["source"]), ids(*cfg["prompt"])
    mem = m.encode(src)
    logits = m.decode(tgt, mem)
    greedy, steps, seq = [], [], list(tgt)
    last = logits[-1]
    for _ in range(cfg["steps"]):
        top = np.argsort(-last)
        assert last[top[0]] - last[top[1]] > MARGIN * abs(last[top[0]]), f"{cfg['name']}: near tie in greedy"
        greedy.append(int(top[0]))
        seq.append(int(top[0]))
        last = m.decode(seq, mem)[-1]
        steps.append(last.tolist())
    rows_mem, rows_logits = cfg["memory_rows"], cfg["logits_rows"]
    out = dict(preset="tiny", num_kv_heads=p["Hkv"], learned_compression=p["learned"], seed=cfg["seed"],
               source=src, prompt=tgt, memory_rows=rows_mem, memory=[mem[r].tolist() for r in rows_mem],
               logits_rows=rows_logits, logits=[logits[r].tolist() for r in rows_logits], greedy=greedy,
               step_logits=steps, generator="tools/gen_v1_golden.py (numpy float64 from the formulas)")
    if cfg["variants"]:
        out["variants"] = {}
        for key, about, kw in VARIANTS:
            w = Model(p, cfg["seed"], check=False, **kw)
            wl = w.decode(tgt, w.encode(src))
            rows = [wl[r] for r in rows_logits]
            dist = row_distance(rows, [logits[r] for r in rows_logits])
            out["variants"][key] = dict(about=about, logits=[r.tolist() for r in rows], distance=dist)
            print(f"  {cfg['name']} variant {key}: prefill logits rows at relative distance {dist:.3g}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "models", "data"))
    ap.add_argument("--only", help="one checkpoint name (default: all)")
    a = ap.parse_args()
    for cfg in CONFIGS:
        if a.only and cfg["name"] != a.only:
            continue
        out = golden(cfg)
        d = os.path.join(a.out, cfg["name"])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "golden.json"), "w") as f:
            json.dump(out, f)
        print("wrote", os.path.join(d, "golden.json"), "greedy:", out["greedy"])


if __name__ == "__main__":
    main()
