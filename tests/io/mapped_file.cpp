#include "dsk/io/mapped_file.hpp"

#include <catch2/catch.hpp>

#include "io_test_util.hpp"

using dsk::test::temp_dir;

TEST_CASE("mapped_file maps the exact bytes of a file, including an empty one", "[io][mapped_file]") {
  temp_dir dir;
  const std::string content("abc\0def\xff", 8);
  dsk::test::write_bytes(dir / "f.bin", content);
  dsk::io::mapped_file f(dir / "f.bin");
  REQUIRE(f.size() == 8);
  REQUIRE(std::string(reinterpret_cast<const char*>(f.data()), f.size()) == content);

  dsk::io::mapped_file moved(std::move(f));
  REQUIRE(moved.size() == 8);
  REQUIRE(f.size() == 0);  // NOLINT(bugprone-use-after-move): a moved-from map is empty
  REQUIRE(moved.path() == dir / "f.bin");

  dsk::test::write_bytes(dir / "empty.bin", "");
  dsk::io::mapped_file e(dir / "empty.bin");
  REQUIRE(e.size() == 0);
  REQUIRE(e.bytes().empty());
}

TEST_CASE("mapped_file and read_text_file name the file they cannot open", "[io][mapped_file]") {
  temp_dir dir;
  REQUIRE_THROWS_WITH(dsk::io::mapped_file(dir / "missing.bin"),
                      Catch::Contains("cannot open") && Catch::Contains("missing.bin"));
  REQUIRE_THROWS_WITH(dsk::io::mapped_file(dir.path()), Catch::Contains("is not a regular file"));
  REQUIRE_THROWS_WITH(dsk::io::read_text_file(dir / "nope.json", "config"),
                      Catch::Contains("cannot open config file") && Catch::Contains("nope.json"));
}

TEST_CASE("parse_json reports syntax errors with the source name", "[io][mapped_file]") {
  REQUIRE(dsk::io::parse_json(R"({"a": [1, 2]})", "x.json")["a"][1] == 2);
  REQUIRE_THROWS_AS(dsk::io::parse_json("{\"a\": ", "x.json"), dsk::error);
  REQUIRE_THROWS_WITH(dsk::io::parse_json("{\"a\": ", "x.json"),
                      Catch::Contains("'x.json' is not valid JSON") && Catch::Contains("parse error"));
}
