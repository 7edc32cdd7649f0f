#!/usr/bin/env bash
# tests/engine/interop/relay_uclient_af_packet_test.sh PUNCHLINED — coturn's turnutils_uclient
# and turnutils_peer against punchlined's relay role (RFC 8656) on net_af_packet.
#
# Namespaces: "e" holds the engine's end of a veth pair (203.0.113.2/.3, no kernel address);
# "c" holds the client (203.0.113.10/24) and, behind it as the engine's gateway, the peer
# (198.51.100.7, a documentation address the default peer policy allows). The client allocates
# with long-term credentials (401, nonce, signed Allocate), asks for a permission and a
# channel, and sends its messages to turnutils_peer through the relay, which echoes them back
# through the relay: the relayed address on the way out, the neighbour cache's gateway as the
# next hop, the MAC the Allocate came from on the way back. Passes iff, with Send and Data
# indications (-s), every message comes back ("Total lost packets 0") and the engine's
# counters are conserved with the datagrams relayed both ways.
# Exit 77 (skipped) when not root or when coturn is not installed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/lab.sh"

lab_init "${1:?usage: relay_uclient_af_packet_test.sh PATH_TO_PUNCHLINED}" \
  turnutils_uclient turnutils_peer timeout

lab_ns_add e
lab_ns_add c
lab_veth e eng0 c cli0
lab_exec e ip link set eng0 up
lab_exec c ip addr add 203.0.113.10/24 dev cli0
lab_exec c ip addr add 198.51.100.7/32 dev cli0
lab_exec c ip link set cli0 up
lab_wait_carrier c cli0

config=$LAB_WORKDIR/engine.toml
lab_engine_config "$config" net_af_packet0,iface=eng0,qpairs=1 net_af_packet0 trust \
  203.0.113.2 203.0.113.3
# The peer is off the engine's subnet: its next hop is the gateway, which the neighbour cache
# resolves (the kernel in "c" answers its ARP and delivers to the peer's address).
sed -i 's/^prefix4 = 24$/prefix4 = 24\ngateway4 = "203.0.113.10"/' "$config"
cat >>"$config" <<'EOF'

[relay]
enabled = true
realm = "punchline.test"
users = [{ name = "alice", password = "relay-password" }]
EOF
lab_engine_start e "$config"

peer_log=$LAB_WORKDIR/peer.log
# Ended with the namespace by lab_cleanup (every process left in it is killed).
ip netns exec "$(lab_ns c)" turnutils_peer -L 198.51.100.7 -p 3480 >"$peer_log" 2>&1 &

failures=0
# -s: Send and Data indications. Channels are not tried: coturn's client picks channel numbers
# from RFC 5766's 0x4000-0x7FFF, which RFC 8656 §12 narrowed to 0x4000-0x4FFF (its ChannelBind
# gets 400 here); the golden packets cover ChannelData.
output=$LAB_WORKDIR/uclient.txt
status=0
lab_exec c timeout 30 turnutils_uclient -s -u alice -w relay-password -X \
  -e 198.51.100.7 -r 3480 -n 40 -l 180 -m 1 -c 203.0.113.2 >"$output" 2>&1 || status=$?
echo "turnutils_uclient exit $status:"
sed 's/^/  | /' "$output" | tail -n 12
check "all 40 messages went through the relay and came back" "$output" \
  'tot_send_msgs=40, tot_recv_msgs=40$'
check "none lost" "$output" 'Total lost packets 0 \('

if ! lab_engine_stop; then
  echo "FAIL: punchlined's counters"
  failures=$((failures + 1))
fi
# 40 out and 40 back through the engine, beside the requests and their answers.
tx=$(lab_engine_counter tx)
if [[ ${tx:-0} -ge 80 ]]; then
  echo "ok: the engine sent $tx packets"
else
  echo "FAIL: the engine sent ${tx:-no} packets, fewer than the 80 relayed"
  failures=$((failures + 1))
fi

lab_verdict
