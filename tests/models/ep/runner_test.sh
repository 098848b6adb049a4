#!/usr/bin/env bash
# runner_test.sh MPIEXEC DSK_V2 NP: `mpirun -np NP dsk_v2 --expert-parallel` on the tiny preset generates the
# tokens of one plain dsk_v2 process (greedy) and reports each rank's memory; a split that does not divide the
# experts (3 ranks, 16 experts) fails on every rank with a clear error and ends the job (MPI_Abort), in bounded
# time. Open MPI's environment comes from ctest (DSK_MPI_TEST_ENV).
set -uo pipefail
mpiexec=$1 runner=$2 np=$3
args=(--greedy --max-new-tokens 12)
fail() { echo "runner_test: $*" >&2; exit 1; }

plain=$(timeout 120 "$runner" "${args[@]}") || fail "plain dsk_v2 failed"
split=$(timeout 120 "$mpiexec" -np "$np" "$runner" --expert-parallel "${args[@]}") ||
  fail "mpirun -np $np dsk_v2 --expert-parallel failed: $split"
want=$(grep '^output:' <<<"$plain") got=$(grep '^output:' <<<"$split")
[ -n "$want" ] || fail "no output line from plain dsk_v2: $plain"
[ "$want" = "$got" ] || fail "tokens differ: plain '$want', $np ranks '$got'"
grep -q "^expert-parallel over $np processes: each holds $((16 / np)) of the 16 routed experts" <<<"$split" ||
  fail "no expert-parallel line for $np ranks: $split"
grep -Eq "^per rank \(0 \.\. $((np - 1))\): weights in memory( [0-9.]+){$np} MiB; resident memory now( [0-9.]+){$np} MiB" \
  <<<"$split" || fail "no per-rank memory line for $np ranks: $split"
echo "$np ranks: $got"

bad=$(timeout 120 "$mpiexec" -np 3 "$runner" --expert-parallel "${args[@]}" 2>&1)
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "3 ranks over 16 experts: expected a failed job, got exit code $rc: $bad"
grep -q "load_options.expert_shards': expected a divisor of n_routed_experts = 16" <<<"$bad" ||
  fail "3 ranks over 16 experts: no clear error: $bad"
echo "3 ranks: rejected ($(grep -m1 -o "argument 'load_options.expert_shards'[^(]*" <<<"$bad"))"
