// libFuzzer harness: one .safetensors file. The input is the file. Parsed twice, independently: in memory
// (parse_safetensors_header over the input bytes) and from a file through the memory map (safetensors_file);
// both must agree (both reject, or both accept the same tensors and metadata). An accepted file must hand out
// in-bounds bytes, views and copies of every tensor (FP8 ones also block-scaled with their _scale_inv).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "dsk/io/fp8.hpp"
#include "dsk/io/safetensors.hpp"
#include "fuzz_util.hpp"

namespace {
using dsk::io::st_dtype;

template <std::size_t R>
void read_all(const dsk::io::safetensors_file& f, const dsk::io::tensor_info& t) {
  if (t.shape.size() != R) return;
  if (t.dtype == st_dtype::F32 || t.dtype == st_dtype::BF16 || t.dtype == st_dtype::F16 ||
      t.dtype == st_dtype::F64 || dsk::io::is_fp8(t.dtype)) {
    const auto x = f.read<float, R>(t.name);
    DSK_FUZZ_CHECK(x.size() == t.numel());
  }
  if constexpr (R == 2) {
    if (dsk::io::is_fp8(t.dtype)) {  // block-scaled, with whatever <name>_scale_inv the file holds
      // The block that fits the scales' shape when there are 2-D scales (the accepting path), else 2 x 2.
      dsk::io::fp8_block_size block{2, 2};
      const std::string sn = dsk::io::fp8_scale_name(t.name);
      if (f.contains(sn) && f.info(sn).shape.size() == 2 && f.info(sn).shape[0] > 0 &&
          f.info(sn).shape[1] > 0)
        block = {std::max<dsk::index_t>(1, (t.shape[0] + f.info(sn).shape[0] - 1) / f.info(sn).shape[0]),
                 std::max<dsk::index_t>(1, (t.shape[1] + f.info(sn).shape[1] - 1) / f.info(sn).shape[1])};
      try {
        const auto w = dsk::io::read_fp8_block_scaled<float>(f, t.name, {t.shape[0], t.shape[1]}, block);
        DSK_FUZZ_CHECK(w.size() == t.numel());
      } catch (const dsk::error&) {  // missing / misshapen / non-finite scales, NaN codes
      }
    }
  }
  if (t.dtype == st_dtype::F32) {
    try {
      const auto v = f.view<float, R>(t.name);
      DSK_FUZZ_CHECK(v.size() == t.numel());
      float sum = 0;  // touch every element: ASan sees a read past the mapping
      for (dsk::index_t i = 0; i < v.size(); ++i) sum += v.data()[i];
      (void)sum;
    } catch (const dsk::error&) {  // misaligned: read() is the way
    }
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  bool mem_ok = false;
  dsk::io::st_header h;
  try {
    h = dsk::io::parse_safetensors_header(bytes, "fuzz.safetensors");
    mem_ok = true;
  } catch (const dsk::error&) {
  }
  const auto path = dsk::fuzz::scratch() / "fuzz.safetensors";
  dsk::fuzz::write_file(path, std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const dsk::io::safetensors_file f(path);
    DSK_FUZZ_CHECK(mem_ok);  // the map accepted what the in-memory parse refused
    DSK_FUZZ_CHECK(f.tensors().size() == h.tensors.size());
    DSK_FUZZ_CHECK(f.metadata() == h.metadata);
    std::uint64_t covered = 0;
    for (std::size_t i = 0; i < h.tensors.size(); ++i) {
      const auto& a = h.tensors[i];
      const auto& b = f.tensors()[i];
      DSK_FUZZ_CHECK(a.name == b.name && a.dtype == b.dtype && a.shape == b.shape && a.begin == b.begin &&
                     a.end == b.end);
      DSK_FUZZ_CHECK(h.data_start + b.end <= size);
      DSK_FUZZ_CHECK(b.begin == covered);  // tensors tile the data buffer
      covered = b.end;
      // numel * element size == byte count, and every stride of the shape fits index_t.
      dsk::index_t span = 1;
      for (const dsk::index_t e : b.shape) {
        DSK_FUZZ_CHECK(e >= 0);
        DSK_FUZZ_CHECK(!__builtin_mul_overflow(span, e > 0 ? e : 1, &span));
      }
      DSK_FUZZ_CHECK(static_cast<std::uint64_t>(b.numel()) * dsk::io::size_of(b.dtype) == b.byte_size());
      const auto span_bytes = f.bytes(b.name);
      DSK_FUZZ_CHECK(span_bytes.size() == b.byte_size());
      DSK_FUZZ_CHECK(span_bytes.empty() ||
                     std::memcmp(span_bytes.data(), data + h.data_start + b.begin, span_bytes.size()) == 0);
      read_all<1>(f, b);
      read_all<2>(f, b);
      read_all<3>(f, b);
    }
    DSK_FUZZ_CHECK(h.data_start + covered == size);
  } catch (const dsk::error&) {
    DSK_FUZZ_CHECK(!mem_ok);  // the in-memory parse accepted what the map refused
  }
  return 0;
}
