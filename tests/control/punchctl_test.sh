#!/usr/bin/env bash
# tests/control/punchctl_test.sh PUNCHLINED PUNCHCTL — punchctl against a running engine.
#
# The lab of the relay interop tests (tests/engine/interop/lab.sh): namespace "e" runs
# punchlined on net_af_packet over a veth pair, with the relay role and two long-term users;
# namespace "c" holds the TURN clients (socket_client.py, aioice's codec). The management
# socket lives in the run's work folder (lab_engine_config's [control] socket); punchctl runs
# in the root namespace (a Unix socket is a file, not an address). Checked:
#   - every command's happy path: status, stats (per core and total, --window), allocations
#     (filters user / client / core, paging with --limit and --after), allocations kill (by
#     id, client and user, each counted by the worker), help, --json, --watch;
#   - errors, each with its exit code: an unknown subcommand, bad arguments (punchctl's own
#     and the engine's, each with a "try:" line), no engine, a non-root caller refused by the
#     file's mode and, with the mode loosened, by the engine's credential check;
#   - on the raw socket: a malformed JSON line answered with an error and the connection
#     kept; many clients at once and one past the limit; a client that never reads its
#     replies dropped while punchctl and the workers carry on;
#   - a second engine on the same socket refuses to start; the socket file goes with the
#     engine.
# Needs root (namespaces, EAL, another uid); exit 77 (skipped) otherwise or without aioice.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/../engine/interop/lab.sh"

python=/usr/bin/python3
lab_init "${1:?usage: punchctl_test.sh PUNCHLINED PUNCHCTL}" "$python" setpriv timeout
punchctl=${2:?usage: punchctl_test.sh PUNCHLINED PUNCHCTL}
if ! "$python" -c 'import aioice' 2>/dev/null; then
  echo "SKIP: aioice is not importable by $python (apt-get install python3-aioice)"
  exit 77
fi

lab_public_link
config=$LAB_WORKDIR/engine.toml
lab_relay_config "$config"
cat >>"$config" <<'EOT'
users = [{ name = "alice", password = "pw-alice" }, { name = "bob", password = "pw-bob" }]
EOT
lab_engine_start e "$config"
sock=$LAB_WORKDIR/punchlined.sock
failures=0
out=$LAB_WORKDIR/out
err=$LAB_WORKDIR/err

# expect WHAT STATUS COMMAND...: runs punchctl with COMMAND's arguments, output in $out and
# $err, and counts a failure when its exit status is not STATUS.
expect() {
  local what=$1 want=$2 status=0
  shift 2
  timeout 20 "$punchctl" --socket "$sock" "$@" >"$out" 2>"$err" || status=$?
  echo "\$ punchctl $* (exit $status)"
  sed 's/^/  | /' "$out" "$err"
  if [[ $status -eq $want ]]; then
    echo "ok: $what: exit $want"
  else
    echo "FAIL: $what: exit $status, expected $want"
    failures=$((failures + 1))
  fi
}
# json EXPRESSION: evaluates a Python expression over the JSON object in $out (as `r`).
json() {
  local what=$1 expression=$2
  if "$python" -c "import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if ($expression) else 1)" "$out"; then
    echo "ok: $what"
  else
    echo "FAIL: $what ($expression)"
    failures=$((failures + 1))
  fi
}
client() {
  ip netns exec "$(lab_ns c)" timeout 30 "$python" "$here/socket_client.py" "$@"
}

echo "== the socket file"
mode=$(stat -c '%a %U %F' "$sock")
[[ $mode == "600 root socket" ]] && echo "ok: socket mode 0600, owned by root" ||
  { echo "FAIL: socket is '$mode'"; failures=$((failures + 1)); }

echo "== status"
expect "status" 0 status
check "status names the version" "$out" '^punchlined [0-9]+\.[0-9]+\.[0-9]+, pid [0-9]+, up '
check "status names the roles" "$out" '^roles: stun \(ports 3478, 3479\), relay \(realm punchline.test'
check "status shows the port and its link" "$out" '^net_af_packet0 +[0-9]+ +([0-9a-f]{2}:){5}[0-9a-f]{2} +up '
check "status shows the cores" "$out" '^cores: main lcore 0, worker lcores 1$'
expect "status --json" 0 --json status
json "status --json: version, workers, roles, port link" \
  'r["version"] and r["cores"]["workers"] == [1] and r["roles"] == ["stun", "relay"] and r["ports"][0]["device"] == "net_af_packet0" and r["ports"][0]["link"]["up"]'

echo "== allocations (three, from two users)"
alloc=$LAB_WORKDIR/alloc
for user in alice alice bob; do
  client allocate 203.0.113.2 "$user" "pw-$user" | tee -a "$alloc"
done
check "three allocations made" "$alloc" '^allocated'
[[ $(grep -c '^allocated' "$alloc") -eq 3 ]] || { echo "FAIL: not three allocations"; failures=$((failures + 1)); }
bob_port=$(awk '/^allocated/ { port = $2 } END { print port }' "$alloc")
expect "allocations" 0 allocations
check "allocations lists alice's" "$out" '^ *1 +[0-9]+ +alice +203\.0\.113\.10:[0-9]+ +203\.0\.113\.2:[0-9]+ '
check "allocations counts them" "$out" '^3 shown, 3 matched$'
expect "allocations --json --user alice" 0 --json allocations --user alice
json "--user alice: two, both alice's" 'r["matched"] == 2 and {a["user"] for a in r["allocations"]} == {"alice"}'
expect "allocations --user nobody" 0 --json allocations --user nobody
json "--user nobody: none" 'r["matched"] == 0 and r["allocations"] == []'
expect "allocations --client IP:PORT" 0 --json allocations --client "203.0.113.10:$bob_port"
json "--client 203.0.113.10:$bob_port: bob's" 'r["matched"] == 1 and r["allocations"][0]["user"] == "bob"'
expect "allocations --client IP" 0 --json allocations --client 203.0.113.10
json "--client 203.0.113.10: all three" 'r["matched"] == 3'
expect "allocations --core 1" 0 --json allocations --core 1
json "--core 1: all three" 'r["matched"] == 3 and all(a["lcore"] == 1 for a in r["allocations"])'
expect "allocations --limit 2" 0 allocations --limit 2
check "the first page says how to get the next" "$out" '^more: punchctl allocations --limit 2 --after 1:[0-9]+$'
after=$(sed -n 's/^more: .* --after \(1:[0-9]*\)$/\1/p' "$out")
expect "allocations --limit 2 --after" 0 --json allocations --limit 2 --after "$after"
json "the second page: the third allocation, no next" 'len(r["allocations"]) == 1 and r["next"] is None'

echo "== stats"
client binding 203.0.113.2
expect "stats" 0 stats --window 2
check "stats has a line per core and a total" "$out" '^lcore1 '
check "stats shows the relay table's occupancy" "$out" '^total .* 3/[0-9]+$'
expect "stats --json" 0 --json stats
json "stats --json: per core and total, rx counted, rates, three allocations" \
  'r["cores"][0]["lcore"] == 1 and r["total"]["rx"]["packets"] >= 7 and r["total"]["tx"]["packets"] >= 7 and "pps" in r["total"]["rx"] and r["total"]["allocations"]["count"] == 3 and r["window_s"] > 0'
expect "--watch 1 --count 2 stats" 0 --watch 1 --count 2 --json stats
[[ $(wc -l <"$out") -eq 2 ]] && echo "ok: --watch printed two rounds" ||
  { echo "FAIL: --watch printed $(wc -l <"$out") lines"; failures=$((failures + 1)); }

echo "== help"
expect "help" 0 help
for command in status stats allocations help; do
  check "help lists $command" "$out" "^punchctl $command +/$command "
done
check "help lists the SFU's listing" "$out" '^punchctl sfu sessions +/sfu/sessions '
check "help lists the SFU's kill" "$out" '^punchctl sfu kill +/sfu/kill '
expect "help allocations" 0 help allocations
check "help allocations describes --client" "$out" '^  --client 203\.0\.113\.10:50000 +string +only this client'

echo "== allocations kill"
# The three allocations of above: alice's two, bob's one. The workers delete them (the
# control thread sends orders on their command rings) and say how many went.
expect "allocations --json --user alice (their ids)" 0 --json allocations --user alice
alice_id=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["allocations"][0]["id"])' "$out")
json "the listing gives each an id LCORE:SLOT" 'all(a["id"] == str(a["lcore"]) + ":" + str(a["slot"]) for a in r["allocations"])'
expect "allocations kill --id" 0 allocations kill --id "$alice_id"
check "kill says how many went, per core" "$out" '^killed 1 allocation: lcore1 1$'
expect "the killed one is not listed" 0 --json allocations
json "two left, one of them alice's" 'r["matched"] == 2 and sorted(a["user"] for a in r["allocations"]) == ["alice", "bob"]'
expect "allocations kill --id (gone)" 1 allocations kill --id "$alice_id"
check "an id that names nothing is not_found, with what to type" "$err" "no allocation $alice_id \(it has gone, or never was\) \[not_found\]"
check "and the hint" "$err" '^  try: punchctl allocations$'
expect "allocations kill --client (bob's)" 0 --json allocations kill --client "203.0.113.10:$bob_port"
json "--client: bob's one" 'r["killed"] == 1 and r["cores"] == [{"lcore": 1, "killed": 1, "state": "done"}] and r["unfinished"] == []'
client allocate 203.0.113.2 alice pw-alice | tee -a "$alloc"
expect "allocations kill --user alice" 0 allocations kill --user alice
check "--user: both of alice's" "$out" '^killed 2 allocations: lcore1 2$'
expect "no allocation left" 0 --json allocations
json "none listed" 'r["matched"] == 0'
expect "allocations kill --user alice (none left)" 1 allocations kill --user alice
check "a user without allocations is not_found" "$err" 'user "alice" holds no allocation \(names are matched by their keyed hash, as punchctl allocations --user does\) \[not_found\]'
expect "allocations kill (nothing named)" 2 allocations kill
check "it says what to give" "$err" '/allocations/kill needs what to kill: "id" .* \[missing_argument\]'
check "and an example" "$err" '^  try: punchctl allocations kill --id 1:37$'
expect "allocations kill --id and --user" 2 allocations kill --id 1:0 --user bob
expect "allocations kill --client IP without a port" 2 allocations kill --client 203.0.113.10
check "a client needs its port" "$err" "expected a client's IP:port"
expect "allocations kill --user bob --core 5" 2 allocations kill --user bob --core 5
expect "allocations kill --limit 1 (the listing's option)" 2 allocations kill --limit 1 --user bob
check "says the option is the listing's" "$err" 'belongs to the listing, not to kill'
# The relay still allocates after the kills (the per-user counts kept in step).
client allocate 203.0.113.2 alice pw-alice | tee "$LAB_WORKDIR/again"
check "alice allocates again" "$LAB_WORKDIR/again" '^allocated'

echo "== errors"
expect "an unknown subcommand is a usage error" 2 frobnicate
check "it says what to type" "$err" 'Run with --help for more information'
expect "stats --window 0 (punchctl's range)" 2 stats --window 0
expect "allocations --core 5 (no such worker)" 2 allocations --core 5
check "the engine's error names the workers" "$err" "no worker runs on lcore 5; the workers' lcores: 1 \[bad_argument\]"
check "and what to type" "$err" '^  try: punchctl allocations --core 1$'
expect "allocations --client 203.0.113 (not an address)" 2 allocations --client 203.0.113
check "the error says what a client address looks like" "$err" 'expected an IP address or IP:port'
expect "allocations --after x (not a position)" 2 allocations --after x
expect "help nosuch (no such command)" 2 help nosuch
expect "--count without --watch" 2 --count 2 status
# The SFU's commands on an engine without the role (control/sfu_commands.h; the listing and
# the changes themselves: tests/control/sfu_commands_test.cc).
for sub in "sfu" "sfu kill --session a1" "sfu pause --session a1 --subscriber b --publisher c" \
    "sfu resume --session a1 --subscriber b --publisher c" \
    "sfu select --session a1 --subscriber b --ssrcs 1"; do
  # shellcheck disable=SC2086 # the words of $sub are punchctl's arguments
  expect "$sub (no sfu role)" 1 $sub
  check "$sub: not_available, naming the role" "$err" 'this engine runs no SFU \(no \[sfu\] token_secrets in its configuration\) \[not_available\]'
done
expect "sfu select without --ssrcs" 2 sfu select --session a1 --subscriber b
# punchctl node on an engine without [node] (the answers of a node: punchctl_node_test.py).
expect "node (no [node])" 1 node
check "node: not_available, naming the table" "$err" 'this engine is no SFU node: it has no \[node\] table \[not_available\]'
check "node: says what to add" "$err" '^  try: add \[node\] with coordinator = '
status=0
"$punchctl" --socket "$LAB_WORKDIR/nothing.sock" status 2>"$err" || status=$?
[[ $status -eq 3 ]] && echo "ok: no engine: exit 3" || { echo "FAIL: no engine: exit $status"; failures=$((failures + 1)); }
check "no engine: says what to check" "$err" 'is punchlined running\?'

echo "== a caller who is not root"
chmod 0755 "$LAB_WORKDIR"
status=0
setpriv --reuid=nobody --regid=nogroup --clear-groups "$punchctl" --socket "$sock" status 2>"$err" || status=$?
sed 's/^/  | /' "$err"
[[ $status -eq 4 ]] && echo "ok: the socket's mode refuses nobody: exit 4" || { echo "FAIL: nobody: exit $status"; failures=$((failures + 1)); }
check "nobody is told who may" "$err" 'Permission denied'
chmod 0666 "$sock"
status=0
setpriv --reuid=nobody --regid=nogroup --clear-groups "$punchctl" --socket "$sock" status 2>"$err" || status=$?
sed 's/^/  | /' "$err"
[[ $status -eq 4 ]] && echo "ok: with the mode loosened, the engine's credential check refuses nobody: exit 4" ||
  { echo "FAIL: nobody through a 0666 socket: exit $status"; failures=$((failures + 1)); }
check "the engine says why" "$err" 'uid 65534 may not use this socket: only root, the engine.s user \(uid 0\) .*\[permission_denied\]'
chmod 0600 "$sock"
chmod 0700 "$LAB_WORKDIR"

echo "== raw lines on the socket"
if "$python" "$here/socket_client.py" raw "$sock"; then :; else failures=$((failures + $?)); fi
if "$python" "$here/socket_client.py" many "$sock" 64; then :; else failures=$((failures + $?)); fi

echo "== a client that never reads"
"$python" "$here/socket_client.py" stall "$sock" >"$LAB_WORKDIR/stall" 2>&1 &
stall_pid=$!
# Meanwhile the control thread answers others, and the workers answer STUN.
expect "status while a client does not read" 0 status
client binding 203.0.113.2
stall_status=0
wait "$stall_pid" || stall_status=$?
sed 's/^/  | /' "$LAB_WORKDIR/stall"
[[ $stall_status -eq 0 ]] || failures=$((failures + 1))
expect "status after it" 0 --json status
json "the engine counted one client dropped for not reading" 'r["control"]["dropped_slow"] == 1 and r["control"]["refused_credentials"] == 1 and r["control"]["refused_too_many"] == 1'
client binding 203.0.113.2

echo "== a second engine on the same socket"
# lab_engine_config puts the socket beside the file: the first engine's.
second=$LAB_WORKDIR/second.toml
lab_engine_config "$second" net_null9 net_null9 verify 198.18.0.2 198.18.0.3
status=0
timeout 30 "$PUNCHLINED" --config "$second" >"$out" 2>&1 || status=$?
sed 's/^/  | /' "$out"
[[ $status -eq 1 ]] && echo "ok: the second engine exits 1" || { echo "FAIL: the second engine: exit $status"; failures=$((failures + 1)); }
check "it names the setting" "$out" "control.socket \"$sock\": another process listens on it"
expect "the first engine still answers" 0 status

lab_engine_stop_checked
check "the engine counted the four kills" "$LAB_ENGINE_LOG" '^relay lcore1: .* \| 4 killed by the operator$'
[[ ! -e $sock ]] && echo "ok: the socket file is gone with the engine" || { echo "FAIL: $sock left behind"; failures=$((failures + 1)); }
lab_verdict
