# Warning flags and host ISA flags for dsk's own targets (tests, examples, benchmarks). Consumers of dsk::dsk
# choose their own flags: the library target carries none.
function(dsk_target_defaults target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>)
  if(DSK_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
  endif()
  # GCC 12 reports a false -Wrestrict inside libstdc++'s std::string at -O3 (GCC PR 105651; e.g.
  # `"text" + std::to_string(n)` in tests/core/dispatch.cpp), fixed in GCC 13.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12
     AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wno-restrict>)
  endif()
  if(DSK_HOST_ARCH)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=${DSK_HOST_ARCH}>)
  endif()
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF)
  dsk_target_sanitizers(${target})
endfunction()
