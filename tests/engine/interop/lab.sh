# shellcheck shell=bash
# tests/engine/interop/lab.sh — sourced, not run: the network lab the engine's interop tests
# share. Network namespaces with a per-run prefix, veth pairs between them, punchlined started
# with a generated configuration, and one cleanup trap that removes all of it on every exit path.
#
#   lab_init PUNCHLINED [COMMAND...]
#       Exits 77 (skipped) unless root and unless every COMMAND is installed; sets PUNCHLINED,
#       LAB_WORKDIR (a temporary folder) and the EXIT/INT/TERM traps. Call it first.
#   lab_ns_add NAME            creates namespace ${LAB_PREFIX}NAME: lo up, rp_filter 0, IPv6 off
#   lab_ns NAME                prints the namespace's full name
#   lab_exec NAME COMMAND...   runs COMMAND inside namespace NAME
#   lab_exec_wait NAME COMMAND...
#                              the same, but COMMAND runs as a background job that the script
#                              waits for: a signal to the script then runs the cleanup at once
#                              (bash runs traps only once a foreground command has ended)
#   lab_veth NS1 IF1 NS2 IF2   a veth pair, IF1 in NS1 and IF2 in NS2, both down
#   lab_wait_carrier NS IF     polls (at most 5 s) until IF in NS reports LOWER_UP
#   lab_engine_config FILE VDEV DEVICE RX_CHECKSUM IPV4_PRIMARY IPV4_ALTERNATE
#       writes a punchlined configuration: one worker (lcore 1), one port, STUN on 3478/3479
#   lab_engine_start NS CONFIG starts punchlined in NS; returns once it prints "running" (at
#                              most 10 s); sets LAB_ENGINE_PID and LAB_ENGINE_LOG
#   lab_engine_stop            SIGINT, waits (at most 10 s), prints the counters; fails unless
#                              every counters line says "conserved" (rx = tx + handed off + drops)
#   lab_engine_counter NAME    prints a total counter from the stopped engine's log: "stun ok",
#                              "stun err", "dropped", "rx", "tx"
#   lab_engine_stop_checked    lab_engine_stop, and "stun ok" > 0; counts failures in $failures
#   lab_verdict                exits 1 with the count of failed checks, or prints PASS
#   check WHAT FILE PATTERN    "ok: WHAT" if a line of FILE matches PATTERN (ERE), else FAIL
#                              and one more in $failures
#   expect_status WHAT WANT GOT
#                              "ok: WHAT exits GOT" if GOT (an exit status) is WANT, else FAIL
#                              and one more in $failures
#   answer FILE N              turnutils_stunclient's "RFC 5780 response N" block from FILE
#   lab_public_pair            the lab of the af_packet tests: namespace "e" runs punchlined on
#                              net_af_packet over veth eng0 (203.0.113.2, alternate .3, ports
#                              3478/3479, rx_checksum trust); namespace "c" holds the peer veth
#                              cli0 with 203.0.113.10/24
#   lab_public_link            lab_public_pair's namespaces and veth, the engine not started
#   lab_relay_config FILE      lab_public_pair's engine configuration for the relay tests, in
#                              FILE: 203.0.113.10 (the client) as gateway4, the next hop to
#                              peers behind it, and a [relay] table begun (enabled, realm
#                              "punchline.test") for the test to append its keys to
#   lab_stunclient NS OUTPUT ARG...
#                              coturn's turnutils_stunclient ARG... in NS, its output in OUTPUT;
#                              returns once it has printed its last RFC 5780 answer (at most 3 s)
#   lab_poll TENTHS COMMAND... runs COMMAND every 0.1 s until it succeeds, at most TENTHS times
#   lab_fail MESSAGE...        prints "FAIL: MESSAGE" and exits 1 (the trap cleans up)
#   lab_link_mac NS IF         prints IF's MAC address in NS (from `ip -j link`)
#   lab_engine_report FILE     SIGUSR1 to the running engine; writes the lines it printed in
#                              answer (counters, then the neighbour table) to FILE once the last
#                              ("neighbour frames: ...") is out (at most 5 s)
#
# Environment rules (docs: /work/shared/environment.md): traffic stays inside namespaces this
# run creates, which are named pl<pid>-<name> so that parallel runs do not collide; every
# process inside them is killed by PID (`ip netns pids`) before `ip netns del`, because a
# namespace with a process in it outlives its name.

LAB_PREFIX="pl$$-"
LAB_NAMESPACES=()
LAB_WORKDIR=""
LAB_ENGINE_PID=""
LAB_ENGINE_LOG=""
LAB_ENGINE_COUNT=0
PUNCHLINED=""

lab_fail() {
  echo "FAIL: $*"
  exit 1
}

lab_init() {
  PUNCHLINED=${1:?lab_init: the punchlined executable}
  shift
  if [[ $EUID -ne 0 ]]; then
    echo "SKIP: needs root (network namespaces, veth, nftables)"
    exit 77
  fi
  local command
  for command in ip "$@"; do
    if ! command -v "$command" >/dev/null 2>&1; then
      echo "SKIP: $command is not installed (scripts/setup installs the interop peers)"
      exit 77
    fi
  done
  [[ -x $PUNCHLINED ]] || lab_fail "$PUNCHLINED is not an executable (ninja -C build control/punchlined)"
  LAB_WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/punchline-interop.XXXXXX")
  # The test's own stdout and stderr, kept on fds 7 and 8: a signal can run the cleanup while a
  # command's output is redirected to a file in LAB_WORKDIR, which the cleanup deletes.
  exec 7>&1 8>&2
  trap lab_cleanup EXIT
  # A signal ends the script through exit, so that the EXIT trap runs exactly once.
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

lab_ns() {
  echo "${LAB_PREFIX}$1"
}

lab_exec() {
  local ns
  ns=$(lab_ns "$1")
  shift
  ip netns exec "$ns" "$@"
}

lab_exec_wait() {
  local ns
  ns=$(lab_ns "$1")
  shift
  ip netns exec "$ns" "$@" &
  wait "$!"
}

lab_ns_add() {
  local ns
  ns=$(lab_ns "$1")
  # Registered before it exists, so that a failure half-way still removes it.
  LAB_NAMESPACES+=("$ns")
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  # natlab.md: rp_filter off everywhere. IPv6 off on every interface created from here on: the
  # kernel's router solicitations, DAD and MLD reports would only add noise to the counters.
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

lab_veth() {
  local ns1 ns2
  ns1=$(lab_ns "$1")
  ns2=$(lab_ns "$3")
  # Created directly inside the two namespaces: no name ever appears in the root namespace.
  ip link add "$2" netns "$ns1" type veth peer name "$4" netns "$ns2"
}

lab_has_carrier() {
  ip -n "$(lab_ns "$1")" link show dev "$2" 2>/dev/null | grep -q LOWER_UP
}

lab_wait_carrier() {
  lab_poll 50 lab_has_carrier "$1" "$2" || lab_fail "$2 in $(lab_ns "$1") has no carrier after 5 s"
}

lab_poll() {
  local tries=$1 i
  shift
  for ((i = 0; i < tries; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

lab_engine_config() {
  local file=$1 vdev=$2 device=$3 rx_checksum=$4 primary=$5 alternate=$6
  cat >"$file" <<EOF
# Generated by tests/engine/interop/lab.sh for one test run.
# The management socket beside this file: not the default path, which another engine on this
# machine may hold. First: tests append keys to the [[port]] table this file ends with.
[control]
socket = "$(dirname "$file")/punchlined.sock"

[eal]
args = ["-l", "0-1", "--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry",
        "--log-level=lib.eal:error", "--vdev=$vdev"]

[engine]
workers = [1]
mbufs = 4095
burst = 32

[stun]
enabled = true
port = 3478
alternate_port = 3479
software = "punchline"

[[port]]
device = "$device"
ipv4 = ["$primary", "$alternate"]
prefix4 = 24
rx_checksum = "$rx_checksum"
EOF
}

lab_engine_running() {
  grep -q '^punchlined: running' "$LAB_ENGINE_LOG"
}

lab_engine_start() {
  local ns config=$2
  ns=$(lab_ns "$1")
  LAB_ENGINE_COUNT=$((LAB_ENGINE_COUNT + 1))
  LAB_ENGINE_LOG=$LAB_WORKDIR/engine-$LAB_ENGINE_COUNT.log
  # Created here: the background job's redirection may open it only after the first poll.
  : >"$LAB_ENGINE_LOG"
  # `ip netns exec` execs punchlined after setns: $! is the engine's own PID.
  ip netns exec "$ns" "$PUNCHLINED" --config "$config" >"$LAB_ENGINE_LOG" 2>&1 &
  LAB_ENGINE_PID=$!
  local i
  for ((i = 0; i < 100; i++)); do
    lab_engine_running && break
    if ! kill -0 "$LAB_ENGINE_PID" 2>/dev/null; then
      echo "punchlined exited during start-up; its output:"
      cat "$LAB_ENGINE_LOG"
      LAB_ENGINE_PID=""
      lab_fail "punchlined did not start (config $config)"
    fi
    sleep 0.1
  done
  lab_engine_running || { cat "$LAB_ENGINE_LOG"; lab_fail "punchlined not running after 10 s"; }
  # The relay drops a datagram whose next hop is not resolved yet (relay_no_route, counted):
  # a test's flow starts once every configured gateway is, as an operator's traffic would
  # after start-up. One that stays unresolved is the test's to check, not a failure here.
  local gateway
  for gateway in $(sed -n 's/^gateway[46] = "\(.*\)"$/\1/p' "$config"); do
    lab_poll 100 grep -qF "gateway $gateway resolved" "$LAB_ENGINE_LOG" ||
      echo "punchlined: gateway $gateway not resolved after 10 s"
  done
  echo "punchlined $LAB_ENGINE_PID running in $ns:"
  sed 's/^/  | /' "$LAB_ENGINE_LOG"
}

lab_engine_stop() {
  local pid=$LAB_ENGINE_PID status=0
  [[ -n $pid ]] || return 0
  LAB_ENGINE_PID=""
  kill -INT "$pid" 2>/dev/null || true
  if ! lab_poll 100 eval "! kill -0 $pid 2>/dev/null"; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "punchlined $pid did not stop within 10 s of SIGINT; killed. Its output:"
    cat "$LAB_ENGINE_LOG"
    return 1
  fi
  wait "$pid" || status=$?
  echo "punchlined $pid stopped (exit $status):"
  sed 's/^/  | /' "$LAB_ENGINE_LOG"
  [[ $status -eq 0 ]] || { echo "punchlined exited $status after SIGINT"; return 1; }
  grep -Eq '^total .*\| conserved( |$)' "$LAB_ENGINE_LOG" || { echo "no conserved total line"; return 1; }
  if grep -q 'NOT CONSERVED' "$LAB_ENGINE_LOG"; then
    echo "a counters line is NOT CONSERVED"
    return 1
  fi
}

lab_engine_counter() {
  local line
  line=$(grep '^total ' "$LAB_ENGINE_LOG" | tail -n 1)
  case $1 in
    "stun ok") sed -n 's/.*| stun ok \([0-9]*\) err.*/\1/p' <<<"$line" ;;
    "stun err") sed -n 's/.*| stun ok [0-9]* err \([0-9]*\) .*/\1/p' <<<"$line" ;;
    dropped) sed -n 's/.*| dropped \([0-9]*\) .*/\1/p' <<<"$line" ;;
    rx) sed -n 's/^total *rx \([0-9]*\) pkts.*/\1/p' <<<"$line" ;;
    tx) sed -n 's/.*| tx \([0-9]*\) pkts.*/\1/p' <<<"$line" ;;
    *) echo "lab_engine_counter: unknown counter $1" >&2; return 1 ;;
  esac
}

lab_public_link() {
  lab_ns_add e
  lab_ns_add c
  lab_veth e eng0 c cli0
  # The engine's side has no address: the kernel in "e" must neither answer ARP nor ICMP for
  # 203.0.113.2/.3; the engine does, through its AF_PACKET socket.
  lab_exec e ip link set eng0 up
  lab_exec c ip addr add 203.0.113.10/24 dev cli0
  lab_exec c ip link set cli0 up
  lab_wait_carrier c cli0
}

# lab_public_link's engine configuration: rx_checksum = "trust", since a veth hands the engine
# UDP packets with partial checksums (environment.md, virtual ports).
lab_public_config() {
  lab_engine_config "$1" net_af_packet0,iface=eng0,qpairs=1 net_af_packet0 trust \
    203.0.113.2 203.0.113.3
}

lab_public_pair() {
  lab_public_link
  lab_public_config "$LAB_WORKDIR/engine.toml"
  lab_engine_start e "$LAB_WORKDIR/engine.toml"
}

lab_relay_config() {
  lab_public_config "$1"
  # Peers off the engine's subnet (behind the client) go through the gateway, which the
  # neighbour cache resolves: the kernel in "c" answers its ARP and delivers to them.
  sed -i 's/^prefix4 = 24$/prefix4 = 24\ngateway4 = "203.0.113.10"/' "$1"
  printf '\n[relay]\nenabled = true\nrealm = "punchline.test"\n' >>"$1"
}

# True once turnutils_stunclient's output holds the reflexive address of its second RFC 5780
# answer (the CHANGE-REQUEST one): everything the tests judge has been printed by then.
lab_stunclient_done() {
  awk '/RFC 5780 response 2/ { second = 1 } second && /UDP reflexive addr/ { done = 1 }
    END { exit !done }' "$1"
}

lab_stunclient() {
  local ns=$1 output=$2 pid i
  shift 2
  # turnutils_stunclient prints its answers, then sends a request padded past the MTU and
  # waits for its answer forever. On net_tap the engine drops the request's IP fragments
  # (ip_fragment); on net_af_packet the kernel reassembles them (DPDK's PMD asks for
  # PACKET_FANOUT_FLAG_DEFRAG), the engine answers with an equally padded response in one
  # frame larger than the MTU, and the kernel discards that frame at the AF_PACKET socket.
  # Hence `timeout 3`, line-buffered output so that nothing printed is lost, and the output
  # judged rather than the exit code. Once the last needed line is in, the client is stopped
  # by PID ($! is timeout's PID: `ip netns exec` execs it, and it passes SIGTERM on).
  : >"$output"
  ip netns exec "$(lab_ns "$ns")" timeout 3 stdbuf -oL turnutils_stunclient "$@" >"$output" 2>&1 &
  pid=$!
  for ((i = 0; i < 30; i++)); do
    lab_stunclient_done "$output" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "\$ turnutils_stunclient $*"
  sed -e '/^$/d' -e '/^=*$/d' -e 's/^/  | /' "$output"
}

lab_ns_empty() {
  [[ -z $(ip netns pids "$1" 2>/dev/null) ]]
}

lab_cleanup() {
  local status=$? ns pid i
  trap - EXIT INT TERM
  exec 1>&7 2>&8
  if [[ -n $LAB_ENGINE_PID ]] && kill -0 "$LAB_ENGINE_PID" 2>/dev/null; then
    kill -INT "$LAB_ENGINE_PID" 2>/dev/null || true
    lab_poll 50 eval "! kill -0 $LAB_ENGINE_PID 2>/dev/null" || kill -KILL "$LAB_ENGINE_PID" 2>/dev/null || true
    wait "$LAB_ENGINE_PID" 2>/dev/null || true
    if [[ $status -ne 0 && -f $LAB_ENGINE_LOG ]]; then
      echo "punchlined's output:"
      sed 's/^/  | /' "$LAB_ENGINE_LOG"
    fi
  fi
  for ((i = ${#LAB_NAMESPACES[@]} - 1; i >= 0; i--)); do
    ns=${LAB_NAMESPACES[i]}
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill -KILL "$pid" 2>/dev/null || true
    done
    lab_poll 50 lab_ns_empty "$ns" || echo "warning: processes still in $ns after 5 s"
    ip netns del "$ns" 2>/dev/null || true
  done
  [[ -n $LAB_WORKDIR ]] && rm -rf -- "$LAB_WORKDIR"
  exit "$status"
}

# Stops the engine and checks what every test checks of it: the counters are conserved and
# it answered at least one STUN request. Adds to $failures.
lab_engine_stop_checked() {
  if ! lab_engine_stop; then
    echo "FAIL: punchlined's counters"
    failures=$((failures + 1))
  fi
  local stun_ok
  stun_ok=$(lab_engine_counter "stun ok")
  if [[ ${stun_ok:-0} -gt 0 ]]; then
    echo "ok: stun ok $stun_ok"
  else
    echo "FAIL: stun ok is ${stun_ok:-missing}"
    failures=$((failures + 1))
  fi
}

# Ends a test: exit 1 with the number of failed checks ($failures), else PASS.
lab_verdict() {
  if [[ $failures -ne 0 ]]; then
    echo "FAIL: $failures check(s)"
    exit 1
  fi
  echo "PASS"
}

# A check of a program's exit status: counted in $failures when it is not the one wanted.
expect_status() {
  local what=$1 want=$2 got=$3
  if [[ $got -eq $want ]]; then
    echo "ok: $what exits $got"
  else
    echo "FAIL: $what exits $got, expected $want"
    failures=$((failures + 1))
  fi
}

# A check of a client's output: counted in $failures when PATTERN matches no line of FILE.
check() {
  local what=$1 output=$2 pattern=$3
  if grep -Eq "$pattern" "$output"; then
    echo "ok: $what"
  else
    echo "FAIL: $what (no line matching /$pattern/)"
    failures=$((failures + 1))
  fi
}

# The lines after "RFC 5780 response N" up to the next blank line: one answer's attributes.
answer() {
  awk -v n="RFC 5780 response $2" '$0 == n { on = 1; next } on && /^$/ { exit } on' "$1"
}

lab_link_mac() {
  ip -n "$(lab_ns "$1")" -j link show dev "$2" |
    /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["address"])'
}

lab_engine_report() {
  local file=$1 lines reports
  lines=$(wc -l <"$LAB_ENGINE_LOG")
  reports=$(grep -c '^neighbour frames: ' "$LAB_ENGINE_LOG" || true)
  kill -USR1 "$LAB_ENGINE_PID" || return 1
  lab_poll 50 eval "[[ \$(grep -c '^neighbour frames: ' \"\$LAB_ENGINE_LOG\") -gt $reports ]]" ||
    return 1
  # Everything printed since the signal: the report, and any line the engine logged meanwhile.
  tail -n +"$((lines + 1))" "$LAB_ENGINE_LOG" >"$file"
}
