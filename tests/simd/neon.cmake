# The NEON packet layer cannot run on this x86-64 host: when Debian's AArch64 cross compiler
# (g++-aarch64-linux-gnu) and qemu-user are installed, test_simd_neon is cross-compiled (statically, Catch2 is
# header-only) and run under qemu-aarch64. Otherwise the test is not registered and CMake says so.
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
  # One compiler call for three TUs writes no usable depfile: depend on the headers explicitly.
  file(GLOB _neon_headers ${PROJECT_SOURCE_DIR}/include/dsk/core/*.hpp ${PROJECT_SOURCE_DIR}/include/dsk/simd/*.hpp
       ${CMAKE_CURRENT_SOURCE_DIR}/simd/*.hpp ${CMAKE_CURRENT_SOURCE_DIR}/support/*.hpp)
  set(_flags -std=c++20 -O2 -static -Wall -Wextra -Wpedantic -march=armv8-a)
  if(DSK_WERROR)
    list(APPEND _flags -Werror)
  endif()
  add_custom_command(OUTPUT ${_out}
    COMMAND ${DSK_AARCH64_CXX} ${_flags} -I${PROJECT_SOURCE_DIR}/include -I${CMAKE_CURRENT_SOURCE_DIR} -I${_shim}
            ${CMAKE_CURRENT_SOURCE_DIR}/support/catch_main.cpp ${CMAKE_CURRENT_SOURCE_DIR}/simd/neon.cpp
            ${CMAKE_CURRENT_SOURCE_DIR}/simd/scalar.cpp -o ${_out}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/simd/neon.cpp ${CMAKE_CURRENT_SOURCE_DIR}/simd/scalar.cpp
            ${_neon_headers}
    COMMENT "Cross-compiling the NEON packet tests for AArch64"
    VERBATIM)
  add_custom_target(test_simd_neon_build ALL DEPENDS ${_out})
  add_test(NAME test_simd_neon COMMAND ${DSK_QEMU_AARCH64} ${_out} --order rand --rng-seed 20261128)
  set_tests_properties(test_simd_neon PROPERTIES LABELS "simd;neon" TIMEOUT 600)
else()
  message(STATUS "dsk: NEON packet tests not built (need g++-aarch64-linux-gnu and qemu-user; tools/setup-deps.sh "
                 "installs them)")
endif()
