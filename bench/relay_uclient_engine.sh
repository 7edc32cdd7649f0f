#!/usr/bin/env bash
# bench/relay_uclient_engine.sh — punchlined's CPU cycles per relayed packet (issue 4), under
# coturn's own TURN client: the workload bench/relay_uclient_coturn.sh gives coturn.
#
# Usage (root): bench/relay_uclient_engine.sh [channel|send] [RUNS (default 3)]
#   CLIENTS=10 MESSAGES=2000 INTERVAL_MS=1 PAYLOAD=100   the turnutils_uclient workload
#
# The lab of tests/engine/interop/relay_uclient_af_packet_test.sh (tests/engine/interop/lab.sh):
# namespace "e" runs punchlined, relay role on, on net_af_packet over veth eng0 (203.0.113.2,
# rx_checksum trust); namespace "c" holds the client (203.0.113.10/24) and, behind it as the
# engine's gateway, turnutils_peer on 198.51.100.7:3480, which echoes. turnutils_uclient runs
# CLIENTS clients, each allocating with long-term credentials and sending MESSAGES messages of
# PAYLOAD bytes every INTERVAL_MS to the peer through the relay; the peer sends each back
# through the relay. Mode channel (coturn's default): ChannelBind, then ChannelData both ways;
# send (-s): CreatePermission, Send indications out, Data indications back.
#
# A relayed packet is a message that crossed the relay one way: tot_send_msgs +
# tot_recv_msgs as turnutils_uclient reports them (the same count for coturn). The engine's
# cycles are its own busy cycles (TSC cycles of worker-loop iterations that took in packets,
# as bench/stun_flood_engine.sh reads them), allocation set-up included, over a fresh engine
# per run; the figure is the median of RUNS. On net_af_packet the worker's cycles include the
# vdev's kernel work (each TX kick runs the veth's transmit and the delivery to the peer
# namespace on the worker's core), so this measures the vdev as much as the engine; the
# engine's own cost per packet is bench/engine_pipeline_bench's.
#
# Prints a line per run, a summary, and one JSON line:
#   {"name":"engine_relay_cycles_per_packet_<mode>","value":N,"unit":"cycles/packet",...}
# Exit 1 when a run lost messages or the engine's counters were not conserved.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=${1:-channel}
runs=${2:-3}
clients=${CLIENTS:-10}
messages=${MESSAGES:-2000}
interval_ms=${INTERVAL_MS:-1}
payload=${PAYLOAD:-100}
case $mode in
  channel) send_flag=() ;;
  send) send_flag=(-s) ;;
  *) echo "usage: $0 [channel|send] [RUNS]" >&2; exit 2 ;;
esac

# shellcheck source=tests/engine/interop/lab.sh
source tests/engine/interop/lab.sh
lab_init build/control/punchlined turnutils_uclient turnutils_peer timeout

lab_public_link
# The peer, behind the client (the engine's gateway).
lab_exec c ip addr add 198.51.100.7/32 dev cli0

config=$LAB_WORKDIR/engine.toml
lab_relay_config "$config"
cat >>"$config" <<'EOF'
users = [{ name = "alice", password = "relay-password" }]
# coturn has neither limit by default: every client of the run is one user from one address.
max_allocations_per_user = 1000
unauthenticated_requests_per_s = 1000
unauthenticated_burst = 1000
EOF

# The worker busy-polls lcore 1; the client and the peer run on CPU 0 (were they to share CPU 1,
# the time the worker spends preempted would count as its busy cycles).
ip netns exec "$(lab_ns c)" taskset -c 0 turnutils_peer -L 198.51.100.7 -p 3480 \
  >"$LAB_WORKDIR/peer.log" 2>&1 &
disown  # lab_cleanup kills it by PID with the namespace; no job notice

results=()
for ((run = 1; run <= runs; run++)); do
  lab_engine_start e "$config" >/dev/null
  output=$LAB_WORKDIR/uclient-$run.txt
  status=0
  # Bounded: at most 60 s whatever the workload asks.
  lab_exec c timeout 60 taskset -c 0 turnutils_uclient "${send_flag[@]}" -u alice \
    -w relay-password -X -e 198.51.100.7 -r 3480 -n "$messages" -l "$payload" -m "$clients" \
    -z "$interval_ms" -c 203.0.113.2 >"$output" 2>&1 || status=$?
  if ! lab_engine_stop >"$LAB_WORKDIR/engine-stop-$run.txt"; then
    cat "$LAB_WORKDIR/engine-stop-$run.txt"
    lab_fail "run $run: the engine's counters"
  fi
  total=$(grep '^total ' "$LAB_ENGINE_LOG" | tail -n 1)
  tsc_hz=$(awk '/^tsc_hz/ { print $2 }' "$LAB_ENGINE_LOG" | tail -n 1)
  busy=$(sed -E 's/.*busy cycles ([0-9]+).*/\1/' <<<"$total")
  totals='s/.*tot_send_msgs=\([0-9]*\), tot_recv_msgs=\([0-9]*\).*/\1 \2/p'
  read -r sent received < <(sed -n "$totals" "$output" | tail -n 1) || true
  if [[ $status -ne 0 || -z $sent || -z $received || $received -eq 0 ]]; then
    sed 's/^/  | /' "$output" | tail -n 15
    lab_fail "run $run: turnutils_uclient exit $status, nothing relayed back"
  fi
  if [[ $received -ne $sent ]]; then
    sed 's/^/  | /' "$output" | tail -n 5
    lab_fail "run $run: $sent messages sent, $received came back: lost messages"
  fi
  relayed=$((sent + received))
  cycles=$(awk -v b="$busy" -v n="$relayed" 'BEGIN { printf "%.0f", b / n }')
  echo "run $run: $relayed relayed ($sent out, $received back), $busy busy cycles:" \
    "$cycles cycles per relayed packet; engine $total"
  results+=("$cycles")
done

median=$(printf '%s\n' "${results[@]}" | sort -n | awk '{ v[NR] = $1 } END {
  print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
echo "engine ($mode, net_af_packet): median $median cycles per relayed packet over $runs runs" \
  "(${results[*]}), TSC $tsc_hz Hz, $clients clients x $messages messages of $payload bytes"
printf '{"name":"engine_relay_cycles_per_packet_%s","value":%s,"unit":"cycles/packet",%s}\n' \
  "$mode" "$median" "$(printf '"runs":[%s],"clients":%s,"messages":%s,"payload_bytes":%s' \
    "$(IFS=,; echo "${results[*]}")" "$clients" "$messages" "$payload")"
