# shellcheck shell=bash
# tests/interop/turnserver.sh — sourced, not run: starts and stops coturn's turnserver as a
# STUN-only server on loopback, for tests/interop/flood_coturn_test.sh and
# bench/stun_flood_coturn.sh.
#
#   turnserver_start WORKDIR FLOOD [EXTRA_FLAG...]
#       Starts turnserver on 127.0.0.1 at a random free high UDP port and waits until it answers
#       a Binding request from FLOOD (the stun_flood binary). Sets TURNSERVER_PID,
#       TURNSERVER_PORT and TURNSERVER_LOG. Returns 0 when it answers, 1 after 5 attempts.
#   turnserver_stop
#       Kills it by PID (TERM, then KILL after 5 s). Safe to call twice; call it from a trap.
#
# turnserver keeps retrying a port someone else holds instead of exiting, and a probe answered
# by that someone else would look like success; so a port counts as ours only when
# /proc/net/udp lists it and the socket's inode is among turnserver's own file descriptors.

# shellcheck disable=SC2034  # read by the scripts that source this file
TURNSERVER_PID=
TURNSERVER_PORT=
TURNSERVER_LOG=

# True when UDP port $2 is bound by a socket that process $1 holds.
turnserver_owns_udp_port() {
  local pid=$1 hexport inodes fd link inode
  hexport=$(printf '%04X' "$2")
  inodes=$(awk -v p=":$hexport" 'NR > 1 && substr($2, length($2) - 4) == p { print $10 }' \
    /proc/net/udp /proc/net/udp6 2>/dev/null)
  [[ -n $inodes ]] || return 1
  for fd in /proc/"$pid"/fd/*; do
    link=$(readlink "$fd" 2>/dev/null) || continue
    for inode in $inodes; do
      [[ $link == "socket:[$inode]" ]] && return 0
    done
  done
  return 1
}

turnserver_udp_port_in_use() {
  local hexport
  hexport=$(printf '%04X' "$1")
  awk -v p=":$hexport" 'NR > 1 && substr($2, length($2) - 4) == p { found = 1 }
    END { exit !found }' /proc/net/udp /proc/net/udp6 2>/dev/null
}

turnserver_start() {
  local workdir=$1 flood=$2 attempt port
  shift 2
  for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    turnserver_udp_port_in_use "$port" && continue
    TURNSERVER_LOG=$workdir/turnserver-$attempt.log
    # -n: no configuration file, only these flags. --stun-only: Binding only, TURN requests
    # ignored. --no-tcp/--no-tls/--no-dtls/--no-cli: one UDP listener and nothing else.
    # --pidfile/--db: keep its state in WORKDIR, not /var/run and /var/lib/turn.
    turnserver -n --stun-only \
      --listening-ip 127.0.0.1 --listening-port "$port" \
      --no-tcp --no-tls --no-dtls --no-cli \
      --log-file stdout --simple-log \
      --pidfile "$workdir/turnserver.pid" --db "$workdir/turndb" \
      "$@" >"$TURNSERVER_LOG" 2>&1 &
    TURNSERVER_PID=$!
    # shellcheck disable=SC2034  # read by the caller
    TURNSERVER_PORT=$port
    # Up to 50 probes of at most 0.2 s each: a healthy turnserver answers within the first few.
    for _ in $(seq 50); do
      if ! kill -0 "$TURNSERVER_PID" 2>/dev/null; then
        break
      fi
      if grep -q 'Cannot bind' "$TURNSERVER_LOG"; then
        break
      fi
      if turnserver_owns_udp_port "$TURNSERVER_PID" "$port" &&
        "$flood" --server "127.0.0.1:$port" --count 1 --sources 1 --timeout 0.2 \
          --duration 1 >/dev/null 2>&1; then
        return 0
      fi
      sleep 0.05
    done
    echo "turnserver: no answer on 127.0.0.1:$port (attempt $attempt); log tail:" >&2
    tail -n 5 "$TURNSERVER_LOG" >&2
    turnserver_stop
  done
  return 1
}

turnserver_stop() {
  local pid=$TURNSERVER_PID
  TURNSERVER_PID=
  [[ -n $pid ]] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
