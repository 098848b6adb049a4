// SIMT emulation: compiles dsk's CUDA kernel sources (.cuh) with the host compiler and runs them on the CPU.
// Each block runs on one OS thread; each CUDA thread of the block is a fiber resumed round-robin
// until it reaches a barrier, a warp operation or its end. Host only (never seen by nvcc); checked in
// tests/simt/. Reports barrier divergence, bad warp masks and (checked mode) shared-memory bounds instead of
// hanging.
#pragma once

#if defined(__CUDACC__)
#error "dsk/cuda/simt.hpp is the CPU emulation of CUDA; under nvcc the real device is used"
#endif

#include <math.h>  // the global C math names (expf, fmaxf, ...) that CUDA device code uses unqualified
#include <sys/mman.h>
#include <ucontext.h>

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "dsk/core/config.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/parallel.hpp"
#include "dsk/core/source_location.hpp"

// Checked mode: shared memory accesses through DSK_SHARED / DSK_DYNAMIC_SHARED are bounds-checked, and shared
// memory is poisoned (all bytes 0xff: NaN for floats, -1 for integers) at the start of every block. A program
// must build all its emulated TUs with the same setting (it changes the kernels' code).
#ifndef DSK_SIMT_CHECKED
#define DSK_SIMT_CHECKED DSK_CHECKED
#endif

#if defined(__SANITIZE_ADDRESS__)
#define DSK_SIMT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DSK_SIMT_ASAN 1
#endif
#endif
#ifndef DSK_SIMT_ASAN
#define DSK_SIMT_ASAN 0
#endif
#if DSK_SIMT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

// Fiber stack size. Kernels keep little on the stack; ASan's redzones need more.
#ifndef DSK_SIMT_STACK_BYTES
#define DSK_SIMT_STACK_BYTES (DSK_SIMT_ASAN ? 256 * 1024 : 64 * 1024)
#endif

// ---- CUDA's vector and index types, in the global namespace as nvcc declares them
// ---------------------------
struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) uint2 {
  unsigned x, y;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};

// The built-in variables: per OS thread, set by the scheduler before it resumes a fiber.
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
inline constexpr int warpSize = 32;

// Half types: dsk's own storage types stand in for cuda_fp16.h / cuda_bf16.h (same bits, same rounding).
using __half = dsk::f16;
using __nv_bfloat16 = dsk::bf16;
inline __half __float2half(float x) { return __half(x); }
inline __half __float2half_rn(float x) { return __half(x); }
inline float __half2float(__half h) { return static_cast<float>(h); }
inline __nv_bfloat16 __float2bfloat16(float x) { return __nv_bfloat16(x); }
inline __nv_bfloat16 __float2bfloat16_rn(float x) { return __nv_bfloat16(x); }
inline float __bfloat162float(__nv_bfloat16 h) { return static_cast<float>(h); }

// Function qualifiers and attributes: no meaning on the CPU.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
// No __noinline__: libstdc++ spells the GNU attribute `__attribute__((__noinline__))`
// (bits/shared_ptr_base.h, <stacktrace>), so a macro of that name breaks every standard header included after
// this one. Kernels that need it write `__attribute__((noinline))`, which nvcc accepts too.
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// One copy per OS thread = one per running block, since an OS thread runs one block at a time.
#define __shared__ static thread_local

namespace dsk::simt {

// An error found by the emulation in a kernel: barrier divergence, bad warp mask, shared memory out of
// bounds.
class error : public dsk::error {
 public:
  using dsk::error::error;
};

// Launch shape: grid and block dimensions and the bytes of dynamic shared memory.
struct launch_config {
  dim3 grid{1, 1, 1};
  dim3 block{1, 1, 1};
  std::size_t shared_bytes = 0;
};

// Limits of sm_80/sm_90 that a launch is checked against, so that a launch failing on the GPU fails here too.
inline constexpr unsigned max_threads_per_block = 1024;
inline constexpr unsigned max_block_z = 64;
inline constexpr unsigned max_grid_x = 2147483647u, max_grid_yz = 65535;
inline constexpr std::size_t max_shared_bytes = 227 * 1024;  // sm_90 opt-in maximum per block

namespace detail {

// Fiber switch. x86-64: saves the callee-saved registers on the old stack and swaps stack pointers (no signal
// mask syscall, unlike swapcontext: ~10x cheaper); elsewhere ucontext.
#if defined(__x86_64__) && !defined(DSK_SIMT_UCONTEXT)
#define DSK_SIMT_FAST_SWITCH 1
// switch_stack(&save, to): pushes rbp, rbx, r12-r15, stores rsp in *save, loads `to`, pops them and returns
// into the other context. An inline function, so that the header can be included by many TUs.
__attribute__((naked, noinline)) inline void switch_stack(void** /*save*/, void* /*to*/) {
  asm volatile(
      "pushq %rbp\n\t"
      "pushq %rbx\n\t"
      "pushq %r12\n\t"
      "pushq %r13\n\t"
      "pushq %r14\n\t"
      "pushq %r15\n\t"
      "movq %rsp, (%rdi)\n\t"
      "movq %rsi, %rsp\n\t"
      "popq %r15\n\t"
      "popq %r14\n\t"
      "popq %r13\n\t"
      "popq %r12\n\t"
      "popq %rbx\n\t"
      "popq %rbp\n\t"
      "ret\n\t");
}
#else
#define DSK_SIMT_FAST_SWITCH 0
#endif

enum class state : std::uint8_t { ready, barrier, warp, done };
enum class warp_op : std::uint8_t {
  shfl,
  shfl_up,
  shfl_down,
  shfl_xor,
  vote_all,
  vote_any,
  ballot,
  sync,
  reduce_add,
  reduce_min_u,
  reduce_max_u,
  reduce_min_i,
  reduce_max_i,
  reduce_and,
  reduce_or,
  reduce_xor
};

inline const char* op_name(warp_op op) {
  switch (op) {
    case warp_op::shfl:
      return "__shfl_sync";
    case warp_op::shfl_up:
      return "__shfl_up_sync";
    case warp_op::shfl_down:
      return "__shfl_down_sync";
    case warp_op::shfl_xor:
      return "__shfl_xor_sync";
    case warp_op::vote_all:
      return "__all_sync";
    case warp_op::vote_any:
      return "__any_sync";
    case warp_op::ballot:
      return "__ballot_sync";
    case warp_op::sync:
      return "__syncwarp";
    case warp_op::reduce_add:
      return "__reduce_add_sync";
    case warp_op::reduce_min_u:
    case warp_op::reduce_min_i:
      return "__reduce_min_sync";
    case warp_op::reduce_max_u:
    case warp_op::reduce_max_i:
      return "__reduce_max_sync";
    case warp_op::reduce_and:
      return "__reduce_and_sync";
    case warp_op::reduce_or:
      return "__reduce_or_sync";
    case warp_op::reduce_xor:
      return "__reduce_xor_sync";
  }
  return "?";
}

inline std::string where(const dsk::source_location& s) {
  return dsk::detail::concat(s.file_name(), ":", s.line());
}
inline std::string idx_str(uint3 v) { return dsk::detail::concat("(", v.x, ",", v.y, ",", v.z, ")"); }

struct fiber {
#if DSK_SIMT_FAST_SWITCH
  void* sp = nullptr;
#else
  ucontext_t ctx{};
#endif
  char* stack = nullptr;  // lowest usable address (above the guard page)
  std::size_t stack_size = 0;
  state st = state::ready;
  uint3 tid{};
  unsigned lane = 0, warp = 0;
  dsk::source_location site{};  // where it waits (barrier or warp operation)
  warp_op op = warp_op::sync;
  unsigned mask = 0;
  int arg = 0, width = 32;
  std::uint64_t value = 0, result = 0;
  void* fake_stack = nullptr;  // ASan bookkeeping of the fiber's fake stack
};

// The per-OS-thread scheduler: runs the blocks that this OS thread is given, one at a time.
class runner {
 public:
  runner() = default;
  runner(const runner&) = delete;
  runner& operator=(const runner&) = delete;
  ~runner() {
    for (auto& f : fibers_)
      if (f.stack) ::munmap(f.stack - page, f.stack_size + page);
  }

  static runner& get() {
    static thread_local runner r;
    return r;
  }
  static fiber*& current() {
    static thread_local fiber* f = nullptr;
    return f;
  }

  std::uint64_t block_serial() const { return serial_; }
  unsigned char* dynamic_shared() { return dyn_.data(); }
  std::size_t dynamic_shared_bytes() const { return dyn_bytes_; }

  void run_block(const launch_config& cfg, uint3 bid, const std::function<void()>& body) {
    const unsigned n = cfg.block.x * cfg.block.y * cfg.block.z;
    prepare(n);
    body_ = &body;
    error_ = nullptr;
    ++serial_;
    dyn_bytes_ = cfg.shared_bytes;
    if (dyn_.size() < dyn_bytes_) dyn_.resize(dyn_bytes_);
    if (DSK_SIMT_CHECKED && dyn_bytes_) std::memset(dyn_.data(), 0xff, dyn_bytes_);
    blockIdx = bid;
    blockDim = cfg.block;
    gridDim = cfg.grid;
    nthreads_ = n;
    for (unsigned i = 0; i < n; ++i) {
      fiber& f = fibers_[i];
      f.st = state::ready;
      f.tid = uint3{i % cfg.block.x, (i / cfg.block.x) % cfg.block.y, i / (cfg.block.x * cfg.block.y)};
      f.lane = i % 32;
      f.warp = i / 32;
#if DSK_SIMT_ASAN
      __asan_unpoison_memory_region(f.stack, f.stack_size);  // frames of fibers abandoned after an error
#endif
#if DSK_SIMT_FAST_SWITCH
      // Initial frame for switch_stack: six zero registers, then entry() as the return address placed so that
      // entry starts with rsp % 16 == 8, as after a call.
      auto* top = reinterpret_cast<void**>(f.stack + f.stack_size);  // 16-byte aligned (page-aligned mapping)
      top[-1] = nullptr;
      top[-2] = reinterpret_cast<void*>(&runner::entry);
      for (int r = 3; r <= 8; ++r) top[-r] = nullptr;
      f.sp = top - 8;
#else
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = f.stack;
      f.ctx.uc_stack.ss_size = f.stack_size;
      f.ctx.uc_link = nullptr;
      makecontext(&f.ctx, &runner::entry, 0);
#endif
    }
    schedule();
  }

  // Called by a fiber: park in state `s` and give control back to the scheduler.
  void park(state s) {
    fiber& f = *current();
    f.st = s;
    switch_to_scheduler(f, false);
  }

  // ---- warp and block queries used by the intrinsics ----
  unsigned warp_exists_mask(unsigned warp) const {
    const unsigned first = warp * 32;
    const unsigned count = nthreads_ - first >= 32 ? 32 : nthreads_ - first;
    return count == 32 ? 0xffffffffu : ((1u << count) - 1u);
  }
  unsigned active_mask(unsigned warp) const {
    unsigned m = 0;
    const unsigned exists = warp_exists_mask(warp);
    for (unsigned l = 0; l < 32; ++l)
      if ((exists >> l & 1u) && fibers_[warp * 32 + l].st != state::done) m |= 1u << l;
    return m;
  }

 private:
  static constexpr std::size_t page = 4096;

  void prepare(unsigned n) {
    if (fibers_.size() >= n) return;
    const std::size_t old = fibers_.size();
    fibers_.resize(n);
    for (std::size_t i = old; i < n; ++i) {
      // A PROT_NONE guard page below each stack turns an overflow into a crash instead of silent corruption.
      const std::size_t bytes = DSK_SIMT_STACK_BYTES + page;
      void* p =
          ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) {
        fibers_.resize(i);
        throw error(dsk::detail::concat("dsk::simt: cannot map a fiber stack of ", bytes, " bytes"));
      }
      ::mprotect(p, page, PROT_NONE);
      fibers_[i].stack = static_cast<char*>(p) + page;
      fibers_[i].stack_size = DSK_SIMT_STACK_BYTES;
    }
  }

  static void entry() {
    runner& r = get();
#if DSK_SIMT_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &r.sched_bottom_, &r.sched_size_);
#endif
    fiber& f = *current();
    try {
      (*r.body_)();
    } catch (...) {
      r.error_ = std::current_exception();
      r.error_thread_ = f.tid;
    }
    f.st = state::done;
    r.switch_to_scheduler(f, true);
  }

  void switch_to_scheduler(fiber& f, [[maybe_unused]] bool exiting) {
#if DSK_SIMT_ASAN
    __sanitizer_start_switch_fiber(exiting ? nullptr : &f.fake_stack, sched_bottom_, sched_size_);
#endif
#if DSK_SIMT_FAST_SWITCH
    switch_stack(&f.sp, sched_sp_);
#else
    swapcontext(&f.ctx, &sched_ctx_);
#endif
#if DSK_SIMT_ASAN
    __sanitizer_finish_switch_fiber(f.fake_stack, &sched_bottom_, &sched_size_);
#endif
  }

  void resume(fiber& f) {
    threadIdx = f.tid;
    current() = &f;
#if DSK_SIMT_ASAN
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f.stack, f.stack_size);
#endif
#if DSK_SIMT_FAST_SWITCH
    switch_stack(&sched_sp_, f.sp);
#else
    swapcontext(&sched_ctx_, &f.ctx);
#endif
#if DSK_SIMT_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    current() = nullptr;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw error(dsk::detail::concat("dsk::simt: block ", idx_str(blockIdx), " of grid ",
                                    idx_str(uint3{gridDim.x, gridDim.y, gridDim.z}), ", block shape ",
                                    idx_str(uint3{blockDim.x, blockDim.y, blockDim.z}), ": ", what));
  }

  void schedule() {
    const unsigned n = nthreads_;
    for (;;) {
      for (unsigned i = 0; i < n; ++i) {
        if (fibers_[i].st != state::ready) continue;
        resume(fibers_[i]);
        if (error_) std::rethrow_exception(error_);
      }
      unsigned done = 0, at_barrier = 0, at_warp = 0;
      for (unsigned i = 0; i < n; ++i) {
        const state s = fibers_[i].st;
        done += s == state::done;
        at_barrier += s == state::barrier;
        at_warp += s == state::warp;
      }
      if (done == n) return;
      if (at_warp) {
        if (resolve_warps()) continue;
        report_warp_deadlock();
      }
      // Every live thread waits at a barrier.
      if (done) {
        const fiber* waiting = nullptr;
        const fiber* exited = nullptr;
        for (unsigned i = 0; i < n; ++i) {
          if (fibers_[i].st == state::barrier && !waiting) waiting = &fibers_[i];
          if (fibers_[i].st == state::done && !exited) exited = &fibers_[i];
        }
        fail(dsk::detail::concat("barrier divergence: ", at_barrier, " of ", n,
                                 " threads wait at __syncthreads (", where(waiting->site), "), e.g. thread ",
                                 idx_str(waiting->tid), ", but ", done, " threads, e.g. thread ",
                                 idx_str(exited->tid), ", exited without reaching it"));
      }
      const fiber& first = fibers_[0];
      for (unsigned i = 1; i < n; ++i) {
        const auto& s = fibers_[i].site;
        if (s.line() != first.site.line() || std::strcmp(s.file_name(), first.site.file_name()) != 0 ||
            s.column() != first.site.column())
          fail(dsk::detail::concat("barrier divergence: thread ", idx_str(first.tid),
                                   " waits at __syncthreads (", where(first.site), ") but thread ",
                                   idx_str(fibers_[i].tid), " waits at a different __syncthreads (", where(s),
                                   ")"));
      }
      // Release: every thread gets the number of threads that passed a true predicate (__syncthreads_count).
      std::uint64_t count = 0;
      for (unsigned i = 0; i < n; ++i) count += fibers_[i].value;
      for (unsigned i = 0; i < n; ++i) {
        fibers_[i].result = count;
        fibers_[i].st = state::ready;
      }
    }
  }

  // Completes every warp operation whose participants have all arrived. True when some fiber became ready.
  bool resolve_warps() {
    bool progress = false;
    const unsigned warps = (nthreads_ + 31) / 32;
    for (unsigned w = 0; w < warps; ++w) {
      const unsigned exists = warp_exists_mask(w);
      fiber* lanes = &fibers_[w * 32];
      for (unsigned l = 0; l < 32; ++l) {
        if (!(exists >> l & 1u) || lanes[l].st != state::warp) continue;
        const fiber& f = lanes[l];
        const unsigned mask = f.mask;
        unsigned participants = 0;
        bool complete = true;
        for (unsigned p = 0; p < 32 && complete; ++p) {
          if (!(mask >> p & 1u) || !(exists >> p & 1u)) continue;  // lanes that do not exist are inactive
          const fiber& q = lanes[p];
          if (q.st == state::done) continue;  // exited lanes named in the mask are allowed
          if (q.st != state::warp) {
            complete = false;  // still running or at a block barrier
            break;
          }
          if (q.mask != mask || q.op != f.op)
            fail(dsk::detail::concat("warp ", w, ": lane ", l, " calls ", op_name(f.op), " with mask 0x",
                                     hex(mask), " (", where(f.site), ") but lane ", p, " calls ",
                                     op_name(q.op), " with mask 0x", hex(q.mask), " (", where(q.site), ")"));
          participants |= 1u << p;
        }
        if (!complete) continue;
        complete_op(w, lanes, participants);
        progress = true;
      }
    }
    return progress;
  }

  static std::string hex(unsigned v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x", v);
    return buf;
  }

  void complete_op(unsigned w, fiber* lanes, unsigned participants) {
    const fiber& f0 = lanes[std::countr_zero(participants)];
    const warp_op op = f0.op;
    std::uint64_t acc = 0;
    switch (op) {
      case warp_op::vote_all:
        acc = 1;
        break;
      case warp_op::reduce_and:
        acc = 0xffffffffu;
        break;
      case warp_op::reduce_min_u:
        acc = 0xffffffffu;
        break;
      case warp_op::reduce_min_i:
        acc = static_cast<std::uint32_t>(INT32_MAX);
        break;
      case warp_op::reduce_max_i:
        acc = static_cast<std::uint32_t>(INT32_MIN);
        break;
      default:
        acc = 0;
    }
    for (unsigned p = 0; p < 32; ++p) {
      if (!(participants >> p & 1u)) continue;
      const auto v32 = static_cast<std::uint32_t>(lanes[p].value);
      const auto i32 = static_cast<std::int32_t>(v32);
      switch (op) {
        case warp_op::vote_all:
          acc &= v32 != 0;
          break;
        case warp_op::vote_any:
          acc |= v32 != 0;
          break;
        case warp_op::ballot:
          acc |= (v32 != 0 ? 1ull : 0ull) << p;
          break;
        case warp_op::reduce_add:
          acc = static_cast<std::uint32_t>(acc + v32);
          break;
        case warp_op::reduce_min_u:
          acc = std::min<std::uint32_t>(static_cast<std::uint32_t>(acc), v32);
          break;
        case warp_op::reduce_max_u:
          acc = std::max<std::uint32_t>(static_cast<std::uint32_t>(acc), v32);
          break;
        case warp_op::reduce_min_i:
          acc = static_cast<std::uint32_t>(std::min(static_cast<std::int32_t>(acc), i32));
          break;
        case warp_op::reduce_max_i:
          acc = static_cast<std::uint32_t>(std::max(static_cast<std::int32_t>(acc), i32));
          break;
        case warp_op::reduce_and:
          acc &= v32;
          break;
        case warp_op::reduce_or:
          acc |= v32;
          break;
        case warp_op::reduce_xor:
          acc ^= v32;
          break;
        default:
          break;
      }
    }
    for (unsigned p = 0; p < 32; ++p) {
      if (!(participants >> p & 1u)) continue;
      fiber& f = lanes[p];
      switch (op) {
        case warp_op::shfl:
        case warp_op::shfl_up:
        case warp_op::shfl_down:
        case warp_op::shfl_xor: {
          const unsigned src = source_lane(op, p, f.arg, f.width);
          if (!(participants >> src & 1u))
            fail(dsk::detail::concat("warp ", w, ": lane ", p, " (thread ", idx_str(f.tid), ") reads lane ",
                                     src, " in ", op_name(op), " (", where(f.site), "), but lane ", src,
                                     " does not take part (not in the mask 0x", hex(f.mask),
                                     ", exited, or not in the block): the value is undefined"));
          f.result = lanes[src].value;
          break;
        }
        default:
          f.result = acc;
      }
      f.st = state::ready;
    }
  }

  // The lane a shuffle reads, with CUDA's rules for `width` segments (out-of-segment reads return own value).
  static unsigned source_lane(warp_op op, unsigned lane, int arg, int width) {
    const unsigned w = static_cast<unsigned>(width);
    const unsigned base = lane & ~(w - 1u);
    switch (op) {
      case warp_op::shfl:
        return base + (static_cast<unsigned>(arg) & (w - 1u));
      case warp_op::shfl_up:
        return (lane - base) < static_cast<unsigned>(arg) ? lane : lane - static_cast<unsigned>(arg);
      case warp_op::shfl_down:
        return (lane - base) + static_cast<unsigned>(arg) >= w ? lane : lane + static_cast<unsigned>(arg);
      case warp_op::shfl_xor: {
        const unsigned src = lane ^ static_cast<unsigned>(arg);
        return src >= base + w ? lane : src;
      }
      default:
        return lane;
    }
  }

  [[noreturn]] void report_warp_deadlock() const {
    for (unsigned i = 0; i < nthreads_; ++i) {
      const fiber& f = fibers_[i];
      if (f.st != state::warp) continue;
      const unsigned exists = warp_exists_mask(f.warp);
      for (unsigned p = 0; p < 32; ++p) {
        if (!(f.mask >> p & 1u) || !(exists >> p & 1u)) continue;
        const fiber& q = fibers_[f.warp * 32 + p];
        if (q.st == state::barrier)
          fail(dsk::detail::concat("warp ", f.warp, ": lane ", f.lane, " waits in ", op_name(f.op),
                                   " with mask 0x", hex(f.mask), " (", where(f.site), ") for lane ", p,
                                   ", which waits at __syncthreads (", where(q.site), "): deadlock"));
      }
    }
    fail("warp operations cannot complete (deadlock)");
  }

  std::vector<fiber> fibers_;
  unsigned nthreads_ = 0;
#if DSK_SIMT_FAST_SWITCH
  void* sched_sp_ = nullptr;
#else
  ucontext_t sched_ctx_{};
#endif
  const void* sched_bottom_ = nullptr;
  std::size_t sched_size_ = 0;
  const std::function<void()>* body_ = nullptr;
  std::exception_ptr error_;
  uint3 error_thread_{};
  std::uint64_t serial_ = 0;
  std::vector<unsigned char> dyn_;
  std::size_t dyn_bytes_ = 0;
};

inline fiber& self(const char* what) {
  fiber* f = runner::current();
  if (!f)
    throw error(dsk::detail::concat("dsk::simt: ", what, " called outside a kernel launched by dsk::simt"));
  return *f;
}

template <class T>
std::uint64_t to_bits(T v) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8,
                "warp shuffles move values of at most 8 bytes");
  std::uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
T from_bits(std::uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

// One warp-level collective: checks the mask, parks until all participants arrive, returns the result bits.
inline std::uint64_t warp_collective(warp_op op, unsigned mask, std::uint64_t value, int arg, int width,
                                     const dsk::source_location& loc) {
  fiber& f = self(op_name(op));
  if (!(mask >> f.lane & 1u))
    throw error(dsk::detail::concat(
        "dsk::simt: block ", idx_str(blockIdx), ", thread ", idx_str(f.tid), " (lane ", f.lane,
        "): ", op_name(op), " at ", where(loc), " with mask 0x",
        [&] {
          char b[16];
          std::snprintf(b, sizeof b, "%08x", mask);
          return std::string(b);
        }(),
        " that excludes the calling lane"));
  if (width < 1 || width > 32 || (width & (width - 1)) != 0)
    throw error(dsk::detail::concat("dsk::simt: ", op_name(op), " at ", where(loc),
                                    ": width must be a power of two in [1, 32], got ", width));
  f.op = op;
  f.mask = mask;
  f.value = value;
  f.arg = arg;
  f.width = width;
  f.site = loc;
  runner::get().park(state::warp);
  return f.result;
}

}  // namespace detail

// Runs body() (a call of the kernel with its arguments) for every thread of every block of cfg. Blocks run in
// parallel on dsk::parallel_for's threads; the threads of a block are fibers on one OS thread. Throws
// dsk::simt::error for an invalid launch or an error found while running; exceptions from the kernel
// propagate.
inline void launch(const launch_config& cfg, const std::function<void()>& body) {
  const dim3 g = cfg.grid, b = cfg.block;
  const unsigned long long threads = 1ull * b.x * b.y * b.z;
  if (detail::runner::current())
    throw error("dsk::simt::launch: called from inside a kernel (dynamic parallelism is not emulated)");
  if (b.x == 0 || b.y == 0 || b.z == 0 || threads > max_threads_per_block || b.z > max_block_z)
    throw error(dsk::detail::concat("dsk::simt::launch: argument 'block': expected 1..",
                                    max_threads_per_block, " threads with z <= ", max_block_z, ", got ",
                                    detail::idx_str(uint3{b.x, b.y, b.z})));
  if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > max_grid_x || g.y > max_grid_yz || g.z > max_grid_yz)
    throw error(
        dsk::detail::concat("dsk::simt::launch: argument 'grid': expected x in [1, 2^31-1] and y, z in [1, ",
                            max_grid_yz, "], got ", detail::idx_str(uint3{g.x, g.y, g.z})));
  if (cfg.shared_bytes > max_shared_bytes)
    throw error(dsk::detail::concat("dsk::simt::launch: argument 'shared_bytes': expected <= ",
                                    max_shared_bytes, ", got ", cfg.shared_bytes));
  const index_t blocks = static_cast<index_t>(g.x) * g.y * g.z;
  dsk::parallel_for(0, blocks, [&](index_t i) {
    const auto u = static_cast<std::uint64_t>(i);
    const uint3 bid{static_cast<unsigned>(u % g.x), static_cast<unsigned>((u / g.x) % g.y),
                    static_cast<unsigned>(u / (1ull * g.x * g.y))};
    detail::runner::get().run_block(cfg, bid, body);
  });
}

// ---- checked shared memory
// --------------------------------------------------------------------------------------
[[noreturn]] inline void shared_out_of_bounds(const char* name, long long i, long long n) {
  const detail::fiber* f = detail::runner::current();
  throw error(dsk::detail::concat("dsk::simt: block ", detail::idx_str(blockIdx), ", thread ",
                                  detail::idx_str(f ? f->tid : uint3{}), ": shared memory '", name,
                                  "': index ", i, " out of bounds [0, ", n, ")"));
}

// Reference to a shared array A = T[N] (T may itself be an array): every subscript is bounds-checked.
template <class A>
class shared_ref;
template <class T, std::size_t N>
class shared_ref<T[N]> {
 public:
  shared_ref(T* p, const char* name) : p_(p), name_(name) {}
  template <std::integral I>
  decltype(auto) operator[](I i) const {
    if (static_cast<long long>(i) < 0 || static_cast<unsigned long long>(i) >= N)
      shared_out_of_bounds(name_, static_cast<long long>(i), static_cast<long long>(N));
    if constexpr (std::is_array_v<T>)
      return shared_ref<T>(p_[i], name_);
    else
      return static_cast<T&>(p_[i]);
  }
  T* data() const { return p_; }
  operator T*() const { return p_; }

 private:
  T* p_;
  const char* name_;
};

// A statically sized __shared__ array in checked mode: poisoned at the first access of every block.
template <class A>
class shared {
  static_assert(std::is_array_v<A> && std::extent_v<A> > 0,
                "DSK_SHARED needs an array type, e.g. float[256]");
  using elem = std::remove_extent_t<A>;

 public:
  explicit shared(const char* name) : name_(name) {}
  template <std::integral I>
  decltype(auto) operator[](I i) {
    return ref()[i];
  }
  elem* data() { return ref().data(); }
  operator elem*() { return data(); }

 private:
  shared_ref<A> ref() {
    const std::uint64_t s = detail::runner::get().block_serial();
    if (serial_ != s) {
      std::memset(static_cast<void*>(&data_), 0xff, sizeof(A));
      serial_ = s;
    }
    return shared_ref<A>(data_, name_);
  }
  alignas(16) A data_;
  std::uint64_t serial_ = 0;
  const char* name_;
};

// Pointer into dynamic shared memory in checked mode: subscripts and dereferences are bounds-checked.
template <class T>
class checked_ptr {
 public:
  checked_ptr(T* p, T* lo, T* hi, const char* name) : p_(p), lo_(lo), hi_(hi), name_(name) {}
  template <std::integral I>
  T& operator[](I i) const {
    check(static_cast<long long>(i));
    return p_[i];
  }
  T& operator*() const {
    check(0);
    return *p_;
  }
  T* operator->() const {
    check(0);
    return p_;
  }
  template <std::integral I>
  checked_ptr operator+(I i) const {
    return {p_ + i, lo_, hi_, name_};
  }
  template <std::integral I>
  checked_ptr operator-(I i) const {
    return {p_ - i, lo_, hi_, name_};
  }
  template <std::integral I>
  checked_ptr& operator+=(I i) {
    p_ += i;
    return *this;
  }
  T* get() const { return p_; }
  operator T*() const { return p_; }

 private:
  void check(long long i) const {
    const T* q = p_ + i;
    if (q < lo_ || q >= hi_) shared_out_of_bounds(name_, q - lo_, hi_ - lo_);
  }
  T* p_;
  T* lo_;
  T* hi_;
  const char* name_;
};

// The dynamic shared memory of the running block, viewed as T from byte `offset` on.
template <class T>
auto dynamic_shared([[maybe_unused]] const char* name, std::size_t offset = 0) {
  detail::runner& r = detail::runner::get();
  unsigned char* base = r.dynamic_shared();
  const std::size_t bytes = r.dynamic_shared_bytes();
  T* p = reinterpret_cast<T*>(base + offset);
#if DSK_SIMT_CHECKED
  T* lo = reinterpret_cast<T*>(base);
  T* hi = reinterpret_cast<T*>(base + bytes / sizeof(T) * sizeof(T));
  return checked_ptr<T>(p, lo, hi, name);
#else
  (void)bytes;
  return p;
#endif
}

}  // namespace dsk::simt

// ---- barriers, warp intrinsics, atomics and math, as global functions like CUDA's
// ------------------------------
inline int __syncthreads_count(int pred, dsk::source_location loc = dsk::source_location::current()) {
  dsk::simt::detail::fiber& f = dsk::simt::detail::self("__syncthreads");
  f.site = loc;
  f.value = pred != 0;
  dsk::simt::detail::runner::get().park(dsk::simt::detail::state::barrier);
  return static_cast<int>(f.result);
}
inline void __syncthreads(dsk::source_location loc = dsk::source_location::current()) {
  __syncthreads_count(0, loc);
}
inline int __syncthreads_and(int pred, dsk::source_location loc = dsk::source_location::current()) {
  return __syncthreads_count(pred, loc) == static_cast<int>(blockDim.x * blockDim.y * blockDim.z);
}
inline int __syncthreads_or(int pred, dsk::source_location loc = dsk::source_location::current()) {
  return __syncthreads_count(pred, loc) != 0;
}
inline void __syncwarp(unsigned mask = 0xffffffffu,
                       dsk::source_location loc = dsk::source_location::current()) {
  dsk::simt::detail::warp_collective(dsk::simt::detail::warp_op::sync, mask, 0, 0, 32, loc);
}
inline unsigned __activemask() {
  const auto& f = dsk::simt::detail::self("__activemask");
  return dsk::simt::detail::runner::get().active_mask(f.warp);
}

template <class T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32,
              dsk::source_location loc = dsk::source_location::current()) {
  using namespace dsk::simt::detail;
  return from_bits<T>(warp_collective(warp_op::shfl, mask, to_bits(var), src_lane, width, loc));
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32,
                 dsk::source_location loc = dsk::source_location::current()) {
  using namespace dsk::simt::detail;
  return from_bits<T>(
      warp_collective(warp_op::shfl_up, mask, to_bits(var), static_cast<int>(delta), width, loc));
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32,
                   dsk::source_location loc = dsk::source_location::current()) {
  using namespace dsk::simt::detail;
  return from_bits<T>(
      warp_collective(warp_op::shfl_down, mask, to_bits(var), static_cast<int>(delta), width, loc));
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32,
                  dsk::source_location loc = dsk::source_location::current()) {
  using namespace dsk::simt::detail;
  return from_bits<T>(warp_collective(warp_op::shfl_xor, mask, to_bits(var), lane_mask, width, loc));
}
inline int __all_sync(unsigned mask, int pred, dsk::source_location loc = dsk::source_location::current()) {
  using namespace dsk::simt::detail;
  return static_cast<int>(warp_collective(warp_op::vote_all, mask, pred != 0, 0, 32, loc));
}
inline int __any_sync(unsigned mask, int pred, dsk::source_location loc = dsk::source_location::current()) {
  using namespace dsk::simt::detail;
  return static_cast<int>(warp_collective(warp_op::vote_any, mask, pred != 0, 0, 32, loc));
}
inline unsigned __ballot_sync(unsigned mask, int pred,
                              dsk::source_location loc = dsk::source_location::current()) {
  using namespace dsk::simt::detail;
  return static_cast<unsigned>(warp_collective(warp_op::ballot, mask, pred != 0, 0, 32, loc));
}
inline unsigned __reduce_add_sync(unsigned mask, unsigned v,
                                  dsk::source_location loc = dsk::source_location::current()) {
  using namespace dsk::simt::detail;
  return static_cast<unsigned>(warp_collective(warp_op::reduce_add, mask, v, 0, 32, loc));
}
inline int __reduce_add_sync(unsigned mask, int v,
                             dsk::source_location loc = dsk::source_location::current()) {
  using namespace dsk::simt::detail;
  return static_cast<int>(
      warp_collective(warp_op::reduce_add, mask, static_cast<std::uint32_t>(v), 0, 32, loc));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v,
                                  dsk::source_location loc = dsk::source_location::current()) {
  using namespace dsk::simt::detail;
  return static_cast<unsigned>(warp_collective(warp_op::reduce_min_u, mask, v, 0, 32, loc));
}
inline int __reduce_min_sync(unsigned mask, int v,
                             dsk::source_location loc = dsk::source_location::current()) {
  using namespace dsk::simt::detail;
  return static_cast<int>(static_cast<std::uint32_t>(
      warp_collective(warp_op::reduce_min_i, mask, static_cast<std::uint32_t>(v), 0, 32, loc)));
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v,
                                  dsk::source_location loc = dsk::source_location::current()) {
  using namespace dsk::simt::detail;
  return static_cast<unsigned>(warp_collective(warp_op::reduce_max_u, mask, v, 0, 32, loc));
}
inline int __reduce_max_sync(unsigned mask, int v,
                             dsk::source_location loc = dsk::source_location::current()) {
  using namespace dsk::simt::detail;
  return static_cast<int>(static_cast<std::uint32_t>(
      warp_collective(warp_op::reduce_max_i, mask, static_cast<std::uint32_t>(v), 0, 32, loc)));
}
inline unsigned __reduce_and_sync(unsigned mask, unsigned v,
                                  dsk::source_location loc = dsk::source_location::current()) {
  using namespace dsk::simt::detail;
  return static_cast<unsigned>(warp_collective(warp_op::reduce_and, mask, v, 0, 32, loc));
}
inline unsigned __reduce_or_sync(unsigned mask, unsigned v,
                                 dsk::source_location loc = dsk::source_location::current()) {
  using namespace dsk::simt::detail;
  return static_cast<unsigned>(warp_collective(warp_op::reduce_or, mask, v, 0, 32, loc));
}
inline unsigned __reduce_xor_sync(unsigned mask, unsigned v,
                                  dsk::source_location loc = dsk::source_location::current()) {
  using namespace dsk::simt::detail;
  return static_cast<unsigned>(warp_collective(warp_op::reduce_xor, mask, v, 0, 32, loc));
}

// Atomics: blocks run on different OS threads at the same time, so these are real atomic operations.
template <class T>
T atomicAdd(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_add(v);
}
template <class T>
T atomicSub(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_sub(v);
}
template <class T>
T atomicExch(T* p, T v) {
  return std::atomic_ref<T>(*p).exchange(v);
}
template <class T>
T atomicCAS(T* p, T expected, T desired) {
  std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired);
  return expected;  // the old value, whether or not the exchange happened
}
template <class T>
T atomicMax(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (old < v && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}
template <class T>
T atomicMin(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (v < old && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}
template <class T>
T atomicAnd(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_and(v);
}
template <class T>
T atomicOr(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_or(v);
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

template <class T>
T __ldg(const T* p) {
  return *p;
}
inline int __popc(unsigned v) { return std::popcount(v); }
inline int __popcll(unsigned long long v) { return std::popcount(v); }
inline int __clz(unsigned v) { return std::countl_zero(v); }
inline int __ffs(unsigned v) { return v ? std::countr_zero(v) + 1 : 0; }
inline unsigned __brev(unsigned v) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((v >> i) & 1u) << (31 - i);
  return r;
}
inline float __int_as_float(int v) { return std::bit_cast<float>(v); }
inline int __float_as_int(float v) { return std::bit_cast<int>(v); }
inline float __uint_as_float(unsigned v) { return std::bit_cast<float>(v); }
inline unsigned __float_as_uint(float v) { return std::bit_cast<unsigned>(v); }

// Fast-math intrinsics map to the accurate host functions: differences stay far inside the tests' tolerances.
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline void __sincosf(float x, float* s, float* c) {
  *s = sinf(x);
  *c = cosf(x);
}
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
