// CUDA rotary position embedding with YaRN (Su et al. 2021; Peng et al. 2023; DeepSeek-V2's
// DeepseekV2YarnRotaryEmbedding): the host's nn::rope_cache tables uploaded once, one block per token.
// Backend dsk::cuda; same contract and results as nn::apply_rope (nn/rope.hpp). Checked against nn/ref.hpp in
// tests/simt/nn.cpp (also built natively as tests/cuda).
#pragma once

#include <concepts>

#include "dsk/core/backend.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"
#include "dsk/cuda.cuh"
#include "dsk/nn/rope.hpp"

namespace dsk::nn {
DSK_CUDA_MODE_BEGIN

// The cos / sin tables of a host rope_cache in device memory ([max_positions, dim/2] each).
class device_rope_cache {
 public:
  device_rope_cache() = default;
  explicit device_rope_cache(const rope_cache& h, const device::stream& s = device::stream::default_stream())
      : p_(h.params()), max_(h.max_positions()), cos_(max_, h.dim() / 2), sin_(max_, h.dim() / 2) {
    const index_t n = max_ * (h.dim() / 2);
    if (n) {
      device::copy(cos_.data(), h.cos_row(0), n, device::copy_kind::host_to_device, s);
      device::copy(sin_.data(), h.sin_row(0), n, device::copy_kind::host_to_device, s);
      s.synchronize();  // the host tables are pageable memory owned by the caller
    }
  }
  const rope_params& params() const { return p_; }
  index_t dim() const { return p_.dim; }
  index_t max_positions() const { return max_; }
  const float* cos() const { return cos_.data(); }
  const float* sin() const { return sin_.data(); }

 private:
  rope_params p_{};
  index_t max_ = 0;
  device::tensor<float, 2> cos_, sin_;
};

namespace kernels {
__global__ void apply_rope(const float* cos, const float* sin, index_t max_pos, index_t half,
                           bool interleaved, const index_t* positions, float* x, index_t ld0, index_t ld1,
                           index_t heads, long long* bad) {
  const index_t t = blockIdx.x;
  const index_t pos = positions[t];
  if (pos < 0 || pos >= max_pos) {
    if (threadIdx.x == 0) device::report_index(bad, t);
    return;
  }
  const float* cs = cos + pos * half;
  const float* sn = sin + pos * half;
  const index_t step = interleaved ? 2 : 1, off = interleaved ? 1 : half;
  for (index_t p = threadIdx.x; p < heads * half; p += blockDim.x) {
    const index_t h = p / half, i = p - h * half;
    float* a = x + t * ld0 + h * ld1 + i * step;
    const float x0 = a[0], x1 = a[off];
    // Explicit fma: how a compiler contracts a*b - c*d differs between loops and ISAs (AArch64 GCC fused
    // the two layouts' loops differently), and both layouts and both backends must give the same bits.
    a[0] = fmaf(x0, cs[i], -(x1 * sn[i]));
    a[off] = fmaf(x0, sn[i], x1 * cs[i]);
  }
}
}  // namespace kernels

// Rotates x in place: x [tokens, heads, dim] in device memory (unit inner stride), positions [tokens] index_t
// in device memory, each in [0, cache.max_positions()) (checked on the device; a bad position throws
// dsk::error after synchronising s, and that token is left unchanged).
template <std::same_as<dsk::cuda> B>
void apply_rope(const device_rope_cache& cache, view<const index_t, 1> positions, view<float, 3> x,
                const device::stream& s = device::stream::default_stream()) {
  const contract c{"nn::apply_rope<cuda>"};
  c.unit_inner_stride("x", x);
  c.extent("x", x, 0, positions.extent(0), "positions.extent(0) (tokens)");
  c.extent("x", x, 2, cache.dim(), "cache.dim() (rope dim)");
  c.require(positions.stride(0) == 1 || positions.extent(0) <= 1, "positions", "a unit stride",
            positions.stride(0));
  c.in_range("tokens", x.extent(0), index_t{0}, index_t{device::max_grid_x()});
  if (x.extent(0) == 0 || x.extent(1) == 0) return;
  const device::index_report bad(s);
  device::launch(kernels::apply_rope, {dim3(static_cast<unsigned>(x.extent(0))), dim3(128)}, s)(
      cache.cos(), cache.sin(), cache.max_positions(), cache.dim() / 2,
      cache.params().layout == rope_layout::interleaved, positions.data(), x.data(), x.stride(0), x.stride(1),
      x.extent(1), bad.slot());
  if (const auto t = bad.first(s))
    fail("nn::apply_rope<cuda>: argument 'positions': positions[", *t, "] is outside [0, ",
         cache.max_positions(), ")");
}

// x [tokens, dim]: one head per token.
template <std::same_as<dsk::cuda> B>
void apply_rope(const device_rope_cache& cache, view<const index_t, 1> positions, view<float, 2> x,
                const device::stream& s = device::stream::default_stream()) {
  apply_rope<B>(
      cache, positions,
      view<float, 3>(x.data(), dims<3>(x.extent(0), 1, x.extent(1)), {x.stride(0), x.extent(1), x.stride(1)}),
      s);
}

DSK_CUDA_MODE_END
}  // namespace dsk::nn
