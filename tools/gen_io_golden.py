#!/usr/bin/env python3
"""Golden data for tests/io (dsk's safetensors reader and tokenizer.json BPE), made with independent libraries.

Writes into tests/io/data/:
  tokenizer.json            a small byte-level BPE tokenizer trained here with Hugging Face `tokenizers`, using
                            DeepSeek-V2's pre-tokenizer structure (the Split regexes of DeepSeek's tokenizer.json,
                            a Digits step, ByteLevel without regex) and DeepSeek's BOS/EOS special tokens
  tokenizer_cases.json      for varied texts: the ids `tokenizers` produces, and its decodes of those ids
  tokenizer_variant.json    a second small tokenizer exercising the other pre-tokenizer options (every Split
                            behaviour, invert, String patterns, Digits runs, ByteLevel with prefix space and GPT-2
                            regex) with merges saved as "a b" strings; its cases in tokenizer_variant_cases.json
  st_single.safetensors     one file, written by the `safetensors` library: f32, f16, bf16, i8, i32, u8, a scalar,
                            an empty tensor, and __metadata__
  st_sharded/               the same kind of tensors split over two shards plus model.safetensors.index.json
  safetensors_cases.json    every tensor's dtype, shape and values (as Python numbers, bf16/f16 widened exactly)

Nothing is downloaded from a model hub. Run it in a virtual environment outside the repository:
  python3 -m venv /tmp/venv && /tmp/venv/bin/pip install tokenizers safetensors numpy ml_dtypes
  /tmp/venv/bin/python tools/gen_io_golden.py
The output is deterministic for fixed library versions (recorded in the case files).
"""
import json
import os
import sys

import ml_dtypes
import numpy as np
import safetensors
import tokenizers
from safetensors.numpy import save_file
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "io", "data")

# DeepSeek-V2 / DeepSeek-LLM pre-tokenizer: each Split isolates its matches, applied in sequence to the pieces
# left by the previous step (the same patterns appear in llama.cpp's LLAMA_VOCAB_PRE_TYPE_DEEPSEEK_LLM). Characters
# that Unicode normalisation would replace (U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126, U+212A) are written as escapes.
LETTERS = (
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1f7dᾀ-ᾴᾶ-ᾼ\u1fbeῂ-ῄῆ-ῌῐ-\u1fd3ῖ-\u1fdbῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212a-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ"
    "\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2"
    "\U000118a0-\U000118df\U0001e900-\U0001e943]+"
)
PUNCT = "\\s?[!-/:-~！-／：-～‘-‟　-。]+"
TRAILING_SPACE = "\\s+$"
CJK = "[一-龥ࠀ-一가-퟿]+"

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"

CORPUS = [
    "DeepSeek-V2 is a strong Mixture-of-Experts (MoE) language model characterized by economical training and "
    "efficient inference. It comprises 236B total parameters, of which 21B are activated for each token.",
    "Multi-head Latent Attention (MLA) compresses the key-value cache into a latent vector: 93.3% smaller!",
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX? the_quick_brown_fox = 42;",
    "def main():\n    for i in range(10):\n        print(i * 2 + 1)\n    return 0\n",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14159 2.71828 1e-6 65536 2024-05-07 12:30:45",
    "深度求索是一家专注于人工智能基础技术研究的公司。我们的模型支持中文和英文。",
    "大规模语言模型的训练需要大量的计算资源和高质量的数据。",
    "こんにちは世界。日本語のテキストも少し含めます。",
    "안녕하세요 세계. 한국어 텍스트입니다.",
    "Emoji: 😀 😃 😄 👍 👍🏽 🚀 ❤️ 🇩🇪 — and symbols © ® ™ € £ ¥ ° ± × ÷",
    "Café, naïve, façade, résumé, Übermäßig, Ελληνικά, Русский язык, español: ¿qué tal?",
    "Whitespace   runs\t\ttabs  and\n\n\nnewlines   \n  indented\r\nwindows line   ",
    "email@example.com https://www.deepseek.com/path?query=1&x=y #hashtag @user [brackets] {braces} <angles>",
    "Ⅻ ½ ٣ ௫ — non-ASCII numerals; full-width ＡＢＣ ａｂｃ １２３！",
]

TEXTS = [
    "",
    "Hello, world!",
    "Hello world",
    " leading space",
    "trailing spaces   ",
    "   ",
    "a  b   c    d",
    "tabs\tand\t\ttabs",
    "line one\nline two\r\nline three\n\n",
    "1234567890",
    "pi = 3.14159, e = 2.71828; 1e-6",
    "The year 2024 had 366 days.",
    "深度求索",
    "深度求索是一家人工智能公司。",
    "我们的模型支持中文和English混合text。",
    "こんにちは世界",
    "안녕하세요",
    "Emoji 😀👍🏽🚀 test",
    "❤️🇩🇪",
    "Café naïve Übermäßig",
    "Ελληνικά Русский",
    "¿qué tal? ¡muy bien!",
    "Ⅻ ½ ٣ ௫ １２３",
    "ＡＢＣ ａｂｃ！",
    "def f(x):\n    return x * 2  # double\n",
    "https://www.deepseek.com/path?query=1&x=y",
    "rare 鑫 龘 characters 𠀀 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    BOS + "Hello" + EOS,
    BOS + "User: 你好" + EOS + BOS,
    "text with <|EOT|> inside",
    "masked  <mask> word",
    "<mask>start",
    "no special <｜begin▁of▁sentence｜ almost",
    "Mixed 中文, English, 123 and 😀 in one line.\n",
]

# ids of these texts are cut at every position to check the lossy UTF-8 decode of partial multi-byte characters
CUT_TEXTS = ["😀深度", "Ü€"]


def build_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex("[\r\n]"), "isolated"),
            pre_tokenizers.Split(Regex(LETTERS), "isolated"),
            pre_tokenizers.Split(Regex(PUNCT), "isolated"),
            pre_tokenizers.Split(Regex(TRAILING_SPACE), "isolated"),
            pre_tokenizers.Split(Regex(CJK), "isolated"),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[AddedToken(BOS, special=True), AddedToken(EOS, special=True)],
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 3, trainer=trainer)
    tok.add_tokens([AddedToken("<|EOT|>", special=False)])
    tok.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True)])
    return tok


def gen_tokenizer():
    tok = build_tokenizer()
    path = os.path.join(OUT, "tokenizer.json")
    tok.save(path)
    tok = Tokenizer.from_file(path)  # the cases come from the saved file, as the C++ side reads it
    cases = []
    for t in TEXTS:
        ids = tok.encode(t, add_special_tokens=False).ids
        cases.append(
            {
                "text": t,
                "ids": ids,
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
            }
        )
    cuts = []
    for t in CUT_TEXTS:
        ids = tok.encode(t, add_special_tokens=False).ids
        for k in range(len(ids) + 1):
            cuts.append({"ids": ids[:k], "decoded": tok.decode(ids[:k], skip_special_tokens=False)})
    doc = {
        "generator": "tools/gen_io_golden.py",
        "tokenizers_version": tokenizers.__version__,
        "bos": tok.token_to_id(BOS),
        "eos": tok.token_to_id(EOS),
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "cases": cases,
        "partial_decodes": cuts,
    }
    with open(os.path.join(OUT, "tokenizer_cases.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
    print("tokenizer.json:", os.path.getsize(path), "bytes,", doc["vocab_size"], "tokens")


VARIANT_TEXTS = [
    "",
    "Hello, world! How are you?",
    "one-two--three---four",
    "x marks the spot; xx and xxx",
    "numbers 12345 and 3.14 and ٣٤٥",
    "  spaced   out  ",
    "深度求索, 你好!",
    "emoji 😀😀 end.",
    "it's they're we've I'm you'll he'd",
    "line end  \nnext line \n\n last  ",
]


def build_variant_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex("\\s+$"), "isolated"),  # $ is an end-of-line anchor in Oniguruma
            pre_tokenizers.Split(" ", "merged_with_previous"),
            pre_tokenizers.Split(Regex("[,;!?]"), "merged_with_next"),
            pre_tokenizers.Split(Regex("-"), "contiguous"),
            pre_tokenizers.Split(Regex("x"), "removed"),
            pre_tokenizers.Split(Regex("[a-z]+"), "isolated", invert=True),
            pre_tokenizers.Digits(individual_digits=False),
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS * 2 + VARIANT_TEXTS, trainer=trainer)
    return tok


def gen_variant_tokenizer():
    doc = json.loads(build_variant_tokenizer().to_str())
    doc["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in doc["model"]["merges"]]
    path = os.path.join(OUT, "tokenizer_variant.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    tok = Tokenizer.from_file(path)
    cases = []
    for t in VARIANT_TEXTS:
        ids = tok.encode(t, add_special_tokens=False).ids
        cases.append({"text": t, "ids": ids, "decoded": tok.decode(ids)})
    with open(os.path.join(OUT, "tokenizer_variant_cases.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tools/gen_io_golden.py", "tokenizers_version": tokenizers.__version__,
                   "cases": cases}, f, ensure_ascii=False, indent=1)
    print("tokenizer_variant.json:", os.path.getsize(path), "bytes")


def tensors(seed):
    rng = np.random.default_rng(seed)
    return {
        "w_f32": (rng.standard_normal((3, 5)) * 2).astype(np.float32),
        "w_f16": rng.standard_normal((4, 7)).astype(np.float16),
        "w_bf16": rng.standard_normal((5, 3)).astype(np.float32).astype(ml_dtypes.bfloat16),
        "w_i8": rng.integers(-128, 128, size=(2, 9), dtype=np.int8),
        "w_i32": rng.integers(-(2**31), 2**31, size=(6,), dtype=np.int32),
        "w_u8": rng.integers(0, 256, size=(3, 1, 2), dtype=np.uint8),
        "w_f64": rng.standard_normal((2, 2)),
        "scalar_f32": np.array(1.5, dtype=np.float32),
        "empty_f32": np.zeros((0, 4), dtype=np.float32),
    }


def describe(arrs, file_of=None):
    out = {}
    for name, a in arrs.items():
        dt = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "int8": "I8", "int32": "I32", "uint8": "U8",
              "float64": "F64"}[a.dtype.name]
        vals = a.astype(np.float64).reshape(-1).tolist() if dt in ("F32", "F16", "BF16", "F64") else a.reshape(-1).tolist()
        out[name] = {"dtype": dt, "shape": list(a.shape), "values": vals}
        if file_of:
            out[name]["file"] = file_of[name]
    return out


def gen_safetensors():
    single = tensors(1)
    save_file(single, os.path.join(OUT, "st_single.safetensors"), metadata={"format": "np", "note": "dsk golden"})
    shard_dir = os.path.join(OUT, "st_sharded")
    os.makedirs(shard_dir, exist_ok=True)
    sharded = {f"model.layers.{i}.{k}": v for i, (k, v) in enumerate(tensors(2).items())}
    names = sorted(sharded)
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    file_of = {n: files[0] if i < len(names) // 2 else files[1] for i, n in enumerate(names)}
    for f in files:
        save_file({n: sharded[n] for n in names if file_of[n] == f}, os.path.join(shard_dir, f), metadata={"format": "np"})
    total = int(sum(a.nbytes for a in sharded.values()))
    with open(os.path.join(shard_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": file_of}, f, indent=2, sort_keys=True)
    doc = {
        "generator": "tools/gen_io_golden.py",
        "safetensors_version": safetensors.__version__,
        "numpy_version": np.__version__,
        "ml_dtypes_version": ml_dtypes.__version__,
        "single": describe(single),
        "single_metadata": {"format": "np", "note": "dsk golden"},
        "sharded": describe(sharded, file_of),
    }
    with open(os.path.join(OUT, "safetensors_cases.json"), "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    gen_tokenizer()
    gen_variant_tokenizer()
    gen_safetensors()
    sys.exit(0)
