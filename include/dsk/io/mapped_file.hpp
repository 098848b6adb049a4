// Read-only memory map of a whole file (POSIX mmap; elsewhere the file is read into memory), plus whole-file
// text reading and JSON parsing that name the file in every error. The base of dsk's safetensors, config and
// tokenizer readers. Host only; checked in tests/io/mapped_file.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "dsk/core/config.hpp"
#include "dsk/core/error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#define DSK_IO_HAVE_MMAP 1
#else
#define DSK_IO_HAVE_MMAP 0
#endif

namespace dsk::io {
DSK_ISA_BEGIN  // compiled with the TU's -march: ISA-specific names (tests/isa)

// The bytes of one file, mapped read-only for the lifetime of the object (movable, not copyable). Pages are
// loaded on first touch, so opening a 40 GB checkpoint shard costs address space, not memory.
class mapped_file {
 public:
  mapped_file() = default;
  explicit mapped_file(const std::filesystem::path& path) : path_(path) { open(); }
  mapped_file(mapped_file&& o) noexcept { swap(o); }
  mapped_file& operator=(mapped_file&& o) noexcept {
    if (this != &o) {
      mapped_file tmp(std::move(o));
      swap(tmp);
    }
    return *this;
  }
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  ~mapped_file() { close(); }

  const std::filesystem::path& path() const { return path_; }
  std::size_t size() const { return size_; }
  const std::byte* data() const { return data_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }

  // Drops the resident pages of bytes [offset, offset + length) (madvise MADV_DONTNEED), for a loader that
  // has converted a tensor and keeps only the result: resident memory then tracks the result, not every byte
  // of the checkpoint read so far. The range is rounded INWARD to page boundaries, so pages shared with
  // neighbouring bytes stay. The mapping is read-only and file-backed: the bytes stay readable and are
  // reloaded from the file if touched again. Advisory (a refusal by the kernel only costs memory); without
  // mmap (the file was read into memory) it does nothing. Throws unless the range lies inside the file.
  void release(std::size_t offset, std::size_t length) const {
    if (offset > size_ || length > size_ - offset)
      fail("dsk::io: release of bytes [", offset, ", ", offset, " + ", length, ") of '", path_.string(),
           "': offset + length must be at most the file size ", size_);
#if DSK_IO_HAVE_MMAP
    if (!data_ || length == 0) return;
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const std::size_t lo = (offset + page - 1) / page * page;  // the mapping starts on a page boundary
    const std::size_t hi = (offset + length) / page * page;
    if (lo < hi) ::madvise(const_cast<std::byte*>(data_) + lo, hi - lo, MADV_DONTNEED);
#endif
  }

 private:
  void swap(mapped_file& o) noexcept {
    std::swap(path_, o.path_);
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(owned_, o.owned_);
  }

#if DSK_IO_HAVE_MMAP
  void open() {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("dsk::io: cannot open '", path_.string(), "': ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      fail("dsk::io: cannot stat '", path_.string(), "': ", std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      fail("dsk::io: '", path_.string(), "' is not a regular file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int e = errno;
        ::close(fd);
        fail("dsk::io: cannot map '", path_.string(), "' (", size_, " bytes): ", std::strerror(e));
      }
      data_ = static_cast<const std::byte*>(p);
    }
    ::close(fd);  // the mapping keeps the file referenced
  }
  void close() noexcept {
    if (data_ && !owned_.data()) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }
#else
  void open() {
    std::ifstream in(path_, std::ios::binary);
    if (!in) fail("dsk::io: cannot open '", path_.string(), "'");
    owned_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    data_ = reinterpret_cast<const std::byte*>(owned_.data());
    size_ = owned_.size();
  }
  void close() noexcept {
    data_ = nullptr;
    size_ = 0;
  }
#endif

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::vector<char> owned_;  // only without mmap
};

// The whole file as a string; `what` says what the file is for in the error ("config", "tokenizer"). A
// directory or another non-regular file (a FIFO, a device) is refused by name.
inline std::string read_text_file(const std::filesystem::path& path, std::string_view what) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st))
    fail("dsk::io: cannot open ", what, " file '", path.string(), "': ", ec ? ec.message() : "no such file");
  if (std::filesystem::is_directory(st))
    fail("dsk::io: ", what, " file '", path.string(), "': is a directory, expected a file");
  if (!std::filesystem::is_regular_file(st))
    fail("dsk::io: ", what, " file '", path.string(), "': is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("dsk::io: cannot open ", what, " file '", path.string(), "'");
  std::string s;
  try {
    s.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const std::exception& e) {
    fail("dsk::io: cannot read ", what, " file '", path.string(), "': ", e.what());
  }
  if (in.bad()) fail("dsk::io: cannot read ", what, " file '", path.string(), "'");
  return s;
}

// The deepest nesting of arrays and objects dsk's JSON readers accept. The formats need at most ~10 levels
// (a tokenizer's pre_tokenizer Sequence inside a Sequence); the bound keeps the recursive parts of
// nlohmann::json (dump, copy, comparison) and of dsk's readers off deep stacks.
inline constexpr std::size_t max_json_depth = 128;

namespace detail {
// The nesting depth of JSON text: the most '[' / '{' open at once outside strings (one pass, no
// allocation; stops at the first level above `limit` and returns it). Malformed text is left to the parser.
inline std::size_t json_depth(std::string_view text, std::size_t limit) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest && (deepest = depth) > limit) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// At most `max_bytes` of `s` for an error message, cut before a UTF-8 continuation byte; "..." marks a cut.
inline std::string truncated(std::string_view s, std::size_t max_bytes) {
  if (s.size() <= max_bytes) return std::string(s);
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;
  return std::string(s.substr(0, cut)) + "...";
}

// At most `max_bytes` of the JSON text of `v` for an error message (whole UTF-8 characters; "..." marks a
// cut). Values come from a depth-checked parse, so the dump's recursion is bounded.
inline std::string json_snippet(const nlohmann::json& v, std::size_t max_bytes = 80) {
  return truncated(v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), max_bytes);
}
}  // namespace detail

// Parses JSON text; a syntax error becomes a dsk::error naming `source` (a file name) and the position.
// Nesting deeper than max_json_depth is refused before parsing.
inline nlohmann::json parse_json(std::string_view text, std::string_view source) {
  if (const std::size_t d = detail::json_depth(text, max_json_depth); d > max_json_depth)
    fail("dsk::io: '", source, "': JSON nesting deeper than the limit of ", max_json_depth,
         " levels (arrays and objects inside each other)");
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    fail("dsk::io: '", source, "' is not valid JSON: ", detail::truncated(e.what(), 300));
  }
}

DSK_ISA_END
}  // namespace dsk::io
