#!/usr/bin/env bash
# tests/natlab/ladder_test.sh PUNCHLINED PUNCH PUNCHCOORD [--matrix-out FILE] — the ladder
# end to end in the NAT lab (issue 6):
#
# 1. The 5×5 matrix: a client behind each NAT type calls a client behind each NAT type
#    (`punch call`, both sides through punchcoord on the coordinator's host). The call goes P2P
#    wherever punching can work (22 cells) and falls back to the relay (punchlined's TURN role)
#    in symmetric↔symmetric and symmetric↔port-restricted (3 cells); in every cell media
#    flows both ways at a moderate rate with zero loss (each side's bye gives the other's exact
#    count), and the time to connect is recorded. Five rounds of five calls at once (a Latin
#    square: no client is in two calls at a time); each call is a fresh socket, so fresh NAT
#    mappings.
# 2. --force relay on one side takes both to the relay where P2P works; --force p2p fails where
#    it does not, without the relay.
# 3. punch bridge carries a local UDP port to the peer's (datagrams numbered, checked intact).
# 4. A path cut mid-call: a full cone and a no-NAT client are in a P2P call; the path between
#    them is cut in the full cone's NAT (natlab_cut_path); both sides notice within the
#    liveness bound, move to the relay and media resumes, the call never ending.
#
# With --matrix-out FILE the matrix is also written there as a markdown table (scripts/ladder
# uses it for docs/ladder.md). Exit 77 (skipped) when not root or a tool is missing. About 80 s.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/natlab/natlab.sh
source "$here/natlab.sh"

usage="usage: ladder_test.sh PUNCHLINED PUNCH PUNCHCOORD [--matrix-out FILE]"
punchlined=${1:?$usage}
punch=${2:?$usage}
punchcoord=${3:?$usage}
matrix_out=
if [[ ${4:-} == --matrix-out ]]; then matrix_out=${5:?$usage}; fi

natlab_init "$punchlined" jq "$punch" "$punchcoord"
natlab_up

types=(none full-cone address-restricted port-restricted symmetric)
short=(none full addr port sym)
for i in "${!types[@]}"; do
  natlab_add_client "a${short[$i]}" "${types[$i]}"
  natlab_add_client "b${short[$i]}" "${types[$i]}"
done
natlab_add_client cutfull full-cone
natlab_add_client cutnone none

failures=0
natlab_coord_start "$punchcoord"

# expect_rung TYPE TYPE: natlab.md's matrix.
expect_rung() {
  case "$1/$2" in
    symmetric/symmetric | symmetric/port-restricted | port-restricted/symmetric) echo relay ;;
    *) echo p2p ;;
  esac
}

call_start() { natlab_call_start "$1" "$2" "$punch" "${@:3}"; }
field() { natlab_call_field "$@"; }

# judge ROOM A B WANT: both sides connected on rung WANT, media both ways, nothing lost.
judge() {
  local room=$1 a=$2 b=$3 want=$4 side other rung sent got ok=1
  for side in "$a" "$b"; do
    other=$b
    [[ $side == "$b" ]] && other=$a
    rung=$(field "$room" "$side" .rung)
    sent=$(field "$room" "$other" .media.sent)
    got=$(field "$room" "$side" .media.received)
    if [[ $rung != "$want" ]]; then
      echo "FAIL: $room: $side ($(natlab_type "$side")) ended on '$rung', expected $want"
      ok=0
    fi
    if [[ $sent == - || $sent -lt 1 || $got != "$sent" ]]; then
      echo "FAIL: $room: $other sent ${sent} media packets, $side received ${got}"
      ok=0
    fi
  done
  if [[ $ok == 1 ]]; then
    echo "ok: $room: $(natlab_type "$a") ↔ $(natlab_type "$b"): $want," \
      "$(field "$room" "$a" .media.sent)/$(field "$room" "$b" .media.sent) packets each way," \
      "none lost"
  else
    failures=$((failures + 1))
    for side in "$a" "$b"; do
      echo "  $side's report:"
      sed 's/^/  | /' "$LAB_WORKDIR/$room-$side.json" "$LAB_WORKDIR/$room-$side.err" | head -60
    done
  fi
}

# 50 packets/s at 64 kbit/s each way for 3 s: "moderate" (an audio call's rate), long enough for
# every keepalive and liveness timer to run several times.
media=(--duration 3 --rate 50 --bitrate 64000)

echo "== the 5×5 matrix: five rounds of five calls at once"
for round in 0 1 2 3 4; do
  for i in 0 1 2 3 4; do
    j=$(((i + round) % 5))
    room=cell-$i-$j
    call_start "$room" "a${short[$i]}" "${media[@]}"
    call_start "$room" "b${short[$j]}" "${media[@]}"
  done
  natlab_call_wait
done

for i in 0 1 2 3 4; do
  for j in 0 1 2 3 4; do
    judge "cell-$i-$j" "a${short[$i]}" "b${short[$j]}" \
      "$(expect_rung "${types[$i]}" "${types[$j]}")"
  done
done

# The table: rows are the caller's type (a*), columns the callee's (b*); each cell the rung
# and the slower side's time to connect.
table=$LAB_WORKDIR/matrix.md
{
  printf '| caller \\ callee |'
  for j in 0 1 2 3 4; do printf ' %s |' "${types[$j]}"; done
  printf '\n|---|---|---|---|---|---|\n'
  for i in 0 1 2 3 4; do
    printf '| %s |' "${types[$i]}"
    for j in 0 1 2 3 4; do
      room=cell-$i-$j
      ta=$(field "$room" "a${short[$i]}" .time_to_connect_ms)
      tb=$(field "$room" "b${short[$j]}" .time_to_connect_ms)
      t=$(printf '%s\n%s\n' "$ta" "$tb" | sort -g | tail -1)
      [[ $t != - ]] && t=$(printf '%.0f ms' "$t")
      printf ' %s %s |' "$(field "$room" "a${short[$i]}" .rung)" "$t"
    done
    printf '\n'
  done
} >"$table"
echo
cat "$table"
if [[ -n $matrix_out ]]; then cp "$table" "$matrix_out"; fi

echo
echo "== --force: relay between two full cones (one side forces it, the other follows); p2p"
echo "   between two symmetric NATs (fails at the preset time, no relay)"
call_start force-relay afull "${media[@]}" --force relay
call_start force-relay bfull "${media[@]}"
call_start force-p2p asym "${media[@]}" --force p2p
call_start force-p2p bsym "${media[@]}" --force p2p
natlab_call_wait
judge force-relay afull bfull relay
for side in asym bsym; do
  rung=$(field force-p2p "$side" .rung)
  error=$(field force-p2p "$side" .error)
  if [[ $rung == none && $error == *"--force p2p"* ]]; then
    echo "ok: force-p2p: $side failed without the relay: $error"
  else
    echo "FAIL: force-p2p: $side: rung $rung, error '$error'"
    failures=$((failures + 1))
  fi
done

echo
echo "== punch bridge: UDP from a local port behind a full cone to one behind a symmetric NAT"
# A sender on afull's 127.0.0.1:5004 (30 bytes every 20 ms for 3.5 s, numbered); afull's bridge
# carries what arrives once the path is up; bsym's bridge hands it to 127.0.0.1:5006, where a
# receiver checks each datagram. What afull's bridge carried must all arrive, intact.
python=/usr/bin/python3
for side in afull bsym; do
  ip netns exec "$(natlab_ns "$side")" timeout 30 "$punch" bridge --coord "$NATLAB_COORD" \
    --room bridge --name "$side" --listen 127.0.0.1:5004 --forward 127.0.0.1:5006 \
    --duration 5 >"$LAB_WORKDIR/bridge-$side.txt" 2>&1 &
  NATLAB_CALL_PIDS+=($!)
done
ip netns exec "$(natlab_ns bsym)" timeout 20 "$python" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 5006))
s.settimeout(3)
got, bad = set(), 0
try:
    while True:
        d = s.recv(2048)
        n = int(d[:8]) if d[:8].isdigit() else -1
        if n < 0 or d != b"%08d" % n + b"x" * 22: bad += 1
        else: got.add(n)
except socket.timeout:
    pass
print("received", len(got), "bad", bad)
' >"$LAB_WORKDIR/bridge-receiver.txt" 2>&1 &
receiver=$!
ip netns exec "$(natlab_ns afull)" "$python" -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for n in range(175):
    s.sendto(b"%08d" % n + b"x" * 22, ("127.0.0.1", 5004))
    time.sleep(0.02)
'
wait "$receiver" || true
natlab_call_wait
carried=$(sed -n 's/^bridge *\([0-9]*\) datagrams carried.*/\1/p' "$LAB_WORKDIR/bridge-afull.txt")
forwarded=$(sed -n 's/.* \([0-9]*\) from the peer forwarded.*/\1/p' "$LAB_WORKDIR/bridge-bsym.txt")
received=$(sed -n 's/^received \([0-9]*\) bad 0$/\1/p' "$LAB_WORKDIR/bridge-receiver.txt")
if [[ -n $carried && $carried -gt 50 && $forwarded == "$carried" && $received == "$carried" ]]; then
  echo "ok: punch bridge carried $carried datagrams; the peer's bridge forwarded $forwarded," \
    "all arrived intact"
else
  echo "FAIL: punch bridge: carried '${carried}', forwarded '${forwarded}', received" \
    "'$(cat "$LAB_WORKDIR/bridge-receiver.txt")'"
  sed 's/^/  | /' "$LAB_WORKDIR/bridge-afull.txt" "$LAB_WORKDIR/bridge-bsym.txt"
  failures=$((failures + 1))
fi

echo
echo "== a path cut mid-call: cutfull (full cone) and cutnone (no NAT)"
call_start cut cutfull --duration 12 --rate 50 --bitrate 64000
call_start cut cutnone --duration 12 --rate 50 --bitrate 64000
sleep 4
natlab_cut_path cutfull "$(natlab_public_ip cutnone)"
natlab_call_wait
for side in cutfull cutnone; do
  first=$(field cut "$side" .first_rung)
  last=$(field cut "$side" .rung)
  moved=$(field cut "$side" .fallback_ms)
  after=$(field cut "$side" '.media.paths[-1].received')
  error=$(field cut "$side" '.error | if . == "" then "none" else . end')
  if [[ $first == p2p && $last == relay && $moved != - && $after != - && $after -gt 0 &&
    $error == none ]]; then
    echo "ok: $side: p2p, cut, then relay; media resumed $(printf '%.0f' "$moved") ms after" \
      "the last frame on the P2P path; $after media packets received on the relay"
  else
    echo "FAIL: $side: first $first, last $last, media gap $moved ms, $after packets after," \
      "error: $error"
    sed 's/^/  | /' "$LAB_WORKDIR/cut-$side.json" "$LAB_WORKDIR/cut-$side.err" | head -60
    failures=$((failures + 1))
  fi
done
drops=$(natlab_cut_drops cutfull)
if [[ ${drops:-0} -ge 1 ]]; then
  echo "ok: the cut dropped $drops packets in cutfull's NAT"
else
  echo "FAIL: the cut dropped ${drops:-no} packets"
  failures=$((failures + 1))
fi

echo
natlab_coord_stop || { echo "FAIL: punchcoord did not exit 0"; failures=$((failures + 1)); }
lab_engine_stop_checked
lab_verdict
