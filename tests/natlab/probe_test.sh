#!/usr/bin/env bash
# tests/natlab/probe_test.sh PUNCHLINED PUNCH — `punch probe` classifies each of the lab's five
# NAT types (natlab.sh) as built, and agrees with coturn's turnutils_natdiscovery run from the
# same host against the same punchlined (issue 6):
#
#   type                 punch probe nat_type     mapping / filtering (both tools)
#   none                 none                     no NAT (punch) / endpoint independent
#   full-cone            full_cone                endpoint independent / endpoint independent
#   address-restricted   address_restricted       endpoint independent / address dependent
#   port-restricted      port_restricted          endpoint independent / address and port dep.
#   symmetric            symmetric                address and port dependent / the same
#
# and the reflexive address punch reports is the client's public address. Hairpinning: the
# full cone is built with hairpin here, so punch must say "supported" for it and
# "not_supported" for the port-restricted one (RFC 5780 §4.5; coturn does not test it).
# All five clients probe at once, then natdiscovery runs at once (each waits out the answers
# its NAT holds back). Exit 77 (skipped) when not root or a tool is missing. About 15 s.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/natlab/natlab.sh
source "$here/natlab.sh"

punch=${2:?usage: probe_test.sh PATH_TO_PUNCHLINED PATH_TO_PUNCH}
natlab_init "${1:?usage: probe_test.sh PATH_TO_PUNCHLINED PATH_TO_PUNCH}" \
  turnutils_natdiscovery jq "$punch"

natlab_up
natlab_add_client none none
natlab_add_client full full-cone hairpin
natlab_add_client address address-restricted
natlab_add_client port port-restricted
natlab_add_client symmetric symmetric
clients=(none full address port symmetric)

failures=0
server=$NATLAB_STUN_IP:$NATLAB_STUN_PORT

# expect_* TYPE: what punch probe's JSON must say, and coturn's words for the same behaviours.
expect_type() {
  case $1 in
    none) echo none ;;
    full-cone) echo full_cone ;;
    address-restricted) echo address_restricted ;;
    port-restricted) echo port_restricted ;;
    symmetric) echo symmetric ;;
  esac
}
expect_mapping() {
  case $1 in
    none) echo no_nat ;;
    symmetric) echo address_and_port_dependent ;;
    *) echo endpoint_independent ;;
  esac
}
expect_filtering() {
  case $1 in
    none | full-cone) echo endpoint_independent ;;
    address-restricted) echo address_dependent ;;
    *) echo address_and_port_dependent ;;
  esac
}
# punch's words → coturn's ("NAT with Endpoint Independent Mapping!"); coturn compares with its
# socket bound to 0.0.0.0, so it says "Endpoint Independent" where punch says no_nat.
coturn_words() {
  case $1 in
    no_nat | endpoint_independent) echo "Endpoint Independent" ;;
    address_dependent) echo "Address Dependent" ;;
    address_and_port_dependent) echo "Address and Port Dependent" ;;
  esac
}

echo "== punch probe --json --stun $server from each NAT type, all at once"
pids=()
for client in "${clients[@]}"; do
  ip netns exec "$(natlab_ns "$client")" timeout 20 "$punch" probe --json --timeout 2 \
    --stun "$server" >"$LAB_WORKDIR/punch-$client.json" 2>"$LAB_WORKDIR/punch-$client.err" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || true; done

echo "== turnutils_natdiscovery -m -f -p $NATLAB_STUN_PORT $NATLAB_STUN_IP, all at once"
pids=()
for client in "${clients[@]}"; do
  ip netns exec "$(natlab_ns "$client")" timeout 20 turnutils_natdiscovery -m -f \
    -p "$NATLAB_STUN_PORT" "$NATLAB_STUN_IP" >"$LAB_WORKDIR/coturn-$client.txt" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || true; done

# same NAME WANT GOT: one comparison, counted.
same() {
  if [[ $2 == "$3" ]]; then
    echo "ok: $1: $3"
  else
    echo "FAIL: $1: got '$3', expected '$2'"
    failures=$((failures + 1))
  fi
}

for client in "${clients[@]}"; do
  type=$(natlab_type "$client")
  json=$LAB_WORKDIR/punch-$client.json
  coturn=$LAB_WORKDIR/coturn-$client.txt
  echo
  echo "-- $client ($type, public $(natlab_public_ip "$client"))"
  sed 's/^/  punch | /' "$json" "$LAB_WORKDIR/punch-$client.err" | grep -v '^  punch | *$' |
    head -40
  sed -e '/^$/d' -e 's/^/  coturn | /' "$coturn"
  got_type=$(jq -r .nat_type "$json" 2>/dev/null || echo "no JSON")
  got_mapping=$(jq -r .mapping "$json" 2>/dev/null || echo "no JSON")
  got_filtering=$(jq -r .filtering "$json" 2>/dev/null || echo "no JSON")
  got_reflexive=$(jq -r .reflexive "$json" 2>/dev/null || echo "no JSON")
  same "$type: punch probe's NAT type" "$(expect_type "$type")" "$got_type"
  same "$type: punch probe's mapping" "$(expect_mapping "$type")" "$got_mapping"
  same "$type: punch probe's filtering" "$(expect_filtering "$type")" "$got_filtering"
  same "$type: punch probe's reflexive address" "$(natlab_public_ip "$client")" \
    "${got_reflexive%:*}"
  # Agreement with coturn, behaviour by behaviour, in coturn's words.
  coturn_mapping=$(sed -n 's/^NAT with \(.*\) Mapping!$/\1/p' "$coturn" | head -1)
  coturn_filtering=$(sed -n 's/^NAT with \(.*\) Filtering!$/\1/p' "$coturn" | head -1)
  same "$type: mapping, punch agrees with turnutils_natdiscovery" "$coturn_mapping" \
    "$(coturn_words "$got_mapping")"
  same "$type: filtering, punch agrees with turnutils_natdiscovery" "$coturn_filtering" \
    "$(coturn_words "$got_filtering")"
done
same "full-cone with hairpin: hairpinning" supported \
  "$(jq -r .hairpinning "$LAB_WORKDIR/punch-full.json" 2>/dev/null || echo "no JSON")"
same "port-restricted without hairpin: hairpinning" not_supported \
  "$(jq -r .hairpinning "$LAB_WORKDIR/punch-port.json" 2>/dev/null || echo "no JSON")"

echo
lab_engine_stop_checked
lab_verdict
