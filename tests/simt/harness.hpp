// One test body per kernel, run on every backend this build has: the host path and the CUDA path (under the
// SIMT emulation when compiled by g++, natively when the same file is compiled by nvcc for tests/cuda, where
// the host path is left out because tests/<family> covers it). put/get move tensors to and from the backend.
#pragma once

#include <string>
#include <type_traits>

#include "dsk/core/backend.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/cuda.cuh"
#include "support/compare.hpp"

// A statement that only the host build compiles (the host backends' headers are not built by nvcc).
#if defined(__CUDACC__)
#define DSK_TEST_HOST_ONLY(...)
#else
#define DSK_TEST_HOST_ONLY(...) __VA_ARGS__
#endif

namespace dsk::test {

template <class B>
inline constexpr bool is_host = std::is_same_v<B, dsk::host>;

template <class B>
std::string backend_name() {
  if constexpr (is_host<B>)
    return "host";
  else
    return DSK_SIMT_EMULATION ? "cuda (SIMT emulation)" : "cuda (native)";
}

// Calls f(dsk::host{}) (host builds only) and f(dsk::cuda{}).
template <class F>
void for_each_backend(F&& f) {
  DSK_TEST_HOST_ONLY(f(dsk::host{});)
  f(dsk::cuda{});
}

// The tensor on backend B: a host copy, or a device tensor.
template <class B, class T, std::size_t R>
auto put(const dsk::tensor<T, R>& h) {
  if constexpr (is_host<B>)
    return dsk::tensor<T, R>(h);
  else
    return dsk::device::upload(h);
}
template <class T, std::size_t R>
dsk::tensor<T, R> get(const dsk::tensor<T, R>& t) {
  return t;
}
template <class T, std::size_t R>
dsk::tensor<T, R> get(const dsk::device::tensor<T, R>& t) {
  return dsk::device::download(t);
}

// NMSE of a whole tensor against the reference (see support/compare.hpp).
template <class A, class B, std::size_t R>
double nmse_of(const dsk::tensor<A, R>& want, const dsk::tensor<B, R>& got) {
  return nmse(std::span<const A>(want.data(), static_cast<std::size_t>(want.size())),
              std::span<const B>(got.data(), static_cast<std::size_t>(got.size())));
}

}  // namespace dsk::test
