// CUDA dense y = x * W^T: a SIMT small-M GEMV kernel (W streamed once for up to 8 rows of x, 16-byte loads,
// fp32 accumulation) and, natively, cuBLASLt for larger M (a well-kept library already does dense GEMM; it
// cannot run under the SIMT emulation, which runs the GEMV kernel for every M instead). Backend dsk::cuda.
// Checked against gemm/ref.hpp (double) in tests/simt/gemm.cpp (also built natively as tests/cuda).
#pragma once

#include <concepts>
#include <type_traits>

#include "dsk/core/backend.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"
#include "dsk/cuda.cuh"
#include "dsk/gemm/config.hpp"
#include "dsk/gemm/cuda/gemv.cuh"

#if !DSK_SIMT_EMULATION
#include <cublasLt.h>
#endif

namespace dsk::gemm {
DSK_CUDA_MODE_BEGIN

#if !DSK_SIMT_EMULATION
namespace detail {
inline void check_lt(cublasStatus_t st, const char* call) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw device::error(dsk::detail::concat("dsk::device: ", call, " failed: ", cublasLtGetStatusName(st),
                                            " (", static_cast<int>(st), "): ", cublasLtGetStatusString(st)),
                        static_cast<int>(st));
}

inline cublasLtHandle_t lt_handle() {
  static const cublasLtHandle_t h = [] {
    cublasLtHandle_t r = nullptr;
    check_lt(cublasLtCreate(&r), "cublasLtCreate");
    return r;
  }();
  return h;
}

template <class T>
constexpr cudaDataType_t lt_type() {
  if constexpr (std::is_same_v<T, float>)
    return CUDA_R_32F;
  else if constexpr (std::is_same_v<T, bf16>)
    return CUDA_R_16BF;
  else
    return CUDA_R_16F;
}

// Descriptors released on every exit path.
struct lt_descs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~lt_descs() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

// Row-major y[M, N] = x[M, K] W[N, K]^T is column-major y^T[N, M] = op_T(W^T[K, N]) * x^T[K, M]: W is A
// (transposed), x is B, y is C, leading dimensions = row strides. Compute in fp32 (CUBLAS_COMPUTE_32F: no
// TF32 for f32 inputs).
template <class T, class Y>
void lt_matmul(view<const T, 2> x, view<const T, 2> w, view<Y, 2> y, const device::stream& s) {
  constexpr std::size_t workspace_bytes = 32u << 20;  // what cuBLASLt's Hopper kernels ask for
  static thread_local device::buffer<unsigned char> workspace(workspace_bytes);
  const auto M = static_cast<std::uint64_t>(x.extent(0)), N = static_cast<std::uint64_t>(w.extent(0)),
             K = static_cast<std::uint64_t>(x.extent(1));
  lt_descs d;
  check_lt(cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  check_lt(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "set TRANSA");
  check_lt(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "set TRANSB");
  check_lt(cublasLtMatrixLayoutCreate(&d.a, lt_type<T>(), K, N, w.stride(0)),
           "cublasLtMatrixLayoutCreate(W)");
  check_lt(cublasLtMatrixLayoutCreate(&d.b, lt_type<T>(), K, M, x.stride(0)),
           "cublasLtMatrixLayoutCreate(x)");
  check_lt(cublasLtMatrixLayoutCreate(&d.c, lt_type<Y>(), N, M, y.stride(0)),
           "cublasLtMatrixLayoutCreate(y)");
  check_lt(cublasLtMatmulPreferenceCreate(&d.pref), "cublasLtMatmulPreferenceCreate");
  check_lt(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &workspace_bytes, sizeof workspace_bytes),
           "set MAX_WORKSPACE_BYTES");
  cublasLtMatmulHeuristicResult_t best{};
  int found = 0;
  check_lt(cublasLtMatmulAlgoGetHeuristic(lt_handle(), d.op, d.a, d.b, d.c, d.c, d.pref, 1, &best, &found),
           "cublasLtMatmulAlgoGetHeuristic");
  if (found == 0)
    fail_unsupported("gemm::matmul<cuda>: cuBLASLt has no algorithm for this case (M ", M, ", N ", N, ", K ",
                     K, ", row strides x ", x.stride(0), ", w ", w.stride(0), ", y ", y.stride(0), ")");
  const float alpha = 1.0f, beta = 0.0f;
  check_lt(cublasLtMatmul(lt_handle(), d.op, &alpha, w.data(), d.a, x.data(), d.b, &beta, y.data(), d.c,
                          y.data(), d.c, &best.algo, workspace.data(), workspace_bytes, s.get()),
           "cublasLtMatmul");
}
}  // namespace detail
#endif

// matmul<C, dsk::cuda>(x, w, y, stream): y = x * W^T, fp32 accumulation (C: gemm::matmul_config, the host's
// config type; algorithm::blocked == algorithm::cublaslt). x [M, K] (f32, bf16 or f16), W [N, K] (f32, bf16
// or f16), y [M, N] (f32, or the type of W), all in device memory with unit inner strides and any row
// strides; y must not overlap x or W (checked). M <= C.gemv_max_rows: the GEMV kernel (any mix of x and W
// types). Larger M: cuBLASLt natively (x and W of the same type; y f32 or that type), the GEMV kernel under
// the emulation. Asynchronous on s.
template <matmul_config C, std::same_as<dsk::cuda> B, float_storage X, float_storage W, class Y>
requires(std::is_same_v<Y, float> ||
         std::is_same_v<Y, W>) void matmul(view<const X, 2> x, view<const W, 2> w, view<Y, 2> y,
                                           const device::stream& s = device::stream::default_stream()) {
  const contract c{"gemm::matmul<cuda>"};
  c.unit_inner_stride("x", x).unit_inner_stride("w", w).unit_inner_stride("y", y);
  c.extent("w", w, 1, x.extent(1), "x.extent(1) (K)");
  c.extent("y", y, 0, x.extent(0), "x.extent(0) (M)").extent("y", y, 1, w.extent(0), "w.extent(0) (N)");
  c.disjoint("y", y, "x", x).disjoint("y", y, "w", w);  // device addresses: the same host-side test
  const index_t M = x.extent(0), N = w.extent(0);
  if (M == 0 || N == 0) return;
  static_assert(C.gemv_max_rows >= 0, "gemm::matmul_config: gemv_max_rows must be >= 0");
  const bool gemv = C.algo == algorithm::gemv || (C.algo == algorithm::automatic && M <= C.gemv_max_rows);
#if !DSK_SIMT_EMULATION
  if (!gemv && x.extent(1) > 0) {  // K = 0 (y = 0) is left to the GEMV kernel
    if constexpr (std::is_same_v<X, W>) {
      return detail::lt_matmul<W, Y>(x, w, y, s);
    } else {
      fail_unsupported("gemm::matmul<cuda>: M = ", M,
                       " > gemv_max_rows takes cuBLASLt, which needs x and w of the ", "same type (x ",
                       dsk::name(dtype_of<X>), ", w ", dsk::name(dtype_of<W>),
                       "); convert x or use the GEMV path (matmul_config{.algo = algorithm::gemv})");
    }
  }
#else
  (void)gemv;  // the emulation cannot run cuBLASLt: the GEMV kernel computes every M
#endif
  detail::launch_gemv(x, w, y, s);
}

DSK_CUDA_MODE_END
}  // namespace dsk::gemm
