// Umbrella header for dsk's CUDA backend: the device runtime layer (buffers, streams, events, copies, launch)
// and, when included by a host compiler instead of nvcc, the SIMT emulation that runs the same kernels on the
// CPU. Family kernels: dsk/<family>/cuda/*.cuh.
#pragma once

#include "dsk/cuda/convert.cuh"
#include "dsk/cuda/error.cuh"
#include "dsk/cuda/launch.cuh"
#include "dsk/cuda/memory.cuh"
#include "dsk/cuda/platform.cuh"
#include "dsk/cuda/reduce.cuh"
#include "dsk/cuda/report.cuh"
#include "dsk/cuda/stream.cuh"
