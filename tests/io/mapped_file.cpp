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

TEST_CASE("mapped_file::release keeps the bytes readable and checks its range", "[io][mapped_file]") {
  temp_dir dir;
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::string content(5 * page + 123, '\0');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>((i * 131) % 251);
  dsk::test::write_bytes(dir / "f.bin", content);
  const dsk::io::mapped_file f(dir / "f.bin");
  const auto same = [&] { return std::string(reinterpret_cast<const char*>(f.data()), f.size()) == content; };
  REQUIRE(same());           // every page touched
  f.release(100, 3 * page);  // pages 1 and 2 lie inside, pages 0 and 3 are shared with bytes outside
  REQUIRE(same());
  f.release(page, 2 * page);  // exactly two pages
  f.release(7, 5);            // inside one page: nothing to drop
  f.release(0, 0);
  f.release(0, f.size());  // the whole file, ending mid-page
  REQUIRE(same());
  f.release(f.size(), 0);  // an empty range at the end
  REQUIRE_THROWS_WITH(f.release(f.size() - 1, 2),
                      Catch::Contains("release of bytes") && Catch::Contains("f.bin") &&
                          Catch::Contains("at most the file size " + std::to_string(f.size())));
  REQUIRE_THROWS_AS(f.release(f.size() + 1, 0), dsk::error);
  REQUIRE_THROWS_AS(f.release(1, static_cast<std::size_t>(-1)), dsk::error);  // offset + length overflows

  dsk::test::write_bytes(dir / "empty.bin", "");
  const dsk::io::mapped_file e(dir / "empty.bin");
  e.release(0, 0);
  REQUIRE_THROWS_AS(e.release(0, 1), dsk::error);
}

TEST_CASE("parse_json bounds the nesting depth before parsing", "[io][mapped_file]") {
  using dsk::io::max_json_depth;
  using dsk::test::nested_json;
  REQUIRE(dsk::io::parse_json(nested_json(max_json_depth), "ok.json").is_array());
  REQUIRE_THROWS_WITH(dsk::io::parse_json(nested_json(max_json_depth + 1), "deep.json"),
                      Catch::Contains("'deep.json': JSON nesting deeper than the limit of 128 levels"));
  // 100,000 levels (200 KB): refused by the pre-scan, not a stack overflow.
  REQUIRE_THROWS_WITH(dsk::io::parse_json("{\"a\": " + nested_json(100000) + "}", "deep.json"),
                      Catch::Contains("JSON nesting deeper than the limit of 128"));
  // Brackets inside strings (with escaped quotes) do not count.
  const std::string brackets =
      "{\"s\": \"\\\"" + std::string(1000, '[') + "\", \"t\": [" + std::string(1000, '{') + "]}";
  REQUIRE_THROWS_WITH(dsk::io::parse_json(brackets, "b.json"), Catch::Contains("nesting deeper"));
  const std::string in_string = "{\"s\": \"\\\"" + std::string(1000, '[') + "\"}";
  REQUIRE(dsk::io::parse_json(in_string, "s.json")["s"].get<std::string>().size() == 1001);
}

TEST_CASE("JSON in error messages is a bounded snippet", "[io][mapped_file]") {
  using dsk::io::detail::json_snippet;
  CHECK(json_snippet(nlohmann::json(12)) == "12");
  const nlohmann::json big = nlohmann::json::array_t(100000, 7);
  const std::string s = json_snippet(big);
  CHECK(s.size() == 83);
  CHECK(s.substr(0, 6) == "[7,7,7");
  CHECK(s.substr(80) == "...");
  // A cut never splits a UTF-8 character.
  const std::string t = json_snippet(nlohmann::json(std::string(100, 'x') + "\xe6\xb7\xb1"), 101);
  CHECK(t == "\"" + std::string(100, 'x') + "...");
  // A parse error's message is bounded too (nlohmann quotes the last token read, which may be huge).
  try {
    (void)dsk::io::parse_json("[\"" + std::string(1'000'000, 'a') + "\x01\"]", "long.json");
    FAIL("no error");
  } catch (const dsk::error& e) {
    CHECK(std::string(e.what()).size() < 500);
    CHECK_THAT(std::string(e.what()), Catch::Contains("'long.json' is not valid JSON"));
  }
}

TEST_CASE("read_text_file names a directory or a non-regular file", "[io][mapped_file]") {
  temp_dir dir;
  std::filesystem::create_directories(dir / "config.json");
  REQUIRE_THROWS_WITH(dsk::io::read_text_file(dir / "config.json", "config"),
                      Catch::Contains("config file '" + (dir / "config.json").string() +
                                      "': is a directory, expected a file"));
  REQUIRE_THROWS_WITH(dsk::io::read_text_file("/dev/null", "config"),
                      Catch::Contains("'/dev/null': is not a regular file"));
}
