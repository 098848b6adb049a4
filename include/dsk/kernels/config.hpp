// The two build modes of dsk's runtime-format layers and common kernel configs (the fmt / asio pattern).
// Header-only (default, DSK_COMPILED_KERNELS undefined or 0): everything is inline in the headers, as before.
// Compiled (DSK_COMPILED_KERNELS=1, set by linking dsk::kernels): nn::linear / nn::swiglu_mlp members are
// only declared and the common configs listed in dsk/kernels.hpp are extern templates; dsk::kernels
// (src/kernels) holds their one definition. Host only; the symbols carry the ISA namespace (see
// docs/architecture.md).
#pragma once

#ifndef DSK_COMPILED_KERNELS
#define DSK_COMPILED_KERNELS 0
#endif

#if DSK_COMPILED_KERNELS
#define DSK_KERNEL_INLINE
#else
#define DSK_KERNEL_INLINE inline
#endif

// True where the out-of-line definitions of part X belong in this TU: every TU in header-only mode, only
// the library source that defines DSK_KERNELS_SOURCE_X to 1 in compiled mode.
#define DSK_KERNELS_DEFINE(X) (!DSK_COMPILED_KERNELS || DSK_KERNELS_SOURCE_##X)
