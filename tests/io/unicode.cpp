// dsk's Unicode General_Category table and the regex rewrite that uses it (include/dsk/io/unicode_regex.hpp):
// DeepSeek-V3's pre-tokenizer on characters of every Unicode version against Hugging Face tokenizers, the
// table against PCRE2's built-in tables, and the rewritten patterns against the patterns as written.
#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "dsk/io/tokenizer.hpp"
#include "io_test_util.hpp"

using dsk::io::tokenizer;
using dsk::io::detail::pcre2_regex;
using dsk::io::detail::unicode_tables;
using dsk::test::io_data;
namespace ucd = dsk::io::ucd;

namespace {
nlohmann::json load_json(const char* name) {
  return dsk::io::parse_json(dsk::io::read_text_file(io_data(name), "golden"), name);
}

constexpr const char* category_names[] = {"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl",
                                          "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc",
                                          "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"};

constexpr int unassigned = 29;
static_assert(std::string_view(category_names[unassigned]) == "Cn");

// The table's category of a code point (an index into category_names), by binary search over the runs.
int table_category_index(std::uint32_t cp) {
  const auto* end = std::end(ucd::gc_runs);
  const auto* it = std::upper_bound(std::begin(ucd::gc_runs), end, cp,
                                    [](std::uint32_t c, const ucd::gc_run& r) { return c < r.first; });
  if (it == std::begin(ucd::gc_runs)) return unassigned;
  --it;
  return cp <= it->last ? static_cast<int>(it->category) : unassigned;
}
std::string table_category(std::uint32_t cp) { return category_names[table_category_index(cp)]; }

std::string hex(std::uint32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04X", static_cast<unsigned>(cp));
  return buf;
}

bool is_surrogate(std::uint32_t cp) { return cp >= 0xD800 && cp <= 0xDFFF; }

// A set of code points as a bitmap (the tests compare sets of ~a million code points).
// (Bytes rather than vector<bool>: the sanitizer build runs these loops at -O0.)
struct cp_set {
  std::vector<unsigned char> bits = std::vector<unsigned char>(0x110000);
  std::size_t count(std::uint32_t cp) const { return bits[cp]; }
  void insert(std::uint32_t cp) { bits[cp] = 1; }
  std::size_t erase(std::uint32_t cp) { return bits[cp] ? (bits[cp] = 0, 1) : 0; }
  std::size_t size() const { return static_cast<std::size_t>(std::count(bits.begin(), bits.end(), 1)); }
  friend bool operator==(const cp_set&, const cp_set&) = default;
  static cp_set of(const std::vector<std::uint32_t>& cps) {
    cp_set s;
    for (const auto cp : cps) s.insert(cp);
    return s;
  }
};

// Every non-surrogate code point once, as UTF-8.
const std::string& all_code_points() {
  static const std::string text = [] {
    std::string t;
    for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp)
      if (!is_surrogate(cp)) dsk::io::detail::append_utf8(t, cp);
    return t;
  }();
  return text;
}

// The code point whose UTF-8 starts at s[i] (valid UTF-8).
std::uint32_t decode_at(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(s[i + k]));
  };
  if (b(0) < 0x80) return b(0);
  if (b(0) < 0xE0) return (b(0) & 0x1F) << 6 | (b(1) & 0x3F);
  if (b(0) < 0xF0) return (b(0) & 0x0F) << 12 | (b(1) & 0x3F) << 6 | (b(2) & 0x3F);
  return (b(0) & 0x07) << 18 | (b(1) & 0x3F) << 12 | (b(2) & 0x3F) << 6 | (b(3) & 0x3F);
}

// The code points a one-character pattern matches.
cp_set matched(const pcre2_regex& re) {
  const std::string& text = all_code_points();
  cp_set out;
  re.for_each_match(text, [&](std::size_t b, std::size_t) { out.insert(decode_at(text, b)); });
  return out;
}

std::string pcre2_unicode_version() {
  char buf[64] = {};
  pcre2_config_8(PCRE2_CONFIG_UNICODE_VERSION, buf);
  return buf;
}

// All match spans of a pattern in a text.
std::vector<std::pair<std::size_t, std::size_t>> spans(const pcre2_regex& re, std::string_view s) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  re.for_each_match(s, [&](std::size_t b, std::size_t e) { out.emplace_back(b, e); });
  return out;
}

// The pattern as written, through PCRE2's API directly, with PCRE2's own tables and without
// auto-possessification: PCRE2 10.42 makes `\P{Sk}?` possessive before `\P{Mc}` as if the two sets were
// disjoint, so that
// `\P{Sk}?\P{Mc}` does not match "\u2160" (tokenizers does). The reference of the rewrite's differential
// test.
class reference_regex {
 public:
  explicit reference_regex(const std::string& pattern) {
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_compile_context_8* ctx = pcre2_compile_context_create_8(nullptr);
    pcre2_set_newline_8(ctx, PCRE2_NEWLINE_LF);
    code_ = pcre2_compile_8(reinterpret_cast<PCRE2_SPTR8>(pattern.data()), pattern.size(),
                            PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_NO_AUTO_POSSESS, &err, &off, ctx);
    pcre2_compile_context_free_8(ctx);
  }
  ~reference_regex() { pcre2_code_free_8(code_); }
  reference_regex(const reference_regex&) = delete;
  reference_regex& operator=(const reference_regex&) = delete;
  bool valid() const { return code_ != nullptr; }
  // Non-overlapping matches left to right; after an empty match the search resumes one character later.
  std::vector<std::pair<std::size_t, std::size_t>> spans(std::string_view s) const {
    std::vector<std::pair<std::size_t, std::size_t>> out;
    pcre2_match_data_8* md = pcre2_match_data_create_from_pattern_8(code_, nullptr);
    for (std::size_t pos = 0; pos <= s.size();) {
      const int rc =
          pcre2_match_8(code_, reinterpret_cast<PCRE2_SPTR8>(s.data()), s.size(), pos, 0, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) FAIL("reference_regex: PCRE2 error " << rc);
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer_8(md);
      if (ov[1] > ov[0]) {
        out.emplace_back(ov[0], ov[1]);
        pos = ov[1];
      } else {
        pos = ov[0] + 1;
        while (pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) ++pos;
      }
    }
    pcre2_match_data_free_8(md);
    return out;
  }

 private:
  pcre2_code_8* code_ = nullptr;
};

bool compiles(const std::string& pattern, unicode_tables t) {
  try {
    pcre2_regex re(pattern, false, "test", t);
    return true;
  } catch (const dsk::error&) {
    return false;
  }
}
}  // namespace

TEST_CASE(
    "tokenizer: DeepSeek-V3's pre-tokenizer on characters of every Unicode version up to 16 equals Hugging "
    "Face tokenizers",
    "[io][tokenizer][unicode]") {
  const auto g = load_json("tokenizer_v3_cases.json");
  const tokenizer t = tokenizer::load(io_data("tokenizer_v3.json"));
  std::set<std::string> versions;
  for (const auto& c : g["cases"]) {
    const std::string text = c["text"].get<std::string>();
    INFO("Unicode " << c["unicode"].get<std::string>() << " " << c["group"].get<std::string>() << ": " << text
                    << "\ntokenizers' pieces: " << c["pieces"].dump());
    const auto ids = t.encode(text);
    CHECK(ids == c["ids"].get<std::vector<dsk::io::token_id>>());
    CHECK(t.decode(ids) == c["decoded"].get<std::string>());
    versions.insert(c["unicode"].get<std::string>());
  }
  // The golden file covers what it claims: 27 versions (1.1 ... 16.0) and unassigned code points.
  CHECK(versions.size() == 28);
  CHECK(versions.count("15.0") + versions.count("15.1") + versions.count("16.0") == 3);
}

TEST_CASE("unicode: dsk's General_Category table equals PCRE2's built-in tables except where Unicode changed",
          "[io][unicode]") {
  const auto g = load_json("unicode_properties.json");
  REQUIRE(g["table_unicode_version"].get<std::string>() == ucd::gc_table_unicode_version);
  // The generator's record of what changed between Python's unicodedata (the baseline) and the table.
  std::map<std::uint32_t, std::string> changed;
  for (const auto& r : g["changed_since_baseline"])
    for (auto cp = r[0].get<std::uint32_t>(); cp <= r[1].get<std::uint32_t>(); ++cp)
      changed.emplace(cp, r[3].get<std::string>());
  const std::string engine = pcre2_unicode_version();
  const bool engine_is_baseline = engine == g["baseline_unicode_version"].get<std::string>();
  const bool engine_is_table = engine == ucd::gc_table_unicode_version;
  if (!engine_is_baseline && !engine_is_table)
    WARN("PCRE2 has Unicode " << engine
                              << ", neither the baseline nor the table: only dsk's side is checked");

  // Both rewrites: the engine's properties corrected (the default) and explicit ranges throughout. Indexed
  // by category (category_names); Cs stays empty: no surrogate is in a UTF-8 subject.
  constexpr int categories = static_cast<int>(std::size(category_names));
  std::vector<cp_set> native(categories), ours(categories), ranges(categories);
  for (int c = 0; c < categories; ++c) {
    const std::string name = category_names[c];
    if (name == "Cs") continue;
    native[c] = matched(pcre2_regex("\\p{" + name + "}", false, "test", unicode_tables::engine));
    ours[c] = matched(pcre2_regex("\\p{" + name + "}", false, "test"));
    ranges[c] = matched(pcre2_regex("\\p{" + name + "}", false, "test", unicode_tables::dsk_ranges));
  }
  // Counted, not asserted per code point (1.1 million of them); the first of each kind is reported.
  std::size_t differences = 0, unexpected = 0, rewrite_errors = 0;
  std::string first_unexpected, first_rewrite_error;
  for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (is_surrogate(cp)) continue;
    const int cat = table_category_index(cp);
    for (const auto* rewrite : {&ours, &ranges})
      for (int c = 0; c < categories; ++c)
        if (((*rewrite)[c].count(cp) != 0) != (c == cat) &&
            !rewrite_errors++)  // the rewrite matches the table
          first_rewrite_error =
              "U+" + hex(cp) + " \\p{" + category_names[c] + "}, table " + category_names[cat];
    int engine_cat = -1;  // none: the engine has no category for it
    for (int c = 0; c < categories; ++c)
      if (native[c].count(cp)) engine_cat = c;
    if (engine_cat != cat) {
      ++differences;
      const bool expected = engine_is_baseline && changed.count(cp) && changed.at(cp) == category_names[cat];
      if (!expected && !unexpected++)
        first_unexpected = "U+" + hex(cp) + ": PCRE2 " +
                           (engine_cat < 0 ? "none" : category_names[engine_cat]) + ", dsk " +
                           category_names[cat];
    }
  }
  INFO(first_rewrite_error);
  CHECK(rewrite_errors == 0);
  if (engine_is_baseline || engine_is_table) {
    INFO(first_unexpected);
    CHECK(unexpected == 0);
  }
  if (engine_is_baseline) CHECK(differences == changed.size());
  if (engine_is_table) CHECK(differences == 0);
  // The case on Debian 12's PCRE2: an emoji of Unicode 15.0 is unassigned to the engine, So to dsk.
  CHECK(table_category(0x1FA77) == "So");
  CHECK(table_category(0x10D4A) == "Lo");  // Garay, Unicode 16.0
}

TEST_CASE("unicode: \\s and the group and long property names", "[io][unicode]") {
  const auto g = load_json("unicode_properties.json");
  // \s is White_Space, as tokenizers' \s; PCRE2's own also has U+180E (a space before Unicode 6.3).
  const auto ws = matched(pcre2_regex("\\s", false, "test"));
  CHECK(ws == cp_set::of(g["tokenizers_white_space"].get<std::vector<std::uint32_t>>()));
  auto engine_ws = matched(pcre2_regex("\\s", false, "test", unicode_tables::engine));
  CHECK(engine_ws.erase(0x180E) == 1);
  CHECK(engine_ws == ws);
  CHECK(matched(pcre2_regex("[^\\S]", false, "test")) == ws);
  CHECK(matched(pcre2_regex("\\s", false, "test", unicode_tables::dsk_ranges)) == ws);
  CHECK(matched(pcre2_regex("[^\\S]", false, "test", unicode_tables::dsk_ranges)) == ws);
  // lstrip / rstrip of added tokens use the tokenizer's own White_Space list: the same set.
  cp_set lstrip;
  for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp)
    if (dsk::io::detail::is_unicode_whitespace(cp)) lstrip.insert(cp);
  CHECK(lstrip == ws);

  // A group is the union of its categories; long names and loose spellings denote the same sets; negations.
  const auto letters = matched(pcre2_regex("\\p{L}", false, "test"));
  cp_set lu_ll_lt_lm_lo;
  for (const char* c : {"Lu", "Ll", "Lt", "Lm", "Lo"}) {
    const auto s = matched(pcre2_regex(std::string("\\p{") + c + "}", false, "test"));
    for (std::size_t cp = 0; cp < s.bits.size(); ++cp)
      if (s.bits[cp]) lu_ll_lt_lm_lo.insert(static_cast<std::uint32_t>(cp));
  }
  CHECK(letters == lu_ll_lt_lm_lo);
  for (const char* same :
       {"\\pL", "\\p{Letter}", "\\p{letter}", "\\P{^L}", "[\\p{L}]", "[^\\P{L}]", "[\\pL]"})
    CHECK(matched(pcre2_regex(same, false, "test")) == letters);
  CHECK(matched(pcre2_regex("\\p{Lowercase_Letter}", false, "test")) ==
        matched(pcre2_regex("\\p{Ll}", false, "test")));
  CHECK(matched(pcre2_regex("\\p{L&}", false, "test")) ==
        matched(pcre2_regex("[\\p{Lu}\\p{Ll}\\p{Lt}]", false, "test")));
  const auto digits = matched(pcre2_regex("\\p{Nd}", false, "test"));
  CHECK(matched(pcre2_regex("\\d", false, "test")) == digits);
  CHECK(digits.count(0x10D40));  // Garay digit zero, Unicode 16.0
  const auto not_digits = matched(pcre2_regex("\\D", false, "test"));
  CHECK(not_digits.size() + digits.size() == 0x110000 - 0x800);
  CHECK(matched(pcre2_regex("[^\\d]", false, "test")) == not_digits);
  CHECK(matched(pcre2_regex("\\P{Nd}", false, "test")) == not_digits);
}

TEST_CASE("unicode: what the rewrite leaves to PCRE2", "[io][unicode][regex]") {
  using dsk::io::detail::expand_unicode_properties;
  // Scripts, \w, POSIX classes, surrogates, quoted text, comments: unchanged.
  for (const std::string p : {"\\p{Han}+", "\\w+\\b", "[[:alpha:]]", "\\p{Cs}", "\\Q\\p{L}\\E", "(?#\\p{L})x",
                              "\\\\p{L}", "(?x)a # \\p{L}\n", "\\p{Any}"})
    CHECK(expand_unicode_properties(p) == p);
  // Under (?i) a class keeps \p (PCRE2 would fold explicit ranges); outside a class a (?-i:...) group keeps
  // \p's case-sensitive meaning.
  CHECK(expand_unicode_properties("(?i)[\\p{Lu}]") == "(?i)[\\p{Lu}]");
  CHECK(expand_unicode_properties("(?i:[\\p{Lu}])[\\p{Lu}]").find("[\\p{Lu}]") == 4);
  CHECK(expand_unicode_properties("(?i)\\p{Lu}").rfind("(?i)(?-i:[", 0) == 0);
  const pcre2_regex upper("(?i)\\p{Lu}+", false, "test");
  const pcre2_regex upper_engine("(?i)\\p{Lu}+", false, "test", unicode_tables::engine);
  CHECK(spans(upper, "aBcD") == spans(upper_engine, "aBcD"));
  CHECK(spans(upper, "aBcD").size() == 2);
  // A property beside a '-' in a class stays as written, so PCRE2 keeps its own reading of the range.
  CHECK(expand_unicode_properties("[a-\\p{L}]") == "[a-\\p{L}]");
  CHECK(expand_unicode_properties("[\\p{L}-z]") == "[\\p{L}-z]");
  CHECK(expand_unicode_properties("[\\p{L}-]") != "[\\p{L}-]");
  CHECK(expand_unicode_properties("[-\\p{L}]") != "[-\\p{L}]");
  // PCRE2 10.42's auto-possessification drops this match (see reference_regex); tokenizers 0.23.3 matches "Ⅰ"
  // whole, and so does the rewritten pattern.
  CHECK(spans(pcre2_regex("\\P{Sk}?\\P{Mc}", false, "test"), "\u2160") ==
        std::vector<std::pair<std::size_t, std::size_t>>{{0, 3}});
  // A leading ']' is a literal and does not end the class.
  const pcre2_regex bracket("[]\\p{N}]+", false, "test");
  CHECK(spans(bracket, "x]1٣]y") == std::vector<std::pair<std::size_t, std::size_t>>{{1, 6}});
}

TEST_CASE("unicode: rewritten patterns match as written wherever the Unicode versions agree",
          "[io][unicode]") {
  // Random patterns from the constructs tokenizer.json files use (and some they do not), compiled as written
  // (PCRE2's tables) and rewritten (dsk's): both compile or neither does, and on texts of characters whose
  // category is the same in both tables, the matches are the same.
  const auto g = load_json("unicode_properties.json");
  std::set<std::uint32_t> changed;
  for (const auto& r : g["changed_since_baseline"])
    for (auto cp = r[0].get<std::uint32_t>(); cp <= r[1].get<std::uint32_t>(); ++cp) changed.insert(cp);
  const std::string engine = pcre2_unicode_version();
  const bool engine_is_baseline = engine == g["baseline_unicode_version"].get<std::string>();
  if (!engine_is_baseline && engine != ucd::gc_table_unicode_version) {
    WARN("PCRE2 has Unicode " << engine << ": which characters differ is not on record, nothing compared");
    return;
  }

  std::mt19937 rng(20261204);
  const auto pick = [&](std::initializer_list<const char*> xs) { return *(xs.begin() + rng() % xs.size()); };
  const auto prop = [&] {
    std::string name = pick({"L",  "Lu", "Ll", "Lt", "Lm", "Lo", "M",  "Mn", "Mc", "Me",  "N",    "Nd", "Nl",
                             "No", "P",  "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "S",   "Sm",   "Sc", "Sk",
                             "So", "Z",  "Zs", "C",  "Cc", "Cf", "Co", "Cn", "LC", "Han", "Latin"});
    switch (rng() % 6) {
      case 0:
        return "\\P{" + name + "}";
      case 1:
        return "\\p{^" + name + "}";
      case 2:
        return std::string(pick({"\\d", "\\D", "\\pL", "\\PN", "\\s", "\\w"}));
      default:
        return "\\p{" + name + "}";
    }
  };
  std::function<std::string(int)> expr = [&](int depth) -> std::string {
    std::string out;
    const int items = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < items; ++k) {
      std::string atom;
      switch (rng() % (depth > 2 ? 4 : 7)) {
        case 0:
          atom = prop();
          break;
        case 1:
          atom = pick({"a", " ", "\\r", "\\n", "x", "\\.", "-", "1"});
          break;
        case 2:
          atom = pick({"[a-z]", "[\\r\\n]", "[]x]", "[-a]", "[a-]", "[[:digit:]]"});
          break;
        case 3: {
          atom = rng() % 3 == 0 ? "[^" : "[";
          const int n = 1 + static_cast<int>(rng() % 4);
          for (int j = 0; j < n; ++j)
            atom += rng() % 2 ? prop() : pick({"a", "\\r", "\\n", "0-9", "\\-", "_"});
          atom += ']';
          break;
        }
        case 4:
          atom = "(" + expr(depth + 1) + "|" + expr(depth + 1) + ")";
          break;
        case 5:
          atom = pick({"(?i)", "(?i:", "(?-i:", "(?:", "(?="}) + expr(depth + 1) + ")";
          break;
        default:
          atom = "(?i)" + expr(depth + 1);
          break;
      }
      // Groups are not repeated without bound: nested unbounded repeats backtrack exponentially, and PCRE2's
      // interpreter (AArch64 under qemu has no JIT) stops with "match limit exceeded".
      if (atom.front() == '(')
        atom += pick({"", "", "?"});
      else if (atom != "(?i)")
        atom += pick({"", "", "+", "*", "?", "{1,3}"});
      out += atom;
    }
    return out;
  };
  // Subject characters: ASCII, Latin-1, letters with case, marks, digits of several scripts, CJK, emoji, and
  // characters of Unicode 15 and 16 (unassigned to a Unicode 14 PCRE2).
  const std::vector<std::uint32_t> alphabet = {
      'a',    'B',     'x',    ' ',    '\n',   '\r',    '-',     '.',     '_',     '1',     0xB2,
      0xC9,   0xE9,    0x1C5,  0x2B0,  0x301,  0x488,   0x660,   0x903,   0x2160,  0x2028,  0x3000,
      0x4E00, 0x1F600, 0x20AC, 0x2019, 0xE000, 0x1FA77, 0x10D4A, 0x10D40, 0x1CC00, 0x11F00, 0x1E4D0};
  // The characters both tables classify alike (U+180E, where PCRE2's \s differs, is in neither list).
  std::vector<std::uint32_t> agreed;
  for (const std::uint32_t cp : alphabet)
    if (!engine_is_baseline || !changed.count(cp)) agreed.push_back(cp);
  REQUIRE(agreed.size() > 20);
  int compared = 0, compiled = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const std::string pattern = expr(0);
    INFO("pattern: " << pattern);
    const reference_regex theirs(pattern);
    REQUIRE(compiles(pattern, unicode_tables::dsk) == theirs.valid());
    if (!theirs.valid()) continue;
    ++compiled;
    REQUIRE(compiles(pattern, unicode_tables::dsk_ranges) == theirs.valid());
    const pcre2_regex ours(pattern, false, "test");
    const pcre2_regex ranges(pattern, false, "test", unicode_tables::dsk_ranges);
    for (int s = 0; s < 8; ++s) {
      std::string text, hex;
      const int len = static_cast<int>(rng() % 24);
      for (int k = 0; k < len; ++k) {
        const std::uint32_t cp = agreed[rng() % agreed.size()];
        dsk::io::detail::append_utf8(text, cp);
        hex += " " + std::to_string(cp);
      }
      INFO("text: " << text << " (code points" << hex << ")");
      const auto want = theirs.spans(text);
      REQUIRE(spans(ours, text) == want);
      REQUIRE(spans(ranges, text) == want);
      ++compared;
    }
  }
  INFO(compared << " texts compared");
  CHECK(compiled > 200);  // most random patterns are valid, so the comparison is not vacuous
}

TEST_CASE("unicode: errors name the pattern as written", "[io][unicode]") {
  REQUIRE_THROWS_WITH(pcre2_regex("\\p{L}(x", false, "tokenizer.json: pre_tokenizer"),
                      Catch::Contains("cannot compile regex '\\p{L}(x' at offset 7") &&
                          Catch::Contains("missing closing parenthesis"));
  REQUIRE_THROWS_WITH(pcre2_regex("[\\p{N}", false, "where"),
                      Catch::Contains("cannot compile regex '[\\p{N}' at offset 6"));
  REQUIRE_THROWS_WITH(pcre2_regex("\\p{NoSuchProperty}", false, "where"),
                      Catch::Contains("unknown property"));
}
