// dsk_v1: runs the DeepSeek-V1 encoder-decoder (dynamic block attention) with dsk kernels on the host: encode
// the source, project the cross-attention K/V once, prefill the decoder prompt, decode with the NSA cache,
// sample, then report speed, time per kernel family and peak memory. Built-in deterministic random weights
// for a preset (no V1 checkpoint is public).
#include <chrono>
#include <cstdio>
#include <optional>

#include "../common/cli.hpp"
#include "model.hpp"

using dsk_examples::parse_ids;
using dsk_examples::peak_rss_mib;

int main(int argc, char** argv) {
  CLI::App app{"dsk_v1: DeepSeek-V1 encoder-decoder inference with dsk kernels (host)"};
  std::string src_arg, tgt_arg, preset_name = "tiny";
  int src_len = 0, layers = 0;
  dsk_examples::common_options o;
  app.add_option("--source", src_arg, "encoder input as comma-separated token ids");
  app.add_option("--source-length", src_len,
                 "encoder input of this many deterministic ids (instead of --source)")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--tokens", tgt_arg,
                 "decoder prompt as comma-separated token ids (default: the built-in one)");
  dsk_examples::add_common_options(app, o);
  app.add_option("--preset", preset_name,
                 "preset run on random weights (v1-card: the 13B card's widths; use "
                 "--layers to keep it small)")
      ->capture_default_str()
      ->check(CLI::IsMember({"tiny", "mid", "v1-card"}));
  app.add_option("--layers", layers, "override the encoder and decoder layer counts (0: keep)")
      ->check(CLI::Range(0, 1024));
  CLI11_PARSE(app, argc, argv);

  try {
    std::optional<dsk::thread_count_scope> th;
    if (o.threads > 0) th.emplace(o.threads);
    const auto fmt = dsk_examples::parse_weight_format(o.weights, "dsk_v1");
    dsk_v1::preset p = preset_name == "mid"       ? dsk_v1::mid
                       : preset_name == "v1-card" ? dsk_v1::v1_card
                                                  : dsk_v1::tiny;
    if (layers > 0) p.encoder_layers = p.decoder_layers = layers;
    std::printf(
        "NOTE: running the %s preset on built-in deterministic RANDOM weights (%.3f B parameters at these "
        "layer "
        "counts).\n      The output tokens are meaningless; this shows the pipeline and its speed only.\n",
        p.name, static_cast<double>(dsk_v1::parameter_count(p)) * 1e-9);
    const auto t_load0 = std::chrono::steady_clock::now();
    const dsk_v1::model m = dsk_v1::model::random(p, fmt);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load0).count();

    std::vector<std::int32_t> src, ids;
    if (!src_arg.empty() && src_len > 0)
      throw dsk::error("dsk_v1: give --source or --source-length, not both");
    if (!src_arg.empty()) src = parse_ids(src_arg, p.vocab_size, "dsk_v1", "--source");
    const int n_src = src_arg.empty() ? (src_len > 0 ? src_len : 100) : 0;
    for (int i = 0; i < n_src; ++i) src.push_back(static_cast<std::int32_t>((i * 7919 + 13) % p.vocab_size));
    ids = tgt_arg.empty() ? dsk_examples::builtin_prompt(p.vocab_size, "dsk_v1")
                          : parse_ids(tgt_arg, p.vocab_size, "dsk_v1");
    if (ids.empty()) throw dsk::error("dsk_v1: the decoder prompt has no tokens");
    if (!o.quiet)
      std::printf(
          "model: %lld + %lld layers, hidden %lld, %lld heads (%lld KV) of %lld, vocab %lld; loaded in %.2f "
          "s; "
          "%d threads\nsource: %zu tokens; decoder prompt: %zu tokens\n",
          (long long)p.encoder_layers, (long long)p.decoder_layers, (long long)p.hidden_size,
          (long long)p.num_heads, (long long)p.num_kv_heads, (long long)p.head_dim, (long long)p.vocab_size,
          load_s, dsk::num_threads(), src.size(), ids.size());

    dsk::tensor<float, 2> logits(std::array<dsk::index_t, 2>{1, p.vocab_size});
    dsk::nn::sampler smp(o.sampling(), o.seed);
    const auto t0 = std::chrono::steady_clock::now();
    const auto memory = m.encode(src);
    auto st = m.start(memory.cview());
    const auto t1 = std::chrono::steady_clock::now();
    m.decode(ids, st, logits.view());
    const auto t2 = std::chrono::steady_clock::now();
    std::vector<std::int32_t> out;
    std::printf("output: ");
    for (int i = 0; i < o.max_new; ++i) {
      std::vector<std::int32_t> seen(ids);
      seen.insert(seen.end(), out.begin(), out.end());
      const auto next = static_cast<std::int32_t>(smp.sample(logits.cview(), seen));
      out.push_back(next);
      std::printf("%d ", next);
      std::fflush(stdout);
      if (i + 1 == o.max_new) break;
      const std::int32_t one[1] = {next};
      m.decode(one, st, logits.view());
    }
    const auto t3 = std::chrono::steady_clock::now();
    std::printf("\n");
    auto sec = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    const double dec_n = out.size() > 1 ? static_cast<double>(out.size() - 1) : 0.0;
    std::printf(
        "encode: %zu tokens in %.3f s; decoder prefill: %zu tokens in %.3f s (first token %.1f ms after "
        "the source); decode: %.0f tokens in %.3f s (%.2f ms/token)\n",
        src.size(), sec(t0, t1), ids.size(), sec(t1, t2), 1e3 * sec(t0, t2), dec_n, sec(t2, t3),
        dec_n > 0 ? 1e3 * sec(t2, t3) / dec_n : 0.0);
    if (!o.quiet) dsk_examples::print_times(m.prof(), "time per kernel family (encode + decode)");
    std::printf("peak resident memory: %.1f MiB\n(random weights: the tokens above carry no meaning)\n",
                peak_rss_mib());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
