// libFuzzer harness: a sharded checkpoint (model.safetensors.index.json). The input is the index text,
// optionally followed by "\n--shard--\n" and the bytes of a shard file "x.safetensors" the index may name;
// the two shards of tests/io/data/st_sharded sit beside it (model-0000{1,2}-of-00002.safetensors). An
// accepted checkpoint is checked against an independent read: each tensor's bytes equal those that
// parse_safetensors_header finds in its shard's bytes read from disk.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include "dsk/io/safetensors.hpp"
#include "fuzz_util.hpp"

namespace {
const std::filesystem::path& dir() {
  static const std::filesystem::path d = [] {
    const auto p = dsk::fuzz::scratch() / "ckpt";
    std::filesystem::create_directories(p);
    for (const char* n : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"})
      std::filesystem::copy_file(std::filesystem::path(DSK_FUZZ_IO_DATA) / "st_sharded" / n, p / n,
                                 std::filesystem::copy_options::overwrite_existing);
    return p;
  }();
  return d;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view sep = "\n--shard--\n";
  const auto cut = in.find(sep);
  const auto& d = dir();
  dsk::fuzz::write_file(d / "model.safetensors.index.json", in.substr(0, cut));
  std::error_code ec;
  std::filesystem::remove(d / "x.safetensors", ec);
  if (cut != std::string_view::npos) dsk::fuzz::write_file(d / "x.safetensors", in.substr(cut + sep.size()));
  try {
    const dsk::io::checkpoint ck(d);
    for (const auto& name : ck.names()) {
      DSK_FUZZ_CHECK(ck.contains(name));
      const auto& t = ck.info(name);
      DSK_FUZZ_CHECK(t.name == name);
      const auto b = ck.bytes(name);
      DSK_FUZZ_CHECK(b.size() == t.byte_size());
      // The independent read: find the shard holding the tensor and parse its bytes in memory.
      bool found = false;
      for (std::size_t s = 0; s < ck.shard_count() && !found; ++s) {
        const auto& shard = ck.shard(s);
        if (!shard.contains(name) || &shard.info(name) != &t) continue;
        const std::string raw = dsk::fuzz::read_file(shard.path());
        const auto h = dsk::io::parse_safetensors_header(
            {reinterpret_cast<const std::byte*>(raw.data()), raw.size()}, "again");
        for (const auto& u : h.tensors)
          if (u.name == name) {
            found = true;
            DSK_FUZZ_CHECK(u.begin == t.begin && u.end == t.end && u.shape == t.shape && u.dtype == t.dtype);
            DSK_FUZZ_CHECK(b.empty() ||
                           std::memcmp(b.data(), raw.data() + h.data_start + u.begin, b.size()) == 0);
          }
      }
      DSK_FUZZ_CHECK(found);
    }
  } catch (const dsk::error&) {
  }
  return 0;
}
