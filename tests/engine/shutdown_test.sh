#!/usr/bin/env bash
# tests/engine/shutdown_test.sh — punchlined starts, forwards, and stops cleanly.
#
# Usage: shutdown_test.sh <punchlined binary>
#
# Runs the engine on net_null (a vdev that hands the engine an endless stream of zero-filled
# frames, all dropped as not_for_us_l2) for one second, asks for its counters with SIGUSR1,
# stops it with SIGINT, and checks: exit status 0, the counters report says "conserved" with
# a non-zero rx, and — in the sanitize build — no AddressSanitizer or LeakSanitizer report
# (ASAN_OPTIONS=detect_leaks=1 there: "nothing leaks"). Then the same with two workers, whose
# port refuses rte_flow rules: software steering, with the PMD's reason in the log. And once
# with the relay role on. Needs root for EAL; skips (77) if not.
set -uo pipefail

engine=$1
if [[ $(id -u) -ne 0 ]]; then
  echo "shutdown_test: needs root for DPDK's EAL; skipped"
  exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/punchline-shutdown.XXXXXX")
pid=""
cleanup() {
  [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null
  rm -rf -- "$work"
}
trap cleanup EXIT

cat > "$work/engine.toml" <<EOT
[control]
socket = "$work/punchlined.sock"
[eal]
args = ["-l", "0-1", "--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry",
        "--log-level=lib.eal:error", "--vdev=net_null0"]
[engine]
workers = [1]
mbufs = 4095
[stun]
port = 3478
alternate_port = 3479
[[port]]
device = "net_null0"
ipv4 = ["198.18.0.2", "198.18.0.3"]
EOT

# run_engine CONFIG OUT: starts the engine, SIGUSR1 after a second, then SIGINT; sets $status.
run_engine() {
  local config=$1 out=$2
  status=0
  "$engine" --config "$config" >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    grep -q "punchlined: running" "$out" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q "punchlined: running" "$out"; then
    echo "shutdown_test: the engine did not start:"; cat "$out"; exit 1
  fi
  sleep 1
  kill -USR1 "$pid"
  sleep 0.2
  kill -INT "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "shutdown_test: still running 10 s after SIGINT"; cat "$out"; exit 1
  fi
  wait "$pid" || status=$?
  pid=""
  cat "$out"
}

run_engine "$work/engine.toml" "$work/out"

failed=0
check() { if ! eval "$2"; then echo "shutdown_test: FAILED: $1"; failed=1; fi; }
check "exit status 0 (got $status)" '[[ $status -eq 0 ]]'
check "two counter reports (SIGUSR1 and exit)" '[[ $(grep -c "^total" "$work/out") -eq 2 ]]'
check "the exit report is conserved" 'grep "^total" "$work/out" | tail -1 | grep -q " conserved$"'
check "packets were received" '! grep "^total" "$work/out" | tail -1 | grep -q "rx 0 pkts"'
check "no sanitizer report" \
  '! grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$work/out"'
check "one queue needs no steering" 'grep -q "steering: software (one queue" "$work/out"'

# Two workers (lcores 1 and 2 share CPU 1: this machine may have two CPUs): net_null takes no
# rte_flow rule, so the engine says why and steers in software; still conserved, still clean.
sed -e 's/"-l", "0-1"/"--lcores=0@0,1@1,2@1"/' -e 's/^workers = \[1\]/workers = [1, 2]/' \
  "$work/engine.toml" >"$work/two.toml"
run_engine "$work/two.toml" "$work/two.out"
check "two workers: exit status 0 (got $status)" '[[ $status -eq 0 ]]'
check "two workers: the PMD's refusal reported, software steering" \
  'grep -qE "steering: software \(rte_flow refused the UDP/IPv4 rule: .+\)" "$work/two.out"'
check "two workers: the exit report is conserved" \
  'grep "^total" "$work/two.out" | tail -1 | grep -q " conserved$"'
check "two workers: both report" '[[ $(grep -c "^lcore[12] " "$work/two.out") -eq 4 ]]'
check "two workers: no sanitizer report" \
  '! grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$work/two.out"'
# With the relay role on: the engine says so, runs, stops cleanly, and lists no allocation.
cp "$work/engine.toml" "$work/relay.toml"
printf '[relay]\nenabled = true\nrest_secrets = ["0123456789abcdef0123"]\n' >>"$work/relay.toml"
run_engine "$work/relay.toml" "$work/relay.out"
check "relay: exit status 0 (got $status)" '[[ $status -eq 0 ]]'
check "relay: says it is on, with its ports" \
  'grep -q "relay on: ports 49152-65535, 16384 per worker" "$work/relay.out"'
check "relay: lists its allocations" 'grep -q "^relay lcore1: 0 allocations" "$work/relay.out"'
check "relay: the exit report is conserved" \
  'grep "^total" "$work/relay.out" | tail -1 | grep -q " conserved$"'
check "relay: no sanitizer report" \
  '! grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$work/relay.out"'
exit $failed
