// A call site (file, line, column) on every compiler dsk supports.
#pragma once

#include <source_location>

namespace dsk {
// dsk::source_location: std::source_location, or, where the standard library leaves it out (libstdc++ 12
// under clang 14, which lacks __builtin_source_location), the same three fields from the compiler builtins.
// The SIMT emulation and the CUDA launch and error helpers report call sites with it.
#if defined(__cpp_lib_source_location)
using source_location = std::source_location;
#else
class source_location {
 public:
  static constexpr source_location current(const char* file = __builtin_FILE(),
                                           unsigned line = __builtin_LINE(),
                                           unsigned column = __builtin_COLUMN()) noexcept {
    source_location s;
    s.file_ = file;
    s.line_ = line;
    s.column_ = column;
    return s;
  }
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr unsigned line() const noexcept { return line_; }
  constexpr unsigned column() const noexcept { return column_; }

 private:
  const char* file_ = "";
  unsigned line_ = 0, column_ = 0;
};
#endif
}  // namespace dsk
