#include "dsk/io/safetensors.hpp"

#include <cstring>
#include <random>
#include <set>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "io_test_util.hpp"

using dsk::index_t;
using dsk::io::checkpoint;
using dsk::io::safetensors_file;
using dsk::io::st_dtype;
using dsk::test::io_data;
using dsk::test::safetensors_image;
using dsk::test::temp_dir;
using dsk::test::write_bytes;

namespace {

nlohmann::json golden() {
  return dsk::io::parse_json(dsk::io::read_text_file(io_data("safetensors_cases.json"), "golden"), "golden");
}

// Element i of a tensor's bytes as double, decoded independently of the reader's own conversions.
double element(st_dtype d, const std::byte* p, std::size_t i) {
  const auto load = [&](auto v) {
    std::memcpy(&v, p + i * sizeof(v), sizeof(v));
    return v;
  };
  switch (d) {
    case st_dtype::F32:
      return load(float{});
    case st_dtype::F64:
      return load(double{});
    case st_dtype::F16:
      return static_cast<float>(dsk::f16::from_bits(load(std::uint16_t{})));
    case st_dtype::BF16: {
      const std::uint32_t bits = static_cast<std::uint32_t>(load(std::uint16_t{})) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    case st_dtype::I8:
      return load(std::int8_t{});
    case st_dtype::U8:
      return load(std::uint8_t{});
    case st_dtype::I32:
      return load(std::int32_t{});
    default:
      FAIL("unexpected dtype in the golden file");
      return 0;
  }
}

template <class Source>
void check_against_golden(const Source& src, const nlohmann::json& cases) {
  std::set<std::string> want_names;
  for (const auto& [name, c] : cases.items()) {
    INFO("tensor " << name);
    want_names.insert(name);
    REQUIRE(src.contains(name));
    const auto& info = src.info(name);
    REQUIRE(dsk::io::name(info.dtype) == c["dtype"].template get<std::string>());
    REQUIRE(info.shape == c["shape"].template get<std::vector<index_t>>());
    const auto bytes = src.bytes(name);
    const auto values = c["values"].template get<std::vector<double>>();
    REQUIRE(static_cast<index_t>(values.size()) == info.numel());
    REQUIRE(bytes.size() == values.size() * dsk::io::size_of(info.dtype));
    for (std::size_t i = 0; i < values.size(); ++i)
      REQUIRE(element(info.dtype, bytes.data(), i) == values[i]);
  }
  const auto names = src.names();
  REQUIRE(std::set<std::string>(names.begin(), names.end()) == want_names);
}

}  // namespace

TEST_CASE("safetensors_file reads every dtype written by the Python safetensors library",
          "[io][safetensors]") {
  const auto g = golden();
  const safetensors_file f(io_data("st_single.safetensors"));
  check_against_golden(f, g["single"]);
  REQUIRE(f.metadata() == g["single_metadata"].get<std::map<std::string, std::string>>());

  // Typed zero-copy views agree with the golden values.
  const auto w = f.view<float, 2>("w_f32");
  REQUIRE(w.extent(0) == 3);
  REQUIRE(w.extent(1) == 5);
  const auto vals = g["single"]["w_f32"]["values"].get<std::vector<double>>();
  for (index_t i = 0; i < 3; ++i)
    for (index_t j = 0; j < 5; ++j)
      REQUIRE(static_cast<double>(w(i, j)) == vals[static_cast<std::size_t>(i * 5 + j)]);
  const auto b = f.view<dsk::bf16, 2>("w_bf16", {5, 3});
  const auto bvals = g["single"]["w_bf16"]["values"].get<std::vector<double>>();
  REQUIRE(static_cast<double>(static_cast<float>(b(4, 2))) == bvals[14]);
  REQUIRE(f.view<dsk::f16, 2>("w_f16").extent(1) == 7);
  REQUIRE(f.view<std::int8_t, 2>("w_i8")(1, 8) == g["single"]["w_i8"]["values"][17].get<int>());
  REQUIRE(f.view<std::int32_t, 1>("w_i32").extent(0) == 6);
  REQUIRE(f.view<std::uint8_t, 3>("w_u8").extent(1) == 1);
  REQUIRE(f.view<double, 2>("w_f64")(1, 1) == g["single"]["w_f64"]["values"][3].get<double>());
  REQUIRE(f.view<float, 2>("empty_f32").empty());
  REQUIRE(f.info("scalar_f32").shape.empty());
  REQUIRE(f.info("scalar_f32").numel() == 1);

  // read() widens bf16 and f16 to float exactly, and narrows f32 to bf16 with round-to-nearest-even.
  const auto bf = f.read<float, 2>("w_bf16");
  for (std::size_t i = 0; i < bvals.size(); ++i) REQUIRE(static_cast<double>(bf.data()[i]) == bvals[i]);
  const auto hf = f.read<float, 2>("w_f16");
  const auto hvals = g["single"]["w_f16"]["values"].get<std::vector<double>>();
  for (std::size_t i = 0; i < hvals.size(); ++i) REQUIRE(static_cast<double>(hf.data()[i]) == hvals[i]);
  const auto nb = f.read<dsk::bf16, 2>("w_f32");
  for (std::size_t i = 0; i < vals.size(); ++i)
    REQUIRE(nb.data()[i] == dsk::bf16(static_cast<float>(vals[i])));
  const std::array<index_t, 2> shape{2, 9};
  REQUIRE(f.read<std::int8_t, 2>("w_i8", shape)(0, 0) == g["single"]["w_i8"]["values"][0].get<int>());
}

TEST_CASE("checkpoint reads a sharded checkpoint through model.safetensors.index.json", "[io][safetensors]") {
  const auto g = golden();
  for (const auto& path : {io_data("st_sharded"), io_data("st_sharded/model.safetensors.index.json")}) {
    const checkpoint ck(path);
    REQUIRE(ck.shard_count() == 2);
    check_against_golden(ck, g["sharded"]);
    for (const auto& [name, c] : g["sharded"].items()) {
      const auto [file, info] = ck.find(name);
      REQUIRE(file->path().filename() == c["file"].get<std::string>());
      REQUIRE(info->name == name);
    }
    REQUIRE(ck.metadata().count("total_size") == 1);
  }
  // A single file as a checkpoint.
  const checkpoint one(io_data("st_single.safetensors"));
  check_against_golden(one, g["single"]);
  REQUIRE(one.metadata().at("format") == "np");
}

TEST_CASE("safetensors: wrong dtype, rank, shape or name are clear errors", "[io][safetensors]") {
  const safetensors_file f(io_data("st_single.safetensors"));
  REQUIRE_THROWS_WITH((f.view<float, 2>("w_bf16")), Catch::Contains("tensor 'w_bf16'") &&
                                                        Catch::Contains("st_single.safetensors") &&
                                                        Catch::Contains("has dtype BF16, requested F32"));
  REQUIRE_THROWS_WITH((f.view<float, 3>("w_f32")),
                      Catch::Contains("has rank 2 (shape [3, 5]), requested rank 3"));
  REQUIRE_THROWS_WITH(
      (f.view<float, 2>("w_f32", {5, 3})),
      Catch::Contains("tensor 'w_f32'") && Catch::Contains("has shape [3, 5], expected [5, 3]"));
  REQUIRE_THROWS_WITH((f.view<float, 2>("model.nope")), Catch::Contains("no tensor named 'model.nope'") &&
                                                            Catch::Contains("st_single.safetensors"));
  REQUIRE_THROWS_WITH((f.read<float, 2>("w_i8")),
                      Catch::Contains("has dtype I8, which does not convert to F32"));
  REQUIRE_THROWS_WITH((f.read<std::int32_t, 2>("w_i8")), Catch::Contains("has dtype I8, requested I32"));
  REQUIRE_THROWS_WITH(f.int4_view("w_f32", 3, 10), Catch::Contains("packed int4 needs U8 or I8"));
  REQUIRE_THROWS_WITH(f.int4_view("w_i8", 2, 20), Catch::Contains("packed int4 [2, 20] needs [2, 10]"));
  REQUIRE(f.int4_view("w_i8", 2, 17).extent(1) == 17);  // 17 int4 values fit in 9 bytes
  const checkpoint ck(io_data("st_sharded"));
  REQUIRE_THROWS_WITH(ck.info("w_f32"),
                      Catch::Contains("no tensor named 'w_f32'") && Catch::Contains("st_sharded"));
}

TEST_CASE("safetensors: a misaligned tensor has no view but can be read", "[io][safetensors]") {
  temp_dir dir;
  // One I8 byte, then an F32 at data offset 1 (and 8 + header length is a multiple of 8, so misaligned).
  std::string header = R"({"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]},)"
                       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const float v = 2.5f;
  std::string data(1, '\x07');
  data.append(reinterpret_cast<const char*>(&v), 4);
  write_bytes(dir / "m.safetensors", safetensors_image(header, data));
  const safetensors_file f(dir / "m.safetensors");
  REQUIRE_THROWS_WITH((f.view<float, 1>("b")), Catch::Contains("not aligned"));
  REQUIRE(f.read<float, 1>("b")(0) == 2.5f);
  REQUIRE(f.view<std::int8_t, 1>("a")(0) == 7);
}

namespace {
// Opens a file made of `header` and `data`; returns the error message ("" when it opened).
std::string open_error(const std::string& header, const std::string& data) {
  temp_dir dir;
  write_bytes(dir / "bad.safetensors", safetensors_image(header, data));
  try {
    safetensors_file f(dir / "bad.safetensors");
  } catch (const dsk::error& e) {
    return e.what();
  }
  return "";
}
std::string entry(const char* name, const char* dtype, const char* shape, const char* offsets) {
  return std::string("\"") + name + R"(":{"dtype":")" + dtype + R"(","shape":)" + shape +
         R"(,"data_offsets":)" + offsets + "}";
}
}  // namespace

TEST_CASE("safetensors: every malformed header is rejected naming the file and the tensor",
          "[io][safetensors]") {
  const std::string d8(8, '\0'), d12(12, '\0');
  // A valid reference case first: the harness accepts good files.
  REQUIRE(open_error("{" + entry("a", "F32", "[2]", "[0,8]") + "}", d8).empty());
  REQUIRE(open_error("{}", "").empty());

  struct bad_case {
    const char* what;
    std::string header, data, message;
  };
  const std::vector<bad_case> cases = {
      {"bad JSON", "{\"a\": ", d8, "header is not valid JSON"},
      {"not an object", "[1, 2]", d8, "header must be a JSON object, got array"},
      {"unknown dtype", "{" + entry("w", "F17", "[2]", "[0,8]") + "}", d8, "tensor 'w': unknown dtype 'F17'"},
      {"byte count", "{" + entry("w", "F32", "[3]", "[0,8]") + "}", d8,
       "tensor 'w': data_offsets [0, 8) hold 8 bytes but dtype F32 and shape [3] need 3 x 4 = 12"},
      {"offsets past the end", "{" + entry("w", "F32", "[4]", "[0,16]") + "}", d8,
       "tensor 'w': data_offsets [0, 16) run past the end of the data buffer (8 bytes"},
      {"hole", "{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "F32", "[1]", "[8,12]") + "}", d12,
       "bytes [4, 8) of the data buffer belong to no tensor (a hole before tensor 'b')"},
      {"overlap", "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[1]", "[4,8]") + "}", d8,
       "tensor 'b' [4, 8) overlaps tensor 'a' [0, 8)"},
      {"trailing bytes", "{" + entry("a", "F32", "[1]", "[0,4]") + "}", d8,
       "the tensors cover 4 bytes of the data buffer but it holds 8"},
      {"negative extent", "{" + entry("w", "F32", "[-2]", "[0,8]") + "}", d8,
       "must hold non-negative integers"},
      {"fractional extent", "{" + entry("w", "F32", "[2.0]", "[0,8]") + "}", d8,
       "must hold non-negative integers"},
      {"element count overflow", "{" + entry("w", "F32", "[4294967296,4294967296]", "[0,8]") + "}", d8,
       "overflows the element count"},
      {"byte count overflow", "{" + entry("w", "F64", "[4611686018427387904]", "[0,8]") + "}", d8,
       "overflows the byte count"},
      {"end before begin", "{" + entry("w", "F32", "[0]", "[8,0]") + "}", d8, "end before begin"},
      {"offsets shape", "{" + entry("w", "F32", "[2]", "[0]") + "}", d8,
       "'data_offsets' must be [begin, end]"},
      {"offsets type", "{" + entry("w", "F32", "[2]", "[\"0\",8]") + "}", d8,
       "'data_offsets' must be [begin, end]"},
      {"unknown field", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", d8,
       "tensor 'w': unknown header field 'x'"},
      {"missing dtype", R"({"w":{"shape":[2],"data_offsets":[0,8]}})", d8, "missing or non-string 'dtype'"},
      {"missing shape", R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", d8, "missing or non-array 'shape'"},
      {"entry not an object", R"({"w":[1,2]})", d8, "tensor 'w': header entry must be an object"},
      {"metadata not strings", R"({"__metadata__":{"k":1}})", "",
       "__metadata__ value of 'k' must be a string"},
      {"metadata not an object", R"({"__metadata__":"x"})", "", "__metadata__ must be an object"},
      {"duplicate name leaves a hole",
       "{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("a", "F32", "[1]", "[4,8]") + "}", d8,
       "a hole before tensor 'a'"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    const std::string msg = open_error(c.header, c.data);
    REQUIRE_THAT(msg, Catch::Contains(c.message) && Catch::Contains("bad.safetensors"));
  }
}

TEST_CASE("safetensors: truncated files and bad header lengths are clear errors", "[io][safetensors]") {
  temp_dir dir;
  const std::string good = dsk::test::read_bytes(io_data("st_single.safetensors"));
  // Every truncation of a valid file is rejected (never a crash or an out-of-bounds read: each image sits in
  // a heap block of its exact size, so ASan sees any read past it).
  for (std::size_t n = 0; n < good.size(); ++n) {
    const std::vector<std::byte> img(reinterpret_cast<const std::byte*>(good.data()),
                                     reinterpret_cast<const std::byte*>(good.data()) + n);
    INFO("truncated to " << n << " bytes");
    REQUIRE_THROWS_AS(dsk::io::parse_safetensors_header(img, "t.safetensors"), dsk::error);
  }
  write_bytes(dir / "t.safetensors", good.substr(0, 5));
  REQUIRE_THROWS_WITH(
      safetensors_file(dir / "t.safetensors"),
      Catch::Contains("t.safetensors") && Catch::Contains("shorter than the 8-byte header length"));
  write_bytes(dir / "t.safetensors", good.substr(0, 40));
  REQUIRE_THROWS_WITH(safetensors_file(dir / "t.safetensors"),
                      Catch::Contains("runs past the end of the file (40 bytes"));
  write_bytes(dir / "t.safetensors", good.substr(0, good.size() - 1));
  REQUIRE_THROWS_WITH(safetensors_file(dir / "t.safetensors"),
                      Catch::Contains("run past the end of the data buffer"));

  std::string huge = safetensors_image("{}", "");
  huge[4] = '\x01';  // header length 2^32 + 2
  write_bytes(dir / "h.safetensors", huge);
  REQUIRE_THROWS_WITH(safetensors_file(dir / "h.safetensors"),
                      Catch::Contains("exceeds the format's limit of 100000000 bytes"));
}

TEST_CASE("safetensors: random byte corruption is either accepted or a dsk::error", "[io][safetensors]") {
  const std::string good = dsk::test::read_bytes(io_data("st_single.safetensors"));
  std::mt19937 rng(1234);
  int rejected = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string s = good;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) {
      // Mostly in the length and header, where the structure is.
      const std::size_t at = rng() % 4 == 0 ? rng() % s.size() : rng() % std::min<std::size_t>(s.size(), 300);
      s[at] = static_cast<char>(rng() & 0xff);
    }
    const std::vector<std::byte> img(reinterpret_cast<const std::byte*>(s.data()),
                                     reinterpret_cast<const std::byte*>(s.data()) + s.size());
    try {
      const auto h = dsk::io::parse_safetensors_header(img, "c.safetensors");
      for (const auto& t : h.tensors) REQUIRE(h.data_start + t.end <= img.size());
    } catch (const dsk::error&) {
      ++rejected;
    }
  }
  REQUIRE(rejected > 0);
}

TEST_CASE("checkpoint: bad indexes and directories are clear errors", "[io][safetensors]") {
  temp_dir dir;
  const auto shard = io_data("st_sharded/model-00001-of-00002.safetensors");
  std::filesystem::copy_file(shard, dir / "a.safetensors");
  const safetensors_file a(dir / "a.safetensors");
  const std::string t0 = a.tensors().at(0).name;

  REQUIRE_THROWS_WITH(checkpoint(dir.path()),
                      Catch::Contains("holds neither model.safetensors.index.json nor model.safetensors"));
  const auto index = dir / "model.safetensors.index.json";
  const auto with_index = [&](const std::string& text) {
    write_bytes(index, text);
    try {
      checkpoint ck(dir.path());
    } catch (const dsk::error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  REQUIRE(with_index(R"({"weight_map": {")" + t0 + R"(": "a.safetensors"}})").empty());
  REQUIRE_THAT(with_index("{\"weight_map\": "),
               Catch::Contains("model.safetensors.index.json' is not valid JSON"));
  REQUIRE_THAT(with_index("{}"), Catch::Contains("missing 'weight_map' object"));
  REQUIRE_THAT(with_index(R"({"weight_map": {"x": 3}})"),
               Catch::Contains("tensor 'x' must be a file name string"));
  REQUIRE_THAT(with_index(R"({"weight_map": {")" + t0 + R"(": "../a.safetensors"}})"),
               Catch::Contains("expected a plain file name beside the index"));
  REQUIRE_THAT(with_index(R"({"weight_map": {"x": "b.safetensors"}})"),
               Catch::Contains("shard 'b.safetensors' (of tensor 'x') does not exist"));
  REQUIRE_THAT(
      with_index(R"({"weight_map": {"model.missing": "a.safetensors"}})"),
      Catch::Contains("maps tensor 'model.missing' to shard 'a.safetensors', which has no such tensor"));
  // A corrupt shard is reported with the shard's name.
  write_bytes(dir / "b.safetensors", "12345");
  REQUIRE_THAT(with_index(R"({"weight_map": {"x": "b.safetensors"}})"),
               Catch::Contains("b.safetensors") && Catch::Contains("shorter than the 8-byte header length"));
}

TEST_CASE("safetensors: extents are bounded with zero extents counted as 1, rank is bounded",
          "[io][safetensors]") {
  // [0, 2^40, 2^40]: 0 elements and 0 bytes, but its strides (2^80) overflow index_t.
  REQUIRE_THAT(
      open_error("{" + entry("w", "F32", "[0,1099511627776,1099511627776]", "[0,0]") + "}", ""),
      Catch::Contains("tensor 'w': shape [0,1099511627776,1099511627776] overflows the element count") &&
          Catch::Contains("zero extents counted as 1"));
  REQUIRE_THAT(open_error("{" + entry("w", "U8", "[4611686018427387904,0,4]", "[0,0]") + "}", ""),
               Catch::Contains("overflows the element count"));
  // The largest span that fits, with a zero extent, is accepted; its element count is 0.
  REQUIRE(open_error("{" + entry("w", "U8", "[0,4611686018427387904]", "[0,0]") + "}", "").empty());
  // Even when the elements fit index_t, the byte count must too.
  REQUIRE_THAT(open_error("{" + entry("w", "F64", "[0,4611686018427387904]", "[0,0]") + "}", ""),
               Catch::Contains("overflows the byte count"));
  std::string rank65 = "[1";
  for (int i = 0; i < 64; ++i) rank65 += ",1";
  rank65 += "]";
  REQUIRE_THAT(open_error("{" + entry("w", "U8", rank65.c_str(), "[0,1]") + "}", std::string(1, '\0')),
               Catch::Contains("tensor 'w': shape has 65 dimensions, more than the limit of 64"));
  std::string rank64 = "[1";
  for (int i = 0; i < 63; ++i) rank64 += ",1";
  rank64 += "]";
  REQUIRE(open_error("{" + entry("w", "U8", rank64.c_str(), "[0,1]") + "}", std::string(1, '\0')).empty());
}

TEST_CASE("safetensors: deeply nested JSON in a header or an index is a clear error", "[io][safetensors]") {
  using dsk::test::nested_json;
  // 100,000 levels in a tensor entry's shape (whose error message used to dump it recursively) and in the
  // metadata.
  REQUIRE_THAT(open_error("{\"w\": {\"dtype\": \"F32\", \"shape\": " + nested_json(100000) +
                              ", \"data_offsets\": [0, 0]}}",
                          ""),
               Catch::Contains("bad.safetensors") &&
                   Catch::Contains("header: JSON nesting deeper than the limit of 128 levels"));
  REQUIRE_THAT(open_error("{\"__metadata__\": {\"k\": " + nested_json(100000) + "}}", ""),
               Catch::Contains("JSON nesting deeper than the limit of 128"));

  temp_dir dir;
  std::filesystem::copy_file(io_data("st_sharded/model-00001-of-00002.safetensors"), dir / "a.safetensors");
  const std::string t0 = safetensors_file(dir / "a.safetensors").tensors().at(0).name;
  const auto index = dir / "model.safetensors.index.json";
  // The index's metadata is kept as JSON text when it is not a string: on the success path, so deep nesting
  // used to crash a load that had nothing else wrong.
  write_bytes(index, "{\"metadata\": {\"deep\": " + nested_json(100000) + "}, \"weight_map\": {\"" + t0 +
                         "\": \"a.safetensors\"}}");
  REQUIRE_THROWS_WITH(checkpoint(dir.path()),
                      Catch::Contains("model.safetensors.index.json") &&
                          Catch::Contains("JSON nesting deeper than the limit of 128 levels"));
  // Within the limit it loads, the value kept as its JSON text.
  write_bytes(index, "{\"metadata\": {\"deep\": " + nested_json(100) +
                         ", \"total_size\": 12}, \"weight_map\": {\"" + t0 + "\": \"a.safetensors\"}}");
  const checkpoint ck(dir.path());
  CHECK(ck.metadata().at("deep") == nested_json(100));
  CHECK(ck.metadata().at("total_size") == "12");
}

TEST_CASE("checkpoint: a shard name the OS refuses is a dsk::error", "[io][safetensors]") {
  temp_dir dir;
  // A 4000-byte file name: std::filesystem::exists used to throw std::filesystem_error ("File name too long").
  const std::string name(4000, 'a');
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"w": ")" + name + R"("}})");
  try {
    checkpoint ck(dir.path());
    FAIL("no error");
  } catch (const dsk::error& e) {
    REQUIRE_THAT(std::string(e.what()),
                 Catch::Contains("shard '" + name.substr(0, 200) + "...' (of tensor 'w') cannot be opened: File name too long"));
  }
  REQUIRE_THROWS_WITH(dsk::io::read_text_file(dir / name, "config"),
                      Catch::Contains("cannot open config file") && Catch::Contains("File name too long"));
}
