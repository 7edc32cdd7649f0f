#!/usr/bin/env bash
# tests/natlab/demo_calls.sh PUNCHLINED PUNCH PUNCHCOORD — scripts/demo's ladder part: a small
# NAT lab (natlab.sh: punchlined as STUN server and relay, punchcoord, four clients behind
# Linux NATs) and two calls through it, each side's report printed:
#
#   a P2P call        full cone  ↔ port-restricted cone   (punching works)
#   a relayed call    symmetric  ↔ symmetric              (it cannot: natlab.md's matrix)
#
# Both calls run at once, 5 s of synthetic media at 50 packets/s each way. Exits 0 when both
# went as expected; the lab is gone when it exits. Needs root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/natlab/natlab.sh
source "$here/natlab.sh"

usage="usage: demo_calls.sh PUNCHLINED PUNCH PUNCHCOORD"
punch=${2:?$usage}
natlab_init "${1:?$usage}" jq "$punch" "${3:?$usage}"
natlab_up
natlab_add_client alice full-cone
natlab_add_client bob port-restricted
natlab_add_client carol symmetric
natlab_add_client dave symmetric
natlab_coord_start "$3"

echo "NAT lab: alice (full cone, $(natlab_public_ip alice)) calls bob (port-restricted," \
  "$(natlab_public_ip bob)); carol ($(natlab_public_ip carol)) calls dave" \
  "($(natlab_public_ip dave)), both symmetric. punchcoord on $NATLAB_COORD, punchlined" \
  "(STUN and relay) on $NATLAB_STUN_IP:$NATLAB_STUN_PORT."
natlab_call_start p2p-call alice "$punch" --duration 5
natlab_call_start p2p-call bob "$punch" --duration 5
natlab_call_start relayed-call carol "$punch" --duration 5
natlab_call_start relayed-call dave "$punch" --duration 5
natlab_call_wait

failures=0
show() {
  local room=$1 client=$2 want=$3 rung
  rung=$(natlab_call_field "$room" "$client" .rung)
  printf '\n-- %s, %s (%s): rung %s, time to connect %s ms\n' "$room" "$client" \
    "$(natlab_type "$client")" "$rung" \
    "$(natlab_call_field "$room" "$client" .time_to_connect_ms)"
  echo "   media: $(natlab_call_field "$room" "$client" .media.text)"
  echo "   steps: $(jq -r '[.steps[] | "\(.step) \(.elapsed_ms|floor) ms"] | join(", ")' \
    "$LAB_WORKDIR/$room-$client.json" 2>/dev/null || cat "$LAB_WORKDIR/$room-$client.err")"
  if [[ $rung != "$want" ]]; then
    echo "   expected $want; its error: $(natlab_call_field "$room" "$client" .error)"
    failures=$((failures + 1))
  fi
}
show p2p-call alice p2p
show p2p-call bob p2p
show relayed-call carol relay
show relayed-call dave relay
echo
natlab_coord_stop >/dev/null || true
lab_engine_stop >/dev/null 2>&1 || true
[[ $failures -eq 0 ]]
