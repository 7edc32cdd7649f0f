#!/usr/bin/env bash
# tests/natlab/demo_calls.sh PUNCHLINED PUNCH PUNCHCOORD — scripts/demo's ladder part: a small
# NAT lab (natlab.sh: punchlined as STUN server and relay, punchcoord, six clients behind Linux
# NATs, an SFU node behind a full cone) and the three rungs, each side's report printed:
#
#   a P2P call        full cone  ↔ port-restricted cone   (punching works)
#   a relayed call    symmetric  ↔ symmetric              (it cannot; and no SFU node is
#                                                          registered when it asks for one)
#   an SFU call       symmetric  ↔ symmetric              (the node behind a full cone, started
#                                                          meanwhile, can punch with both)
#
# While they run, punchctl shows the relay's allocations and the node's SFU sessions. 50
# packets/s each way. Exits 0 when all three went as expected; the lab is gone when it exits.
# Needs root.
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
natlab_add_client erin symmetric
natlab_add_client frank symmetric
natlab_sfu_node_add edge full-cone
natlab_coord_start "$3"
punchctl=$(dirname "$1")/punchctl

echo "NAT lab: alice (full cone, $(natlab_public_ip alice)) calls bob (port-restricted," \
  "$(natlab_public_ip bob)); carol and dave, erin and frank are behind symmetric NATs." \
  "punchcoord on $NATLAB_COORD, punchlined (STUN and relay) on" \
  "$NATLAB_STUN_IP:$NATLAB_STUN_PORT, an SFU node behind a full cone ($(natlab_public_ip edge))."
echo
echo "== the P2P call and the relayed call (no SFU node registered yet)"
natlab_call_start p2p-call alice "$punch" --duration 10 --punch-timeout 1
natlab_call_start p2p-call bob "$punch" --duration 10 --punch-timeout 1
natlab_call_start relayed-call carol "$punch" --duration 10 --punch-timeout 1
natlab_call_start relayed-call dave "$punch" --duration 10 --punch-timeout 1
sleep 2
echo "== the SFU node behind a full cone registers; the SFU call"
natlab_sfu_node_start edge
natlab_sfu_node_wait_registered edge 20
grep -o 'node: .*' "${NATLAB_SFU_LOG[edge]}" | sed 's/^/  edge | /'
natlab_call_start sfu-call erin "$punch" --duration 5 --punch-timeout 1
natlab_call_start sfu-call frank "$punch" --duration 5 --punch-timeout 1
sleep 3
echo
echo "== while the calls run: punchctl allocations (the relay)"
"$punchctl" --socket "$(dirname "$NATLAB_ENGINE_CONFIG")/punchlined.sock" allocations |
  sed 's/^/  /' || echo "  (punchctl allocations failed)"
echo "== punchctl sfu (the SFU node)"
natlab_sfu_node_ctl edge sfu | sed 's/^/  /' || echo "  (punchctl sfu failed)"
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
show sfu-call erin sfu
show sfu-call frank sfu
echo
natlab_sfu_node_stop edge >/dev/null 2>&1 || true
natlab_coord_stop >/dev/null || true
lab_engine_stop >/dev/null 2>&1 || true
[[ $failures -eq 0 ]]
