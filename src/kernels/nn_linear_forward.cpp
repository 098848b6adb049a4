// dsk::kernels: the one definition of nn::linear::forward and nn::swiglu_mlp::forward (gemm over f32 / bf16 /
// f16 weights, quant::matmul and matmul_a8 over the ten compiled formats) for compiled mode.
#define DSK_KERNELS_SOURCE_NN_LINEAR_FORWARD 1
#include "dsk/nn/linear.hpp"
