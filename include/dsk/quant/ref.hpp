// Plain scalar reference of the quant family, written from the formulas in quant/format.hpp and
// docs/quantization.md: quantize (abs-max and clipping search, both roundings, both divisions), dequantize,
// per-token activation quantization, weight-only and W8A8/W4A8 products (accumulated in double), fake
// quantization and its straight-through gradient. The oracle of tests/quant; shares no code with quant/host/.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"
#include "dsk/quant/format.hpp"

namespace dsk::quant::ref {

// Codes as plain ints [rows, cols] and scales (as stored, widened to float) [rows, groups].
struct quantized {
  index_t rows = 0, cols = 0, groups = 0;
  std::vector<int> codes;
  std::vector<float> scales;
  int code(index_t i, index_t j) const { return codes[static_cast<std::size_t>(i * cols + j)]; }
  float scale(index_t i, index_t g) const { return scales[static_cast<std::size_t>(i * groups + g)]; }
};

inline float round_to_int(float v, rounding r) {
  // nearbyint rounds ties to even in the default rounding mode; std::round rounds ties away from zero.
  return r == rounding::half_even ? std::nearbyint(v) : std::round(v);
}

inline float stored_scale(float s, scale_type t) {
  switch (t) {
    case scale_type::f32:
      return s;
    case scale_type::f16:
      return static_cast<float>(dsk::f16(s));
    case scale_type::bf16:
      return static_cast<float>(dsk::bf16(s));
  }
  return s;
}

// w / s as division d forms it: one IEEE division, or w times the reciprocal 1 / s rounded to float first
// (PyTorch: inv_scale = 1.0f / scale; w * inv_scale), unless that reciprocal is infinite (then w / s).
inline float ratio(float w, float s, division d) {
  if (d == division::reciprocal) {
    const float inv = 1.0f / s;
    if (std::isfinite(inv)) return w * inv;
  }
  return w / s;
}

// q = clamp(round(w / s), qmin, qmax); 0 when s == 0.
inline int code_of(float w, float s, format f, rounding r, division d = division::divide) {
  if (s == 0.0f) return 0;
  float q = round_to_int(ratio(w, s, d), r);
  if (q < static_cast<float>(qmin(f))) q = static_cast<float>(qmin(f));
  if (q > static_cast<float>(qmax(f))) q = static_cast<float>(qmax(f));
  return static_cast<int>(q);
}

template <class T>
quantized quantize(view<const T, 2> w, quantize_config c) {
  const format f = c.fmt;
  quantized out;
  out.rows = w.extent(0);
  out.cols = w.extent(1);
  out.groups = groups_per_row(f, out.cols);
  out.codes.assign(static_cast<std::size_t>(out.rows * out.cols), 0);
  out.scales.assign(static_cast<std::size_t>(out.rows * out.groups), 0.0f);
  const index_t span = group_span(f, out.cols);
  for (index_t i = 0; i < out.rows; ++i) {
    for (index_t g = 0; g < out.groups; ++g) {
      const index_t k0 = g * span, k1 = std::min(out.cols, k0 + span);
      float amax = 0.0f;
      for (index_t k = k0; k < k1; ++k) {
        const float v = static_cast<float>(w(i, k));
        if (!std::isfinite(v))
          fail("quant::ref::quantize: channel ", i, " holds a non-finite weight at column ", k);
        amax = std::max(amax, std::fabs(v));
      }
      const int steps = c.method == range_method::mse ? clip_steps : 1;
      float best_s = 0.0f;
      double best_err = std::numeric_limits<double>::infinity();
      for (int r = 0; r < steps; ++r) {
        const float s = stored_scale(amax * clip_ratio(r) / divisor(f), f.scale);
        if (std::isinf(s))
          fail("quant::ref::quantize: channel ", i, ": the scale overflows its storage type");
        double err = 0;
        for (index_t k = k0; k < k1; ++k) {
          const float v = static_cast<float>(w(i, k));
          const double d = static_cast<double>(v) -
                           static_cast<double>(code_of(v, s, f, c.round, c.div)) * static_cast<double>(s);
          err += d * d;
        }
        if (err < best_err) {
          best_err = err;
          best_s = s;
        }
      }
      out.scales[static_cast<std::size_t>(i * out.groups + g)] = best_s;
      for (index_t k = k0; k < k1; ++k)
        out.codes[static_cast<std::size_t>(i * out.cols + k)] =
            code_of(static_cast<float>(w(i, k)), best_s, f, c.round, c.div);
    }
  }
  return out;
}

// w[i, k] = code * scale, in float.
inline std::vector<float> dequantize(const quantized& q, format f) {
  std::vector<float> w(static_cast<std::size_t>(q.rows * q.cols));
  const index_t span = group_span(f, q.cols);
  for (index_t i = 0; i < q.rows; ++i)
    for (index_t k = 0; k < q.cols; ++k)
      w[static_cast<std::size_t>(i * q.cols + k)] = static_cast<float>(q.code(i, k)) * q.scale(i, k / span);
  return w;
}

// y[m, n] = sum_k x[m, k] * wd[n * K + k], in double.
inline std::vector<double> matmul(view<const float, 2> x, const std::vector<float>& wd, index_t n_rows) {
  const index_t M = x.extent(0), K = x.extent(1);
  std::vector<double> y(static_cast<std::size_t>(M * n_rows));
  for (index_t m = 0; m < M; ++m)
    for (index_t n = 0; n < n_rows; ++n) {
      double s = 0;
      for (index_t k = 0; k < K; ++k)
        s += static_cast<double>(x(m, k)) * wd[static_cast<std::size_t>(n * K + k)];
      y[static_cast<std::size_t>(m * n_rows + n)] = s;
    }
  return y;
}

// Per-token int8 quantization of activations: s = amax / 127, q = clamp(nearbyint(x / s), -127, 127).
struct tokens {
  index_t rows = 0, cols = 0;
  std::vector<int> codes;
  std::vector<float> scales;
};
inline tokens quantize_tokens(view<const float, 2> x) {
  tokens t;
  t.rows = x.extent(0);
  t.cols = x.extent(1);
  t.codes.assign(static_cast<std::size_t>(t.rows * t.cols), 0);
  t.scales.assign(static_cast<std::size_t>(t.rows), 0.0f);
  for (index_t m = 0; m < t.rows; ++m) {
    float amax = 0;
    for (index_t k = 0; k < t.cols; ++k) {
      if (!std::isfinite(x(m, k)))
        fail("quant::ref::quantize_tokens: token ", m, " holds a non-finite value");
      amax = std::max(amax, std::fabs(x(m, k)));
    }
    const float s = amax / 127.0f;
    t.scales[static_cast<std::size_t>(m)] = s;
    for (index_t k = 0; k < t.cols; ++k)
      t.codes[static_cast<std::size_t>(m * t.cols + k)] =
          code_of(x(m, k), s, int8_per_channel, rounding::half_even);
  }
  return t;
}

// y[m, n] = sx[m] * sum_g sw[n, g] * sum_{k in g} xq[m, k] * wq[n, k]: integer dot products per group, in
// double.
inline std::vector<double> matmul_a8(const tokens& t, const quantized& q, format f) {
  std::vector<double> y(static_cast<std::size_t>(t.rows * q.rows));
  const index_t span = group_span(f, q.cols);
  for (index_t m = 0; m < t.rows; ++m)
    for (index_t n = 0; n < q.rows; ++n) {
      double acc = 0;
      for (index_t g = 0; g < q.groups; ++g) {
        std::int64_t dot = 0;
        for (index_t k = g * span; k < std::min(q.cols, (g + 1) * span); ++k)
          dot += static_cast<std::int64_t>(t.codes[static_cast<std::size_t>(m * t.cols + k)]) * q.code(n, k);
        acc += static_cast<double>(q.scale(n, g)) * static_cast<double>(dot);
      }
      y[static_cast<std::size_t>(m * q.rows + n)] =
          static_cast<double>(t.scales[static_cast<std::size_t>(m)]) * acc;
    }
  return y;
}

// Fake quantization (PyTorch fake_quantize_per_channel_affine with zero point 0): y = clamp(round(x/s)) * s
// with scales [rows, groups]; s == 0 gives y = 0.
inline float fake_quant(float x, float s, format f, rounding r, division d = division::divide) {
  return static_cast<float>(code_of(x, s, f, r, d)) * s;
}
// Straight-through mask: 1 where qmin <= round(x / s) <= qmax (for s == 0: where x == 0), else 0.
inline float fake_quant_mask(float x, float s, format f, rounding r, division d = division::divide) {
  if (s == 0.0f) return x == 0.0f ? 1.0f : 0.0f;
  const float q = round_to_int(ratio(x, s, d), r);
  return (q >= static_cast<float>(qmin(f)) && q <= static_cast<float>(qmax(f))) ? 1.0f : 0.0f;
}

}  // namespace dsk::quant::ref
