// The command line of the V2-family runners (dsk_v2, and dsk_lite with its own loader and presets): runs a
// model from its checkpoint directory with dsk kernels on the host: tokenize, prefill, decode with the latent
// KV cache, sample, stream tokens, then report load time, time to first token, ms per token, time per kernel
// family, expert load and peak memory. Without --model: a preset on built-in random weights.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "model.hpp"

namespace dsk_v2 {

// What differs between the runners that share this command line.
struct runner_spec {
  std::string name;         // in messages: "dsk_v2"
  std::string description;  // --help's first line
  std::string checkpoint;  // what --model takes, for the random-weights note: "a DeepSeek-V2-Lite checkpoint"
  std::vector<std::string> presets;  // --preset choices (the first is the default)
  std::string preset_help;
  std::function<model(const std::filesystem::path& dir, weight_format, load_options)> load;
  std::function<model(const std::string& preset, int layers, weight_format, load_options)> random;
  std::function<void(CLI::App&)> add_options;  // the runner's own options (optional)
  // Set: the run is expert-parallel over the exchange this returns (expert_parallel.hpp, under mpirun). Each
  // process loads its share of the routed experts; only rank 0 prints (the others' stdout is discarded).
  std::function<std::shared_ptr<expert_exchange>()> expert_parallel;
};

inline int run_cli(int argc, char** argv, const runner_spec& spec) {
  using dsk_examples::parse_ids;
  using dsk_examples::peak_rss_mib;
  CLI::App app{spec.description};
  std::string model_dir, prompt, tokens_arg, form = "expanded", cache_type = "f32";
  int layers = 0;
  std::string preset_name = spec.presets.at(0);
  dsk_examples::common_options o;
  app.add_option("--model", model_dir, "checkpoint directory: config.json, *.safetensors, tokenizer.json");
  app.add_option("--prompt", prompt, "prompt text (needs tokenizer.json)");
  app.add_option("--tokens", tokens_arg, "prompt as comma-separated token ids (instead of --prompt)");
  dsk_examples::add_common_options(app, o);
  app.add_option("--cache", cache_type,
                 "element type of the MLA latent KV cache: f32 or bf16 (half the bytes)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16"}));
  app.add_option("--prefill-attention", form,
                 "MLA form of prefill: expanded or absorbed (decode is absorbed)")
      ->capture_default_str()
      ->check(CLI::IsMember({"expanded", "absorbed"}));
  app.add_option("--preset", preset_name, spec.preset_help)
      ->capture_default_str()
      ->check(CLI::IsMember(spec.presets));
  app.add_option("--layers", layers, "without --model: override the preset's layer count (0: keep)")
      ->check(CLI::Range(0, 1024));
  std::string lora_dir;
  bool lora_merge = false;
  app.add_option(
      "--lora", lora_dir,
      "PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors) applied on load");
  app.add_flag("--lora-merge", lora_merge, "merge the --lora adapter into the weights (no per-token cost)");
  if (spec.add_options) spec.add_options(app);
  CLI11_PARSE(app, argc, argv);

  try {
    std::optional<dsk::thread_count_scope> th;
    if (o.threads > 0) th.emplace(o.threads);
    const auto fmt = dsk_examples::parse_weight_format(o.weights, spec.name);
    const std::shared_ptr<expert_exchange> ex = spec.expert_parallel ? spec.expert_parallel() : nullptr;
    if (ex && ex->rank() != 0 && !std::freopen("/dev/null", "w", stdout))
      throw dsk::error(spec.name + ": cannot discard the output of rank " + std::to_string(ex->rank()));
    const load_options lo{.check_finite = !o.no_weight_check,
                          .lora = lora_dir,
                          .lora_merge = lora_merge,
                          .expert_shard = ex ? ex->rank() : 0,
                          .expert_shards = ex ? ex->ranks() : 1};
    const auto t_load0 = std::chrono::steady_clock::now();
    std::optional<dsk::io::tokenizer> tok;
    std::optional<dsk_v2::model> m;
    if (model_dir.empty()) {
      std::printf(
          "NOTE: no --model given: running the %s preset on built-in deterministic RANDOM weights.\n"
          "      The output tokens are meaningless; this shows the pipeline and its speed only.\n"
          "      Use --model DIR with %s for real text (docs/models.md).\n",
          preset_name.c_str(), spec.checkpoint.c_str());
      m.emplace(spec.random(preset_name, layers, fmt, lo));
    } else {
      m.emplace(spec.load(model_dir, fmt, lo));
      const auto tok_file = std::filesystem::path(model_dir) / "tokenizer.json";
      if (std::filesystem::exists(tok_file)) {
        tok.emplace(dsk::io::tokenizer::load(tok_file));
        dsk_examples::check_tokenizer(*tok, m->config().vocab_size, tok_file.string(),
                                      (std::filesystem::path(model_dir) / "config.json").string(), spec.name);
      }
    }
    if (ex) m->set_expert_parallel(ex);
    m->set_prefill_form(form == "absorbed" ? dsk_v2::attention_form::absorbed
                                           : dsk_v2::attention_form::expanded);
    const auto& cfg = m->config();
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load0).count();

    std::vector<std::int32_t> ids;
    if (!tokens_arg.empty() && !prompt.empty())
      throw dsk::error(spec.name + ": give --prompt or --tokens, not both");
    if (!tokens_arg.empty()) {
      ids = parse_ids(tokens_arg, cfg.vocab_size, spec.name);
    } else if (!prompt.empty()) {
      if (!tok)
        throw dsk::error(spec.name +
                         ": --prompt needs tokenizer.json in the --model directory (or use --tokens)");
      if (cfg.bos_token_id >= 0) ids.push_back(static_cast<std::int32_t>(cfg.bos_token_id));
      for (auto t : tok->encode(prompt)) ids.push_back(t);
    } else if (tok) {
      if (cfg.bos_token_id >= 0) ids.push_back(static_cast<std::int32_t>(cfg.bos_token_id));
      for (auto t : tok->encode("The capital of France is")) ids.push_back(t);
    } else {
      ids =
          dsk_examples::builtin_prompt(cfg.vocab_size, spec.name, "--tokens");  // the demo's fixed prompt ids
    }
    if (ids.empty()) throw dsk::error(spec.name + ": the prompt has no tokens");

    if (!o.quiet) {
      std::printf(
          "model: %lld layers, hidden %lld, %lld heads, %lld routed experts (top-%lld), vocab %lld; "
          "weights %s: %.1f MiB in memory; loaded in %.2f s (%.1f MiB checked for NaN/inf); %d threads\n",
          (long long)cfg.num_hidden_layers, (long long)cfg.hidden_size, (long long)cfg.num_attention_heads,
          (long long)cfg.n_routed_experts, (long long)cfg.num_experts_per_tok, (long long)cfg.vocab_size,
          o.weights.c_str(), static_cast<double>(m->weight_bytes()) / (1 << 20), load_s,
          static_cast<double>(m->checked_bytes()) / (1 << 20), dsk::num_threads());
      if (ex) {
        const auto [first, count] = m->held_experts();
        std::printf(
            "expert-parallel over %d processes: each holds %lld of the %lld routed experts of every MoE "
            "layer "
            "(rank 0: [%lld, %lld)); the weights above are rank 0's\n",
            ex->ranks(), (long long)count, (long long)cfg.n_routed_experts, (long long)first,
            (long long)(first + count));
      }
      if (const auto& st = m->stored_structure(); st.share_repeats > 1 || st.tied_head || st.int4_layout)
        std::printf("stored: %lld blocks, each run %lld times; head %s; weights %s\n",
                    (long long)(cfg.num_hidden_layers / st.share_repeats), (long long)st.share_repeats,
                    st.tied_head ? "tied to the embedding" : "separate",
                    st.int4_layout ? (st.int4_layout->group == 0 ? "int4 per channel, f16 scales, mapped"
                                                                 : "int4 groups of 128, f16 scales, mapped")
                                   : "as loaded");
      if (cfg.model_type == dsk::io::model_type::deepseek_v3)
        std::printf(
            "architecture: DeepSeek-V3 (sigmoid scores with correction bias, noaux_tc, %lld groups, "
            "top-%lld)%s\n",
            (long long)cfg.n_group, (long long)cfg.topk_group,
            cfg.quantization ? "; FP8 block-scaled weights dequantized on load" : "");
      if (m->lora_weights() > 0)
        std::printf(
            "LoRA adapter %s: %lld weights, %s\n", lora_dir.c_str(), (long long)m->lora_weights(),
            lora_merge ? "merged into the weights" : "attached (kv_b_proj, experts and gates merged)");
      if (m->skipped_mtp_layers() > 0)
        std::printf(
            "skipped %lld multi-token-prediction layer(s) (model.layers.%lld.*): dsk predicts the next token "
            "only\n",
            (long long)m->skipped_mtp_layers(), (long long)cfg.num_hidden_layers);
      std::printf("prompt (%zu tokens):", ids.size());
      for (auto t : ids) std::printf(" %d", t);
      std::printf("\n");
    }

    const dsk::index_t capacity = static_cast<dsk::index_t>(ids.size()) + o.max_new;
    dsk_v2::kv_cache cache =
        m->new_cache(capacity, cache_type == "bf16" ? dsk_v2::cache_dtype::bf16 : dsk_v2::cache_dtype::f32);
    dsk::tensor<float, 2> logits(std::array<dsk::index_t, 2>{1, cfg.vocab_size});
    dsk::nn::sampler smp(o.sampling(), o.seed);
    m->prof().reset();

    const auto t0 = std::chrono::steady_clock::now();
    m->forward(ids, cache, logits.view());
    const auto t1 = std::chrono::steady_clock::now();
    std::vector<std::int32_t> out;
    std::optional<dsk_v2::text_stream> text;
    if (tok) text.emplace(*tok);
    auto is_eos = [&](std::int32_t t) {
      return std::find(cfg.eos_token_ids.begin(), cfg.eos_token_ids.end(), t) != cfg.eos_token_ids.end();
    };
    std::printf("output: ");
    std::chrono::steady_clock::time_point t_first = t1;
    for (int i = 0; i < o.max_new; ++i) {
      std::vector<std::int32_t> seen(ids);  // the repetition penalty applies to prompt and output
      seen.insert(seen.end(), out.begin(), out.end());
      const auto next = static_cast<std::int32_t>(smp.sample(logits.cview(), seen));
      out.push_back(next);
      if (i == 0) t_first = std::chrono::steady_clock::now();
      if (text) {
        // The new part of the decoded text (ids the tokenizer lacks decode as nothing: text_stream).
        std::fputs(text->push(next, is_eos(next) || i + 1 == o.max_new).c_str(), stdout);
      } else {
        std::printf("%d ", next);
      }
      std::fflush(stdout);
      if (is_eos(next) || i + 1 == o.max_new) break;
      const std::int32_t one[1] = {next};
      m->forward(one, cache, logits.view());
    }
    const auto t2 = std::chrono::steady_clock::now();
    std::printf("\n");
    if (text && text->unknown() > 0)
      std::printf(
          "(%lld generated ids have no token in tokenizer.json (ids >= %lld or holes; vocab_size %lld): "
          "decoded as nothing)\n",
          (long long)text->unknown(), (long long)tok->vocab_size(), (long long)cfg.vocab_size);

    const double pre_s = std::chrono::duration<double>(t1 - t0).count();
    const double dec_s = std::chrono::duration<double>(t2 - t1).count();
    const double dec_n = out.size() > 1 ? static_cast<double>(out.size() - 1) : 0.0;
    std::printf(
        "prefill: %zu tokens in %.3f s (%.1f tokens/s); decode: %.0f tokens in %.3f s (%.2f tokens/s)\n",
        ids.size(), pre_s, ids.size() / pre_s, dec_n, dec_s, dec_n > 0 ? dec_n / dec_s : 0.0);
    // Time to first token: prefill of the prompt and sampling its first token (the tokenizer's time
    // excluded).
    std::printf("load: %.3f s; time to first token: %.1f ms (%zu-token prompt); decode: %.2f ms per token\n",
                load_s, 1e3 * std::chrono::duration<double>(t_first - t0).count(), ids.size(),
                dec_n > 0 ? 1e3 * dec_s / dec_n : 0.0);
    if (!o.quiet) {
      const auto& p = m->prof();
      dsk_examples::print_times(p, "time per kernel family (prefill + decode)");
      if (cfg.n_routed_experts > 0) {
        std::printf("expert load (tokens routed per expert, all MoE layers summed; min / mean / max):\n  ");
        std::vector<std::int64_t> sum(static_cast<std::size_t>(cfg.n_routed_experts), 0);
        for (const auto& l : p.expert_tokens)
          for (std::size_t e = 0; e < l.size(); ++e) sum[e] += l[e];
        for (std::size_t e = 0; e < sum.size(); ++e)
          std::printf("%lld%s", (long long)sum[e], e + 1 < sum.size() ? " " : "\n");
        const auto [mn, mx] = std::minmax_element(sum.begin(), sum.end());
        std::printf("  min %lld, mean %.1f, max %lld\n", (long long)*mn,
                    std::accumulate(sum.begin(), sum.end(), 0.0) / static_cast<double>(sum.size()),
                    (long long)*mx);
      }
      std::printf("kv cache: %.2f MiB (%lld positions x %lld layers x %lld floats)\n",
                  static_cast<double>(cache.bytes()) / (1 << 20), (long long)cache.capacity(),
                  (long long)cfg.num_hidden_layers, (long long)(cfg.kv_lora_rank + cfg.qk_rope_head_dim));
    }
    if (ex) {
      // Every rank computed the same logits and sampled the same tokens; checked, so that a rank that went
      // astray cannot hide behind rank 0's output.
      std::uint64_t digest = 1469598103934665603ull;  // FNV-1a over the generated ids
      for (const auto t : out) digest = (digest ^ static_cast<std::uint32_t>(t)) * 1099511628211ull;
      const auto digests = ex->allgather(static_cast<std::int64_t>(digest));
      const auto rss = ex->allgather(static_cast<std::int64_t>(dsk_examples::resident_mib() * 1024.0));
      const auto peak = ex->allgather(static_cast<std::int64_t>(peak_rss_mib() * 1024.0));
      const auto weights = ex->allgather(m->weight_bytes());
      for (int r = 1; r < ex->ranks(); ++r)
        if (digests[static_cast<std::size_t>(r)] != digests[0])
          throw dsk::error(spec.name + ": rank " + std::to_string(r) +
                           " generated other tokens than rank 0 (the ranks' logits differ)");
      std::printf("per rank (0 .. %d): weights in memory", ex->ranks() - 1);
      for (const auto b : weights) std::printf(" %.1f", static_cast<double>(b) / (1 << 20));
      std::printf(" MiB; resident memory now");
      for (const auto k : rss) std::printf(" %.1f", static_cast<double>(k) / 1024.0);
      std::printf(" MiB; peak");
      for (const auto k : peak) std::printf(" %.1f", static_cast<double>(k) / 1024.0);
      std::printf(" MiB\n");
    }
    std::printf("peak resident memory: %.1f MiB\n", peak_rss_mib());
    if (model_dir.empty()) std::printf("(random weights: the tokens above carry no meaning)\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace dsk_v2
