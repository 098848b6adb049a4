// Quantized weights in device memory: the owning device_quantized_weight<F> (codes and scales in the format
// of quant/format.hpp, byte for byte the host layout) and its upload from / download to host storage. Backend
// dsk::cuda. Checked in tests/simt/quant.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "dsk/core/error.hpp"
#include "dsk/cuda.cuh"
#include "dsk/quant/alias.hpp"
#include "dsk/quant/format.hpp"

namespace dsk::quant {
DSK_CUDA_MODE_BEGIN

// W [rows = N, cols = K] quantized in format F, in device memory: densely packed code rows of
// code_row_bytes(F, K) bytes and scales [N, groups_per_row(F, K)]. view() gives the qweight_view<F> that the
// CUDA kernels take.
template <format F>
class device_quantized_weight {
  static_assert(check_format<F>::value);

 public:
  static constexpr format fmt = F;
  device_quantized_weight() = default;
  device_quantized_weight(index_t rows, index_t cols)
      : rows_(contracts::checked_weight_shape<F>("quant::device_quantized_weight", rows, cols)),
        cols_(cols),
        codes_(rows * code_row_bytes(F, cols)),
        scales_(rows * groups_per_row(F, cols)) {}

  index_t rows() const { return rows_; }
  index_t cols() const { return cols_; }
  index_t extent(std::size_t r) const { return r == 0 ? rows_ : cols_; }
  index_t groups() const { return groups_per_row(F, cols_); }
  code_t<F>* codes() const { return reinterpret_cast<code_t<F>*>(codes_.data()); }
  scale_t<F>* scales() const { return scales_.data(); }
  qweight_view<F> view() const {
    return {codes(), scales(), rows_, cols_, code_row_bytes(F, cols_), groups()};
  }
  operator qweight_view<F>() const { return view(); }
  index_t bytes() const { return codes_.size() + scales_.size() * static_cast<index_t>(sizeof(scale_t<F>)); }

 private:
  index_t rows_ = 0, cols_ = 0;
  device::buffer<std::uint8_t> codes_;
  device::buffer<scale_t<F>> scales_;
};

// Host weights (any row strides) -> device; synchronises s (the host side may be pageable).
template <format F>
device_quantized_weight<F> upload(qweight_view<F> h,
                                  const device::stream& s = device::stream::default_stream()) {
  device_quantized_weight<F> d(h.rows, h.cols);
  const index_t rb = code_row_bytes(F, h.cols), g = groups_per_row(F, h.cols);
  auto* dc = reinterpret_cast<std::uint8_t*>(d.codes());
  for (index_t i = 0; i < h.rows; ++i) {
    device::copy(dc + i * rb, h.code_row(i), rb, device::copy_kind::host_to_device, s);
    device::copy(d.scales() + i * g, h.scales + i * h.scale_stride, g, device::copy_kind::host_to_device, s);
  }
  s.synchronize();
  return d;
}

// Device -> host: codes (densely packed rows, as bytes) and scales [N, groups].
template <format F>
void download(const device_quantized_weight<F>& d, std::vector<std::uint8_t>& codes,
              std::vector<scale_t<F>>& scales, const device::stream& s = device::stream::default_stream()) {
  codes.resize(static_cast<std::size_t>(d.rows() * code_row_bytes(F, d.cols())));
  scales.resize(static_cast<std::size_t>(d.rows() * d.groups()));
  device::copy(codes.data(), reinterpret_cast<const std::uint8_t*>(d.codes()),
               static_cast<index_t>(codes.size()), device::copy_kind::device_to_host, s);
  device::copy(scales.data(), static_cast<const scale_t<F>*>(d.scales()), static_cast<index_t>(scales.size()),
               device::copy_kind::device_to_host, s);
  s.synchronize();
}

DSK_CUDA_MODE_END
}  // namespace dsk::quant
