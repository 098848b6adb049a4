# dsk::mpi: expert parallelism over MPI (include/dsk/moe/expert_parallel.hpp). It needs an MPI implementation
# (its C API); on Debian that is Open MPI (libopenmpi-dev, with openmpi-bin for mpirun). DSK_MPI = AUTO
# builds it when MPI is found, ON requires it, OFF leaves it out. Cross builds leave it out: Debian has no static
# Open MPI for the target.
if(TARGET dsk_mpi)
  return()
endif()
set(DSK_MPI "AUTO" CACHE STRING "Build dsk::mpi (expert parallelism over MPI): AUTO (when MPI is found), ON, OFF")
set_property(CACHE DSK_MPI PROPERTY STRINGS AUTO ON OFF)
set(DSK_WITH_MPI OFF)
if(DSK_MPI STREQUAL "OFF")
  return()
endif()
if(CMAKE_CROSSCOMPILING)
  if(DSK_MPI STREQUAL "ON")
    message(FATAL_ERROR "dsk: DSK_MPI=ON is not supported in a cross build (no MPI for the target)")
  endif()
  message(STATUS "dsk: dsk::mpi not built in this cross build (no MPI for the target)")
  return()
endif()
# dsk calls MPI's C API from C++; MPI::MPI_CXX carries the compile and link flags of the C++ wrapper, without the
# deprecated C++ bindings (MPI_CXX_SKIP_MPICXX).
set(MPI_CXX_SKIP_MPICXX ON CACHE BOOL "dsk uses MPI's C API only")
find_package(MPI QUIET COMPONENTS CXX)
if(NOT MPI_CXX_FOUND)
  if(DSK_MPI STREQUAL "ON")
    message(FATAL_ERROR
      "dsk: DSK_MPI=ON but no MPI was found. On Debian/Ubuntu install Open MPI with:\n"
      "    sudo apt-get install libopenmpi-dev openmpi-bin\n"
      "or run tools/setup-deps.sh, or configure with -DDSK_MPI=OFF.")
  endif()
  message(STATUS "dsk: dsk::mpi not available (needs an MPI: libopenmpi-dev and openmpi-bin)")
  return()
endif()
add_library(dsk_mpi INTERFACE)
add_library(dsk::mpi ALIAS dsk_mpi)
target_link_libraries(dsk_mpi INTERFACE dsk::dsk MPI::MPI_CXX)
set(DSK_WITH_MPI ON)
# The environment of the tests that run under mpirun (tests/, examples/v2): allow root (CI containers), no
# single-copy (CMA) transfers (they need ptrace rights that containers often lack), and oversubscription:
# 4 ranks on CI's 2 cores, where Open MPI then yields instead of binding ranks to cores.
set(DSK_MPI_TEST_ENV
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_hwloc_base_binding_policy=none)
# Open MPI itself leaves allocations behind at MPI_Finalize (its components are unloaded, so LeakSanitizer
# cannot even name them): the sanitizer build checks these tests for memory errors and UB, not for leaks.
# (ep_communicator holds its memory in RAII members only; the single-process MoE tests check for leaks.)
if(DSK_SANITIZE)
  list(APPEND DSK_MPI_TEST_ENV ASAN_OPTIONS=detect_leaks=0:abort_on_error=1)
endif()
