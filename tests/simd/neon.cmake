# NEON packet tests. DSK_NEON_TEST_SOURCES (relative to tests/) is the list of test sources that exercise NEON
# code; append to it to add one. In an AArch64 build (the `aarch64` preset) tests/CMakeLists.txt adds them to
# test_simd. In an x86-64 build, when Debian's AArch64 cross compiler (g++-aarch64-linux-gnu) and qemu-user are
# installed, they are cross-compiled into test_simd_neon (statically, Catch2 is header-only) and run under
# qemu-aarch64: a quick check without the full cross build. Otherwise that test is not registered and CMake says so.
set(DSK_NEON_TEST_SOURCES simd/neon.cpp simd/scalar.cpp)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64" OR DSK_SANITIZE)
  return()  # native/cross AArch64 build: part of test_simd; sanitizer build: one run in the plain build is enough
endif()
find_program(DSK_AARCH64_CXX aarch64-linux-gnu-g++)
find_program(DSK_QEMU_AARCH64 qemu-aarch64)
get_target_property(_catch_includes Catch2::Catch2 INTERFACE_INCLUDE_DIRECTORIES)
find_path(DSK_CATCH2_DIR catch2/catch.hpp HINTS ${_catch_includes})
if(DSK_AARCH64_CXX AND DSK_QEMU_AARCH64 AND DSK_CATCH2_DIR)
  # Only Catch2's own directory goes on the include path (not /usr/include, which holds x86-64 headers).
  set(_shim ${CMAKE_CURRENT_BINARY_DIR}/neon-include)
  file(MAKE_DIRECTORY ${_shim})
  file(CREATE_LINK ${DSK_CATCH2_DIR}/catch2 ${_shim}/catch2 SYMBOLIC)
  set(_out ${CMAKE_CURRENT_BINARY_DIR}/test_simd_neon)
  list(TRANSFORM DSK_NEON_TEST_SOURCES PREPEND ${CMAKE_CURRENT_SOURCE_DIR}/ OUTPUT_VARIABLE _neon_sources)
  # One compiler call for several TUs writes no usable depfile: depend on the headers explicitly.
  file(GLOB _neon_headers ${PROJECT_SOURCE_DIR}/include/dsk/core/*.hpp ${PROJECT_SOURCE_DIR}/include/dsk/simd/*.hpp
       ${CMAKE_CURRENT_SOURCE_DIR}/simd/*.hpp ${CMAKE_CURRENT_SOURCE_DIR}/support/*.hpp)
  set(_flags -std=c++20 -O2 -static -Wall -Wextra -Wpedantic -march=armv8-a)
  if(DSK_WERROR)
    list(APPEND _flags -Werror)
  endif()
  add_custom_command(OUTPUT ${_out}
    COMMAND ${DSK_AARCH64_CXX} ${_flags} -I${PROJECT_SOURCE_DIR}/include -I${CMAKE_CURRENT_SOURCE_DIR} -I${_shim}
            ${CMAKE_CURRENT_SOURCE_DIR}/support/catch_main.cpp ${_neon_sources} -o ${_out}
    DEPENDS ${_neon_sources} ${_neon_headers}
    COMMENT "Cross-compiling the NEON packet tests for AArch64"
    VERBATIM)
  add_custom_target(test_simd_neon_build ALL DEPENDS ${_out})
  add_test(NAME test_simd_neon COMMAND ${DSK_QEMU_AARCH64} ${_out} --order rand --rng-seed 20261128)
  set_tests_properties(test_simd_neon PROPERTIES LABELS "simd;neon" TIMEOUT 600)
else()
  message(STATUS "dsk: NEON packet tests not built (need g++-aarch64-linux-gnu and qemu-user; tools/setup-deps.sh "
                 "installs them)")
endif()
