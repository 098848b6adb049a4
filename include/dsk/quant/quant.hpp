// Umbrella of the quant family: formats, quantize/dequantize, quantized GEMV/GEMM (weight-only and
// W8A8/W4A8), fake quantization, and the quantized linear layer. Host; see docs/quantization.md.
#pragma once

#include "dsk/quant/fake_quant.hpp"
#include "dsk/quant/format.hpp"
#include "dsk/quant/linear.hpp"
#include "dsk/quant/matmul.hpp"
#include "dsk/quant/quantize.hpp"
