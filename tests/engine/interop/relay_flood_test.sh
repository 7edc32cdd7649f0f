#!/usr/bin/env bash
# tests/engine/interop/relay_flood_test.sh PUNCHLINED — an allocation flood from many source
# addresses does not disturb an established relayed flow, and is refused with counters.
#
# The lab of relay_uclient_af_packet_test.sh: namespace "e" holds the engine's end of a veth
# pair (203.0.113.2/.3, no kernel address); "c" holds the client (203.0.113.10/24), the peer
# behind it (198.51.100.7, the engine's gateway is 203.0.113.10) and, for the flood, $sources
# more addresses, 203.0.113.100 and up.
#
#   1. The established flow: coturn's turnutils_uclient (user alice, ChannelData) relays
#      $messages messages, one per 20 ms, to turnutils_peer, which echoes them back through the
#      relay. Once its channel is bound, a live report (SIGUSR1) records the counters.
#   2. While it runs, relay_flood.py (aioice's STUN codec) floods from every source address,
#      bounded in count ($flood_requests_max at most) and time ($flood_deadline_s):
#        quota: $quota_attempts Allocates signed by user mallory, each from its own 5-tuple:
#               $per_user allocated, the rest 486 (user_quota_reached);
#        table: $rest_users TURN REST users, $per_user Allocates each: allocations until the
#               table holds $max_allocations, then 508 (table_full);
#        unauthenticated: $per_source Allocates without credentials from every source, over
#               two ports each: 401 while the source's token bucket lasts, then dropped
#               unanswered (rate_limited).
#   3. Checks: the flow lost nothing and got every message back; the flooder's refusals are
#      the ones the limits predict; the engine's counters since the live report (the flood's
#      share) equal what the flooder saw: allocated, 486, 508; 401 (auth missing_integrity)
#      at least the 401s it got, rate_limited at most the requests it got no answer to (the
#      kernel may lose a few on a loaded machine); the table was full; the counters are
#      conserved.
#
# The limits, small enough to be reached by a bounded flood and large enough for the flow:
#   max_allocations = 64: the flow's 2 (uclient's client is a pair of sessions), mallory's 4
#     and 58 REST allocations fill it; the REST users ask for 80, so 22 get 508.
#   max_allocations_per_user = 4: mallory asks for 12 (8 get 486); each REST user asks for 4,
#     exactly its quota, so that stage 2's refusals are all table_full.
#   unauthenticated_requests_per_s = 2, unauthenticated_burst = 10 per source IP: a real
#     client spends one token per allocation (its first 401) and is never limited; a source
#     sending 24 in the 2 s that stage takes here gets about 11 answers (the burst and the
#     refill, less the tokens the nonces of stages 1-2 took) and the rest are dropped; at
#     half that speed, on a loaded machine, still some are. Sources whose hashes share a
#     bucket (4096 buckets) get fewer; the counts are compared with the flooder's, not
#     predicted.
# Rate: at most $flood_rate requests per second in all (Python makes about 2000 here; the
# point is the refusals, not the packet rate).
# Exit 77 (skipped) when not root, or when coturn or aioice is not installed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/lab.sh"

python=/usr/bin/python3
lab_init "${1:?usage: relay_flood_test.sh PATH_TO_PUNCHLINED}" \
  turnutils_uclient turnutils_peer timeout "$python"
if ! "$python" -c 'import aioice' 2>/dev/null; then
  echo "SKIP: aioice is not importable by $python (apt-get install python3-aioice)"
  exit 77
fi

max_allocations=64
per_user=4
rate_per_s=2
burst=10
sources=150
first_source=203.0.113.100
quota_attempts=12
rest_users=20
per_source=24
flood_rate=4000
flood_deadline_s=6
messages=400
flood_requests_max=$((2 * (quota_attempts + rest_users * per_user) + sources * per_source))

lab_public_link
# The peer, behind the client (the engine's gateway).
lab_exec c ip addr add 198.51.100.7/32 dev cli0
# The flood's sources: /32s, so that the kernel keeps 203.0.113.10 as the subnet's source
# address for the client (and the ARP requests).
"$python" -c 'import ipaddress, sys
first = ipaddress.IPv4Address(sys.argv[1])
for i in range(int(sys.argv[2])):
    print(f"addr add {first + i}/32 dev cli0")' "$first_source" "$sources" \
  >"$LAB_WORKDIR/addresses.batch"
ip -n "$(lab_ns c)" -batch "$LAB_WORKDIR/addresses.batch"

config=$LAB_WORKDIR/engine.toml
lab_relay_config "$config"
secret=punchline-rest-secret-for-the-flood
cat >>"$config" <<EOF
users = [{ name = "alice", password = "relay-password" },
         { name = "mallory", password = "flood-password" }]
rest_secrets = ["$secret"]
max_allocations = $max_allocations
max_allocations_per_user = $per_user
unauthenticated_requests_per_s = $rate_per_s
unauthenticated_burst = $burst
EOF
lab_engine_start e "$config"

ip netns exec "$(lab_ns c)" turnutils_peer -L 198.51.100.7 -p 3480 >"$LAB_WORKDIR/peer.log" 2>&1 &
# Ended with the namespace by lab_cleanup; disowned, so that bash does not report its death.
disown

failures=0
uclient_log=$LAB_WORKDIR/uclient.txt
: >"$uclient_log"  # for the poll below, before uclient's shell has opened it
# $messages messages of 180 bytes at uclient's 20 ms (8 s): the flow outlasts the flood.
ip netns exec "$(lab_ns c)" timeout 30 turnutils_uclient -v -X -c -u alice -w relay-password \
  -L 203.0.113.10 -e 198.51.100.7 -r 3480 -n "$messages" -l 180 -m 1 203.0.113.2 \
  >"$uclient_log" 2>&1 &
uclient_pid=$!
lab_poll 50 grep -Eq 'success: 0x[0-9a-f]{4}$' "$uclient_log" ||
  { cat "$uclient_log"; lab_fail "turnutils_uclient bound no channel within 5 s"; }
before=$LAB_WORKDIR/report-before.txt
lab_engine_report "$before" || lab_fail "no live report from punchlined"
echo "before the flood (live report):"
grep -E '^relay lcore|^  turn ' "$before" | sed 's/^/  | /'

flood_log=$LAB_WORKDIR/flood.txt
flood_status=0
lab_exec_wait c timeout 20 "$python" "$here/relay_flood.py" 203.0.113.2 3478 punchline.test \
  "$first_source" "$sources" mallory flood-password "$quota_attempts" "$secret" "$rest_users" \
  "$per_user" "$per_source" "$flood_rate" "$flood_deadline_s" >"$flood_log" 2>&1 ||
  flood_status=$?
echo "relay_flood.py exit $flood_status:"
sed 's/^/  | /' "$flood_log"
[[ $flood_status -eq 0 ]] || { echo "FAIL: relay_flood.py"; failures=$((failures + 1)); }

if kill -0 "$uclient_pid" 2>/dev/null; then
  echo "ok: the flow outlasted the flood"
else
  echo "FAIL: the flow ended before the flood did: it did not run through all of it"
  failures=$((failures + 1))
fi
uclient_status=0
wait "$uclient_pid" || uclient_status=$?
echo "turnutils_uclient exit $uclient_status:"
grep -E 'success: 0x|tot_(send|recv)_msgs=|lost packets|Average' "$uclient_log" | tail -n 6 |
  sed 's/^/  | /'
check "the flow: all $messages messages went through the relay and came back" "$uclient_log" \
  "tot_send_msgs=$messages, tot_recv_msgs=$messages\$"
check "the flow: none lost" "$uclient_log" 'Total lost packets 0 \('

if ! lab_engine_stop; then
  echo "FAIL: punchlined's counters"
  failures=$((failures + 1))
fi
# The exit report: the log from its "total" line on (the live report came before it).
after=$LAB_WORKDIR/report-after.txt
awk '/^total / { report = "" } { report = report $0 "\n" } END { printf "%s", report }' \
  "$LAB_ENGINE_LOG" >"$after"

# flood STAGE KEY: a number from the flooder's "flood: STAGE key=value ..." line, 0 if absent.
flood() {
  sed -n "s/^flood: $1 \(.* \)\{0,1\}$2=\([0-9]*\).*/\2/p" "$flood_log" | head -n 1 | grep . ||
    echo 0
}
# turn FILE NAME: the count of a "  turn NAME COUNT" line ("auth VERDICT" for a verdict), 0
# if the report has none.
turn() {
  awk -v name="$2" 'index($0, "  turn " name " ") == 1 {
      sub("^  turn " name " +", ""); split($0, f, " "); print f[1]; found = 1; exit }
    END { if (!found) print 0 }' "$1"
}
# delta NAME: the flood's share of a counter, exit report less the live report.
delta() {
  echo $(($(turn "$after" "$1") - $(turn "$before" "$1")))
}
# expect WHAT ACTUAL OP EXPECTED: a comparison (OP is test's -eq, -gt, -ge, -le), counted in
# $failures.
expect() {
  local what=$1 actual=$2 op=$3 expected=$4 symbol
  case $op in -eq) symbol="=" ;; -gt) symbol=">" ;; -ge) symbol=">=" ;; -le) symbol="<=" ;; esac
  if test "$actual" "$op" "$expected"; then
    echo "ok: $what: $actual $symbol $expected"
  else
    echo "FAIL: $what: $actual, expected $symbol $expected"
    failures=$((failures + 1))
  fi
}

echo "the flood's share of the engine's counters (exit report less live report):"
for name in allocated user_quota_reached table_full rate_limited "auth missing_integrity"; do
  printf '  | turn %-24s %s\n' "$name" "$(delta "$name")"
done

sent=$(flood total sent)
expect "the flood stayed bounded (requests sent)" "$sent" -le "$flood_requests_max"
expect "the flood sent requests" "$sent" -gt 0
expect "every socket the flooder opened was closed" "$(flood total sockets_closed)" -eq \
  "$(flood total sockets_opened)"
expect "no answer the flooder did not ask for" "$(flood total unexpected)" -eq 0

# What the limits predict the flooder saw.
expect "mallory: allocations up to the per-user quota" "$(flood quota allocated)" -eq "$per_user"
expect "mallory: the rest refused 486" "$(flood quota 486)" -eq $((quota_attempts - per_user))
# uclient holds two allocations (its -m 1 client is a pair of sessions), listed in the live
# report; whatever the count, the REST users get the room left after it and mallory's.
allocations() {
  sed -n 's/^relay lcore1: \([0-9]*\) allocations .*/\1/p' "$1"
}
flow_allocations=$(allocations "$before")
table_room=$((max_allocations - flow_allocations - per_user))
expect "REST users: allocations until the table is full" "$(flood table allocated)" -eq \
  "$table_room"
expect "REST users: the rest refused 508" "$(flood table 508)" -eq \
  $((rest_users * per_user - table_room))
expect "unauthenticated: some answered 401" "$(flood unauthenticated 401)" -gt 0
expect "unauthenticated: some dropped unanswered" "$(flood unauthenticated unanswered)" -gt 0

# The engine's counters agree with what the flooder saw.
flood_allocated=$(($(flood quota allocated) + $(flood table allocated)))
expect "engine: allocated = the flood's allocations" "$(delta allocated)" -eq "$flood_allocated"
expect "engine: user_quota_reached > 0" "$(delta user_quota_reached)" -gt 0
expect "engine: user_quota_reached = the flood's 486 answers" "$(delta user_quota_reached)" -eq \
  "$(flood quota 486)"
expect "engine: table_full > 0" "$(delta table_full)" -gt 0
expect "engine: table_full = the flood's 508 answers" "$(delta table_full)" -eq \
  "$(flood table 508)"
flood_401=$(($(flood quota-nonce 401) + $(flood table-nonce 401) + $(flood unauthenticated 401)))
# At least as many as the flooder got (an answer the kernel lost on the way back was still
# counted), and no more rate-limited than went unanswered (a request the kernel lost never
# reached the engine): equal when the lab lost nothing, as it does on an idle machine.
expect "engine: auth missing_integrity >= the flood's 401 answers" \
  "$(delta "auth missing_integrity")" -ge "$flood_401"
flood_unanswered=$(($(flood quota-nonce unanswered) + $(flood table-nonce unanswered) +
  $(flood unauthenticated unanswered)))
expect "engine: rate_limited > 0" "$(delta rate_limited)" -gt 0
expect "engine: rate_limited <= the flood's unanswered unsigned requests" \
  "$(delta rate_limited)" -le "$flood_unanswered"
expect "engine: the table was full (the flow's allocations and the flood's)" \
  $((flow_allocations + $(delta allocated))) -eq "$max_allocations"
# Allocations live 600 s at least: none expired during the test, so the exit report's table
# holds what was allocated and not deleted (uclient deletes one of its own at exit).
expect "engine: allocations at exit = allocated - deleted" "$(allocations "$after")" -eq \
  $(($(turn "$after" allocated) - $(turn "$after" deleted)))
# The flow's datagrams, both ways, are in the relayed counts.
to_peers=$(sed -n 's/^relay lcore1: .* relayed \([0-9]*\) to peers.*/\1/p' "$after")
to_clients=$(sed -n 's/^relay lcore1: .* peers, \([0-9]*\) to clients.*/\1/p' "$after")
expect "engine: relayed to the peer, at least the flow's messages" "$to_peers" -ge "$messages"
expect "engine: relayed to the client, at least the flow's messages" "$to_clients" -ge "$messages"

lab_verdict
