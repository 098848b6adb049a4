// tokenizer.json (Hugging Face `tokenizers` format) for byte-level BPE models such as DeepSeek-V2: added and
// special tokens, the pre-tokenizer (Sequence of Split regexes, Digits, ByteLevel) through PCRE2, BPE merges,
// and the ByteLevel decoder. Host only; checked in tests/io/tokenizer.cpp against ids and decodes produced by
// the `tokenizers` library itself (tools/gen_io_golden.py).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include "dsk/core/config.hpp"
#include "dsk/core/error.hpp"
#include "dsk/io/mapped_file.hpp"
#include "dsk/io/unicode_regex.hpp"
#include "dsk/kernels/config.hpp"

namespace dsk::io {
DSK_ISA_BEGIN  // compiled with the TU's -march: ISA-specific names (tests/isa)

using token_id = std::int32_t;

// The most token ids a tokenizer.json may declare (2^24; the largest released vocabularies hold ~2^18). Ids
// must also lie below the number of tokens the file declares (model.vocab entries + added_tokens entries).
inline constexpr std::size_t max_token_ids = std::size_t{1} << 24;

namespace detail {

// ---- UTF-8 ------------------------------------------------------------------------------------------
// Length of the well-formed UTF-8 sequence at s[i], or 0 when it is not well formed (Unicode table 3-7).
inline std::size_t utf8_seq_len(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf)
    n = 2;
  else if (c == 0xe0)
    n = 3, lo = 0xa0;
  else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
    n = 3;
  else if (c == 0xed)
    n = 3, hi = 0x9f;
  else if (c == 0xf0)
    n = 4, lo = 0x90;
  else if (c >= 0xf1 && c <= 0xf3)
    n = 4;
  else if (c == 0xf4)
    n = 4, hi = 0x8f;
  else
    return 0;
  if (i + 1 >= s.size() || b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (i + k >= s.size() || b(i + k) < 0x80 || b(i + k) > 0xbf) return 0;
  return n;
}

// Replaces each maximal ill-formed subsequence with U+FFFD, as Rust's String::from_utf8_lossy (which the
// `tokenizers` ByteLevel decoder uses) and the Unicode standard's recommended practice do.
inline std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (const std::size_t n = utf8_seq_len(s, i)) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    // The maximal subpart: the lead byte plus the continuation bytes that could still have started a valid
    // sequence (at least the lead byte is consumed).
    std::size_t k = i + 1;
    const unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 1;
    if (n > 1) {
      unsigned char lo = 0x80, hi = 0xbf;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
      if (k < s.size() && static_cast<unsigned char>(s[k]) >= lo && static_cast<unsigned char>(s[k]) <= hi) {
        ++k;
        while (k < i + n && k < s.size() && (static_cast<unsigned char>(s[k]) & 0xc0) == 0x80) ++k;
      }
    }
    out += "\xef\xbf\xbd";
    i = k;
  }
  return out;
}

inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// Code point of the well-formed sequence at s[i] of length n.
inline std::uint32_t utf8_decode(std::string_view s, std::size_t i, std::size_t n) {
  const auto b = [&](std::size_t k) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(s[i + k]));
  };
  if (n == 1) return b(0);
  if (n == 2) return ((b(0) & 0x1f) << 6) | (b(1) & 0x3f);
  if (n == 3) return ((b(0) & 0x0f) << 12) | ((b(1) & 0x3f) << 6) | (b(2) & 0x3f);
  return ((b(0) & 0x07) << 18) | ((b(1) & 0x3f) << 12) | ((b(2) & 0x3f) << 6) | (b(3) & 0x3f);
}

// Rust's char::is_whitespace (the Unicode White_Space property): what `tokenizers` strips for lstrip/rstrip.
inline bool is_unicode_whitespace(std::uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
         c == 0x3000;
}

// ---- GPT-2 byte <-> unicode table -------------------------------------------------------------------
// Printable bytes (33..126, 161..172, 174..255) stand for themselves; the others map to U+0100 + n in byte
// order, so every byte string becomes printable text (GPT-2's bytes_to_unicode).
struct byte_level_table {
  std::array<std::string, 256> to_char;                     // byte -> UTF-8 of its stand-in character
  std::unordered_map<std::uint32_t, std::uint8_t> to_byte;  // stand-in code point -> byte
  byte_level_table() {
    std::uint32_t extra = 0;
    for (std::uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      const std::uint32_t cp = printable ? b : 256 + extra++;
      append_utf8(to_char[b], cp);
      to_byte.emplace(cp, static_cast<std::uint8_t>(b));
    }
  }
  static const byte_level_table& get() {
    static const byte_level_table t;
    return t;
  }
};

// ---- PCRE2 ------------------------------------------------------------------------------------------
// A compiled pattern. Options mirror the Oniguruma (Ruby syntax) engine `tokenizers` uses: UTF-8 with Unicode
// properties for \s, \p{..}; ^ and $ are line anchors (newline = LF). General_Category properties and \d come
// from dsk's Unicode table, not PCRE2's (unicode_regex.hpp: `tokenizers` has a newer Unicode than PCRE2
// builds such as Debian 12's).
// unicode_tables::dsk: the engine's \p{..} corrected where it differs from dsk's table (the default);
// dsk_ranges: every property as explicit ranges (slower; the second path tests/io/unicode.cpp checks);
// engine: PCRE2's own tables, the pattern as written (the baseline of the tests and of bench_tokenizer).
enum class unicode_tables { dsk, dsk_ranges, engine };

inline const engine_differences& pcre2_differences();

class pcre2_regex {
 public:
  pcre2_regex(const std::string& pattern, bool literal, std::string_view where,
              unicode_tables tables = unicode_tables::dsk) {
    const std::string expanded =
        literal || tables == unicode_tables::engine
            ? pattern
            : expand_unicode_properties(pattern,
                                        tables == unicode_tables::dsk ? &pcre2_differences() : nullptr);
    code_ = compile(expanded, literal);
    if (!code_.code) {
      // Errors name the pattern as written: compile it unchanged for PCRE2's message and offset.
      const compiled as_written = expanded == pattern ? std::move(code_) : compile(pattern, literal);
      if (!as_written.code) {
        fail(where, ": cannot compile regex '", truncated(pattern, 200), "' at offset ", as_written.offset,
             ": ", as_written.message,
             as_written.error == PCRE2_ERROR_BACKSLASH_C_CALLER_DISABLED
                 ? " (\\C is not allowed: it matches single bytes and would cut UTF-8 characters apart)"
                 : "");
      }
      fail(where, ": cannot compile regex '", truncated(pattern, 200),
           "' once its Unicode properties are ranges of Unicode ", ucd::gc_table_unicode_version, ": ",
           code_.message);
    }
    // JIT: an optional speed-up; the interpreter is the fallback and gives the same matches.
    // DSK_PCRE2_NO_JIT=1 in the environment turns it off (for valgrind, which cannot follow JIT code's
    // reads: tests/io's test_io_valgrind).
    if (!jit_disabled()) pcre2_jit_compile_8(code_.code.get(), PCRE2_JIT_COMPLETE);
  }
  static bool jit_disabled() {
    static const bool off = [] {
      const char* v = std::getenv("DSK_PCRE2_NO_JIT");
      return v && *v && std::string_view(v) != "0";
    }();
    return off;
  }

  // Calls f(begin, end) for every non-overlapping match in `s` (valid UTF-8), left to right. After an empty
  // match the search resumes one character later, as regex iterators do. `s` is checked once here (one pass)
  // so that the matches can skip PCRE2's per-call check (PCRE2_NO_UTF_CHECK on invalid UTF-8 is undefined
  // behaviour in PCRE2: reads past the subject).
  template <class F>
  void for_each_match(std::string_view s, F&& f) const {
    for (std::size_t i = 0; i < s.size();) {
      const std::size_t n = utf8_seq_len(s, i);
      if (!n)
        fail("dsk::io::tokenizer: internal error: a pre-tokenized piece is not valid UTF-8 at byte ", i);
      i += n;
    }
    std::unique_ptr<pcre2_match_data_8, decltype(&pcre2_match_data_free_8)> md(
        pcre2_match_data_create_from_pattern_8(code_.code.get(), nullptr), &pcre2_match_data_free_8);
    if (!md) fail("dsk::io::tokenizer: out of memory for regex match data");
    std::size_t pos = 0;
    while (pos <= s.size()) {
      int rc = pcre2_match_8(code_.code.get(), reinterpret_cast<PCRE2_SPTR8>(s.data()), s.size(), pos,
                             PCRE2_NO_UTF_CHECK, md.get(), nullptr);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // the interpreter keeps its backtracking state on the heap
        rc = pcre2_match_8(code_.code.get(), reinterpret_cast<PCRE2_SPTR8>(s.data()), s.size(), pos,
                           PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        std::array<PCRE2_UCHAR8, 256> msg{};
        pcre2_get_error_message_8(rc, msg.data(), msg.size());
        fail("dsk::io::tokenizer: regex match failed: ", reinterpret_cast<const char*>(msg.data()));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer_8(md.get());
      const std::size_t b = ov[0], e = ov[1];
      if (e > b) {
        f(b, e);
        pos = e;
      } else {
        if (b >= s.size()) break;
        const std::size_t n = utf8_seq_len(s, b);
        pos = b + (n ? n : 1);
      }
    }
  }

 private:
  struct code_free {
    void operator()(pcre2_code_8* c) const { pcre2_code_free_8(c); }
  };
  struct compiled {
    std::unique_ptr<pcre2_code_8, code_free> code;
    int error = 0;
    PCRE2_SIZE offset = 0;
    std::string message;
  };
  static compiled compile(const std::string& pattern, bool literal) {
    compiled c;
    pcre2_compile_context_8* ctx = pcre2_compile_context_create_8(nullptr);
    if (!ctx) fail("dsk::io::tokenizer: out of memory for a regex compile context");
    pcre2_set_newline_8(ctx, PCRE2_NEWLINE_LF);
    // PCRE2_NEVER_BACKSLASH_C: \C matches one code unit, so a match could end inside a UTF-8 character
    // and cut the text into invalid UTF-8 pieces (which later splits would read past).
    // (A literal pattern has no escapes; PCRE2 refuses the option with PCRE2_LITERAL.)
    const std::uint32_t opts =
        PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_NEVER_BACKSLASH_C | PCRE2_UCP | PCRE2_MULTILINE);
    c.code.reset(pcre2_compile_8(reinterpret_cast<PCRE2_SPTR8>(pattern.data()), pattern.size(), opts,
                                 &c.error, &c.offset, ctx));
    pcre2_compile_context_free_8(ctx);
    if (!c.code) {
      std::array<PCRE2_UCHAR8, 256> msg{};
      pcre2_get_error_message_8(c.error, msg.data(), msg.size());
      c.message = reinterpret_cast<const char*>(msg.data());
    }
    return c;
  }
  compiled code_;
};

// Where this PCRE2 build's Unicode tables differ from dsk's, found once per process by asking PCRE2 itself
// (its tables are compiled in and have no query API): each category's code points (by dsk's table) scanned
// for a character the engine puts elsewhere, those characters' engine categories, and \s over every code
// point. About 1.1 million property tests, a few milliseconds with the JIT; nothing when the versions agree
// beyond that scan.
inline const engine_differences& pcre2_differences() {
  static const engine_differences d = [] {
    constexpr int categories = static_cast<int>(std::size(ucd::gc_names));
    const auto first_code_point = [](std::string_view s, std::size_t b) {
      return utf8_decode(s, b, utf8_seq_len(s, b));
    };
    // Every non-surrogate code point, grouped by dsk's category.
    std::array<std::string, categories> by_category;
    for (std::uint32_t cp = 0; cp <= unicode_max_code_point; ++cp)
      if (cp < 0xD800 || cp > 0xDFFF) append_utf8(by_category[static_cast<int>(category_of(cp))], cp);
    engine_differences out;
    std::string differing;
    std::vector<std::uint32_t> differing_cps;
    for (int g = 0; g < categories; ++g) {
      if (by_category[g].empty()) continue;
      const pcre2_regex other(std::string("\\P{") + ucd::gc_names[g] + "}", false,
                              "dsk::io: Unicode table check", unicode_tables::engine);
      other.for_each_match(by_category[g], [&](std::size_t b, std::size_t e) {
        for (std::size_t k = b; k < e;) {
          const std::size_t len = utf8_seq_len(by_category[g], k);
          differing_cps.push_back(first_code_point(by_category[g], k));
          k += len ? len : 1;
        }
      });
    }
    std::sort(differing_cps.begin(), differing_cps.end());
    for (const std::uint32_t cp : differing_cps) append_utf8(differing, cp);
    std::unordered_map<std::uint32_t, ucd::gc> engine_category;
    for (int g = 0; g < categories && !differing.empty(); ++g) {
      const pcre2_regex is(std::string("\\p{") + ucd::gc_names[g] + "}", false,
                           "dsk::io: Unicode table check", unicode_tables::engine);
      is.for_each_match(differing, [&](std::size_t b, std::size_t) {
        engine_category[first_code_point(differing, b)] = static_cast<ucd::gc>(g);
      });
    }
    for (const std::uint32_t cp : differing_cps) {
      const auto it = engine_category.find(cp);
      out.category.emplace_back(cp, it == engine_category.end() ? ucd::gc::Cn : it->second);
    }
    // \s against White_Space, over every code point.
    std::string all;
    for (const auto& s : by_category) all += s;
    cp_ranges engine_space;
    const pcre2_regex space("\\s", false, "dsk::io: Unicode table check", unicode_tables::engine);
    std::vector<std::uint32_t> spaces;
    space.for_each_match(all,
                         [&](std::size_t b, std::size_t) { spaces.push_back(first_code_point(all, b)); });
    std::sort(spaces.begin(), spaces.end());
    for (const std::uint32_t cp : spaces) append_run(engine_space, cp, cp);
    const cp_ranges ours = white_space();
    const auto minus = [](const cp_ranges& a, const cp_ranges& b) {  // a \ b = complement(complement(a) u b)
      return complement(unite(complement(a), b));
    };
    out.white_space_extra = minus(engine_space, ours);
    out.white_space_missing = minus(ours, engine_space);
    return out;
  }();
  return d;
}

// How a Split keeps the matches (the `tokenizers` SplitDelimiterBehavior).
enum class split_behavior { isolated, removed, merged_with_previous, merged_with_next, contiguous };

struct pre_step {
  enum kind_t { split, byte_level } kind = split;
  std::shared_ptr<const pcre2_regex> re;
  split_behavior behavior = split_behavior::isolated;
  bool invert = false;
  bool add_prefix_space = false;  // byte_level
  bool use_regex = false;         // byte_level: GPT-2's split regex first
};

inline void apply_split(const pre_step& st, std::vector<std::string>& pieces) {
  std::vector<std::string> out;
  for (const std::string& p : pieces) {
    // Segments of p: (begin, end, is_match), covering p in order.
    std::vector<std::pair<std::pair<std::size_t, std::size_t>, bool>> seg;
    std::size_t last = 0;
    st.re->for_each_match(p, [&](std::size_t b, std::size_t e) {
      if (b > last) seg.push_back({{last, b}, false});
      seg.push_back({{b, e}, true});
      last = e;
    });
    if (last < p.size()) seg.push_back({{last, p.size()}, false});
    if (st.invert)
      for (auto& s : seg) s.second = !s.second;
    const auto text = [&](const auto& s) { return p.substr(s.first.first, s.first.second - s.first.first); };
    switch (st.behavior) {
      case split_behavior::isolated:
        for (const auto& s : seg) out.push_back(text(s));
        break;
      case split_behavior::removed:
        for (const auto& s : seg)
          if (!s.second) out.push_back(text(s));
        break;
      case split_behavior::merged_with_previous: {
        // A match joins the piece before it, unless that piece is itself a match.
        bool prev_match = false, any = false;
        for (const auto& s : seg) {
          if (s.second && !prev_match && any)
            out.back() += text(s);
          else
            out.push_back(text(s));
          any = true;
          prev_match = s.second;
        }
        break;
      }
      case split_behavior::merged_with_next: {
        // Mirror image: a match joins the piece after it, unless that piece is itself a match.
        std::vector<std::string> rev;
        bool next_match = false;
        for (auto it = seg.rbegin(); it != seg.rend(); ++it) {
          if (it->second && !next_match && !rev.empty())
            rev.back() = text(*it) + rev.back();
          else
            rev.push_back(text(*it));
          next_match = it->second;
        }
        out.insert(out.end(), rev.rbegin(), rev.rend());
        break;
      }
      case split_behavior::contiguous: {
        bool prev_match = false;
        for (const auto& s : seg) {
          if (s.second && prev_match)
            out.back() += text(s);
          else
            out.push_back(text(s));
          prev_match = s.second;
        }
        break;
      }
    }
  }
  pieces.clear();
  for (auto& s : out)
    if (!s.empty()) pieces.push_back(std::move(s));
}

// GPT-2's pre-tokenizer regex, used by ByteLevel when use_regex is true.
inline constexpr std::string_view gpt2_split_regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace detail

// A byte-level BPE tokenizer read from tokenizer.json.
//
// encode(): added tokens are split out first (leftmost-longest; tokens with "normalized": false first, then
// the others, as `tokenizers` does; lstrip/rstrip absorb adjacent whitespace), the rest goes through the
// pre-tokenizer and BPE (lowest merge rank first, leftmost on ties). No BOS is added: prepend the config's
// bos_token_id where the model expects it (DeepSeek-V2: add_bos true).
// decode(): tokens are concatenated; the characters of each token map back to bytes through the GPT-2 table
// (a token with a character outside it, such as a special token, contributes its own UTF-8), and ill-formed
// UTF-8 becomes U+FFFD. Supported: model BPE (merges as "a b" strings or [a, b] pairs, ignore_merges),
// normalizer null or an empty Sequence, pre_tokenizer Sequence/Split (Regex or String; all five behaviours;
// invert)/Digits/ByteLevel ending in ByteLevel, decoder ByteLevel. Anything else throws dsk::unsupported
// naming the field. Difference to `tokenizers` (Oniguruma): PCRE2's \s with UCP does not match U+0085 (NEL);
// Unicode tables may be of different versions.
class tokenizer {
 public:
  static tokenizer parse(std::string_view json_text, std::string_view source = "tokenizer.json");
  // tokenizer.json, or DIR/tokenizer.json when given a directory.
  static tokenizer load(const std::filesystem::path& path);

  // Ids of `text` (valid UTF-8; otherwise dsk::error naming the byte offset).
  std::vector<token_id> encode(std::string_view text) const;

  std::string decode(std::span<const token_id> ids, bool skip_special_tokens = false) const;

  // One past the largest id (vocabulary and added tokens).
  index_t vocab_size() const { return static_cast<index_t>(id_to_token_.size()); }
  std::optional<token_id> token_to_id(std::string_view token) const {
    for (const auto& a : added_)
      if (a.content == token) return a.id;
    const auto it = vocab_.find(std::string(token));
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
  }
  // The token string as stored in tokenizer.json (byte-level characters for vocabulary tokens).
  const std::string& id_to_token(token_id id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= id_to_token_.size() ||
        !has_token_[static_cast<std::size_t>(id)])
      fail("dsk::io::tokenizer::id_to_token: token id ", id, " is not in the vocabulary");
    return id_to_token_[static_cast<std::size_t>(id)];
  }
  bool is_special(token_id id) const {
    return id >= 0 && static_cast<std::size_t>(id) < is_special_.size() &&
           is_special_[static_cast<std::size_t>(id)];
  }

 private:
  struct added_token {
    std::string content;
    token_id id;
    bool special, lstrip, rstrip, normalized;
  };

  template <class... Parts>
  [[noreturn]] void bad(const Parts&... parts) const {
    fail("dsk::io::tokenizer: '", source_, "': ", parts...);
  }
  template <class... Parts>
  [[noreturn]] void unsupported(const Parts&... parts) const {
    fail_unsupported("dsk::io::tokenizer: '", source_, "': ", parts...);
  }

  static const nlohmann::json* field(const nlohmann::json& j, const char* key) {
    const auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  bool flag(const nlohmann::json& j, const char* key, std::string_view where) const {
    const auto* v = field(j, key);
    if (!v) return false;
    if (!v->is_boolean()) bad(where, ".", key, ": expected true or false, got ", detail::json_snippet(*v));
    return v->get<bool>();
  }
  std::string str(const nlohmann::json& j, const char* key, std::string_view where) const {
    const auto* v = field(j, key);
    if (!v || !v->is_string()) bad(where, ".", key, ": expected a string");
    return v->get<std::string>();
  }

  void load_json(const nlohmann::json& j, std::string source) {
    source_ = std::move(source);
    if (!j.is_object()) bad("expected a JSON object, got ", j.type_name());
    load_model(j);
    load_added(j);
    load_normalizer(j);
    load_pre_tokenizer(j);
    load_decoder(j);
  }

  void set_token(token_id id, const std::string& s, bool special) {
    const auto i = static_cast<std::size_t>(id);
    if (i >= id_to_token_.size()) {
      id_to_token_.resize(i + 1);
      has_token_.resize(i + 1, false);
      is_special_.resize(i + 1, false);
    }
    // One id, one string: decode could not give back both (an added token may repeat its vocab entry).
    if (has_token_[i] && id_to_token_[i] != s)
      bad("token id ", id, " is given to both '", detail::truncated(id_to_token_[i], 80), "' and '",
          detail::truncated(s, 80), "'");
    id_to_token_[i] = s;
    has_token_[i] = true;
    is_special_[i] = special;
  }

  void load_model(const nlohmann::json& j) {
    const auto* m = field(j, "model");
    if (!m || !m->is_object()) bad("missing 'model' object");
    if (const auto* t = field(*m, "type"); t && (!t->is_string() || *t != "BPE"))
      unsupported("model.type ", detail::json_snippet(*t), " (dsk supports \"BPE\")");
    if (const auto* d = field(*m, "dropout"); d && (!d->is_number() || d->get<double>() != 0.0))
      unsupported("model.dropout ", detail::json_snippet(*d),
                  " (dropout makes encoding random; dsk supports null)");
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (const auto* v = field(*m, k); v && !(v->is_string() && v->get<std::string>().empty()))
        unsupported("model.", k, " ", detail::json_snippet(*v),
                    " (dsk supports byte-level BPE without affixes)");
    if (flag(*m, "byte_fallback", "model"))
      unsupported("model.byte_fallback true (dsk supports byte-level BPE)");
    ignore_merges_ = flag(*m, "ignore_merges", "model");

    const auto* v = field(*m, "vocab");
    if (!v || !v->is_object()) bad("missing 'model.vocab' object (token -> id)");
    // Ids index a table: they must lie below the number of tokens the file declares (model.vocab entries
    // plus added_tokens entries), so a tiny file cannot ask for a table of 2^31 strings.
    const auto* added = field(j, "added_tokens");
    const std::size_t declared = v->size() + (added && added->is_array() ? added->size() : 0);
    id_limit_ = static_cast<std::int64_t>(std::min<std::size_t>(declared, max_token_ids));
    vocab_.reserve(v->size());
    for (const auto& [tok, id] : v->items()) {
      if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() >= id_limit_)
        bad("model.vocab[\"", detail::truncated(tok, 80), "\"]: expected an id in [0, ", id_limit_,
            ") (the file declares ", declared, " tokens: model.vocab plus added_tokens), got ",
            detail::json_snippet(id));
      vocab_.emplace(tok, id.get<token_id>());
      set_token(id.get<token_id>(), tok, false);
    }
    if (const auto* u = field(*m, "unk_token")) {
      if (!u->is_string()) bad("model.unk_token: expected a string or null");
      const auto it = vocab_.find(u->get<std::string>());
      if (it == vocab_.end())
        bad("model.unk_token '", detail::truncated(u->get<std::string>(), 80), "' is not in the vocabulary");
      unk_ = it->second;
    }
    const auto& table = detail::byte_level_table::get();
    byte_id_.fill(-1);
    for (int b = 0; b < 256; ++b)
      if (const auto it = vocab_.find(table.to_char[static_cast<std::size_t>(b)]); it != vocab_.end())
        byte_id_[static_cast<std::size_t>(b)] = it->second;

    const auto* mg = field(*m, "merges");
    if (!mg || !mg->is_array()) bad("missing 'model.merges' array");
    merges_.reserve(mg->size());
    for (std::size_t r = 0; r < mg->size(); ++r) {
      const auto& e = (*mg)[r];
      std::string a, b;
      if (e.is_string()) {
        const std::string& s = e.get_ref<const std::string&>();
        const auto sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          bad("model.merges[", r, "]: expected \"left right\", got \"", detail::truncated(s, 80), "\"");
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        a = e[0].get<std::string>();
        b = e[1].get<std::string>();
      } else {
        bad("model.merges[", r, "]: expected \"left right\" or [left, right], got ", detail::json_snippet(e));
      }
      const auto ia = vocab_.find(a), ib = vocab_.find(b), iab = vocab_.find(a + b);
      if (ia == vocab_.end() || ib == vocab_.end() || iab == vocab_.end())
        bad("model.merges[", r, "]: '", detail::truncated(a, 80), "' + '", detail::truncated(b, 80),
            "' uses a token that is not in the vocabulary");
      merges_.emplace(pair_key(ia->second, ib->second),
                      std::make_pair(static_cast<std::int32_t>(r), iab->second));
    }
  }

  void load_added(const nlohmann::json& j) {
    const auto* a = field(j, "added_tokens");
    if (!a) return;
    if (!a->is_array()) bad("'added_tokens' must be an array");
    for (std::size_t i = 0; i < a->size(); ++i) {
      const auto& e = (*a)[i];
      const std::string where = "added_tokens[" + std::to_string(i) + "]";
      if (!e.is_object()) bad(where, ": expected an object");
      const auto* id = field(e, "id");
      if (!id || !id->is_number_integer() || id->get<std::int64_t>() < 0 ||
          id->get<std::int64_t>() >= id_limit_)
        bad(where, ".id: expected an id in [0, ", id_limit_,
            ") (the file declares that many tokens: model.vocab plus added_tokens), got ",
            id ? detail::json_snippet(*id) : std::string("nothing"));
      added_token t{str(e, "content", where), id->get<token_id>(),      flag(e, "special", where),
                    flag(e, "lstrip", where), flag(e, "rstrip", where), flag(e, "normalized", where)};
      if (t.content.empty()) bad(where, ".content: empty token");
      if (flag(e, "single_word", where)) unsupported(where, ".single_word true");
      set_token(t.id, t.content, t.special);
      added_.push_back(std::move(t));
    }
    // Longest first, so the first match at a position is the longest one.
    std::stable_sort(added_.begin(), added_.end(), [](const added_token& x, const added_token& y) {
      return x.content.size() > y.content.size();
    });
    for (std::size_t k = 0; k < added_.size(); ++k)
      added_by_first_byte_[static_cast<unsigned char>(added_[k].content[0])].push_back(k);
  }

  void load_normalizer(const nlohmann::json& j) {
    const auto* n = field(j, "normalizer");
    if (!n) return;
    if (n->is_object() && field(*n, "type") && (*n)["type"] == "Sequence" && field(*n, "normalizers") &&
        (*n)["normalizers"].is_array() && (*n)["normalizers"].empty())
      return;
    unsupported("normalizer ", detail::json_snippet(*n, 200), " (dsk supports null or an empty Sequence)");
  }

  void add_pre(const nlohmann::json& p, const std::string& where) {
    if (!p.is_object() || !field(p, "type") || !p["type"].is_string())
      bad(where, ": expected an object with a type");
    const std::string type = p["type"].get<std::string>();
    if (!steps_.empty() && steps_.back().kind == detail::pre_step::byte_level)
      unsupported(where, ": a pre-tokenizer after ByteLevel");
    if (type == "Sequence") {
      const auto* s = field(p, "pretokenizers");
      if (!s || !s->is_array()) bad(where, ".pretokenizers: expected an array");
      for (std::size_t i = 0; i < s->size(); ++i)
        add_pre((*s)[i], where + ".pretokenizers[" + std::to_string(i) + "]");
    } else if (type == "Split") {
      detail::pre_step st;
      const auto* pat = field(p, "pattern");
      if (!pat || !pat->is_object()) bad(where, ".pattern: expected {\"Regex\": ...} or {\"String\": ...}");
      if (const auto* r = field(*pat, "Regex"); r && r->is_string())
        st.re = std::make_shared<detail::pcre2_regex>(r->get<std::string>(), false,
                                                      "dsk::io::tokenizer: '" + source_ + "': " + where);
      else if (const auto* s = field(*pat, "String"); s && s->is_string())
        st.re = std::make_shared<detail::pcre2_regex>(s->get<std::string>(), true,
                                                      "dsk::io::tokenizer: '" + source_ + "': " + where);
      else
        bad(where, ".pattern: expected {\"Regex\": ...} or {\"String\": ...}");
      const std::string b = str(p, "behavior", where);
      if (b == "Isolated")
        st.behavior = detail::split_behavior::isolated;
      else if (b == "Removed")
        st.behavior = detail::split_behavior::removed;
      else if (b == "MergedWithPrevious")
        st.behavior = detail::split_behavior::merged_with_previous;
      else if (b == "MergedWithNext")
        st.behavior = detail::split_behavior::merged_with_next;
      else if (b == "Contiguous")
        st.behavior = detail::split_behavior::contiguous;
      else
        unsupported(where, ".behavior '", b, "'");
      st.invert = flag(p, "invert", where);
      steps_.push_back(std::move(st));
    } else if (type == "Digits") {
      // `tokenizers` splits on char::is_numeric (Unicode Nd, Nl, No = \p{N}): each digit alone, or runs of
      // them.
      detail::pre_step st;
      const bool individual = flag(p, "individual_digits", where);
      st.re = std::make_shared<detail::pcre2_regex>(individual ? "\\p{N}" : "\\p{N}+", false,
                                                    "dsk::io::tokenizer");
      steps_.push_back(std::move(st));
    } else if (type == "ByteLevel") {
      detail::pre_step st;
      st.kind = detail::pre_step::byte_level;
      st.add_prefix_space = flag(p, "add_prefix_space", where);
      st.use_regex = !field(p, "use_regex") || flag(p, "use_regex", where);  // default true
      if (st.use_regex && !gpt2_step_) {
        gpt2_step_ = std::make_shared<detail::pre_step>();
        gpt2_step_->re = std::make_shared<detail::pcre2_regex>(std::string(detail::gpt2_split_regex), false,
                                                               "dsk::io::tokenizer");
      }
      steps_.push_back(std::move(st));
    } else {
      unsupported(where, ": pre-tokenizer type '", type,
                  "' (dsk supports Sequence, Split, Digits, ByteLevel)");
    }
  }

  void load_pre_tokenizer(const nlohmann::json& j) {
    const auto* p = field(j, "pre_tokenizer");
    if (!p) unsupported("pre_tokenizer null (dsk needs a ByteLevel pre-tokenizer)");
    add_pre(*p, "pre_tokenizer");
    if (steps_.empty() || steps_.back().kind != detail::pre_step::byte_level)
      unsupported("pre_tokenizer: dsk needs ByteLevel as the last step (byte-level BPE)");
  }

  void load_decoder(const nlohmann::json& j) {
    const auto* d = field(j, "decoder");
    if (!d) return;
    if (!d->is_object() || !field(*d, "type") || (*d)["type"] != "ByteLevel")
      unsupported("decoder ", detail::json_snippet(*d, 200), " (dsk supports ByteLevel)");
  }

  static std::uint64_t pair_key(token_id a, token_id b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }

  // Splits the text segments (id -1) of seg around added tokens of the given `normalized` class.
  void split_added(std::vector<std::pair<std::string, token_id>>& seg, bool normalized) const {
    std::vector<std::pair<std::string, token_id>> out;
    for (auto& [s, id] : seg) {
      if (id >= 0) {
        out.emplace_back(std::move(s), id);
        continue;
      }
      std::size_t text_begin = 0, i = 0;
      while (i < s.size()) {
        const added_token* hit = nullptr;
        for (const std::size_t k : added_by_first_byte_[static_cast<unsigned char>(s[i])]) {
          const added_token& a = added_[k];
          if (a.normalized == normalized && s.compare(i, a.content.size(), a.content) == 0) {
            hit = &a;
            break;
          }
        }
        if (!hit) {
          ++i;
          continue;
        }
        std::size_t b = i, e = i + hit->content.size();
        if (hit->lstrip) b = strip_left(s, text_begin, b);
        if (hit->rstrip) e = strip_right(s, e);
        if (b > text_begin) out.emplace_back(s.substr(text_begin, b - text_begin), -1);
        out.emplace_back(std::string(), hit->id);
        text_begin = i = e;
      }
      if (text_begin < s.size()) out.emplace_back(s.substr(text_begin), -1);
    }
    seg = std::move(out);
  }
  // Start of the whitespace run that ends at `b` (not before `floor`).
  static std::size_t strip_left(const std::string& s, std::size_t floor, std::size_t b) {
    while (b > floor) {
      std::size_t k = b - 1;
      while (k > floor && (static_cast<unsigned char>(s[k]) & 0xc0) == 0x80) --k;
      const std::size_t n = detail::utf8_seq_len(s, k);
      if (!n || !detail::is_unicode_whitespace(detail::utf8_decode(s, k, n))) break;
      b = k;
    }
    return b;
  }
  static std::size_t strip_right(const std::string& s, std::size_t e) {
    while (e < s.size()) {
      const std::size_t n = detail::utf8_seq_len(s, e);
      if (!n || !detail::is_unicode_whitespace(detail::utf8_decode(s, e, n))) break;
      e += n;
    }
    return e;
  }

  // BPE of one pre-token (raw bytes): lowest-rank merge first, leftmost on ties, as `tokenizers` does; a heap
  // with lazy invalidation keeps long pieces O(n log n).
  void bpe(const std::string& piece, std::vector<token_id>& ids) const {
    if (piece.empty()) return;
    if (piece.size() > 0x7fffffffu)
      fail("dsk::io::tokenizer::encode: a pre-tokenized piece of ", piece.size(),
           " bytes is too long for BPE");
    const auto& table = detail::byte_level_table::get();
    if (ignore_merges_) {
      std::string mapped;
      for (const char c : piece) mapped += table.to_char[static_cast<unsigned char>(c)];
      if (const auto it = vocab_.find(mapped); it != vocab_.end()) {
        ids.push_back(it->second);
        return;
      }
    }
    struct sym {
      token_id id;
      std::int32_t prev, next;
      bool alive;
    };
    std::vector<sym> w(piece.size());
    for (std::size_t i = 0; i < piece.size(); ++i) {
      const auto byte = static_cast<unsigned char>(piece[i]);
      token_id id = byte_id_[byte];
      if (id < 0) {
        if (unk_ < 0)
          fail("dsk::io::tokenizer: '", source_, "': byte ", static_cast<int>(byte),
               " has no token and there is no unk_token");
        id = unk_;
      }
      w[i] = {id, static_cast<std::int32_t>(i) - 1,
              i + 1 < piece.size() ? static_cast<std::int32_t>(i + 1) : -1, true};
    }
    struct cand {
      std::int32_t rank, pos;
      token_id left, right, merged;
      bool operator>(const cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<cand, std::vector<cand>, std::greater<cand>> heap;
    const auto push = [&](std::int32_t pos) {
      if (pos < 0 || w[static_cast<std::size_t>(pos)].next < 0) return;
      const sym& a = w[static_cast<std::size_t>(pos)];
      const sym& b = w[static_cast<std::size_t>(a.next)];
      const auto it = merges_.find(pair_key(a.id, b.id));
      if (it != merges_.end()) heap.push({it->second.first, pos, a.id, b.id, it->second.second});
    };
    for (std::size_t i = 0; i + 1 < w.size(); ++i) push(static_cast<std::int32_t>(i));
    while (!heap.empty()) {
      const cand c = heap.top();
      heap.pop();
      sym& a = w[static_cast<std::size_t>(c.pos)];
      if (!a.alive || a.id != c.left || a.next < 0) continue;
      sym& b = w[static_cast<std::size_t>(a.next)];
      if (b.id != c.right) continue;
      a.id = c.merged;
      b.alive = false;
      a.next = b.next;
      if (b.next >= 0) w[static_cast<std::size_t>(b.next)].prev = c.pos;
      push(a.prev);
      push(c.pos);
    }
    for (std::int32_t i = 0; i >= 0; i = w[static_cast<std::size_t>(i)].next)
      ids.push_back(w[static_cast<std::size_t>(i)].id);
  }

  std::string source_;
  std::int64_t id_limit_ = 0;  // ids lie in [0, id_limit_)
  std::unordered_map<std::string, token_id> vocab_;
  std::unordered_map<std::uint64_t, std::pair<std::int32_t, token_id>>
      merges_;  // (left, right) -> (rank, merged)
  std::array<token_id, 256> byte_id_{};
  token_id unk_ = -1;
  bool ignore_merges_ = false;
  std::vector<added_token> added_;
  std::array<std::vector<std::size_t>, 256> added_by_first_byte_;  // indices into added_, longest first
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_token_, is_special_;
  std::vector<detail::pre_step> steps_;
  std::shared_ptr<detail::pre_step> gpt2_step_;
};

// Out of line: in compiled mode (DSK_COMPILED_KERNELS=1) defined once in dsk::kernels (src/kernels/io.cpp),
// so that a TU using the tokenizer does not generate the loader and BPE code again.
#if DSK_KERNELS_DEFINE(IO)
DSK_KERNEL_INLINE tokenizer tokenizer::parse(std::string_view json_text, std::string_view source) {
  tokenizer t;
  t.load_json(parse_json(json_text, source), std::string(source));
  return t;
}
DSK_KERNEL_INLINE tokenizer tokenizer::load(const std::filesystem::path& path) {
  std::error_code ec;
  const auto file = std::filesystem::is_directory(path, ec) ? path / "tokenizer.json" : path;
  return parse(read_text_file(file, "tokenizer"), file.string());
}

DSK_KERNEL_INLINE std::vector<token_id> tokenizer::encode(std::string_view text) const {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = detail::utf8_seq_len(text, i);
    if (!n) fail("dsk::io::tokenizer::encode: the text is not valid UTF-8 at byte ", i);
    i += n;
  }
  // Segments: text to tokenize (id -1) or an added token (its id).
  std::vector<std::pair<std::string, token_id>> seg{{std::string(text), -1}};
  split_added(seg, false);
  split_added(seg, true);
  std::vector<token_id> ids;
  for (const auto& [s, id] : seg) {
    if (id >= 0) {
      ids.push_back(id);
      continue;
    }
    std::vector<std::string> pieces{s};
    for (const auto& st : steps_) {
      if (st.kind == detail::pre_step::split) detail::apply_split(st, pieces);
      if (st.kind == detail::pre_step::byte_level) {
        if (st.add_prefix_space)
          for (auto& p : pieces)
            if (p.empty() || p[0] != ' ') {
              std::string q(1, ' ');  // not p.insert(0, " "): GCC 12 -Wrestrict false positive
              q += p;
              p = std::move(q);
            }
        if (st.use_regex) detail::apply_split(*gpt2_step_, pieces);
      }
    }
    for (const auto& p : pieces) bpe(p, ids);
  }
  return ids;
}

DSK_KERNEL_INLINE std::string tokenizer::decode(std::span<const token_id> ids,
                                                bool skip_special_tokens) const {
  const auto& table = detail::byte_level_table::get();
  std::string bytes;
  for (const token_id id : ids) {
    if (id < 0 || static_cast<std::size_t>(id) >= id_to_token_.size() ||
        !has_token_[static_cast<std::size_t>(id)])
      fail("dsk::io::tokenizer::decode: token id ", id, " is not in the vocabulary (", id_to_token_.size(),
           " ids)");
    if (skip_special_tokens && is_special_[static_cast<std::size_t>(id)]) continue;
    const std::string& tok = id_to_token_[static_cast<std::size_t>(id)];
    std::string mapped;
    bool all_mapped = true;
    for (std::size_t i = 0; i < tok.size();) {
      const std::size_t n = detail::utf8_seq_len(tok, i);
      const auto it = n ? table.to_byte.find(detail::utf8_decode(tok, i, n)) : table.to_byte.end();
      if (it == table.to_byte.end()) {
        all_mapped = false;
        break;
      }
      mapped += static_cast<char>(it->second);
      i += n;
    }
    bytes += all_mapped ? mapped : tok;
  }
  return detail::utf8_lossy(bytes);
}
#endif  // DSK_KERNELS_DEFINE(IO)

DSK_ISA_END
}  // namespace dsk::io
