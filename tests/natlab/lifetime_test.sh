#!/usr/bin/env bash
# tests/natlab/lifetime_test.sh PUNCHLINED PUNCH — `punch probe --lifetime` measures a NAT
# mapping's lifetime (RFC 5780 §4.6, nat/include/punch/lifetime.h) against the lab's
# punchlined, which honours RESPONSE-PORT (issue 6: "and the mapping lifetime where asked").
#
# The routers' UDP conntrack timeout (net.netfilter.nf_conntrack_udp_timeout, per network
# namespace: natlab.md pitfall 2) is set to 6 s, so that a mapping dies 6 s after its last
# packet; then, from every client at once:
#   port-restricted   (EIM + APDF: the RESPONSE-PORT answer passes the filter only because it
#                     comes from the address X sent to)   alive_s < 6 <= dead_s, within 1 s
#   symmetric         (APDM + APDF)                        the same
#   none              no mapping to lose                   dead_s null, alive_s = the max (12)
# A mapping dead after 6 s but reported alive longer (X refreshed its mapping while waiting,
# or Y answered for it) or dead sooner (the answer went elsewhere) fails the bounds.
# Exit 77 (skipped) when not root or a tool is missing. About 30 s (the no-NAT client waits out
# its whole --lifetime-max; the NATs' searches take two rounds of up to 8 s and 7 s).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/natlab/natlab.sh
source "$here/natlab.sh"

punch=${2:?usage: lifetime_test.sh PATH_TO_PUNCHLINED PATH_TO_PUNCH}
natlab_init "${1:?usage: lifetime_test.sh PATH_TO_PUNCHLINED PATH_TO_PUNCH}" jq "$punch"

timeout_s=6
max_s=12
natlab_up
natlab_add_client none none
natlab_add_client port port-restricted
natlab_add_client symmetric symmetric
clients=(none port symmetric)
for client in port symmetric; do
  lab_exec "${NATLAB_ROUTER[$client]}" sysctl -qw \
    net.netfilter.nf_conntrack_udp_timeout=$timeout_s ||
    lab_fail "$client: could not set its router's nf_conntrack_udp_timeout"
done

failures=0
server=$NATLAB_STUN_IP:$NATLAB_STUN_PORT
echo "== punch probe --json --lifetime --lifetime-max $max_s --stun $server, all at once"
pids=()
for client in "${clients[@]}"; do
  ip netns exec "$(natlab_ns "$client")" timeout 60 "$punch" probe --json --timeout 1 \
    --lifetime --lifetime-max "$max_s" --stun "$server" \
    >"$LAB_WORKDIR/punch-$client.json" 2>"$LAB_WORKDIR/punch-$client.err" &
  pids+=($!)
done
# The human form once, beside them: the line a person reads.
ip netns exec "$(natlab_ns none)" timeout 60 "$punch" probe --timeout 1 --lifetime \
  --lifetime-max 2 --stun "$server" >"$LAB_WORKDIR/punch-none.txt" 2>&1 &
pids+=($!)
for pid in "${pids[@]}"; do wait "$pid" || true; done

# expect WHAT TEST: one jq condition on a client's report, counted.
expect() {
  local client=$1 what=$2 condition=$3
  if jq -e "$condition" "$LAB_WORKDIR/punch-$client.json" >/dev/null 2>&1; then
    echo "ok: $client: $what"
  else
    echo "FAIL: $client: $what ($condition)"
    failures=$((failures + 1))
  fi
}

for client in "${clients[@]}"; do
  echo
  echo "-- $client ($(natlab_type "$client"))"
  jq -c .mapping_lifetime "$LAB_WORKDIR/punch-$client.json" 2>/dev/null | sed 's/^/  punch | /' ||
    true
  sed 's/^/  punch stderr | /' "$LAB_WORKDIR/punch-$client.err"
  expect "$client" "measured without an error" '.mapping_lifetime.error == null'
done
expect none "no NAT: alive up to the max, never dead" \
  ".mapping_lifetime.alive_s == $max_s and .mapping_lifetime.dead_s == null"
sed 's/^/  punch (human) | /' "$LAB_WORKDIR/punch-none.txt"
check "none: the human form's lifetime line" "$LAB_WORKDIR/punch-none.txt" \
  '^lifetime +alive after 2 s, > 2 s \(max\) \(2 trials, 1 round, '
for client in port symmetric; do
  expect "$client" "classified as built" ".nat_type == \"$(natlab_type "$client" |
    tr - _)\""
  # Waits measure from X's answer; the NAT counts from the same packet, so at exactly 6 s
  # either answer is right: alive <= 6 <= dead, and no more than the resolution (1 s) apart.
  expect "$client" "alive_s <= $timeout_s <= dead_s, at most 1 s apart" \
    ".mapping_lifetime as \$l | \$l.alive_s != null and \$l.dead_s != null and
     \$l.alive_s <= $timeout_s and \$l.dead_s >= $timeout_s and
     \$l.dead_s - \$l.alive_s <= 1"
  expect "$client" "alive_s is at least the timeout less the resolution" \
    ".mapping_lifetime.alive_s >= $((timeout_s - 1))"
done

echo
lab_engine_stop_checked
lab_verdict
