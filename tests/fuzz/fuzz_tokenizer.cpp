// libFuzzer harness: tokenizer.json load, then encode/decode of fixed texts. The input is the file. An
// accepted tokenizer must encode valid UTF-8 to ids inside its vocabulary, decode any of its ids, and, when
// it is byte-level lossless (every byte has a token, no added tokens, no Split "Removed" step), give back the
// text exactly: decode(encode(text)) == text. A second read (tokenizer::load of the same bytes written to a
// file) must encode alike.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dsk/io/tokenizer.hpp"
#include "fuzz_util.hpp"

namespace {
const std::vector<std::string>& texts() {
  static const std::vector<std::string> t = {"",
                                             "a",
                                             "Hello, world! 123 4567",
                                             "  leading and trailing  ",
                                             "tabs\tand\nnewlines\n\n",
                                             "深度求索 DeepSeek-V2 😀 ü é",
                                             "<|EOT|><mask> x",
                                             "''''s't 're 've",
                                             std::string(300, 'a') + "b"};
  return t;
}

bool lossless(const dsk::io::tokenizer& t, std::string_view json) {
  if (json.find("\"Removed\"") != std::string_view::npos ||
      json.find("added_tokens") != std::string_view::npos)
    return false;
  const auto& table = dsk::io::detail::byte_level_table::get();
  for (const auto& c : table.to_char)
    if (!t.token_to_id(c)) return false;
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::optional<dsk::io::tokenizer> t;
  try {
    t = dsk::io::tokenizer::parse(text, "fuzz/tokenizer.json");
  } catch (const dsk::error&) {
  }
  if (!t) return 0;
  const bool exact = lossless(*t, text);
  const auto path = dsk::fuzz::scratch() / "tokenizer.json";
  dsk::fuzz::write_file(path, text);
  const auto again = dsk::io::tokenizer::load(path);  // accepted once: must be accepted again
  for (const auto& s : texts()) {
    std::vector<dsk::io::token_id> ids;
    try {
      ids = t->encode(s);
    } catch (const dsk::error&) {  // e.g. a byte without a token and no unk_token
      continue;
    }
    DSK_FUZZ_CHECK(again.encode(s) == ids);
    for (const auto id : ids) DSK_FUZZ_CHECK(id >= 0 && id < t->vocab_size());
    const std::string back = t->decode(ids);
    (void)t->decode(ids, true);
    if (exact) DSK_FUZZ_CHECK(back == s);
  }
  return 0;
}
