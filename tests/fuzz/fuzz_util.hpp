// Helpers of the libFuzzer harnesses (tests/fuzz): a per-process scratch directory, file writing, and the
// abort that turns an "accepted but wrong" result into a crash libFuzzer reports (with the input saved).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <unistd.h>

namespace dsk::fuzz {

// Aborts with a message: the harness found an input dsk accepted but read wrongly.
[[noreturn]] inline void wrong(std::string_view what) {
  std::fprintf(stderr, "dsk fuzz: accepted but wrong: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}
#define DSK_FUZZ_CHECK(cond)                                                             \
  do {                                                                                   \
    if (!(cond)) ::dsk::fuzz::wrong(#cond " (" __FILE__ ":" DSK_FUZZ_STR(__LINE__) ")"); \
  } while (0)
#define DSK_FUZZ_STR2(x) #x
#define DSK_FUZZ_STR(x) DSK_FUZZ_STR2(x)

// A scratch directory of this process (libFuzzer's -jobs run several), created on first use.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    auto p = std::filesystem::temp_directory_path() / ("dsk_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(p);
    return p;
  }();
  return dir;
}

inline void write_file(const std::filesystem::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) wrong("cannot write the scratch file " + p.string());
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace dsk::fuzz
