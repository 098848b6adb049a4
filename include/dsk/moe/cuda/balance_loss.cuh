// CUDA load-balance losses: balance_loss_{simple, expert, device, comm, seq_aux}<cuda>, the host losses'
// contracts (dsk/moe/balance_loss.hpp) on device memory. The statistics over the tokens (mean scores, slots
// per expert, tokens per device, per-sequence sums) are gathered on the device, in double, each sum in the
// host's token order (one thread per column) and the counts exact; the few per-expert values go to the host,
// which runs the same loss algebra as the host functions (detail::*_terms); the logit gradient is added on
// the device, one thread per row in the host's order. So loss and dlogits equal the host's bit for bit.
// Synchronises the stream (the loss is returned). Backend dsk::cuda. Checked in tests/simt/moe_loss.cpp
// (emulation; natively in test_cuda) against the host functions.
#pragma once

#include <concepts>
#include <cstdint>
#include <vector>

#include "dsk/core/backend.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"
#include "dsk/cuda.cuh"
#include "dsk/moe/balance_loss.hpp"

namespace dsk::moe {
DSK_CUDA_MODE_BEGIN

namespace kernels {
// sums[b * E + e] = sum over the rows t of block b (rows [b * rows, (b + 1) * rows)) of scores[t, e], in
// row order; one thread per (b, e).
template <int = 0>  // a template: defined in a header, included by many TUs (ODR)
__global__ void moe_loss_column_sums(const float* scores, index_t ld, index_t E, index_t blocks, index_t rows,
                                     double* sums) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= blocks * E) return;
  const index_t b = i / E, e = i % E;
  double s = 0;
  for (index_t t = b * rows; t < (b + 1) * rows; ++t) s += scores[t * ld + e];
  sums[i] = s;
}

// counts[(t / rows) * E + e] += 1 for every slot (t, k) choosing e; bad ids reported by pair index. One
// thread per token.
template <int = 0>  // a template: defined in a header, included by many TUs (ODR)
__global__ void moe_loss_slot_counts(const expert_id* idx, index_t ld, index_t T, index_t K, index_t E,
                                     index_t rows, unsigned long long* counts, long long* bad) {
  const index_t t = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= T) return;
  for (index_t k = 0; k < K; ++k) {
    const expert_id e = idx[t * ld + k];
    if (e < -1 || e >= E) {
      device::report_index(bad, t * K + k);
    } else if (e >= 0) {
      atomicAdd(&counts[(t / rows) * E + e], 1ull);
    }
  }
}

// hits[d] += 1 for every token with a slot on device d (experts [d * per, (d + 1) * per)); one thread per
// token, each device counted once per token.
template <int = 0>  // a template: defined in a header, included by many TUs (ODR)
__global__ void moe_loss_device_hits(const expert_id* idx, index_t ld, index_t T, index_t K, index_t per,
                                     unsigned long long* hits) {
  const index_t t = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= T) return;
  for (index_t k = 0; k < K; ++k) {
    const expert_id e = idx[t * ld + k];
    if (e < 0) continue;
    bool first = true;  // no earlier slot on the same device
    for (index_t j = 0; j < k; ++j)
      first = first && !(idx[t * ld + j] >= 0 && idx[t * ld + j] / per == e / per);
    if (first) atomicAdd(&hits[e / per], 1ull);
  }
}

// dlogits[t] += the scores' backward of g[t, e] = coef[(t / rows) * E + e] / div: softmax s (g - <g, s>),
// sigmoid g s (1 - s), in double and in the host's order; one thread per row.
template <int = 0>  // a template: defined in a header, included by many TUs (ODR)
__global__ void moe_loss_backward(const float* scores, index_t lds, bool softmax, const double* coef,
                                  double div, index_t T, index_t E, index_t rows, float* dlogits,
                                  index_t ldd) {
  const index_t t = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= T) return;
  const float* s = scores + t * lds;
  const double* c = coef + (t / rows) * E;
  float* d = dlogits + t * ldd;
  if (softmax) {
    double gs = 0;
    for (index_t e = 0; e < E; ++e) gs += c[e] / div * s[e];
    for (index_t e = 0; e < E; ++e) d[e] += static_cast<float>(s[e] * (c[e] / div - gs));
  } else {
    for (index_t e = 0; e < E; ++e) {
      const double se = s[e];
      d[e] += static_cast<float>(c[e] / div * se * (1.0 - se));
    }
  }
}
}  // namespace kernels

namespace cuda_detail {
inline dim3 loss_grid(index_t n) { return dim3(static_cast<unsigned>((n + 127) / 128)); }

// The statistics of the losses, downloaded (synchronises s).
struct loss_stats {
  std::vector<double> sums;                // [blocks * E] column sums of the scores
  std::vector<unsigned long long> counts;  // [blocks * E] slots per expert (with topk_idx)
};

inline loss_stats gather_loss_stats(const contract& c, view<const float, 2> scores,
                                    view<const expert_id, 2> topk_idx, bool with_idx, index_t rows,
                                    const device::stream& s) {
  const index_t T = scores.extent(0), E = scores.extent(1), blocks = T / rows;
  loss_stats st;
  device::buffer<double> sums(blocks * E);
  device::launch(kernels::moe_loss_column_sums<>, {loss_grid(blocks * E), dim3(128)}, s)(
      scores.data(), scores.stride(0), E, blocks, rows, sums.data());
  st.sums.resize(static_cast<std::size_t>(blocks * E));
  device::copy(st.sums.data(), sums.data(), blocks * E, device::copy_kind::device_to_host, s);
  if (with_idx) {
    device::buffer<unsigned long long> counts(blocks * E);
    st.counts.assign(static_cast<std::size_t>(blocks * E), 0);
    device::copy(counts.data(), st.counts.data(), blocks * E, device::copy_kind::host_to_device, s);
    const device::index_report bad(s);
    device::launch(kernels::moe_loss_slot_counts<>, {loss_grid(T), dim3(128)}, s)(
        topk_idx.data(), topk_idx.stride(0), T, topk_idx.extent(1), E, rows, counts.data(), bad.slot());
    if (const auto p = bad.first(s)) {
      const index_t K = topk_idx.extent(1);
      c.require(false, "topk_idx", dsk::detail::concat("expert ids in [0, ", E, ") or -1"),
                dsk::detail::concat("a bad id at (", *p / K, ", ", *p % K, ")"));
    }
    device::copy(st.counts.data(), counts.data(), blocks * E, device::copy_kind::device_to_host, s);
  }
  s.synchronize();
  return st;
}

// The host's mean_scores and expert_fraction from the device statistics (one block of all T rows).
inline std::vector<double> mean_of(const loss_stats& st, index_t T) {
  std::vector<double> P = st.sums;
  for (auto& p : P) p /= static_cast<double>(T);
  return P;
}
inline std::vector<double> fraction_of(const loss_stats& st, index_t E, index_t K, index_t T) {
  std::vector<double> f(st.counts.begin(), st.counts.end());
  for (auto& x : f) x *= static_cast<double>(E) / static_cast<double>(K * T);
  return f;
}

inline void add_loss_grad(view<const float, 2> scores, scoring sf, const std::vector<double>& coef,
                          double div, index_t rows, view<float, 2> dlogits, const device::stream& s) {
  const index_t T = scores.extent(0), E = scores.extent(1);
  device::buffer<double> c(static_cast<index_t>(coef.size()));
  device::copy(c.data(), coef.data(), static_cast<index_t>(coef.size()), device::copy_kind::host_to_device,
               s);
  device::launch(kernels::moe_loss_backward<>, {loss_grid(T), dim3(128)}, s)(
      scores.data(), scores.stride(0), sf == scoring::softmax, c.data(), div, T, E, rows, dlogits.data(),
      dlogits.stride(0));
  s.synchronize();  // c (a local) is read by the kernel
}

inline void check_device_loss_args(const contract& c, view<const float, 2> scores,
                                   view<const expert_id, 2> topk_idx, view<float, 2> dlogits, bool with_idx) {
  c.unit_inner_stride("scores", scores)
      .in_range("scores.extent(0) (tokens)", scores.extent(0), index_t{0},
                index_t{128} * device::max_grid_x());
  if (dlogits.extent(0) != 0 || dlogits.extent(1) != 0) c.unit_inner_stride("dlogits", dlogits);
  if (with_idx)
    c.extent("topk_idx", topk_idx, 0, scores.extent(0), "scores.extent(0) (tokens)")
        .require(topk_idx.extent(1) >= 1, "topk_idx", "K = extent(1) >= 1", topk_idx.extent(1))
        .unit_inner_stride("topk_idx", topk_idx);
}
}  // namespace cuda_detail

// The host losses' signatures with the backend first and the stream last; scores, topk_idx and dlogits in
// device memory (dlogits empty: no gradient; otherwise the gradient is ADDED to it).
template <std::same_as<dsk::cuda> B>
double balance_loss_simple(view<const float, 2> scores, scoring sf, view<float, 2> dlogits,
                           double lambda = 0.01, const device::stream& s = device::stream::default_stream()) {
  contract c{"moe::balance_loss_simple<cuda>"};
  const auto a = detail::check_loss_args(c, scores, dlogits);
  cuda_detail::check_device_loss_args(c, scores, {}, dlogits, false);
  if (a.T == 0) return 0.0;
  const auto st = cuda_detail::gather_loss_stats(c, scores, {}, false, a.T, s);
  std::vector<double> coef;
  const double L = detail::simple_terms(cuda_detail::mean_of(st, a.T), lambda, coef);
  if (a.grad) cuda_detail::add_loss_grad(scores, sf, coef, static_cast<double>(a.T), a.T, dlogits, s);
  return L;
}

template <std::same_as<dsk::cuda> B>
double balance_loss_expert(view<const float, 2> scores, scoring sf, view<const expert_id, 2> topk_idx,
                           double alpha, view<float, 2> dlogits,
                           const device::stream& s = device::stream::default_stream()) {
  contract c{"moe::balance_loss_expert<cuda>"};
  const auto a = detail::check_loss_args(c, scores, dlogits);
  cuda_detail::check_device_loss_args(c, scores, topk_idx, dlogits, true);
  if (a.T == 0) return 0.0;
  const auto st = cuda_detail::gather_loss_stats(c, scores, topk_idx, true, a.T, s);
  std::vector<double> coef;
  const double L = detail::expert_terms(
      cuda_detail::mean_of(st, a.T), cuda_detail::fraction_of(st, a.E, topk_idx.extent(1), a.T), alpha, coef);
  if (a.grad) cuda_detail::add_loss_grad(scores, sf, coef, static_cast<double>(a.T), a.T, dlogits, s);
  return L;
}

template <std::same_as<dsk::cuda> B>
double balance_loss_device(view<const float, 2> scores, scoring sf, view<const expert_id, 2> topk_idx,
                           index_t devices, double alpha, view<float, 2> dlogits,
                           const device::stream& s = device::stream::default_stream()) {
  contract c{"moe::balance_loss_device<cuda>"};
  const auto a = detail::check_loss_args(c, scores, dlogits);
  cuda_detail::check_device_loss_args(c, scores, topk_idx, dlogits, true);
  c.require(devices >= 1 && a.E % devices == 0, "devices", "D >= 1 dividing E", devices);
  if (a.T == 0) return 0.0;
  const auto st = cuda_detail::gather_loss_stats(c, scores, topk_idx, true, a.T, s);
  std::vector<double> coef;
  const double L =
      detail::device_terms(cuda_detail::mean_of(st, a.T),
                           cuda_detail::fraction_of(st, a.E, topk_idx.extent(1), a.T), devices, alpha, coef);
  if (a.grad) cuda_detail::add_loss_grad(scores, sf, coef, static_cast<double>(a.T), a.T, dlogits, s);
  return L;
}

template <std::same_as<dsk::cuda> B>
double balance_loss_comm(view<const float, 2> scores, scoring sf, view<const expert_id, 2> topk_idx,
                         index_t devices, index_t max_devices, double alpha, view<float, 2> dlogits,
                         const device::stream& s = device::stream::default_stream()) {
  contract c{"moe::balance_loss_comm<cuda>"};
  const auto a = detail::check_loss_args(c, scores, dlogits);
  cuda_detail::check_device_loss_args(c, scores, topk_idx, dlogits, true);
  c.require(devices >= 1 && a.E % devices == 0, "devices", "D >= 1 dividing E", devices)
      .require(max_devices >= 1 && max_devices <= devices, "max_devices", "M in [1, D]", max_devices);
  if (a.T == 0) return 0.0;
  const auto st = cuda_detail::gather_loss_stats(c, scores, topk_idx, true, a.T, s);  // checks the ids
  device::buffer<unsigned long long> hits(devices);
  std::vector<unsigned long long> hits_h(static_cast<std::size_t>(devices), 0);
  device::copy(hits.data(), hits_h.data(), devices, device::copy_kind::host_to_device, s);
  device::launch(kernels::moe_loss_device_hits<>, {cuda_detail::loss_grid(a.T), dim3(128)}, s)(
      topk_idx.data(), topk_idx.stride(0), a.T, topk_idx.extent(1), a.E / devices, hits.data());
  device::copy(hits_h.data(), hits.data(), devices, device::copy_kind::device_to_host, s);
  s.synchronize();
  std::vector<double> coef;
  const double L =
      detail::comm_terms(cuda_detail::mean_of(st, a.T), std::vector<double>(hits_h.begin(), hits_h.end()),
                         devices, max_devices, a.T, alpha, coef);
  if (a.grad) cuda_detail::add_loss_grad(scores, sf, coef, static_cast<double>(a.T), a.T, dlogits, s);
  return L;
}

template <std::same_as<dsk::cuda> B>
double balance_loss_seq_aux(view<const float, 2> scores, scoring sf, view<const expert_id, 2> topk_idx,
                            index_t seq_len, double alpha, view<float, 2> dlogits,
                            const device::stream& s = device::stream::default_stream()) {
  contract c{"moe::balance_loss_seq_aux<cuda>"};
  const auto a = detail::check_loss_args(c, scores, dlogits);
  cuda_detail::check_device_loss_args(c, scores, topk_idx, dlogits, true);
  c.require(seq_len >= 1 && a.T % seq_len == 0, "seq_len", "L >= 1 dividing the token count", seq_len);
  if (a.T == 0) return 0.0;
  const index_t Bs = a.T / seq_len, K = topk_idx.extent(1);
  const auto st = cuda_detail::gather_loss_stats(c, scores, topk_idx, true, seq_len, s);
  std::vector<double> coef;
  const double L = detail::seq_aux_terms(std::vector<double>(st.counts.begin(), st.counts.end()), st.sums, Bs,
                                         seq_len, K, a.E, alpha, coef);
  if (a.grad)
    cuda_detail::add_loss_grad(scores, sf, coef, static_cast<double>(Bs * seq_len), seq_len, dlogits, s);
  return L;
}

DSK_CUDA_MODE_END
}  // namespace dsk::moe
