// dsk_v2: runs a DeepSeek-V2-family model (V2-Lite, V2) from its checkpoint directory with dsk kernels on the
// host (the command line is run.hpp's, shared with dsk_lite). Without --model: the tiny preset on built-in
// random weights.
#include "run.hpp"

int main(int argc, char** argv) {
  return dsk_v2::run_cli(
      argc, argv,
      {.name = "dsk_v2",
       .description = "dsk_v2: DeepSeek-V2 / V2-Lite inference with dsk kernels (host)",
       .checkpoint = "a DeepSeek-V2-Lite checkpoint",
       .presets = {"tiny", "v2-lite"},
       .preset_help = "without --model: the preset run on random weights (v2-lite: real V2-Lite widths, for "
                      "speed measurements; use --layers to keep it small)",
       .load = [](const std::filesystem::path& dir, dsk_v2::weight_format fmt,
                  dsk_v2::load_options opts) { return dsk_v2::model::load(dir, fmt, opts); },
       .random =
           [](const std::string& preset, int layers, dsk_v2::weight_format fmt) {
             dsk_v2::preset p = preset == "v2-lite" ? dsk_v2::v2_lite : dsk_v2::tiny;
             if (layers > 0) p.num_hidden_layers = layers;
             return dsk_v2::model::random(p, fmt);
           },
       .add_options = {}});
}
