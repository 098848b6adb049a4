// Execution tags of the host entry points: every family's op<Config, Exec = dsk::host> accepts dsk::host (the
// best packet layer compiled into this TU) or an explicit packet layer (dsk::simd::scalar, avx2, neon), so
// tests run the scalar twin through the public entry point. Host only; dsk::cuda is handled by the .cuh files.
#pragma once

#include <concepts>

#include "dsk/core/backend.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk {

// dsk::host, or a packet layer type (simd::scalar, simd::avx2, simd::neon) that runs the same kernel.
template <class E>
concept host_exec = std::same_as<E, host> || simd::packet_isa<E>;

namespace detail {
DSK_ISA_BEGIN
template <class E>
struct exec_packet {
  static_assert(host_exec<E>,
                "dsk: the execution tag must be dsk::host or a packet layer (dsk::simd::scalar, avx2, neon); "
                "dsk::cuda entry points live in the family's .cuh headers");
  using type = E;
};
template <>
struct exec_packet<host> {
  using type = simd::native;
};
DSK_ISA_END
}  // namespace detail

// The packet layer an execution tag selects: dsk::host -> simd::native; a packet layer -> itself.
template <class E>
using exec_packet_t = typename detail::exec_packet<E>::type;

}  // namespace dsk
