// bench_moe_ep: expert-parallel dispatch + combine (moe::ep_communicator) at DeepSeek-V2-Lite width (hidden
// 2048, 64 routed experts, top-6, intermediate 1408) between the ranks of an mpirun job on this machine
// (Open MPI's shared-memory transport), against a memcpy of the same bytes in the same processes.
//   mpirun -np 2 bench_moe_ep --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Every rank holds T tokens routed uniformly (6 distinct experts each, a new routing every iteration of 4).
// Rows (rank 0 prints; the time of an iteration is the slowest rank's, each timed between barriers):
//   ep/exchange/R<r>/T<t>   dispatch + combine. GB/s: the payload bytes all ranks send (dispatch rows, ids
//   and
//                           weights; combine rows; those a rank sends itself included) per second; x_memcpy:
//                           this row's time over the memcpy row's (the exchange costs x_memcpy memcpys).
//   roof/memcpy/R<r>/T<t>   every rank copies the bytes it sends in the exchange, once, buffer to buffer.
//   ep/layer/R<r>/T1        one decode step of the routed-expert part of a V2-Lite-width layer split over the
//                           ranks: dispatch, the local experts (bf16 weights, 64 / r experts per rank),
//                           combine. exchange_us / compute_us: the split of its time (medians over the
//                           iterations). The shared experts and attention are replicated and not included.
// Threads per rank: the hardware's divided by the ranks (DSK_NUM_THREADS overrides). Iteration counts are
// fixed (every rank must run the same collectives).
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dsk/moe/expert_ffn.hpp"
#include "dsk/moe/expert_parallel.hpp"
#include "filled.hpp"

namespace {
using namespace dsk;
using namespace dsk::moe;

constexpr index_t H = 2048, E = 64, K = 6, I = 1408;
constexpr int routings = 4;

int rank_ = 0, ranks_ = 1;

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double slowest(double seconds) {
  double m = 0;
  MPI_Allreduce(&seconds, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return m;
}
double sum_over_ranks(double v) {
  double s = 0;
  MPI_Allreduce(&v, &s, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  return s;
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

std::unique_ptr<ep_communicator> communicator_;  // made after MPI_Init, destroyed before MPI_Finalize
ep_communicator& communicator() { return *communicator_; }

// T tokens of this rank: rows in [-1, 1), 6 distinct experts each, weights 1/6.
struct batch {
  tensor<float, 2> x, w;
  tensor<expert_id, 2> idx;
  batch(index_t T, unsigned seed) : x(T, H), w(T, K), idx(T, K) {
    std::mt19937 g(seed * 7919u + static_cast<unsigned>(rank_));
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (index_t i = 0; i < x.size(); ++i) x.data()[i] = u(g);
    std::vector<expert_id> perm(E);
    for (index_t t = 0; t < T; ++t) {
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), g);
      std::sort(perm.begin(), perm.begin() + K);
      for (index_t k = 0; k < K; ++k) {
        idx(t, k) = perm[k];
        w(t, k) = 1.0f / K;
      }
    }
  }
};

// The payload bytes this rank sends in one dispatch + combine.
double sent_bytes(const ep_handle& h) {
  const double rows = static_cast<double>(h.send_token.size()), back = static_cast<double>(h.back_row.size());
  return rows * (H * sizeof(float) + K * (sizeof(expert_id) + sizeof(float))) + back * H * sizeof(float);
}

std::vector<double> memcpy_seconds;  // by T, measured by the roof row (registered before the exchange row)

void bench_memcpy(benchmark::State& st, index_t T) {
  auto& ep = communicator();
  batch b(T, 1);
  ep_dispatched d;
  ep.dispatch(b.x, b.idx, b.w, d);
  const auto n = static_cast<std::size_t>(sent_bytes(d.handle));
  std::vector<std::byte> src(n, std::byte{1}), dst(n);
  std::vector<double> times;
  for (auto _ : st) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = now();
    std::memcpy(dst.data(), src.data(), n);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
    const double dt = slowest(now() - t0);
    st.SetIterationTime(dt);
    times.push_back(dt);
  }
  memcpy_seconds.resize(static_cast<std::size_t>(T) + 1);
  memcpy_seconds[static_cast<std::size_t>(T)] = median(times);
  st.counters["GB/s"] = benchmark::Counter(sum_over_ranks(static_cast<double>(n)) * 1e-9,
                                           benchmark::Counter::kIsIterationInvariantRate);
}

void bench_exchange(benchmark::State& st, index_t T) {
  auto& ep = communicator();
  std::vector<batch> bs;
  for (int i = 0; i < routings; ++i) bs.emplace_back(T, 10u + static_cast<unsigned>(i));
  std::vector<ep_dispatched> ds(routings);
  std::vector<tensor<float, 2>> ys;  // stand-ins for the local experts' outputs
  tensor<float, 2> y(T, H);
  double bytes = 0;
  for (int i = 0; i < routings; ++i) {
    ep.dispatch(bs[i].x, bs[i].idx, bs[i].w, ds[i]);
    ys.emplace_back(ds[i].handle.local.rows(), H);
    bytes += sent_bytes(ds[i].handle) / routings;
  }
  std::vector<double> times;
  int i = 0;
  for (auto _ : st) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = now();
    ep.dispatch(bs[i].x, bs[i].idx, bs[i].w, ds[i]);
    ep.combine(ys[i], ds[i].handle, bs[i].w, y);
    const double dt = slowest(now() - t0);
    st.SetIterationTime(dt);
    times.push_back(dt);
    i = (i + 1) % routings;
  }
  st.counters["GB/s"] =
      benchmark::Counter(sum_over_ranks(bytes) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (static_cast<std::size_t>(T) < memcpy_seconds.size() && memcpy_seconds[static_cast<std::size_t>(T)] > 0)
    st.counters["x_memcpy"] = median(times) / memcpy_seconds[static_cast<std::size_t>(T)];
}

// bf16 weights of this rank's experts, deterministic (the values do not matter for the time).
struct local_experts {
  tensor<bf16, 3> g, u, d;
  dense_experts<bf16> bank;
  explicit local_experts(index_t EL)
      : g(dsk_bench::filled<bf16>(EL, I, H, 1)),
        u(dsk_bench::filled<bf16>(EL, I, H, 2)),
        d(dsk_bench::filled<bf16>(EL, H, I, 3)),
        bank(g.cview(), u.cview(), d.cview()) {}
};

void bench_layer(benchmark::State& st) {
  auto& ep = communicator();
  const index_t T = 1;
  local_experts w(ep.local_experts());
  std::vector<batch> bs;
  for (int i = 0; i < routings; ++i) bs.emplace_back(T, 20u + static_cast<unsigned>(i));
  ep_dispatched d;
  tensor<float, 2> xs, hbuf, ys, y(T, H);
  std::vector<double> exchange, compute;
  int i = 0;
  for (auto _ : st) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = now();
    ep.dispatch(bs[i].x, bs[i].idx, bs[i].w, d);
    const double t1 = now();
    const index_t rows = d.handle.local.rows();
    if (xs.extent(0) != rows) {
      xs = tensor<float, 2>(rows, H);
      hbuf = tensor<float, 2>(rows, I);
      ys = tensor<float, 2>(rows, H);
    }
    dispatch_tokens(d.recv_x, d.handle.local, xs);
    grouped_swiglu(xs, d.handle.local, w.bank, hbuf, ys);
    const double t2 = now();
    ep.combine(ys, d.handle, bs[i].w, y);
    const double t3 = now();
    benchmark::DoNotOptimize(y.data());
    st.SetIterationTime(slowest(t3 - t0));
    exchange.push_back(slowest((t1 - t0) + (t3 - t2)));
    compute.push_back(slowest(t2 - t1));
    i = (i + 1) % routings;
  }
  st.counters["exchange_us"] = median(exchange) * 1e6;
  st.counters["compute_us"] = median(compute) * 1e6;
  st.counters["GB/s_weights"] =  // the activated experts' weight bytes read per step, over all ranks
      benchmark::Counter(double(K) * 3 * H * I * sizeof(bf16) * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
}

// Ranks other than 0 run the same benchmarks (the collectives need them) and print nothing.
class silent_reporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks_);
  if (!std::getenv("DSK_NUM_THREADS"))
    set_num_threads(std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / ranks_));
  benchmark::Initialize(&argc, argv);
  communicator_ = std::make_unique<ep_communicator>(MPI_COMM_WORLD, E, H);
  const std::string r = "/R" + std::to_string(ranks_);
  for (index_t T : {1, 16, 128, 512}) {
    const std::string t = r + "/T" + std::to_string(T);
    const int iters = T >= 128 ? 50 : 200;
    benchmark::RegisterBenchmark(("roof/memcpy" + t).c_str(),
                                 [T](benchmark::State& st) { bench_memcpy(st, T); })
        ->UseManualTime()
        ->Iterations(iters)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("ep/exchange" + t).c_str(),
                                 [T](benchmark::State& st) { bench_exchange(st, T); })
        ->UseManualTime()
        ->Iterations(iters)
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::RegisterBenchmark(("ep/layer" + r + "/T1").c_str(), bench_layer)
      ->UseManualTime()
      ->Iterations(100)
      ->Unit(benchmark::kMicrosecond);
  silent_reporter silent;
  if (rank_ == 0)
    benchmark::RunSpecifiedBenchmarks();
  else
    benchmark::RunSpecifiedBenchmarks(&silent);
  benchmark::Shutdown();
  communicator_.reset();
  MPI_Finalize();
  return 0;
}
