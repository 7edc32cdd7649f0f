#!/usr/bin/env bash
# tests/control/sfu_live_test.sh PUNCHLINED PUNCHCTL — punchctl's SFU commands on live legs.
#
# The lab of the relay interop tests (tests/engine/interop/lab.sh): namespace "e" runs
# punchlined on net_af_packet over a veth pair with the sfu role (sfu.port 3480); namespace "c"
# holds the participants, UDP sockets driven by sfu_live.py, which admits them with real Binding
# requests carrying session tokens, sends media among them and runs punchctl against the
# engine's socket: the listing (legs, counters, each session's summary), pause (the copies to
# one subscriber stop, counted filtered), resume, kill (the leg gone, media to it stops), drain
# (a new leg gets 508 "SFU node draining" while the others' keepalives and media carry on;
# status says so), undrain (admitted again). The exit report must then show the refusals
# (sfu_draining), the kill (legs_killed), the datagrams of a leg no more (sfu_not_a_leg), and
# every packet accounted for (conserved). A Prometheus scrape ([metrics], GET /metrics from the
# engine's namespace) taken once the participants are done has every SFU family, every admission
# outcome on every core, and the exit report's SFU counters (tests/control/metrics_compare.py);
# promtool finds nothing to say about it, where it is installed.
# Needs root (namespaces, EAL); exit 77 (skipped) otherwise.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/../engine/interop/lab.sh"

python=/usr/bin/python3
lab_init "${1:?usage: sfu_live_test.sh PUNCHLINED PUNCHCTL}" "$python" timeout
punchctl=${2:?usage: sfu_live_test.sh PUNCHLINED PUNCHCTL}

secret="the sfu_live test's secret, 32 B"
lab_public_link
config=$LAB_WORKDIR/engine.toml
lab_public_config "$config"
cat >>"$config" <<EOT

[sfu]
port = 3480
token_secrets = ["$secret"]
max_legs_per_session = 4

[metrics]
listen = "127.0.0.1:9641"
EOT
lab_engine_start e "$config"
sock=$LAB_WORKDIR/punchlined.sock
failures=0

status=0
lab_exec_wait c timeout 120 "$python" "$here/sfu_live.py" "$punchctl" "$sock" "$secret" \
  203.0.113.2 || status=$?
if [[ $status -ne 0 ]]; then
  echo "FAIL: sfu_live.py: $status failed check(s)"
  failures=$((failures + status))
fi

# The scrape before the exit, compared with the exit report below (nothing is sent between them).
scrape=$LAB_WORKDIR/sfu.prom
if ! lab_exec e timeout 10 "$python" -c '
import sys, urllib.request
sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:9641/metrics", timeout=5).read().decode())
' >"$scrape"; then
  echo "FAIL: no scrape of the metrics"
  failures=$((failures + 1))
elif command -v promtool >/dev/null; then
  # Its lint, where Debian's prometheus package is installed: any output is a problem.
  if lint=$(promtool check metrics <"$scrape" 2>&1) && [[ -z $lint ]]; then
    echo "ok: promtool check metrics"
  else
    echo "FAIL: promtool check metrics: $lint"
    failures=$((failures + 1))
  fi
fi

lab_engine_stop || { echo "FAIL: the engine's exit"; failures=$((failures + 1)); }
status=0
"$python" "$here/metrics_compare.py" sfu "$LAB_ENGINE_LOG" "$scrape" || status=$?
if [[ $status -ne 0 ]]; then
  echo "FAIL: the scrape and the exit report disagree: $status check(s)"
  failures=$((failures + status))
fi
check "the drain refused the new legs (dave, carol)" "$LAB_ENGINE_LOG" '^  sfu sfu_draining +2  \(508: '
check "four admissions (alice, bob, carol, dave)" "$LAB_ENGINE_LOG" '^  sfu sfu_admitted +4  '
check "the kill, by the worker" "$LAB_ENGINE_LOG" '^sfu lcore1: 3 legs .*\| [0-9]+ expired, 1 killed$'
check "carol's datagrams after the kill: not a leg" "$LAB_ENGINE_LOG" '^  drop sfu_not_a_leg +3 '
check "the filtered copies" "$LAB_ENGINE_LOG" '^sfu lcore1: .*, 10 filtered \|'
check "the sessions at exit" "$LAB_ENGINE_LOG" '^sfu sessions: 1, the largest with 3 leg\(s\)$'
lab_verdict
