# dsk::io: the header-only loaders in include/dsk/io (safetensors, config.json, tokenizer.json). They need
# nlohmann_json (Debian nlohmann-json3-dev) and PCRE2 with 8-bit code units (Debian libpcre2-dev, found through
# pkg-config as libpcre2-8) for the tokenizer's pre-tokenizer regexes. Programs that load models link dsk::io.
if(TARGET dsk_io)
  return()
endif()
include(dskDependencies)
dsk_require_package(nlohmann_json DEBIAN nlohmann-json3-dev)
if(NOT TARGET PkgConfig::DSK_PCRE2)  # a cross build defines it in cmake/dskCrossDeps.cmake
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(DSK_PCRE2 QUIET IMPORTED_TARGET libpcre2-8)
  endif()
endif()
if(NOT DSK_PCRE2_FOUND)
  message(FATAL_ERROR
    "dsk: PCRE2 (libpcre2-8, needed by dsk::io's tokenizer) was not found through pkg-config. On Debian/Ubuntu "
    "install it with:\n    sudo apt-get install libpcre2-dev pkg-config\n"
    "or turn off the parts that load models (-DDSK_BUILD_TESTS=OFF / -DDSK_BUILD_EXAMPLES=OFF).")
endif()
add_library(dsk_io INTERFACE)
add_library(dsk::io ALIAS dsk_io)
target_link_libraries(dsk_io INTERFACE dsk::dsk nlohmann_json::nlohmann_json PkgConfig::DSK_PCRE2)
