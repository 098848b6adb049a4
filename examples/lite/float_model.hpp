// The float form of DeepSeek-Lite (tools/gen_lite_golden.py's checkpoint, or any V2-family checkpoint with
// "share_repeats" in config.json and a tied head): run by dsk_v2::model with the Lite structure (stored block
// b as layers b*r .. b*r + r - 1, the embedding as the head), weights in the chosen format. The float
// reference of the int4 model (checked against transformers in tests/models/lite.cpp).
#pragma once

#include <memory>

#include "config.hpp"

namespace dsk_lite {

// Loads the float Lite checkpoint in dir as a dsk_v2::model (weights in fmt).
inline dsk_v2::model load_float(const fs::path& dir, dsk_v2::weight_format fmt) {
  const lite_config c = read_config(dir, /*int4=*/false);
  return dsk_v2::model(c.model, std::make_shared<const dsk::io::checkpoint>(dir), fmt, {}, c.structure);
}

}  // namespace dsk_lite
