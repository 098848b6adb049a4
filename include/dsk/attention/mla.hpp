// Multi-head latent attention (MLA, DeepSeek-V2, arXiv 2405.04434) over the latent cache of
// kv_lora_rank + rope_dim (512 + 64 = 576) values per token (f32 or bf16, mla_cache): the expanded form
// (latent
// -> per-head keys and values through kv_b_proj, then 192/128 attention) and the absorbed decode form (W_UK
// folded into the query, W_UV into the output: MQA with 576/512 head dims over the cache itself). kv_b_proj
// in f32, bf16, f16 or quantized (quant::quantized_weight, int8/int4). Host backend; oracle: ref::mla.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dsk/attention/flash.hpp"
#include "dsk/core/dispatch.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/gemm/matmul.hpp"
#include "dsk/quant/matmul.hpp"
#include "dsk/quant/quantize.hpp"

namespace dsk::attention {

// Dimensions of MLA (DeepSeek-V2 / V2-Lite values by default); all multiples of 8. The head count is a
// runtime value (the extent of q_nope); only these widths change the generated code. From config.json:
// kv_lora_rank, qk_rope_head_dim, qk_nope_head_dim, v_head_dim.
struct mla_config {
  int kv_lora_rank = 512;  // d_c: latent width
  int rope_dim = 64;       // d_rope: decoupled RoPE key, one head shared by all heads
  int nope_dim = 128;      // d_nope: per-head key part from the latent
  int v_dim = 128;         // per-head value width
  bool causal = true;
  constexpr int cache_dim() const { return kv_lora_rank + rope_dim; }
  constexpr int qk_dim() const { return nope_dim + rope_dim; }
  friend constexpr bool operator==(const mla_config&, const mla_config&) = default;
};

// "{kv_lora_rank 512, rope_dim 64, nope_dim 128, v_dim 128}" (", bidirectional" when not causal): how
// dsk::dispatch lists MLA configs in dsk::unsupported.
DSK_ISA_BEGIN
inline std::string to_string(const mla_config& c) {
  std::ostringstream s;
  s << "{kv_lora_rank " << c.kv_lora_rank << ", rope_dim " << c.rope_dim << ", nope_dim " << c.nope_dim
    << ", v_dim " << c.v_dim << (c.causal ? "}" : ", bidirectional}");
  return s.str();
}
DSK_ISA_END

// Runtime MLA widths (e.g. read from config.json) -> one of the compiled configs Cs: calls
// f(dsk::constant<C>{}) for the C == runtime (use decltype(c)::value as the template argument) and throws
// dsk::unsupported listing Cs otherwise. dsk::dispatch<Cs...>("attention::mla_config", runtime, f).
template <mla_config... Cs, class F>
requires(sizeof...(Cs) > 0) decltype(auto) mla_dispatch(const mla_config& runtime, F&& f) {
  return dispatch<Cs...>("attention::mla_config", runtime, std::forward<F>(f));
}

// Latent KV cache of one sequence (one layer): rows [c_j ; k_pe_j] of kv_lora_rank + rope_dim values, stored
// as T = float or bf16 (half the bytes; each value rounded to nearest even once, on append). Fixed capacity:
// views stay valid while tokens are appended. In the ISA namespace: append's conversion loop is compiled (and
// may be vectorised) with the TU's -march.
DSK_ISA_BEGIN
template <class T = float>
class mla_cache {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16>,
                "dsk::attention::mla_cache: the element type must be float or bf16");

 public:
  using value_type = T;
  mla_cache() = default;
  mla_cache(index_t capacity, int kv_lora_rank, int rope_dim) : r_(kv_lora_rank), dr_(rope_dim) {
    if (capacity < 0 || kv_lora_rank < 1 || rope_dim < 1)
      fail(
          "attention::mla_cache: arguments 'capacity, kv_lora_rank, rope_dim': expected >= 0, >= 1, >= 1, "
          "got ",
          capacity, ", ", kv_lora_rank, ", ", rope_dim);
    // At most 2^48 bytes (the user address space): an absurd capacity is an error before allocating.
    if (capacity > (index_t{1} << 48) / (index_t{kv_lora_rank + rope_dim} * index_t(sizeof(T))))
      fail("attention::mla_cache: argument 'capacity': expected at most 2^48 bytes of rows (",
           kv_lora_rank + rope_dim, " values of ", sizeof(T), " bytes each), got ", capacity, " rows");
    rows_ = tensor<T, 2>(std::array<index_t, 2>{capacity, index_t{kv_lora_rank + rope_dim}}, uninitialized);
  }
  mla_cache(index_t capacity, const mla_config& c) : mla_cache(capacity, c.kv_lora_rank, c.rope_dim) {}

  index_t size() const { return len_; }
  index_t capacity() const { return rows_.extent(0); }
  int kv_lora_rank() const { return r_; }
  int rope_dim() const { return dr_; }
  int row_dim() const { return r_ + dr_; }
  std::int64_t bytes() const { return rows_.size() * static_cast<std::int64_t>(sizeof(T)); }
  void clear() { len_ = 0; }
  // Keeps the first n tokens (n <= size()).
  void truncate(index_t n) {
    contract{"attention::mla_cache::truncate"}.in_range("n", n, index_t{0}, len_);
    len_ = n;
  }

  // Appends n tokens: latent [n, kv_lora_rank] (kv_a_layernorm(c)), k_pe [n, rope_dim] (RoPE applied).
  void append(dsk::view<const float, 2> latent, dsk::view<const float, 2> k_pe) {
    const contract c{"attention::mla_cache::append"};
    const index_t n = latent.extent(0);
    c.extent("latent", latent, 1, r_, "kv_lora_rank").extent("k_pe", k_pe, 0, n, "latent rows");
    c.extent("k_pe", k_pe, 1, dr_, "rope_dim");
    if (len_ + n > capacity()) {
      std::ostringstream e;
      e << "at most capacity() - size() rows (capacity " << capacity() << ", size " << len_ << ")";
      c.require(false, "latent", e.str(), n);
    }
    // The rows written must not be the rows read (appending a view of this cache's own free rows).
    const auto dst_rows = dsk::view<const T, 2>(rows_.data() + len_ * row_dim(), dims<2>(n, row_dim()),
                                                {index_t{row_dim()}, 1});
    c.disjoint("latent", latent, "the cache's free rows", dst_rows)
        .disjoint("k_pe", k_pe, "the cache's free rows", dst_rows);
    for (index_t t = 0; t < n; ++t) {
      T* dst = &rows_(len_ + t, 0);
      for (index_t x = 0; x < r_; ++x) dst[x] = T(latent(t, x));
      for (index_t x = 0; x < dr_; ++x) dst[r_ + x] = T(k_pe(t, x));
    }
    len_ += n;
  }
  // Appends n whole rows [n, kv_lora_rank + rope_dim].
  void append(dsk::view<const float, 2> rows) {
    const index_t n = rows.extent(0);
    contract{"attention::mla_cache::append"}.extent("rows", rows, 1, row_dim(), "kv_lora_rank + rope_dim");
    append(dsk::view<const float, 2>(rows.data(), dims<2>(n, r_), {rows.stride(0), rows.stride(1)}),
           dsk::view<const float, 2>(n > 0 ? &rows(0, index_t{r_}) : rows.data(), dims<2>(n, dr_),
                                     {rows.stride(0), rows.stride(1)}));
  }

  // The filled rows [size(), kv_lora_rank + rope_dim]: what mla_absorbed / mla_expanded read.
  dsk::view<const T, 2> view() const {
    return dsk::view<const T, 2>(rows_.data(), dims<2>(len_, row_dim()), {index_t{row_dim()}, 1});
  }
  dsk::view<const T, 2> latent() const {
    return dsk::view<const T, 2>(rows_.data(), dims<2>(len_, r_), {index_t{row_dim()}, 1});
  }
  dsk::view<const T, 2> k_pe() const {
    return dsk::view<const T, 2>(rows_.data() + r_, dims<2>(len_, dr_), {index_t{row_dim()}, 1});
  }

 private:
  tensor<T, 2> rows_;
  index_t len_ = 0;
  int r_ = 0, dr_ = 0;
};
DSK_ISA_END

namespace detail {
template <class W>
struct is_qweight : std::false_type {};
template <quant::format F>
struct is_qweight<quant::qweight_view<F>> : std::true_type {};
template <quant::format F>
struct is_qweight<quant::quantized_weight<F>> : std::true_type {};
template <class T>
struct is_mla_cache : std::false_type {};
template <class T>
struct is_mla_cache<mla_cache<T>> : std::true_type {};
}  // namespace detail

// kv_b_proj.weight [heads * (nope_dim + v_dim), kv_lora_rank] as a float / bf16 / f16 matrix (view or tensor)
// or quantized (quant::quantized_weight<F> / qweight_view<F>, any format: int8 / int4, per channel or
// grouped).
template <class W>
concept kv_b_weight = std::is_convertible_v<const W&, view<const float, 2>> ||
    std::is_convertible_v<const W&, view<const bf16, 2>> ||
    std::is_convertible_v<const W&, view<const f16, 2>> || detail::is_qweight<std::remove_cvref_t<W>>::value;

// The latent cache [L, kv_lora_rank + rope_dim]: an mla_cache<float / bf16>, or a float / bf16 matrix.
template <class C>
concept mla_cache_operand = detail::is_mla_cache<std::remove_cvref_t<C>>::value ||
    std::is_convertible_v<const C&, view<const float, 2>> ||
    std::is_convertible_v<const C&, view<const bf16, 2>>;

namespace detail {
template <mla_config C>
consteval void check_mla_config() {
  static_assert(C.kv_lora_rank > 0 && C.kv_lora_rank % 8 == 0 && C.rope_dim > 0 && C.rope_dim % 8 == 0 &&
                    C.nope_dim > 0 && C.nope_dim % 8 == 0 && C.v_dim > 0 && C.v_dim % 8 == 0,
                "dsk::attention::mla_config: every dimension must be a positive multiple of 8");
}

template <class W>
auto as_kv_b(const W& w) {
  using U = std::remove_cvref_t<W>;
  if constexpr (is_qweight<U>::value)
    return quant::qweight_view<U::fmt>(w);
  else if constexpr (std::is_convertible_v<const W&, view<const float, 2>>)
    return view<const float, 2>(w);
  else if constexpr (std::is_convertible_v<const W&, view<const bf16, 2>>)
    return view<const bf16, 2>(w);
  else
    return view<const f16, 2>(w);
}

template <class C>
auto as_cache(const C& c) {
  if constexpr (is_mla_cache<std::remove_cvref_t<C>>::value)
    return c.view();
  else if constexpr (std::is_convertible_v<const C&, view<const float, 2>>)
    return view<const float, 2>(c);
  else
    return view<const bf16, 2>(c);
}

// From here on the code calls ISA-dependent kernels (dequantize, matmul, the packet layer): ISA namespace.
DSK_ISA_BEGIN

// Rows [r0, r0 + n) of a quantized weight as a weight of n rows.
template <quant::format F>
quant::qweight_view<F> qrows(const quant::qweight_view<F>& w, index_t r0, index_t n) {
  quant::qweight_view<F> r = w;
  r.codes = reinterpret_cast<const quant::code_t<F>*>(w.code_row(r0));
  r.scales = w.scales + r0 * w.scale_stride;
  r.rows = n;
  return r;
}

// A block of kv_b_proj rows [r0, r0 + n) as (pointer, row stride) of element type float / bf16 / f16 that the
// packet layer loads directly; quantized rows are dequantized into `scratch` (n * cols floats) first.
template <class E>
struct wrows {
  const E* p;
  index_t ld;
  const E* row(index_t r) const { return p + r * ld; }
};
template <class S, class T>
wrows<T> rows_of(const view<const T, 2>& w, index_t r0, index_t, std::vector<float>&) {
  return {w.data() + r0 * w.stride(0), w.stride(0)};
}
template <class S, quant::format F>
wrows<float> rows_of(const quant::qweight_view<F>& w, index_t r0, index_t n, std::vector<float>& scratch) {
  scratch.resize(static_cast<std::size_t>(n * w.cols));
  quant::dequantize<F, S>(qrows(w, r0, n), view<float, 2>(scratch.data(), dims<2>(n, w.cols), {w.cols, 1}));
  return {scratch.data(), w.cols};
}

// y = x w[r0 .. r0 + n)^T: the gemm or quant matmul of the weight's format.
template <class S, class T>
void matmul_rows(view<const float, 2> x, const view<const T, 2>& w, index_t r0, index_t n, view<float, 2> y) {
  gemm::matmul<gemm::matmul_config{}, S>(
      x, view<const T, 2>(w.data() + r0 * w.stride(0), dims<2>(n, w.extent(1)), {w.stride(0), 1}), y);
}
template <class S, quant::format F>
void matmul_rows(view<const float, 2> x, const quant::qweight_view<F>& w, index_t r0, index_t n,
                 view<float, 2> y) {
  quant::matmul<F, S>(x, qrows(w, r0, n), y);
}

// Shared argument checks; returns the softmax scale.
template <mla_config C, class T, class Wv>
float check_mla(const contract& c, view<const float, 3> q_nope, view<const float, 3> q_pe,
                const view<const T, 2>& cache, const Wv& w_kv_b, view<float, 3> o, const options& opts) {
  const index_t T_ = q_nope.extent(0), H = q_nope.extent(1);
  c.extent("q_nope", q_nope, 2, C.nope_dim, "nope_dim").unit_inner_stride("q_nope", q_nope);
  c.extent("q_pe", q_pe, 0, T_, "q_nope tokens").extent("q_pe", q_pe, 1, H, "q_nope heads");
  c.extent("q_pe", q_pe, 2, C.rope_dim, "rope_dim").unit_inner_stride("q_pe", q_pe);
  c.extent("cache", cache, 1, C.cache_dim(), "kv_lora_rank + rope_dim").unit_inner_stride("cache", cache);
  if constexpr (is_qweight<Wv>::value) {
    c.require(w_kv_b.rows == H * (C.nope_dim + C.v_dim), "w_kv_b", "heads * (nope_dim + v_dim) rows",
              w_kv_b.rows);
    c.require(w_kv_b.cols == C.kv_lora_rank, "w_kv_b", "kv_lora_rank columns", w_kv_b.cols);
    c.require(w_kv_b.rows == 0 || (w_kv_b.codes && w_kv_b.scales), "w_kv_b", "non-null codes and scales");
  } else {
    c.extent("w_kv_b", w_kv_b, 0, H * (C.nope_dim + C.v_dim), "heads * (nope_dim + v_dim)");
    c.extent("w_kv_b", w_kv_b, 1, C.kv_lora_rank, "kv_lora_rank").unit_inner_stride("w_kv_b", w_kv_b);
  }
  c.extent("o", o, 0, T_, "q tokens").extent("o", o, 1, H, "q heads").extent("o", o, 2, C.v_dim, "v_dim");
  c.unit_inner_stride("o", o);
  check_query_offset(c, opts, cache.extent(0), T_);
  // o is written while W_UV is read (q_nope, q_pe and the cache are read before o is written: they may
  // overlap o).
  if constexpr (is_qweight<Wv>::value)
    quant::contracts::check_weight_alias(c, "o", o, "w_kv_b", w_kv_b);
  else
    c.disjoint("o", o, "w_kv_b", w_kv_b);
  return resolve_scale(opts.scale, C.qk_dim(), c);
}

template <class S, mla_config C, class T, class Wv>
void mla_absorbed_impl(view<const float, 3> q_nope, view<const float, 3> q_pe, view<const T, 2> cache,
                       const Wv& w_kv_b, view<float, 3> o, float scale, index_t query_offset) {
  constexpr int R = C.kv_lora_rank, Dr = C.rope_dim, Dn = C.nope_dim, Dv = C.v_dim, Dc = C.cache_dim();
  const index_t T_ = q_nope.extent(0), H = q_nope.extent(1), L = cache.extent(0);
  const index_t per_head = Dn + Dv;
  if (T_ == 0 || H == 0) return;
  constexpr bool quantized = is_qweight<Wv>::value;
  // Decode-sized projections (a few heads x 64K FMAs) stay on the calling thread: a parallel region costs
  // more. Quantized weights are dequantized a head at a time (no f32 copy of kv_b_proj), worth the threads.
  const bool serial = T_ <= 4 && !quantized;
  auto over_heads = [&](auto&& body) {
    if (serial)
      body(index_t{0}, H);
    else
      parallel_for_chunks(0, H, 1, body);
  };

  // q~ = [W_UK_h^T q_nope_h ; q_pe_h]: rows of W_UK scaled and summed (W_UK_h is [nope_dim, kv_lora_rank]).
  tensor<float, 3> q_abs(std::array<index_t, 3>{T_, H, index_t{Dc}}, uninitialized);
  over_heads([&](index_t h0, index_t h1) {
    std::vector<float> scratch;
    for (index_t h = h0; h < h1; ++h) {
      const auto w = rows_of<S>(w_kv_b, h * per_head, Dn, scratch);
      for (index_t t = 0; t < T_; ++t) {
        float* dst = &q_abs(t, h, 0);
        for (int cc = 0; cc < R; cc += S::width) {
          typename S::f32 acc = S::zero();
          for (int r = 0; r < Dn; ++r)
            acc = S::fma(S::broadcast(q_nope(t, h, index_t{r})), S::load(w.row(r) + cc), acc);
          S::store(dst + cc, acc);
        }
        for (int r = 0; r < Dr; ++r) dst[R + r] = q_pe(t, h, index_t{r});
      }
    }
  });

  // MQA over the cache: keys = whole rows, values = the latent part of the same rows (float or bf16, read as
  // stored by the engine).
  constexpr dense_config DC{.head_dim = Dc, .value_dim = R, .causal = C.causal};
  check_config<DC>();
  const contiguous_kv_of<T> kv{cache.data(), cache.stride(0), Dc, cache.data(), cache.stride(0), R};
  tensor<float, 3> o_lat(std::array<index_t, 3>{T_, H, index_t{R}}, uninitialized);
  run_dense<S, DC>(q_abs.cview(), kv, L, 1, o_lat.view(), {}, scale,
                   query_offset >= 0 ? query_offset : L - T_);

  // o_h = W_UV_h o~_h: per head one GEMM [T, R] x [Dv, R]^T (for decode: dot products).
  if (T_ <= 4) {
    over_heads([&](index_t h0, index_t h1) {
      std::vector<float> scratch;
      for (index_t h = h0; h < h1; ++h) {
        const auto w = rows_of<S>(w_kv_b, h * per_head + Dn, Dv, scratch);
        for (index_t t = 0; t < T_; ++t)
          for (int r = 0; r < Dv; ++r) {
            const auto* wr = w.row(r);
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
      }
    });
    return;
  }
  for (index_t h = 0; h < H; ++h) {
    const view<const float, 2> x(&o_lat(0, h, 0), dims<2>(T_, R), {H * R, 1});
    matmul_rows<S>(x, w_kv_b, h * per_head + Dn, Dv,
                   view<float, 2>(o.data() + h * o.stride(1), dims<2>(T_, Dv), {o.stride(0), 1}));
  }
}

template <class S, mla_config C, class T, class Wv>
void mla_expanded_impl(view<const float, 3> q_nope, view<const float, 3> q_pe, view<const T, 2> cache,
                       const Wv& w_kv_b, view<float, 3> o, float scale, index_t query_offset) {
  constexpr int R = C.kv_lora_rank, Dr = C.rope_dim, Dn = C.nope_dim, Dv = C.v_dim, Dq = C.qk_dim();
  const index_t T_ = q_nope.extent(0), H = q_nope.extent(1), L = cache.extent(0);
  const index_t per_head = Dn + Dv;
  if (T_ == 0 || H == 0) return;

  // [k_nope | v] = c W^T for every cached token: one GEMM (a bf16 latent is widened exactly first).
  tensor<float, 2> kv(std::array<index_t, 2>{L, H * per_head}, uninitialized);
  if (L > 0) {
    if constexpr (std::is_same_v<T, float>) {
      matmul_rows<S>(view<const float, 2>(cache.data(), dims<2>(L, R), {cache.stride(0), 1}), w_kv_b, 0,
                     H * per_head, kv.view());
    } else {
      tensor<float, 2> lat(std::array<index_t, 2>{L, index_t{R}}, uninitialized);
      parallel_for_chunks(0, L, 64, [&](index_t j0, index_t j1) {
        for (index_t j = j0; j < j1; ++j)
          for (int x = 0; x < R; x += S::width) S::store(&lat(j, index_t{x}), S::load(&cache(j, index_t{x})));
      });
      matmul_rows<S>(lat.cview(), w_kv_b, 0, H * per_head, kv.view());
    }
  }
  tensor<float, 3> k(std::array<index_t, 3>{L, H, index_t{Dq}}, uninitialized);
  parallel_for(0, L, [&](index_t j) {
    for (index_t h = 0; h < H; ++h) {
      std::copy_n(&kv(j, h * per_head), Dn, &k(j, h, 0));
      for (int r = 0; r < Dr; ++r) k(j, h, index_t{Dn + r}) = static_cast<float>(cache(j, index_t{R + r}));
    }
  });
  // (An empty cache has no storage: kv.data() is null, and null + Dn would be undefined.)
  const view<const float, 3> v(L == 0 ? kv.data() : kv.data() + Dn, dims<3>(L, H, Dv),
                               {H * per_head, per_head, 1});
  tensor<float, 3> q(std::array<index_t, 3>{T_, H, index_t{Dq}}, uninitialized);
  for (index_t t = 0; t < T_; ++t)
    for (index_t h = 0; h < H; ++h) {
      for (int r = 0; r < Dn; ++r) q(t, h, index_t{r}) = q_nope(t, h, index_t{r});
      for (int r = 0; r < Dr; ++r) q(t, h, index_t{Dn + r}) = q_pe(t, h, index_t{r});
    }
  constexpr dense_config DC{.head_dim = Dq, .value_dim = Dv, .causal = C.causal};
  check_config<DC>();
  const contiguous_kv kvv{k.data(), H * Dq, Dq, v.data(), v.stride(0), v.stride(1)};
  run_dense<S, DC>(q.cview(), kvv, L, H, o, {}, scale, query_offset >= 0 ? query_offset : L - T_);
}

DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN

// Absorbed MLA (the decode form): q~_h = W_UK_h^T q_nope_h (kv_lora_rank), scores
// (q~_h . c_j + q_pe_h . k_pe_j) * scale, o~_h = sum_j p_j c_j, o_h = W_UV_h o~_h. Attention runs once over
// the cache rows for all heads (MQA, values = the first kv_lora_rank values of each row).
//   q_nope: [T, heads, nope_dim], q_pe: [T, heads, rope_dim] (RoPE applied), cache: mla_cache<float / bf16>
//   or a [L, kv_lora_rank + rope_dim] float / bf16 matrix of rows [c_j ; k_pe_j] (k_pe rotated), w_kv_b:
//   kv_b_proj.weight [heads * (nope_dim + v_dim), kv_lora_rank] (per head: nope_dim rows of W_UK then v_dim
//   rows of W_UV) in f32 / bf16 / f16 or quantized (kv_b_weight), o: [T, heads, v_dim]. o must not overlap
//   w_kv_b (checked); it may overlap q_nope, q_pe and the cache, which are read before o is written.
// scale: opts.scale or (nope_dim + rope_dim)^-1/2 (multiply by mscale^2 yourself for YaRN); causal
// positions as in dense() (query t at opts.query_offset + t in [-1, L], default end-aligned).
template <mla_config C, host_exec Exec = host, mla_cache_operand Cache, kv_b_weight W>
void mla_absorbed(view<const float, 3> q_nope, view<const float, 3> q_pe, const Cache& cache, const W& w_kv_b,
                  view<float, 3> o, const options& opts = {}) {
  detail::check_mla_config<C>();
  const contract c{"attention::mla_absorbed"};
  const auto cv = detail::as_cache(cache);
  const auto wv = detail::as_kv_b(w_kv_b);
  const float scale = detail::check_mla<C>(c, q_nope, q_pe, cv, wv, o, opts);
  detail::mla_absorbed_impl<exec_packet_t<Exec>, C>(q_nope, q_pe, cv, wv, o, scale, opts.query_offset);
}

// Expanded MLA (the prefill form): k_nope = c W_UK_h^T, v = c W_UV_h for every cached token and head (one
// GEMM with kv_b_proj in its own format), K_h = [k_nope_h ; k_pe], Q_h = [q_nope_h ; q_pe_h], then dense
// attention with head dims (nope_dim + rope_dim) / v_dim. Same arguments and result as mla_absorbed().
template <mla_config C, host_exec Exec = host, mla_cache_operand Cache, kv_b_weight W>
void mla_expanded(view<const float, 3> q_nope, view<const float, 3> q_pe, const Cache& cache, const W& w_kv_b,
                  view<float, 3> o, const options& opts = {}) {
  detail::check_mla_config<C>();
  const contract c{"attention::mla_expanded"};
  const auto cv = detail::as_cache(cache);
  const auto wv = detail::as_kv_b(w_kv_b);
  const float scale = detail::check_mla<C>(c, q_nope, q_pe, cv, wv, o, opts);
  detail::mla_expanded_impl<exec_packet_t<Exec>, C>(q_nope, q_pe, cv, wv, o, scale, opts.query_offset);
}

DSK_ISA_END
}  // namespace dsk::attention
