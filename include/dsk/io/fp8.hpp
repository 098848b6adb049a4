// FP8 block-scaled weights as DeepSeek-V3 publishes them (config.json quantization_config {"quant_method":
// "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}): a weight X.weight [R, C] stored as F8_E4M3 (or
// F8_E5M2) codes with one inverse scale per block, X.weight_scale_inv [ceil(R / 128), ceil(C / 128)] (F32),
// so that W[r, c] = decode(code[r, c]) * scale_inv[r / 128, c / 128]. Dequantized on load, one tensor at a
// time (dsk computes in f32 / bf16; activations are not quantized). Host only; checked in tests/io/fp8.cpp.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "dsk/core.hpp"
#include "dsk/core/parallel.hpp"
#include "dsk/io/safetensors.hpp"

namespace dsk::io {
DSK_ISA_BEGIN

// Rows and columns of one scale block (quantization_config.weight_block_size).
struct fp8_block_size {
  index_t rows = 128;
  index_t cols = 128;
  friend constexpr bool operator==(const fp8_block_size&, const fp8_block_size&) = default;
};

constexpr bool is_fp8(st_dtype d) { return d == st_dtype::F8_E4M3 || d == st_dtype::F8_E5M2; }

// "X.weight" -> "X.weight_scale_inv": where DeepSeek-V3 checkpoints keep a weight's inverse block scales.
inline std::string fp8_scale_name(std::string_view weight) { return std::string(weight) + "_scale_inv"; }

// The weight `name` [shape] of src (a checkpoint or one safetensors file): its FP8 codes times their block
// scales `scale_name` (default fp8_scale_name(name)), the product formed in f32 (as torch's
// `weight.float() * scale` does) and stored as T (f32 as is; bf16 / f16 rounded once to nearest even).
// Throws dsk::error naming the tensor when it is not FP8 or has another shape, when its scales are missing,
// not a float dtype, not [ceil(R / block.rows), ceil(C / block.cols)] or not finite, or when a code is NaN.
template <float_storage T, class Source>
tensor<T, 2> read_fp8_block_scaled(const Source& src, std::string_view name, std::array<index_t, 2> shape,
                                   fp8_block_size block = {}, std::string scale_name = {}) {
  if (scale_name.empty()) scale_name = fp8_scale_name(name);
  const std::string label = src.label();
  const tensor_info& t = src.info(name);
  if (!is_fp8(t.dtype))
    fail("dsk::io: tensor '", name, "' in '", label, "' has dtype ", io::name(t.dtype),
         ", expected F8_E4M3 or F8_E5M2 (a block-scaled FP8 weight)");
  src.check_shape(name, shape);
  if (block.rows < 1 || block.cols < 1)
    fail("dsk::io: FP8 block size ", block.rows, " x ", block.cols, " for '", name,
         "': expected positive rows and columns (quantization_config.weight_block_size)");
  if (!src.contains(scale_name))
    fail("dsk::io: FP8 tensor '", name, "' (", io::name(t.dtype), " ", shape_string(t.shape), ") in '", label,
         "' has no inverse scales '", scale_name,
         "': a block-quantized checkpoint stores one per weight; the checkpoint is incomplete");
  const index_t R = shape[0], C = shape[1];
  const index_t br = (R + block.rows - 1) / block.rows, bc = (C + block.cols - 1) / block.cols;
  const tensor_info& si = src.info(scale_name);
  if (si.dtype != st_dtype::F32 && si.dtype != st_dtype::BF16 && si.dtype != st_dtype::F16)
    fail("dsk::io: FP8 scales '", scale_name, "' in '", label, "' have dtype ", io::name(si.dtype),
         ", expected F32 (or BF16 / F16)");
  const std::array<index_t, 2> sshape{br, bc};
  if (si.shape.size() != 2 || si.shape[0] != br || si.shape[1] != bc)
    fail("dsk::io: FP8 scales '", scale_name, "' in '", label, "' have shape ", shape_string(si.shape),
         ", expected ", shape_string(sshape), " = [ceil(", R, " / ", block.rows, "), ceil(", C, " / ",
         block.cols, ")] for weight '", name, "' ", shape_string(t.shape), " with ", block.rows, " x ",
         block.cols, " blocks");
  const tensor<float, 2> scale = src.template read<float, 2>(scale_name, sshape);
  for (index_t i = 0; i < br; ++i)
    for (index_t j = 0; j < bc; ++j)
      if (!std::isfinite(scale(i, j)))
        fail("dsk::io: FP8 scales '", scale_name, "' in '", label, "': element [", i, ", ", j,
             "] = ", scale(i, j), " is not finite");

  const bool e4m3 = t.dtype == st_dtype::F8_E4M3;
  std::array<float, 256> decode{};
  std::array<bool, 256> nan_code{};
  for (int b = 0; b < 256; ++b) {
    const auto u = static_cast<std::uint8_t>(b);
    decode[static_cast<std::size_t>(b)] = e4m3 ? fp8_e4m3_to_float(u) : fp8_e5m2_to_float(u);
    nan_code[static_cast<std::size_t>(b)] = !std::isfinite(decode[static_cast<std::size_t>(b)]);
  }
  const auto* codes = reinterpret_cast<const std::uint8_t*>(src.bytes(name).data());
  tensor<T, 2> out(shape, uninitialized);
  // Rows in parallel (a V3 expert weight is 14.7M codes); within a row, one scale per block of columns. A NaN
  // (or E5M2 infinity) code is found after the loop: no exception leaves a parallel region.
  std::atomic<bool> bad{false};
  parallel_for_chunks(0, R, std::max<index_t>(1, (index_t{1} << 16) / std::max<index_t>(C, 1)),
                      [&](index_t lo, index_t hi) {
                        bool any = false;
                        for (index_t r = lo; r < hi; ++r) {
                          const std::uint8_t* row = codes + r * C;
                          T* o = out.data() + r * C;
                          const float* srow = &scale(r / block.rows, 0);
                          for (index_t cb = 0; cb < bc; ++cb) {
                            const float sc = srow[cb];
                            const index_t c1 = std::min(C, (cb + 1) * block.cols);
                            for (index_t c = cb * block.cols; c < c1; ++c) {
                              any |= nan_code[row[c]];
                              o[c] = from_float<T>(decode[row[c]] * sc);
                            }
                          }
                        }
                        if (any) bad = true;
                      });
  if (bad)
    for (index_t i = 0; i < R * C; ++i)
      if (nan_code[codes[i]])
        fail("dsk::io: FP8 tensor '", name, "' in '", label, "': element [", i / C, ", ", i % C, "] is ",
             std::isnan(decode[codes[i]]) ? "NaN" : "infinite", " (code 0x",
             "0123456789abcdef"[codes[i] >> 4], "0123456789abcdef"[codes[i] & 15],
             "); weights must be finite");
  return out;
}

DSK_ISA_END
}  // namespace dsk::io
