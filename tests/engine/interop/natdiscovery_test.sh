#!/usr/bin/env bash
# tests/engine/interop/natdiscovery_test.sh PUNCHLINED — coturn's turnutils_natdiscovery
# (RFC 5780 §4.3 mapping and §4.4 filtering tests) from behind an nftables NAT, against
# punchlined as the RFC 5780 server on a "public Internet" bridge (lab per natlab.md).
#
#   namespace e    punchlined on net_af_packet over eng0: 203.0.113.2 and .3 (alternate),
#                  ports 3478/3479, rx_checksum trust (veth hands over partial checksums)
#   namespace pub  bridge br0 joining e's veth and the router's WAN veth (the public Internet)
#   namespace r-X  NAT router X: wan0 203.0.113.20 or .21/24 on the bridge, lan0 198.18.1.1/24
#   namespace c-X  client behind it: 198.18.1.10/24, default route via 198.18.1.1
#   namespace c-none  control client directly on the bridge: 203.0.113.30/24
#
# Three runs, each with namespaces of its own (no conntrack state shared) and a freshly started
# engine (counters per run):
#   no NAT (control)      -                               mapping EI, filtering EI
#   port-restricted cone  masquerade                      mapping EI, filtering APD
#   symmetric             masquerade random,fully-random  mapping APD, filtering APD
# (natlab.md, "The four NAT types with nftables": conntrack alone gives APD filtering, with
# unsolicited WAN packets dropped in the router's input hook, pitfall 1). The control shows that
# the engine's CHANGE-REQUEST answers do arrive, and the routers' drop counters that they were
# held back by the NAT, not missing. The engine must stop "conserved" after each run, with
# stun ok > 0.
# Exit 77 (skipped) when not root or when coturn or nftables is not installed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/lab.sh"

lab_init "${1:?usage: natdiscovery_test.sh PATH_TO_PUNCHLINED}" turnutils_natdiscovery nft timeout

# The public Internet: a bridge in its own namespace. br_netfilter is loaded on these machines:
# without bridge-nf-call-iptables=0 bridged frames would also cross the IP hooks
# (natlab.md pitfall 3). The key exists only where br_netfilter is loaded.
lab_ns_add pub
lab_exec pub ip link add br0 type bridge
lab_exec pub ip link set br0 up
if lab_exec pub sysctl -n net.bridge.bridge-nf-call-iptables >/dev/null 2>&1; then
  lab_exec pub sysctl -qw net.bridge.bridge-nf-call-iptables=0
fi

lab_ns_add e
lab_veth e eng0 pub p-eng
lab_exec pub ip link set p-eng master br0 up
lab_exec e ip link set eng0 up

lab_wait_carrier pub p-eng

lab_engine_config "$LAB_WORKDIR/engine.toml" net_af_packet0,iface=eng0,qpairs=1 net_af_packet0 \
  trust 203.0.113.2 203.0.113.3

# One ruleset per NAT type; only the masquerade statement differs. The filter table is the
# same for both: what comes in on the WAN is accepted only when conntrack knows it, in input
# (pitfall 1: otherwise the router answers ICMP port unreachable and conntrack confirms an entry
# that later clashes with the inside host's own mapping) and in forward.
router_rules() {
  local masquerade=$1
  cat <<EOF
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" $masquerade
  }
}
table inet filter {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" counter drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" drop
  }
}
EOF
}

failures=0

# nat_router NAME WAN_IP: router r-NAME with its WAN on the bridge, client c-NAME behind it.
nat_router() {
  local name=$1 wan=$2 r=r-$1 c=c-$1
  lab_ns_add "$r"
  lab_veth "$r" wan0 pub "p-$name"
  lab_exec pub ip link set "p-$name" master br0 up
  lab_exec "$r" ip addr add "$wan/24" dev wan0
  lab_exec "$r" ip link set wan0 up
  lab_exec "$r" sysctl -qw net.ipv4.ip_forward=1
  lab_ns_add "$c"
  lab_veth "$r" lan0 "$c" eth0
  lab_exec "$r" ip addr add 198.18.1.1/24 dev lan0
  lab_exec "$r" ip link set lan0 up
  lab_exec "$c" ip addr add 198.18.1.10/24 dev eth0
  lab_exec "$c" ip link set eth0 up
  lab_exec "$c" ip route add default via 198.18.1.1
  lab_wait_carrier "$r" wan0
  lab_wait_carrier "$c" eth0
}

# The packets the router's input hook dropped: the answers its filtering held back.
router_input_drops() {
  lab_exec "r-$1" nft list chain inet filter input |
    sed -n 's/.*iifname "wan0" counter packets \([0-9]*\) bytes.* drop.*/\1/p'
}

run_nat() {
  local name=$1 wan=$2 masquerade=$3 mapping=$4
  local rules=$LAB_WORKDIR/$name.nft output=$LAB_WORKDIR/natdiscovery-$name.txt
  echo
  echo "== $name NAT ($wan): $masquerade"
  nat_router "$name" "$wan"
  router_rules "$masquerade" >"$rules"
  lab_exec "r-$name" nft -f "$rules"
  echo "router r-$name ruleset:"
  lab_exec "r-$name" nft list ruleset | sed 's/^/  | /'
  lab_engine_start e "$LAB_WORKDIR/engine.toml"
  lab_exec_wait "c-$name" timeout 20 stdbuf -oL turnutils_natdiscovery -m -f -p 3478 203.0.113.2 \
    >"$output" 2>&1 || true
  echo "\$ turnutils_natdiscovery -m -f -p 3478 203.0.113.2"
  sed -e '/^$/d' -e 's/^/  | /' "$output"
  check "$name: mapping $mapping" "$output" "$mapping"
  check "$name: filtering address and port dependent" "$output" \
    'NAT with Address and Port Dependent Filtering!'
  # The verdict "filtering" is also what a server that never answered CHANGE-REQUEST would
  # get; the router's drop counter shows that the answers came and the NAT held them back.
  local held_back
  held_back=$(router_input_drops "$name")
  if [[ ${held_back:-0} -ge 2 ]]; then
    echo "ok: $name: the router dropped $held_back unsolicited answers on its WAN"
  else
    echo "FAIL: $name: the router dropped ${held_back:-no} packets on its WAN, expected >= 2"
    failures=$((failures + 1))
  fi
  if ! lab_engine_stop; then
    echo "FAIL: $name: punchlined's counters"
    failures=$((failures + 1))
  fi
  local stun_ok
  stun_ok=$(lab_engine_counter "stun ok")
  if [[ ${stun_ok:-0} -gt 0 ]]; then
    echo "ok: $name: stun ok $stun_ok"
  else
    echo "FAIL: $name: stun ok is ${stun_ok:-missing}"
    failures=$((failures + 1))
  fi
}

# Control: a client directly on the public bridge. The engine's CHANGE-REQUEST answers reach
# it, so coturn must see no NAT and no filtering; without this run, a server that never sent
# those answers would pass the filtering checks above.
run_no_nat() {
  local output=$LAB_WORKDIR/natdiscovery-none.txt
  echo
  echo "== no NAT (203.0.113.30): control"
  lab_ns_add c-none
  lab_veth c-none eth0 pub p-none
  lab_exec pub ip link set p-none master br0 up
  lab_exec c-none ip addr add 203.0.113.30/24 dev eth0
  lab_exec c-none ip link set eth0 up
  lab_wait_carrier c-none eth0
  lab_engine_start e "$LAB_WORKDIR/engine.toml"
  lab_exec_wait c-none timeout 20 stdbuf -oL turnutils_natdiscovery -m -f -p 3478 203.0.113.2 \
    >"$output" 2>&1 || true
  echo "\$ turnutils_natdiscovery -m -f -p 3478 203.0.113.2"
  sed -e '/^$/d' -e 's/^/  | /' "$output"
  # coturn compares the reflexive address with its socket's, bound to 0.0.0.0, so it reports
  # even a public host as "NAT with Endpoint Independent ...".
  check "none: reflexive address is the client's own" "$output" \
    'UDP reflexive addr: 203\.0\.113\.30:[0-9]+$'
  check "none: mapping endpoint independent" "$output" 'NAT with Endpoint Independent Mapping!'
  check "none: filtering endpoint independent (the CHANGE-REQUEST answers arrive)" "$output" \
    'NAT with Endpoint Independent Filtering!'
  check "none: change IP and port answered from 203.0.113.3:3479" "$output" \
    'Response origin: (: )?203\.0\.113\.3:3479$'
  if ! lab_engine_stop; then
    echo "FAIL: none: punchlined's counters"
    failures=$((failures + 1))
  fi
}

# coturn prints "NAT with Endpoint Independent Mapping!", "NAT with Address Dependent
# Mapping!" or "NAT with Address and Port Dependent Mapping!"; likewise for filtering.
run_no_nat
run_nat cone 203.0.113.20 "masquerade" 'NAT with Endpoint Independent Mapping!'
run_nat symmetric 203.0.113.21 "masquerade random,fully-random" \
  'NAT with Address and Port Dependent Mapping!'

lab_verdict
