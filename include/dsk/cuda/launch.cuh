// The launch helper through which every dsk kernel is started: `<<<grid, block, smem, stream>>>` under nvcc,
// the SIMT scheduler under the emulation, with the same launch-shape checks. Checked in tests/simt and
// tests/cuda.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include "dsk/core/error.hpp"
#include "dsk/core/source_location.hpp"
#include "dsk/cuda/error.cuh"
#include "dsk/cuda/platform.cuh"
#include "dsk/cuda/stream.cuh"

namespace dsk::device {
DSK_CUDA_MODE_BEGIN

// Grid and block dimensions and dynamic shared memory in bytes.
struct launch_shape {
  dim3 grid{1, 1, 1};
  dim3 block{1, 1, 1};
  std::size_t shared_bytes = 0;
};

// The largest grid.x of a launch (grid.y and grid.z: 65535).
constexpr unsigned max_grid_x() { return 2147483647u; }

// Ceil-division for grid sizes.
constexpr unsigned blocks_for(index_t n, index_t per_block) {
  return static_cast<unsigned>((n + per_block - 1) / per_block);
}

template <class... KArgs>
class launcher {
 public:
  using kernel_t = void (*)(KArgs...);
  launcher(kernel_t k, const launch_shape& shape, const stream& s, dsk::source_location loc)
      : k_(k), shape_(shape), s_(s), loc_(loc) {}

  // Starts the kernel with these arguments (converted to the kernel's parameter types). An empty grid (a zero
  // dimension) launches nothing, so that empty tensors need no special case in the callers.
  template <class... Args>
  void operator()(Args&&... args) const {
    static_assert(sizeof...(Args) == sizeof...(KArgs),
                  "dsk::device::launch: wrong number of kernel arguments");
    static_assert(
        (std::is_trivially_copyable_v<KArgs> && ...),
        "dsk::device::launch: kernel parameters are copied to the device byte for byte: they must be "
        "trivially copyable (pass pointers / views, not owning containers)");
    if (shape_.grid.x == 0 || shape_.grid.y == 0 || shape_.grid.z == 0) return;
#if !DSK_SIMT_EMULATION
    if (shape_.shared_bytes > 48 * 1024)
      check(cudaFuncSetAttribute(k_, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(shape_.shared_bytes)),
            "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)", loc_);
    k_<<<shape_.grid, shape_.block, shape_.shared_bytes, s_.get()>>>(
        static_cast<KArgs>(std::forward<Args>(args))...);
    check(cudaGetLastError(), "kernel launch", loc_);
#else
    auto body = [&] { k_(static_cast<KArgs>(args)...); };
    try {
      simt::launch({shape_.grid, shape_.block, shape_.shared_bytes}, body);
    } catch (const simt::error& e) {
      throw simt::error(
          dsk::detail::concat(e.what(), " [launched at ", loc_.file_name(), ":", loc_.line(), "]"));
    }
#endif
  }

 private:
  kernel_t k_;
  launch_shape shape_;
  const stream& s_;
  dsk::source_location loc_;
};

// dsk::device::launch(kernel, {grid, block, smem}, stream)(args...): starts `kernel` natively or under the
// emulation. Errors (bad shape, launch failure, emulation findings) throw, naming the launch site.
template <class... KArgs>
launcher<KArgs...> launch(void (*kernel)(KArgs...), const launch_shape& shape, const stream& s,
                          dsk::source_location loc = dsk::source_location::current()) {
  return launcher<KArgs...>(kernel, shape, s, loc);
}

DSK_CUDA_MODE_END
}  // namespace dsk::device
