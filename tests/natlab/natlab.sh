# shellcheck shell=bash
# tests/natlab/natlab.sh — sourced, not run: the NAT lab of ../shared/natlab.md, for every test
# that needs clients behind real Linux NATs (RFC 4787 behaviours built with nftables) and a
# punchlined to reach from there. It builds on tests/engine/interop/lab.sh (per-run prefix,
# namespaces, the engine's start and stop, the cleanup trap), which it sources.
#
# Topology (every name below is a namespace ${LAB_PREFIX}NAME, so parallel runs do not collide):
#
#   stun     punchlined on net_af_packet over veth eng0 (no kernel address): STUN on
#            203.0.113.2:3478 and the RFC 5780 alternate 203.0.113.3:3479, and the TURN relay
#            (RFC 8656) on the same addresses and ports (the relay listens on the STUN ports,
#            docs/operations.md), relay ports 49152-65535, gateway4 203.0.113.1. One engine
#            serves both roles: a second one would busy-poll the same lcore
#   coord    the coordinator's host, 203.0.113.4/24, default route via 203.0.113.1; nothing
#            runs there until a test starts something (natlab_coord_exec)
#   inet     the Internet: bridge "srv" (203.0.113.1/24: the servers) and bridge "cli"
#            (198.51.100.1/24: the clients' public addresses), routing between them, no
#            filter and no NAT. Two subnets because the relay reaches a peer through its
#            gateway: the engine's neighbour table resolves its gateways, not on-link hosts
#   r-NAME   the NAT router of client NAME: wan0 198.51.100.(10+K)/24 on "cli", bridge lan0
#            198.18.K.1/24, the client's veth on it; K numbers the clients from 1
#   c-NAME   client NAME: eth0 198.18.K.10/24 behind its router (more hosts behind the same
#            router, natlab_add_lan_client, get .11, .12, ...), or 198.51.100.(10+K)/24
#            directly on "cli" for TYPE none
#
# NAT types (RFC 4787 §4.1 mapping, §5 filtering; natlab.md "The four NAT types with
# nftables"), TYPE of natlab_add_client:
#   none                 no router: the client holds its public address itself
#   full-cone            EIM + endpoint-independent filtering (EIF)
#   address-restricted   EIM + address-dependent filtering (ADF)
#   port-restricted      EIM + address-and-port-dependent filtering (APDF)
#   symmetric            address-and-port-dependent mapping (APDM) + APDF
#
# API (call natlab_init first; every function exits through lab_fail on an error):
#   natlab_init PUNCHLINED [COMMAND...]
#       lab_init: exit 77 unless root and unless ip, nft, timeout and every COMMAND exist;
#       the cleanup trap (engine stopped, every process in the lab's namespaces killed by PID,
#       namespaces removed) runs on every exit path
#   natlab_up                  natlab_build, then natlab_engine_start
#   natlab_build               the Internet, the coordinator's host, the STUN/relay host (its
#                              veth up), and the engine's configuration in $NATLAB_ENGINE_CONFIG,
#                              which a test may append keys to before natlab_engine_start (the
#                              file ends inside the [relay] table)
#   natlab_engine_start        starts punchlined in "stun" (lab_engine_start)
#   natlab_engine_stop         lab_engine_stop: SIGINT, counters printed, fails unless conserved
#   natlab_add_client NAME TYPE [hairpin]
#       a client NAME (1-12 characters of [a-z0-9]) behind a new NAT router of TYPE;
#       "hairpin": the router also forwards LAN packets addressed to its public address
#       (RFC 4787 §6) through the mapping they name
#   natlab_add_lan_client NAME OTHER
#                              one more host behind OTHER's router (same NAT, same LAN)
#   natlab_exec CLIENT COMMAND...
#                              runs COMMAND in CLIENT's namespace
#   natlab_ns CLIENT           prints CLIENT's namespace (for `ip netns exec ... &`)
#   natlab_public_ip CLIENT    its public address: its router's WAN address, or its own
#   natlab_lan_ip CLIENT       its own address (198.18.K.x behind a NAT; public for none)
#   natlab_type CLIENT         its NAT type
#   natlab_coord_exec COMMAND...
#                              runs COMMAND in the coordinator's namespace
#   natlab_cut_path CLIENT PEER_IP
#       drops every packet between CLIENT's NAT and PEER_IP, both ways, from now on: in the
#       router's forward hook (so for every host behind that router), or in the client's own
#       input and output hooks for TYPE none. Established mappings stay; only the path dies,
#       as when a mobile link drops mid-call. Counted: natlab_cut_drops
#   natlab_restore_path CLIENT PEER_IP
#                              undoes natlab_cut_path
#   natlab_cut_drops CLIENT    packets dropped by natlab_cut_path in that namespace so far
#   natlab_router_drops CLIENT unsolicited packets CLIENT's router dropped on its WAN (input
#                              and forward hooks): what its filtering held back
#   natlab_coord_start PUNCHCOORD
#                              punchcoord on the coordinator's host, $NATLAB_COORD:
#                              the lab's STUN server and relay with its REST secret, SFU
#                              tokens with $NATLAB_SFU_SECRET; returns
#                              when it accepts connections (its output: $LAB_WORKDIR/punchcoord.txt)
#   natlab_coord_stop          SIGTERM to it; fails unless it exits 0
#   natlab_call_start ROOM CLIENT PUNCH ARGS...
#                              `PUNCH call --json --coord $NATLAB_COORD --room ROOM --name
#                              CLIENT ARGS...` in CLIENT's namespace, in the background (PID
#                              appended to NATLAB_CALL_PIDS); its report in
#                              $LAB_WORKDIR/ROOM-CLIENT.json, its stderr in ...err
#   natlab_call_wait           waits for every call in NATLAB_CALL_PIDS, then empties it
#   natlab_call_field ROOM CLIENT JQ
#                              one value of that call's report ("-" when missing)
#   natlab_sfu_node_add NAME TYPE
#       an SFU node NAME: a host placed as client NAME of TYPE would be (natlab_add_client: the
#       same router, public address and natlab_* queries), whose eth0 is handed to a second
#       punchlined (net_af_packet, no kernel address: the engine answers ARP itself) running the
#       `sfu` role on $NATLAB_SFU_PORT and registering with the lab's punchcoord as a node
#       ([node]: its public address and NAT type discovered from the lab's STUN server). The
#       node's own management link, mgmt0 (TCP to the coordinator), sits beside eth0 on the
#       same LAN, behind the same NAT. Its configuration in $LAB_WORKDIR/sfu-NAME.toml, which
#       a test may append to before natlab_sfu_node_start
#   natlab_sfu_node_start NAME [REGION]
#                              starts it; returns once punchlined runs (not yet registered:
#                              natlab_sfu_node_wait_registered)
#   natlab_sfu_node_wait_registered NAME [SECONDS]
#                              waits until the coordinator lists it (its log says registered)
#   natlab_sfu_node_stop NAME  SIGINT, counters printed; fails unless conserved
#   natlab_sfu_node_ctl NAME ARGS...
#                              punchctl against that node's management socket
#
# Addresses, set by natlab_build (the relay is the STUN host's engine):
#   NATLAB_STUN_IP NATLAB_STUN_PORT NATLAB_STUN_ALT_IP NATLAB_STUN_ALT_PORT
#   NATLAB_RELAY_IP NATLAB_RELAY_PORT NATLAB_RELAY_REALM NATLAB_RELAY_USER
#   NATLAB_RELAY_PASSWORD NATLAB_REST_SECRET (the relay's TURN REST secret, for a coordinator)
#   NATLAB_COORD_IP NATLAB_COORD (its HOST:PORT for punchcoord) NATLAB_ENGINE_CONFIG
#   NATLAB_SFU_PORT NATLAB_SFU_SECRET (the SFU token secret the coordinator and the nodes share)
# (exported, so that a program started in the lab finds them in its environment)
#
# natlab.md's pitfalls, each handled where it bites: unsolicited WAN packets are dropped in the
# router's input hook (an ICMP error would confirm a conntrack entry that later clashes with
# the inside host's mapping); ip_forward on every router; rp_filter 0 everywhere (lab_ns_add);
# bridge-nf-call-iptables 0 where there is a bridge; nftables only. Timeouts are the kernel's:
# a mapping lives nf_conntrack_udp_timeout (30 s) after its last outbound packet, so keepalives
# must come well inside that. No netem here: round trips are about 0 ms.

natlab_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$natlab_here/../engine/interop/lab.sh"

# Exported: programs a test starts in the lab read them too.
export NATLAB_STUN_IP=203.0.113.2
export NATLAB_STUN_ALT_IP=203.0.113.3
export NATLAB_STUN_PORT=3478
export NATLAB_STUN_ALT_PORT=3479
export NATLAB_RELAY_IP=$NATLAB_STUN_IP
export NATLAB_RELAY_PORT=$NATLAB_STUN_PORT
export NATLAB_RELAY_REALM=punchline.test
export NATLAB_RELAY_USER=alice
export NATLAB_RELAY_PASSWORD=relay-password
export NATLAB_REST_SECRET=punchline-natlab-rest-secret
export NATLAB_COORD_IP=203.0.113.4
export NATLAB_COORD=$NATLAB_COORD_IP:7000
export NATLAB_ENGINE_CONFIG=""
export NATLAB_SFU_PORT=3480
export NATLAB_SFU_SECRET=punchline-natlab-sfu-token-secret
# The Internet's two sides (natlab_build).
natlab_server_gateway=203.0.113.1
natlab_client_gateway=198.51.100.1

declare -A NATLAB_TYPE=()    # client -> NAT type
declare -A NATLAB_PUBLIC=()  # client -> public address
declare -A NATLAB_LAN=()     # client -> its own address
declare -A NATLAB_ROUTER=()  # client -> its router's short namespace name ("" for none)
declare -A NATLAB_INDEX=()   # router or no-NAT client -> K
declare -A NATLAB_HOSTS=()   # router -> hosts on its LAN so far
natlab_clients=0

natlab_init() {
  lab_init "$@" nft timeout
}

natlab_build() {
  # The Internet. br_netfilter is loaded on these machines: without bridge-nf-call-iptables=0
  # bridged frames would also cross the IP hooks (natlab.md pitfall 3); the key exists only
  # where br_netfilter is loaded.
  lab_ns_add inet
  lab_exec inet sysctl -qw net.ipv4.ip_forward=1
  natlab_no_bridge_netfilter inet
  local bridge address
  for bridge in srv cli; do
    address=$natlab_server_gateway
    [[ $bridge == cli ]] && address=$natlab_client_gateway
    lab_exec inet ip link add "$bridge" type bridge
    lab_exec inet ip addr add "$address/24" dev "$bridge"
    lab_exec inet ip link set "$bridge" up
  done

  # The STUN and relay host: the engine's side of the veth has no kernel address; the engine
  # answers ARP for its addresses itself.
  lab_ns_add stun
  lab_veth stun eng0 inet p-stun
  lab_exec inet ip link set p-stun master srv up
  lab_exec stun ip link set eng0 up

  lab_ns_add coord
  lab_veth coord eth0 inet p-coord
  lab_exec inet ip link set p-coord master srv up
  lab_exec coord ip addr add "$NATLAB_COORD_IP/24" dev eth0
  lab_exec coord ip link set eth0 up
  lab_exec coord ip route add default via "$natlab_server_gateway"

  lab_wait_carrier inet p-stun
  lab_wait_carrier coord eth0

  # rx_checksum trust: a veth hands the engine UDP packets with partial checksums
  # (environment.md, virtual ports). The clients' public side is off the engine's subnet, so
  # the relay reaches every peer through gateway4, which the neighbour cache resolves.
  NATLAB_ENGINE_CONFIG=$LAB_WORKDIR/natlab-engine.toml
  lab_engine_config "$NATLAB_ENGINE_CONFIG" net_af_packet0,iface=eng0,qpairs=1 net_af_packet0 \
    trust "$NATLAB_STUN_IP" "$NATLAB_STUN_ALT_IP"
  cat >>"$NATLAB_ENGINE_CONFIG" <<EOF
gateway4 = "$natlab_server_gateway"

[relay]
enabled = true
realm = "$NATLAB_RELAY_REALM"
users = [{ name = "$NATLAB_RELAY_USER", password = "$NATLAB_RELAY_PASSWORD" }]
rest_secrets = ["$NATLAB_REST_SECRET"]
EOF
}

natlab_engine_start() {
  [[ -n $NATLAB_ENGINE_CONFIG ]] || lab_fail "natlab_engine_start: run natlab_build first"
  lab_engine_start stun "$NATLAB_ENGINE_CONFIG"
}

natlab_engine_stop() {
  lab_engine_stop
}

natlab_up() {
  natlab_build
  natlab_engine_start
}

natlab_no_bridge_netfilter() {
  if lab_exec "$1" sysctl -n net.bridge.bridge-nf-call-iptables >/dev/null 2>&1; then
    lab_exec "$1" sysctl -qw net.bridge.bridge-nf-call-iptables=0
  fi
}

# natlab_router_rules TYPE WAN_IP TIMEOUT_S HAIRPIN: the router's ruleset, on stdout.
#
# Mapping: `masquerade` keeps the inside port when it is free (EIM while no two LAN hosts use
# one source port at once); `random,fully-random` draws a new port per conntrack entry, that
# is per remote address and port (APDM). Filtering: conntrack alone lets in only replies from
# the exact remote address and port (APDF). Full and address-restricted cones have no target
# in mainline, so each outbound UDP packet records, after the SNAT (priority srcnat + 10), the
# binding conntrack just made, public port -> inside address . port ("ct reply proto-dst" is
# the public port), in a dynamic map that lives as long as the conntrack entry would; new
# inbound UDP on the WAN is then DNATed through it: from any source (full cone), or only from
# an address the inside host has sent to from that public port (address-restricted: a second
# dynamic set of public port . remote address). Only the original direction is recorded: in
# a connection the DNAT opened, the original source is the remote host.
natlab_router_rules() {
  local type=$1 wan=$2 timeout=$3 hairpin=$4
  local masquerade="masquerade" inbound=""
  case $type in
    full-cone) inbound='iifname "wan0" meta l4proto udp dnat ip to udp dport map @cone' ;;
    address-restricted)
      inbound='iifname "wan0" udp dport . ip saddr @contacted dnat ip to udp dport map @cone' ;;
    port-restricted) ;;
    symmetric) masquerade="masquerade random,fully-random" ;;
    *) lab_fail "natlab_router_rules: unknown NAT type $type" ;;
  esac
  cat <<EOF
table ip natlab {
  map cone {
    type inet_service : ipv4_addr . inet_service
    flags dynamic,timeout
    timeout ${timeout}s
  }
  set contacted {
    type inet_service . ipv4_addr
    flags dynamic,timeout
    timeout ${timeout}s
  }
  chain srcnat {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" $masquerade
EOF
  # Hairpinning (RFC 4787 §6): a LAN packet to the public address was DNATed to the inside
  # host its port maps to; it leaves from the public address, so that the answer comes back
  # through the router, and from the sender's mapped port where masquerade kept it.
  [[ $hairpin == 1 ]] && echo "    iifname \"lan0\" oifname \"lan0\" ct status dnat snat ip to $wan"
  cat <<EOF
  }
  chain record {
    type filter hook postrouting priority srcnat + 10; policy accept;
    oifname "wan0" ct direction original meta l4proto udp update @cone { ct reply proto-dst timeout ${timeout}s : ct original ip saddr . ct original proto-src }
EOF
  [[ $type == address-restricted ]] &&
    echo "    oifname \"wan0\" ct direction original meta l4proto udp update @contacted { ct reply proto-dst . ip daddr timeout ${timeout}s }"
  cat <<EOF
  }
  chain dstnat {
    type nat hook prerouting priority dstnat; policy accept;
EOF
  [[ -n $inbound ]] && echo "    $inbound"
  [[ $hairpin == 1 ]] &&
    echo "    iifname \"lan0\" ip daddr $wan meta l4proto udp dnat ip to udp dport map @cone"
  # What comes in on the WAN unasked for is dropped, in input too (pitfall 1), and counted.
  cat <<EOF
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" counter name "unsolicited" drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" ct status dnat accept
    iifname "wan0" counter name "unsolicited" drop
  }
  counter unsolicited {
  }
}
EOF
}

# The path cut of natlab_cut_path: a set of peer addresses, dropped both ways before the
# NAT's own filter (priority filter - 10) in every hook a packet of that namespace crosses.
natlab_cut_rules() {
  cat <<'EOF'
table inet natlab_cut {
  set peers {
    type ipv4_addr
  }
  counter cut {
  }
  chain forward {
    type filter hook forward priority filter - 10; policy accept;
    ip daddr @peers counter name "cut" drop
    ip saddr @peers counter name "cut" drop
  }
  chain input {
    type filter hook input priority filter - 10; policy accept;
    ip saddr @peers counter name "cut" drop
  }
  chain output {
    type filter hook output priority filter - 10; policy accept;
    ip daddr @peers counter name "cut" drop
  }
}
EOF
}

natlab_check_name() {
  [[ $1 =~ ^[a-z0-9]{1,12}$ ]] ||
    lab_fail "natlab: client name '$1': expected 1-12 characters of [a-z0-9]"
  [[ -z ${NATLAB_TYPE[$1]+x} ]] || lab_fail "natlab: client $1 exists already"
}

# On stderr: the functions that print an answer run inside $(...), where a message on stdout
# would become the caller's value; the failed substitution then ends the script (set -e).
natlab_check_client() {
  if [[ -z ${NATLAB_TYPE[$1]+x} ]]; then
    echo "FAIL: natlab: no client '$1' (natlab_add_client $1 TYPE first)" >&2
    exit 1
  fi
}

natlab_add_client() {
  local name=$1 type=${2:-} hairpin=0
  natlab_check_name "$name"
  case ${3:-} in
    "") ;;
    hairpin) hairpin=1 ;;
    *) lab_fail "natlab_add_client $name $type: expected 'hairpin' or nothing, got '$3'" ;;
  esac
  case $type in
    none | full-cone | address-restricted | port-restricted | symmetric) ;;
    *) lab_fail "natlab_add_client $name: NAT type '$type': expected none, full-cone," \
      "address-restricted, port-restricted or symmetric" ;;
  esac
  [[ $type == none && $hairpin == 1 ]] &&
    lab_fail "natlab_add_client $name none hairpin: a client without a NAT has no hairpin"
  natlab_clients=$((natlab_clients + 1))
  local index=$natlab_clients
  ((index <= 240)) || lab_fail "natlab_add_client $name: at most 240 NATs and no-NAT clients"
  local public=198.51.100.$((10 + index)) client=c-$name
  NATLAB_TYPE[$name]=$type
  NATLAB_PUBLIC[$name]=$public

  if [[ $type == none ]]; then
    NATLAB_ROUTER[$name]=""
    NATLAB_LAN[$name]=$public
    lab_ns_add "$client"
    lab_veth "$client" eth0 inet "pc$index"
    lab_exec inet ip link set "pc$index" master cli up
    lab_exec "$client" ip addr add "$public/24" dev eth0
    lab_exec "$client" ip link set eth0 up
    lab_exec "$client" ip route add default via "$natlab_client_gateway"
    natlab_cut_rules | lab_exec "$client" nft -f -
    lab_wait_carrier "$client" eth0
    return
  fi

  local router=r-$name timeout
  NATLAB_INDEX[$router]=$index
  NATLAB_HOSTS[$router]=0
  lab_ns_add "$router"
  lab_exec "$router" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 \
    net.ipv4.conf.default.send_redirects=0
  natlab_no_bridge_netfilter "$router"
  lab_veth "$router" wan0 inet "pr$index"
  lab_exec inet ip link set "pr$index" master cli up
  lab_exec "$router" ip addr add "$public/24" dev wan0
  lab_exec "$router" ip link set wan0 up
  lab_exec "$router" ip route add default via "$natlab_client_gateway"
  # The LAN is a bridge, so that more hosts can join it (natlab_add_lan_client); hairpinned
  # packets leave through the interface they came in on, and a redirect would only confuse.
  lab_exec "$router" ip link add lan0 type bridge
  lab_exec "$router" ip addr add "198.18.$index.1/24" dev lan0
  lab_exec "$router" ip link set lan0 up
  # The mapping lives as long as its conntrack entry would without traffic (pitfall 2).
  timeout=$(lab_exec "$router" sysctl -n net.netfilter.nf_conntrack_udp_timeout 2>/dev/null ||
    echo 30)
  natlab_router_rules "$type" "$public" "$timeout" "$hairpin" >"$LAB_WORKDIR/$router.nft"
  lab_exec "$router" nft -f "$LAB_WORKDIR/$router.nft" ||
    lab_fail "natlab_add_client $name: nft rejected $LAB_WORKDIR/$router.nft"
  natlab_cut_rules | lab_exec "$router" nft -f -
  lab_wait_carrier "$router" wan0
  natlab_attach "$name" "$router"
}

# natlab_attach NAME ROUTER: host c-NAME on ROUTER's LAN, default route through it.
natlab_attach() {
  local name=$1 router=$2 client=c-$1 index=${NATLAB_INDEX[$2]} host
  host=$((10 + NATLAB_HOSTS[$router]))
  ((host <= 254)) || lab_fail "natlab: the LAN of $router is full"
  NATLAB_HOSTS[$router]=$((NATLAB_HOSTS[$router] + 1))
  NATLAB_ROUTER[$name]=$router
  NATLAB_LAN[$name]=198.18.$index.$host
  lab_ns_add "$client"
  lab_veth "$router" "l$host" "$client" eth0
  lab_exec "$router" ip link set "l$host" master lan0 up
  lab_exec "$client" ip addr add "198.18.$index.$host/24" dev eth0
  lab_exec "$client" ip link set eth0 up
  lab_exec "$client" ip route add default via "198.18.$index.1"
  lab_wait_carrier "$client" eth0
}

natlab_add_lan_client() {
  local name=$1 other=${2:-}
  natlab_check_name "$name"
  natlab_check_client "$other"
  [[ -n ${NATLAB_ROUTER[$other]} ]] ||
    lab_fail "natlab_add_lan_client $name $other: $other has no NAT (type none)"
  NATLAB_TYPE[$name]=${NATLAB_TYPE[$other]}
  NATLAB_PUBLIC[$name]=${NATLAB_PUBLIC[$other]}
  natlab_attach "$name" "${NATLAB_ROUTER[$other]}"
}

natlab_ns() {
  natlab_check_client "$1"
  lab_ns "c-$1"
}

natlab_exec() {
  natlab_check_client "$1"
  local client=c-$1
  shift
  lab_exec "$client" "$@"
}

natlab_coord_exec() {
  lab_exec coord "$@"
}

natlab_public_ip() {
  natlab_check_client "$1"
  echo "${NATLAB_PUBLIC[$1]}"
}

natlab_lan_ip() {
  natlab_check_client "$1"
  echo "${NATLAB_LAN[$1]}"
}

natlab_type() {
  natlab_check_client "$1"
  echo "${NATLAB_TYPE[$1]}"
}

# The namespace that holds CLIENT's cut set: its router, or itself without a NAT.
natlab_cut_namespace() {
  natlab_check_client "$1"
  if [[ -n ${NATLAB_ROUTER[$1]} ]]; then
    echo "${NATLAB_ROUTER[$1]}"
  else
    echo "c-$1"
  fi
}

natlab_check_ipv4() {
  [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] ||
    lab_fail "natlab: peer address '$1': expected an IPv4 address such as 198.51.100.12"
}

natlab_cut_path() {
  local where
  natlab_check_client "$1"
  where=$(natlab_cut_namespace "$1")
  natlab_check_ipv4 "${2:-}"
  lab_exec "$where" nft add element inet natlab_cut peers "{ $2 }" ||
    lab_fail "natlab_cut_path $1 $2: nft refused it"
}

natlab_restore_path() {
  local where
  natlab_check_client "$1"
  where=$(natlab_cut_namespace "$1")
  natlab_check_ipv4 "${2:-}"
  lab_exec "$where" nft delete element inet natlab_cut peers "{ $2 }" ||
    lab_fail "natlab_restore_path $1 $2: no cut path to $2 (natlab_cut_path first)"
}

# The packets count of a named counter in a table of a namespace.
natlab_counter() {
  lab_exec "$1" nft list counter "$2" "$3" "$4" |
    sed -n 's/.*packets \([0-9]*\) bytes.*/\1/p'
}

natlab_cut_drops() {
  local where
  natlab_check_client "$1"
  where=$(natlab_cut_namespace "$1")
  natlab_counter "$where" inet natlab_cut cut
}

natlab_router_drops() {
  natlab_check_client "$1"
  [[ -n ${NATLAB_ROUTER[$1]} ]] || lab_fail "natlab_router_drops $1: $1 has no NAT"
  natlab_counter "${NATLAB_ROUTER[$1]}" ip natlab unsolicited
}

natlab_coord_pid=""
natlab_coord_start() {
  local punchcoord=${1:?natlab_coord_start: the punchcoord executable} _
  printf '%s' "$NATLAB_REST_SECRET" >"$LAB_WORKDIR/rest-secret"
  # SFU tokens signed with the secret the lab's SFU nodes share (natlab_sfu_node_add).
  printf '[sfu]\ntoken_secret = "%s"\n' "$NATLAB_SFU_SECRET" >"$LAB_WORKDIR/punchcoord.toml"
  ip netns exec "$(lab_ns coord)" "$punchcoord" --config "$LAB_WORKDIR/punchcoord.toml" \
    --listen "$NATLAB_COORD" \
    --stun "$NATLAB_STUN_IP:$NATLAB_STUN_PORT" --relay "$NATLAB_RELAY_IP:$NATLAB_RELAY_PORT" \
    --rest-secret-file "$LAB_WORKDIR/rest-secret" >"$LAB_WORKDIR/punchcoord.txt" 2>&1 &
  natlab_coord_pid=$!
  for _ in $(seq 100); do
    kill -0 "$natlab_coord_pid" 2>/dev/null ||
      lab_fail "punchcoord exited: $(cat "$LAB_WORKDIR/punchcoord.txt")"
    if ip netns exec "$(lab_ns coord)" bash -c \
      "exec 3<>/dev/tcp/$NATLAB_COORD_IP/${NATLAB_COORD##*:}" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  lab_fail "punchcoord does not accept connections on $NATLAB_COORD after 10 s"
}

natlab_coord_stop() {
  [[ -n $natlab_coord_pid ]] || return 0
  local status=0
  kill -TERM "$natlab_coord_pid" 2>/dev/null || true
  wait "$natlab_coord_pid" || status=$?
  natlab_coord_pid=""
  sed 's/^/  punchcoord | /' "$LAB_WORKDIR/punchcoord.txt" | tail -20
  return "$status"
}

NATLAB_CALL_PIDS=()
natlab_call_start() {
  local room=$1 client=$2 punch=$3
  shift 3
  natlab_check_client "$client"
  ip netns exec "$(natlab_ns "$client")" timeout 60 "$punch" call --json \
    --coord "$NATLAB_COORD" --room "$room" --name "$client" "$@" \
    >"$LAB_WORKDIR/$room-$client.json" 2>"$LAB_WORKDIR/$room-$client.err" &
  NATLAB_CALL_PIDS+=($!)
}

natlab_call_wait() {
  local pid
  for pid in "${NATLAB_CALL_PIDS[@]}"; do wait "$pid" || true; done
  NATLAB_CALL_PIDS=()
}

natlab_call_field() {
  jq -r "$3 // \"-\"" "$LAB_WORKDIR/$1-$2.json" 2>/dev/null || echo -
}

# SFU nodes (issue 7): a second punchlined per node. Each busy-polls lcore 1 beside the STUN
# and relay engine's worker; on these 2-vCPU machines the two share the core, which costs
# latency (a scheduler time slice), not correctness: the lab starts one or two nodes at a time.
declare -A NATLAB_SFU_PID=()  # node -> punchlined's PID
declare -A NATLAB_SFU_LOG=()  # node -> its output
natlab_nodes=0
natlab_node_gateway=192.0.2.1
natlab_sfu_node_add() {
  local name=$1 type=${2:-} host=c-$1 index gateway address mgmt config
  if [[ $type == none ]]; then
    # A public node sits on a bridge of its own, 192.0.2.0/24 (TEST-NET-1): the engine reaches
    # only its gateway (the neighbour cache resolves gateways, not on-link hosts), so every
    # client, router and server must be off its subnet.
    natlab_check_name "$name"
    natlab_nodes=$((natlab_nodes + 1))
    index=$natlab_nodes
    ((index <= 100)) || lab_fail "natlab_sfu_node_add $name: at most 100 public nodes"
    if ((index == 1)); then
      lab_exec inet ip link add nod type bridge
      lab_exec inet ip addr add "$natlab_node_gateway/24" dev nod
      lab_exec inet ip link set nod up
    fi
    address=192.0.2.$((10 + index))
    mgmt=192.0.2.$((110 + index))
    gateway=$natlab_node_gateway
    NATLAB_TYPE[$name]=none
    NATLAB_PUBLIC[$name]=$address
    NATLAB_LAN[$name]=$address
    NATLAB_ROUTER[$name]=""
    lab_ns_add "$host"
    lab_veth "$host" eth0 inet "pn$index"
    lab_exec inet ip link set "pn$index" master nod up
    lab_exec "$host" ip link set eth0 up
    lab_veth "$host" mgmt0 inet "pm$index"
    lab_exec inet ip link set "pm$index" master nod up
  else
    # Behind a NAT: a host placed as a client of TYPE would be, whose eth0 becomes the
    # engine's (no kernel address); the management link joins the same LAN.
    natlab_add_client "$name" "$type"
    local router=${NATLAB_ROUTER[$name]} h
    index=${NATLAB_INDEX[$router]}
    address=${NATLAB_LAN[$name]}
    gateway=198.18.$index.1
    lab_exec "$host" ip addr flush dev eth0
    h=$((10 + NATLAB_HOSTS[$router]))
    NATLAB_HOSTS[$router]=$((NATLAB_HOSTS[$router] + 1))
    mgmt=198.18.$index.$h
    lab_veth "$router" "m$h" "$host" mgmt0
    lab_exec "$router" ip link set "m$h" master lan0 up
  fi
  # The kernel answers ARP only for addresses on the interface asked (arp_ignore 1), so that
  # mgmt0's address is never claimed with eth0's MAC, nor eth0's (the engine's) by mgmt0.
  lab_exec "$host" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.default.arp_ignore=1
  lab_exec "$host" ip addr add "$mgmt/24" dev mgmt0
  lab_exec "$host" ip link set mgmt0 up
  lab_exec "$host" ip route replace default via "$gateway" dev mgmt0
  lab_wait_carrier "$host" mgmt0
  lab_wait_carrier "$host" eth0

  mkdir -p "$LAB_WORKDIR/sfu-$name"
  config=$LAB_WORKDIR/sfu-$name/punchlined.toml
  lab_engine_config "$config" net_af_packet0,iface=eth0,qpairs=1 net_af_packet0 trust "$address" ""
  # One address: no RFC 5780 alternate on a node (lab_engine_config wrote two).
  sed -i "s/^ipv4 = .*/ipv4 = [\"$address\"]/; /^alternate_port = /s/=.*/= 0/" "$config"
  cat >>"$config" <<EOF
gateway4 = "$gateway"

[sfu]
port = $NATLAB_SFU_PORT
token_secrets = ["$NATLAB_SFU_SECRET"]

[node]
coordinator = "$NATLAB_COORD"
stun_server = "$NATLAB_STUN_IP:$NATLAB_STUN_PORT"
EOF
}

natlab_sfu_node_start() {
  local name=$1 region=${2:-} log pid _
  natlab_check_client "$name"
  [[ -n $region ]] && sed -i "/^\[node\]/a region = \"$region\"" \
    "$LAB_WORKDIR/sfu-$name/punchlined.toml"
  log=$LAB_WORKDIR/sfu-$name/punchlined.log
  : >"$log"
  ip netns exec "$(lab_ns "c-$name")" "$PUNCHLINED" --config \
    "$LAB_WORKDIR/sfu-$name/punchlined.toml" >"$log" 2>&1 &
  pid=$!
  NATLAB_SFU_PID[$name]=$pid
  NATLAB_SFU_LOG[$name]=$log
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { cat "$log"; lab_fail "SFU node $name: punchlined exited"; }
    [[ -S $LAB_WORKDIR/sfu-$name/punchlined.sock ]] && return 0
    sleep 0.1
  done
  cat "$log"
  lab_fail "SFU node $name: punchlined not running after 10 s"
}

natlab_sfu_node_wait_registered() {
  local name=$1 seconds=${2:-20} _
  for _ in $(seq $((seconds * 10))); do
    grep -q 'node: registered with punchcoord' "${NATLAB_SFU_LOG[$name]}" && return 0
    kill -0 "${NATLAB_SFU_PID[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  sed 's/^/  | /' "${NATLAB_SFU_LOG[$name]}"
  lab_fail "SFU node $name: not registered with punchcoord after $seconds s"
}

natlab_sfu_node_ctl() {
  local name=$1
  shift
  "$(dirname "$PUNCHLINED")/punchctl" --socket "$LAB_WORKDIR/sfu-$name/punchlined.sock" "$@"
}

natlab_sfu_node_stop() {
  local name=$1 pid=${NATLAB_SFU_PID[$1]:-} log=${NATLAB_SFU_LOG[$1]:-} status=0
  [[ -n $pid ]] || return 0
  NATLAB_SFU_PID[$name]=""
  kill -INT "$pid" 2>/dev/null || true
  if ! lab_poll 100 eval "! kill -0 $pid 2>/dev/null"; then
    kill -KILL "$pid" 2>/dev/null || true
    echo "SFU node $name: punchlined $pid did not stop within 10 s of SIGINT; killed"
    status=1
  fi
  wait "$pid" 2>/dev/null || status=$?
  echo "SFU node $name: punchlined $pid stopped (exit $status):"
  sed 's/^/  | /' "$log"
  [[ $status -eq 0 ]] || return 1
  grep -Eq '^total .*\| conserved( |$)' "$log" && ! grep -q 'NOT CONSERVED' "$log"
}
