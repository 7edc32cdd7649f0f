#!/usr/bin/env bash
# tests/engine/interop/neighbour_af_packet_test.sh PUNCHLINED — punchlined resolves its
# gateways through a real Linux neighbour: ARP (RFC 826) and IPv6 neighbour discovery (RFC 4861)
# answered by the kernel of another namespace, over a veth pair and net_af_packet.
#
# Namespace "e" runs punchlined on eng0 (203.0.113.2 and 2001:db8::2, gateway4 203.0.113.1,
# gateway6 2001:db8::1, reachable_ms 1000, so that the entries go STALE and are re-probed by
# unicast during the test); namespace "g" holds the peer veth gw0 with the gateways' addresses
# (IPv6 enabled on gw0 alone, the address without DAD). Passes iff:
#   - the engine logs "gateway ... resolved: lladdr <gw0's MAC>" for both gateways;
#   - a SIGUSR1 report lists both gateways with gw0's real MAC (from `ip -j link`) and
#     REACHABLE, and still does after several reachable periods (the unicast re-probes are
#     answered: Linux's advertisement to a unicast solicitation carries no link-layer address);
#   - once the peer's addresses are removed (`ip addr del`), both entries become FAILED after
#     the probes, and the engine logs "gateway ... FAILED";
#   - the control thread received the replies (the "control:" line counts them), and
#     punchlined, stopped with SIGINT, prints counters that say "conserved".
# Exit 77 (skipped) when not root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/lab.sh"

lab_init "${1:?usage: neighbour_af_packet_test.sh PATH_TO_PUNCHLINED}"

failures=0
device=net_af_packet0

lab_ns_add e
lab_ns_add g
lab_veth e eng0 g gw0
# The engine's side has no address: only the engine answers for 203.0.113.2 and 2001:db8::2.
lab_exec e ip link set eng0 up
# lab_ns_add turned IPv6 off for every new interface; the gateway needs it on gw0. nodad: the
# address answers solicitations at once instead of after duplicate address detection.
lab_exec g sysctl -qw net.ipv6.conf.gw0.disable_ipv6=0
lab_exec g ip addr add 203.0.113.1/24 dev gw0
lab_exec g ip -6 addr add 2001:db8::1/64 dev gw0 nodad
lab_exec g ip link set gw0 up
lab_wait_carrier g gw0
gateway_mac=$(lab_link_mac g gw0)
[[ $gateway_mac =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || lab_fail "cannot read gw0's MAC: '$gateway_mac'"
echo "gateway gw0 in $(lab_ns g): $gateway_mac"

config=$LAB_WORKDIR/engine.toml
lab_engine_config "$config" "$device,iface=eng0,qpairs=1" "$device" trust 203.0.113.2 203.0.113.3
# More keys of the [[port]] table lab_engine_config ended with, then the [neighbour] table.
cat >>"$config" <<'EOF'
gateway4 = "203.0.113.1"
ipv6 = ["2001:db8::2"]
gateway6 = "2001:db8::1"

[neighbour]
reachable_ms = 1000
retransmit_ms = 200
max_probes = 3
failed_retry_ms = 60000
EOF
lab_engine_start e "$config"

report=$LAB_WORKDIR/report.txt
# True once a fresh report lists both gateways in STATE (with MAC for REACHABLE).
gateways_are() {
  local state=$1 lladdr=""
  [[ $state == REACHABLE ]] && lladdr=" lladdr $gateway_mac"
  lab_engine_report "$report" || return 1
  grep -Eq "^neighbour port $device 203\.0\.113\.1$lladdr $state gateway$" "$report" &&
    grep -Eq "^neighbour port $device 2001:db8::1$lladdr $state gateway$" "$report"
}
# A report every 0.25 s at most 40 times: time for the first probes and their answers.
poll_gateways() {
  local i
  for ((i = 0; i < 40; i++)); do
    gateways_are "$1" && return 0
    sleep 0.25
  done
  return 1
}

if poll_gateways REACHABLE; then
  echo "ok: both gateways REACHABLE at $gateway_mac"
else
  echo "FAIL: the gateways are not REACHABLE at $gateway_mac; the last report:"
  sed 's/^/  | /' "$report"
  failures=$((failures + 1))
fi
check "gateway4 resolved (log line)" "$LAB_ENGINE_LOG" \
  "^punchlined: port $device gateway 203\.0\.113\.1 resolved: lladdr $gateway_mac$"
check "gateway6 resolved (log line)" "$LAB_ENGINE_LOG" \
  "^punchlined: port $device gateway 2001:db8::1 resolved: lladdr $gateway_mac$"

# Three reachable periods: each ends STALE with unicast probes that the kernel must answer
# (ARP replies; advertisements without a link-layer address) for the entries to stay usable.
sleep 3
if poll_gateways REACHABLE; then
  echo "ok: both gateways REACHABLE again after three reachable periods"
else
  echo "FAIL: the gateways did not stay REACHABLE through their re-probes; the last report:"
  sed 's/^/  | /' "$report"
  failures=$((failures + 1))
fi
if grep -Eq 'gateway .* FAILED' "$LAB_ENGINE_LOG"; then
  echo "FAIL: a gateway failed while its neighbour was answering"
  failures=$((failures + 1))
fi

# The gateway goes away: no more answers. REACHABLE runs out (1 s), three unicast probes
# 200 ms apart go unanswered, and the entries fail.
lab_exec g ip addr del 203.0.113.1/24 dev gw0
lab_exec g ip -6 addr del 2001:db8::1/64 dev gw0
if poll_gateways FAILED; then
  echo "ok: both gateways FAILED once their addresses were removed"
else
  echo "FAIL: the gateways did not become FAILED; the last report:"
  sed 's/^/  | /' "$report"
  failures=$((failures + 1))
fi
check "gateway4 failed (log line)" "$LAB_ENGINE_LOG" \
  "^punchlined: warning: port $device gateway 203\.0\.113\.1 FAILED: no answer to 3 probes$"
check "gateway6 failed (log line)" "$LAB_ENGINE_LOG" \
  "^punchlined: warning: port $device gateway 2001:db8::1 FAILED: no answer to 3 probes$"

if ! lab_engine_stop; then
  echo "FAIL: punchlined's counters"
  failures=$((failures + 1))
fi
handed=$(sed -n 's/^control: \([0-9]*\) frames handed to it .*/\1/p' "$LAB_ENGINE_LOG" | tail -n 1)
if [[ ${handed:-0} -ge 4 ]]; then
  echo "ok: $handed neighbour replies reached the control thread"
else
  echo "FAIL: ${handed:-no} neighbour replies reached the control thread, expected >= 4"
  failures=$((failures + 1))
fi

lab_verdict
