// Reporting bad data found inside a kernel (a token id outside the vocabulary, a position outside the cache,
// a non-finite weight): kernels cannot throw, so they record the smallest offending index in device memory
// and the entry point throws dsk::error after reading it back (this synchronises the stream). Checked through
// the kernels' tests.
#pragma once

#include <climits>
#include <optional>

#include "dsk/cuda/memory.cuh"
#include "dsk/cuda/platform.cuh"
#include "dsk/cuda/stream.cuh"

namespace dsk::device {
DSK_CUDA_MODE_BEGIN

// Kernel side: remember index i as bad (the smallest one wins, so the report is deterministic).
DSK_DEVICE_INLINE void report_index(long long* slot, long long i) { atomicMin(slot, i); }

// Host side: one slot in device memory, cleared on construction (enqueued on s).
class index_report {
 public:
  explicit index_report(const stream& s) : slot_(1) {
    copy(slot_.data(), &none, 1, copy_kind::host_to_device, s);
    s.synchronize();  // `none` is pageable host memory
  }
  long long* slot() const { return slot_.data(); }
  // Synchronises s; the smallest reported index, if any.
  std::optional<long long> first(const stream& s) const {
    long long v = none;
    copy(&v, static_cast<const long long*>(slot_.data()), 1, copy_kind::device_to_host, s);
    s.synchronize();
    if (v == none) return std::nullopt;
    return v;
  }

 private:
  static constexpr long long none = LLONG_MAX;
  buffer<long long> slot_;
};

DSK_CUDA_MODE_END
}  // namespace dsk::device
