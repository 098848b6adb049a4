// dsk_v1: runs the DeepSeek-V1 encoder-decoder (dynamic block attention) with dsk kernels on the host: encode
// the source, project the cross-attention K/V once, prefill the decoder prompt, decode with the NSA cache,
// sample, then report speed, the encoder attention FLOPs saved against dense, time per kernel family and
// peak memory. --model DIR loads a checkpoint directory (config.json + safetensors, docs/models.md); without
// it a preset runs on built-in deterministic random weights (no V1 checkpoint is public).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "../common/cli.hpp"
#include "model.hpp"

using dsk_examples::parse_ids;
using dsk_examples::peak_rss_mib;

int main(int argc, char** argv) {
  CLI::App app{"dsk_v1: DeepSeek-V1 encoder-decoder inference with dsk kernels (host)"};
  std::string model_dir, save_dir, enc_attention = "dynamic", src_text, src_ids, tgt_arg,
                                   preset_name = "tiny";
  int src_len = 0, layers = 0;
  dsk_examples::common_options o;
  app.add_option("--model", model_dir, "checkpoint directory: config.json, *.safetensors (tokenizer.json)");
  app.add_option("--source", src_text, "encoder input text (needs tokenizer.json in the --model directory)");
  app.add_option("--source-tokens", src_ids, "encoder input as comma-separated token ids");
  app.add_option("--source-len", src_len, "encoder input of this many deterministic ids (speed runs)")
      ->check(CLI::Range(1, 1 << 24));
  app.add_option("--tokens", tgt_arg,
                 "decoder prompt as comma-separated token ids (default: a built-in one)");
  dsk_examples::add_common_options(app, o);
  app.add_option("--preset", preset_name,
                 "without --model: the preset run on random weights (v1-card: the 13B card's widths; use "
                 "--layers to keep it small)")
      ->capture_default_str()
      ->check(CLI::IsMember({"tiny", "mid", "v1-card"}));
  app.add_option("--layers", layers,
                 "without --model: override the encoder and decoder layer counts (0: keep)")
      ->check(CLI::Range(0, 1024));
  app.add_option("--encoder-attention", enc_attention,
                 "dynamic (the model's dynamic block attention) or dense (bidirectional, for comparison)")
      ->capture_default_str()
      ->check(CLI::IsMember({"dynamic", "dense"}));
  app.add_option(
      "--save-random", save_dir,
      "write the preset's random weights as a checkpoint directory (config.json, model.safetensors) "
      "and exit");
  CLI11_PARSE(app, argc, argv);

  try {
    std::optional<dsk::thread_count_scope> th;
    if (o.threads > 0) th.emplace(o.threads);
    const auto fmt = dsk_examples::parse_weight_format(o.weights, "dsk_v1");
    dsk_v1::preset p = preset_name == "mid"       ? dsk_v1::mid
                       : preset_name == "v1-card" ? dsk_v1::v1_card
                                                  : dsk_v1::tiny;
    if (layers > 0) p.encoder_layers = p.decoder_layers = layers;
    if (!save_dir.empty()) {
      if (!model_dir.empty()) throw dsk::error("dsk_v1: --save-random writes a preset; do not give --model");
      dsk_v1::model::write_random_directory(p, save_dir);
      std::printf("wrote the %s preset's random weights to %s\n", p.name, save_dir.c_str());
      return 0;
    }
    const auto t_load0 = std::chrono::steady_clock::now();
    std::optional<dsk_v1::model> m;
    std::optional<dsk::io::tokenizer> tok;
    if (model_dir.empty()) {
      std::printf(
          "NOTE: no --model given: running the %s preset on built-in deterministic RANDOM weights (%.1f M "
          "parameters).\n      The output tokens are meaningless; this shows the pipeline and its speed "
          "only.\n",
          p.name, static_cast<double>(dsk_v1::parameter_count(p)) * 1e-6);
      m.emplace(dsk_v1::model::random(p, fmt));
    } else {
      m.emplace(dsk_v1::model::load(model_dir, fmt, {.check_finite = !o.no_weight_check}));
      p = m->config();
      const auto tok_file = std::filesystem::path(model_dir) / "tokenizer.json";
      if (std::filesystem::exists(tok_file)) {
        tok.emplace(dsk::io::tokenizer::load(tok_file));
        dsk_examples::check_tokenizer(*tok, p.vocab_size, tok_file.string(),
                                      (std::filesystem::path(model_dir) / "config.json").string(), "dsk_v1");
      }
    }
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load0).count();
    if (enc_attention == "dense") m->set_encoder_attention(dsk_v1::encoder_attention::dense);

    std::vector<std::int32_t> src, ids;
    if (int{!src_text.empty()} + int{!src_ids.empty()} + int{src_len > 0} > 1)
      throw dsk::error("dsk_v1: give one of --source, --source-tokens and --source-len");
    if (!src_text.empty()) {
      if (!tok) throw dsk::error("dsk_v1: --source needs tokenizer.json in the --model directory");
      for (auto t : tok->encode(src_text)) src.push_back(t);
    } else if (!src_ids.empty()) {
      src = parse_ids(src_ids, p.vocab_size, "dsk_v1", "--source-tokens");
    } else {
      const int n = src_len > 0 ? src_len : 100;
      for (int i = 0; i < n; ++i)
        src.push_back(static_cast<std::int32_t>((static_cast<std::int64_t>(i) * 7919 + 13) % p.vocab_size));
    }
    ids = tgt_arg.empty() ? dsk_examples::builtin_prompt(p.vocab_size, "dsk_v1")
                          : parse_ids(tgt_arg, p.vocab_size, "dsk_v1");
    if (ids.empty()) throw dsk::error("dsk_v1: the decoder prompt has no tokens");
    if (!o.quiet)
      std::printf(
          "model: %lld + %lld layers, hidden %lld, %lld heads (%lld KV) of %lld, vocab %lld; weights %s; "
          "loaded in %.2f s; %d threads\nsource: %zu tokens; decoder prompt: %zu tokens\n",
          (long long)p.encoder_layers, (long long)p.decoder_layers, (long long)p.hidden_size,
          (long long)p.num_heads, (long long)p.num_kv_heads, (long long)p.head_dim, (long long)p.vocab_size,
          o.weights.c_str(), load_s, dsk::num_threads(), src.size(), ids.size());

    dsk::tensor<float, 2> logits(std::array<dsk::index_t, 2>{1, p.vocab_size});
    dsk::nn::sampler smp(o.sampling(), o.seed);
    const auto t0 = std::chrono::steady_clock::now();
    const auto memory = m->encode(src);
    auto st = m->start(memory.cview());
    const auto t1 = std::chrono::steady_clock::now();
    m->decode(ids, st, logits.view());
    const auto t2 = std::chrono::steady_clock::now();
    std::vector<std::int32_t> out;
    std::optional<dsk_examples::text_stream> text;
    if (tok) text.emplace(*tok);
    std::printf("output: ");
    for (int i = 0; i < o.max_new; ++i) {
      std::vector<std::int32_t> seen(ids);  // the repetition penalty applies to prompt and output
      seen.insert(seen.end(), out.begin(), out.end());
      const auto next = static_cast<std::int32_t>(smp.sample(logits.cview(), seen));
      out.push_back(next);
      if (text)
        std::fputs(text->push(next, i + 1 == o.max_new).c_str(), stdout);
      else
        std::printf("%d ", next);
      std::fflush(stdout);
      if (i + 1 == o.max_new) break;
      const std::int32_t one[1] = {next};
      m->decode(one, st, logits.view());
    }
    const auto t3 = std::chrono::steady_clock::now();
    std::printf("\n");
    auto sec = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    const double dec_n = out.size() > 1 ? static_cast<double>(out.size() - 1) : 0.0;
    const double enc_s = sec(t0, t1), pre_s = sec(t1, t2), dec_s = sec(t2, t3);
    std::printf(
        "encode: %zu tokens in %.3f s (%.1f tokens/s); decoder prefill: %zu tokens in %.3f s; decode: %.0f "
        "tokens in %.3f s (%.2f tokens/s)\n",
        src.size(), enc_s, enc_s > 0 ? static_cast<double>(src.size()) / enc_s : 0.0, ids.size(), pre_s,
        dec_n, dec_s, dec_n > 0 ? dec_n / dec_s : 0.0);
    const auto fl = dsk_v1::encoder_attention_flops(p, static_cast<dsk::index_t>(src.size()));
    if (fl.dense > 0)
      std::printf(
          "encoder attention (scores + values): %.3f GFLOP with dynamic block attention vs %.3f GFLOP dense "
          "(%.1f%% saved)\n",
          fl.nsa * 1e-9, fl.dense * 1e-9, fl.nsa < fl.dense ? 100.0 * (1.0 - fl.nsa / fl.dense) : 0.0);
    if (!o.quiet) dsk_examples::print_times(m->prof(), "time per kernel family (encode + decode)");
    std::printf("peak resident memory: %.1f MiB\n", peak_rss_mib());
    if (model_dir.empty()) std::printf("(random weights: the tokens above carry no meaning)\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
