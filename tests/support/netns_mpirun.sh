#!/usr/bin/env bash
# netns_mpirun.sh MPIEXEC NP PROGRAM [ARGS...]: runs an MPI program on NP ranks over two "hosts" on this
# machine: two network namespaces joined by a veth pair (10.201.0.1 and 10.201.0.2, a subnet that exists only
# inside the two namespaces, which have no other interface than lo), NP / 2 ranks on each. Open MPI
# starts the second host's daemon through an rsh agent that enters that namespace (instead of ssh), and its
# ranks talk over the TCP transport only (btl tcp,self), so every message crosses a real network stack.
# Prints "SKIPPED: ..." and exits 0 where namespaces cannot be made (not root, no ip, a container without
# CAP_SYS_ADMIN): ctest marks the test skipped. Removes the namespaces on exit. Open MPI's environment
# (allow root, oversubscribe) comes from ctest (DSK_MPI_TEST_ENV).
set -uo pipefail
mpiexec=$1 np=$2
shift 2
skip() {
  echo "SKIPPED: $*"
  exit 0
}
[ "$(id -u)" -eq 0 ] || skip "network namespaces need root (ip netns)"
command -v ip >/dev/null || skip "no ip command (Debian iproute2)"
id=$$
a=dskep_a_$id b=dskep_b_$id va=dskva$id vb=dskvb$id
tmp=$(mktemp -d)
cleanup() {
  ip netns del "$a" 2>/dev/null
  ip netns del "$b" 2>/dev/null  # deleting a namespace deletes its end of the veth pair, and so the pair
  rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$a" 2>/dev/null || skip "cannot create a network namespace here"
ip netns add "$b" || exit 1
ip link add "$va" type veth peer name "$vb" || skip "cannot create a veth pair here"
ip link set "$va" netns "$a" && ip link set "$vb" netns "$b" || exit 1
ip -n "$a" addr add 10.201.0.1/24 dev "$va" && ip -n "$b" addr add 10.201.0.2/24 dev "$vb" || exit 1
for n in "$a" "$b"; do ip -n "$n" link set lo up || exit 1; done
ip -n "$a" link set "$va" up && ip -n "$b" link set "$vb" up || exit 1

# mpirun calls the agent as: agent HOST COMMAND... (where it would call ssh).
cat >"$tmp/agent.sh" <<AGENT
#!/bin/sh
host=\$1
shift
case "\$host" in
  10.201.0.1) ns=$a ;;
  10.201.0.2) ns=$b ;;
  *) echo "netns agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" sh -c "\$*"
AGENT
chmod +x "$tmp/agent.sh"
per_host=$(((np + 1) / 2))
run() {
  timeout 240 ip netns exec "$a" env OMPI_MCA_plm_rsh_agent="$tmp/agent.sh" \
    "$mpiexec" -np "$np" -H "10.201.0.1:$per_host,10.201.0.2:$per_host" \
    --mca btl tcp,self --mca oob_tcp_if_include 10.201.0.0/24 --mca btl_tcp_if_include 10.201.0.0/24 "$@"
}
# First prove the layout: the ranks must sit in both namespaces (else this would test nothing new).
spaces=$(run readlink /proc/self/ns/net | sort -u | wc -l)
[ "$spaces" -eq 2 ] || { echo "netns_mpirun: the ranks ran in $spaces network namespaces, expected 2" >&2; exit 1; }
echo "netns_mpirun: $np ranks over hosts 10.201.0.1 ($a) and 10.201.0.2 ($b), TCP transport"
run "$@"
