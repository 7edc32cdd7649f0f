#!/usr/bin/env bash
# bench/stun_flood_engine.sh — punchlined's CPU cycles per answered Binding request, measured
# with the same flood generator and the same method as bench/stun_flood_coturn.sh measures
# coturn: busy cycles from the engine's own counters (TSC cycles of loop iterations that took
# in packets) over the requests it answered.
#
# Usage (root): bench/stun_flood_engine.sh [af_packet|tap] [COUNT (default 500000)]
#                                          [DURATION s (default 30)]
#
# The engine runs in a namespace of its own. af_packet (default): net_af_packet on one end of a
# veth pair, stun_flood on the other (PACKET_MMAP rings: no syscall per received packet). tap:
# engine/punchlined.toml on net_tap, whose PMD makes a read() and a write() per packet on the
# worker's core, so its cycles are mostly the TAP's. Through a kernel-facing vdev the client side limits the
# rate (~150k requests/s here); the cycles per request are what compare. Prints a summary and
# one JSON line: {"name":"engine_stun_cycles_per_request_<port>",...}.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
port=${1:-af_packet}
count=${2:-500000}
duration=${3:-30}
case $port in af_packet|tap) ;; *) echo "usage: $0 [af_packet|tap] [COUNT] [DURATION]" >&2; exit 2;; esac
engine=build/control/punchlined
flood=build/bench/stun_flood
for binary in "$engine" "$flood"; do
  [[ -x "$binary" ]] || { echo "stun_flood_engine: build $binary first (ninja -C build)" >&2; exit 2; }
done

ns="plbench-$$"
work=$(mktemp -d "${TMPDIR:-/tmp}/punchline-flood.XXXXXX")
engine_pid=""
cleanup() {
  [[ -n "$engine_pid" ]] && kill -KILL "$engine_pid" 2>/dev/null
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf -- "$work"
}
trap cleanup EXIT

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
config=engine/punchlined.toml
kernel_side=punch0
if [[ $port == af_packet ]]; then
  ip netns exec "$ns" ip link add plengine type veth peer name plkernel
  ip netns exec "$ns" ip link set plengine up
  kernel_side=plkernel
  config="$work/engine.toml"
  cat >"$config" <<'EOT'
[eal]
args = ["-l", "0-1", "--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry",
        "--log-level=lib.eal:error", "--vdev=net_af_packet0,iface=plengine,qpairs=1"]
[engine]
workers = [1]
[stun]
port = 3478
alternate_port = 3479
[[port]]
device = "net_af_packet0"
ipv4 = ["198.18.0.2", "198.18.0.3"]
rx_checksum = "trust"   # veth hands over partial UDP checksums
EOT
fi
ip netns exec "$ns" "$engine" --config "$config" >"$work/engine.out" 2>&1 &
engine_pid=$!
for _ in $(seq 100); do
  grep -q "punchlined: running" "$work/engine.out" && break
  kill -0 "$engine_pid" 2>/dev/null || { cat "$work/engine.out"; exit 1; }
  sleep 0.1
done
ip netns exec "$ns" ip addr add 198.18.0.1/24 dev "$kernel_side"
ip netns exec "$ns" ip link set "$kernel_side" up

# The worker busy-polls lcore 1; the flood runs on CPU 0 beside the sleeping control thread.
ip netns exec "$ns" taskset -c 0 "$flood" --server 198.18.0.2:3478 --count 1000 --duration 5 \
  >/dev/null || true   # warm-up: ARP, caches
ip netns exec "$ns" taskset -c 0 "$flood" --server 198.18.0.2:3478 --count "$count" \
  --duration "$duration" --json >"$work/flood.json" || true

kill -INT "$engine_pid"
for _ in $(seq 100); do kill -0 "$engine_pid" 2>/dev/null || break; sleep 0.1; done
engine_pid=""
total=$(grep "^total" "$work/engine.out" | tail -1)
tsc_hz=$(awk '/^tsc_hz/ {print $2}' "$work/engine.out" | tail -1)
answered=$(sed -E 's/.*stun ok ([0-9]+).*/\1/' <<<"$total")
busy=$(sed -E 's/.*busy cycles ([0-9]+).*/\1/' <<<"$total")
python3 - "$work/flood.json" "$answered" "$busy" "$tsc_hz" "$total" "$port" <<'PY'
import json, sys
flood = json.load(open(sys.argv[1]))
answered, busy, tsc_hz, total = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
if answered == 0:
    sys.exit("stun_flood_engine: the engine answered nothing:\n" + total)
cycles = busy / answered
print(f"engine: {answered} answered, {busy} busy cycles at {tsc_hz / 1e9:.2f} GHz TSC, "
      f"{cycles:.0f} cycles ({cycles / tsc_hz * 1e9:.0f} ns) per request")
print(f"stun_flood: {flood}")
print(f"engine counters: {total}")
print(json.dumps({"name": f"engine_stun_cycles_per_request_{sys.argv[6]}",
                  "value": round(cycles), "unit": "cycles/request"}))
PY
