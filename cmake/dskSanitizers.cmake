# DSK_SANITIZE="address,undefined" instruments dsk's own targets. UBSan findings abort (no silent recovery), so
# a test that triggers undefined behaviour fails.
function(dsk_target_sanitizers target)
  if(DSK_SANITIZE)
    set(_flags -fsanitize=${DSK_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${_flags}>)
    target_link_options(${target} PRIVATE ${_flags})
  endif()
endfunction()
