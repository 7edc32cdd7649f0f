#!/usr/bin/env bash
# tests/natlab/node_discovery_test.sh PUNCHLINED NODE_DISCOVERY_TOOL — an SFU node's NAT
# self-discovery from its one port (control/node_discovery.h, docs/sfu.md "A node behind a
# NAT") behind each of the lab's five NAT types (natlab.sh), against punchlined's STUN role:
#
#   type                 nat_type             mapping / filtering
#   none                 none                 no_nat / endpoint_independent
#   full-cone            full_cone            endpoint_independent / endpoint_independent
#   address-restricted   address_restricted   endpoint_independent / address_dependent
#   port-restricted      port_restricted      endpoint_independent / address_and_port_dependent
#   symmetric            symmetric            address_and_port_dependent / the same
#
# and the public address is the NAT's. Unlike `punch probe` (natlab_probe), there is no fresh
# socket for the filtering tests: one port does everything, so the address-restricted row is
# the one that proves the order (filtering tests before any datagram to the alternate
# address, which would open an address-dependent filter to it and read as EIF). All five run
# at once. Exit 77 (skipped) when not root or a tool is missing. About 10 s.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/natlab/natlab.sh
source "$here/natlab.sh"

tool=${2:?usage: node_discovery_test.sh PATH_TO_PUNCHLINED PATH_TO_NODE_DISCOVERY_TOOL}
natlab_init "${1:?usage: node_discovery_test.sh PATH_TO_PUNCHLINED PATH_TO_NODE_DISCOVERY_TOOL}" \
  jq "$tool"

natlab_up
natlab_add_client none none
natlab_add_client full full-cone
natlab_add_client address address-restricted
natlab_add_client port port-restricted
natlab_add_client symmetric symmetric
clients=(none full address port symmetric)

failures=0
server=$NATLAB_STUN_IP:$NATLAB_STUN_PORT

expect() {  # TYPE → "nat_type mapping filtering"
  case $1 in
    none) echo "none no_nat endpoint_independent" ;;
    full-cone) echo "full_cone endpoint_independent endpoint_independent" ;;
    address-restricted) echo "address_restricted endpoint_independent address_dependent" ;;
    port-restricted) echo "port_restricted endpoint_independent address_and_port_dependent" ;;
    symmetric) echo "symmetric address_and_port_dependent address_and_port_dependent" ;;
  esac
}

same() {
  if [[ $2 == "$3" ]]; then
    echo "ok: $1: $3"
  else
    echo "FAIL: $1: got '$3', expected '$2'"
    failures=$((failures + 1))
  fi
}

echo "== node_discovery_tool --stun $server from each NAT type, all at once"
pids=()
for client in "${clients[@]}"; do
  ip netns exec "$(natlab_ns "$client")" timeout 30 "$tool" --stun "$server" --port 3480 \
    --timeout-ms 2000 >"$LAB_WORKDIR/node-$client.json" 2>"$LAB_WORKDIR/node-$client.err" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || true; done

for client in "${clients[@]}"; do
  type=$(natlab_type "$client")
  json=$LAB_WORKDIR/node-$client.json
  echo
  echo "-- $client ($type, public $(natlab_public_ip "$client"))"
  sed 's/^/  | /' "$json" "$LAB_WORKDIR/node-$client.err"
  read -r want_type want_mapping want_filtering <<<"$(expect "$type")"
  same "$type: nat_type" "$want_type" "$(jq -r .nat_type "$json" 2>/dev/null || echo "no JSON")"
  same "$type: mapping" "$want_mapping" "$(jq -r .mapping "$json" 2>/dev/null || echo "no JSON")"
  same "$type: filtering" "$want_filtering" \
    "$(jq -r .filtering "$json" 2>/dev/null || echo "no JSON")"
  public=$(jq -r .public_address "$json" 2>/dev/null || echo "no JSON")
  same "$type: public address" "$(natlab_public_ip "$client")" "${public%:*}"
done

echo
lab_engine_stop_checked
lab_verdict
