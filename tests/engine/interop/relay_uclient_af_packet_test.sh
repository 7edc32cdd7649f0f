#!/usr/bin/env bash
# tests/engine/interop/relay_uclient_af_packet_test.sh PUNCHLINED — coturn's turnutils_uclient
# and turnutils_peer against punchlined's relay role (RFC 8656) on net_af_packet, and the
# refusals a client must get, checked with aioice's STUN codec (relay_refusals.py).
#
# Namespaces: "e" holds the engine's end of a veth pair (203.0.113.2/.3, no kernel address);
# "c" holds the client (203.0.113.10/24) and, behind it as the engine's gateway, the peer
# (198.51.100.7, a documentation address the default peer policy allows). The client allocates
# (401, nonce, signed Allocate), asks for a permission and a channel, and sends its messages to
# turnutils_peer through the relay, which echoes them back through the relay: the relayed
# address on the way out, the neighbour cache's gateway as the next hop, the MAC the Allocate
# came from on the way back. Four runs, each passing iff every message comes back ("Total
# lost packets 0"): ChannelData (uclient's default; its channel numbers come from RFC 5766's
# 0x4000-0x7FFF), Send and Data indications (-s), and ChannelData with TURN REST credentials
# (-W: a username "expiry:name" and the HMAC of a shared secret), these three with -c (RTP
# alone); then an RTP and RTCP pair (no -c), as uclient allocates it by RFC 8656 §7.2: the RTP
# Allocate with EVEN-PORT's R bit gets an even port and a RESERVATION-TOKEN for the next, and
# the RTCP Allocate, from its own socket, presents the token and gets that next port (the
# engine runs one worker, so both 5-tuples reach the worker holding the reservation; with
# several, steering may part them, docs/operations.md). Then relay_refusals.py: a
# wrong password and an expired REST username get 401, a stale nonce 438 (the nonce lifetime
# is 5 s here for it), a denied peer 403. Last, the engine's counters are conserved and count
# the datagrams relayed both ways.
# Exit 77 (skipped) when not root, or when coturn or aioice is not installed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/lab.sh"

# Debian's python3-aioice lives in /usr/bin/python3's dist-packages, not in a pyenv shim's.
python=/usr/bin/python3
lab_init "${1:?usage: relay_uclient_af_packet_test.sh PATH_TO_PUNCHLINED}" \
  turnutils_uclient turnutils_peer timeout "$python"
if ! "$python" -c 'import aioice' 2>/dev/null; then
  echo "SKIP: aioice is not importable by $python (apt-get install python3-aioice)"
  exit 77
fi

lab_public_link
# The peer, behind the client (the engine's gateway).
lab_exec c ip addr add 198.51.100.7/32 dev cli0

config=$LAB_WORKDIR/engine.toml
lab_relay_config "$config"
secret=punchline-rest-secret-for-the-lab
nonce_lifetime_s=5
cat >>"$config" <<EOF
users = [{ name = "alice", password = "relay-password" }]
rest_secrets = ["$secret"]
nonce_lifetime_s = $nonce_lifetime_s
peer_deny = ["198.51.100.99"]
EOF
lab_engine_start e "$config"

peer_log=$LAB_WORKDIR/peer.log
# Ended with the namespace by lab_cleanup (every process left in it is killed).
ip netns exec "$(lab_ns c)" turnutils_peer -L 198.51.100.7 -p 3480 >"$peer_log" 2>&1 &

failures=0
# uclient NAME TOTAL ARG...: 40 messages of 180 bytes per relayed socket (TOTAL in all) to the
# peer through the relay and back (verbose: -v prints each ChannelBind's answer, and each
# allocation's relayed address followed by its RESERVATION-TOKEN, "rtv=", 0 for none).
uclient() {
  local name=$1 total=$2 status=0
  local output="$LAB_WORKDIR/uclient-${name// /-}.txt"
  shift 2
  lab_exec c timeout 30 turnutils_uclient "$@" -v -X -e 198.51.100.7 -r 3480 -n 40 -l 180 \
    -m 1 203.0.113.2 >"$output" 2>&1 || status=$?
  echo "turnutils_uclient ($name) exit $status:"
  grep -E 'channel bind|success: 0x|tot_(send|recv)_msgs=|lost packets' "$output" |
    sed 's/^/  | /' | tail -n 8
  check "$name: all $total messages went through the relay and came back" "$output" \
    "tot_send_msgs=$total, tot_recv_msgs=$total\$"
  check "$name: none lost" "$output" 'Total lost packets 0 \('
}
uclient channels 40 -c -u alice -w relay-password
check "channels: a ChannelBind succeeded" "$LAB_WORKDIR/uclient-channels.txt" \
  'success: 0x[0-9a-f]{4}$'
uclient "send indications" 40 -c -s -u alice -w relay-password
uclient "REST credentials" 40 -c -W "$secret" -u bob
check "REST credentials: a ChannelBind succeeded" "$LAB_WORKDIR/uclient-REST-credentials.txt" \
  'success: 0x[0-9a-f]{4}$'
uclient "RTP and RTCP pair" 80 -u alice -w relay-password
# The first allocation with a token (RTP's: an even port) and the next without (RTCP's, made
# with that token): the RTCP port must be the RTP port + 1.
pairs=$LAB_WORKDIR/pairs.txt
awk '/Received relay addr:/ { n = split($NF, part, ":"); port = part[n] }
     /clnet_allocate: rtv=/ {
       split($NF, token, "=")
       if (token[2] != "0") rtp = port
       else if (rtp != "") { print "rtp " rtp " rtcp " port; exit }
     }' "$LAB_WORKDIR/uclient-RTP-and-RTCP-pair.txt" >"$pairs"
sed 's/^/  | /' "$pairs"
rtp_port=$(awk '{ print $2 }' "$pairs")
if [[ -n $rtp_port ]] && ((rtp_port % 2 == 0)); then
  check "RTP and RTCP pair: RTCP's relayed port is RTP's even port + 1" "$pairs" \
    "^rtp $rtp_port rtcp $((rtp_port + 1))\$"
else
  echo "FAIL: RTP and RTCP pair: no even RTP relayed port with a RESERVATION-TOKEN"
  failures=$((failures + 1))
fi

if lab_exec_wait c timeout 40 "$python" "$here/relay_refusals.py" 203.0.113.2 3478 \
  punchline.test alice relay-password "$secret" "$nonce_lifetime_s" 198.51.100.99; then
  echo "ok: relay_refusals.py"
else
  echo "FAIL: relay_refusals.py"
  failures=$((failures + 1))
fi

if ! lab_engine_stop; then
  echo "FAIL: punchlined's counters"
  failures=$((failures + 1))
fi
# 40 out and 40 back through the engine per relayed socket (five: one per run, two in the
# pair's), beside the requests and their answers.
tx=$(lab_engine_counter tx)
if [[ ${tx:-0} -ge 400 ]]; then
  echo "ok: the engine sent $tx packets"
else
  echo "FAIL: the engine sent ${tx:-no} packets, fewer than the 400 relayed"
  failures=$((failures + 1))
fi

lab_verdict
