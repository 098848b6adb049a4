// dsk::kernels: the one definition of dsk::io's entry points (safetensors_file / checkpoint opening,
// safetensors_writer::write, v2_config::parse / load, tokenizer::parse / load / encode / decode) for compiled
// mode, so that a program's TUs do not each generate the JSON parsing, header validation and BPE code.
#define DSK_KERNELS_SOURCE_IO 1
#include "dsk/io/io.hpp"
#include "dsk/io/safetensors_writer.hpp"
