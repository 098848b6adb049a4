// Tests of the SIMT emulation (dsk/cuda/simt.hpp) with small kernels whose results are known in closed form,
// and kernels with deliberate errors (barrier divergence, bad warp masks, shared memory out of bounds) that
// must be reported instead of hanging or passing silently.
#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>
#include <vector>

#include "dsk/cuda.cuh"

using dsk::index_t;
namespace dev = dsk::device;

namespace {

template <class... K, class... A>
void run(void (*k)(K...), dim3 grid, dim3 block, std::size_t smem, A&&... args) {
  dev::stream s = dev::stream::default_stream();
  dev::launch(k, {grid, block, smem}, s)(std::forward<A>(args)...);
}

// ---- known-result kernels
// --------------------------------------------------------------------------------------
__global__ void block_sum_kernel(const float* x, index_t n, float* out) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const float s = dsk::device::block_sum(i < n ? x[i] : 0.0f);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

__global__ void block_max_kernel(const float* x, index_t n, float* out) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const float m = dsk::device::block_max(i < n ? x[i] : -INFINITY);
  if (threadIdx.x == 0) out[blockIdx.x] = m;
}

// Inclusive prefix sum over each warp with __shfl_up_sync (Hillis-Steele).
__global__ void warp_scan_kernel(const int* x, int* out) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x & 31u;
  int v = x[i];
  for (unsigned d = 1; d < 32; d <<= 1) {
    const int up = __shfl_up_sync(0xffffffffu, v, d);
    if (lane >= d) v += up;
  }
  out[i] = v;
}

// out = in^T through a padded shared tile, 32x8 threads per 32x32 tile (the classic transpose).
__global__ void transpose_kernel(const float* in, index_t rows, index_t cols, float* out) {
  DSK_SHARED(float[32][33], tile);
  const index_t c0 = static_cast<index_t>(blockIdx.x) * 32, r0 = static_cast<index_t>(blockIdx.y) * 32;
  for (unsigned k = threadIdx.y; k < 32; k += blockDim.y) {
    const index_t r = r0 + k, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[k][threadIdx.x] = in[r * cols + c];
  }
  __syncthreads();
  for (unsigned k = threadIdx.y; k < 32; k += blockDim.y) {
    const index_t r = c0 + k, c = r0 + threadIdx.x;  // out is cols x rows
    if (r < cols && c < rows) out[r * rows + c] = tile[threadIdx.x][k];
  }
}

// Reverses each block's slice through dynamic shared memory.
__global__ void reverse_kernel(const float* in, float* out) {
  DSK_DYNAMIC_SHARED(float, buf, 0);
  const unsigned n = blockDim.x, t = threadIdx.x;
  buf[t] = in[blockIdx.x * n + t];
  __syncthreads();
  out[blockIdx.x * n + t] = buf[n - 1 - t];
}

__global__ void ids_kernel(unsigned* out) {
  const unsigned bx = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned tpb = blockDim.x * blockDim.y * blockDim.z;
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  out[bx * tpb + t] = bx * 10000u + t;
}

__global__ void atomics_kernel(int* count, float* fsum, unsigned* maxv) {
  atomicAdd(count, 1);
  atomicAdd(fsum, 0.5f);
  atomicMax(maxv, blockIdx.x * blockDim.x + threadIdx.x);
}

__global__ void votes_kernel(unsigned* out) {
  const unsigned lane = threadIdx.x & 31u;
  const unsigned b = __ballot_sync(0xffffffffu, lane % 3 == 0);
  const int all = __all_sync(0xffffffffu, lane < 32);
  const int any = __any_sync(0xffffffffu, lane == 7);
  const int none = __any_sync(0xffffffffu, 0);
  const unsigned sum = __reduce_add_sync(0xffffffffu, lane);
  const int mn = __reduce_min_sync(0xffffffffu, static_cast<int>(lane) - 5);
  const unsigned mx = __reduce_max_sync(0xffffffffu, lane * 2u);
  if (lane == 0) {
    out[0] = b;
    out[1] = static_cast<unsigned>(all);
    out[2] = static_cast<unsigned>(any);
    out[3] = static_cast<unsigned>(none);
    out[4] = sum;
    out[5] = static_cast<unsigned>(mn);
    out[6] = mx;
  }
}

// Two independent half-warp groups, each with its own mask; width-16 segments.
__global__ void half_warp_kernel(int* out) {
  const unsigned lane = threadIdx.x & 31u;
  const unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  int v = static_cast<int>(lane);
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(mask, v, o, 16);
  out[lane] = v;
  out[32 + lane] = __shfl_sync(0xffffffffu, static_cast<int>(lane) * 3, 5, 16);
  out[64 + lane] = __shfl_down_sync(0xffffffffu, static_cast<int>(lane), 4, 16);
}

// A partial last warp: threads exist only for lanes 0..15 of warp 1 (blockDim 48); __activemask names them.
__global__ void partial_warp_kernel(unsigned* out) {
  const unsigned m = __activemask();
  const unsigned v = __reduce_add_sync(m, 1u);
  out[threadIdx.x] = v * 100000u + (m == 0xffffffffu ? 1u : (m == 0xffffu ? 2u : 0u));
}

__global__ void barrier_votes_kernel(int* out) {
  const int even = static_cast<int>(threadIdx.x % 2 == 0);
  const int count = __syncthreads_count(even);
  const int all = __syncthreads_and(threadIdx.x < 1000);
  const int any = __syncthreads_or(threadIdx.x == 99);
  const int none = __syncthreads_or(0);
  if (threadIdx.x == 0) {
    out[0] = count;
    out[1] = all;
    out[2] = any;
    out[3] = none;
  }
}

// ---- kernels with deliberate errors
// ----------------------------------------------------------------------------
__global__ void divergent_barrier_kernel(float* out) {
  if (threadIdx.x < 16) return;  // these threads never reach the barrier
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

__global__ void two_barriers_kernel(float* out) {
  if (threadIdx.x & 1u)
    __syncthreads();
  else
    __syncthreads();
  out[threadIdx.x] = 1.0f;
}

__global__ void mask_excludes_self_kernel(float* out) {
  out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, 1.0f, 1);  // lanes 16..31 are not in the mask
}

__global__ void read_outside_mask_kernel(float* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, 1.0f, 8);  // lane 8+ reads lane 16+
}

__global__ void warp_vs_barrier_kernel(float* out) {
  if (threadIdx.x == 0)
    out[0] = __shfl_sync(0xffffffffu, 1.0f, 0);
  else
    __syncthreads();
}

__global__ void shared_oob_kernel(float* out) {
  DSK_SHARED(float[64], s);
  s[threadIdx.x] = 1.0f;  // launched with 128 threads
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x];
}

__global__ void dynamic_oob_kernel(float* out) {
  DSK_DYNAMIC_SHARED(float, buf, 0);
  buf[threadIdx.x + 1] = 2.0f;  // the last thread writes one past the end
  out[threadIdx.x] = 0.0f;
}

__global__ void uninitialised_shared_kernel(float* out) {
  DSK_SHARED(float[32], s);
  if (threadIdx.x < 16) s[threadIdx.x] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x];
}

}  // namespace

TEST_CASE("simt: block reductions over a grid with a partial last block", "[simt]") {
  for (const index_t n : {1, 31, 256, 1000}) {
    for (const unsigned threads : {32u, 128u, 256u}) {
      std::vector<float> x(static_cast<std::size_t>(n));
      for (index_t i = 0; i < n; ++i)
        x[static_cast<std::size_t>(i)] = static_cast<float>((i * 7) % 13) - 6.0f;
      const unsigned blocks = dev::blocks_for(n, threads);
      std::vector<float> sums(blocks), maxes(blocks);
      run(block_sum_kernel, dim3(blocks), dim3(threads), 0, x.data(), n, sums.data());
      run(block_max_kernel, dim3(blocks), dim3(threads), 0, x.data(), n, maxes.data());
      for (unsigned b = 0; b < blocks; ++b) {
        float want = 0, want_max = -INFINITY;
        for (index_t i = b * threads; i < std::min<index_t>(n, (b + 1) * threads); ++i) {
          want += x[static_cast<std::size_t>(i)];  // small integers: every order gives the exact sum
          want_max = std::max(want_max, x[static_cast<std::size_t>(i)]);
        }
        CHECK(sums[b] == want);
        CHECK(maxes[b] == want_max);
      }
    }
  }
}

TEST_CASE("simt: warp inclusive scan", "[simt]") {
  std::vector<int> x(96), out(96);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<int>(i % 5) + 1;
  run(warp_scan_kernel, dim3(3), dim3(32), 0, x.data(), out.data());
  for (std::size_t w = 0; w < 3; ++w) {
    int acc = 0;
    for (std::size_t l = 0; l < 32; ++l) {
      acc += x[w * 32 + l];
      CHECK(out[w * 32 + l] == acc);
    }
  }
}

TEST_CASE("simt: shared-memory tiled transpose", "[simt]") {
  for (const auto& [rows, cols] :
       std::vector<std::pair<index_t, index_t>>{{1, 1}, {32, 32}, {70, 45}, {3, 100}}) {
    std::vector<float> in(static_cast<std::size_t>(rows * cols)), out(in.size(), -1.0f);
    std::iota(in.begin(), in.end(), 0.0f);
    run(transpose_kernel, dim3(dev::blocks_for(cols, 32), dev::blocks_for(rows, 32)), dim3(32, 8), 0,
        in.data(), rows, cols, out.data());
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < cols; ++c)
        REQUIRE(out[static_cast<std::size_t>(c * rows + r)] == in[static_cast<std::size_t>(r * cols + c)]);
  }
}

TEST_CASE("simt: dynamic shared memory", "[simt]") {
  std::vector<float> in(3 * 96), out(in.size());
  std::iota(in.begin(), in.end(), 0.0f);
  run(reverse_kernel, dim3(3), dim3(96), 96 * sizeof(float), in.data(), out.data());
  for (std::size_t b = 0; b < 3; ++b)
    for (std::size_t t = 0; t < 96; ++t) CHECK(out[b * 96 + t] == in[b * 96 + 95 - t]);
}

TEST_CASE("simt: built-in index variables in three dimensions", "[simt]") {
  const dim3 grid(3, 2, 2), block(5, 3, 2);
  const unsigned blocks = 12, tpb = 30;
  std::vector<unsigned> out(blocks * tpb, 0xffffffffu);
  run(ids_kernel, grid, block, 0, out.data());
  for (unsigned b = 0; b < blocks; ++b)
    for (unsigned t = 0; t < tpb; ++t) CHECK(out[b * tpb + t] == b * 10000u + t);
}

TEST_CASE("simt: atomics across blocks running in parallel", "[simt]") {
  int count = 0;
  float fsum = 0;
  unsigned maxv = 0;
  dsk::thread_count_scope threads(2);
  run(atomics_kernel, dim3(16), dim3(64), 0, &count, &fsum, &maxv);
  CHECK(count == 16 * 64);
  CHECK(fsum == 0.5f * 16 * 64);  // multiples of 0.5 below 2^24: exact in any order
  CHECK(maxv == 16 * 64 - 1);
}

TEST_CASE("simt: votes and warp reductions", "[simt]") {
  std::vector<unsigned> out(7);
  run(votes_kernel, dim3(1), dim3(32), 0, out.data());
  unsigned ballot = 0;
  for (unsigned l = 0; l < 32; l += 3) ballot |= 1u << l;
  CHECK(out[0] == ballot);
  CHECK(out[1] == 1u);
  CHECK(out[2] == 1u);
  CHECK(out[3] == 0u);
  CHECK(out[4] == 31u * 32u / 2u);
  CHECK(static_cast<int>(out[5]) == -5);
  CHECK(out[6] == 62u);
}

TEST_CASE("simt: shuffles with sub-warp masks and widths", "[simt]") {
  std::vector<int> out(96);
  run(half_warp_kernel, dim3(1), dim3(32), 0, out.data());
  for (int l = 0; l < 32; ++l) {
    CHECK(out[static_cast<std::size_t>(l)] == (l < 16 ? 120 : 16 * 16 + 120));  // sum of the lane's half
    CHECK(out[32 + static_cast<std::size_t>(l)] == ((l & ~15) + 5) * 3);
    CHECK(out[64 + static_cast<std::size_t>(l)] == ((l & 15) + 4 < 16 ? l + 4 : l));
  }
}

TEST_CASE("simt: a partial last warp", "[simt]") {
  std::vector<unsigned> out(48);
  run(partial_warp_kernel, dim3(1), dim3(48), 0, out.data());
  for (unsigned t = 0; t < 48; ++t) CHECK(out[t] == (t < 32 ? 32u * 100000u + 1u : 16u * 100000u + 2u));
}

TEST_CASE("simt: barriers with predicates", "[simt]") {
  std::vector<int> out(4, -1);
  run(barrier_votes_kernel, dim3(2), dim3(100), 0, out.data());
  CHECK(out[0] == 50);
  CHECK(out[1] == 1);
  CHECK(out[2] == 1);
  CHECK(out[3] == 0);
}

TEST_CASE("simt: misuse of the block reduction helper is reported", "[simt]") {
  // block_sum needs whole warps: with 48 threads, lanes 0..15 of warp 1 read the missing lanes 16..31.
  std::vector<float> x(48, 1.0f), out(1);
  CHECK_THROWS_WITH(run(block_sum_kernel, dim3(1), dim3(48), 0, x.data(), index_t{48}, out.data()),
                    Catch::Contains("warp 1") && Catch::Contains("does not take part"));
}

TEST_CASE("simt: barrier divergence is reported", "[simt]") {
  std::vector<float> out(64);
  CHECK_THROWS_WITH(run(divergent_barrier_kernel, dim3(2), dim3(64), 0, out.data()),
                    Catch::Contains("barrier divergence") && Catch::Contains("exited without reaching it"));
  CHECK_THROWS_WITH(run(two_barriers_kernel, dim3(1), dim3(64), 0, out.data()),
                    Catch::Contains("different __syncthreads"));
  // The scheduler recovers: the next launch on the same threads runs normally.
  std::vector<int> x(32, 1), s(32);
  run(warp_scan_kernel, dim3(1), dim3(32), 0, x.data(), s.data());
  CHECK(s[31] == 32);
}

TEST_CASE("simt: bad warp masks are reported", "[simt]") {
  std::vector<float> out(32);
  CHECK_THROWS_WITH(run(mask_excludes_self_kernel, dim3(1), dim3(32), 0, out.data()),
                    Catch::Contains("excludes the calling lane"));
  CHECK_THROWS_WITH(run(read_outside_mask_kernel, dim3(1), dim3(32), 0, out.data()),
                    Catch::Contains("does not take part"));
  CHECK_THROWS_WITH(run(warp_vs_barrier_kernel, dim3(1), dim3(32), 0, out.data()),
                    Catch::Contains("deadlock"));
}

TEST_CASE("simt: shared memory bounds and poisoning (checked mode)", "[simt]") {
  std::vector<float> out(128);
  CHECK_THROWS_WITH(run(shared_oob_kernel, dim3(1), dim3(128), 0, out.data()),
                    Catch::Contains("shared memory 's'") && Catch::Contains("out of bounds [0, 64)"));
  CHECK_THROWS_WITH(
      run(dynamic_oob_kernel, dim3(1), dim3(32), 32 * sizeof(float), out.data()),
      Catch::Contains("shared memory 'buf'") && Catch::Contains("index 32 out of bounds [0, 32)"));
  run(uninitialised_shared_kernel, dim3(1), dim3(32), 0, out.data());
  for (int t = 0; t < 32; ++t) {
    if (t < 16)
      CHECK(out[static_cast<std::size_t>(t)] == 1.0f);
    else
      CHECK(std::isnan(out[static_cast<std::size_t>(t)]));
  }
}

TEST_CASE("simt: launch shapes are checked", "[simt]") {
  std::vector<float> out(2048);
  CHECK_THROWS_WITH(run(divergent_barrier_kernel, dim3(1), dim3(2048), 0, out.data()),
                    Catch::Contains("argument 'block'"));
  CHECK_THROWS_WITH(run(divergent_barrier_kernel, dim3(1), dim3(32, 1, 65), 0, out.data()),
                    Catch::Contains("argument 'block'"));
  CHECK_THROWS_WITH(run(reverse_kernel, dim3(1), dim3(32), 300 * 1024, out.data(), out.data()),
                    Catch::Contains("argument 'shared_bytes'"));
  CHECK_NOTHROW(run(divergent_barrier_kernel, dim3(0), dim3(32), 0, out.data()));  // empty grid: nothing runs
  CHECK_THROWS_WITH(__syncthreads(), Catch::Contains("outside a kernel"));
}
