#!/usr/bin/env python3
"""Golden data for the DeepSeek-V3 generation's pre-tokenizer on characters of every Unicode version.

Writes into tests/io/data/:
  tokenizer_v3.json         a small byte-level BPE tokenizer trained here with Hugging Face `tokenizers`, with
                            DeepSeek-V3's pre-tokenizer (its three Split regexes, which use \\p{N}, \\p{L}, \\p{M},
                            \\p{P} and \\p{S}, then ByteLevel without regex) and DeepSeek's BOS/EOS tokens
  tokenizer_v3_cases.json   texts holding letters, marks, digits, punctuation, symbols and spaces added in each
                            Unicode version from 1.1 to 16.0 (and unassigned code points), each in the contexts
                            the V3 regex treats differently (after a space, a letter, a digit, punctuation; runs;
                            before a newline), with the ids `tokenizers` gives them and its decodes

Characters are picked by their Unicode age and category from the `unicodedataplus` package (Unicode 16.0, the
version `tokenizers` 0.23 uses; tools/gen_unicode_tables.py checks that for every code point).

  python3 -m venv /tmp/venv && /tmp/venv/bin/pip install tokenizers==0.23.3 unicodedataplus==16.0.0.post1 \\
      unicodedata2==16.0.0 safetensors numpy ml_dtypes
  /tmp/venv/bin/python tools/gen_v3_tokenizer_golden.py
"""
import json
import os
import sys

import tokenizers
import unicodedata2
import unicodedataplus
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_io_golden import BOS, CORPUS, EOS, OUT  # noqa: E402

# DeepSeek-V3's pre-tokenizer (tokenizer.json of deepseek-ai/DeepSeek-V3; the same regexes are llama.cpp's
# LLAMA_VOCAB_PRE_TYPE_DEEPSEEK3_LLM).
V3_DIGITS = "\\p{N}{1,3}"
V3_CJK = "[一-龥\u3040-ゟ゠-ヿ]+"
V3_MAIN = ("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
           " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+")

AGES = ["1.1", "2.0", "2.1", "3.0", "3.1", "3.2", "4.0", "4.1", "5.0", "5.1", "5.2", "6.0", "6.1", "6.2", "6.3",
        "7.0", "8.0", "9.0", "10.0", "11.0", "12.0", "12.1", "13.0", "14.0", "15.0", "15.1", "16.0"]
GROUPS = ["L", "M", "N", "P", "S", "Z"]
PER_GROUP = 3  # characters per (version, group): the first, the middle and the last of that version's


def picks():
    """{(age, group): [code points]}, and some code points still unassigned in Unicode 16."""
    by = {}
    unassigned = []
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        cat = unicodedataplus.category(c)
        if cat != unicodedata2.category(c):
            sys.exit(f"unicodedataplus and unicodedata2 disagree on U+{cp:04X}")
        age = unicodedataplus.age(c)
        if age == "Unassigned":
            # one unassigned code point just past each of a few assigned stretches, where new characters land
            if cp > 0 and unicodedataplus.age(chr(cp - 1)) != "Unassigned" and len(unassigned) < 400:
                unassigned.append(cp)
            continue
        if cat[0] in GROUPS and cat not in ("Zl", "Zp"):  # line breaks are split by the \r\n rules anyway
            by.setdefault((age, cat[0]), []).append(cp)
    chosen = {}
    for key, cps in by.items():
        idx = sorted({0, len(cps) // 2, len(cps) - 1})[:PER_GROUP]
        chosen[key] = [cps[i] for i in idx]
    return chosen, unassigned[::40]


def contexts(chars):
    """One text placing the characters where the V3 regex's branches differ."""
    s = "".join(chars)
    a = chars[0]
    return f"word {a} x{s}y 7{a} {s}{s}, ({a}) !{a} {a}\n{s} \n"


def texts():
    chosen, unassigned = picks()
    out = []
    for age in AGES:
        for g in GROUPS:
            cps = chosen.get((age, g))
            if cps:
                out.append({"unicode": age, "group": g, "code_points": cps, "text": contexts([chr(c) for c in cps])})
        mixed = [chr(cps[0]) for g in GROUPS if (cps := chosen.get((age, g)))]
        out.append({"unicode": age, "group": "mixed", "code_points": [ord(c) for c in mixed],
                    "text": "DeepSeek " + " ".join(mixed) + " 深度 " + "".join(mixed) + "\n"})
    out.append({"unicode": "unassigned", "group": "Cn", "code_points": unassigned,
                "text": contexts([chr(c) for c in unassigned])})
    # The everyday emoji of Unicode 15.0 after a space, and a Unicode 16.0 letter run.
    out.append({"unicode": "15.0", "group": "emoji", "code_points": [0x1FA77, 0x1FABF],
                "text": "a pink heart \U0001FA77 and a goose \U0001FABF!"})
    return out


def build(corpus):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(V3_DIGITS), "isolated"),
        pre_tokenizers.Split(Regex(V3_CJK), "isolated"),
        pre_tokenizers.Split(Regex(V3_MAIN), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, min_frequency=2, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[AddedToken(BOS, special=True), AddedToken(EOS, special=True)],
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    return tok


def main():
    cases = texts()
    # Training on the test texts too gives the new characters merges of their own, so a different split
    # changes the ids, not only their grouping.
    tok = build(CORPUS * 3 + [c["text"] for c in cases] * 2)
    path = os.path.join(OUT, "tokenizer_v3.json")
    tok.save(path)
    tok = Tokenizer.from_file(path)
    split_only = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(V3_DIGITS), "isolated"),
        pre_tokenizers.Split(Regex(V3_CJK), "isolated"),
        pre_tokenizers.Split(Regex(V3_MAIN), "isolated"),
    ])
    for c in cases:
        c["ids"] = tok.encode(c["text"], add_special_tokens=False).ids
        c["decoded"] = tok.decode(c["ids"])
        c["pieces"] = [p for p, _ in split_only.pre_tokenize_str(c["text"])]
    with open(os.path.join(OUT, "tokenizer_v3_cases.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tools/gen_v3_tokenizer_golden.py", "tokenizers_version": tokenizers.__version__,
                   "unicode_version": unicodedataplus.unidata_version, "cases": cases}, f, ensure_ascii=False,
                  indent=1)
    print(f"tokenizer_v3.json: {os.path.getsize(path)} bytes, {tok.get_vocab_size()} tokens; {len(cases)} cases")


if __name__ == "__main__":
    main()
