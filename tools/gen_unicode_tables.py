#!/usr/bin/env python3
"""Writes dsk's Unicode General_Category table and its golden cross-checks.

  include/dsk/io/unicode_gc_table.hpp          every assigned code point's General_Category as sorted ranges,
                                               from the `unicodedata2` package (the Unicode Character Database
                                               of the version it names); unassigned code points (Cn) are the
                                               gaps between the ranges.
  tests/io/data/unicode_properties.json        what the C++ tests compare against: the code points whose category
                                               differs from Python's own unicodedata (the Unicode version Debian
                                               12's PCRE2 also carries), so that the test can check the table
                                               against PCRE2's built-in tables everywhere they should agree; and
                                               the code points Hugging Face `tokenizers` matches with \\s.

Why: `tokenizers` (Oniguruma) classifies characters with a newer Unicode than Debian 12's PCRE2 (14.0), so text
with characters of Unicode 15 and 16 split differently. dsk's tokenizer rewrites \\p{..}, \\d and \\s in a
pre-tokenizer pattern into explicit ranges from this table (include/dsk/io/unicode_regex.hpp).

Before writing anything, this script checks the table against `tokenizers` itself: for every code point and
every General_Category (and \\d, \\s), Oniguruma's answer must equal the table's. The Unicode version is thus the
one `tokenizers` uses; bump both packages together.

  python3 -m venv /tmp/venv && /tmp/venv/bin/pip install unicodedata2==16.0.0 tokenizers==0.23.3
  /tmp/venv/bin/python tools/gen_unicode_tables.py
"""

import importlib.metadata
import json
import pathlib
import sys
import unicodedata as python_ucd

import tokenizers
import unicodedata2
from tokenizers import Regex, pre_tokenizers

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER = ROOT / "include/dsk/io/unicode_gc_table.hpp"
UCD_PACKAGE_VERSION = importlib.metadata.version("unicodedata2")
GOLDEN = ROOT / "tests/io/data/unicode_properties.json"

CATEGORIES = ["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi",
              "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"]
MAX_CP = 0x10FFFF
SURROGATES = range(0xD800, 0xE000)


def ranges_of(cps):
    """Sorted code points -> [first, last] runs."""
    out = []
    for cp in cps:
        if out and out[-1][1] + 1 == cp:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


def category_runs():
    runs = []  # [first, last, category], Cn left out
    for cp in range(MAX_CP + 1):
        cat = unicodedata2.category(chr(cp))
        if cat == "Cn":
            continue
        if runs and runs[-1][1] + 1 == cp and runs[-1][2] == cat:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp, cat])
    return runs


def oniguruma_matches(pattern, cps):
    """The code points of `cps` that `tokenizers` matches with `pattern` (one character each)."""
    split = pre_tokenizers.Split(Regex(pattern), "removed")
    # A separator that no tested class contains keeps the removed-piece accounting simple: every code point
    # is surrounded by it, so a code point is matched exactly when it is missing from the kept pieces.
    kept = set()
    chunk = 20000
    for i in range(0, len(cps), chunk):
        text = "".join(chr(cp) for cp in cps[i:i + chunk])
        for piece, _ in split.pre_tokenize_str(text):
            kept.update(ord(c) for c in piece)
    return {cp for cp in cps if cp not in kept}


def check_against_tokenizers():
    cps = [cp for cp in range(MAX_CP + 1) if cp not in SURROGATES]
    by_cat = {c: set() for c in CATEGORIES}
    for cp in cps:
        by_cat[unicodedata2.category(chr(cp))].add(cp)
    failures = []
    expected = dict(by_cat)
    for major in "LMNPSZC":
        expected[major] = set().union(*(by_cat[c] for c in CATEGORIES if c[0] == major))
    expected["\\d"] = by_cat["Nd"]
    # White_Space (PropList.txt): the separators and TAB, LF, VT, FF, CR, NEL. dsk builds \s from the table so.
    expected["\\s"] = expected["Z"] | set(range(0x9, 0xE)) | {0x85}
    for name, want in expected.items():
        pattern = name if name.startswith("\\") else "\\p{%s}" % name
        if name == "Cs":
            continue  # no surrogate can be in a Python str passed to Rust
        got = oniguruma_matches(pattern, cps)
        if got != want:
            diff = sorted(got ^ want)
            failures.append(f"{pattern}: {len(diff)} code points differ, e.g. {[hex(c) for c in diff[:8]]}")
    if failures:
        sys.exit("tokenizers and unicodedata2 disagree (bump them together):\n  " + "\n  ".join(failures))
    return sorted(oniguruma_matches("\\s", cps))


def write_header(runs):
    lines = [
        "// Generated by tools/gen_unicode_tables.py from unicodedata2 %s (Unicode %s). Do not edit: rerun the"
        % (UCD_PACKAGE_VERSION, unicodedata2.unidata_version),
        "// script (it checks the table against Hugging Face tokenizers first).",
        "// Every assigned code point's General_Category as sorted, non-overlapping [first, last] runs; a code point",
        "// in no run is unassigned (Cn).",
        "#pragma once",
        "",
        "#include <cstdint>",
        "",
        "// clang-format off",
        "namespace dsk::io::ucd {",
        "",
        'inline constexpr const char* gc_table_unicode_version = "%s";' % unicodedata2.unidata_version,
        "",
        "// The order of the categories in gc_run::category (General_Category values, UAX #44).",
        "enum class gc : std::uint8_t {",
        "  " + ", ".join(CATEGORIES[:15]) + ",",
        "  " + ", ".join(CATEGORIES[15:]),
        "};",
        "",
        "// Their two-letter names, in the same order.",
        "inline constexpr const char* gc_names[] = {",
        "  " + ", ".join('"%s"' % c for c in CATEGORIES[:15]) + ",",
        "  " + ", ".join('"%s"' % c for c in CATEGORIES[15:]),
        "};",
        "",
        "struct gc_run {",
        "  std::uint32_t first, last;",
        "  gc category;",
        "};",
        "",
        "inline constexpr gc_run gc_runs[] = {",
    ]
    row = []
    for first, last, cat in runs:
        row.append("{0x%X,0x%X,gc::%s}," % (first, last, cat))
        if len(row) == 5:
            lines.append("  " + "".join(row))
            row = []
    if row:
        lines.append("  " + "".join(row))
    lines += ["};", "", "}  // namespace dsk::io::ucd", "// clang-format on", ""]
    HEADER.write_text("\n".join(lines))


def write_golden(white_space):
    changed = []  # [cp, category in Python's unicodedata, category in unicodedata2]
    for cp in range(MAX_CP + 1):
        old, new = python_ucd.category(chr(cp)), unicodedata2.category(chr(cp))
        if old != new:
            changed.append([cp, old, new])
    # Runs of consecutive code points with the same (old, new) pair keep the file small.
    runs = []
    for cp, old, new in changed:
        if runs and runs[-1][1] + 1 == cp and runs[-1][2:] == [old, new]:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp, old, new])
    GOLDEN.write_text(json.dumps({
        "generator": "tools/gen_unicode_tables.py",
        "unicodedata2_version": UCD_PACKAGE_VERSION,
        "table_unicode_version": unicodedata2.unidata_version,
        "tokenizers_version": tokenizers.__version__,
        "baseline_unicode_version": python_ucd.unidata_version,
        "changed_since_baseline": runs,
        "tokenizers_white_space": white_space,
    }, indent=None, separators=(",", ":")) + "\n")


def main():
    white_space = check_against_tokenizers()
    runs = category_runs()
    write_header(runs)
    write_golden(white_space)
    print(f"{HEADER.relative_to(ROOT)}: {len(runs)} runs, Unicode {unicodedata2.unidata_version}; "
          f"{GOLDEN.relative_to(ROOT)}: tokenizers {tokenizers.__version__} agrees on every code point")


if __name__ == "__main__":
    main()
