// test_headers: the work is done by the compiler and linker (see CMakeLists.txt beside this file); building
// this program is the test. Running it only reports how many headers were checked.
#include <cstdio>

int main() {
  std::printf(
      "dsk: %d public headers compile as the first include of a TU (the .hpp ones also link together)\n",
      DSK_HEADER_COUNT);
  return 0;
}
