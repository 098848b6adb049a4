// Command-line pieces shared by the example runners (CLI11): the options every runner has (generation length,
// sampling, threads, weight format, load check, quiet), comma-separated token ids, peak resident memory and
// the time-per-kernel-family table.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "dsk/core.hpp"
#include "dsk/nn/sampling.hpp"

namespace dsk_examples {

inline double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux: KiB
}

// Resident memory now (Linux /proc/self/statm; 0 where it cannot be read): unlike the peak, it does not count
// what loading touched and gave back (the random weights' temporary file, the pages of checked tensors).
inline double resident_mib() {
  std::ifstream statm("/proc/self/statm");
  long long pages = 0, resident = 0;
  if (!(statm >> pages >> resident)) return 0.0;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

// Comma-separated token ids, each in [0, vocab); errors name the runner and the option.
inline std::vector<std::int32_t> parse_ids(const std::string& s, dsk::index_t vocab, std::string_view runner,
                                           std::string_view option = "--tokens") {
  std::vector<std::int32_t> ids;
  std::string tok;
  std::stringstream in(s);
  while (std::getline(in, tok, ',')) {
    std::stringstream t(tok);
    long long v = 0;
    if (!(t >> v) || !(t >> std::ws).eof())
      throw dsk::error(std::string(runner) + ": " + std::string(option) + ": '" + tok +
                       "' is not an integer (expected comma-separated ids)");
    if (v < 0 || v >= vocab)
      throw dsk::error(std::string(runner) + ": " + std::string(option) + ": id " + std::to_string(v) +
                       " is outside [0, " + std::to_string(vocab) + ")");
    ids.push_back(static_cast<std::int32_t>(v));
  }
  return ids;
}

// The options every runner has, with their defaults.
struct common_options {
  int max_new = 64, threads = 0, top_k = 30;
  double temperature = 0.7, top_p = 1.0, min_p = 0.0, repetition_penalty = 1.0;
  std::uint64_t seed = 0;
  bool greedy = false, quiet = false, no_weight_check = false;
  std::string weights = "checkpoint";

  dsk::nn::sampling_options sampling() const {
    return {.temperature = greedy ? 0.0 : temperature,
            .top_k = top_k,
            .top_p = top_p,
            .min_p = min_p,
            .repetition_penalty = repetition_penalty};
  }
};

inline void add_common_options(CLI::App& app, common_options& o) {
  app.add_option("--max-new-tokens", o.max_new, "tokens to generate")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--temperature", o.temperature, "sampling temperature")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--top-k", o.top_k, "sample among the k most likely tokens (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", o.top_p, "nucleus sampling: smallest set with probability >= p")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--min-p", o.min_p, "drop tokens less likely than min-p times the most likely one")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--repetition-penalty", o.repetition_penalty,
                 "divide positive / multiply negative logits of tokens already seen (1: off)")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 100.0));
  app.add_option("--seed", o.seed, "sampling seed")->capture_default_str();
  app.add_flag("--greedy", o.greedy, "argmax decoding (ignores temperature, top-k, top-p)");
  app.add_option("--threads", o.threads, "worker threads (0: all cores)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--weights", o.weights, "weights in memory: checkpoint (file dtype), f32, bf16, int8, int4")
      ->capture_default_str()
      ->check(CLI::IsMember({"checkpoint", "auto", "f32", "bf16", "int8", "int4"}));
  app.add_flag("--no-weight-check", o.no_weight_check,
               "skip the load-time scan of every weight for NaN / infinity (one read of the checkpoint; "
               "non-finite logits are still reported)");
  app.add_flag("--quiet", o.quiet, "print only the generated text / ids and the summary line");
}

// The time-per-kernel-family table of a profile derived from family_times (runner.hpp).
template <class Profile>
void print_times(const Profile& p, const char* title = "time per kernel family") {
  const double total = p.total();
  std::printf("%s:\n", title);
  for (int f = 0; f < Profile::count; ++f)
    std::printf("  %-22s %8.3f s  %5.1f%%\n", Profile::names[f], p.seconds[f],
                total > 0 ? 100.0 * p.seconds[f] / total : 0.0);
}

}  // namespace dsk_examples
