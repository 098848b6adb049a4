// safetensors writer (tests, saved or quantized models) and the model.safetensors.index.json of a sharded
// checkpoint. Output follows the format's reference writer: tensors ordered by element size (largest first)
// then name, so every tensor is aligned for its dtype; the header is padded with spaces to a multiple of 8
// bytes. Host only; checked in tests/io/safetensors_writer.cpp by reading the files back with
// dsk::io::safetensors_file.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dsk/core/config.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/packed_int4.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/core/view.hpp"
#include "dsk/io/safetensors.hpp"
#include "dsk/kernels/config.hpp"

namespace dsk::io {
DSK_ISA_BEGIN  // compiled with the TU's -march: ISA-specific names (tests/isa)

class safetensors_writer {
 public:
  // Adds a tensor from raw little-endian bytes (copied). bytes.size() must be numel(shape) * size_of(dtype).
  void add(const std::string& name, st_dtype dtype, std::vector<index_t> shape,
           std::span<const std::byte> bytes) {
    check_name(name);
    std::uint64_t numel = 1;
    for (index_t e : shape) {
      if (e < 0)
        fail("dsk::io::safetensors_writer: tensor '", name, "': negative extent in shape ",
             shape_string(shape));
      numel *= static_cast<std::uint64_t>(e);
    }
    if (numel * size_of(dtype) != bytes.size())
      fail("dsk::io::safetensors_writer: tensor '", name, "': ", bytes.size(), " bytes given, dtype ",
           io::name(dtype), " and shape ", shape_string(shape), " need ", numel * size_of(dtype));
    names_.insert(name);
    entries_.push_back({name, dtype, std::move(shape), std::vector<std::byte>(bytes.begin(), bytes.end())});
  }

  // Adds any view (strided or not) of a type with a safetensors dtype; the elements are gathered row-major.
  template <class T, class E, class L>
  void add(const std::string& name, const mdview<T, E, L>& v) {
    using U = std::remove_cv_t<T>;
    constexpr std::size_t R = E::rank();
    std::vector<index_t> shape(R);
    for (std::size_t r = 0; r < R; ++r) shape[r] = v.extent(r);
    std::vector<std::byte> bytes(static_cast<std::size_t>(v.size()) * sizeof(U));
    std::size_t k = 0;
    std::array<index_t, R> idx{};
    for (index_t i = 0; i < v.size(); ++i) {
      index_t off = 0;
      for (std::size_t r = 0; r < R; ++r) off += idx[r] * v.stride(r);
      std::memcpy(bytes.data() + k, v.data() + off, sizeof(U));
      k += sizeof(U);
      for (std::size_t r = R; r-- > 0;) {  // odometer increment of the row-major index
        if (++idx[r] < v.extent(r)) break;
        idx[r] = 0;
      }
    }
    add(name, st_dtype_of<U>, std::move(shape), bytes);
  }
  template <class T, std::size_t R>
  void add(const std::string& name, const tensor<T, R>& t) {
    add(name, t.cview());
  }
  // Packed int4 [rows, cols] as U8 [rows, ceil(cols / 2)] (nibble order of dsk::int4x2); read back with
  // tensor_source::int4_view(name, rows, cols).
  void add_int4(const std::string& name, const packed_int4_view<const int4x2>& w) {
    const index_t rb = packed_int4_view<const int4x2>::row_bytes(w.extent(1));
    std::vector<std::byte> bytes(static_cast<std::size_t>(w.extent(0) * rb));
    for (index_t r = 0; r < w.extent(0); ++r)
      if (rb)
        std::memcpy(bytes.data() + r * rb, w.data() + r * w.row_stride_bytes(), static_cast<std::size_t>(rb));
    add(name, st_dtype::U8, {w.extent(0), rb}, bytes);
  }

  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  std::size_t size() const { return entries_.size(); }
  // Bytes of tensor data written by write() (the sum over tensors), as an index's metadata.total_size.
  std::uint64_t data_bytes() const {
    std::uint64_t n = 0;
    for (const auto& e : entries_) n += e.bytes.size();
    return n;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> n;
    for (const auto& e : entries_) n.push_back(e.name);
    return n;
  }

  // Writes the file (through a temporary beside it, renamed at the end: a reader never sees half a file).
  void write(const std::filesystem::path& path) const;

 private:
  struct entry {
    std::string name;
    st_dtype dtype;
    std::vector<index_t> shape;
    std::vector<std::byte> bytes;
  };
  void check_name(const std::string& name) const {
    if (name.empty() || name == "__metadata__")
      fail("dsk::io::safetensors_writer: invalid tensor name '", name, "'");
    if (names_.count(name)) fail("dsk::io::safetensors_writer: tensor '", name, "' added twice");
  }

  std::vector<entry> entries_;
  std::set<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

// Out of line: in compiled mode (DSK_COMPILED_KERNELS=1) defined once in dsk::kernels (src/kernels/io.cpp).
#if DSK_KERNELS_DEFINE(IO)
DSK_KERNEL_INLINE void safetensors_writer::write(const std::filesystem::path& path) const {
  std::vector<const entry*> order;
  for (const auto& e : entries_) order.push_back(&e);
  std::stable_sort(order.begin(), order.end(), [](const entry* a, const entry* b) {
    return size_of(a->dtype) != size_of(b->dtype) ? size_of(a->dtype) > size_of(b->dtype) : a->name < b->name;
  });
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata_.empty()) h["__metadata__"] = metadata_;
  std::uint64_t off = 0;
  for (const entry* e : order) {
    h[e->name] = {
        {"dtype", io::name(e->dtype)}, {"shape", e->shape}, {"data_offsets", {off, off + e->bytes.size()}}};
    off += e->bytes.size();
  }
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const std::uint64_t n = text.size();
  std::array<char, 8> len{};
  for (int i = 0; i < 8; ++i) len[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);

  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("dsk::io::safetensors_writer: cannot create '", tmp.string(), "'");
    out.write(len.data(), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const entry* e : order)
      out.write(reinterpret_cast<const char*>(e->bytes.data()),
                static_cast<std::streamsize>(e->bytes.size()));
    out.close();
    if (!out) fail("dsk::io::safetensors_writer: writing '", tmp.string(), "' failed (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    fail("dsk::io::safetensors_writer: cannot rename '", tmp.string(), "' to '", path.string(),
         "': ", ec.message());
}
#endif  // DSK_KERNELS_DEFINE(IO)

// Writes model.safetensors.index.json: {"metadata": {"total_size": N}, "weight_map": {tensor: shard file}}.
inline void write_index(const std::filesystem::path& path,
                        const std::map<std::string, std::string>& weight_map, std::uint64_t total_size) {
  nlohmann::ordered_json j;
  j["metadata"] = {{"total_size", total_size}};
  j["weight_map"] = weight_map;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail("dsk::io::write_index: cannot create '", path.string(), "'");
  out << j.dump(2) << '\n';
  out.close();
  if (!out) fail("dsk::io::write_index: writing '", path.string(), "' failed");
}

DSK_ISA_END
}  // namespace dsk::io
