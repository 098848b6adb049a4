// dsk::kernels: the one definition of nn::linear's and nn::swiglu_mlp's constructors (packing for gemm in
// f32 / bf16 / f16, quantizing into the ten compiled quant formats) for compiled mode.
#define DSK_KERNELS_SOURCE_NN_LINEAR_BUILD 1
#include "dsk/nn/linear.hpp"
