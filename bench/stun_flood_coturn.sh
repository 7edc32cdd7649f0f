#!/usr/bin/env bash
# bench/stun_flood_coturn.sh — coturn's CPU cost per answered STUN Binding request, the baseline
# our engine's cost per request is compared with.
#
# Usage: bench/stun_flood_coturn.sh [COUNT]     (from any directory; COUNT default 500000)
#   STUN_FLOOD=path   the flood binary (default build/bench/stun_flood; built if missing)
#   DURATION=seconds  bound on the flood's sending time (default 30)
#   PIN=0             do not pin turnserver and stun_flood to separate CPUs
#
# Starts turnserver STUN-only on loopback with one relay thread (-m 1), floods it with
# bench/stun_flood, and reads turnserver's utime + stime (all threads) from /proc/PID/stat just
# before and just after. Prints
#   coturn: N answered, X CPU-seconds, Y ns CPU per request, Z cycles per request
#   stun_flood: R answered/s ...
# and one JSON line {"name":"coturn_stun_cycles_per_request","value":Z,"unit":"cycles/request"}.
# Cycles are CPU-seconds × the nominal clock ("cpu MHz" in /proc/cpuinfo, else lscpu).
#
# Read the figure knowing what it counts: the CPU time charged to the turnserver process, i.e.
# its recvmsg/sendmsg syscalls, its STUN handling, and the loopback delivery of its responses
# (the kernel charges loopback delivery to the sender; delivering the requests to turnserver
# is charged to stun_flood). Its idle threads' timers are included and are noise at this rate.
# Resolution is one clock tick (1/CLK_TCK s). With two or more CPUs, turnserver and stun_flood
# are pinned to different CPUs (taskset) so that they do not take turns on one.
# Exit status: 0 with figures; 1 when turnserver did not start or the flood was not answered
# in full (the figure would then be meaningless).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
COUNT=${1:-500000}
DURATION=${DURATION:-30}
STUN_FLOOD=${STUN_FLOOD:-build/bench/stun_flood}
PIN=${PIN:-1}

if ! command -v turnserver >/dev/null 2>&1; then
  echo "stun_flood_coturn: turnserver not installed (apt-get install coturn)" >&2
  exit 1
fi
if [[ ! -x $STUN_FLOOD ]]; then
  ninja -C build bench/stun_flood >&2
fi

# shellcheck source=tests/interop/turnserver.sh
source tests/interop/turnserver.sh

workdir=$(mktemp -d)
cleanup() {
  turnserver_stop
  rm -rf -- "$workdir"
}
trap cleanup EXIT

pin=0
flood_pin=()
if [[ $PIN == 1 ]] && command -v taskset >/dev/null 2>&1 && [[ $(nproc) -ge 2 ]]; then
  pin=1
  flood_pin=(taskset -c 0)
fi

# turnserver_start runs turnserver itself, so the pinning is applied afterwards by PID, to
# every thread (-a).
if ! turnserver_start "$workdir" "$STUN_FLOOD" -m 1; then
  echo "stun_flood_coturn: turnserver did not start" >&2
  exit 1
fi
if [[ $pin == 1 ]]; then
  taskset -a -c -p 1 "$TURNSERVER_PID" >/dev/null
fi

# utime + stime in clock ticks: fields 14 and 15 of /proc/PID/stat, counted after the ")" that
# closes the command name (which could hold spaces).
cpu_ticks() {
  local stat rest
  stat=$(<"/proc/$1/stat")
  rest=${stat##*) }
  # shellcheck disable=SC2086
  set -- $rest
  # rest starts at field 3 (state): utime is field 14, i.e. the 12th here.
  echo $((${12} + ${13}))
}

ticks_per_second=$(getconf CLK_TCK)
mhz=$(awk -F: '/^cpu MHz/ { gsub(/ /, "", $2); print $2; exit }' /proc/cpuinfo)
if [[ -z $mhz ]]; then
  mhz=$(lscpu | awk -F: '/CPU max MHz|CPU MHz/ { gsub(/ /, "", $2); print $2; exit }')
fi

# The whole machine's busy ticks (user nice system irq softirq steal) from /proc/stat, and this
# shell's waited-for children's CPU seconds from `times`: what is neither turnserver nor
# stun_flood is other load, which makes the figure noisy (on a shared machine, rerun).
machine_ticks() {
  local user nice system irq softirq steal
  read -r _ user nice system _ _ irq softirq steal _ </proc/stat
  echo $((user + nice + system + irq + softirq + steal))
}
# `times` runs in this shell (a $(...) subshell would see its own children, none): its second
# line is the CPU time of this shell's waited-for children, stun_flood among them.
children_seconds() {
  awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/)
    printf "%.3f\n", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$1"
}

before=$(cpu_ticks "$TURNSERVER_PID")
machine_before=$(machine_ticks)
times >"$workdir/times-before"
status=0
result=$("${flood_pin[@]}" "$STUN_FLOOD" --server "127.0.0.1:$TURNSERVER_PORT" \
  --count "$COUNT" --duration "$DURATION" --json) || status=$?
after=$(cpu_ticks "$TURNSERVER_PID")
machine_after=$(machine_ticks)
times >"$workdir/times-after"
children_before=$(children_seconds "$workdir/times-before")
children_after=$(children_seconds "$workdir/times-after")

field() { sed -n "s/.*\"$1\":\\([^,}]*\\).*/\\1/p" <<<"$result"; }
answered=$(field answered_ok)
sent=$(field sent)
rate=$(field rate_per_s)
elapsed=$(field elapsed_s)
bad=$(field bad_responses)
timeouts=$(field timeouts)

echo "stun_flood: $sent sent, $answered answered ok, $bad bad, $timeouts timeouts in" \
  "$elapsed s: $rate answered/s"
if [[ $status -ne 0 || -z $answered || $answered -eq 0 ]]; then
  echo "stun_flood_coturn: the flood was not answered in full (exit $status): $result" >&2
  exit 1
fi

awk -v ticks=$((after - before)) -v hz="$ticks_per_second" -v n="$answered" -v mhz="$mhz" \
  -v machine=$((machine_after - machine_before)) -v flood="$children_before $children_after" '
  BEGIN {
    seconds = ticks / hz
    ns = seconds * 1e9 / n
    cycles = ns * mhz / 1000
    split(flood, f, " ")
    flood_seconds = f[2] - f[1]
    other = machine / hz - seconds - flood_seconds
    printf "stun_flood: %.2f CPU-seconds, %.0f ns CPU per request\n", flood_seconds, flood_seconds * 1e9 / n
    # Parenthesised: a bare ">" in a printf argument list is an output redirection in awk.
    note = (other > 0.05 * seconds) ? " (contended: rerun on a quiet machine)" : ""
    printf "machine: %.2f CPU-seconds busy in all, %.2f neither turnserver nor stun_flood%s\n", machine / hz, other, note
    printf "coturn: %d answered, %.2f CPU-seconds, %.0f ns CPU per request, %.0f cycles per request (%.0f MHz, %d ticks)\n", n, seconds, ns, cycles, mhz, ticks
    printf "{\"name\":\"coturn_stun_cycles_per_request\",\"value\":%.0f,\"unit\":\"cycles/request\"}\n", cycles
  }'
