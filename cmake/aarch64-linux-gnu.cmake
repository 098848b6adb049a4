# CMake toolchain file: cross-compile dsk's tests for AArch64 (armv8-a, NEON) with Debian's g++-aarch64-linux-gnu,
# link them statically and run them under qemu-aarch64 (qemu-user) through ctest. Used by the `aarch64` preset
# (tools/test.sh aarch64). The header-only dependencies (Catch2, fmt, nlohmann_json) come from the host's
# /usr/include through a shim directory (cmake/dskCrossDeps.cmake); PCRE2 for dsk::io from Debian multiarch
# (libpcre2-dev:arm64, installed by tools/setup-deps.sh).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
# -Wno-restrict: GCC 12's false positive on libstdc++'s std::string at -O3 (GCC PR 105651), which the AArch64
# inliner reaches in tests/core/dispatch.cpp; the x86-64 build keeps the warning.
set(CMAKE_CXX_FLAGS_INIT "-march=armv8-a -Wno-restrict")
# Static: qemu-aarch64 then needs no AArch64 sysroot to run the binaries.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
find_program(DSK_QEMU_AARCH64 qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${DSK_QEMU_AARCH64})
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# dsk's CMakeLists.txt reads this to take its test dependencies from cmake/dskCrossDeps.cmake.
set(DSK_CROSS_DEPS ON)
