# Warning flags and host ISA flags for dsk's own targets (tests, examples, benchmarks). Consumers of dsk::dsk
# choose their own flags: the library target carries none.
function(dsk_target_defaults target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>)
  if(DSK_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
  endif()
  if(DSK_HOST_ARCH)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=${DSK_HOST_ARCH}>)
  endif()
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF)
  dsk_target_sanitizers(${target})
endfunction()
