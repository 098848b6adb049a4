// Native tests of the device runtime layer (buffers, copies, streams, events, error conversion, launch) and
// of the emulation's known-result kernels on the real device, so that both agree on their semantics.
#include <catch2/catch.hpp>

#include <numeric>
#include <vector>

#include "dsk/cuda.cuh"

using dsk::index_t;
namespace dev = dsk::device;

namespace {
__global__ void scale_kernel(dsk::view<float, 2> x, float a) {
  const index_t i = blockIdx.x, j = threadIdx.x;
  if (i < x.extent(0) && j < x.extent(1)) x(i, j) *= a;
}

__global__ void block_sum_kernel(const float* x, index_t n, float* out) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const float s = dev::block_sum(i < n ? x[i] : 0.0f);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

__global__ void transpose_kernel(const float* in, index_t rows, index_t cols, float* out) {
  DSK_SHARED(float[32][33], tile);
  const index_t c0 = static_cast<index_t>(blockIdx.x) * 32, r0 = static_cast<index_t>(blockIdx.y) * 32;
  for (unsigned k = threadIdx.y; k < 32; k += blockDim.y) {
    const index_t r = r0 + k, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[k][threadIdx.x] = in[r * cols + c];
  }
  __syncthreads();
  for (unsigned k = threadIdx.y; k < 32; k += blockDim.y) {
    const index_t r = c0 + k, c = r0 + threadIdx.x;
    if (r < cols && c < rows) out[r * rows + c] = tile[threadIdx.x][k];
  }
}

__global__ void reverse_kernel(const float* in, float* out) {
  DSK_DYNAMIC_SHARED(float, buf, 0);
  const unsigned n = blockDim.x, t = threadIdx.x;
  buf[t] = in[blockIdx.x * n + t];
  __syncthreads();
  out[blockIdx.x * n + t] = buf[n - 1 - t];
}
}  // namespace

TEST_CASE("cuda native: buffers, upload, kernel on a device view, download, events", "[gpu][runtime]") {
  dsk::tensor<float, 2> h(3, 5);
  std::iota(h.data(), h.data() + h.size(), 1.0f);
  dev::stream s;
  dev::tensor<float, 2> d = dev::upload(h, s);
  dev::event e0, e1;
  e0.record(s);
  dev::launch(scale_kernel, {dim3(3), dim3(32)}, s)(d.view(), 2.0f);
  e1.record(s);
  e1.synchronize();
  CHECK(elapsed_ms(e0, e1) >= 0.0f);
  const dsk::tensor<float, 2> back = dev::download(d, s);
  for (index_t i = 0; i < h.size(); ++i) CHECK(back.data()[i] == 2.0f * h.data()[i]);
  dev::pinned_buffer<float> p(8);
  CHECK(p.data() != nullptr);
}

TEST_CASE("cuda native: strided rank-2 copies", "[gpu][runtime]") {
  dsk::tensor<float, 2> h(4, 6);
  std::iota(h.data(), h.data() + h.size(), 0.0f);
  dev::tensor<float, 2> d(4, 3);
  const dev::stream s = dev::stream::default_stream();
  dev::copy(d.view(), dsk::as_const(h.view().slice(1, 2, 5)), dev::copy_kind::host_to_device, s);
  dsk::tensor<float, 2> out(4, 6);
  dev::copy(out.view().slice(1, 0, 3), d.cview(), dev::copy_kind::device_to_host, s);
  s.synchronize();
  for (index_t i = 0; i < 4; ++i)
    for (index_t j = 0; j < 3; ++j) CHECK(out(i, j) == h(i, j + 2));
}

TEST_CASE("cuda native: CUDA errors become dsk::device::error with the call and the code", "[gpu][runtime]") {
  try {
    dev::buffer<float> huge(index_t{1} << 50);  // 4 PiB
    FAIL("cudaMalloc of 4 PiB succeeded");
  } catch (const dev::error& e) {
    CHECK(e.code() == static_cast<int>(cudaErrorMemoryAllocation));
    CHECK_THAT(e.what(), Catch::Contains("cudaMalloc") && Catch::Contains("cudaErrorMemoryAllocation"));
  }
  std::vector<float> out(2048);
  dev::buffer<float> d(2048);
  const dev::stream s = dev::stream::default_stream();
  CHECK_THROWS_AS(dev::launch(reverse_kernel, {dim3(1), dim3(2048), 2048 * 4}, s)(d.data(), d.data()),
                  dev::error);
}

TEST_CASE("cuda native: the emulation's known-result kernels", "[gpu][runtime]") {
  const dev::stream s = dev::stream::default_stream();
  const index_t n = 1000;
  dsk::tensor<float, 1> x(n);
  for (index_t i = 0; i < n; ++i) x(i) = static_cast<float>((i * 7) % 13) - 6.0f;
  const auto dx = dev::upload(x, s);
  dev::tensor<float, 1> dsum(4);
  dev::launch(block_sum_kernel, {dim3(4), dim3(256)}, s)(dx.data(), n, dsum.data());
  const auto sums = dev::download(dsum, s);
  for (index_t b = 0; b < 4; ++b) {
    float want = 0;
    for (index_t i = b * 256; i < std::min<index_t>(n, (b + 1) * 256); ++i) want += x(i);
    CHECK(sums(b) == want);
  }
  const index_t rows = 70, cols = 45;
  dsk::tensor<float, 1> m(rows * cols);
  std::iota(m.data(), m.data() + m.size(), 0.0f);
  const auto dm = dev::upload(m, s);
  dev::tensor<float, 1> dt(rows * cols);
  dev::launch(transpose_kernel, {dim3(dev::blocks_for(cols, 32), dev::blocks_for(rows, 32)), dim3(32, 8)}, s)(
      dm.data(), rows, cols, dt.data());
  const auto t = dev::download(dt, s);
  for (index_t r = 0; r < rows; ++r)
    for (index_t c = 0; c < cols; ++c) REQUIRE(t(c * rows + r) == m(r * cols + c));
  dev::tensor<float, 1> dr(3 * 96);
  dsk::tensor<float, 1> in(3 * 96);
  std::iota(in.data(), in.data() + in.size(), 0.0f);
  const auto din = dev::upload(in, s);
  dev::launch(reverse_kernel, {dim3(3), dim3(96), 96 * sizeof(float)}, s)(din.data(), dr.data());
  const auto r = dev::download(dr, s);
  for (index_t b = 0; b < 3; ++b)
    for (index_t i = 0; i < 96; ++i) CHECK(r(b * 96 + i) == in(b * 96 + 95 - i));
}
