// libFuzzer harness: encode/decode with the test tokenizers (tests/io/data). The input is the text. Invalid
// UTF-8 must be a dsk::error; valid text must encode to ids inside the vocabulary and, with the byte-level
// lossless DeepSeek-like tokenizer (tokenizer.json: every byte has a token; its added tokens decode to their
// own content), decode back exactly (unless the text holds "<mask>", an lstrip token). tokenizer_variant.json
// (every pre-tokenizer option, including a Split that removes text) is only checked for in-vocabulary ids and
// a clean decode. The input's ids (4 bytes each) are also decoded directly: ids outside the vocabulary must
// be a dsk::error.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "dsk/io/tokenizer.hpp"
#include "fuzz_util.hpp"

namespace {
const dsk::io::tokenizer& lossless() {
  static const auto t = dsk::io::tokenizer::load(std::filesystem::path(DSK_FUZZ_IO_DATA) / "tokenizer.json");
  return t;
}
const dsk::io::tokenizer& variant() {
  static const auto t =
      dsk::io::tokenizer::load(std::filesystem::path(DSK_FUZZ_IO_DATA) / "tokenizer_variant.json");
  return t;
}
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = dsk::io::detail::utf8_seq_len(s, i);
    if (!n) return false;
    i += n;
  }
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool valid = valid_utf8(text);
  for (const auto* t : {&lossless(), &variant()}) {
    try {
      const auto ids = t->encode(text);
      DSK_FUZZ_CHECK(valid);
      for (const auto id : ids) DSK_FUZZ_CHECK(id >= 0 && id < t->vocab_size());
      const std::string back = t->decode(ids);
      DSK_FUZZ_CHECK(valid_utf8(back));
      // "<mask>" has lstrip: it absorbs the whitespace before it, as in `tokenizers`.
      if (t == &lossless() && text.find("<mask>") == std::string_view::npos) DSK_FUZZ_CHECK(back == text);
    } catch (const dsk::error&) {
      DSK_FUZZ_CHECK(!valid);
    }
  }
  // Arbitrary ids: decoded, or a dsk::error naming the id.
  std::vector<dsk::io::token_id> ids(size / 4);
  if (!ids.empty()) std::memcpy(ids.data(), data, ids.size() * 4);
  for (const auto* t : {&lossless(), &variant()}) {
    try {
      DSK_FUZZ_CHECK(valid_utf8(t->decode(ids)));
    } catch (const dsk::error&) {
    }
  }
  return 0;
}
