#!/usr/bin/env bash
# tests/nat/turn_client_interop_test.sh PUNCHLINED TURN_CLIENT_TOOL — libpunch's TurnClient
# (through tests/nat/turn_client_tool) against two TURN servers, with coturn's turnutils_peer
# as the peer that echoes every datagram back through the relay.
#
#   namespace e   punchlined's relay role on net_af_packet over eng0: 203.0.113.2:3478
#                 (tests/engine/interop/lab.sh, lab_public_link and lab_relay_config), REST
#                 secret $secret, realm punchline.test
#   namespace c   the client: cli0 203.0.113.10/24 toward the engine, cli1 198.51.100.10/24
#                 toward coturn; the peer, turnutils_peer on 198.51.100.7:3480 (on cli0: the
#                 engine's gateway is the client, as in relay_uclient_af_packet_test.sh)
#   namespace t   coturn's turnserver on tsrv0 198.51.100.20:3478, REST credentials with the
#                 same secret (--use-auth-secret --static-auth-secret), UDP only
#
# Against each server:
#   - a TURN REST credential computed from the secret allocates (401, then the signed
#     Allocate), the peer is added (CreatePermission, ChannelBind), 300 datagrams at 200 a
#     second go out as ChannelData and all come back, none lost, duplicated or corrupted; then
#     the allocation is released (Refresh LIFETIME 0 answered);
#   - the same with Send and Data indications (no ChannelBind);
#   - a wrong password: the allocation fails with 401;
#   - a denied peer (127.0.0.1: loopback, refused by both servers' default policy): 403.
# Exit 77 (skipped) when not root or when coturn is not installed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/../engine/interop/lab.sh"

tool=${2:?usage: turn_client_interop_test.sh PATH_TO_PUNCHLINED PATH_TO_TURN_CLIENT_TOOL}
lab_init "${1:?usage: turn_client_interop_test.sh PATH_TO_PUNCHLINED PATH_TO_TURN_CLIENT_TOOL}" \
  turnserver turnutils_peer timeout ss
[[ -x $tool ]] || lab_fail "$tool is not an executable (ninja -C build tests/nat/turn_client_tool)"

secret=punchline-rest-secret-for-the-lab
failures=0

expect_status() {
  local what=$1 want=$2 got=$3
  if [[ $got -eq $want ]]; then
    echo "ok: $what exits $got"
  else
    echo "FAIL: $what exits $got, expected $want"
    failures=$((failures + 1))
  fi
}

# run NAME WANT_STATUS ARG...: the tool in namespace c, its output in $LAB_WORKDIR/NAME.txt.
run() {
  local name=$1 want=$2 status=0
  shift 2
  local output=$LAB_WORKDIR/$name.txt
  lab_exec_wait c timeout 60 "$tool" "$@" >"$output" 2>&1 || status=$?
  echo "\$ turn_client_tool $*"
  sed 's/^/  | /' "$output"
  expect_status "$name" "$want" "$status"
}

# echo_runs SERVER LABEL MAPPED KEY: ChannelData and Send indications through SERVER, every
# echo back; MAPPED is the client's address as SERVER sees it, KEY the long-term key's hash.
echo_runs() {
  local server=$1 label=$2 mapped=$3 key=$4 mode
  for mode in channels indications; do
    local flags=()
    [[ $mode == indications ]] && flags=(--send-indications)
    run "$label-$mode" 0 --server "$server" --rest-secret "$secret" --rest-user "$label" \
      --peer 198.51.100.7:3480 --count 300 --rate 200 --size 160 "${flags[@]}"
    local output=$LAB_WORKDIR/$label-$mode.txt
    check "$label $mode: allocated through the 401, $key key" "$output" \
      "^allocate: success relayed [0-9.]+:[0-9]+ mapped ${mapped//./\\.}:[0-9]+ .* key $key\$"
    if [[ $mode == channels ]]; then
      check "$label $mode: channel bound" "$output" \
        '^peer 198\.51\.100\.7:3480: ready channel 0x4000$'
      check "$label $mode: every echo back" "$output" \
        '^echo: sent 300 received 300 lost 0 duplicated 0 corrupted 0 via channel_data$'
    else
      check "$label $mode: permission, no channel" "$output" \
        '^peer 198\.51\.100\.7:3480: ready channel 0x0000$'
      check "$label $mode: every echo back" "$output" \
        '^echo: sent 300 received 300 lost 0 duplicated 0 corrupted 0 via send_indications$'
    fi
    check "$label $mode: released" "$output" '^release: ok$'
    check "$label $mode: nothing dropped" "$output" '^drops: none$'
  done
}

# refusal_runs SERVER LABEL: a wrong password gets 401, a loopback peer 403.
refusal_runs() {
  local server=$1 label=$2 expiry
  expiry=$(($(date +%s) + 3600))
  run "$label-wrong-password" 1 --server "$server" --username "$expiry:$label" \
    --password wrong-password --peer 198.51.100.7:3480 --count 1
  check "$label: wrong password reported as 401" "$LAB_WORKDIR/$label-wrong-password.txt" \
    '^allocate: error_response 401 '
  run "$label-denied-peer" 1 --server "$server" --rest-secret "$secret" --rest-user "$label" \
    --peer 127.0.0.1:3480 --count 1
  check "$label: denied peer reported as 403" "$LAB_WORKDIR/$label-denied-peer.txt" \
    '^peer 127\.0\.0\.1:3480: CreatePermission 127\.0\.0\.1:3480: 403 '
  check "$label: released after the refusal" "$LAB_WORKDIR/$label-denied-peer.txt" '^release: ok$'
}

lab_public_link
# The peer, behind the client (the engine's gateway); coturn's link beside it.
lab_exec c ip addr add 198.51.100.7/32 dev cli0
lab_ns_add t
lab_veth c cli1 t tsrv0
lab_exec c ip addr add 198.51.100.10/24 dev cli1
lab_exec c ip link set cli1 up
lab_exec t ip addr add 198.51.100.20/24 dev tsrv0
lab_exec t ip link set tsrv0 up
lab_wait_carrier c cli1

config=$LAB_WORKDIR/engine.toml
lab_relay_config "$config"
printf 'rest_secrets = ["%s"]\n' "$secret" >>"$config"
lab_engine_start e "$config"

# Ended with the namespace by lab_cleanup (every process left in it is killed).
ip netns exec "$(lab_ns c)" turnutils_peer -L 198.51.100.7 -p 3480 >"$LAB_WORKDIR/peer.log" 2>&1 &
peer_pid=$!
peer_listening() {
  ip netns exec "$(lab_ns c)" ss -Huln 'sport = :3480' | grep -q .
}
lab_poll 50 peer_listening || lab_fail "turnutils_peer is not listening on 198.51.100.7:3480"

echo "== punchlined's relay role"
# punchlined offers PASSWORD-ALGORITHMS SHA-256, MD5 (RFC 8489 §9.2.5): the first is taken.
echo_runs 203.0.113.2:3478 punchlined 203.0.113.10 sha256
refusal_runs 203.0.113.2:3478 punchlined
if ! lab_engine_stop; then
  echo "FAIL: punchlined's counters"
  failures=$((failures + 1))
fi
# 300 datagrams each way per echo run, twice.
tx=$(lab_engine_counter tx)
if [[ ${tx:-0} -ge 1200 ]]; then
  echo "ok: the engine sent $tx packets"
else
  echo "FAIL: the engine sent ${tx:-no} packets, fewer than the 1200 relayed"
  failures=$((failures + 1))
fi

echo "== coturn's turnserver"
# -n: these flags only. UDP on one address, no TLS/DTLS/TCP/CLI; REST credentials with the
# lab's secret; state and pid file in the work folder. Loopback peers stay denied (coturn's
# default), which the 403 check relies on.
ip netns exec "$(lab_ns t)" turnserver -n --listening-ip 198.51.100.20 --relay-ip 198.51.100.20 \
  --listening-port 3478 --min-port 49152 --max-port 49407 --realm punchline.test \
  --use-auth-secret --static-auth-secret "$secret" --fingerprint \
  --no-tcp --no-tls --no-dtls --no-cli --no-tcp-relay \
  --log-file stdout --simple-log --pidfile "$LAB_WORKDIR/turnserver.pid" \
  --db "$LAB_WORKDIR/turndb" >"$LAB_WORKDIR/turnserver.log" 2>&1 &
turnserver_pid=$!
turnserver_listening() {
  ip netns exec "$(lab_ns t)" ss -Huln 'sport = :3478' | grep -q .
}
if ! lab_poll 50 turnserver_listening; then
  sed 's/^/  | /' "$LAB_WORKDIR/turnserver.log"
  lab_fail "turnserver is not listening on 198.51.100.20:3478"
fi
# coturn offers no PASSWORD-ALGORITHMS: MD5, as RFC 5389 has it.
echo_runs 198.51.100.20:3478 coturn 198.51.100.10 md5
refusal_runs 198.51.100.20:3478 coturn

# Stopped by PID (`ip netns exec` execs them: $! is theirs); the cleanup would only KILL them.
for pid in "$turnserver_pid" "$peer_pid"; do
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
lab_verdict
