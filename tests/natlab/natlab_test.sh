#!/usr/bin/env bash
# tests/natlab/natlab_test.sh PUNCHLINED — the NAT lab (natlab.sh) behaves as natlab.md says
# real NATs of each type do, judged by third-party and independent clients:
#
# 1. coturn's turnutils_natdiscovery (RFC 5780 §4.3 mapping, §4.4 filtering), from a client
#    behind each NAT type against the lab's punchlined, all five at once:
#      none                 reflexive address = its own; mapping EI, filtering EI
#      full-cone            mapping EI, filtering EI, reflexive address = the router's WAN
#      address-restricted   mapping EI, filtering address dependent
#      port-restricted      mapping EI, filtering address and port dependent
#      symmetric            mapping and filtering address and port dependent
#    For the filtering types, the router's drop counter shows that the CHANGE-REQUEST answers
#    came and the NAT held them back (a server that never sent them would get the same verdict).
# 2. Hole punching (udp_punch.py: reflexive address from STUN, test packets both ways,
#    peer-reflexive answers) between pairs of lab clients, all at once, against natlab.md's
#    matrix: full-cone/symmetric, none/symmetric, address/port-restricted and a hairpinning
#    full cone's two LAN hosts through its public address punch through (both sides);
#    symmetric/symmetric, port-restricted/symmetric and two hosts behind a port-restricted NAT
#    that does not hairpin do not (neither side).
# 3. TCP from every client reaches the coordinator's host, from the client's public address.
# 4. natlab_cut_path: with the path between the full cone and the no-NAT client cut in the
#    NAT, their punch fails and the cut counts drops; restored, it succeeds again.
# 5. punchlined stops with its counters conserved and stun ok > 0.
# Exit 77 (skipped) when not root or when coturn, nftables or python3 is missing. About 18 s.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/natlab/natlab.sh
source "$here/natlab.sh"

python=/usr/bin/python3
natlab_init "${1:?usage: natlab_test.sh PATH_TO_PUNCHLINED}" turnutils_natdiscovery stdbuf \
  "$python"

natlab_up
natlab_add_client none none
natlab_add_client full full-cone
natlab_add_client address address-restricted
natlab_add_client port port-restricted
natlab_add_client symmetric symmetric
natlab_add_client symmetric2 symmetric
natlab_add_lan_client port2 port
natlab_add_client hairpin full-cone hairpin
natlab_add_lan_client hairpin2 hairpin

failures=0

# coturn prints "NAT with Endpoint Independent Mapping!", "... Address Dependent ...", or
# "... Address and Port Dependent ..."; likewise for filtering. It compares the reflexive
# address with its socket's, bound to 0.0.0.0, so even a public host gets "NAT with".
natdiscovery_expect() {
  case $1 in
    none | full-cone) echo "Endpoint Independent|Endpoint Independent" ;;
    address-restricted) echo "Endpoint Independent|Address Dependent" ;;
    port-restricted) echo "Endpoint Independent|Address and Port Dependent" ;;
    symmetric) echo "Address and Port Dependent|Address and Port Dependent" ;;
  esac
}

echo "== turnutils_natdiscovery -m -f -p $NATLAB_STUN_PORT $NATLAB_STUN_IP from each NAT type"
discovery_clients=(none full address port symmetric)
pids=()
for client in "${discovery_clients[@]}"; do
  # Each waits out the answers its NAT filters (a few seconds); all five run at once, each in
  # its own namespace. `timeout`: natlab.md pitfall 7.
  ip netns exec "$(natlab_ns "$client")" timeout 20 stdbuf -oL turnutils_natdiscovery -m -f \
    -p "$NATLAB_STUN_PORT" "$NATLAB_STUN_IP" >"$LAB_WORKDIR/natdiscovery-$client.txt" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid" || true
done

for client in "${discovery_clients[@]}"; do
  type=$(natlab_type "$client")
  output=$LAB_WORKDIR/natdiscovery-$client.txt
  expected=$(natdiscovery_expect "$type")
  mapping=${expected%|*}
  filtering=${expected#*|}
  echo
  echo "-- $client ($type, public $(natlab_public_ip "$client"), LAN $(natlab_lan_ip "$client"))"
  sed -e '/^$/d' -e 's/^/  | /' "$output"
  check "$type: mapping $mapping" "$output" "^NAT with $mapping Mapping!"
  check "$type: filtering $filtering" "$output" "^NAT with $filtering Filtering!"
  public=$(natlab_public_ip "$client")
  check "$type: reflexive address is $public" "$output" \
    "UDP reflexive addr: ${public//./\\.}:[0-9]+\$"
  if [[ $type != none && $filtering != "Endpoint Independent" ]]; then
    held_back=$(natlab_router_drops "$client")
    if [[ ${held_back:-0} -ge 1 ]]; then
      echo "ok: $type: the router dropped $held_back unsolicited packets on its WAN"
    else
      echo "FAIL: $type: the router dropped ${held_back:-no} packets on its WAN, expected >= 1"
      failures=$((failures + 1))
    fi
  fi
done
check "none: the CHANGE-REQUEST answer came from $NATLAB_STUN_ALT_IP:$NATLAB_STUN_ALT_PORT" \
  "$LAB_WORKDIR/natdiscovery-none.txt" \
  "Response origin: (: )?${NATLAB_STUN_ALT_IP//./\\.}:$NATLAB_STUN_ALT_PORT\$"

# punch_start A B: udp_punch.py on both sides, in the background; punch_judge A B EXPECTED
# waits for both and checks that each side punched through (0) or did not (1).
punch_pids=()
punch_start() {
  local a=$1 b=$2 side peer dir=$LAB_WORKDIR/punch-$1-$2
  mkdir "$dir"
  for side in "$a" "$b"; do
    peer=$b
    [[ $side == "$b" ]] && peer=$a
    ip netns exec "$(natlab_ns "$side")" timeout 15 "$python" "$here/udp_punch.py" \
      "$NATLAB_STUN_IP:$NATLAB_STUN_PORT" "$dir/$side.address" "$dir/$peer.address" \
      >"$dir/$side.txt" 2>&1 &
    punch_pids+=("$a-$b-$side=$!")
  done
}

# punch_wait KEY: waits for the udp_punch.py started as KEY ("A-B-SIDE"); its exit status in
# $punch_status. (In the script's own shell: a command substitution could not wait for it.)
punch_wait() {
  local entry
  punch_status=missing
  for entry in "${punch_pids[@]}"; do
    if [[ ${entry%=*} == "$1" ]]; then
      punch_status=0
      wait "${entry#*=}" || punch_status=$?
      return
    fi
  done
}

punch_judge() {
  local a=$1 b=$2 expected=$3 side status dir=$LAB_WORKDIR/punch-$1-$2
  local want="punches through" type_a type_b
  [[ $expected == 1 ]] && want="does not punch through"
  type_a=$(natlab_type "$a")
  type_b=$(natlab_type "$b")
  for side in "$a" "$b"; do
    punch_wait "$a-$b-$side"
    status=$punch_status
    echo "udp_punch.py in $side ($(natlab_type "$side")), exit $status:"
    sed 's/^/  | /' "$dir/$side.txt"
    if [[ $status == "$expected" ]]; then
      echo "ok: $a ($type_a) / $b ($type_b): $side $want"
    else
      echo "FAIL: $a ($type_a) / $b ($type_b): $side exited $status, expected $expected ($want)"
      failures=$((failures + 1))
    fi
  done
}

echo
echo "== hole punching (natlab.md's matrix)"
pairs=(
  "full symmetric 0"
  "none symmetric 0"
  "address port 0"
  "hairpin hairpin2 0"
  "symmetric symmetric2 1"
  "port symmetric2 1"
  "port port2 1"
)
for pair in "${pairs[@]}"; do
  read -r a b _ <<<"$pair"
  punch_start "$a" "$b"
done
for pair in "${pairs[@]}"; do
  read -r a b expected <<<"$pair"
  echo
  punch_judge "$a" "$b" "$expected"
done

# The coordinator's host is reachable over TCP from behind every NAT (issue 6's signaling
# needs no more than that): an echo server there, one connection from each client, which must
# come from the client's public address.
echo
echo "== TCP to the coordinator's host ($NATLAB_COORD_IP:7000) from every client"
clients=(none full address port symmetric symmetric2 port2 hairpin hairpin2)
ip netns exec "$(lab_ns coord)" timeout 20 "$python" -c '
import socket, sys
server = socket.create_server((sys.argv[1], 7000))
for _ in range(int(sys.argv[2])):
    connection, (ip, _) = server.accept()
    with connection:
        connection.sendall(connection.recv(64) + b" from " + ip.encode())
' "$NATLAB_COORD_IP" "${#clients[@]}" >"$LAB_WORKDIR/coord.txt" 2>&1 &
echo_server=$!
for client in "${clients[@]}"; do
  output=$LAB_WORKDIR/tcp-$client.txt
  natlab_exec "$client" timeout 5 "$python" -c '
import socket, sys, time
for _ in range(50):  # the server may still be starting: 5 s at most
    try:
        connection = socket.create_connection((sys.argv[1], 7000), timeout=2)
        break
    except ConnectionRefusedError:
        time.sleep(0.1)
connection.sendall(sys.argv[2].encode())
print(connection.recv(128).decode())
' "$NATLAB_COORD_IP" "$client" >"$output" 2>&1 || true
  public=$(natlab_public_ip "$client")
  check "TCP from $client ($(natlab_type "$client")) arrives from $public" "$output" \
    "^$client from ${public//./\\.}\$"
done
wait "$echo_server" || { echo "FAIL: the echo server exited $?"; failures=$((failures + 1)); }

echo
echo "== natlab_cut_path full $(natlab_public_ip none)"
natlab_cut_path full "$(natlab_public_ip none)"
punch_pids=()
punch_start full none
punch_judge full none 1
drops=$(natlab_cut_drops full)
if [[ ${drops:-0} -ge 1 ]]; then
  echo "ok: the cut dropped $drops packets in full's NAT"
else
  echo "FAIL: the cut dropped ${drops:-no} packets in full's NAT, expected >= 1"
  failures=$((failures + 1))
fi
natlab_restore_path full "$(natlab_public_ip none)"
mv "$LAB_WORKDIR/punch-full-none" "$LAB_WORKDIR/punch-full-none-cut"
punch_pids=()
punch_start full none
punch_judge full none 0

echo
lab_engine_stop_checked
lab_verdict
