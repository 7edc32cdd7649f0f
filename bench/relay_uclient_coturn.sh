#!/usr/bin/env bash
# bench/relay_uclient_coturn.sh — coturn's CPU cycles per relayed packet (issue 4), the
# baseline bench/relay_uclient_engine.sh's figure is compared with: the same namespaces, the
# same turnutils_uclient workload, the same turnutils_peer echoing.
#
# Usage (root): bench/relay_uclient_coturn.sh [channel|send] [RUNS (default 3)]
#   CLIENTS=10 MESSAGES=2000 INTERVAL_MS=1 PAYLOAD=100   the turnutils_uclient workload
#   RT=1   turnserver SCHED_FIFO (chrt -f 1), as bench/relay_uclient_engine.sh's RT=1 makes the
#          engine's worker (CPU time does not count preemption, but this keeps the two alike)
#
# Namespace "e" runs Debian's turnserver (coturn 4.6) with one relay thread (-m 1), pinned to
# CPU 1 (where punchlined's worker runs), on the kernel's end of veth eng0, 203.0.113.2/24,
# relaying from that address, its route to the peer via 203.0.113.10; long-term credentials
# (alice, realm punchline.test), no TCP, TLS, DTLS or CLI. Namespace "c" is the engine's lab:
# the client 203.0.113.10/24 and turnutils_peer on 198.51.100.7:3480, both on CPU 0.
#
# A relayed packet is tot_send_msgs + tot_recv_msgs as turnutils_uclient reports them (the
# engine's script counts the same). coturn's cycles: its process CPU time (utime + stime of all
# its threads, /proc/PID/stat) from just before the client starts to just after it ends, a
# fresh turnserver per run, times the TSC rate (punchlined's tsc_hz, read from a DPDK-free
# source here: the "cpu MHz" /proc/cpuinfo reports, which on this VM is the TSC's 2600), so
# allocation set-up is included as it is for the engine. It includes the kernel's UDP work
# charged to turnserver (receive, send, and the veth delivery of what it sends); its
# resolution is one clock tick (10 ms). Median of RUNS. Prints a line per run, a summary and
#   {"name":"coturn_relay_cycles_per_packet_<mode>","value":N,"unit":"cycles/packet",...}
# Exit 1 when a run lost messages or turnserver did not start.
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

# lab.sh's namespaces, cleanup and checks; its engine functions are not used (lab_init wants
# an executable for them: any will do, the engine's is there after a build).
# shellcheck source=tests/engine/interop/lab.sh
source tests/engine/interop/lab.sh
lab_init /bin/true turnserver turnutils_uclient turnutils_peer timeout taskset

lab_ns_add e
lab_ns_add c
lab_veth e eng0 c cli0
lab_exec e ip addr add 203.0.113.2/24 dev eng0
lab_exec e ip link set eng0 up
lab_exec e ip route add 198.51.100.7/32 via 203.0.113.10
lab_exec c ip addr add 203.0.113.10/24 dev cli0
lab_exec c ip addr add 198.51.100.7/32 dev cli0
lab_exec c ip link set cli0 up
lab_wait_carrier c cli0
lab_wait_carrier e eng0

ip netns exec "$(lab_ns c)" taskset -c 0 turnutils_peer -L 198.51.100.7 -p 3480 \
  >"$LAB_WORKDIR/peer.log" 2>&1 &
disown  # lab_cleanup kills it by PID with the namespace; no job notice

# utime + stime in clock ticks: fields 14 and 15 of /proc/PID/stat, after the ")" that ends
# the command name.
cpu_ticks() {
  local stat rest
  stat=$(<"/proc/$1/stat")
  rest=${stat##*) }
  # shellcheck disable=SC2086
  set -- $rest
  echo $((${12} + ${13}))
}
ticks_per_second=$(getconf CLK_TCK)
mhz=$(awk -F: '/^cpu MHz/ { gsub(/ /, "", $2); print $2; exit }' /proc/cpuinfo)

turnserver_pid=""
stop_turnserver() {
  [[ -n $turnserver_pid ]] || return 0
  kill -TERM "$turnserver_pid" 2>/dev/null || true
  lab_poll 50 eval "! kill -0 $turnserver_pid 2>/dev/null" ||
    kill -KILL "$turnserver_pid" 2>/dev/null || true
  wait "$turnserver_pid" 2>/dev/null || true
  turnserver_pid=""
}

results=()
for ((run = 1; run <= runs; run++)); do
  log=$LAB_WORKDIR/turnserver-$run.log
  # -n: these flags only, no configuration file; --pidfile, --db: state in the work folder.
  rt=()
  [[ ${RT:-0} != 1 ]] || rt=(chrt -f 1)
  ip netns exec "$(lab_ns e)" "${rt[@]}" taskset -c 1 turnserver -n -m 1 \
    --listening-ip 203.0.113.2 --relay-ip 203.0.113.2 --listening-port 3478 \
    --lt-cred-mech --user alice:relay-password --realm punchline.test \
    --no-tcp --no-tls --no-dtls --no-cli --no-tcp-relay \
    --log-file stdout --simple-log \
    --pidfile "$LAB_WORKDIR/turnserver.pid" --db "$LAB_WORKDIR/turndb-$run" >"$log" 2>&1 &
  turnserver_pid=$!
  lab_poll 50 eval "ip netns exec $(lab_ns e) ss -Hlun 'sport = :3478' | grep -q 203.0.113.2" ||
    { cat "$log"; lab_fail "turnserver is not listening on 203.0.113.2:3478"; }
  output=$LAB_WORKDIR/uclient-$run.txt
  before=$(cpu_ticks "$turnserver_pid")
  status=0
  lab_exec c timeout 60 taskset -c 0 turnutils_uclient "${send_flag[@]}" -u alice \
    -w relay-password -X -e 198.51.100.7 -r 3480 -n "$messages" -l "$payload" -m "$clients" \
    -z "$interval_ms" -c 203.0.113.2 >"$output" 2>&1 || status=$?
  after=$(cpu_ticks "$turnserver_pid")
  stop_turnserver
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
  cycles=$(awk -v t=$((after - before)) -v hz="$ticks_per_second" -v mhz="$mhz" -v n="$relayed" \
    'BEGIN { printf "%.0f", t / hz * mhz * 1e6 / n }')
  echo "run $run: $relayed relayed ($sent out, $received back), $((after - before)) ticks of" \
    "turnserver CPU: $cycles cycles per relayed packet"
  results+=("$cycles")
done

median=$(printf '%s\n' "${results[@]}" | sort -n | awk '{ v[NR] = $1 } END {
  print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
echo "coturn ($mode, kernel UDP on veth$([[ ${RT:-0} == 1 ]] && echo ", SCHED_FIFO")): median $median cycles per relayed packet over $runs" \
  "runs (${results[*]}), $mhz MHz, $clients clients x $messages messages of $payload bytes"
printf '{"name":"coturn_relay_cycles_per_packet_%s","value":%s,"unit":"cycles/packet",%s}\n' \
  "$mode" "$median" "$(printf '"runs":[%s],"clients":%s,"messages":%s,"payload_bytes":%s' \
    "$(IFS=,; echo "${results[*]}")" "$clients" "$messages" "$payload")"
