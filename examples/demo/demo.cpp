// dsk demo: reports what this machine and this build can run, then exercises the host SIMD layer on
// deterministic data and verifies every result against the scalar layer (bit for bit) and a double-precision
// evaluation. Exits non-zero if anything disagrees. tools/demo.sh runs this self-check first, then the V2
// reference model (examples/v2, dsk_v2) on its tiny preset.
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

#include "dsk/dsk.hpp"

namespace {

template <class S, class W>
float dot(const W* a, const float* b, dsk::index_t n) {
  auto acc = S::zero();
  dsk::index_t i = 0;
  for (; i + S::width <= n; i += S::width) acc = S::fma(S::load(a + i), S::load(b + i), acc);
  acc = S::fma(S::load_partial(a + i, static_cast<int>(n - i)),
               S::load_partial(b + i, static_cast<int>(n - i)), acc);
  return S::reduce_add(acc);
}

// Softmax of one row: exp with the packet layer (partial packets for the tail), sums in float.
template <class S>
void softmax(const float* x, float* y, dsk::index_t n) {
  const float mx = *std::max_element(x, x + n);
  for (dsk::index_t i = 0; i < n; i += S::width) {
    const int m = static_cast<int>(std::min<dsk::index_t>(S::width, n - i));
    S::store_partial(y + i, S::exp(S::sub(S::load_partial(x + i, m), S::broadcast(mx))), m);
  }
  float total = 0;
  for (dsk::index_t i = 0; i < n; ++i) total += y[i];
  for (dsk::index_t i = 0; i < n; ++i) y[i] /= total;
}

bool same_bits(float a, float b) {
  return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
}

}  // namespace

int main() {
  try {
    dsk::require_compiled_isa();
    const auto cpu = dsk::detect_cpu_features();
    fmt::print("dsk {}.{}.{} demo\n", DSK_VERSION_MAJOR, DSK_VERSION_MINOR, DSK_VERSION_PATCH);
    fmt::print("  CPU features : {}\n", cpu.to_string());
    fmt::print("  compiled ISA : {} (packet layer: {}), OpenMP: {}, threads: {}\n", dsk::compiled_isa(),
               dsk::simd::native::name, dsk::parallel_enabled() ? "yes" : "no", dsk::num_threads());

    // Deterministic data: a bf16 "weight" matrix and an f32 activation, converted with the library's RNE.
    const dsk::index_t rows = 64, cols = 4099;  // cols: not a multiple of the vector width on purpose
    dsk::tensor<dsk::bf16, 2> w(rows, cols);
    dsk::tensor<float, 2> wf(rows, cols);
    std::vector<float> x(static_cast<std::size_t>(cols));
    std::uint32_t state = 12345;
    auto next = [&] {
      state = state * 1664525u + 1013904223u;
      return static_cast<float>(state >> 8) / static_cast<float>(1u << 24) * 2.0f - 1.0f;
    };
    for (dsk::index_t i = 0; i < rows; ++i)
      for (dsk::index_t j = 0; j < cols; ++j) {
        w(i, j) = dsk::bf16(next());
        wf(i, j) = float(w(i, j));
      }
    for (auto& v : x) v = next();

    // 1) matrix-vector product in parallel over rows, native vs scalar packets vs double.
    std::vector<float> y_native(rows), y_scalar(rows);
    auto gemv = [&] {
      dsk::parallel_for(0, rows, [&](dsk::index_t i) {
        y_native[static_cast<std::size_t>(i)] = dot<dsk::simd::native>(&w(i, 0), x.data(), cols);
      });
    };
    gemv();                // warm-up: starts the thread pool
    double us = INFINITY;  // best of several calls: one call can wait for a descheduled worker thread
    for (int rep = 0; rep < 20; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      gemv();
      us = std::min(us,
                    std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    double worst = 0;
    bool identical = true;
    for (dsk::index_t i = 0; i < rows; ++i) {
      y_scalar[static_cast<std::size_t>(i)] = dot<dsk::simd::scalar>(&w(i, 0), x.data(), cols);
      double want = 0, mag = 0;
      for (dsk::index_t j = 0; j < cols; ++j) {
        want += static_cast<double>(wf(i, j)) * x[static_cast<std::size_t>(j)];
        mag += std::abs(static_cast<double>(wf(i, j)) * x[static_cast<std::size_t>(j)]);
      }
      worst = std::max(worst, std::abs(y_native[static_cast<std::size_t>(i)] - want) / mag);
      identical = identical &&
                  same_bits(y_native[static_cast<std::size_t>(i)], y_scalar[static_cast<std::size_t>(i)]);
    }
    fmt::print(
        "  GEMV {}x{} (bf16 weights widened in registers): {:.1f} us (best of 20), native == scalar bit for "
        "bit: {}, "
        "max error vs double: {:.2e} of sum|w x|\n",
        rows, cols, us, identical ? "yes" : "NO", worst);

    // 2) softmax of the result row with the SIMD exp.
    std::vector<float> p(rows), p_scalar(rows);
    softmax<dsk::simd::native>(y_native.data(), p.data(), rows);
    softmax<dsk::simd::scalar>(y_native.data(), p_scalar.data(), rows);
    double psum = 0, perr = 0, mx = -INFINITY;
    for (float v : y_native) mx = std::max(mx, static_cast<double>(v));
    double z = 0;
    for (float v : y_native) z += std::exp(static_cast<double>(v) - mx);
    bool p_identical = true;
    for (dsk::index_t i = 0; i < rows; ++i) {
      const auto k = static_cast<std::size_t>(i);
      psum += p[k];
      perr = std::max(perr, std::abs(p[k] - std::exp(static_cast<double>(y_native[k]) - mx) / z));
      p_identical = p_identical && same_bits(p[k], p_scalar[k]);
    }
    fmt::print("  softmax over {} logits: sum = {:.7f}, max error vs double: {:.2e}, native == scalar: {}\n",
               rows, psum, perr, p_identical ? "yes" : "NO");

    const bool ok = identical && p_identical && worst < 1e-5 && perr < 1e-6;
    fmt::print("{}\n", ok ? "demo: all results verified" : "demo: VERIFICATION FAILED");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "dsk demo: {}\n", e.what());
    return 2;
  }
}
