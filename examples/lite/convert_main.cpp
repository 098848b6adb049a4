// dsk_lite_convert: a float V2-family checkpoint directory -> the DeepSeek-Lite int4 layout (convert.hpp).
#include <chrono>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "convert.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "dsk_lite_convert: float DeepSeek-V2-family checkpoint -> DeepSeek-Lite int4 (docs/models.md)"};
  std::string src, dst, clip = "absmax", range = "sym7";
  dsk_lite::convert_options o;
  app.add_option("input", src, "float checkpoint directory (config.json + *.safetensors)")->required();
  app.add_option("output", dst, "output directory (config.json + model.safetensors)")->required();
  app.add_option("--clip", clip, "scale choice: absmax (max |w| / 7) or mse (clipping search)");
  app.add_option("--range", range, "int4 range: sym7 ([-7, 7]) or full8 ([-8, 7])");
  app.add_option("--group", o.group, "0: one scale per output channel; 32, 64, 128: per group of columns");
  app.add_option("--share-repeats", o.share_repeats,
                 "runs of each stored block (0: the input config's share_repeats, else 1)");
  CLI11_PARSE(app, argc, argv);
  try {
    o.method = dsk_lite::parse_method(clip);
    o.range = dsk_lite::parse_range(range);
    const auto t0 = std::chrono::steady_clock::now();
    const auto st = dsk_lite::convert(src, dst, o);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("converted %lld int4 tensors and %lld f16 tensors in %.2f s -> %s\n",
                static_cast<long long>(st.tensors_quantized), static_cast<long long>(st.tensors_f16), s,
                dst.c_str());
    std::printf("weights: %lld (%lld int4, %lld f16)\n", static_cast<long long>(st.params()),
                static_cast<long long>(st.quantized_params), static_cast<long long>(st.f16_params));
    std::printf("size: %lld bytes = %.6f GB (int4 codes %lld + f16 scales %lld + f16 tensors %lld bytes)\n",
                static_cast<long long>(st.file_bytes()), double(st.file_bytes()) / 1e9,
                static_cast<long long>(st.code_bytes), static_cast<long long>(st.scale_bytes),
                static_cast<long long>(2 * st.f16_params));
    std::printf("bits per weight: %.3f (scales and f16 tensors included)\n", st.bits_per_weight());
    std::printf(
        "compression: %.2fx vs bf16 (%.1f%% smaller), %.2fx vs f32 (%.1f%% smaller; the seed's 87.5%% "
        "is this figure for 4-bit codes without scales)\n",
        st.compression_vs_bf16(), 100.0 * (1.0 - 1.0 / st.compression_vs_bf16()), st.compression_vs_f32(),
        100.0 * (1.0 - 1.0 / st.compression_vs_f32()));
    if (o.group == 32 || o.group == 64)
      std::printf(
          "note: dsk_lite runs groups 0 (per channel) and 128 (the compiled int4 formats); this file's group "
          "%d "
          "is valid Lite layout for other readers, but dsk_lite will refuse it\n",
          o.group);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
