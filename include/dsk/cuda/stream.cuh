// Streams and events (RAII). Natively they wrap cudaStream_t / cudaEvent_t; under the SIMT emulation every
// operation is synchronous, so a stream is a token and an event records the host clock.
// Checked in tests/simt/runtime.cpp (emulation) and tests/cuda/runtime.cu (native).
#pragma once

#include <chrono>
#include <utility>

#include "dsk/cuda/error.cuh"
#include "dsk/cuda/platform.cuh"

namespace dsk::device {
DSK_CUDA_MODE_BEGIN

#if !DSK_SIMT_EMULATION
using stream_handle = cudaStream_t;
#else
using stream_handle = void*;
#endif

// An owned stream (non-blocking with respect to the legacy default stream), or a non-owning wrapper of the
// default stream (stream::default_stream()). Move-only.
class stream {
 public:
  stream() {
#if !DSK_SIMT_EMULATION
    DSK_CUDA_CHECK(cudaStreamCreateWithFlags(&h_, cudaStreamNonBlocking));
#endif
    owned_ = true;
  }
  static stream default_stream() { return stream(stream_handle{}, false); }
  // Wraps a stream created elsewhere (not destroyed by this object).
  static stream wrap(stream_handle h) { return stream(h, false); }

  stream(stream&& o) noexcept
      : h_(std::exchange(o.h_, stream_handle{})), owned_(std::exchange(o.owned_, false)) {}
  stream& operator=(stream&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, stream_handle{});
      owned_ = std::exchange(o.owned_, false);
    }
    return *this;
  }
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;
  ~stream() { reset(); }

  stream_handle get() const { return h_; }
  void synchronize() const {
#if !DSK_SIMT_EMULATION
    DSK_CUDA_CHECK(cudaStreamSynchronize(h_));
#endif
  }

 private:
  stream(stream_handle h, bool owned) : h_(h), owned_(owned) {}
  void reset() noexcept {
#if !DSK_SIMT_EMULATION
    if (owned_ && h_) cudaStreamDestroy(h_);
#endif
    h_ = stream_handle{};
    owned_ = false;
  }
  stream_handle h_{};
  bool owned_ = false;
};

// A timing event. elapsed_ms(a, b): milliseconds from a to b, both recorded and complete.
class event {
 public:
  event() {
#if !DSK_SIMT_EMULATION
    DSK_CUDA_CHECK(cudaEventCreate(&e_));
#endif
  }
  event(event&& o) noexcept : e_(std::exchange(o.e_, handle{})), t_(o.t_) {}
  event& operator=(event&& o) noexcept {
    if (this != &o) {
      destroy();
      e_ = std::exchange(o.e_, handle{});
      t_ = o.t_;
    }
    return *this;
  }
  event(const event&) = delete;
  event& operator=(const event&) = delete;
  ~event() { destroy(); }

  void record(const stream& s) {
#if !DSK_SIMT_EMULATION
    DSK_CUDA_CHECK(cudaEventRecord(e_, s.get()));
#else
    (void)s;
    t_ = std::chrono::steady_clock::now();
#endif
  }
  void synchronize() const {
#if !DSK_SIMT_EMULATION
    DSK_CUDA_CHECK(cudaEventSynchronize(e_));
#endif
  }
  friend float elapsed_ms(const event& a, const event& b) {
#if !DSK_SIMT_EMULATION
    float ms = 0;
    DSK_CUDA_CHECK(cudaEventElapsedTime(&ms, a.e_, b.e_));
    return ms;
#else
    return std::chrono::duration<float, std::milli>(b.t_ - a.t_).count();
#endif
  }

 private:
#if !DSK_SIMT_EMULATION
  using handle = cudaEvent_t;
#else
  using handle = void*;
#endif
  void destroy() noexcept {
#if !DSK_SIMT_EMULATION
    if (e_) cudaEventDestroy(e_);
#endif
    e_ = handle{};
  }
  handle e_{};
  std::chrono::steady_clock::time_point t_{};
};

// Number of usable CUDA devices (0 when there is no GPU or driver). Under the emulation: 1, the CPU.
inline int device_count() {
#if !DSK_SIMT_EMULATION
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
#else
  return 1;
#endif
}

// Blocks until all work on the current device is done.
inline void synchronize() {
#if !DSK_SIMT_EMULATION
  DSK_CUDA_CHECK(cudaDeviceSynchronize());
#endif
}

DSK_CUDA_MODE_END
}  // namespace dsk::device
