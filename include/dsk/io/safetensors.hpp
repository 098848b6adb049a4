// safetensors reader over a memory map: one file (safetensors_file) or a sharded checkpoint with
// model.safetensors.index.json (checkpoint). The header is validated as the format requires before any tensor
// is handed out. Host only; checked in tests/io/safetensors.cpp against files written by the Python
// `safetensors` library (tools/gen_io_golden.py) and against hand-made malformed files.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "dsk/core/config.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/packed_int4.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/core/view.hpp"
#include "dsk/io/mapped_file.hpp"
#include "dsk/kernels/config.hpp"

namespace dsk::io {
DSK_ISA_BEGIN  // compiled with the TU's -march: ISA-specific names (tests/isa)

// Element types of the safetensors format (its dtype strings, e.g. "BF16"). A superset of dsk::dtype: a file
// may hold types no dsk kernel takes; they can still be listed and read as raw bytes.
enum class st_dtype : std::uint8_t {
  BOOL,
  U8,
  I8,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  F64,
  I64,
  U64,
  F8_E4M3,
  F8_E5M2
};

inline constexpr std::array<std::pair<st_dtype, std::string_view>, 15> st_dtype_names{
    {{st_dtype::BOOL, "BOOL"},
     {st_dtype::U8, "U8"},
     {st_dtype::I8, "I8"},
     {st_dtype::I16, "I16"},
     {st_dtype::U16, "U16"},
     {st_dtype::F16, "F16"},
     {st_dtype::BF16, "BF16"},
     {st_dtype::I32, "I32"},
     {st_dtype::U32, "U32"},
     {st_dtype::F32, "F32"},
     {st_dtype::F64, "F64"},
     {st_dtype::I64, "I64"},
     {st_dtype::U64, "U64"},
     {st_dtype::F8_E4M3, "F8_E4M3"},
     {st_dtype::F8_E5M2, "F8_E5M2"}}};

constexpr std::string_view name(st_dtype t) {
  for (const auto& [d, n] : st_dtype_names)
    if (d == t) return n;
  return "?";
}

constexpr std::optional<st_dtype> parse_st_dtype(std::string_view s) {
  for (const auto& [d, n] : st_dtype_names)
    if (n == s) return d;
  return std::nullopt;
}

// Bytes per element.
constexpr std::size_t size_of(st_dtype t) {
  switch (t) {
    case st_dtype::BOOL:
    case st_dtype::U8:
    case st_dtype::I8:
    case st_dtype::F8_E4M3:
    case st_dtype::F8_E5M2:
      return 1;
    case st_dtype::I16:
    case st_dtype::U16:
    case st_dtype::F16:
    case st_dtype::BF16:
      return 2;
    case st_dtype::I32:
    case st_dtype::U32:
    case st_dtype::F32:
      return 4;
    case st_dtype::F64:
    case st_dtype::I64:
    case st_dtype::U64:
      return 8;
  }
  return 0;
}

// The safetensors dtype that stores C++ type T (no definition: T has no safetensors dtype).
template <class T>
struct st_dtype_of_t;
template <>
struct st_dtype_of_t<float> {
  static constexpr st_dtype value = st_dtype::F32;
};
template <>
struct st_dtype_of_t<double> {
  static constexpr st_dtype value = st_dtype::F64;
};
template <>
struct st_dtype_of_t<bf16> {
  static constexpr st_dtype value = st_dtype::BF16;
};
template <>
struct st_dtype_of_t<f16> {
  static constexpr st_dtype value = st_dtype::F16;
};
template <>
struct st_dtype_of_t<std::int8_t> {
  static constexpr st_dtype value = st_dtype::I8;
};
template <>
struct st_dtype_of_t<std::uint8_t> {
  static constexpr st_dtype value = st_dtype::U8;
};
template <>
struct st_dtype_of_t<std::int16_t> {
  static constexpr st_dtype value = st_dtype::I16;
};
template <>
struct st_dtype_of_t<std::uint16_t> {
  static constexpr st_dtype value = st_dtype::U16;
};
template <>
struct st_dtype_of_t<std::int32_t> {
  static constexpr st_dtype value = st_dtype::I32;
};
template <>
struct st_dtype_of_t<std::uint32_t> {
  static constexpr st_dtype value = st_dtype::U32;
};
template <>
struct st_dtype_of_t<std::int64_t> {
  static constexpr st_dtype value = st_dtype::I64;
};
template <>
struct st_dtype_of_t<std::uint64_t> {
  static constexpr st_dtype value = st_dtype::U64;
};
template <class T>
inline constexpr st_dtype st_dtype_of = st_dtype_of_t<std::remove_cv_t<T>>::value;

// The format's reference implementation refuses headers above 100 MB; so does dsk (a larger one is corrupt).
inline constexpr std::uint64_t max_header_bytes = 100'000'000;
// The most dimensions a tensor of a file may have (PyTorch allows 64 too; dsk's views use rank <= 8).
inline constexpr std::size_t max_tensor_rank = 64;

// One tensor of a file: dtype, shape (row-major) and its byte range [begin, end) in the data buffer, which
// starts right after the header.
struct tensor_info {
  std::string name;
  st_dtype dtype = st_dtype::F32;
  std::vector<index_t> shape;
  std::uint64_t begin = 0, end = 0;
  index_t numel() const {
    index_t n = 1;
    for (index_t e : shape) n *= e;
    return n;
  }
  std::uint64_t byte_size() const { return end - begin; }
};

inline std::string shape_string(std::span<const index_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A validated header: tensors sorted by their offsets, the optional __metadata__ map, and where the data
// starts.
struct st_header {
  std::vector<tensor_info> tensors;
  std::map<std::string, std::string> metadata;
  std::uint64_t data_start = 0;  // 8 + header length
};

namespace detail {
inline bool mul_overflows(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  return __builtin_mul_overflow(a, b, &out);
}

template <class... Parts>
[[noreturn]] void st_fail(std::string_view file, const Parts&... parts) {
  fail("dsk::io::safetensors: '", file, "': ", parts...);
}

inline tensor_info parse_tensor_entry(const std::string& file, const std::string& name,
                                      const nlohmann::json& e) {
  const auto bad = [&](const auto&... parts) { st_fail(file, "tensor '", name, "': ", parts...); };
  if (!e.is_object()) bad("header entry must be an object {dtype, shape, data_offsets}, got ", e.type_name());
  for (const auto& [key, value] : e.items()) {
    (void)value;
    if (key != "dtype" && key != "shape" && key != "data_offsets") bad("unknown header field '", key, "'");
  }
  tensor_info t;
  t.name = name;
  const auto dt = e.find("dtype");
  if (dt == e.end() || !dt->is_string()) bad("missing or non-string 'dtype'");
  const auto parsed = parse_st_dtype(dt->get_ref<const std::string&>());
  if (!parsed) bad("unknown dtype '", dt->get_ref<const std::string&>(), "'");
  t.dtype = *parsed;

  const auto sh = e.find("shape");
  if (sh == e.end() || !sh->is_array()) bad("missing or non-array 'shape'");
  if (sh->size() > max_tensor_rank)
    bad("shape has ", sh->size(), " dimensions, more than the limit of ", max_tensor_rank);
  // `span` is the product of the extents with zeros counted as 1: it bounds every stride and partial product
  // of the shape, so a tensor with a zero extent cannot hide extents whose strides overflow index_t.
  std::uint64_t numel = 1, span = 1;
  const auto limit = static_cast<std::uint64_t>(std::numeric_limits<index_t>::max());
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned()) bad("shape ", json_snippet(*sh), " must hold non-negative integers");
    const std::uint64_t v = d.get<std::uint64_t>();
    if (v > limit || mul_overflows(span, std::max<std::uint64_t>(v, 1), span) || span > limit)
      bad("shape ", json_snippet(*sh),
          " overflows the element count (the product of the extents, zero "
          "extents counted as 1, must be at most 2^63 - 1)");
    numel *= v;  // <= span
    t.shape.push_back(static_cast<index_t>(v));
  }
  std::uint64_t bytes = 0;
  if (mul_overflows(span, size_of(t.dtype), bytes) || bytes > limit)
    bad("shape ", json_snippet(*sh), " overflows the byte count");
  bytes = numel * size_of(t.dtype);

  const auto off = e.find("data_offsets");
  if (off == e.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    bad("'data_offsets' must be [begin, end] with non-negative integers");
  t.begin = (*off)[0].get<std::uint64_t>();
  t.end = (*off)[1].get<std::uint64_t>();
  if (t.end < t.begin) bad("data_offsets [", t.begin, ", ", t.end, "] end before begin");
  if (t.end - t.begin != bytes)
    bad("data_offsets [", t.begin, ", ", t.end, ") hold ", t.end - t.begin, " bytes but dtype ",
        io::name(t.dtype), " and shape ", shape_string(t.shape), " need ", numel, " x ", size_of(t.dtype),
        " = ", bytes);
  return t;
}
}  // namespace detail

// Validates the header of the safetensors bytes `file` (named `label` in errors) as the format requires: the
// 8-byte little-endian length N <= max_header_bytes and 8 + N <= file size; the header is a JSON object of
// tensor entries {dtype, shape, data_offsets} and an optional "__metadata__" string map; each entry's byte
// count is numel * element size; the entries tile the data buffer [0, file size - 8 - N) exactly, without
// holes or overlaps. Anything else throws dsk::error naming the file and, where there is one, the tensor.
inline st_header parse_safetensors_header(std::span<const std::byte> file, const std::string& label) {
  const auto bad = [&](const auto&... parts) { detail::st_fail(label, parts...); };
  if (file.size() < 8)
    bad("file of ", file.size(), " bytes is shorter than the 8-byte header length (truncated?)");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<std::uint8_t>(file[static_cast<std::size_t>(i)]);
  if (n > max_header_bytes)
    bad("header length ", n, " exceeds the format's limit of ", max_header_bytes, " bytes");
  if (n > file.size() - 8)
    bad("header length ", n, " runs past the end of the file (", file.size(), " bytes; truncated?)");
  const std::string_view text(reinterpret_cast<const char*>(file.data()) + 8, static_cast<std::size_t>(n));
  if (detail::json_depth(text, max_json_depth) > max_json_depth)
    bad("header: JSON nesting deeper than the limit of ", max_json_depth,
        " levels (arrays and objects inside each other)");
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    bad("header is not valid JSON: ", detail::truncated(e.what(), 300));
  }
  if (!h.is_object()) bad("header must be a JSON object, got ", h.type_name());

  st_header out;
  out.data_start = 8 + n;
  const std::uint64_t buffer = file.size() - out.data_start;
  for (const auto& [key, value] : h.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) bad("__metadata__ must be an object of strings, got ", value.type_name());
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) bad("__metadata__ value of '", k, "' must be a string, got ", v.type_name());
        out.metadata.emplace(k, v.get<std::string>());
      }
      continue;
    }
    out.tensors.push_back(detail::parse_tensor_entry(label, key, value));
  }
  std::stable_sort(out.tensors.begin(), out.tensors.end(), [](const tensor_info& a, const tensor_info& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t expected = 0;
  const tensor_info* prev = nullptr;
  for (const auto& t : out.tensors) {
    if (t.end > buffer)
      bad("tensor '", t.name, "': data_offsets [", t.begin, ", ", t.end,
          ") run past the end of the data buffer (", buffer, " bytes; truncated file or wrong offsets)");
    if (t.begin > expected)
      bad("bytes [", expected, ", ", t.begin,
          ") of the data buffer belong to no tensor (a hole before tensor '", t.name, "')");
    if (t.begin < expected)
      bad("tensor '", t.name, "' [", t.begin, ", ", t.end, ") overlaps tensor '", prev->name, "' [",
          prev->begin, ", ", prev->end, ")");
    expected = t.end;
    prev = &t;
  }
  if (expected != buffer)
    bad("the tensors cover ", expected, " bytes of the data buffer but it holds ", buffer,
        " (trailing bytes belong to no tensor)");
  return out;
}

class safetensors_file;

// Read access shared by one file and a sharded checkpoint. Derived provides
//   std::pair<const safetensors_file*, const tensor_info*> find(std::string_view name) const  (nulls if
//   absent) std::string label() const   (the file or directory, for messages)
template <class Derived>
class tensor_source {
 public:
  bool contains(std::string_view name) const { return self().find(name).second != nullptr; }

  const tensor_info& info(std::string_view name) const { return *locate(name).second; }

  // The tensor's bytes inside the mapped file (valid while the file object lives).
  std::span<const std::byte> bytes(std::string_view name) const;

  // A zero-copy view of a tensor stored as T with rank R. Throws when the dtype is not T's, the rank is not
  // R, or the bytes are not aligned for T (files written by the safetensors libraries and by dsk are
  // aligned).
  template <class T, std::size_t R>
  dense_view<const T, R> view(std::string_view name) const;
  // The same, also requiring the shape (a weight of the wrong shape is rejected naming tensor and file).
  template <class T, std::size_t R>
  dense_view<const T, R> view(std::string_view name, const std::array<index_t, R>& expected_shape) const {
    check_shape(name, expected_shape);
    return view<T, R>(name);
  }

  // Packed int4 weights ([rows, cols] int4 elements, stored as U8 or I8 [rows, ceil(cols / 2)] bytes in the
  // dsk::int4x2 nibble order).
  packed_int4_view<const int4x2> int4_view(std::string_view name, index_t rows, index_t cols) const;

  // A copy as an owning tensor<T, R>. Float storage types (float, bf16, f16) convert from any of F32, F16,
  // BF16, F64, F8_E4M3, F8_E5M2 (widening is exact; narrowing rounds to nearest even; FP8 codes are decoded
  // without their block scales: io::read_fp8_block_scaled applies those); other types must match the file's
  // dtype.
  // Alignment does not matter. Expected shape optional (empty: any).
  template <class T, std::size_t R>
  tensor<T, R> read(std::string_view name, std::span<const index_t> expected_shape = {}) const;

  // Drops the mapped pages of a tensor the caller has converted and no longer reads (mapped_file::release:
  // only whole pages inside the tensor; its bytes stay readable, reloaded from the file when touched).
  // Throws when there is no tensor of that name.
  void release(std::string_view name) const {
    const auto [f, t] = locate(name);
    f->release_data_of(*t);
  }

  // Throws unless the tensor has exactly this shape.
  void check_shape(std::string_view name, std::span<const index_t> expected) const {
    const auto [f, t] = locate(name);
    if (!std::equal(t->shape.begin(), t->shape.end(), expected.begin(), expected.end()))
      fail("dsk::io: tensor '", t->name, "' in '", file_label(f), "' has shape ", shape_string(t->shape),
           ", expected ", shape_string(expected));
  }

 protected:
  std::pair<const safetensors_file*, const tensor_info*> locate(std::string_view name) const {
    const auto r = self().find(name);
    if (!r.second) fail("dsk::io: no tensor named '", name, "' in '", self().label(), "'");
    return r;
  }
  static std::string file_label(const safetensors_file* f);

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};

// One .safetensors file, mapped and validated on construction.
class safetensors_file : public tensor_source<safetensors_file> {
 public:
  explicit safetensors_file(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return map_.path(); }
  std::string label() const { return map_.path().string(); }
  // Tensors in file order (by offset).
  const std::vector<tensor_info>& tensors() const { return header_.tensors; }
  std::vector<std::string> names() const {
    std::vector<std::string> n;
    for (const auto& t : header_.tensors) n.push_back(t.name);
    return n;
  }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }

  std::pair<const safetensors_file*, const tensor_info*> find(std::string_view name) const {
    const auto it = index_.find(std::string(name));
    if (it == index_.end()) return {nullptr, nullptr};
    return {this, &header_.tensors[it->second]};
  }
  std::span<const std::byte> data_of(const tensor_info& t) const {
    return map_.bytes().subspan(static_cast<std::size_t>(header_.data_start + t.begin),
                                static_cast<std::size_t>(t.byte_size()));
  }
  void release_data_of(const tensor_info& t) const {
    map_.release(static_cast<std::size_t>(header_.data_start + t.begin),
                 static_cast<std::size_t>(t.byte_size()));
  }

 private:
  mapped_file map_;
  st_header header_;
  std::unordered_map<std::string, std::size_t> index_;
};

template <class Derived>
std::string tensor_source<Derived>::file_label(const safetensors_file* f) {
  return f->label();
}

template <class Derived>
std::span<const std::byte> tensor_source<Derived>::bytes(std::string_view name) const {
  const auto [f, t] = locate(name);
  return f->data_of(*t);
}

template <class Derived>
template <class T, std::size_t R>
dense_view<const T, R> tensor_source<Derived>::view(std::string_view name) const {
  const auto [f, t] = locate(name);
  if (t->dtype != st_dtype_of<T>)
    fail("dsk::io: tensor '", t->name, "' in '", f->label(), "' has dtype ", io::name(t->dtype),
         ", requested ", io::name(st_dtype_of<T>));
  if (t->shape.size() != R)
    fail("dsk::io: tensor '", t->name, "' in '", f->label(), "' has rank ", t->shape.size(), " (shape ",
         shape_string(t->shape), "), requested rank ", R);
  const auto b = f->data_of(*t);
  if (reinterpret_cast<std::uintptr_t>(b.data()) % alignof(T) != 0)
    fail("dsk::io: tensor '", t->name, "' in '", f->label(), "' is not aligned for ", io::name(t->dtype),
         " in the file (use read() to copy it)");
  std::array<index_t, R> e{};
  std::copy(t->shape.begin(), t->shape.end(), e.begin());
  return dense_view<const T, R>(reinterpret_cast<const T*>(b.data()), dims<R>(e));
}

template <class Derived>
packed_int4_view<const int4x2> tensor_source<Derived>::int4_view(std::string_view name, index_t rows,
                                                                 index_t cols) const {
  const auto [f, t] = locate(name);
  if (t->dtype != st_dtype::U8 && t->dtype != st_dtype::I8)
    fail("dsk::io: tensor '", t->name, "' in '", f->label(), "' has dtype ", io::name(t->dtype),
         ", packed int4 needs U8 or I8");
  const std::array<index_t, 2> want{rows, packed_int4_view<const int4x2>::row_bytes(cols)};
  if (!std::equal(t->shape.begin(), t->shape.end(), want.begin(), want.end()))
    fail("dsk::io: tensor '", t->name, "' in '", f->label(), "' has shape ", shape_string(t->shape),
         ", packed int4 [", rows, ", ", cols, "] needs ", shape_string(want));
  return {reinterpret_cast<const int4x2*>(f->data_of(*t).data()), rows, cols};
}

namespace detail {
template <class T>
T load_element(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
// Element i of float-typed bytes as float (F64 narrows with rounding; FP8 is decoded without any scale:
// block-scaled weights are read by io/fp8.hpp).
inline float load_as_float(st_dtype d, const std::byte* base, std::size_t i) {
  switch (d) {
    case st_dtype::F32:
      return load_element<float>(base + 4 * i);
    case st_dtype::F16:
      return static_cast<float>(f16::from_bits(load_element<std::uint16_t>(base + 2 * i)));
    case st_dtype::BF16:
      return static_cast<float>(bf16::from_bits(load_element<std::uint16_t>(base + 2 * i)));
    case st_dtype::F64:
      return static_cast<float>(load_element<double>(base + 8 * i));
    case st_dtype::F8_E4M3:
      return fp8_e4m3_to_float(static_cast<std::uint8_t>(base[i]));
    case st_dtype::F8_E5M2:
      return fp8_e5m2_to_float(static_cast<std::uint8_t>(base[i]));
    default:
      return 0;  // not reached: callers check the dtype
  }
}
}  // namespace detail

template <class Derived>
template <class T, std::size_t R>
tensor<T, R> tensor_source<Derived>::read(std::string_view name,
                                          std::span<const index_t> expected_shape) const {
  const auto [f, t] = locate(name);
  if (!expected_shape.empty()) check_shape(name, expected_shape);
  if (t->shape.size() != R)
    fail("dsk::io: tensor '", t->name, "' in '", f->label(), "' has rank ", t->shape.size(), " (shape ",
         shape_string(t->shape), "), requested rank ", R);
  std::array<index_t, R> e{};
  std::copy(t->shape.begin(), t->shape.end(), e.begin());
  tensor<T, R> out(e, uninitialized);
  const auto b = f->data_of(*t);
  const bool is_float_src = t->dtype == st_dtype::F32 || t->dtype == st_dtype::F16 ||
                            t->dtype == st_dtype::BF16 || t->dtype == st_dtype::F64 ||
                            t->dtype == st_dtype::F8_E4M3 || t->dtype == st_dtype::F8_E5M2;
  if (t->dtype == st_dtype_of<T>) {
    if (!b.empty()) std::memcpy(out.data(), b.data(), b.size());
  } else if constexpr (float_storage<T>) {
    if (!is_float_src)
      fail("dsk::io: tensor '", t->name, "' in '", f->label(), "' has dtype ", io::name(t->dtype),
           ", which does not convert to ", io::name(st_dtype_of<T>));
    for (index_t i = 0; i < out.size(); ++i)
      out.data()[i] = from_float<T>(detail::load_as_float(t->dtype, b.data(), static_cast<std::size_t>(i)));
  } else {
    fail("dsk::io: tensor '", t->name, "' in '", f->label(), "' has dtype ", io::name(t->dtype),
         ", requested ", io::name(st_dtype_of<T>));
  }
  return out;
}

// A checkpoint: a directory with model.safetensors.index.json (sharded) or model.safetensors, or one
// .safetensors file, or an index .json file. Every shard is mapped and validated on construction; every
// tensor of the index's weight_map must exist in the shard it names. Shard names must be plain file names
// beside the index.
class checkpoint : public tensor_source<checkpoint> {
 public:
  explicit checkpoint(const std::filesystem::path& path);

  std::string label() const { return root_.string(); }
  std::size_t shard_count() const { return shards_.size(); }
  const safetensors_file& shard(std::size_t i) const { return *shards_.at(i); }
  // Tensor names, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> n;
    for (const auto& [k, v] : where_) n.push_back(k);
    return n;
  }
  // The index's "metadata" (sharded; non-string values as JSON text) or the file's "__metadata__" (one file).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  std::pair<const safetensors_file*, const tensor_info*> find(std::string_view name) const {
    const auto it = where_.find(std::string(name));
    if (it == where_.end()) return {nullptr, nullptr};
    const safetensors_file* f = shards_[it->second].get();
    return {f, f->find(name).second};
  }

 private:
  void load_index(const std::filesystem::path& index) {
    index_path_ = index;
    const std::string label = index.string();
    const nlohmann::json j = parse_json(read_text_file(index, "checkpoint index"), label);
    if (!j.is_object()) fail("dsk::io::checkpoint: '", label, "': expected a JSON object");
    if (const auto m = j.find("metadata"); m != j.end() && !m->is_null()) {
      if (!m->is_object()) fail("dsk::io::checkpoint: '", label, "': 'metadata' must be an object");
      for (const auto& [k, v] : m->items())
        metadata_.emplace(k, v.is_string()
                                 ? v.get<std::string>()
                                 : v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    const auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object())
      fail("dsk::io::checkpoint: '", label, "': missing 'weight_map' object (tensor name -> shard file)");
    std::map<std::string, std::size_t> shard_of_file;
    for (const auto& [tname, file] : wm->items()) {
      if (!file.is_string())
        fail("dsk::io::checkpoint: '", label, "': weight_map entry of tensor '", tname,
             "' must be a file name string");
      const std::string& fname = file.get_ref<const std::string&>();
      const std::filesystem::path fp(fname);
      if (fname.empty() || fp.has_parent_path() || fp.is_absolute() || fname == "." || fname == "..")
        fail("dsk::io::checkpoint: '", label, "': tensor '", tname, "' maps to '", fname,
             "', expected a plain file name beside the index");
      auto [it, fresh] = shard_of_file.emplace(fname, shards_.size());
      if (fresh) {
        const auto shard_path = index.parent_path() / fp;
        std::error_code ec;
        if (!std::filesystem::exists(shard_path, ec))
          fail("dsk::io::checkpoint: '", label, "': shard '", detail::truncated(fname, 200), "' (of tensor '",
               detail::truncated(tname, 200), "') ",
               ec ? "cannot be opened: " + ec.message() : "does not exist");
        shards_.push_back(std::make_unique<safetensors_file>(shard_path));
      }
      if (!shards_[it->second]->contains(tname))
        fail("dsk::io::checkpoint: '", label, "' maps tensor '", tname, "' to shard '", fname,
             "', which has no such tensor");
      where_.emplace(tname, it->second);
    }
  }

  std::filesystem::path root_, index_path_;
  std::vector<std::unique_ptr<safetensors_file>> shards_;
  std::map<std::string, std::size_t> where_;
  std::map<std::string, std::string> metadata_;
};

// Out of line: in compiled mode (DSK_COMPILED_KERNELS=1) defined once in dsk::kernels (src/kernels/io.cpp),
// so that a TU opening checkpoints does not generate the header parser again.
#if DSK_KERNELS_DEFINE(IO)
DSK_KERNEL_INLINE safetensors_file::safetensors_file(const std::filesystem::path& path) : map_(path) {
  header_ = parse_safetensors_header(map_.bytes(), path.string());
  for (std::size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
}

DSK_KERNEL_INLINE checkpoint::checkpoint(const std::filesystem::path& path) : root_(path) {
  namespace fs = std::filesystem;
  fs::path index, single;
  // error_code overloads throughout: a name the OS refuses (too long, a loop) is a dsk::error below, not a
  // std::filesystem_error.
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(path / "model.safetensors.index.json", ec))
      index = path / "model.safetensors.index.json";
    else if (fs::exists(path / "model.safetensors", ec))
      single = path / "model.safetensors";
    else
      fail("dsk::io::checkpoint: directory '", path.string(),
           "' holds neither model.safetensors.index.json nor model.safetensors");
  } else if (path.extension() == ".json") {
    index = path;
  } else {
    single = path;
  }
  if (!single.empty()) {
    shards_.push_back(std::make_unique<safetensors_file>(single));
    for (const auto& t : shards_[0]->tensors()) where_.emplace(t.name, 0);
    metadata_ = shards_[0]->metadata();
  } else {
    load_index(index);
  }
}
#endif  // DSK_KERNELS_DEFINE(IO)

DSK_ISA_END
}  // namespace dsk::io
