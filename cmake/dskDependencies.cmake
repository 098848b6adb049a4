# find_package for dsk's own programs; a missing package stops the configuration with the Debian package
# to install, instead of a generic "could not find" message.
function(dsk_require_package name)
  cmake_parse_arguments(ARG "" "DEBIAN" "" ${ARGN})
  if(name IN_LIST DSK_CROSS_PROVIDED)  # a cross build's header-only shim (cmake/dskCrossDeps.cmake)
    return()
  endif()
  find_package(${name} QUIET)
  if(NOT ${name}_FOUND)
    message(FATAL_ERROR
      "dsk: the package '${name}' was not found. On Debian/Ubuntu install it with:\n"
      "    sudo apt-get install ${ARG_DEBIAN}\n"
      "or run tools/setup-deps.sh, or turn off the part that needs it "
      "(-DDSK_BUILD_TESTS=OFF / -DDSK_BUILD_EXAMPLES=OFF / -DDSK_BUILD_BENCH=OFF).")
  endif()
endfunction()
