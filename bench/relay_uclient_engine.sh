#!/usr/bin/env bash
# bench/relay_uclient_engine.sh — punchlined's CPU cycles per relayed packet (issue 4), under
# coturn's own TURN client: the workload bench/relay_uclient_coturn.sh gives coturn.
#
# Usage (root): bench/relay_uclient_engine.sh [channel|send] [RUNS (default 3)] [af_packet|af_xdp]
#   CLIENTS=10 MESSAGES=2000 INTERVAL_MS=1 PAYLOAD=100   the turnutils_uclient workload
#   RPS=1    the client's veth (cli0) steers its receive processing to CPU 0 (rps_cpus = 1)
#   RT=1     the worker thread SCHED_FIFO (chrt -f 1) once started: on a machine shared with
#            other work, so that nothing else preempts it inside a busy iteration (the time
#            would count as busy cycles); the kernel still runs others 5% of each second
#            (sched_rt_runtime_us). bench/relay_uclient_coturn.sh takes RT=1 for turnserver.
#   HUGE=1   the engine on 2 MB hugepages (--in-memory; reserve them first:
#            dpdk-hugepages.py -p 2M --setup 1G) instead of the lab's --no-huge -m 256
#
# The vdev (default af_packet): net_af_packet0,iface=eng0,qpairs=1, or
# net_af_xdp0,iface=eng0,start_queue=0,queue_count=1,busy_budget=0 (XDP on the veth, copy
# mode; the veth hands it the client's partial UDP checksums too, hence rx_checksum = trust
# for both). busy_budget=0 (XDP_BUSY_BUDGET=N to change it; the PMD's default is 64): with
# busy polling the PMD calls recvfrom() on every empty RX burst, which runs the veth's NAPI,
# the kernel's receive work, on the worker's core in iterations that took nothing, so that
# busy cycles would not count it; without it that work runs on the sender's CPU, as it does
# for af_packet and for coturn's socket.
#
# RPS: every frame the engine sends is a sendto() kick whose veth transmit queues the frame
# to the receiving veth's backlog on the current CPU, the worker's, and runs that backlog (IP,
# UDP, the socket wake-up in namespace "c") before the syscall returns. With rps_cpus = 1 on
# cli0 the backlog is CPU 0's instead (an IPI), where the client and the peer run. The
# engine's receive side needs none: the client's sendto() already runs the delivery into the
# engine's socket or XDP queue on CPU 0.
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
# namespace on the worker's core), so this measures the vdev as much as the engine: the
# engine's counters split them into rx (inside rte_eth_rx_burst), tx (the TX flush, the kick
# included) and handling (the rest, the engine's own work), each printed per relayed packet.
# Iterations over 1 ms (the worker preempted in them) are left out of busy cycles and
# counted apart as stalled (docs/operations.md); each run prints them, and how long the
# worker waited on the run queue, as a gauge of how shared CPU 1 was.
#
# Prints a line per run, a summary, and one JSON line:
#   {"name":"engine_relay_cycles_per_packet_<mode>","value":N,"unit":"cycles/packet",...}
# Exit 1 when a run lost messages or the engine's counters were not conserved.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=${1:-channel}
runs=${2:-3}
vdev=${3:-af_packet}
clients=${CLIENTS:-10}
messages=${MESSAGES:-2000}
interval_ms=${INTERVAL_MS:-1}
payload=${PAYLOAD:-100}
case $mode in
  channel) send_flag=() ;;
  send) send_flag=(-s) ;;
  *) echo "usage: $0 [channel|send] [RUNS] [af_packet|af_xdp]" >&2; exit 2 ;;
esac
case $vdev in
  af_packet | af_xdp) ;;
  *) echo "usage: $0 [channel|send] [RUNS] [af_packet|af_xdp]" >&2; exit 2 ;;
esac

# shellcheck source=tests/engine/interop/lab.sh
source tests/engine/interop/lab.sh
lab_init build/control/punchlined turnutils_uclient turnutils_peer timeout

lab_public_link
# The peer, behind the client (the engine's gateway).
lab_exec c ip addr add 198.51.100.7/32 dev cli0

config=$LAB_WORKDIR/engine.toml
lab_relay_config "$config"
if [[ $vdev == af_xdp ]]; then
  xdp_vdev=net_af_xdp0,iface=eng0,start_queue=0,queue_count=1,busy_budget=${XDP_BUSY_BUDGET:-0}
  sed -i -e "s/--vdev=net_af_packet0,iface=eng0,qpairs=1/--vdev=$xdp_vdev/" \
    -e 's/^device = "net_af_packet0"$/device = "net_af_xdp0"/' "$config"
  if ! { grep -q net_af_xdp0,iface=eng0 "$config" && grep -q '^device = "net_af_xdp0"' "$config"; }
  then
    lab_fail "lab_relay_config's configuration no longer names net_af_packet0 as expected"
  fi
fi
if [[ ${HUGE:-0} == 1 ]]; then
  sed -i 's/"--no-huge", "-m", "256", "--no-shconf"/"--in-memory"/' "$config"
  grep -q '"--in-memory"' "$config" ||
    lab_fail "lab_relay_config's EAL arguments no longer hold --no-huge -m 256 --no-shconf"
fi
rps=$(lab_exec c cat /sys/class/net/cli0/queues/rx-0/rps_cpus)
if [[ ${RPS:-0} == 1 ]]; then
  lab_exec c sh -c 'echo 1 >/sys/class/net/cli0/queues/rx-0/rps_cpus'
  rps=$(lab_exec c cat /sys/class/net/cli0/queues/rx-0/rps_cpus)
fi
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

# What inflates busy cycles without being the engine's: the time the worker thread was
# preempted (its run-queue wait, field 2 of /proc/PID/task/TID/schedstat, in ns) and the time
# the hypervisor took CPU 1 away (steal, field 9 of /proc/stat's cpu1 line, in clock ticks).
# Part of either may fall in idle iterations, so this bounds the inflation, it is not it.
worker_tid() {
  local task
  for task in /proc/"$LAB_ENGINE_PID"/task/*; do
    [[ $(<"$task/comm") == rte-worker-* ]] || continue
    echo "${task##*/}"
    return
  done
  lab_fail "no rte-worker thread in punchlined $LAB_ENGINE_PID"
}
worker_wait_ns() {
  local wait
  read -r _ wait _ <"/proc/$LAB_ENGINE_PID/task/$(worker_tid)/schedstat"
  echo "$wait"
}
cpu1_steal_ticks() { awk '$1 == "cpu1" { print $9 }' /proc/stat; }

results=()
rx_results=()
tx_results=()
handling_results=()
preempted_results=()
for ((run = 1; run <= runs; run++)); do
  lab_engine_start e "$config" >/dev/null
  [[ ${RT:-0} != 1 ]] || chrt -f -p 1 "$(worker_tid)" >/dev/null
  output=$LAB_WORKDIR/uclient-$run.txt
  status=0
  wait_before=$(worker_wait_ns)
  steal_before=$(cpu1_steal_ticks)
  # Bounded: at most 60 s whatever the workload asks.
  lab_exec c timeout 60 taskset -c 0 turnutils_uclient "${send_flag[@]}" -u alice \
    -w relay-password -X -e 198.51.100.7 -r 3480 -n "$messages" -l "$payload" -m "$clients" \
    -z "$interval_ms" -c 203.0.113.2 >"$output" 2>&1 || status=$?
  preempted_ms=$((($(worker_wait_ns) - wait_before) / 1000000))
  steal_ms=$((($(cpu1_steal_ticks) - steal_before) * 1000 / $(getconf CLK_TCK)))
  if ! lab_engine_stop >"$LAB_WORKDIR/engine-stop-$run.txt"; then
    cat "$LAB_WORKDIR/engine-stop-$run.txt"
    lab_fail "run $run: the engine's counters"
  fi
  total=$(grep '^total ' "$LAB_ENGINE_LOG" | tail -n 1)
  tsc_hz=$(awk '/^tsc_hz/ { print $2 }' "$LAB_ENGINE_LOG" | tail -n 1)
  split='s/.*busy cycles ([0-9]+) = rx ([0-9]+) \+ tx ([0-9]+) \+ handling ([0-9]+), stalled ([0-9]+) in ([0-9]+) iterations .*/\1 \2 \3 \4 \5 \6/p'
  read -r busy busy_rx busy_tx busy_handling stalled stalled_iterations < <(sed -En "$split" <<<"$total") ||
    lab_fail "run $run: no busy cycles split in the engine's total line: $total"
  totals='s/.*tot_send_msgs=\([0-9]*\), tot_recv_msgs=\([0-9]*\).*/\1 \2/p'
  read -r sent received < <(sed -n "$totals" "$output" | tail -n 1) || true
  if [[ $status -ne 0 || -z $sent || -z $received || $received -eq 0 ]]; then
    sed 's/^/  | /' "$output" | tail -n 15
    echo "the engine's report:"
    grep -v '^  | lib\(bpf\|xdp\): ' "$LAB_WORKDIR/engine-stop-$run.txt" | tail -n 30
    lab_fail "run $run: turnutils_uclient exit $status, nothing relayed back"
  fi
  if [[ $received -ne $sent ]]; then
    sed 's/^/  | /' "$output" | tail -n 5
    lab_fail "run $run: $sent messages sent, $received came back: lost messages"
  fi
  relayed=$((sent + received))
  per_packet() { awk -v c="$1" -v n="$relayed" 'BEGIN { printf "%.0f", c / n }'; }
  cycles=$(per_packet "$busy")
  rx_cycles=$(per_packet "$busy_rx")
  tx_cycles=$(per_packet "$busy_tx")
  handling_cycles=$(per_packet "$busy_handling")
  echo "run $run: $relayed relayed ($sent out, $received back), $busy busy cycles:" \
    "$cycles cycles per relayed packet = rx $rx_cycles + tx $tx_cycles + handling" \
    "$handling_cycles; stalled (left out) $stalled_iterations iterations," \
    "$((stalled / (tsc_hz / 1000))) ms; worker preempted $preempted_ms ms, CPU 1 stolen $steal_ms ms;" \
    "engine $total"
  results+=("$cycles")
  rx_results+=("$rx_cycles")
  tx_results+=("$tx_cycles")
  handling_results+=("$handling_cycles")
  preempted_results+=("$preempted_ms")
done

median_of() {
  printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
    print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
median=$(median_of "${results[@]}")
# Each part's own median over the runs: they need not add up to the total's median.
rx_median=$(median_of "${rx_results[@]}")
tx_median=$(median_of "${tx_results[@]}")
handling_median=$(median_of "${handling_results[@]}")
setting="$([[ ${RT:-0} == 1 ]] && echo "SCHED_FIFO worker, ")net_$vdev$([[ $vdev == af_xdp ]] && echo " busy_budget=${XDP_BUSY_BUDGET:-0}"), RPS on cli0 $rps, $([[ ${HUGE:-0} == 1 ]] && echo hugepages || echo no-huge)"
echo "engine ($mode, $setting): median $median cycles per relayed packet over $runs runs" \
  "(${results[*]}); medians of the parts: rx $rx_median (${rx_results[*]}), tx $tx_median" \
  "(${tx_results[*]}), handling $handling_median (${handling_results[*]}); TSC $tsc_hz Hz," \
  "$clients clients x $messages messages of $payload bytes; worker preempted" \
  "${preempted_results[*]} ms"
# The name keeps af_packet's default figure where it was; another setting names itself.
suffix=$mode
[[ $vdev == af_packet ]] || suffix+="_$vdev"
[[ ${XDP_BUSY_BUDGET:-0} == 0 || $vdev != af_xdp ]] || suffix+="_busy$XDP_BUSY_BUDGET"
[[ ${RPS:-0} == 1 ]] && suffix+="_rps"
[[ ${HUGE:-0} == 1 ]] && suffix+="_huge"
[[ ${RT:-0} == 1 ]] && suffix+="_rt"
printf '{"name":"engine_relay_cycles_per_packet_%s","value":%s,"unit":"cycles/packet",%s}\n' \
  "$suffix" "$median" "$(printf '"runs":[%s],"rx":%s,"tx":%s,"handling":%s,"preempted_ms":[%s],"clients":%s,"messages":%s,"payload_bytes":%s' \
    "$(IFS=,; echo "${results[*]}")" "$rx_median" "$tx_median" "$handling_median" \
    "$(IFS=,; echo "${preempted_results[*]}")" "$clients" "$messages" "$payload")"
