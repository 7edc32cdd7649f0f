#!/usr/bin/env bash
# tests/engine/interop/relay_aioice_test.sh PUNCHLINED — two aioice ICE agents (python3-aioice),
# relay candidates only, connected through punchlined's relay role (RFC 8656) on
# net_af_packet, exchanging datagrams both ways.
#
# Namespaces: "e" holds the engine's end of a veth pair (203.0.113.2/.3, no kernel address);
# "c" holds the client end (203.0.113.10/24) and relay_aioice.py, which runs both agents. Each
# agent allocates with long-term credentials and is given the other's relayed address as its
# only remote candidate, so every ICE check and every datagram goes client -> engine (as
# ChannelData) -> from one allocation's relayed address to the other's on the same engine ->
# the other client: a hairpin through one server, which the peer policy must allow for two
# clients of one relay to reach each other by relay candidates alone. The checks of the agents'
# side are in relay_aioice.py; this script builds the lab and judges the engine afterwards:
# counters conserved, the TURN requests answered, and at least the relayed datagrams sent.
# Exit 77 (skipped) when not root or when aioice is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/lab.sh"

# Debian's python3-aioice lives in /usr/bin/python3's dist-packages, not in a pyenv shim's.
python=/usr/bin/python3
lab_init "${1:?usage: relay_aioice_test.sh PATH_TO_PUNCHLINED}" "$python" timeout
if ! "$python" -c 'import aioice' 2>/dev/null; then
  echo "SKIP: aioice is not importable by $python (apt-get install python3-aioice)"
  exit 77
fi

lab_public_link

config=$LAB_WORKDIR/engine.toml
lab_relay_config "$config"
cat >>"$config" <<'EOF'
users = [{ name = "alice", password = "relay-password" }]
EOF
lab_engine_start e "$config"

failures=0
# relay_aioice.py's own waits add up to 35 s at most. Once its datagrams have gone both ways
# it creates $report and waits for $report.done: the engine's report is taken then, while both
# allocations and their counters still exist (aioice deletes them when it closes).
output=$LAB_WORKDIR/aioice.txt
report=$LAB_WORKDIR/report-ready
engine_report=$LAB_WORKDIR/engine-report.txt
ip netns exec "$(lab_ns c)" timeout 40 "$python" "$here/relay_aioice.py" 203.0.113.2 alice \
  relay-password "$report" >"$output" 2>&1 &
client=$!
# Polled in steps of 0.1 s, at most 45 s: the client's own timeout comes first.
lab_poll 450 eval "[[ -e \$report ]] || ! kill -0 $client 2>/dev/null" || true
reported=0
if [[ -e $report ]] && lab_engine_report "$engine_report"; then
  reported=1
fi
touch "$report.done"
status=0
wait "$client" || status=$?
echo "relay_aioice.py exit $status:"
sed 's/^/  | /' "$output"
if [[ $status -ne 0 ]]; then
  echo "FAIL: relay_aioice.py"
  failures=$((failures + 1))
fi

# While both allocations were live: each relayed datagram is counted once by the allocation it
# left through (to peers) and once by the allocation it arrived at (to clients). 10 datagrams
# each way, beside the ICE checks and their answers.
if [[ $reported -eq 1 ]]; then
  echo "engine report with both allocations live:"
  sed 's/^/  | /' "$engine_report"
  relay_line=$(grep -E '^relay lcore[0-9]+: ' "$engine_report" | head -n 1)
  if [[ $relay_line =~ :\ 2\ allocations.*relayed\ ([0-9]+)\ to\ peers,\ ([0-9]+)\ to\ clients ]] &&
    [[ ${BASH_REMATCH[1]} -ge 20 && ${BASH_REMATCH[2]} -ge 20 ]]; then
    echo "ok: two allocations relayed ${BASH_REMATCH[1]} to peers, ${BASH_REMATCH[2]} to clients"
  else
    echo "FAIL: expected two allocations that relayed 20 or more each way: ${relay_line:-no relay line}"
    failures=$((failures + 1))
  fi
else
  echo "FAIL: no engine report while both allocations were live"
  failures=$((failures + 1))
fi

if ! lab_engine_stop; then
  echo "FAIL: punchlined's counters"
  failures=$((failures + 1))
fi
# aioice deletes its allocations when it closes (Refresh with LIFETIME 0).
check "both allocations deleted" "$LAB_ENGINE_LOG" '^relay lcore[0-9]+: 0 allocations '
# Through the engine: the 20 datagrams and the ICE checks and answers, beside the answers to the
# TURN requests.
tx=$(lab_engine_counter tx)
if [[ ${tx:-0} -ge 24 ]]; then
  echo "ok: the engine sent $tx packets"
else
  echo "FAIL: the engine sent ${tx:-no} packets, fewer than the 20 datagrams and 4 checks relayed"
  failures=$((failures + 1))
fi

lab_verdict
