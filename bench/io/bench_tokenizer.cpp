// bench_tokenizer: what rewriting a pre-tokenizer's Unicode properties into explicit ranges (dsk's Unicode 16
// table, include/dsk/io/unicode_regex.hpp) costs against PCRE2 matching the pattern with its own tables, in
// one binary, and the whole encode for context. Rows (bytes/s is the text's UTF-8 size over the time):
//   split/<pattern>/<tables>/<text>   every match of one pre-tokenizer regex over the text (for_each_match):
//                                     pattern v3 (DeepSeek-V3's main Split), v3_digits (\p{N}{1,3}), gpt2
//                                     (the ByteLevel regex); tables dsk (rewritten) or engine (PCRE2's own)
//   encode/<tokenizer>/<text>         tokenizer::encode with the test data's tokenizers: v3 (DeepSeek-V3's
//                                     pre-tokenizer) and v2 (DeepSeek-V2's); dsk's tables
// Texts (~1 MiB each): english, code, chinese, mixed (emoji and letters of Unicode 15 and 16 among Latin, CJK
// and digits). Single-threaded. Run:
//   bench_tokenizer --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <string>

#include "dsk/io/tokenizer.hpp"

namespace {
using dsk::io::detail::pcre2_regex;
using dsk::io::detail::unicode_tables;

const std::string v3_main =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
const std::string v3_digits = "\\p{N}{1,3}";
const std::string gpt2 = std::string(dsk::io::detail::gpt2_split_regex);

std::string repeat_to_mib(const std::string& unit) {
  std::string s;
  while (s.size() < (std::size_t{1} << 20)) s += unit;
  return s;
}

const std::string& text(int which) {
  static const std::string texts[] = {
      repeat_to_mib(
          "DeepSeek-V3 is a strong Mixture-of-Experts (MoE) language model with 671B total parameters, "
          "of which 37B are activated for each token. It's trained on 14.8T tokens; see arXiv:2412.19437.\n"),
      repeat_to_mib(
          "def forward(self, x: torch.Tensor) -> torch.Tensor:\n    y = self.w2(F.silu(self.w1(x)) * "
          "self.w3(x))\n    return y[..., :128] + 0x1F  # 2024\n"),
      repeat_to_mib(
          "深度求索是一家专注于人工智能基础技术研究的公司。大规模语言模型的训练需要大量的计算资源和高质量"
          "的数据，２０２４年。"),
      repeat_to_mib("Hi \U0001FA77 \U0001FABF ok 😀😀 𐵊𐵋𐵌 Garay 𐵀𐵁 深度 ١٢٣ café naïve Ω≈ç "
                    "√ "
                    "\U0001CC00\U0001FAE9!\n"),
  };
  return texts[which];
}
const char* const text_names[] = {"english", "code", "chinese", "mixed"};

void split(benchmark::State& st, const std::string* pattern, unicode_tables tables, int which) {
  const pcre2_regex re(*pattern, false, "bench", tables);
  const std::string& s = text(which);
  std::size_t pieces = 0;
  for (auto _ : st) {
    pieces = 0;
    re.for_each_match(s, [&](std::size_t, std::size_t) { ++pieces; });
    benchmark::DoNotOptimize(pieces);
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * s.size()));
  st.counters["pieces"] = static_cast<double>(pieces);
}

void encode(benchmark::State& st, const char* file, int which) {
  const auto t = dsk::io::tokenizer::load(std::string(DSK_IO_TEST_DATA) + "/" + file);
  const std::string& s = text(which);
  std::size_t n = 0;
  for (auto _ : st) {
    n = t.encode(s).size();
    benchmark::DoNotOptimize(n);
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * s.size()));
  st.counters["tokens"] = static_cast<double>(n);
}

const int registered = [] {
  const std::pair<const char*, const std::string*> patterns[] = {
      {"v3", &v3_main}, {"v3_digits", &v3_digits}, {"gpt2", &gpt2}};
  for (int w = 0; w < 4; ++w) {
    for (const auto& [name, pattern] : patterns)
      for (const auto tables : {unicode_tables::dsk, unicode_tables::engine})
        benchmark::RegisterBenchmark(
            (std::string("split/") + name + "/" + (tables == unicode_tables::dsk ? "dsk" : "engine") + "/" +
             text_names[w])
                .c_str(),
            split, pattern, tables, w)
            ->Unit(benchmark::kMillisecond);
    for (const auto& [name, file] : {std::pair{"v3", "tokenizer_v3.json"}, std::pair{"v2", "tokenizer.json"}})
      benchmark::RegisterBenchmark((std::string("encode/") + name + "/" + text_names[w]).c_str(), encode,
                                   file, w)
          ->Unit(benchmark::kMillisecond);
  }
  return 0;
}();
}  // namespace

BENCHMARK_MAIN();
