// Rotary position embedding (Su et al., RoFormer 2021) with YaRN frequency interpolation and attention scale
// (Peng et al. 2023) as DeepSeek-V2 uses them (modeling_deepseek.py: DeepseekV2YarnRotaryEmbedding). Two
// storage layouts of the rotated pairs. Host, plain loops. Checked against nn/ref.hpp and the closed-form
// V2-Lite values in tests/nn/rope.cpp.
#pragma once

#include <cmath>
#include <numbers>
#include <span>
#include <utility>
#include <vector>

#include "dsk/core/error.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/core/parallel.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/core/view.hpp"

namespace dsk::nn {

// Which elements form a rotated pair.
//  interleaved: (x[2i], x[2i+1]), rotated by inv_freq[i] (transformers' complex-number form; the checkpoint
//               storage order of q_pe / k_pe).
//  half_split:  (x[i], x[i + dim/2]) (rotate_half; DeepSeek's code de-interleaves q_pe / k_pe into this order
//               first). Both give the same q.k when q and k use the same layout.
enum class rope_layout { interleaved, half_split };

// config.json's rope_scaling of type "yarn". factor <= 1 means no scaling (plain RoPE).
struct yarn_params {
  double factor = 1.0;
  index_t original_max_position = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
};

struct rope_params {
  index_t dim = 64;  // rotated dims per head (qk_rope_head_dim); even
  double base = 10000.0;
  rope_layout layout = rope_layout::interleaved;
  yarn_params yarn{};
};

// The (fractional) dim index whose wavelength makes num_rotations turns over max_position positions.
inline double yarn_correction_dim(double num_rotations, index_t dim, double base, index_t max_position) {
  return static_cast<double>(dim) *
         std::log(static_cast<double>(max_position) / (num_rotations * 2.0 * std::numbers::pi)) /
         (2.0 * std::log(base));
}

// [low, high]: dims below low keep the original frequency, above high are fully interpolated (10, 23 for V2).
inline std::pair<index_t, index_t> yarn_correction_range(const rope_params& p) {
  const auto low = static_cast<index_t>(
      std::floor(yarn_correction_dim(p.yarn.beta_fast, p.dim, p.base, p.yarn.original_max_position)));
  const auto high = static_cast<index_t>(
      std::ceil(yarn_correction_dim(p.yarn.beta_slow, p.dim, p.base, p.yarn.original_max_position)));
  return {std::max<index_t>(low, 0), std::min<index_t>(high, p.dim - 1)};
}

// yarn_get_mscale: 0.1 * mscale * ln(scale) + 1 for scale > 1, else 1.
inline double yarn_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

// Softmax scale of attention with q/k head dim qk_head_dim: qk_head_dim^-0.5, times mscale^2 with
// mscale = yarn_mscale(factor, mscale_all_dim) when mscale_all_dim != 0 (0.11472139 for V2 / V2-Lite).
inline float attention_softmax_scale(index_t qk_head_dim, const rope_params& p) {
  double s = 1.0 / std::sqrt(static_cast<double>(qk_head_dim));
  if (p.yarn.mscale_all_dim != 0.0) {
    const double m = yarn_mscale(p.yarn.factor, p.yarn.mscale_all_dim);
    s *= m * m;
  }
  return static_cast<float>(s);
}

// The multiplier of cos and sin: yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim).
inline double rope_cos_sin_scale(const rope_params& p) {
  return yarn_mscale(p.yarn.factor, p.yarn.mscale) / yarn_mscale(p.yarn.factor, p.yarn.mscale_all_dim);
}

// inv_freq[i], i < dim/2: base^(-2i/dim), blended with base^(-2i/dim) / factor by the YaRN ramp over
// [low, high] when factor > 1 (DeepSeek's _set_cos_sin_cache). Rounded to f32 as the reference computes them.
inline std::vector<float> rope_inv_freq(const rope_params& p) {
  const contract c{"nn::rope_inv_freq"};
  c.require(p.dim > 0 && p.dim % 2 == 0, "p.dim", "a positive even number", p.dim);
  c.require(p.base > 1.0, "p.base", "> 1", p.base);
  const index_t half = p.dim / 2;
  std::vector<float> inv(static_cast<std::size_t>(half));
  const bool yarn = p.yarn.factor > 1.0;
  double low = 0, high = 0;
  if (yarn) {
    const auto [lo, hi] = yarn_correction_range(p);
    low = static_cast<double>(lo), high = static_cast<double>(hi);
    if (low == high) high += 0.001;  // yarn_linear_ramp_mask's guard against 0 / 0
  }
  for (index_t i = 0; i < half; ++i) {
    const double extra = std::pow(p.base, -2.0 * static_cast<double>(i) / static_cast<double>(p.dim));
    double f = extra;
    if (yarn) {
      const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
      const double mask = 1.0 - ramp;  // 1: keep the original frequency
      f = extra / p.yarn.factor * (1.0 - mask) + extra * mask;
    }
    inv[static_cast<std::size_t>(i)] = static_cast<float>(f);
  }
  return inv;
}

// cos / sin of position * inv_freq[i] times rope_cos_sin_scale, for positions [0, max_positions): what a
// runner computes once. The angle is formed in double from the f32 inv_freq (torch forms it in f32, which
// differs by up to ~pos * 2^-24 rad).
class rope_cache {
 public:
  rope_cache() = default;
  rope_cache(const rope_params& p, index_t max_positions) : p_(p), inv_freq_(rope_inv_freq(p)) {
    const contract c{"nn::rope_cache"};
    c.require(max_positions >= 0, "max_positions", ">= 0", max_positions);
    const index_t half = p.dim / 2;
    cos_ = tensor<float, 2>(max_positions, half);
    sin_ = tensor<float, 2>(max_positions, half);
    const double scale = rope_cos_sin_scale(p);
    for (index_t t = 0; t < max_positions; ++t)
      for (index_t i = 0; i < half; ++i) {
        const double a = static_cast<double>(t) * static_cast<double>(inv_freq_[static_cast<std::size_t>(i)]);
        cos_(t, i) = static_cast<float>(std::cos(a) * scale);
        sin_(t, i) = static_cast<float>(std::sin(a) * scale);
      }
  }
  const rope_params& params() const { return p_; }
  index_t dim() const { return p_.dim; }
  index_t max_positions() const { return cos_.extent(0); }
  std::span<const float> inv_freq() const { return inv_freq_; }
  const float* cos_row(index_t pos) const { return cos_.data() + pos * cos_.extent(1); }
  const float* sin_row(index_t pos) const { return sin_.data() + pos * sin_.extent(1); }

 private:
  rope_params p_{};
  std::vector<float> inv_freq_;
  tensor<float, 2> cos_, sin_;
};

// Rotates x in place: x [tokens, heads, dim] (unit inner stride, any other strides), positions [tokens],
// each in [0, cache.max_positions()). Every head of a token uses that token's position. Plain loops for every
// Exec (dsk::host or a packet layer).
DSK_ISA_BEGIN
template <host_exec Exec = host>
void apply_rope(const rope_cache& cache, std::span<const index_t> positions, view<float, 3> x) {
  const contract c{"nn::apply_rope"};
  c.unit_inner_stride("x", x);
  c.extent("x", x, 0, static_cast<index_t>(positions.size()), "positions.size() (tokens)");
  c.extent("x", x, 2, cache.dim(), "cache.dim() (rope dim)");
  for (std::size_t t = 0; t < positions.size(); ++t)
    if (positions[t] < 0 || positions[t] >= cache.max_positions())
      fail("nn::apply_rope: argument 'positions': positions[", t, "] = ", positions[t], " is outside [0, ",
           cache.max_positions(), ")");
  const index_t half = cache.dim() / 2, heads = x.extent(1);
  const bool interleaved = cache.params().layout == rope_layout::interleaved;
  parallel_for(0, x.extent(0), [&](index_t t) {
    const float* cs = cache.cos_row(positions[static_cast<std::size_t>(t)]);
    const float* sn = cache.sin_row(positions[static_cast<std::size_t>(t)]);
    for (index_t h = 0; h < heads; ++h) {
      float* v = x.data() + t * x.stride(0) + h * x.stride(1);
      // Pair i is (v[a], v[b]) with a = 2i, b = 2i + 1 (interleaved) or a = i, b = i + half (half_split).
      const index_t step = interleaved ? 2 : 1, off = interleaved ? 1 : half;
      for (index_t i = 0; i < half; ++i) {
        float* a = v + i * step;
        const float x0 = a[0], x1 = a[off];
        // Explicit fma: how a compiler contracts a*b - c*d differs between loops and ISAs (AArch64 GCC fused
        // the two layouts' loops differently), and both layouts and both backends must give the same bits.
        a[0] = std::fma(x0, cs[i], -(x1 * sn[i]));
        a[off] = std::fma(x0, sn[i], x1 * cs[i]);
      }
    }
  });
}

// x [tokens, dim]: one head per token.
template <host_exec Exec = host>
void apply_rope(const rope_cache& cache, std::span<const index_t> positions, view<float, 2> x) {
  apply_rope<Exec>(cache, positions,
                   view<float, 3>(x.data(), dims<3>(x.extent(0), 1, x.extent(1)),
                                  {x.stride(0), x.extent(1), x.stride(1)}));
}
DSK_ISA_END

}  // namespace dsk::nn
