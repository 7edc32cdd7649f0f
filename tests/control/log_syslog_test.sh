#!/usr/bin/env bash
# tests/control/log_syslog_test.sh PUNCHLINED — [log] target = "syslog", end to end.
#
# syslog(3) writes to /dev/log, a path no test may take from the machine. So the engine runs in
# a mount namespace of its own (unshare --mount) whose /dev is a fresh tmpfs holding the
# devices it needs (null, zero, random, urandom, shm) bound from the real /dev, and, as
# /dev/log, a datagram socket of this test's (a small Python receiver that writes each message
# it gets to a file). The engine (net_null, no namespace network needed) runs twice:
#   1. level = "info": its start-up lines ("running" among them) arrive as syslog messages,
#      facility daemon, priority info, ident punchlined with its pid; nothing of the log is
#      written to stderr; the counters report still goes to stdout;
#   2. level = "warn", metrics.listen on an address this host does not have: the engine exits
#      1, and the error naming metrics.listen arrives at priority err, with no info line.
# Needs root (mount namespace, EAL); exit 77 (skipped) otherwise.
set -euo pipefail

engine=${1:?usage: log_syslog_test.sh PUNCHLINED}
if [[ $EUID -ne 0 ]]; then
  echo "SKIP: needs root (a mount namespace for /dev/log)"
  exit 77
fi
for command in unshare timeout /usr/bin/python3; do
  command -v "$command" >/dev/null || { echo "SKIP: $command is not installed"; exit 77; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/punchline-syslog.XXXXXX")
receiver=""
engine_pid=""
cleanup() {
  [[ -n $engine_pid ]] && kill -KILL "$engine_pid" 2>/dev/null || true
  [[ -n $receiver ]] && kill "$receiver" 2>/dev/null || true
  [[ -n $receiver ]] && wait "$receiver" 2>/dev/null || true
  rm -rf -- "$work"
}
trap cleanup EXIT
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
poll() {  # poll TENTHS COMMAND...: COMMAND every 0.1 s until it succeeds, at most TENTHS times
  local tries=$1 i
  shift
  for ((i = 0; i < tries; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

# The receiver: one line per datagram, as syslogd would get it ("<PRI>TIME IDENT[PID]: MSG").
/usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        out.write(s.recv(65536).decode(errors="replace").rstrip("\n") + "\n")
' "$work/log" "$work/syslog.txt" &
receiver=$!
poll 50 test -S "$work/log" || { echo "FAIL: the receiver did not bind $work/log"; exit 1; }

# run_engine CONFIG OUT ERR: the engine in its mount namespace, in the background (engine_pid).
run_engine() {
  unshare --mount --propagation private bash -c '
    set -e
    work=$1; shift
    mkdir -p "$work/real-dev"
    mount --bind /dev "$work/real-dev"
    mount -t tmpfs -o mode=0755,size=1m punchline-dev /dev
    for node in null zero random urandom; do
      touch "/dev/$node"
      mount --bind "$work/real-dev/$node" "/dev/$node"
    done
    mkdir /dev/shm
    touch /dev/log
    mount --bind "$work/log" /dev/log
    exec "$@"
  ' run "$work" "$engine" --config "$1" >"$2" 2>"$3" &
  engine_pid=$!
}

write_config() {  # write_config FILE LEVEL [EXTRA]
  cat >"$1" <<EOF
[control]
socket = "$work/punchlined.sock"
[eal]
args = ["-l", "0-1", "--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry",
        "--log-level=lib.eal:error", "--vdev=net_null0"]
[engine]
workers = [1]
mbufs = 4095
[[port]]
device = "net_null0"
ipv4 = ["198.18.0.2"]
[log]
level = "$2"
target = "syslog"
${3:-}
EOF
}

echo "== level info: the start-up lines go to syslog"
write_config "$work/info.toml" info
run_engine "$work/info.toml" "$work/info.out" "$work/info.err"
if poll 100 grep -q 'punchlined\[[0-9]*\]: running, 1 worker(s)' "$work/syslog.txt"; then
  echo "ok: \"running\" arrived as a syslog message"
else
  fail "no \"running\" message within 10 s"
fi
kill -INT "$engine_pid"
status=0
timeout 20 tail --pid="$engine_pid" -f /dev/null || true
wait "$engine_pid" || status=$?
engine_pid=""
echo "syslog:"
sed 's/^/  | /' "$work/syslog.txt"
echo "stderr:"
sed 's/^/  | /' "$work/info.err"
[[ $status -eq 0 ]] && echo "ok: exit 0" || fail "exit $status"
# <30>: facility daemon (3) * 8 + priority info (6).
if grep -Eq '^<30>.* punchlined\[[0-9]+\]: management socket .* \(mode 0600\)$' "$work/syslog.txt"
then
  echo "ok: info at <30> (daemon.info), ident punchlined[pid]"
else
  fail "no <30> line naming the management socket"
fi
grep -q '^<30>.* punchlined\[[0-9]*\]: port net_null0 steering: software' "$work/syslog.txt" &&
  echo "ok: the steering line too" || fail "no steering line"
if grep -q 'punchlined' "$work/info.err"; then
  fail "log lines on stderr with target = \"syslog\""
else
  echo "ok: nothing of the log on stderr"
fi
grep -Eq '^total .*\| conserved$' "$work/info.out" &&
  echo "ok: the counters report on stdout" || fail "no counters report on stdout"

echo "== level warn: an error arrives, info lines do not"
: >"$work/syslog.txt"
write_config "$work/warn.toml" warn $'[metrics]\nlisten = "198.51.100.77:9641"'
run_engine "$work/warn.toml" "$work/warn.out" "$work/warn.err"
status=0
timeout 30 tail --pid="$engine_pid" -f /dev/null || true
wait "$engine_pid" || status=$?
engine_pid=""
poll 20 grep -q 'metrics.listen' "$work/syslog.txt" || true
echo "syslog:"
sed 's/^/  | /' "$work/syslog.txt"
[[ $status -eq 1 ]] && echo "ok: exit 1" || fail "exit $status, expected 1"
# <27>: daemon (3) * 8 + err (3).
expected='^<27>.* punchlined\[[0-9]+\]: '
expected+='metrics\.listen "198\.51\.100\.77:9641": bind\(\) \(no interface of this host'
if grep -Eq "$expected" "$work/syslog.txt"; then
  echo "ok: the error at <27> (daemon.err), naming metrics.listen"
else
  fail "no <27> line naming metrics.listen"
fi
if grep -q '^<30>' "$work/syslog.txt"; then
  fail "info lines at level warn"
else
  echo "ok: no info line at level warn"
fi

if [[ $failures -ne 0 ]]; then
  echo "FAIL: $failures check(s)"
  exit 1
fi
echo "PASS"
