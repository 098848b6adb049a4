// Multi-head latent attention (MLA, DeepSeek-V2, arXiv 2405.04434) over the latent cache of
// kv_lora_rank + rope_dim (512 + 64 = 576) floats per token: the expanded form (latent -> per-head keys and
// values through kv_b_proj, then 192/128 attention) and the absorbed decode form (W_UK folded into the query,
// W_UV into the output: MQA with 576/512 head dims over the cache itself). Host backend; oracle: ref::mla.
#pragma once

#include <cmath>
#include <vector>

#include "dsk/attention/flash.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/gemm/matmul.hpp"

namespace dsk::attention {

// Dimensions of MLA (DeepSeek-V2 / V2-Lite values by default); all multiples of 8.
struct mla_config {
  int kv_lora_rank = 512;  // d_c: latent width
  int rope_dim = 64;       // d_rope: decoupled RoPE key, one head shared by all heads
  int nope_dim = 128;      // d_nope: per-head key part from the latent
  int v_dim = 128;         // per-head value width
  bool causal = true;
  constexpr int cache_dim() const { return kv_lora_rank + rope_dim; }
  constexpr int qk_dim() const { return nope_dim + rope_dim; }
};

namespace detail {
template <mla_config C>
consteval void check_mla_config() {
  static_assert(C.kv_lora_rank > 0 && C.kv_lora_rank % 8 == 0 && C.rope_dim > 0 && C.rope_dim % 8 == 0 &&
                    C.nope_dim > 0 && C.nope_dim % 8 == 0 && C.v_dim > 0 && C.v_dim % 8 == 0,
                "dsk::attention::mla_config: every dimension must be a positive multiple of 8");
}

// Shared argument checks; returns the softmax scale.
template <mla_config C>
float check_mla(const contract& c, view<const float, 3> q_nope, view<const float, 3> q_pe,
                view<const float, 2> cache, view<const float, 2> w_kv_b, view<float, 3> o,
                const options& opts) {
  const index_t T = q_nope.extent(0), H = q_nope.extent(1);
  c.extent("q_nope", q_nope, 2, C.nope_dim, "nope_dim").unit_inner_stride("q_nope", q_nope);
  c.extent("q_pe", q_pe, 0, T, "q_nope tokens").extent("q_pe", q_pe, 1, H, "q_nope heads");
  c.extent("q_pe", q_pe, 2, C.rope_dim, "rope_dim").unit_inner_stride("q_pe", q_pe);
  c.extent("cache", cache, 1, C.cache_dim(), "kv_lora_rank + rope_dim").unit_inner_stride("cache", cache);
  c.extent("w_kv_b", w_kv_b, 0, H * (C.nope_dim + C.v_dim), "heads * (nope_dim + v_dim)");
  c.extent("w_kv_b", w_kv_b, 1, C.kv_lora_rank, "kv_lora_rank").unit_inner_stride("w_kv_b", w_kv_b);
  c.extent("o", o, 0, T, "q tokens").extent("o", o, 1, H, "q heads").extent("o", o, 2, C.v_dim, "v_dim");
  c.unit_inner_stride("o", o);
  return resolve_scale(opts.scale, C.qk_dim(), c);
}
}  // namespace detail

DSK_ISA_BEGIN

// Absorbed MLA (the decode form): q~_h = W_UK_h^T q_nope_h (kv_lora_rank), scores
// (q~_h . c_j + q_pe_h . k_pe_j) * scale, o~_h = sum_j p_j c_j, o_h = W_UV_h o~_h. Attention runs once over
// the 576-float cache rows for all heads (MQA, values = the first kv_lora_rank floats of each row).
//   q_nope: [T, heads, nope_dim], q_pe: [T, heads, rope_dim] (RoPE applied), cache: [L, kv_lora_rank +
//   rope_dim] rows [c_j ; k_pe_j] (k_pe rotated), w_kv_b: kv_b_proj.weight [heads * (nope_dim + v_dim),
//   kv_lora_rank] (per head: nope_dim rows of W_UK then v_dim rows of W_UV), o: [T, heads, v_dim].
// scale: opts.scale or (nope_dim + rope_dim)^-1/2 (multiply by mscale^2 yourself for YaRN); causal
// positions as in dense() (query t at opts.query_offset + t, default end-aligned).
template <mla_config C, class Exec = host>
void mla_absorbed(view<const float, 3> q_nope, view<const float, 3> q_pe, view<const float, 2> cache,
                  view<const float, 2> w_kv_b, view<float, 3> o, const options& opts = {}) {
  detail::check_mla_config<C>();
  const contract c{"attention::mla_absorbed"};
  const float scale = detail::check_mla<C>(c, q_nope, q_pe, cache, w_kv_b, o, opts);
  using S = typename detail::exec_isa<Exec>::type;
  constexpr int R = C.kv_lora_rank, Dr = C.rope_dim, Dn = C.nope_dim, Dv = C.v_dim, Dc = C.cache_dim();
  const index_t T = q_nope.extent(0), H = q_nope.extent(1), L = cache.extent(0);
  const index_t per_head = Dn + Dv;
  if (T == 0 || H == 0) return;

  // q~ = [W_UK_h^T q_nope_h ; q_pe_h]: rows of W_UK scaled and summed (W_UK_h is [nope_dim, kv_lora_rank]).
  tensor<float, 3> q_abs(std::array<index_t, 3>{T, H, index_t{Dc}}, uninitialized);
  // Decode-sized projections (a few heads x 64K FMAs) stay on the calling thread: a parallel region costs
  // more.
  const bool small = T <= 4;
  auto absorb = [&](index_t x) {
    const index_t t = x / H, h = x % H;
    float* dst = &q_abs(t, h, 0);
    for (int cc = 0; cc < R; cc += S::width) {
      typename S::f32 acc = S::zero();
      for (int r = 0; r < Dn; ++r)
        acc = S::fma(S::broadcast(q_nope(t, h, index_t{r})), S::load(&w_kv_b(h * per_head + r, index_t{cc})),
                     acc);
      S::store(dst + cc, acc);
    }
    for (int r = 0; r < Dr; ++r) dst[R + r] = q_pe(t, h, index_t{r});
  };
  if (small)
    for (index_t x = 0; x < T * H; ++x) absorb(x);
  else
    parallel_for(0, T * H, absorb);

  // MQA over the cache: keys = whole rows, values = the latent part of the same rows.
  const view<const float, 3> k(cache.data(), dims<3>(L, 1, Dc), {cache.stride(0), Dc, 1});
  const view<const float, 3> v(cache.data(), dims<3>(L, 1, R), {cache.stride(0), R, 1});
  tensor<float, 3> o_lat(std::array<index_t, 3>{T, H, index_t{R}}, uninitialized);
  dense<dense_config{.head_dim = Dc, .value_dim = R, .causal = C.causal}, Exec>(
      q_abs, k, v, o_lat, {}, {.scale = scale, .query_offset = opts.query_offset});

  // o_h = W_UV_h o~_h: per head one GEMM [T, R] x [Dv, R]^T (for decode: dot products on this thread).
  if (small) {
    for (index_t t = 0; t < T; ++t)
      for (index_t h = 0; h < H; ++h)
        for (int r = 0; r < Dv; ++r) {
          const float* wr = &w_kv_b(h * per_head + Dn + r, index_t{0});
          const float* x = &o_lat(t, h, 0);
          typename S::f32 a0 = S::zero(), a1 = S::zero();
          int cc = 0;
          for (; cc + 2 * S::width <= R; cc += 2 * S::width) {
            a0 = S::fma(S::load(wr + cc), S::load(x + cc), a0);
            a1 = S::fma(S::load(wr + cc + S::width), S::load(x + cc + S::width), a1);
          }
          if (cc < R) a0 = S::fma(S::load(wr + cc), S::load(x + cc), a0);  // R % 16 == 8
          o(t, h, index_t{r}) = S::reduce_add(S::add(a0, a1));
        }
    return;
  }
  for (index_t h = 0; h < H; ++h) {
    const view<const float, 2> x(&o_lat(0, h, 0), dims<2>(T, R), {H * R, 1});
    const view<const float, 2> w(&w_kv_b(h * per_head + Dn, 0), dims<2>(Dv, R), {w_kv_b.stride(0), 1});
    gemm::matmul(x, w, view<float, 2>(o.data() + h * o.stride(1), dims<2>(T, Dv), {o.stride(0), 1}));
  }
}

// Expanded MLA (the prefill form): k_nope = c W_UK_h^T, v = c W_UV_h for every cached token and head (one
// GEMM with kv_b_proj), K_h = [k_nope_h ; k_pe], Q_h = [q_nope_h ; q_pe_h], then dense attention with head
// dims (nope_dim + rope_dim) / v_dim. Same arguments and result as mla_absorbed().
template <mla_config C, class Exec = host>
void mla_expanded(view<const float, 3> q_nope, view<const float, 3> q_pe, view<const float, 2> cache,
                  view<const float, 2> w_kv_b, view<float, 3> o, const options& opts = {}) {
  detail::check_mla_config<C>();
  const contract c{"attention::mla_expanded"};
  const float scale = detail::check_mla<C>(c, q_nope, q_pe, cache, w_kv_b, o, opts);
  constexpr int R = C.kv_lora_rank, Dr = C.rope_dim, Dn = C.nope_dim, Dv = C.v_dim, Dq = C.qk_dim();
  const index_t T = q_nope.extent(0), H = q_nope.extent(1), L = cache.extent(0);
  const index_t per_head = Dn + Dv;
  if (T == 0 || H == 0) return;

  tensor<float, 2> kv(std::array<index_t, 2>{L, H * per_head}, uninitialized);
  if (L > 0)
    gemm::matmul(view<const float, 2>(cache.data(), dims<2>(L, R), {cache.stride(0), 1}), w_kv_b, kv.view());
  tensor<float, 3> k(std::array<index_t, 3>{L, H, index_t{Dq}}, uninitialized);
  parallel_for(0, L, [&](index_t j) {
    for (index_t h = 0; h < H; ++h) {
      std::copy_n(&kv(j, h * per_head), Dn, &k(j, h, 0));
      std::copy_n(&cache(j, index_t{R}), Dr, &k(j, h, index_t{Dn}));
    }
  });
  const view<const float, 3> v(kv.data() + Dn, dims<3>(L, H, Dv), {H * per_head, per_head, 1});
  tensor<float, 3> q(std::array<index_t, 3>{T, H, index_t{Dq}}, uninitialized);
  for (index_t t = 0; t < T; ++t)
    for (index_t h = 0; h < H; ++h) {
      for (int r = 0; r < Dn; ++r) q(t, h, index_t{r}) = q_nope(t, h, index_t{r});
      for (int r = 0; r < Dr; ++r) q(t, h, index_t{Dn + r}) = q_pe(t, h, index_t{r});
    }
  dense<dense_config{.head_dim = Dq, .value_dim = Dv, .causal = C.causal}, Exec>(
      q, k, v, o, {}, {.scale = scale, .query_offset = opts.query_offset});
}

DSK_ISA_END
}  // namespace dsk::attention
