#!/usr/bin/env bash
# tests/control/metrics_endpoint_test.sh PUNCHLINED PUNCHCTL — the Prometheus endpoint of a
# running engine.
#
# The lab of punchctl_test.sh (tests/engine/interop/lab.sh): namespace "e" runs punchlined on
# net_af_packet over a veth pair with the relay role and [metrics] listen = "127.0.0.1:9641"
# (the namespace's own loopback); namespace "c" holds the clients. Traffic: STUN Binding
# requests, three TURN allocations (tests/control/socket_client.py), five datagrams to a closed
# port, and two aioice agents relaying datagrams to each other through the engine
# (tests/engine/interop/relay_aioice.py).
# Checked:
#   - the engine logs where the endpoint listens; GET /metrics answers 200 with format 0.0.4,
#     taken while the aioice allocations are live and again at rest, and `promtool check
#     metrics` (Debian's prometheus package) finds nothing to say about either;
#   - at rest (no traffic: two `punchctl stats --json` around the scrape agree), its numbers are
#     /stats's: rx, tx, handed off per core and in all, drops by reason, allocations; no SFU
#     family without the SFU role (tests/control/sfu_live_test.sh checks them with it);
#   - after the engine stops, the exit report's TURN outcomes, refused authentications and
#     relayed datagrams equal the at-rest scrape's;
#   - another path is 404, another method 405, a request that is not HTTP 400; /status counts
#     the scrapes.
# Needs root (namespaces, EAL); exit 77 (skipped) otherwise, or without aioice, curl or promtool.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/../engine/interop/lab.sh"

python=/usr/bin/python3
lab_init "${1:?usage: metrics_endpoint_test.sh PUNCHLINED PUNCHCTL}" "$python" timeout curl \
  promtool
punchctl=${2:?usage: metrics_endpoint_test.sh PUNCHLINED PUNCHCTL}
if ! "$python" -c 'import aioice' 2>/dev/null; then
  echo "SKIP: aioice is not importable by $python (apt-get install python3-aioice)"
  exit 77
fi

lab_public_link
config=$LAB_WORKDIR/engine.toml
lab_relay_config "$config"
cat >>"$config" <<'EOT'
users = [{ name = "alice", password = "pw-alice" }, { name = "bob", password = "pw-bob" }]

[metrics]
listen = "127.0.0.1:9641"
EOT
lab_engine_start e "$config"
sock=$LAB_WORKDIR/punchlined.sock
failures=0
url=http://127.0.0.1:9641/metrics

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
client() {
  ip netns exec "$(lab_ns c)" timeout 30 "$python" "$here/socket_client.py" "$@"
}
# scrape FILE: GET /metrics in the engine's namespace; the body in FILE, the headers in
# FILE.headers.
scrape() {
  lab_exec e timeout 10 curl -sS --fail -D "$1.headers" -o "$1" "$url"
}
# promtool_check FILE WHAT: promtool's lint of one scrape; any output is a problem.
promtool_check() {
  local report=$LAB_WORKDIR/promtool.txt status=0
  promtool check metrics <"$1" >"$report" 2>&1 || status=$?
  if [[ $status -eq 0 && ! -s $report ]]; then
    echo "ok: promtool check metrics: $2"
  else
    sed 's/^/  | /' "$report"
    fail "promtool check metrics: $2 (exit $status)"
  fi
}
# metric FILE SELECTOR: the sum of the samples of FILE whose series starts with SELECTOR
# ('punchline_rx_packets_total{' or 'punchline_dropped_packets_total{core="1",reason="x"}').
metric() {
  awk -v s="$2" 'index($0, s) == 1 { sum += $NF; found = 1 }
    END { if (found) printf "%.0f\n", sum }' "$1"
}

check "the engine says where the metrics are" "$LAB_ENGINE_LOG" \
  '^punchlined: metrics on http://127\.0\.0\.1:9641/metrics$'

echo "== traffic: STUN, three allocations, two agents relaying"
for _ in 1 2 3; do client binding 203.0.113.2; done
alloc=$LAB_WORKDIR/alloc
for user in alice alice bob; do
  client allocate 203.0.113.2 "$user" "pw-$user" | tee -a "$alloc"
done
[[ $(grep -c '^allocated' "$alloc") -eq 3 ]] || fail "not three allocations"
# Five datagrams to a port no role listens on: dropped as no_service.
lab_exec c bash -c 'for i in 1 2 3 4 5; do echo drop-me >/dev/udp/203.0.113.2/9; done'

report=$LAB_WORKDIR/report-ready
output=$LAB_WORKDIR/aioice.txt
ip netns exec "$(lab_ns c)" timeout 40 "$python" "$here/../engine/interop/relay_aioice.py" \
  203.0.113.2 alice pw-alice "$report" >"$output" 2>&1 &
agents=$!
lab_poll 450 eval "[[ -e \$report ]] || ! kill -0 $agents 2>/dev/null" || true
live=$LAB_WORKDIR/live.prom
if [[ -e $report ]] && scrape "$live"; then
  echo "ok: scraped while the agents' allocations are live"
  promtool_check "$live" "while relaying"
  [[ $(metric "$live" 'punchline_relay_allocations{') -eq 5 ]] &&
    echo "ok: five allocations live (three plus the agents' two)" ||
    fail "live allocations: $(metric "$live" 'punchline_relay_allocations{')"
else
  fail "no scrape while the agents' allocations were live"
fi
touch "$report.done"
status=0
wait "$agents" || status=$?
echo "relay_aioice.py exit $status:"
sed 's/^/  | /' "$output"
[[ $status -eq 0 ]] || fail "relay_aioice.py"

echo "== at rest: the scrape agrees with punchctl stats --json"
# Nothing is sent now, but the control thread's neighbour probes (the gateway's ARP, every
# neighbour.reachable_ms) may still bring a reply: a scrape counts as at rest when the stats
# taken before and after it are the same.
rest=$LAB_WORKDIR/rest.prom
before=$LAB_WORKDIR/before.json
after=$LAB_WORKDIR/after.json
at_rest=0
for _ in 1 2 3 4 5; do
  timeout 20 "$punchctl" --socket "$sock" --json stats >"$before"
  scrape "$rest" || break
  timeout 20 "$punchctl" --socket "$sock" --json stats >"$after"
  if "$python" "$here/metrics_compare.py" same-stats "$before" "$after"; then
    at_rest=1
    break
  fi
  sleep 1
done
if [[ $at_rest -eq 1 ]]; then
  echo "ok: a scrape between two equal stats"
  promtool_check "$rest" "at rest"
  # Five no_service drops and three allocations: what this test sent and left.
  "$python" "$here/metrics_compare.py" stats "$after" "$rest" 5 3 ||
    fail "the scrape and /stats disagree"
  if grep -q '^punchline_sfu_' "$rest"; then
    fail "SFU families without the SFU role: $(grep -c '^punchline_sfu_' "$rest") series"
  else
    echo "ok: no SFU family without the SFU role"
  fi
else
  fail "no two equal stats around a scrape in 5 tries"
fi

echo "== HTTP"
code() {
  lab_exec e timeout 10 curl -sS -o /dev/null -w '%{http_code}' "$@" || true
}
[[ $(code http://127.0.0.1:9641/) == 404 ]] && echo "ok: / is 404" || fail "/ is not 404"
[[ $(code -X POST "$url") == 405 ]] && echo "ok: POST /metrics is 405" || fail "POST is not 405"
[[ $(code -I "$url") == 200 ]] && echo "ok: HEAD /metrics is 200" || fail "HEAD is not 200"
if grep -qi '^content-type: text/plain; version=0.0.4; charset=utf-8' "$rest.headers"; then
  echo "ok: Content-Type names format 0.0.4"
else
  fail "Content-Type: $(grep -i content-type "$rest.headers")"
fi
answer=$(printf 'HELLO\r\n\r\n' | lab_exec e timeout 10 "$python" -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", 9641), timeout=5)
s.sendall(sys.stdin.buffer.read())
print(s.recv(200).decode(errors="replace").splitlines()[0])')
[[ $answer == "HTTP/1.1 400 Bad Request" ]] && echo "ok: not HTTP: 400" ||
  fail "not HTTP: '$answer'"
timeout 20 "$punchctl" --socket "$sock" --json status >"$LAB_WORKDIR/status.json"
"$python" -c '
import json, sys
m = json.load(open(sys.argv[1]))["control"]["metrics"]
print("metrics in /status:", m)
ok = m["listen"] == "127.0.0.1:9641" and m["scrapes"] >= 3 and m["bad_requests"] == 1
sys.exit(0 if ok else 1)
' "$LAB_WORKDIR/status.json" && echo "ok: /status counts the scrapes" || fail "/status's metrics"

echo "== the exit report agrees with the last scrape"
lab_engine_stop_checked
"$python" "$here/metrics_compare.py" report "$LAB_ENGINE_LOG" "$rest" ||
  fail "the scrape and the exit report disagree"
lab_verdict
