# The CUDA backend target dsk::cuda. DSK_CUDA=AUTO enables it when a CUDA compiler is found, ON requires one,
# OFF skips the check. Architectures default to 80;90 (A100, H100/H200) unless CMAKE_CUDA_ARCHITECTURES is set.
set(DSK_WITH_CUDA OFF)
if(NOT DSK_CUDA STREQUAL "OFF")
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 80 90)
  endif()
  if(NOT CMAKE_CUDA_HOST_COMPILER AND CMAKE_CXX_COMPILER)
    set(CMAKE_CUDA_HOST_COMPILER ${CMAKE_CXX_COMPILER})
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  # The toolkit's default location is not always on PATH (e.g. a CI shell): look there too.
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(ENV{CUDACXX} /usr/local/cuda/bin/nvcc)
    unset(CMAKE_CUDA_COMPILER CACHE)
    unset(CMAKE_CUDA_COMPILER)
    check_language(CUDA)
  endif()
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(DSK_WITH_CUDA ON)
  elseif(DSK_CUDA STREQUAL "ON")
    message(FATAL_ERROR "dsk: DSK_CUDA=ON but no CUDA compiler was found. Install the CUDA toolkit and put nvcc "
                        "on PATH (or set CMAKE_CUDA_COMPILER), or configure with -DDSK_CUDA=AUTO or OFF.")
  else()
    message(STATUS "dsk: no CUDA compiler found; building without dsk::cuda")
  endif()
endif()

if(DSK_WITH_CUDA)
  add_library(dsk_cuda INTERFACE)
  add_library(dsk::cuda ALIAS dsk_cuda)
  set_target_properties(dsk_cuda PROPERTIES EXPORT_NAME cuda)
  target_link_libraries(dsk_cuda INTERFACE dsk CUDA::cudart)
  # C++20 for CUDA as a flag: CMake 3.25 does not know nvcc 13's features, so cuda_std_20 would fail to configure.
  # --expt-relaxed-constexpr lets device code call the constexpr host helpers of dsk/core (dtype conversions).
  target_compile_options(dsk_cuda INTERFACE $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20 --expt-relaxed-constexpr>)
  # cuBLASLt: dense GEMM on the GPU (dsk/gemm/cuda/matmul.cuh) goes through it.
  target_link_libraries(dsk_cuda INTERFACE CUDA::cublasLt)
  install(TARGETS dsk_cuda EXPORT dskTargets)
endif()

# dsk::nccl: the NCCL transport of expert parallelism between GPUs (moe::ep_nccl_transport in
# dsk/moe/cuda/expert_parallel.cuh). NCCL ships with the CUDA toolkit's NCCL package (libnccl2 + libnccl-dev, or
# the toolkit's own copy); found in the toolkit's and the system's directories. Not installed with the package
# (a build-tree target): consumers link NCCL themselves and define DSK_HAS_NCCL=1.
if(DSK_WITH_CUDA)
  find_path(DSK_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  find_library(DSK_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
  if(DSK_NCCL_INCLUDE_DIR AND DSK_NCCL_LIBRARY)
    add_library(dsk_nccl INTERFACE)
    add_library(dsk::nccl ALIAS dsk_nccl)
    target_include_directories(dsk_nccl SYSTEM INTERFACE ${DSK_NCCL_INCLUDE_DIR})
    target_link_libraries(dsk_nccl INTERFACE dsk::cuda ${DSK_NCCL_LIBRARY})
    target_compile_definitions(dsk_nccl INTERFACE DSK_HAS_NCCL=1)
    message(STATUS "dsk: NCCL found (${DSK_NCCL_LIBRARY}): dsk::nccl")
  else()
    message(STATUS "dsk: NCCL not found (nccl.h, libnccl): no dsk::nccl, the GPU expert-parallel test uses the "
                   "staged transport only")
  endif()
endif()
