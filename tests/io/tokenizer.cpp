#include "dsk/io/tokenizer.hpp"

#include <algorithm>
#include <functional>
#include <random>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "io_test_util.hpp"

using dsk::io::token_id;
using dsk::io::tokenizer;
using dsk::test::io_data;

namespace {
nlohmann::json load_json(const char* name) {
  return dsk::io::parse_json(dsk::io::read_text_file(io_data(name), "golden"), name);
}
const tokenizer& deepseek_like() {
  static const tokenizer t = tokenizer::load(io_data("tokenizer.json"));
  return t;
}
}  // namespace

TEST_CASE("tokenizer: ids and decodes equal those of Hugging Face tokenizers (DeepSeek-V2 pre-tokenizer)",
          "[io][tokenizer]") {
  const auto g = load_json("tokenizer_cases.json");
  const tokenizer& t = deepseek_like();
  CHECK(t.vocab_size() == g["vocab_size"].get<dsk::index_t>());
  CHECK(t.token_to_id("<｜begin▁of▁sentence｜>") == g["bos"].get<token_id>());
  CHECK(t.token_to_id("<｜end▁of▁sentence｜>") == g["eos"].get<token_id>());
  CHECK(t.is_special(g["bos"].get<token_id>()));
  CHECK(!t.token_to_id("no such token").has_value());
  for (const auto& c : g["cases"]) {
    const std::string text = c["text"].get<std::string>();
    INFO("text: " << text);
    const auto ids = t.encode(text);
    REQUIRE(ids == c["ids"].get<std::vector<token_id>>());
    REQUIRE(t.decode(ids) == c["decoded"].get<std::string>());
    REQUIRE(t.decode(ids, true) == c["decoded_skip_special"].get<std::string>());
  }
  // Decoding a prefix of the ids of multi-byte text yields U+FFFD for the cut character, as Rust's lossy
  // UTF-8.
  for (const auto& c : g["partial_decodes"]) {
    const auto ids = c["ids"].get<std::vector<token_id>>();
    INFO("ids: " << c["ids"].dump());
    REQUIRE(t.decode(ids) == c["decoded"].get<std::string>());
  }
}

TEST_CASE("tokenizer: every pre-tokenizer option against Hugging Face tokenizers", "[io][tokenizer][regex]") {
  const auto g = load_json("tokenizer_variant_cases.json");
  const tokenizer t = tokenizer::load(io_data("tokenizer_variant.json"));
  for (const auto& c : g["cases"]) {
    const std::string text = c["text"].get<std::string>();
    INFO("text: " << text);
    const auto ids = t.encode(text);
    REQUIRE(ids == c["ids"].get<std::vector<token_id>>());
    REQUIRE(t.decode(ids) == c["decoded"].get<std::string>());
  }
}

TEST_CASE("tokenizer: encode/decode round trip on random UTF-8 text", "[io][tokenizer]") {
  const tokenizer& t = deepseek_like();
  // Code point ranges: ASCII (no '<', so no added token forms by chance), Latin-1, Greek, CJK, Hangul, emoji,
  // Unicode spaces.
  const std::vector<std::pair<std::uint32_t, std::uint32_t>> ranges = {
      {0x20, 0x3b},       {0x3d, 0x7e},     {0x0a, 0x0a},     {0x09, 0x09},
      {0xa0, 0xff},       {0x391, 0x3c9},   {0x4e00, 0x9fa5}, {0xac00, 0xd7a3},
      {0x1f600, 0x1f64f}, {0x3000, 0x3002}, {0x2000, 0x200a}, {0x660, 0x669}};
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::string s;
    const int len = static_cast<int>(rng() % 40);
    for (int k = 0; k < len; ++k) {
      const auto& [lo, hi] = ranges[rng() % ranges.size()];
      dsk::io::detail::append_utf8(s, lo + static_cast<std::uint32_t>(rng() % (hi - lo + 1)));
    }
    INFO("text: " << s);
    REQUIRE(t.decode(t.encode(s)) == s);
  }
}

TEST_CASE("tokenizer: long inputs and long pieces round-trip", "[io][tokenizer]") {
  const tokenizer& t = deepseek_like();
  // Long single pieces (one letter run, one whitespace run, one CJK run) exercise the BPE heap and the
  // regexes' backtracking; a long mixed text the whole pipeline.
  for (const std::string& s :
       {std::string(20000, 'a'), std::string(5000, ' ') + "x", std::string(3000, '\n'), [] {
          std::string r;
          for (int i = 0; i < 2000; ++i) r += "深度";
          return r;
        }()}) {
    const auto ids = t.encode(s);
    REQUIRE(!ids.empty());
    REQUIRE(t.decode(ids) == s);
  }
  std::string mixed;
  for (int i = 0; i < 300; ++i)
    mixed += "Line " + std::to_string(i) + ": DeepSeek-V2 深度求索 😀  \t<|EOT|>\n";
  const auto ids = t.encode(mixed);
  REQUIRE(t.decode(ids) == mixed);
  REQUIRE(std::count(ids.begin(), ids.end(), *t.token_to_id("<|EOT|>")) == 300);
}

TEST_CASE("tokenizer: invalid input and unsupported files are clear errors", "[io][tokenizer]") {
  const tokenizer& t = deepseek_like();
  REQUIRE_THROWS_WITH(t.encode("ok \xff bad"), Catch::Contains("not valid UTF-8 at byte 3"));
  REQUIRE_THROWS_WITH(t.encode("\xe6\xb7"), Catch::Contains("not valid UTF-8 at byte 0"));
  const std::vector<token_id> bad_ids{1, 100000};
  REQUIRE_THROWS_WITH(t.decode(bad_ids), Catch::Contains("token id 100000 is not in the vocabulary"));
  const std::vector<token_id> neg{-1};
  REQUIRE_THROWS_WITH(t.decode(neg), Catch::Contains("token id -1"));

  // A minimal valid file, then one edit per case.
  const auto base = nlohmann::json::parse(R"({
    "added_tokens": [],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}
  })");
  const tokenizer small = tokenizer::parse(base.dump(), "small.json");
  CHECK(small.encode("abab") == std::vector<token_id>{2, 2});
  REQUIRE_THROWS_WITH(small.encode("c"), Catch::Contains("byte 99 has no token and there is no unk_token"));

  struct bad_case {
    const char* what;
    std::function<void(nlohmann::json&)> edit;
    const char* message;
    bool unsupported;
  };
  const std::vector<bad_case> cases = {
      {"NFC normalizer",
       [](auto& j) {
         j["normalizer"] = {{"type", "NFC"}};
       },
       "normalizer", true},
      {"WordPiece", [](auto& j) { j["model"]["type"] = "WordPiece"; }, "model.type \"WordPiece\"", true},
      {"dropout", [](auto& j) { j["model"]["dropout"] = 0.1; }, "model.dropout", true},
      {"byte fallback", [](auto& j) { j["model"]["byte_fallback"] = true; }, "model.byte_fallback", true},
      {"Whitespace",
       [](auto& j) {
         j["pre_tokenizer"] = {{"type", "Whitespace"}};
       },
       "pre-tokenizer type 'Whitespace'", true},
      {"no ByteLevel",
       [](auto& j) {
         j["pre_tokenizer"] = {{"type", "Digits"}, {"individual_digits", true}};
       },
       "needs ByteLevel as the last step", true},
      {"null pre-tokenizer", [](auto& j) { j["pre_tokenizer"] = nullptr; }, "pre_tokenizer null", true},
      {"WordPiece decoder",
       [](auto& j) {
         j["decoder"] = {{"type", "WordPiece"}};
       },
       "decoder", true},
      {"single_word",
       [](auto& j) {
         j["added_tokens"] = {{{"id", 3}, {"content", "<x>"}, {"single_word", true}}};
       },
       "added_tokens[0].single_word true", true},
      {"merge out of vocab", [](auto& j) { j["model"]["merges"] = {"a c"}; },
       "model.merges[0]: 'a' + 'c' uses a token that is not in the vocabulary", false},
      {"merge malformed", [](auto& j) { j["model"]["merges"] = {"abc"}; },
       "model.merges[0]: expected \"left right\"", false},
      {"negative id", [](auto& j) { j["model"]["vocab"]["a"] = -1; }, "model.vocab[\"a\"]: expected an id",
       false},
      {"missing vocab", [](auto& j) { j["model"].erase("vocab"); }, "missing 'model.vocab' object", false},
      {"bad regex",
       [](auto& j) {
         j["pre_tokenizer"] = {
             {"type", "Sequence"},
             {"pretokenizers",
              {{{"type", "Split"}, {"pattern", {{"Regex", "[a-"}}}, {"behavior", "Isolated"}},
               {{"type", "ByteLevel"}}}}};
       },
       "cannot compile regex '[a-'", false},
      {"bad behavior",
       [](auto& j) {
         j["pre_tokenizer"] = {
             {"type", "Sequence"},
             {"pretokenizers",
              {{{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Sideways"}},
               {{"type", "ByteLevel"}}}}};
       },
       "behavior 'Sideways'", true},
      {"unknown unk", [](auto& j) { j["model"]["unk_token"] = "<unk>"; }, "model.unk_token '<unk>'", false},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    auto j = base;
    c.edit(j);
    try {
      (void)tokenizer::parse(j.dump(), "small.json");
      FAIL("no error");
    } catch (const dsk::unsupported& e) {
      CHECK(c.unsupported);
      REQUIRE_THAT(std::string(e.what()), Catch::Contains(c.message) && Catch::Contains("small.json"));
    } catch (const dsk::error& e) {
      CHECK(!c.unsupported);
      REQUIRE_THAT(std::string(e.what()), Catch::Contains(c.message) && Catch::Contains("small.json"));
    }
  }
  REQUIRE_THROWS_WITH(tokenizer::parse("{\"model\": ", "small.json"), Catch::Contains("is not valid JSON"));
  REQUIRE_THROWS_WITH(tokenizer::load(io_data("missing_tokenizer.json")),
                      Catch::Contains("cannot open tokenizer file"));
}

TEST_CASE("tokenizer: lossy UTF-8 follows the maximal-subpart rule", "[io][tokenizer]") {
  using dsk::io::detail::utf8_lossy;
  const std::string r = "\xef\xbf\xbd";
  CHECK(utf8_lossy("abc") == "abc");
  CHECK(utf8_lossy("\xff") == r);
  CHECK(utf8_lossy("a\xe6\xb7") == "a" + r);  // a cut 3-byte character: one replacement
  CHECK(utf8_lossy("\xe6\xb7"
                   "b") == r + "b");
  CHECK(utf8_lossy("\xf0\x9f\x98") == r);                  // a cut 4-byte character
  CHECK(utf8_lossy("\xed\xa0\x80") == r + r + r);          // a surrogate: each byte replaced
  CHECK(utf8_lossy("\xc0\xaf") == r + r);                  // overlong
  CHECK(utf8_lossy("\xf4\x90\x80\x80") == r + r + r + r);  // above U+10FFFF
}

TEST_CASE("tokenizer: ids are bounded by the tokens the file declares", "[io][tokenizer]") {
  // 37 bytes asking for a table of 2^31 strings (std::bad_alloc, or gigabytes for ids around 4e8).
  const std::string tiny = R"({"model":{"vocab":{"a": 2147483647}}})";
  REQUIRE(tiny.size() == 37);
  REQUIRE_THROWS_WITH(tokenizer::parse(tiny, "tiny.json"),
                      Catch::Contains("'tiny.json': model.vocab[\"a\"]: expected an id in [0, 1) (the file "
                                      "declares 1 tokens: model.vocab plus added_tokens), got 2147483647"));
  REQUIRE_THROWS_WITH(tokenizer::parse(R"({"model":{"vocab":{"a":400000000}}})", "tiny.json"),
                      Catch::Contains("expected an id in [0, 1)"));
  const auto base = nlohmann::json::parse(R"({
    "added_tokens": [{"id": 3, "content": "<x>", "special": true}],
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}
  })");
  const tokenizer ok = tokenizer::parse(base.dump(), "small.json");
  CHECK(ok.vocab_size() == 4);
  CHECK(ok.encode("ab<x>") == std::vector<token_id>{2, 3});
  auto j = base;
  j["added_tokens"][0]["id"] = 2147483647;
  REQUIRE_THROWS_WITH(tokenizer::parse(j.dump(), "small.json"),
                      Catch::Contains("'small.json': added_tokens[0].id: expected an id in [0, 4)") &&
                          Catch::Contains("got 2147483647"));
  j["added_tokens"][0]["id"] = 4;  // one past the declared count
  REQUIRE_THROWS_WITH(tokenizer::parse(j.dump(), "small.json"),
                      Catch::Contains("added_tokens[0].id: expected an id in [0, 4)"));
  // One id for two strings: decode could not give back both.
  j = base;
  j["model"]["vocab"]["b"] = 0;
  REQUIRE_THROWS_WITH(tokenizer::parse(j.dump(), "small.json"),
                      Catch::Contains("'small.json': token id 0 is given to both 'a' and 'b'"));
  j = base;
  j["added_tokens"][0]["id"] = 2;
  REQUIRE_THROWS_WITH(tokenizer::parse(j.dump(), "small.json"),
                      Catch::Contains("token id 2 is given to both 'ab' and '<x>'"));
  j = base;  // an added token repeating its vocab entry is fine
  j["model"]["vocab"]["<x>"] = 3;
  CHECK(tokenizer::parse(j.dump(), "small.json").encode("<x>") == std::vector<token_id>{3});
  j = base;
  j["model"]["vocab"]["ab"] = 4000;
  REQUIRE_THROWS_WITH(tokenizer::parse(j.dump(), "small.json"),
                      Catch::Contains("model.vocab[\"ab\"]: expected an id in [0, 4)"));
}

TEST_CASE("tokenizer: deeply nested JSON is a clear error", "[io][tokenizer]") {
  dsk::test::temp_dir dir;
  // 100,000 levels under the decoder, whose error message used to dump it recursively.
  dsk::test::write_bytes(dir / "tokenizer.json", "{\"decoder\": " + dsk::test::nested_json(100000) + "}");
  REQUIRE_THROWS_WITH(tokenizer::load(dir.path()),
                      Catch::Contains("tokenizer.json") &&
                          Catch::Contains("JSON nesting deeper than the limit of 128 levels"));
  std::filesystem::create_directories(dir / "d" / "tokenizer.json");
  REQUIRE_THROWS_WITH(tokenizer::load(dir / "d"),
                      Catch::Contains("tokenizer.json': is a directory, expected a file"));
}

// [regex]: the PCRE2 paths, also run under valgrind memcheck by ctest (test_io_valgrind: libpcre2 is not
// instrumented by ASan, so only valgrind sees a read past a subject).
TEST_CASE("tokenizer: Split regexes cannot cut UTF-8 characters (\\C is refused)", "[io][tokenizer][regex]") {
  const auto with_split = [](const std::string& regex, const char* behavior) {
    nlohmann::json j = nlohmann::json::parse(R"({
      "model": {"type": "BPE", "vocab": {}, "merges": []}
    })");
    const auto& table = dsk::io::detail::byte_level_table::get();
    for (int b = 0; b < 256; ++b) j["model"]["vocab"][table.to_char[static_cast<std::size_t>(b)]] = b;
    j["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", behavior}},
          {{"type", "Split"}, {"pattern", {{"Regex", "\\p{L}+|\\s+"}}}, {"behavior", "Isolated"}},
          {{"type", "ByteLevel"}, {"use_regex", true}}}}};
    return tokenizer::parse(j.dump(), "split.json");
  };
  for (const char* re : {"\\C", "a\\C", "(?:\\C)+", "[x]|\\C{2}"})
    REQUIRE_THROWS_WITH(
        with_split(re, "Isolated"),
        Catch::Contains("'split.json': pre_tokenizer.pretokenizers[0]: cannot compile regex") &&
            Catch::Contains("\\C is not allowed"));
  // Multi-byte text through two Split layers and GPT-2's regex: every piece stays whole characters, so the
  // byte-level round trip is exact.
  const std::string text = "深度 求索 😀x ü\tz\n\n αβγ 12 ";
  for (const char* behavior : {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"}) {
    INFO(behavior);
    const tokenizer t = with_split(".", behavior);
    const auto ids = t.encode(text);
    REQUIRE(!ids.empty());
    if (std::string(behavior) != "Removed") REQUIRE(t.decode(ids) == text);
  }
  const tokenizer t = with_split("(?=\\p{Han})|\\b", "Isolated");  // empty matches advance by characters
  REQUIRE(t.decode(t.encode(text)) == text);
  REQUIRE(deepseek_like().decode(deepseek_like().encode(text)) == text);
}
