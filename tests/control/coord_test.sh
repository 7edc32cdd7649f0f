#!/usr/bin/env bash
# punchcoord from another language and against a real TURN server, on loopback:
#   1. two Python clients (tests/control/coord_client.py: a plain socket and NDJSON) join one
#      room and each learns the other's name and credentials;
#   2. the TURN REST credentials punchcoord issues allocate on coturn's turnserver
#      (--use-auth-secret with the same secret; turnutils_uclient), and the same username with
#      a password made from another secret is refused, so the check can fail;
#   3. SIGTERM: exit status 0 and the report.
#
#   coord_test.sh PUNCHCOORD
# No root needed. Exit 77 (skipped) when python3 or coturn's programs are missing.
set -euo pipefail

punchcoord=$1
here=$(cd "$(dirname "$0")" && pwd)
client=$here/coord_client.py
for program in python3 turnserver turnutils_uclient openssl; do
  command -v "$program" >/dev/null || { echo "SKIP: $program not installed"; exit 77; }
done

work=$(mktemp -d /tmp/punchcoord-test.XXXXXX)
coord_pid=
turn_pid=
# Our own processes, by PID; their exit status (143 after the TERM) is not the test's.
cleanup() {
  local pid
  for pid in $coord_pid $turn_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; cat "$f"; done; exit 1; }

# A free UDP port for turnserver, its relay range beside it.
turn_port=$((20000 + RANDOM % 20000))
secret=coord-test-$RANDOM$RANDOM
echo "$secret" >"$work/rest-secret"

"$punchcoord" --listen 127.0.0.1:0 --stun "127.0.0.1:$turn_port" --relay "127.0.0.1:$turn_port" \
  --rest-secret-file "$work/rest-secret" --rest-ttl 600 \
  >"$work/punchcoord.out" 2>"$work/punchcoord.log" &
coord_pid=$!
port=
for _ in $(seq 100); do
  port=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$work/punchcoord.log" | grep -o '[0-9]*$' || true)
  [[ -n $port ]] && break
  kill -0 "$coord_pid" 2>/dev/null || fail "punchcoord exited at start"
  sleep 0.1
done
[[ -n $port ]] || fail "punchcoord did not say where it listens"
echo "punchcoord on 127.0.0.1:$port"

# 1. Two Python clients.
python3 "$client" "127.0.0.1:$port" room-7 alice >"$work/alice.json" 2>"$work/alice.log" &
alice_pid=$!
python3 "$client" "127.0.0.1:$port" room-7 bob >"$work/bob.json" 2>"$work/bob.log" &
bob_pid=$!
wait "$alice_pid" || fail "alice's client failed"
wait "$bob_pid" || fail "bob's client failed"
python3 - "$work/alice.json" "$work/bob.json" <<'EOF' || fail "the peer events do not match"
import json, sys
alice, bob = (json.load(open(p)) for p in sys.argv[1:])
for me, other in ((alice, bob), (bob, alice)):
    assert me["peer"]["name"] == other["joined"]["name"], (me, other)
    assert me["peer"]["ufrag"] == other["joined"]["ufrag"], (me, other)
    assert me["peer"]["password"] == other["joined"]["password"], (me, other)
    assert me["peer"]["candidates"] == [{"type": "host", "address": "127.0.0.1:9"}], me
assert alice["joined"]["controlling"] != bob["joined"]["controlling"]
assert alice["hello"]["relay"] == alice["joined"]["turn"]["servers"]
print("python clients: each learned the other's name, ufrag and password")
EOF

# 2. The issued REST credentials against coturn.
username=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["joined"]["turn"]["username"])' "$work/alice.json")
password=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["joined"]["turn"]["password"])' "$work/alice.json")
[[ $username == *":room-7-alice" ]] || fail "unexpected TURN username $username"
# -n: flags only; --pidfile/--db in the work folder; loopback peers allowed (turnutils_uclient
# -y relays between two of its own clients on 127.0.0.1).
relay_base=$((40000 + RANDOM % 20000))
turnserver -n --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 --listening-port "$turn_port" \
  --use-auth-secret --static-auth-secret="$secret" --realm punchline \
  --no-tcp --no-tls --no-dtls --no-cli --allow-loopback-peers \
  --min-port "$relay_base" --max-port $((relay_base + 100)) \
  --log-file stdout --simple-log --pidfile "$work/turnserver.pid" --db "$work/turndb" \
  >"$work/turnserver.log" 2>&1 &
turn_pid=$!
for _ in $(seq 50); do
  grep -q "listener opened on : 127.0.0.1:$turn_port" "$work/turnserver.log" 2>/dev/null && break
  kill -0 "$turn_pid" 2>/dev/null || fail "turnserver exited at start"
  sleep 0.1
done
timeout 30 turnutils_uclient -y -c -n 2 -m 1 -u "$username" -w "$password" -p "$turn_port" \
  127.0.0.1 >"$work/uclient-ok.log" 2>&1 || fail "coturn refused punchcoord's TURN credentials"
grep -q "Total lost packets 0" "$work/uclient-ok.log" || fail "no relayed traffic with the credentials"
wrong=$(printf %s "$username" | openssl dgst -sha1 -hmac "another-secret" -binary | base64)
if timeout 30 turnutils_uclient -y -c -n 2 -m 1 -u "$username" -w "$wrong" -p "$turn_port" \
  127.0.0.1 >"$work/uclient-wrong.log" 2>&1; then
  fail "coturn accepted a password made with another secret: the check proves nothing"
fi
echo "coturn: allocated with punchcoord's REST credentials; refused another secret's"

# 3. SIGTERM: exit 0 and the report.
kill -TERM "$coord_pid"
status=0
wait "$coord_pid" || status=$?
coord_pid=
[[ $status == 0 ]] || fail "punchcoord exited $status on SIGTERM"
grep -q '^punchcoord: stopped after' "$work/punchcoord.out" || fail "no report on stdout"
grep -q '^rooms: joins 2, created 1, open 0' "$work/punchcoord.out" || fail "report: $(cat "$work/punchcoord.out")"
cat "$work/punchcoord.out"
echo "PASS"
