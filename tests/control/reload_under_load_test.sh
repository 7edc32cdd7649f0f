#!/usr/bin/env bash
# tests/control/reload_under_load_test.sh PUNCHLINED PUNCHCTL — issue 5's reload under load: 1000
# live changes while the relay carries traffic, and not one relayed datagram lost, not one
# allocation dropped.
#
# The lab of the relay interop tests (tests/engine/interop/lab.sh): namespace "e" runs
# punchlined on net_af_packet with the relay role (two long-term users and a TURN REST secret);
# namespace "c" holds the clients (203.0.113.10) and, behind them as the engine's gateway, the
# peers (198.51.100.7). relay_load.py flow makes four allocations (alice twice, bob, a REST
# user), binds a channel on each, and relays a paced flow both ways (400 datagrams a second each
# way) while it refreshes every allocation, permission and channel every 2 s with the nonce of
# its first 401. Meanwhile relay_load.py churn applies 1000 changes over the management socket:
# users added and removed, REST secrets added and retired, deny and allow entries added and
# removed, reloads of the file (its peer_deny line flipped each time), drains and undrains,
# paced over 10 s so that five rounds of refreshes fall among them; each is a new RelayContext
# published through RCU. Then, proved:
#   - the flow lost nothing: every datagram sent each way was received, and the engine's relay
#     counters say it relayed exactly that many (so none was dropped and none duplicated);
#   - every Refresh, CreatePermission and ChannelBind was answered with a success: no 437 (an
#     allocation gone), no 438 (a nonce refused: the keys stayed) and no 401;
#   - the four allocations are the same before and after (punchctl allocations);
#   - the engine's counters are conserved on every core (rx = tx + handed off + drops).
# Bounded: the flow stops itself after 100 s, the churn after 100 s (it takes 10); the whole
# test about 20 s.
# Needs root; exit 77 (skipped) otherwise or without aioice.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/../engine/interop/lab.sh"

python=/usr/bin/python3
lab_init "${1:?usage: reload_under_load_test.sh PUNCHLINED PUNCHCTL}" "$python" timeout
punchctl=${2:?usage: reload_under_load_test.sh PUNCHLINED PUNCHCTL}
if ! "$python" -c 'import aioice' 2>/dev/null; then
  echo "SKIP: aioice is not importable by $python (apt-get install python3-aioice)"
  exit 77
fi

lab_public_link
lab_exec c ip addr add 198.51.100.7/32 dev cli0
config=$LAB_WORKDIR/engine.toml
lab_relay_config "$config"
secret=reload-under-load-rest-secret
# peer_deny is the line the churn flips before each reload.
cat >>"$config" <<EOF
users = [{ name = "alice", password = "pw-alice" }, { name = "bob", password = "pw-bob" }]
rest_secrets = ["$secret"]
peer_deny = ["198.51.100.99"]
EOF
lab_engine_start e "$config"
# The peers are behind the gateway: until the engine has its MAC, datagrams to them are dropped
# as relay_no_route (counted, not lost by a change), so the flow starts once it is resolved.
lab_poll 100 grep -q 'gateway 203\.0\.113\.10 resolved' "$LAB_ENGINE_LOG" ||
  lab_fail "the engine did not resolve its gateway 203.0.113.10 within 10 s"
sock=$LAB_WORKDIR/punchlined.sock
failures=0

# allocations FILE: the engine's allocations as "client relay_port user" lines, sorted.
allocations() {
  "$punchctl" --socket "$sock" --json allocations |
    "$python" -c 'import json, sys
for a in json.load(sys.stdin)["allocations"]:
    print(a["client"], a["relay_port"], a["user"] or "#" + a["user_hash"])' | sort >"$1"
}
# relayed_at_least N: the engine has relayed N datagrams to peers (all allocations together).
relayed_at_least() {
  "$punchctl" --socket "$sock" --json allocations |
    "$python" -c 'import json, sys
sys.exit(0 if sum(a["to_peer"]["packets"] for a in json.load(sys.stdin)["allocations"]) >= int(sys.argv[1]) else 1)' "$1"
}

stop=$LAB_WORKDIR/stop
summary=$LAB_WORKDIR/summary.json
flow_log=$LAB_WORKDIR/flow.log
ip netns exec "$(lab_ns c)" timeout 150 "$python" "$here/relay_load.py" flow 203.0.113.2 \
  198.51.100.7 "$secret" "$stop" "$summary" >"$flow_log" 2>&1 &
flow_pid=$!
lab_poll 100 grep -q '^ready' "$flow_log" || { cat "$flow_log"; lab_fail "the flow's allocations were not made"; }
allocations "$LAB_WORKDIR/before"
echo "allocations before the changes:"
sed 's/^/  | /' "$LAB_WORKDIR/before"
[[ $(wc -l <"$LAB_WORKDIR/before") -eq 4 ]] && echo "ok: four allocations carry the flow" ||
  { echo "FAIL: $(wc -l <"$LAB_WORKDIR/before") allocations"; failures=$((failures + 1)); }
lab_poll 100 relayed_at_least 200 || { echo "FAIL: the flow does not run"; failures=$((failures + 1)); }

echo "== 1000 changes under load"
churn_status=0
timeout 100 "$python" "$here/relay_load.py" churn "$sock" "$config" 1000 10 || churn_status=$?
[[ $churn_status -eq 0 ]] || failures=$((failures + 1))
"$punchctl" --socket "$sock" --json status >"$LAB_WORKDIR/status"
"$python" -c 'import json, sys; d = json.load(open(sys.argv[1]))["relay"]["drain"]; sys.exit(0 if not d["draining"] and d["allocations"] == 4 else 1)' \
  "$LAB_WORKDIR/status" && echo "ok: not draining after the last undrain, four allocations" ||
  { echo "FAIL: status after the churn: $(cat "$LAB_WORKDIR/status")"; failures=$((failures + 1)); }
# The flow goes on after the changes: 400 more datagrams relayed from here.
after_changes=$("$punchctl" --socket "$sock" --json allocations |
  "$python" -c 'import json, sys; print(sum(a["to_peer"]["packets"] for a in json.load(sys.stdin)["allocations"]))')
lab_poll 100 relayed_at_least $((after_changes + 400)) ||
  { echo "FAIL: the flow stopped after the changes"; failures=$((failures + 1)); }
allocations "$LAB_WORKDIR/after"
if cmp -s "$LAB_WORKDIR/before" "$LAB_WORKDIR/after"; then
  echo "ok: the same four allocations after 1000 changes"
else
  echo "FAIL: the allocations changed:"; diff "$LAB_WORKDIR/before" "$LAB_WORKDIR/after" || true
  failures=$((failures + 1))
fi

touch "$stop"
flow_status=0
wait "$flow_pid" || flow_status=$?
sed 's/^/  | /' "$flow_log"
[[ $flow_status -eq 0 ]] || { echo "FAIL: the flow exited $flow_status"; failures=$((failures + 1)); }
# summary EXPRESSION WHAT: a check over the flow's summary (as `s`).
summary() {
  if "$python" -c "import json, sys; s = json.load(open(sys.argv[1])); sys.exit(0 if ($1) else 1)" "$summary"; then
    echo "ok: $2"
  else
    echo "FAIL: $2 ($1)"
    failures=$((failures + 1))
  fi
}
summary 's["to_peer_sent"] > 0 and s["to_peer_received"] == s["to_peer_sent"]' \
  "every datagram the clients sent reached its peer"
summary 's["to_client_sent"] > 0 and s["to_client_received"] == s["to_client_sent"]' \
  "every datagram the peers sent reached its client"
summary 's["out_of_order_or_foreign"] == 0' "nothing arrived that was not sent"
summary 's["errors"] == {} and s["unanswered"] == 0 and s["refreshes_ok"] == s["refreshes_sent"] and s["refreshes_sent"] > 0' \
  "every Refresh, CreatePermission and ChannelBind succeeded: no 437, no 438, no 401"

# A STUN answer for lab_engine_stop_checked, then the engine's own account.
ip netns exec "$(lab_ns c)" timeout 30 "$python" "$here/socket_client.py" binding 203.0.113.2 ||
  failures=$((failures + 1))
lab_engine_stop_checked
relay_line=$(grep '^relay lcore1: ' "$LAB_ENGINE_LOG" | tail -n 1)
to_peers=$(sed -n 's/.*| relayed \([0-9]*\) to peers.*/\1/p' <<<"$relay_line")
to_clients=$(sed -n 's/.*to peers, \([0-9]*\) to clients.*/\1/p' <<<"$relay_line")
summary "s['to_peer_sent'] == ${to_peers:-0} and s['to_client_sent'] == ${to_clients:-0}" \
  "the engine relayed exactly what was sent ($to_peers to peers, $to_clients to clients)"
lab_verdict
