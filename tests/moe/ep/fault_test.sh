#!/bin/bash
# The fault test (ctest runs it): fault_test.sh MPIEXEC PROGRAM RANKS MODE. The last rank of an mpirun job
# dies mid-step (fault.cpp); every other rank must report a dsk::error (the timeout, or MPI's own failure) and leave,
# well before the hang guard (timeout 120) would kill the job. mpirun is told not to kill the survivors when a
# rank exits with an error (its default), so that the library's own detection is what is tested. Survivors
# exit 1 after reporting (fault.cpp says why), so mpirun's status is only checked for the hang guard.
set -u
mpiexec=$1 program=$2 ranks=$3 mode=$4
start=$(date +%s)
out=$(timeout 120 "$mpiexec" --mca orte_abort_on_non_zero_status 0 -np "$ranks" "$program" 3 "$mode" 2>&1)
rc=$?
elapsed=$(($(date +%s) - start))
echo "$out"
echo "fault_test: mpirun exit status $rc after ${elapsed} s"
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "fault_test: FAILED: the job hung (killed by the 120 s guard)"
  exit 1
fi
failed=0
for ((r = 0; r < ranks - 1; ++r)); do
  if ! grep -Eq "^rank $r: error: .*(timed out after 3 s: a rank has died|exchange failed)" <<<"$out"; then
    echo "fault_test: FAILED: rank $r did not report the dead rank"
    failed=1
  fi
done
exit $failed
