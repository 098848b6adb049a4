// Pieces shared by the example runners (dsk_v1, dsk_v2, dsk_lite) and their models, built only from dsk's
// public headers: the weight format chosen on the command line, the checkpoint loader that converts (or
// quantizes) one tensor at a time and scans it for NaN / infinity, the SwiGLU MLP loader, time per kernel
// family, and the tokenizer helpers (built-in prompt, tokenizer-vs-model check, streaming decode). Errors
// name the runner that is passed in. The command-line helpers (CLI11) are in cli.hpp.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "dsk/core.hpp"
#include "dsk/io/io.hpp"
#include "dsk/nn/finite.hpp"
#include "dsk/nn/linear.hpp"
#include "dsk/quant/quantize.hpp"
#include "int4_layout.hpp"
#include "lora.hpp"

#include <unistd.h>

namespace dsk_examples {

using namespace dsk;

// How weights are held in memory. checkpoint: the file's dtype (bf16 stays bf16, f32 stays f32); int8 / int4:
// symmetric per-output-channel codes with f32 scales, quantized while loading, one tensor at a time.
enum class weight_format { checkpoint, f32, bf16, int8, int4 };

inline weight_format parse_weight_format(std::string_view s, std::string_view runner = "dsk") {
  if (s == "checkpoint" || s == "auto") return weight_format::checkpoint;
  if (s == "f32") return weight_format::f32;
  if (s == "bf16") return weight_format::bf16;
  if (s == "int8") return weight_format::int8;
  if (s == "int4") return weight_format::int4;
  throw unsupported(std::string(runner) + ": --weights '" + std::string(s) +
                    "' is not supported; choices: checkpoint, f32, bf16, int8, int4");
}

// ---- weights in any format ----------------------------------------------------------------------------
inline nn::linear_format to_linear_format(weight_format f) {
  switch (f) {
    case weight_format::f32:
      return nn::parse_linear_format("f32");
    case weight_format::bf16:
      return nn::parse_linear_format("bf16");
    case weight_format::int8:
      return nn::parse_linear_format("int8");
    case weight_format::int4:
      return nn::parse_linear_format("int4");
    case weight_format::checkpoint:
      break;
  }
  return {};
}

// What model::load checks besides the structure (which is always checked).
struct load_options {
  // Every weight the model uses is scanned once for NaN and infinities (nn::first_nonfinite, vectorised,
  // over the mapped tensor in its checkpoint dtype): one read of the checkpoint's bytes. false skips it (a
  // corrupt checkpoint then shows as non-finite logits, which model::forward reports).
  bool check_finite = true;
  // A PEFT LoRA adapter directory (lora.hpp), empty for none: attached to the nn::linear layers it targets,
  // or merged into their weights with lora_merge (weights that are not an nn::linear are always merged).
  std::filesystem::path lora{};
  bool lora_merge = false;
  // Expert parallelism (examples/v2/expert_parallel.hpp): this process holds only the routed experts
  // [shard * E / shards, (shard + 1) * E / shards) of every MoE layer (E a multiple of shards); the others
  // are neither read nor checked. Everything else (attention, dense layers, shared experts, router, head) is
  // held by every process.
  int expert_shard = 0, expert_shards = 1;
};

// Reads tensors of one checkpoint (or of the built-in random weights) into the chosen format.
class loader {
 public:
  // runner names the program in errors (its model's messages say "<runner>::model").
  loader(const io::checkpoint& ck, weight_format fmt, load_options opts = {}, std::string runner = "dsk")
      : ck_(ck), fmt_(fmt), opts_(opts), runner_(std::move(runner)) {
    if (!opts_.lora.empty()) lora_ = read_peft_adapter(opts_.lora, runner_);
  }

  // LoRA: whether the weight has an adapter still to be used, and the check that every adapter found its
  // weight (call once the model is built: an adapter for a module the model does not have is an error, not
  // silently ignored).
  bool has_lora(const std::string& name) const { return lora_ && lora_->weights.count(name) > 0; }
  index_t lora_used() const { return lora_used_; }  // adapters attached or merged so far
  void check_lora_used() const {
    if (!lora_ || lora_->weights.empty()) return;
    const auto& [name, l] = *lora_->weights.begin();
    fail(runner_, ": LoRA adapter '", lora_->label, "' targets '", name, "' (rank ", l.rank(), ")",
         lora_->weights.size() > 1 ? " and " + std::to_string(lora_->weights.size() - 1) + " other weights"
                                   : "",
         ", which this model does not have");
  }

  const io::checkpoint& checkpoint() const { return ck_; }

  // A Lite int4 checkpoint (int4_layout.hpp): every 2-D weight X.weight but the router gates is stored as
  // X.qweight / X.scales in format f, and linear(), mlp() and int4_view() view them in the mapping, not
  // converted (the format must be weight_format::checkpoint). act: the products' activations (f32, or int8
  // per token: the W4A8 products).
  void set_int4_layout(quant::format f, quant::activations act = quant::activations::f32) {
    if (fmt_ != weight_format::checkpoint)
      fail(runner_, ": a Lite int4 checkpoint runs in its stored format; --weights must be checkpoint");
    int4_ = f;
    act_ = act;
  }
  quant::activations activations() const { return act_; }
  const std::optional<quant::format>& int4_layout() const { return int4_; }

  // An FP8 block-scaled checkpoint (config.json's quantization_config, DeepSeek-V3): weights stored as
  // F8_E4M3 / F8_E5M2 with X.weight_scale_inv are dequantized on load, one tensor at a time, to fp8_dtype().
  void set_fp8_blocks(io::fp8_block_size b) { fp8_ = b; }
  bool is_fp8(const std::string& name) const { return io::is_fp8(ck_.info(name).dtype); }
  // What an FP8 weight becomes: f32 for --weights f32 and for int8 / int4 (quantized from the exact
  // dequantization), else bf16 (the dtype the V3 models were trained in; half the memory of f32).
  bool fp8_as_f32() const {
    return fmt_ == weight_format::f32 || fmt_ == weight_format::int8 || fmt_ == weight_format::int4;
  }
  // A 2-D weight [shape] as T, one tensor at a time: FP8 dequantized by its blocks, other dtypes converted.
  // A LoRA adapter for it is merged (then the result rounded to T).
  template <float_storage T>
  tensor<T, 2> dense(const std::string& name, std::array<index_t, 2> shape) const {
    auto adapter = take_lora(name);
    if (!adapter) return read_weight<T>(name, shape);
    auto w = read_weight<float>(name, shape);
    with_weight_name(name, [&] { nn::merge_lora(w.view(), *adapter); });
    if constexpr (std::is_same_v<T, float>) {
      return w;
    } else {  // the merged weight rounded once (a bf16 expert bank with an adapter)
      tensor<T, 2> t(shape, uninitialized);
      for (index_t i = 0; i < w.size(); ++i) t.data()[i] = from_float<T>(w.data()[i]);
      return t;
    }
  }

  // A 2-D weight of exactly this shape, converted one tensor at a time (viewed in place in the int4 layout).
  // With a LoRA adapter for the weight: attached to the layer, or (lora_merge) merged into the weight first.
  nn::linear linear(const std::string& name, index_t out, index_t in) const {
    const bool merge = opts_.lora_merge && has_lora(name);
    nn::linear l;
    if (int4_) {
      if (merge)
        fail(runner_, ": --lora-merge cannot merge into the mapped int4 codes of '", name, "'; use --lora");
      l = with_int4_format(
          *int4_, [&](auto k) { return nn::linear(int4_view<decltype(k)::value>(name, out, in), act_); });
    } else if (merge) {
      return nn::linear(dense<float>(name, {out, in}).cview(), merged_format(name));
    } else {
      l = convert(name, out, in);
      release(name);
    }
    if (auto adapter = take_lora(name)) with_weight_name(name, [&] { l.set_adapter(std::move(*adapter)); });
    return l;
  }
  // The int4 layout's codes and scales of the weight X.weight [out, in] (its scales scanned for NaN / inf).
  template <quant::format F>
  quant::qweight_view<F> int4_view(const std::string& name, index_t out, index_t in) const {
    const std::string base = base_name(name);
    const auto v = int4_weight<F>(ck_, base, out, in);
    check_finite(base + ".scales");
    return v;
  }
  // The weight as f32 [out, in]: dequantized from the int4 layout (code x scale, exact in f32), else read.
  tensor<float, 2> dense_f32(const std::string& name, index_t out, index_t in) const {
    if (!int4_) return f32(name, {out, in});
    tensor<float, 2> t(std::array<index_t, 2>{out, in}, uninitialized);
    with_int4_format(
        *int4_, [&](auto k) { quant::dequantize(int4_view<decltype(k)::value>(name, out, in), t.view()); });
    return t;
  }
  tensor<float, 2> f32(const std::string& name, std::array<index_t, 2> shape) const {
    return dense<float>(name, shape);
  }
  tensor<float, 1> vec(const std::string& name, index_t n) const {
    const std::array<index_t, 1> shape{n};
    ck_.check_shape(name, shape);
    check_finite(name);
    auto t = ck_.read<float, 1>(name, shape);
    release(name);
    return t;
  }
  weight_format format() const { return fmt_; }

  // Throws dsk::error naming the tensor, its file and the first element that is NaN or infinite (F32, BF16,
  // F16 and F64 tensors; integer dtypes hold no such values, and FP8 codes are checked as they are
  // dequantized). Call after the shape check, before the tensor is used. Adds the tensor's bytes to
  // checked_bytes().
  void check_finite(const std::string& name) const {
    if (!opts_.check_finite) return;
    const io::tensor_info& t = ck_.info(name);
    const auto b = ck_.bytes(name);
    index_t k = -1;
    float value = 0;
    auto scan = [&]<class T>(std::type_identity<T>) {
      const index_t n = static_cast<index_t>(b.size() / sizeof(T));
      if (reinterpret_cast<std::uintptr_t>(b.data()) % alignof(T) == 0) {
        const view<const T, 1> v(reinterpret_cast<const T*>(b.data()), dims<1>(n), {1});
        k = nn::first_nonfinite(v);
        if (k >= 0) value = static_cast<float>(v(k));
      } else {  // a tensor the file does not align for its dtype: checked in an aligned copy
        tensor<T, 1> c(std::array<index_t, 1>{n}, uninitialized);
        if (n > 0) std::memcpy(c.data(), b.data(), b.size());
        k = nn::first_nonfinite(c.cview());
        if (k >= 0) value = static_cast<float>(c(k));
      }
    };
    switch (t.dtype) {
      case io::st_dtype::F32:
        scan(std::type_identity<float>{});
        break;
      case io::st_dtype::BF16:
        scan(std::type_identity<bf16>{});
        break;
      case io::st_dtype::F16:
        scan(std::type_identity<f16>{});
        break;
      case io::st_dtype::F64:  // rare in checkpoints: scalar
        for (std::size_t i = 0; i < b.size() / 8 && k < 0; ++i) {
          double d;
          std::memcpy(&d, b.data() + 8 * i, 8);
          if (!std::isfinite(d)) k = static_cast<index_t>(i), value = static_cast<float>(d);
        }
        break;
      default:
        return;
    }
    checked_bytes_ += static_cast<std::int64_t>(b.size());
    if (k < 0) return;
    std::vector<index_t> at(t.shape.size());  // the element's index in the tensor's shape
    for (std::size_t d = t.shape.size(), rest = static_cast<std::size_t>(k); d-- > 0;) {
      const auto e = static_cast<std::size_t>(std::max<index_t>(t.shape[d], 1));
      at[d] = static_cast<index_t>(rest % e);
      rest /= e;
    }
    const auto [file, info] = ck_.find(name);
    (void)info;
    fail(runner_, "::model: tensor '", name, "' in '", file ? file->label() : ck_.label(), "' (",
         io::name(t.dtype), ", shape ", io::shape_string(t.shape), ") holds a non-finite value: element ", k,
         " ", io::shape_string(at), " = ", value,
         " (the first one); the checkpoint is corrupt or was saved from a diverged run (load_options "
         "check_finite = false, ",
         runner_, " --no-weight-check, loads it anyway)");
  }
  // Bytes of the tensors check_finite has scanned.
  std::int64_t checked_bytes() const { return checked_bytes_; }

  // Drops the mapped file pages of a tensor that has been converted (the converted copy is what the model
  // keeps), so that resident memory while loading stays near the size of the result instead of growing by
  // every byte of the checkpoint read so far. The pages come back from the file if touched again.
  void release(const std::string& name) const { ck_.release(name); }

 private:
  // Runs f; a dsk::error it throws (an adapter that does not fit) is rethrown naming the weight and adapter.
  template <class F>
  void with_weight_name(const std::string& name, F&& f) const {
    try {
      f();
    } catch (const dsk::error& e) {
      fail(runner_, ": LoRA adapter '", lora_->label, "' for weight '", name, "' ",
           io::shape_string(ck_.info(name).shape), ": ", e.what());
    }
  }

  std::optional<nn::lora_adapter> take_lora(const std::string& name) const {
    if (!has_lora(name)) return std::nullopt;
    const auto it = lora_->weights.find(name);
    nn::lora_adapter l = std::move(it->second);
    lora_->weights.erase(it);
    ++lora_used_;
    return l;
  }
  // The weight as T without its adapter (FP8 dequantized), shape- and NaN-checked, pages released.
  template <float_storage T>
  tensor<T, 2> read_weight(const std::string& name, std::array<index_t, 2> shape) const {
    ck_.check_shape(name, shape);
    check_finite(name);
    tensor<T, 2> t = is_fp8(name) ? fp8<T>(name, shape) : ck_.read<T, 2>(name, shape);
    release(name);
    return t;
  }
  // What a merged weight is held as: the chosen format, or for `checkpoint` the file's float dtype (FP8:
  // bf16).
  nn::linear_format merged_format(const std::string& name) const {
    if (fmt_ != weight_format::checkpoint) return to_linear_format(fmt_);
    const io::st_dtype d = ck_.info(name).dtype;
    return nn::parse_linear_format(d == io::st_dtype::F32 ? "f32" : d == io::st_dtype::F16 ? "f16" : "bf16");
  }

  template <float_storage T>
  tensor<T, 2> fp8(const std::string& name, std::array<index_t, 2> shape) const {
    if (!fp8_)
      fail(runner_, "::model: tensor '", name, "' in '", ck_.label(), "' is ", io::name(ck_.info(name).dtype),
           " but config.json has no quantization_config (an FP8 checkpoint names its weight_block_size "
           "there)");
    const std::string scales = io::fp8_scale_name(name);
    auto t = io::read_fp8_block_scaled<T>(ck_, name, shape, *fp8_, scales);
    release(scales);
    return t;
  }

  nn::linear convert(const std::string& name, index_t out, index_t in) const {
    const std::array<index_t, 2> shape{out, in};
    ck_.check_shape(name, shape);
    check_finite(name);
    const io::st_dtype dt = ck_.info(name).dtype;
    const auto f = to_linear_format(fmt_);
    if (io::is_fp8(dt))
      return fp8_as_f32() ? nn::linear(fp8<float>(name, shape).cview(), f)
                          : nn::linear(fp8<bf16>(name, shape).cview(), f);
    if (dt == io::st_dtype::BF16) return nn::linear(ck_.view<bf16, 2>(name, shape), f);
    if (dt == io::st_dtype::F16) return nn::linear(ck_.view<f16, 2>(name, shape), f);
    return nn::linear(ck_.read<float, 2>(name, shape).cview(), f);
  }

  const io::checkpoint& ck_;
  weight_format fmt_;
  std::optional<quant::format> int4_;
  quant::activations act_ = quant::activations::f32;
  std::optional<io::fp8_block_size> fp8_;
  mutable std::optional<lora_set> lora_;  // adapters not yet attached or merged
  mutable index_t lora_used_ = 0;
  load_options opts_;
  std::string runner_;
  mutable std::int64_t checked_bytes_ = 0;
};

// SwiGLU MLP down(silu(gate x) * up x) in the loader's format.
inline nn::swiglu_mlp load_mlp(const loader& ld, const std::string& prefix, index_t hidden, index_t inter) {
  const std::array<index_t, 2> gu{inter, hidden}, dn{hidden, inter};
  const std::string g = prefix + ".gate_proj.weight", u = prefix + ".up_proj.weight",
                    d = prefix + ".down_proj.weight";
  if (ld.int4_layout())  // viewed in the mapping: three layers (stacking gate and up would copy them)
    return nn::swiglu_mlp(ld.linear(g, inter, hidden), ld.linear(u, inter, hidden),
                          ld.linear(d, hidden, inter));
  if (ld.has_lora(g) || ld.has_lora(u) || ld.has_lora(d))  // three layers, each with its adapter (or merged)
    return nn::swiglu_mlp(ld.linear(g, inter, hidden), ld.linear(u, inter, hidden),
                          ld.linear(d, hidden, inter));
  const auto& ck = ld.checkpoint();
  const auto f = to_linear_format(ld.format());
  for (const auto* n : {&g, &u, &d}) {
    ck.check_shape(*n, n == &d ? dn : gu);
    ld.check_finite(*n);
  }
  if (ld.is_fp8(g) || ld.is_fp8(u) || ld.is_fp8(d)) {  // dequantized, then packed
    auto make = [&]<class T>(std::type_identity<T>) {
      return nn::swiglu_mlp(ld.dense<T>(g, gu).cview(), ld.dense<T>(u, gu).cview(),
                            ld.dense<T>(d, dn).cview(), f);
    };
    return ld.fp8_as_f32() ? make(std::type_identity<float>{}) : make(std::type_identity<bf16>{});
  }
  const bool bf = ck.info(g).dtype == io::st_dtype::BF16 && ck.info(u).dtype == io::st_dtype::BF16 &&
                  ck.info(d).dtype == io::st_dtype::BF16;
  nn::swiglu_mlp m =
      bf ? nn::swiglu_mlp(ck.view<bf16, 2>(g, gu), ck.view<bf16, 2>(u, gu), ck.view<bf16, 2>(d, dn), f)
         : nn::swiglu_mlp(ck.read<float, 2>(g, gu).cview(), ck.read<float, 2>(u, gu).cview(),
                          ck.read<float, 2>(d, dn).cview(), f);
  ld.release(g), ld.release(u), ld.release(d);
  return m;
}

// ---- time per kernel family ------------------------------------------------------------------------------
// A model's profile derives from this with its own family enum and names (see dsk_v2::profile).
template <int N>
struct family_times {
  static constexpr int count = N;
  double seconds[N] = {};

  struct timer {
    family_times* p;
    int f;
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
    ~timer() {
      if (p) p->seconds[f] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
  };
  void reset_times() { std::fill(std::begin(seconds), std::end(seconds), 0.0); }
  double total() const {
    double t = 0;
    for (double s : seconds) t += s;
    return t;
  }
};

// The checkpoint of a runner's built-in random weights: write(path) writes a safetensors file at a temporary
// path, which is mapped and then removed (Linux keeps an unlinked file's pages while they are mapped), so
// that random weights load through the same code as a real checkpoint and leave no file behind.
template <class Write>
std::shared_ptr<const io::checkpoint> temporary_checkpoint(std::string_view runner, std::uint64_t seed,
                                                           Write&& write) {
  namespace fs = std::filesystem;
  const fs::path path =
      fs::temp_directory_path() / (std::string(runner) + "_random_" + std::to_string(::getpid()) + "_" +
                                   std::to_string(seed) + ".safetensors");
  struct remover {
    fs::path p;
    ~remover() {
      std::error_code ec;
      fs::remove(p, ec);
    }
  } rm{path};
  write(path);
  return std::make_shared<const io::checkpoint>(path);
}

// The runner's built-in prompt ids (no --prompt, --tokens or tokenizer.json), checked against the model's
// vocabulary so that a small one gets an error about the built-in prompt rather than about ids the user never
// gave.
inline std::vector<std::int32_t> builtin_prompt(index_t vocab_size, std::string_view runner = "dsk",
                                                std::string_view ids_option = "--tokens") {
  std::vector<std::int32_t> ids = {0, 17, 42, 7, 99, 3};
  const index_t top = *std::max_element(ids.begin(), ids.end());
  if (top >= vocab_size)
    fail(runner, ": without text or ", ids_option,
         " (and no tokenizer.json in --model) the built-in prompt ids 0,17,42,7,99,3 are used; they need "
         "vocab_size >= ",
         top + 1, ", this model has vocab_size ", vocab_size, ": give the prompt as ids with ", ids_option,
         " ID,ID,... (each < ", vocab_size, ")");
  return ids;
}

// ---- the tokenizer next to the model ---------------------------------------------------------------------
// Every id the tokenizer can produce (vocabulary and added tokens) must have an embedding row: a tokenizer
// larger than config.json's vocab_size belongs to another model. (Smaller is normal: DeepSeek-V2's
// tokenizer has about 100k ids for vocab_size 102400, the embedding padded.)
inline void check_tokenizer(const io::tokenizer& tok, index_t vocab_size, std::string_view tokenizer_file,
                            std::string_view config_file, std::string_view runner = "dsk") {
  if (tok.vocab_size() > vocab_size)
    fail(runner, ": tokenizer '", tokenizer_file, "' has ", tok.vocab_size(), " ids (0 .. ",
         tok.vocab_size() - 1, ", added tokens included), more than the model's vocab_size = ", vocab_size,
         " ('", config_file, "'): ids >= ", vocab_size,
         " have no embedding row; the tokenizer belongs to another model");
}

// Whether the tokenizer has a token for id (ids in [0, vocab_size()) can still be holes).
inline bool has_token(const io::tokenizer& tok, std::int32_t id) {
  if (id < 0 || id >= tok.vocab_size()) return false;
  try {
    (void)tok.id_to_token(id);
    return true;
  } catch (const dsk::error&) {
    return false;
  }
}

// The text of generated ids as it grows, token by token. An id the tokenizer has no token for (the model's
// vocab_size is larger than the tokenizer: padded rows, which a trained model rarely samples, random weights
// often) decodes as nothing, as transformers' decode does; unknown() counts them. A token may end inside a
// UTF-8 character, which decodes as U+FFFD until the next token completes it: push() holds such a tail back,
// except for the last token.
class text_stream {
 public:
  explicit text_stream(const io::tokenizer& tok, bool skip_special_tokens = true)
      : tok_(tok), skip_special_(skip_special_tokens) {}

  // Appends id; returns the new text to print (possibly empty).
  std::string push(std::int32_t id, bool last) {
    if (has_token(tok_, id))
      known_.push_back(id);
    else
      ++unknown_;
    const std::string text = tok_.decode(known_, skip_special_);
    const bool partial = text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0;
    if ((partial && !last) || text.size() <= printed_.size() ||
        text.compare(0, printed_.size(), printed_) != 0)
      return {};
    std::string fresh = text.substr(printed_.size());
    printed_ = text;
    return fresh;
  }
  const std::string& text() const { return printed_; }
  index_t unknown() const { return unknown_; }

 private:
  const io::tokenizer& tok_;
  bool skip_special_;
  std::vector<std::int32_t> known_;
  std::string printed_;
  index_t unknown_ = 0;
};

}  // namespace dsk_examples
