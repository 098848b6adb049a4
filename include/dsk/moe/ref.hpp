// Plain scalar reference of the MoE family, written from the formulas in double: gate scores, greedy and
// group-limited top-k (by repeated arg-max), capacity masks, the balance losses, the SwiGLU expert and a
// whole DeepSeekMoE layer that runs every expert on every token and masks. Host only; the oracle of
// tests/moe. It shares no code with the optimized path beyond the tensor types and the config structs.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "dsk/core.hpp"
#include "dsk/moe/router.hpp"

namespace dsk::moe::ref {
// Inline code compiled for the TU's -march like the rest: ISA namespace.
DSK_ISA_BEGIN

// Dense row-major double matrix.
struct mat {
  index_t rows = 0, cols = 0;
  std::vector<double> v;
  mat() = default;
  mat(index_t r, index_t c) : rows(r), cols(c), v(static_cast<std::size_t>(r * c), 0.0) {}
  double& operator()(index_t i, index_t j) { return v[static_cast<std::size_t>(i * cols + j)]; }
  double operator()(index_t i, index_t j) const { return v[static_cast<std::size_t>(i * cols + j)]; }
};

template <class T>
mat to_mat(view<const T, 2> a) {
  mat m(a.extent(0), a.extent(1));
  for (index_t i = 0; i < m.rows; ++i)
    for (index_t j = 0; j < m.cols; ++j) m(i, j) = static_cast<double>(static_cast<float>(a(i, j)));
  return m;
}

// logits = x w^T.
inline mat gate_logits(const mat& x, const mat& w) {
  mat l(x.rows, w.rows);
  for (index_t t = 0; t < x.rows; ++t)
    for (index_t e = 0; e < w.rows; ++e) {
      double s = 0;
      for (index_t h = 0; h < x.cols; ++h) s += x(t, h) * w(e, h);
      l(t, e) = s;
    }
  return l;
}

inline mat scores(const mat& logits, scoring sf) {
  mat s(logits.rows, logits.cols);
  for (index_t t = 0; t < logits.rows; ++t) {
    if (sf == scoring::sigmoid) {
      for (index_t e = 0; e < logits.cols; ++e) s(t, e) = 1.0 / (1.0 + std::exp(-logits(t, e)));
      continue;
    }
    double m = -std::numeric_limits<double>::infinity(), z = 0;
    for (index_t e = 0; e < logits.cols; ++e) m = std::max(m, logits(t, e));
    for (index_t e = 0; e < logits.cols; ++e) z += std::exp(logits(t, e) - m);
    for (index_t e = 0; e < logits.cols; ++e) s(t, e) = std::exp(logits(t, e) - m) / z;
  }
  return s;
}

struct routing {
  std::vector<std::vector<int>> idx;   // [T][K], -1 = none
  std::vector<std::vector<double>> w;  // [T][K]
};

// Top-k by repeated arg-max (first index wins ties) of scores + bias; group_limited_greedy / noaux_tc mask
// all experts of the groups outside the topk_group best (group score: the max / the sum of the two largest,
// by sorting the group; first group wins ties). bias may be empty.
inline routing route(const mat& s, const std::vector<double>& bias, const router_config& cfg,
                     const router_options& opt, index_t K, index_t k_active) {
  const index_t T = s.rows, E = s.cols;
  routing r;
  r.idx.assign(static_cast<std::size_t>(T), std::vector<int>(static_cast<std::size_t>(K), -1));
  r.w.assign(static_cast<std::size_t>(T), std::vector<double>(static_cast<std::size_t>(K), 0.0));
  for (index_t t = 0; t < T; ++t) {
    std::vector<double> sel(static_cast<std::size_t>(E));
    for (index_t e = 0; e < E; ++e) sel[e] = s(t, e) + (bias.empty() ? 0.0 : bias[e]);
    std::vector<bool> allowed(static_cast<std::size_t>(E), true);
    if (cfg.method != topk_method::greedy) {
      const index_t G = opt.n_group, gs = E / G;
      std::vector<double> gscore(static_cast<std::size_t>(G));
      for (index_t g = 0; g < G; ++g) {
        std::vector<double> v(sel.begin() + g * gs, sel.begin() + (g + 1) * gs);
        std::sort(v.begin(), v.end(), std::greater<>());
        gscore[g] = cfg.method == topk_method::noaux_tc ? v[0] + v[1] : v[0];
      }
      std::vector<bool> keep(static_cast<std::size_t>(G), false);
      for (int n = 0; n < opt.topk_group; ++n) {
        index_t best = -1;
        for (index_t g = 0; g < G; ++g)
          if (!keep[g] && (best < 0 || gscore[g] > gscore[best])) best = g;
        keep[best] = true;
      }
      for (index_t e = 0; e < E; ++e) allowed[e] = keep[e / gs];
    }
    double sum = 0;
    for (index_t j = 0; j < k_active; ++j) {
      index_t best = -1;
      for (index_t e = 0; e < E; ++e)
        if (allowed[e] && (best < 0 || sel[e] > sel[best])) best = e;
      allowed[best] = false;
      r.idx[t][j] = static_cast<int>(best);
      r.w[t][j] = s(t, best);
      sum += s(t, best);
    }
    const double scale = static_cast<double>(opt.routed_scaling_factor);
    for (index_t j = 0; j < k_active; ++j)
      r.w[t][j] = (opt.norm_topk_prob && k_active > 1)
                      ? r.w[t][j] / (sum + 1e-20) * (opt.scale_normalised ? scale : 1.0)
                      : r.w[t][j] * scale;
  }
  return r;
}

// kept[t][k]: the pair survives a per-expert capacity (capacity < 0: dropless). For each expert, the pairs
// are visited in token-major, slot-minor order and the first `capacity` kept.
inline std::vector<std::vector<bool>> kept_pairs(const std::vector<std::vector<int>>& idx, index_t E,
                                                 index_t capacity) {
  std::vector<std::vector<bool>> kept(idx.size());
  for (std::size_t t = 0; t < idx.size(); ++t) kept[t].assign(idx[t].size(), false);
  for (index_t e = 0; e < E; ++e) {
    index_t n = 0;
    for (std::size_t t = 0; t < idx.size(); ++t)
      for (std::size_t k = 0; k < idx[t].size(); ++k)
        if (idx[t][k] == e) kept[t][k] = capacity < 0 || n++ < capacity;
  }
  return kept;
}

// SwiGLU expert on one token: down (silu(gate x) * up x); gate, up: [I, H], down: [H, I].
inline std::vector<double> swiglu(const std::vector<double>& x, const mat& gate, const mat& up,
                                  const mat& down) {
  std::vector<double> h(static_cast<std::size_t>(gate.rows)), y(static_cast<std::size_t>(down.rows), 0.0);
  for (index_t i = 0; i < gate.rows; ++i) {
    double g = 0, u = 0;
    for (index_t j = 0; j < gate.cols; ++j) g += gate(i, j) * x[j], u += up(i, j) * x[j];
    h[i] = g / (1.0 + std::exp(-g)) * u;
  }
  for (index_t o = 0; o < down.rows; ++o)
    for (index_t i = 0; i < down.cols; ++i) y[o] += down(o, i) * h[i];
  return y;
}

// One expert's weights (dequantized), in double.
struct expert {
  mat gate, up, down;
};

// DeepSeekMoE layer: y[t] = shared(x_t) + sum_e mask[t, e] * w[t, e] * expert_e(x_t), where every expert runs
// on every token and mask/w come from the routing (and the capacity mask `kept`, empty = all kept).
inline mat moe_layer(const mat& x, const std::vector<expert>& experts, const expert* shared, const routing& r,
                     const std::vector<std::vector<bool>>& kept) {
  const index_t T = x.rows, H = x.cols;
  mat y(T, H);
  for (index_t t = 0; t < T; ++t) {
    const std::vector<double> xt(x.v.begin() + t * H, x.v.begin() + (t + 1) * H);
    if (shared) {
      const auto s = swiglu(xt, shared->gate, shared->up, shared->down);
      for (index_t h = 0; h < H; ++h) y(t, h) += s[h];
    }
    for (std::size_t e = 0; e < experts.size(); ++e) {
      const auto o = swiglu(xt, experts[e].gate, experts[e].up, experts[e].down);
      double m = 0;  // mask * weight of expert e for token t
      for (std::size_t k = 0; k < r.idx[t].size(); ++k)
        if (r.idx[t][k] == static_cast<int>(e) && (kept.empty() || kept[t][k])) m += r.w[t][k];
      for (index_t h = 0; h < H; ++h) y(t, h) += m * o[h];
    }
  }
  return y;
}

// ---- balance losses, from the formulas (docs/moe.md)
// ---------------------------------------------------------
inline double loss_simple(const mat& s, double lambda) {
  const index_t T = s.rows, E = s.cols;
  if (T == 0) return 0;
  double L = 0;
  for (index_t e = 0; e < E; ++e) {
    double P = 0;
    for (index_t t = 0; t < T; ++t) P += s(t, e);
    P /= static_cast<double>(T);
    L += (P - 1.0 / static_cast<double>(E)) * (P - 1.0 / static_cast<double>(E));
  }
  return lambda * L / static_cast<double>(E);
}

// sum_i f_i P_i over a set of experts [lo, hi) grouped as one unit when `as_device`.
inline double loss_expert(const mat& s, const std::vector<std::vector<int>>& idx, double alpha) {
  const index_t T = s.rows, E = s.cols;
  if (T == 0) return 0;
  const index_t K = static_cast<index_t>(idx[0].size());
  double L = 0;
  for (index_t i = 0; i < E; ++i) {
    double cnt = 0, P = 0;
    for (index_t t = 0; t < T; ++t) {
      for (int e : idx[t]) cnt += e == i;
      P += s(t, i);
    }
    L += (static_cast<double>(E) / static_cast<double>(K * T) * cnt) * (P / static_cast<double>(T));
  }
  return alpha * L;
}

inline double loss_device(const mat& s, const std::vector<std::vector<int>>& idx, index_t D, double alpha) {
  const index_t T = s.rows, E = s.cols, per = E / D;
  if (T == 0) return 0;
  const index_t K = static_cast<index_t>(idx[0].size());
  double L = 0;
  for (index_t d = 0; d < D; ++d) {
    double fsum = 0, Psum = 0;
    for (index_t i = d * per; i < (d + 1) * per; ++i) {
      double cnt = 0;
      for (index_t t = 0; t < T; ++t) {
        for (int e : idx[t]) cnt += e == i;
        Psum += s(t, i) / static_cast<double>(T);
      }
      fsum += static_cast<double>(E) / static_cast<double>(K * T) * cnt;
    }
    L += fsum / static_cast<double>(per) * Psum;
  }
  return alpha * L;
}

inline double loss_comm(const mat& s, const std::vector<std::vector<int>>& idx, index_t D, index_t M,
                        double alpha) {
  const index_t T = s.rows, E = s.cols, per = E / D;
  if (T == 0) return 0;
  double L = 0;
  for (index_t d = 0; d < D; ++d) {
    double sent = 0, Psum = 0;
    for (index_t t = 0; t < T; ++t) {
      bool any = false;
      for (int e : idx[t]) any = any || (e >= 0 && e / per == d);
      sent += any;
      for (index_t i = d * per; i < (d + 1) * per; ++i) Psum += s(t, i) / static_cast<double>(T);
    }
    L += static_cast<double>(D) / static_cast<double>(M * T) * sent * Psum;
  }
  return alpha * L;
}

inline double loss_seq_aux(const mat& s, const std::vector<std::vector<int>>& idx, index_t L, double alpha) {
  const index_t T = s.rows, E = s.cols;
  if (T == 0) return 0;
  const index_t B = T / L, K = static_cast<index_t>(idx[0].size());
  double total = 0;
  for (index_t b = 0; b < B; ++b)
    for (index_t e = 0; e < E; ++e) {
      double cnt = 0, P = 0;
      for (index_t t = b * L; t < (b + 1) * L; ++t) {
        for (int x : idx[t]) cnt += x == e;
        P += s(t, e);
      }
      total += cnt / (static_cast<double>(L * K) / static_cast<double>(E)) * (P / static_cast<double>(L));
    }
  return alpha * total / static_cast<double>(B);
}

DSK_ISA_END
}  // namespace dsk::moe::ref
