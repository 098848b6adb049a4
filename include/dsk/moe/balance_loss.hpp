// Load-balance losses of the MoE router and their logit gradients: simple, DeepSeek's expert / device /
// communication losses (arXiv 2405.04434, 2401.06066) and modeling_deepseek.py's seq_aux. Host only, double,
// no packet code (no Exec tag) but in the ISA namespace (the loops vectorise for -march). Checked against
// dsk/moe/ref.hpp and central finite differences (tests/moe/balance_loss.cpp).
#pragma once

#include <cmath>
#include <utility>
#include <vector>

#include "dsk/core.hpp"
#include "dsk/moe/router.hpp"

namespace dsk::moe {

namespace detail {
struct loss_args {
  index_t T, E;
  bool grad;
};

DSK_ISA_BEGIN

inline loss_args check_loss_args(const contract& c, view<const float, 2> scores, view<float, 2> dlogits) {
  const index_t T = scores.extent(0), E = scores.extent(1);
  c.require(E >= 1, "scores", "at least one expert (extent(1) >= 1)", E);
  const bool grad = !(dlogits.extent(0) == 0 && dlogits.extent(1) == 0);
  if (grad)
    c.extent("dlogits", dlogits, 0, T, "scores.extent(0) (or empty: no gradient)")
        .extent("dlogits", dlogits, 1, E, "experts");
  // The gradient is added row by row while scores are still read (some losses read them again after).
  c.disjoint("dlogits", dlogits, "scores", scores);
  return {T, E, grad};
}

inline void check_idx(const contract& c, view<const expert_id, 2> topk_idx, index_t T, index_t E) {
  c.extent("topk_idx", topk_idx, 0, T, "scores.extent(0) (tokens)")
      .require(topk_idx.extent(1) >= 1, "topk_idx", "K = extent(1) >= 1", topk_idx.extent(1));
  for (index_t t = 0; t < T; ++t)
    for (index_t k = 0; k < topk_idx.extent(1); ++k)
      if (const expert_id e = topk_idx(t, k); e < -1 || e >= E)
        c.require(false, "topk_idx", dsk::detail::concat("expert ids in [0, ", E, ") or -1"),
                  dsk::detail::concat(e, " at (", t, ", ", k, ")"));
}

// dlogits += d(score)/d(logit)^T g, row by row: softmax s (g - <g, s>), sigmoid g s (1 - s).
inline void scores_backward(view<const float, 2> scores, scoring sf, const std::vector<double>& g,
                            view<float, 2> dlogits) {
  const index_t T = scores.extent(0), E = scores.extent(1);
  for (index_t t = 0; t < T; ++t) {
    const double* gt = g.data() + t * E;
    if (sf == scoring::softmax) {
      double gs = 0;
      for (index_t e = 0; e < E; ++e) gs += gt[e] * scores(t, e);
      for (index_t e = 0; e < E; ++e) dlogits(t, e) += static_cast<float>(scores(t, e) * (gt[e] - gs));
    } else {
      for (index_t e = 0; e < E; ++e) {
        const double s = scores(t, e);
        dlogits(t, e) += static_cast<float>(gt[e] * s * (1.0 - s));
      }
    }
  }
}

// P_e = mean over tokens of scores[:, e].
inline std::vector<double> mean_scores(view<const float, 2> scores) {
  const index_t T = scores.extent(0), E = scores.extent(1);
  std::vector<double> P(static_cast<std::size_t>(E), 0.0);
  for (index_t t = 0; t < T; ++t)
    for (index_t e = 0; e < E; ++e) P[e] += scores(t, e);
  for (auto& p : P) p /= static_cast<double>(T);
  return P;
}

// f_i = E / (K T) * #(tokens selecting i): 1 for every expert under perfect balance.
inline std::vector<double> expert_fraction(view<const expert_id, 2> topk_idx, index_t E) {
  const index_t T = topk_idx.extent(0), K = topk_idx.extent(1);
  std::vector<double> f(static_cast<std::size_t>(E), 0.0);
  for (index_t t = 0; t < T; ++t)
    for (index_t k = 0; k < K; ++k)
      if (const expert_id e = topk_idx(t, k); e >= 0) f[e] += 1.0;
  for (auto& x : f) x *= static_cast<double>(E) / static_cast<double>(K * T);
  return f;
}

// The losses below whose gradient in the scores is c_e / T for every token: g[t, e] = coef[e] / T.
inline void uniform_grad(view<const float, 2> scores, scoring sf, const std::vector<double>& coef,
                         view<float, 2> dlogits) {
  const index_t T = scores.extent(0), E = scores.extent(1);
  std::vector<double> g(static_cast<std::size_t>(T * E));
  for (index_t t = 0; t < T; ++t)
    for (index_t e = 0; e < E; ++e) g[t * E + e] = coef[e] / static_cast<double>(T);
  scores_backward(scores, sf, g, dlogits);
}

// The losses' algebra over their per-expert statistics (shared with the CUDA versions, which gather the
// statistics on the device): each returns L and fills coef (the gradient coefficients of uniform_grad).
// P: mean scores; f: expert_fraction.
inline double simple_terms(const std::vector<double>& P, double lambda, std::vector<double>& coef) {
  const auto E = static_cast<index_t>(P.size());
  double L = 0;
  coef.assign(P.size(), 0.0);
  for (index_t e = 0; e < E; ++e) {
    const double d = P[e] - 1.0 / static_cast<double>(E);
    L += d * d;
    coef[e] = 2.0 * lambda * d / static_cast<double>(E);
  }
  return lambda * L / static_cast<double>(E);
}
inline double expert_terms(const std::vector<double>& P, const std::vector<double>& f, double alpha,
                           std::vector<double>& coef) {
  double L = 0;
  coef.assign(P.size(), 0.0);
  for (std::size_t e = 0; e < P.size(); ++e) {
    L += f[e] * P[e];
    coef[e] = alpha * f[e];
  }
  return alpha * L;
}
inline double device_terms(const std::vector<double>& P, const std::vector<double>& f, index_t devices,
                           double alpha, std::vector<double>& coef) {
  const index_t per = static_cast<index_t>(P.size()) / devices;
  double L = 0;
  coef.assign(P.size(), 0.0);
  for (index_t d = 0; d < devices; ++d) {
    double fd = 0, Pd = 0;
    for (index_t e = d * per; e < (d + 1) * per; ++e) fd += f[e], Pd += P[e];
    fd /= static_cast<double>(per);
    L += fd * Pd;
    for (index_t e = d * per; e < (d + 1) * per; ++e) coef[e] = alpha * fd;
  }
  return alpha * L;
}
// hits[d]: the tokens with a slot on device d.
inline double comm_terms(const std::vector<double>& P, std::vector<double> hits, index_t devices,
                         index_t max_devices, index_t T, double alpha, std::vector<double>& coef) {
  const index_t per = static_cast<index_t>(P.size()) / devices;
  double L = 0;
  coef.assign(P.size(), 0.0);
  for (index_t d = 0; d < devices; ++d) {
    hits[d] *= static_cast<double>(devices) / static_cast<double>(max_devices * T);
    double Pd = 0;
    for (index_t e = d * per; e < (d + 1) * per; ++e) Pd += P[e];
    L += hits[d] * Pd;
    for (index_t e = d * per; e < (d + 1) * per; ++e) coef[e] = alpha * hits[d];
  }
  return alpha * L;
}
// ce[b * E + e]: slots of sequence b choosing e; Ps[b * E + e]: the sum of its scores[t, e]. Returns L and
// coef[b * E + e] = alpha * ce (normalised), the numerator of sequence b's gradient (divided by B * seq_len).
inline double seq_aux_terms(std::vector<double> ce, const std::vector<double>& Ps, index_t B, index_t seq_len,
                            index_t K, index_t E, double alpha, std::vector<double>& coef) {
  double L = 0;
  coef.assign(ce.size(), 0.0);
  for (index_t b = 0; b < B; ++b)
    for (index_t e = 0; e < E; ++e) {
      double& c = ce[b * E + e];
      c /= static_cast<double>(seq_len * K) / static_cast<double>(E);
      L += c * Ps[b * E + e] / static_cast<double>(seq_len);
      coef[b * E + e] = alpha * c;
    }
  return alpha * L / static_cast<double>(B);
}
DSK_ISA_END
}  // namespace detail

// Every definition below is compiled for the TU's -march (the double loops vectorise): ISA namespace.
DSK_ISA_BEGIN

// Every loss takes the router's scores[T, E] (route()'s output) and the scoring function that produced them,
// returns the loss and, when dlogits[T, E] is not empty, ADDS the gradient with respect to the logits to it
// (so that several losses can be summed into one buffer). T = 0 gives 0. dlogits must not overlap scores
// (checked).

// Simple form: L = lambda * (1/E) sum_e (P_e - 1/E)^2, P_e = mean_t scores[t, e].
inline double balance_loss_simple(view<const float, 2> scores, scoring sf, view<float, 2> dlogits,
                                  double lambda = 0.01) {
  contract c{"moe::balance_loss_simple"};
  const auto a = detail::check_loss_args(c, scores, dlogits);
  if (a.T == 0) return 0.0;
  std::vector<double> coef;
  const double L = detail::simple_terms(detail::mean_scores(scores), lambda, coef);
  if (a.grad) detail::uniform_grad(scores, sf, coef, dlogits);
  return L;
}

// Expert-level balance (DeepSeekMoE): L = alpha * sum_i f_i P_i, f_i = E / (K T) * #(t selecting i),
// K = topk_idx.extent(1); f is a count and carries no gradient.
inline double balance_loss_expert(view<const float, 2> scores, scoring sf, view<const expert_id, 2> topk_idx,
                                  double alpha, view<float, 2> dlogits) {
  contract c{"moe::balance_loss_expert"};
  const auto a = detail::check_loss_args(c, scores, dlogits);
  detail::check_idx(c, topk_idx, a.T, a.E);
  if (a.T == 0) return 0.0;
  std::vector<double> coef;
  const double L =
      detail::expert_terms(detail::mean_scores(scores), detail::expert_fraction(topk_idx, a.E), alpha, coef);
  if (a.grad) detail::uniform_grad(scores, sf, coef, dlogits);
  return L;
}

// Device-level balance (DeepSeek-V2): experts split contiguously over D devices;
// L = alpha * sum_d f'_d P'_d with f'_d = mean of f_i over the device's experts, P'_d = sum of P_i over them.
inline double balance_loss_device(view<const float, 2> scores, scoring sf, view<const expert_id, 2> topk_idx,
                                  index_t devices, double alpha, view<float, 2> dlogits) {
  contract c{"moe::balance_loss_device"};
  const auto a = detail::check_loss_args(c, scores, dlogits);
  detail::check_idx(c, topk_idx, a.T, a.E);
  c.require(devices >= 1 && a.E % devices == 0, "devices", "D >= 1 dividing E", devices);
  if (a.T == 0) return 0.0;
  std::vector<double> coef;
  const double L = detail::device_terms(detail::mean_scores(scores), detail::expert_fraction(topk_idx, a.E),
                                        devices, alpha, coef);
  if (a.grad) detail::uniform_grad(scores, sf, coef, dlogits);
  return L;
}

// Communication balance (DeepSeek-V2, device-limited routing to at most M devices per token):
// L = alpha * sum_d f''_d P''_d, f''_d = D / (M T) * #(tokens with a slot on d), P''_d = sum of P_i over d's
// experts.
inline double balance_loss_comm(view<const float, 2> scores, scoring sf, view<const expert_id, 2> topk_idx,
                                index_t devices, index_t max_devices, double alpha, view<float, 2> dlogits) {
  contract c{"moe::balance_loss_comm"};
  const auto a = detail::check_loss_args(c, scores, dlogits);
  detail::check_idx(c, topk_idx, a.T, a.E);
  c.require(devices >= 1 && a.E % devices == 0, "devices", "D >= 1 dividing E", devices)
      .require(max_devices >= 1 && max_devices <= devices, "max_devices", "M in [1, D]", max_devices);
  if (a.T == 0) return 0.0;
  const index_t per = a.E / devices;
  std::vector<double> fd(static_cast<std::size_t>(devices), 0.0);
  std::vector<char> hit(static_cast<std::size_t>(devices));
  for (index_t t = 0; t < a.T; ++t) {
    std::fill(hit.begin(), hit.end(), 0);
    for (index_t k = 0; k < topk_idx.extent(1); ++k)
      if (const expert_id e = topk_idx(t, k); e >= 0) hit[e / per] = 1;
    for (index_t d = 0; d < devices; ++d) fd[d] += hit[d];
  }
  std::vector<double> coef;
  const double L =
      detail::comm_terms(detail::mean_scores(scores), fd, devices, max_devices, a.T, alpha, coef);
  if (a.grad) detail::uniform_grad(scores, sf, coef, dlogits);
  return L;
}

// Per-sequence auxiliary loss (modeling_deepseek.py, seq_aux = true): tokens are B sequences of seq_len
// contiguous rows; ce[b, e] = #(slots of b choosing e) / (seq_len * K / E);
// L = alpha * (1/B) sum_b sum_e ce[b, e] * mean_{t in b} scores[t, e].
inline double balance_loss_seq_aux(view<const float, 2> scores, scoring sf, view<const expert_id, 2> topk_idx,
                                   index_t seq_len, double alpha, view<float, 2> dlogits) {
  contract c{"moe::balance_loss_seq_aux"};
  const auto a = detail::check_loss_args(c, scores, dlogits);
  detail::check_idx(c, topk_idx, a.T, a.E);
  c.require(seq_len >= 1 && a.T % seq_len == 0, "seq_len", "L >= 1 dividing the token count", seq_len);
  if (a.T == 0) return 0.0;
  const index_t B = a.T / seq_len, K = topk_idx.extent(1), E = a.E;
  std::vector<double> ce(static_cast<std::size_t>(B * E), 0.0), Ps(static_cast<std::size_t>(B * E), 0.0);
  for (index_t b = 0; b < B; ++b)
    for (index_t t = b * seq_len; t < (b + 1) * seq_len; ++t) {
      for (index_t k = 0; k < K; ++k)
        if (const expert_id e = topk_idx(t, k); e >= 0) ce[b * E + e] += 1.0;
      for (index_t e = 0; e < E; ++e) Ps[b * E + e] += scores(t, e);
    }
  std::vector<double> coef;
  const double L = detail::seq_aux_terms(std::move(ce), Ps, B, seq_len, K, E, alpha, coef);
  if (a.grad) {
    std::vector<double> g(static_cast<std::size_t>(a.T * E));
    for (index_t t = 0; t < a.T; ++t)
      for (index_t e = 0; e < E; ++e)
        g[t * E + e] = coef[(t / seq_len) * E + e] / static_cast<double>(B * seq_len);
    detail::scores_backward(scores, sf, g, dlogits);
  }
  return L;
}

DSK_ISA_END

}  // namespace dsk::moe
