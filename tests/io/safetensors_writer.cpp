#include "dsk/io/safetensors_writer.hpp"

#include <cstring>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "io_test_util.hpp"
#include "support/compare.hpp"

using dsk::index_t;
using dsk::io::safetensors_file;
using dsk::io::safetensors_writer;
using dsk::io::st_dtype;
using dsk::test::temp_dir;

TEST_CASE("safetensors_writer output reads back exactly, aligned, with metadata",
          "[io][safetensors_writer]") {
  temp_dir dir;
  const auto vals = dsk::test::random_floats(7 * 9, 42);
  dsk::tensor<float, 2> w(7, 9);
  std::copy(vals.begin(), vals.end(), w.data());
  dsk::tensor<dsk::bf16, 2> wb(3, 5);
  dsk::tensor<dsk::f16, 1> wh(11);
  dsk::tensor<std::int8_t, 3> wi(2, 3, 4);
  dsk::tensor<double, 1> wd(3);
  dsk::tensor<std::int32_t, 1> wn(5);
  dsk::tensor<float, 2> empty(0, 4);
  for (index_t i = 0; i < wb.size(); ++i) wb.data()[i] = dsk::bf16(vals[static_cast<std::size_t>(i)]);
  for (index_t i = 0; i < wh.size(); ++i) wh.data()[i] = dsk::f16(vals[static_cast<std::size_t>(i + 20)]);
  for (index_t i = 0; i < wi.size(); ++i) wi.data()[i] = static_cast<std::int8_t>(i * 11 - 128);
  for (index_t i = 0; i < wd.size(); ++i) wd.data()[i] = 1.0 / (3.0 + static_cast<double>(i));
  for (index_t i = 0; i < wn.size(); ++i) wn.data()[i] = static_cast<std::int32_t>(i * 100000 - 7);
  std::array<dsk::int4x2, 6> q{};
  for (std::size_t i = 0; i < q.size(); ++i)
    q[i] = dsk::int4x2::pack(static_cast<int>(i) - 3, 7 - static_cast<int>(i));

  safetensors_writer wr;
  wr.add("model.w", w);
  // A strided column slice [7, 4] of w is gathered row-major.
  wr.add("model.w_cols", w.view().slice(1, 2, 6));
  wr.add("a.bf16", wb);
  wr.add("b.f16", wh);
  wr.add("c.i8", wi);
  wr.add("d.f64", wd);
  wr.add("e.i32", wn);
  wr.add("f.empty", empty);
  wr.add_int4("g.int4", dsk::packed_int4_view<const dsk::int4x2>(q.data(), 3, 3));  // 3 rows of 2 bytes
  wr.set_metadata("format", "pt");
  wr.set_metadata("producer", "dsk test");
  wr.write(dir / "out.safetensors");
  REQUIRE(!std::filesystem::exists(dir / "out.safetensors.tmp"));

  const safetensors_file f(dir / "out.safetensors");
  REQUIRE(f.metadata().at("format") == "pt");
  REQUIRE(f.metadata().at("producer") == "dsk test");
  REQUIRE(f.tensors().size() == 9);
  const std::string raw = dsk::test::read_bytes(dir / "out.safetensors");
  std::uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  REQUIRE(n % 8 == 0);  // header padded so that the data buffer starts 8-byte aligned
  for (const auto& t : f.tensors()) {
    INFO(t.name);
    REQUIRE(t.begin % dsk::io::size_of(t.dtype) == 0);
  }
  // Largest element size first, then by name (the reference writer's order).
  REQUIRE(f.tensors().front().name == "d.f64");

  const auto rw = f.view<float, 2>("model.w", {7, 9});
  for (index_t i = 0; i < 7; ++i)
    for (index_t j = 0; j < 9; ++j) REQUIRE(rw(i, j) == w(i, j));
  const auto rc = f.view<float, 2>("model.w_cols", {7, 4});
  for (index_t i = 0; i < 7; ++i)
    for (index_t j = 0; j < 4; ++j) REQUIRE(rc(i, j) == w(i, j + 2));
  const auto rb = f.view<dsk::bf16, 2>("a.bf16", {3, 5});
  for (index_t i = 0; i < wb.size(); ++i) REQUIRE(rb.data()[i] == wb.data()[i]);
  const auto rh = f.view<dsk::f16, 1>("b.f16");
  for (index_t i = 0; i < wh.size(); ++i) REQUIRE(rh.data()[i] == wh.data()[i]);
  REQUIRE(f.view<std::int8_t, 3>("c.i8")(1, 2, 3) == wi(1, 2, 3));
  REQUIRE(f.view<double, 1>("d.f64")(2) == wd(2));
  REQUIRE(f.view<std::int32_t, 1>("e.i32")(4) == wn(4));
  REQUIRE(f.view<float, 2>("f.empty").extent(0) == 0);
  const auto r4 = f.int4_view("g.int4", 3, 3);
  for (index_t r = 0; r < 3; ++r)
    for (int k = 0; k < 2; ++k) REQUIRE(r4.row(r)[k] == q[static_cast<std::size_t>(r * 2 + k)]);
  REQUIRE(f.info("g.int4").dtype == st_dtype::U8);
}

TEST_CASE("safetensors_writer rejects bad input", "[io][safetensors_writer]") {
  safetensors_writer wr;
  const std::array<std::byte, 8> b{};
  wr.add("x", st_dtype::F32, {2}, b);
  REQUIRE_THROWS_WITH(wr.add("x", st_dtype::F32, {2}, b), Catch::Contains("tensor 'x' added twice"));
  REQUIRE_THROWS_WITH(wr.add("y", st_dtype::F32, {3}, b),
                      Catch::Contains("tensor 'y': 8 bytes given, dtype F32 and shape [3] need 12"));
  REQUIRE_THROWS_WITH(wr.add("__metadata__", st_dtype::U8, {8}, b), Catch::Contains("invalid tensor name"));
  REQUIRE_THROWS_WITH(wr.add("", st_dtype::U8, {8}, b), Catch::Contains("invalid tensor name"));
  REQUIRE_THROWS_WITH(wr.add("z", st_dtype::U8, {-8}, b), Catch::Contains("negative extent"));
  REQUIRE(wr.size() == 1);
  REQUIRE(wr.data_bytes() == 8);
  temp_dir dir;
  REQUIRE_THROWS_WITH(wr.write(dir / "no" / "such" / "dir.safetensors"), Catch::Contains("cannot create"));
}

TEST_CASE("a sharded checkpoint written with write_index reads back", "[io][safetensors_writer]") {
  temp_dir dir;
  std::map<std::string, std::string> weight_map;
  std::uint64_t total = 0;
  for (int s = 0; s < 3; ++s) {
    safetensors_writer wr;
    for (int t = 0; t < 2; ++t) {
      dsk::tensor<float, 2> x(2, 3);
      x.fill(static_cast<float>(s * 10 + t));
      const std::string name = "model.layers." + std::to_string(s) + ".w" + std::to_string(t);
      wr.add(name, x);
      weight_map[name] = "model-" + std::to_string(s) + ".safetensors";
    }
    total += wr.data_bytes();
    wr.write(dir / ("model-" + std::to_string(s) + ".safetensors"));
  }
  dsk::io::write_index(dir / "model.safetensors.index.json", weight_map, total);
  const dsk::io::checkpoint ck(dir.path());
  REQUIRE(ck.shard_count() == 3);
  REQUIRE(ck.names().size() == 6);
  REQUIRE(ck.metadata().at("total_size") == std::to_string(total));
  REQUIRE(ck.view<float, 2>("model.layers.2.w1", {2, 3})(1, 2) == 21.0f);
  REQUIRE(ck.find("model.layers.1.w0").first->path().filename() == "model-1.safetensors");
}

TEST_CASE("safetensors_file::release drops a tensor's pages, its bytes stay readable", "[io][safetensors]") {
  temp_dir dir;
  const auto big_vals = dsk::test::random_floats(5000, 7);  // about 5 pages of 4 KiB
  dsk::tensor<float, 2> big(50, 100);
  std::copy(big_vals.begin(), big_vals.end(), big.data());
  dsk::tensor<float, 1> small(3);
  small(0) = 1.0f, small(1) = 2.0f, small(2) = 3.0f;
  dsk::tensor<float, 2> empty(0, 4);
  safetensors_writer wr;
  wr.add("big", big);
  wr.add("small", small);
  wr.add("empty", empty);
  wr.write(dir / "r.safetensors");

  const safetensors_file f(dir / "r.safetensors");
  const auto v = f.view<float, 2>("big", {50, 100});
  REQUIRE(v(49, 99) == big(49, 99));  // pages touched
  f.release("big");
  f.release("small");  // smaller than a page: nothing dropped
  f.release("empty");
  for (index_t i = 0; i < 50; ++i)
    for (index_t j = 0; j < 100; ++j) REQUIRE(v(i, j) == big(i, j));
  REQUIRE(f.view<float, 1>("small")(2) == 3.0f);
  REQUIRE_THROWS_WITH(f.release("nope"),
                      Catch::Contains("no tensor named 'nope'") && Catch::Contains("r.safetensors"));

  // Through a checkpoint (the V2 loader's path): the same, naming the checkpoint in the error.
  dsk::io::write_index(dir / "model.safetensors.index.json",
                       {{"big", "r.safetensors"}, {"small", "r.safetensors"}, {"empty", "r.safetensors"}},
                       f.tensors().back().end);
  const dsk::io::checkpoint ck(dir.path());
  const auto cv = ck.view<float, 2>("big", {50, 100});
  ck.release("big");
  REQUIRE(cv(17, 3) == big(17, 3));
  REQUIRE_THROWS_WITH(ck.release("model.nope"), Catch::Contains("no tensor named 'model.nope'"));
}
