// dsk_lite: runs a DeepSeek-Lite int4 checkpoint (dsk_lite_convert's layout: codes mapped, blocks shared,
// head tied) with dsk kernels on the host; the command line is dsk_v2's (examples/v2/run.hpp). Without
// --model: the tiny Lite preset on built-in random weights, converted to int4 as dsk_lite_convert does.
#include "model.hpp"
#include "v2/run.hpp"

int main(int argc, char** argv) {
  auto checkpoint_only = [](dsk_v2::weight_format fmt) {
    if (fmt != dsk_v2::weight_format::checkpoint)
      throw dsk::unsupported(
          "dsk_lite: --weights: a Lite checkpoint runs in its stored int4 format; only 'checkpoint' is "
          "supported (dsk_v2 --weights int4 quantizes a float checkpoint on load instead)");
  };
  std::string activations = "f32";
  auto act = [&] {
    return activations == "int8" ? dsk::quant::activations::int8 : dsk::quant::activations::f32;
  };
  return dsk_v2::run_cli(
      argc, argv,
      {.name = "dsk_lite",
       .description = "dsk_lite: DeepSeek-Lite (int4, shared blocks) inference with dsk kernels (host)",
       .checkpoint = "a Lite checkpoint made by dsk_lite_convert",
       .presets = {"tiny", "lite_card"},
       .preset_help = "without --model: the preset run on random int4 weights (lite_card: the 2.8 GB edge "
                      "card, written to a temporary file first)",
       .load =
           [&](const std::filesystem::path& dir, dsk_v2::weight_format fmt, dsk_v2::load_options opts) {
             checkpoint_only(fmt);
             return dsk_lite::load(dir, opts, act());
           },
       .random =
           [&](const std::string& preset, int layers, dsk_v2::weight_format fmt, dsk_v2::load_options) {
             checkpoint_only(fmt);
             dsk_lite::preset p = preset == "lite_card" ? dsk_lite::lite_card : dsk_lite::tiny;
             if (layers > 0) p.num_hidden_layers = layers;  // logical layers: a multiple of share_repeats
             return dsk_lite::random(p, act());
           },
       .add_options =
           [&](CLI::App& app) {
             app.add_option(
                    "--activations", activations,
                    "activations of the int4 products: f32 (weight-only; the QAT-equivalent numerics) or "
                    "int8 per token (W4A8: u8 x s8 multiply-adds, faster; logits change slightly)")
                 ->capture_default_str()
                 ->check(CLI::IsMember({"f32", "int8"}));
           },
       .expert_parallel = {}});
}
