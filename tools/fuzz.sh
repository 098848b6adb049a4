#!/usr/bin/env bash
# Builds dsk::io's libFuzzer harnesses (tests/fuzz; clang-14, -fsanitize=fuzzer,address,undefined) in
# build/fuzz and runs each for SECONDS (default 60) from seed corpora assembled out of the tests' data
# (tests/io/data, tests/models/data), the committed crafted files (tests/fuzz/seeds) and generated ones
# (200 KB of nesting, oversized ids and extents). Fails on any crash, sanitizer report, leak, timeout or
# out-of-memory (libFuzzer exits non-zero; the input is saved under build/fuzz/artifacts).
#
#   tools/fuzz.sh [SECONDS] [HARNESS...]    e.g. tools/fuzz.sh 45 (CI), tools/fuzz.sh 600 fuzz_config
#
# Environment: DSK_FUZZ_JOBS=N runs N harnesses at once (default 1); CXX overrides clang++-14. Each
# harness's corpus grows in build/fuzz/corpus/NAME (kept between runs) and its log is build/fuzz/logs/NAME.log
# (libFuzzer's final stats: number_of_executed_units, and cov/ft on the last status lines).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
all=(fuzz_safetensors fuzz_checkpoint fuzz_config fuzz_tokenizer fuzz_tokenizer_encode)
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=("${all[@]}")
jobs=${DSK_FUZZ_JOBS:-1}
tools/setup-deps.sh

cxx=${CXX:-}
if [ -z "$cxx" ]; then
  for c in clang++-14 clang++; do command -v "$c" >/dev/null 2>&1 && cxx=$c && break; done
fi
if [ -z "$cxx" ]; then
  echo "dsk fuzz: clang++ not found (tools/setup-deps.sh installs clang-14 and libclang-rt-14-dev)" >&2
  exit 1
fi

b=build/fuzz
cmake -S . -B "$b" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g1" -DDSK_FUZZ=ON -DDSK_TEST_FAMILIES=io -DDSK_CUDA=OFF \
  -DDSK_KERNELS=OFF -DDSK_BUILD_EXAMPLES=OFF -DDSK_BUILD_BENCH=OFF -DDSK_WERROR="${DSK_WERROR:-OFF}" >/dev/null
cmake --build "$b" --target "${harnesses[@]}"

# ---- seed corpora and dictionaries ----------------------------------------------------------------------
seeds=$b/seeds
rm -rf "$seeds" && mkdir -p "$seeds" "$b/corpus" "$b/artifacts" "$b/logs" "$b/dict"
deep() { head -c "$1" /dev/zero | tr '\0' '['; }  # $1 '[' characters
undeep() { head -c "$1" /dev/zero | tr '\0' ']'; }
st_image() {  # st_image HEADER [DATA]: a safetensors file (8-byte little-endian length, header, data)
  local n=${#1}
  printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x\\x00\\x00\\x00\\x00' $((n & 255)) $((n >> 8 & 255)) \
    $((n >> 16 & 255)) $((n >> 24 & 255)))"
  printf '%s' "$1"
  printf '%s' "${2:-}"
}
for h in "${all[@]}"; do mkdir -p "$seeds/$h"; done
d=tests/io/data
cp $d/st_single.safetensors $d/st_sharded/*.safetensors "$seeds/fuzz_safetensors/"
# (the V2 golden checkpoints; V1's data dirs hold golden.json only: their weights are generated)
for m in tests/models/data/*/; do
  if [ -f "$m/model.safetensors" ]; then cp "$m/model.safetensors" "$seeds/fuzz_safetensors/$(basename "$m").safetensors"; fi
done
st_image '{"w":{"dtype":"F32","shape":[0,1099511627776,1099511627776],"data_offsets":[0,0]}}' \
  >"$seeds/fuzz_safetensors/zero_extent_overflow.safetensors"
st_image "{\"w\":{\"dtype\":\"F32\",\"shape\":$(deep 100000)1$(undeep 100000),\"data_offsets\":[0,0]}}" \
  >"$seeds/fuzz_safetensors/deep_header.safetensors"  # 200 KB: beyond the default -max_len
cp $d/st_sharded/model.safetensors.index.json "$seeds/fuzz_checkpoint/index.json"
{ printf '{"metadata":{"deep":%s1%s},"weight_map":{"x":"x.safetensors"}}' "$(deep 100000)" "$(undeep 100000)"; } \
  >"$seeds/fuzz_checkpoint/deep_metadata.json"
{ printf '{"metadata":{"total_size":8},"weight_map":{"w":"x.safetensors"}}\n--shard--\n'
  cat $d/st_single.safetensors; } >"$seeds/fuzz_checkpoint/with_shard.bin"
cp $d/config_*.json "$seeds/fuzz_config/"
for m in tests/models/data/*/; do
  if [ -f "$m/config.json" ]; then cp "$m/config.json" "$seeds/fuzz_config/$(basename "$m").json"; fi
done
{ printf '{"vocab_size":%s1%s}' "$(deep 100000)" "$(undeep 100000)"; } >"$seeds/fuzz_config/deep.json"
cp $d/tokenizer.json $d/tokenizer_variant.json "$seeds/fuzz_tokenizer/"
printf '{"model":{"vocab":{"a": 2147483647}}}' >"$seeds/fuzz_tokenizer/huge_id.json"
{ printf '{"decoder":%s1%s}' "$(deep 100000)" "$(undeep 100000)"; } >"$seeds/fuzz_tokenizer/deep.json"
if [ -d tests/fuzz/seeds ]; then
  for h in "${all[@]}"; do [ -d "tests/fuzz/seeds/$h" ] && cp tests/fuzz/seeds/$h/* "$seeds/$h/"; done
fi
printf 'Hello, world! 123' >"$seeds/fuzz_tokenizer_encode/ascii.txt"
printf '深度求索 DeepSeek-V2 😀<|EOT|>  \t\n x' >"$seeds/fuzz_tokenizer_encode/mixed.txt"
head -c 8000 /dev/zero | tr '\0' 'a' >"$seeds/fuzz_tokenizer_encode/long_piece.txt"
dict_of() {
  case $1 in
    fuzz_safetensors | fuzz_checkpoint) cat tests/fuzz/dict/json.dict tests/fuzz/dict/safetensors.dict ;;
    fuzz_config) cat tests/fuzz/dict/json.dict tests/fuzz/dict/config.dict ;;
    fuzz_tokenizer) cat tests/fuzz/dict/json.dict tests/fuzz/dict/tokenizer.dict ;;
    fuzz_tokenizer_encode) cat tests/fuzz/dict/text.dict ;;
  esac
}

# ---- runs -----------------------------------------------------------------------------------------------
run_one() {
  local h=$1
  mkdir -p "$b/corpus/$h"
  dict_of "$h" >"$b/dict/$h.dict"
  # -max_len 300000: inputs beyond 100 KB (the 200 KB nesting seeds) for the file formats; encode's text stays
  # short (8 KB: many more runs; tests/io's tokenizer tests cover long texts and long pieces). -rss_limit_mb:
  # an unbounded allocation is a finding; -timeout: a hang is a finding.
  local max_len=300000
  [ "$h" = fuzz_tokenizer_encode ] && max_len=8192
  if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    DSK_PCRE2_NO_JIT= "$b/tests/fuzz/$h" "$b/corpus/$h" "$seeds/$h" -dict="$b/dict/$h.dict" \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$b/artifacts/$h-" >"$b/logs/$h.log" 2>&1; then
    echo "dsk fuzz: $h: ok ($(grep -a 'stat::number_of_executed_units' "$b/logs/$h.log" | awk '{print $2}') runs," \
      "$(grep -aE '^#[0-9]+' "$b/logs/$h.log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+'), ${seconds}s)"
  else
    echo "dsk fuzz: $h: FAILED (log $b/logs/$h.log, inputs $b/artifacts/$h-*):" >&2
    tail -40 "$b/logs/$h.log" >&2
    return 1
  fi
}
status=0
running=0
for h in "${harnesses[@]}"; do
  run_one "$h" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || status=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done
[ $status -eq 0 ] && echo "dsk fuzz: all ${#harnesses[@]} harnesses ran ${seconds}s each without a finding"
exit $status
