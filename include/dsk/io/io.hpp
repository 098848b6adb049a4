// Umbrella of dsk::io: memory-mapped safetensors (one file or sharded; FP8 block-scaled weights), the
// safetensors writer, DeepSeek-V2 / V3 config.json and byte-level BPE tokenizer.json. Host only; needs
// nlohmann_json and PCRE2 (CMake: dsk::io). Checked in tests/io.
#pragma once

#include "dsk/io/config.hpp"
#include "dsk/io/fp8.hpp"
#include "dsk/io/mapped_file.hpp"
#include "dsk/io/safetensors.hpp"
#include "dsk/io/safetensors_writer.hpp"
#include "dsk/io/tokenizer.hpp"
