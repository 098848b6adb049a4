// Finiteness checks: the first NaN or infinity of an f32 / bf16 / f16 vector or matrix, for checking weights
// once at load and logits after a forward. Host backend on the packet layer of Exec (dsk::host or
// dsk::simd::scalar / avx2 / neon; the same answer on every layer). Checked against std::isfinite on every
// element in tests/nn/finite.cpp.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>

#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/core/parallel.hpp"
#include "dsk/core/view.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::nn {

// Element types the checks accept: the float storage types of checkpoints.
template <class T>
concept finite_checkable = std::same_as<T, float> || std::same_as<T, bf16> || std::same_as<T, f16>;

namespace detail {
DSK_ISA_BEGIN
// Elements per block: a block is scanned with packets, and only a block that holds a non-finite value is
// scanned again element by element to find its first one.
inline constexpr index_t finite_block = 1024;

template <class T>
bool is_finite1(T v) {
  return std::isfinite(static_cast<float>(v));  // bf16 / f16 -> f32 keeps NaN and infinity
}

// The index of the first non-finite element of p[0, n), or n. x - x is +0 for every finite x and NaN for
// NaN and +-infinity (bf16 / f16 widen exactly to f32), so the sum of x - x over a block is 0 exactly when
// the block is finite.
template <class S, class T>
index_t first_nonfinite_serial(const T* p, index_t n) {
  for (index_t b = 0; b < n; b += finite_block) {
    const index_t e = std::min(n, b + finite_block);
    auto acc = S::zero();
    index_t i = b;
    for (; i + S::width <= e; i += S::width) {
      const auto v = S::load(p + i);
      acc = S::add(acc, S::sub(v, v));
    }
    if (i < e) {
      const auto v = S::load_partial(p + i, static_cast<int>(e - i));
      acc = S::add(acc, S::sub(v, v));
    }
    if (!(S::reduce_add(acc) == 0.0f))
      for (index_t k = b; k < e; ++k)
        if (!is_finite1(p[k])) return k;
  }
  return n;
}

// The same over [0, n) split across the threads; the smallest index wins (the same answer for any thread
// count).
template <class S, class T>
index_t first_nonfinite_parallel(const T* p, index_t n) {
  std::atomic<index_t> first{n};
  parallel_for_chunks(0, n, 64 * finite_block, [&](index_t lo, index_t hi) {
    const index_t k = lo + first_nonfinite_serial<S>(p + lo, hi - lo);
    if (k >= hi) return;
    index_t cur = first.load(std::memory_order_relaxed);
    while (k < cur && !first.compare_exchange_weak(cur, k, std::memory_order_relaxed)) {
    }
  });
  return first.load();
}
DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN

// The index of the first NaN or +-infinity of x: [n] (unit stride), or -1 when every element is finite.
// One vectorised pass over x (all of it when finite), split over the threads.
template <host_exec Exec = host, finite_checkable T>
index_t first_nonfinite(view<const T, 1> x) {
  using S = exec_packet_t<Exec>;
  const contract c{"nn::first_nonfinite"};
  c.unit_inner_stride("x", x);
  const index_t n = x.extent(0);
  const index_t k = detail::first_nonfinite_parallel<S>(x.data(), n);
  return k < n ? k : index_t{-1};
}

// The (row, column) of the first non-finite element of x: [rows, n] (rows in order, unit inner stride; rows
// may be strided), or {-1, -1} when every element is finite.
template <host_exec Exec = host, finite_checkable T>
std::array<index_t, 2> first_nonfinite(view<const T, 2> x) {
  using S = exec_packet_t<Exec>;
  const contract c{"nn::first_nonfinite"};
  c.unit_inner_stride("x", x);
  const index_t rows = x.extent(0), n = x.extent(1);
  for (index_t r = 0; r < rows; ++r) {
    const index_t k = detail::first_nonfinite_parallel<S>(x.data() + r * x.stride(0), n);
    if (k < n) return {r, k};
  }
  return {-1, -1};
}

// True when no element of x (rank 1 or 2, unit inner stride) is NaN or infinite.
template <host_exec Exec = host, finite_checkable T>
bool all_finite(view<const T, 1> x) {
  return first_nonfinite<Exec>(x) < 0;
}
template <host_exec Exec = host, finite_checkable T>
bool all_finite(view<const T, 2> x) {
  return first_nonfinite<Exec>(x)[0] < 0;
}

DSK_ISA_END

}  // namespace dsk::nn
