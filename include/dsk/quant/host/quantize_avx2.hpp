// Host kernels of quantize, dequantize, per-token activation quantization and fake quantization, templated on
// the packet layer (simd::scalar or simd::avx2, bit-identical). Checked against quant/ref.hpp in
// tests/quant/quantize.cpp and tests/quant/fake_quant.cpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/quant/format.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::quant::detail {
DSK_ISA_BEGIN

template <class S>
inline typename S::f32 round_codes(typename S::f32 v, rounding r) {
  return r == rounding::half_even ? S::round_even(v) : S::round_away(v);
}

// The quotient w / s of a packet under quantize_config::div (format.hpp's quotient_of, lane by lane): built
// once per scale s != 0, then w / s (divide, or a reciprocal that overflows f32) or w * f32(1 / s).
template <class S>
struct quotient {
  typename S::f32 s, inv;
  bool recip = false;
  quotient(float scale, division d) : s(S::broadcast(scale)), inv(S::zero()) {
    if (d != division::reciprocal || scale == 0.0f) return;
    const float r = 1.0f / scale;
    recip = std::isfinite(r);
    if (recip) inv = S::broadcast(r);
  }
  typename S::f32 operator()(typename S::f32 w) const { return recip ? S::mul(w, inv) : S::div(w, s); }
};

// clamp(round(w / s), qmin, qmax) for one packet (s != 0).
template <class S>
inline typename S::f32 codes_of(typename S::f32 w, const quotient<S>& s, typename S::f32 lo,
                                typename S::f32 hi, rounding r) {
  return S::min(S::max(round_codes<S>(s(w), r), lo), hi);
}

template <class S, class T>
inline typename S::f32 load_n(const T* p, index_t n) {
  return n >= S::width ? S::load(p) : S::load_partial(p, static_cast<int>(n));
}

inline float to_stored_scale(float s, scale_type t) {
  switch (t) {
    case scale_type::f32:
      return s;
    case scale_type::f16:
      return static_cast<float>(dsk::f16::from_bits(dsk::detail::float_to_f16_bits(s)));
    case scale_type::bf16:
      return static_cast<float>(dsk::bf16::from_bits(dsk::detail::float_to_bf16_bits(s)));
  }
  return s;
}

// Quantizes rows [r0, r1) of w [N, K] (any float storage type, unit inner stride) into codes and scales.
// `where` names the entry point in errors.
template <class S, quantize_config C, class T>
void quantize_rows(const T* w, index_t ldw, index_t r0, index_t r1, index_t K, std::uint8_t* codes,
                   index_t ldc, scale_t<C.fmt>* scales, index_t lds, const char* where) {
  constexpr format F = C.fmt;
  using P = typename S::f32;
  const index_t span = group_span(F, K), G = groups_per_row(F, K);
  const P lo = S::broadcast(static_cast<float>(qmin(F))), hi = S::broadcast(static_cast<float>(qmax(F)));
  std::vector<float> tmp(C.method == range_method::mse ? static_cast<std::size_t>(span + S::width) : 0);
  for (index_t i = r0; i < r1; ++i) {
    const T* row = w + i * ldw;
    std::uint8_t* crow = codes + i * ldc;
    for (index_t g = 0; g < G; ++g) {
      const index_t k0 = g * span, k1 = std::min(K, k0 + span);
      // abs-max, and a sum of w * 0 that is NaN exactly when some weight is NaN or infinite.
      P amax = S::zero(), bad = S::zero();
      for (index_t k = k0; k < k1; k += S::width) {
        const P v = load_n<S>(row + k, k1 - k);
        amax = S::max(amax, S::abs(v));
        bad = S::add(bad, S::mul(v, S::zero()));
      }
      if (std::isnan(S::reduce_add(bad))) {
        index_t at = k0;
        while (std::isfinite(static_cast<float>(row[at]))) ++at;
        fail(where, ": argument 'w': channel ", i, " holds a non-finite weight (",
             static_cast<float>(row[at]), ") at column ", at);
      }
      const float am = S::reduce_max(amax);
      float s = 0.0f;
      if constexpr (C.method == range_method::mse) {
        double best = INFINITY;
        for (int r = 0; r < clip_steps; ++r) {
          const float c = to_stored_scale(am * clip_ratio(r) / divisor(F), F.scale);
          if (std::isinf(c))
            fail(where, ": argument 'w': channel ", i, ": the scale overflows its storage type");
          if (c != 0.0f) {
            const quotient<S> cv(c, C.div);
            for (index_t k = k0; k < k1; k += S::width) {
              const index_t n = std::min<index_t>(S::width, k1 - k);
              S::store_partial(tmp.data() + (k - k0), codes_of<S>(load_n<S>(row + k, n), cv, lo, hi, C.round),
                               static_cast<int>(n));
            }
          } else {
            std::fill(tmp.begin(), tmp.end(), 0.0f);
          }
          double err = 0;
          for (index_t k = k0; k < k1; ++k) {
            const double d =
                static_cast<double>(static_cast<float>(row[k])) -
                static_cast<double>(tmp[static_cast<std::size_t>(k - k0)]) * static_cast<double>(c);
            err += d * d;
          }
          if (err < best) {
            best = err;
            s = c;
          }
        }
      } else {
        s = to_stored_scale(am / divisor(F), F.scale);
        if (std::isinf(s))
          fail(where, ": argument 'w': channel ", i, ": the scale overflows its storage type");
      }
      scales[i * lds + g] = from_float<scale_t<F>>(s);
      // Codes of [k0, k1). A zero scale (zero channel, or a magnitude below the scale type's range) gives
      // codes 0.
      const quotient<S> sv(s, C.div);
      for (index_t k = k0; k < k1; k += S::width) {
        const index_t n = std::min<index_t>(S::width, k1 - k);
        const P q = s == 0.0f ? S::zero() : codes_of<S>(load_n<S>(row + k, n), sv, lo, hi, C.round);
        if constexpr (F.type == qtype::int8) {
          S::store_i8(reinterpret_cast<std::int8_t*>(crow + k), q, static_cast<int>(n));
        } else if (n == S::width) {
          S::store_i4(crow + k / 2, q);
        } else {
          std::uint8_t b[4];
          S::store_i4(b, q);  // lanes >= n are 0, so an odd tail leaves the last high nibble 0
          std::memcpy(crow + k / 2, b, static_cast<std::size_t>((n + 1) / 2));
        }
      }
    }
  }
}

// w[i, k] = code * scale for rows [r0, r1).
template <class S, format F>
void dequantize_rows(qweight_view<F> q, index_t r0, index_t r1, float* out, index_t ldo) {
  const index_t K = q.cols, span = group_span(F, K), G = q.groups();
  for (index_t i = r0; i < r1; ++i) {
    const std::uint8_t* c = q.code_row(i);
    float* o = out + i * ldo;
    for (index_t g = 0; g < G; ++g) {
      const index_t k0 = g * span, k1 = std::min(K, k0 + span);
      const typename S::f32 s = S::broadcast(q.scale(i, g));
      index_t k = k0;
      if constexpr (F.type == qtype::int8) {
        for (; k + S::width <= k1; k += S::width)
          S::store(o + k, S::mul(S::load_i8_f32(reinterpret_cast<const std::int8_t*>(c + k)), s));
      } else {
        for (; k + 16 <= k1; k += 16) {
          typename S::f32 e, od;
          S::load_i4_f32(c + k / 2, e, od);
          alignas(32) float ev[8], ov[8];
          S::store(ev, S::mul(e, s));
          S::store(ov, S::mul(od, s));
          for (int j = 0; j < 8; ++j) {
            o[k + 2 * j] = ev[j];
            o[k + 2 * j + 1] = ov[j];
          }
        }
      }
      const float sf = q.scale(i, g);
      for (; k < k1; ++k) o[k] = static_cast<float>(q.code(i, k)) * sf;
    }
  }
}

// Per-token int8 quantization of x rows [r0, r1): s = amax / 127, q = clamp(nearbyint(x / s), -127, 127).
// Out: int8 or int16 codes, in natural order (Perm = 0) or in the order the int4 W4A8 kernels read (Perm = 32
// or 64: each full block of Perm elements as its Perm / 2 even then Perm / 2 odd elements, the K % Perm tail
// in natural order).
template <class S, class Out, int Perm>
void quantize_tokens_rows(const float* x, index_t ldx, index_t r0, index_t r1, index_t K, Out* q, index_t ldq,
                          float* scales, const char* where) {
  static_assert(Perm == 0 || Perm == 32 || Perm == 64);
  using P = typename S::f32;
  const P lo = S::broadcast(-127.0f), hi = S::broadcast(127.0f);
  alignas(32) float tmp[64];
  for (index_t m = r0; m < r1; ++m) {
    const float* row = x + m * ldx;
    Out* qrow = q + m * ldq;
    P amax = S::zero(), bad = S::zero();
    for (index_t k = 0; k < K; k += S::width) {
      const P v = load_n<S>(row + k, K - k);
      amax = S::max(amax, S::abs(v));
      bad = S::add(bad, S::mul(v, S::zero()));
    }
    if (std::isnan(S::reduce_add(bad))) fail(where, ": argument 'x': token ", m, " holds a non-finite value");
    const float s = S::reduce_max(amax) / 127.0f;
    scales[m] = s;
    const quotient<S> sv(s, division::divide);
    auto codes = [&](index_t k, index_t n) {
      return s == 0.0f ? S::zero() : codes_of<S>(load_n<S>(row + k, n), sv, lo, hi, rounding::half_even);
    };
    index_t k = 0;
    if constexpr (Perm > 0) {
      for (; k + Perm <= K; k += Perm) {
        for (int j = 0; j < Perm / 8; ++j) S::store(tmp + 8 * j, codes(k + 8 * j, 8));
        for (int j = 0; j < Perm / 2; ++j) {
          qrow[k + j] = static_cast<Out>(tmp[2 * j]);
          qrow[k + Perm / 2 + j] = static_cast<Out>(tmp[2 * j + 1]);
        }
      }
    }
    for (; k < K; k += S::width) {
      const index_t n = std::min<index_t>(S::width, K - k);
      if constexpr (std::is_same_v<Out, std::int8_t>) {
        S::store_i8(qrow + k, codes(k, n), static_cast<int>(n));
      } else {
        S::store(tmp, codes(k, n));
        for (index_t j = 0; j < n; ++j) qrow[k + j] = static_cast<Out>(tmp[j]);
      }
    }
  }
}

// Fake quantization of rows [r0, r1): y = clamp(round(x / s)) * s (0 where s == 0) and, when dy is given,
// dx = dy where qmin <= round(x / s) <= qmax (where x == 0 when s == 0), else 0; x / s formed as C.div says.
template <class S, quantize_config C>
void fake_quant_rows(const float* x, index_t ldx, const float* sc, index_t lds, index_t r0, index_t r1,
                     index_t K, float* y, index_t ldy, const float* dy, index_t lddy, float* dx,
                     index_t lddx) {
  constexpr format F = C.fmt;
  using P = typename S::f32;
  const P lo = S::broadcast(static_cast<float>(qmin(F))), hi = S::broadcast(static_cast<float>(qmax(F)));
  const index_t span = group_span(F, K), G = groups_per_row(F, K);
  for (index_t i = r0; i < r1; ++i)
    for (index_t g = 0; g < G; ++g) {
      const float s = sc[i * lds + g];
      const P sv = S::broadcast(s);
      const quotient<S> quot(s, C.div);
      const index_t k1 = std::min(K, (g + 1) * span);
      for (index_t k = g * span; k < k1; k += S::width) {
        const int n = static_cast<int>(std::min<index_t>(S::width, k1 - k));
        const P v = load_n<S>(x + i * ldx + k, n);
        P q = S::zero(), in_range = S::zero();
        if (s != 0.0f) {
          const P r = round_codes<S>(quot(v), C.round);
          // + 0 turns a code of -0 into +0: y is the integer code times s, with no signed zero (as the
          // reference's and torch's int codes).
          q = S::add(S::min(S::max(r, lo), hi), S::zero());
          in_range = S::select_eq(q, r, S::broadcast(1.0f));
        } else {
          in_range = S::select_eq(v, S::zero(), S::broadcast(1.0f));
        }
        if (y) S::store_partial(y + i * ldy + k, S::mul(q, sv), n);
        if (dx) S::store_partial(dx + i * lddx + k, S::mul(load_n<S>(dy + i * lddy + k, n), in_range), n);
      }
    }
}

DSK_ISA_END
}  // namespace dsk::quant::detail
