# DSK_SANITIZE="address,undefined" instruments dsk's own targets. UBSan findings abort (no silent recovery), so
# a test that triggers undefined behaviour fails.
function(dsk_target_sanitizers target)
  if(DSK_SANITIZE)
    set(_flags -fsanitize=${DSK_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${_flags}>)
    target_link_options(${target} PRIVATE ${_flags})
    # GCC 12's -Wmaybe-uninitialized misfires inside libstdc++ (std::function in <regex>, used by Catch2) once
    # the sanitizers change inlining; it is a known false positive, not a finding about dsk's code.
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wno-maybe-uninitialized>)
    endif()
  endif()
endfunction()
