// Tests of the device runtime layer (dsk/cuda/memory.cuh, stream.cuh, launch.cuh) under the SIMT emulation:
// buffers, device tensors and their views, host<->device copies incl. strided rank-2, events, launch errors.
#include <catch2/catch.hpp>

#include <numeric>

#include "dsk/cuda.cuh"

using dsk::index_t;
namespace dev = dsk::device;

namespace {
__global__ void scale_kernel(dsk::view<float, 2> x, float a) {
  const index_t i = blockIdx.x, j = threadIdx.x;
  if (i < x.extent(0) && j < x.extent(1)) x(i, j) *= a;
}
}  // namespace

TEST_CASE("device runtime: buffers and tensors", "[simt][runtime]") {
  dev::buffer<float> empty;
  CHECK(empty.size() == 0);
  CHECK(empty.data() == nullptr);
  dev::buffer<float> b(100);
  CHECK(b.size() == 100);
  CHECK(b.bytes() == 400);
  dev::buffer<float> moved = std::move(b);
  CHECK(moved.size() == 100);
  CHECK(b.data() == nullptr);
  CHECK_THROWS_WITH(dev::buffer<float>(-1), Catch::Contains("argument 'count'"));
  dev::pinned_buffer<int> p(4);
  p[3] = 7;
  CHECK(p[3] == 7);
  CHECK(dev::device_count() == 1);
}

TEST_CASE("device runtime: upload, kernel on a device view, download", "[simt][runtime]") {
  dsk::tensor<float, 2> h(3, 5);
  std::iota(h.data(), h.data() + h.size(), 1.0f);
  dev::stream s;
  dev::tensor<float, 2> d = dev::upload(h, s);
  CHECK(d.extent(0) == 3);
  CHECK(d.extent(1) == 5);
  dev::event e0, e1;
  e0.record(s);
  dev::launch(scale_kernel, {dim3(3), dim3(32)}, s)(d.view(), 2.0f);
  e1.record(s);
  e1.synchronize();
  CHECK(elapsed_ms(e0, e1) >= 0.0f);
  const dsk::tensor<float, 2> back = dev::download(d, s);
  for (index_t i = 0; i < h.size(); ++i) CHECK(back.data()[i] == 2.0f * h.data()[i]);
}

TEST_CASE("device runtime: strided rank-2 copies", "[simt][runtime]") {
  dsk::tensor<float, 2> h(4, 6);
  std::iota(h.data(), h.data() + h.size(), 0.0f);
  dev::tensor<float, 2> d(4, 3);
  const dev::stream s = dev::stream::default_stream();
  // Columns 2..4 of the host matrix (row stride 6) into a dense 4x3 device tensor, and back into columns
  // 0..2.
  dev::copy(d.view(), dsk::as_const(h.view().slice(1, 2, 5)), dev::copy_kind::host_to_device, s);
  dsk::tensor<float, 2> out(4, 6);
  dev::copy(out.view().slice(1, 0, 3), d.cview(), dev::copy_kind::device_to_host, s);
  s.synchronize();
  for (index_t i = 0; i < 4; ++i)
    for (index_t j = 0; j < 3; ++j) CHECK(out(i, j) == h(i, j + 2));
  CHECK_THROWS_WITH(dev::copy(d.view(), h.cview(), dev::copy_kind::host_to_device, s),
                    Catch::Contains("dsk::device::copy") && Catch::Contains("argument 'dst'"));
}
