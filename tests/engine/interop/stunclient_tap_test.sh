#!/usr/bin/env bash
# tests/engine/interop/stunclient_tap_test.sh PUNCHLINED [CONFIG] — coturn's
# turnutils_stunclient against punchlined running the demo's own configuration
# (engine/punchlined.toml, the default for CONFIG): net_tap0 with the TAP punch0, 198.18.0.2 and
# alternate 198.18.0.3, ports 3478/3479, rx_checksum verify. As scripts/demo does, the engine
# runs in a namespace of this test's own, so the TAP appears there, and the kernel side of the
# TAP gets 198.18.0.1/24.
#
# Passes iff:
#   - plain, to 198.18.0.2:3478: reflexive address 198.18.0.1;
#   - RFC 5780 (-f), to 198.18.0.2:3478: Other addr 198.18.0.3:3479, and the CHANGE-REQUEST
#     answer's Response origin is 198.18.0.3:3479;
#   - to the alternate 198.18.0.3:3479: answered from 198.18.0.3:3479, reflexive 198.18.0.1,
#     Other addr 198.18.0.2:3478 (RFC 5780 §7.4: relative to where the request arrived);
#   - punchlined, stopped with SIGINT, prints "conserved" counters with stun ok > 0.
# Exit 77 (skipped) when not root or when coturn is not installed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/lab.sh"

lab_init "${1:?usage: stunclient_tap_test.sh PATH_TO_PUNCHLINED [CONFIG]}" \
  turnutils_stunclient timeout stdbuf
config=${2:-$here/../../../engine/punchlined.toml}
[[ -r $config ]] || lab_fail "cannot read the configuration $config"

lab_ns_add t
# punchlined creates the TAP in its own namespace; "running" is printed after the port started.
lab_engine_start t "$config"
lab_exec t ip link show punch0 >/dev/null || lab_fail "no interface punch0 in $(lab_ns t)"
lab_exec t ip addr add 198.18.0.1/24 dev punch0
lab_exec t ip link set punch0 up
lab_wait_carrier t punch0

failures=0

output=$LAB_WORKDIR/plain.txt
lab_stunclient t "$output" -p 3478 198.18.0.2
check "plain: reflexive address 198.18.0.1" "$output" 'UDP reflexive addr: 198\.18\.0\.1:[0-9]+$'

output=$LAB_WORKDIR/rfc5780.txt
lab_stunclient t "$output" -f -p 3478 198.18.0.2
answer "$output" 1 >"$output.1"
answer "$output" 2 >"$output.2"
check "rfc5780: reflexive address 198.18.0.1" "$output.1" 'UDP reflexive addr: 198\.18\.0\.1:[0-9]+$'
check "rfc5780: first answer from 198.18.0.2:3478" "$output.1" \
  'Response origin: (: )?198\.18\.0\.2:3478$'
check "rfc5780: Other addr 198.18.0.3:3479" "$output.1" 'Other addr: (: )?198\.18\.0\.3:3479$'
check "rfc5780: CHANGE-REQUEST answer from 198.18.0.3:3479" "$output.2" \
  'Response origin: (: )?198\.18\.0\.3:3479$'

output=$LAB_WORKDIR/alternate.txt
lab_stunclient t "$output" -p 3479 198.18.0.3
answer "$output" 1 >"$output.1"
answer "$output" 2 >"$output.2"
check "alternate: reflexive address 198.18.0.1" "$output.1" \
  'UDP reflexive addr: 198\.18\.0\.1:[0-9]+$'
check "alternate: answered from 198.18.0.3:3479" "$output.1" \
  'Response origin: (: )?198\.18\.0\.3:3479$'
check "alternate: Other addr 198.18.0.2:3478" "$output.1" 'Other addr: (: )?198\.18\.0\.2:3478$'
check "alternate: CHANGE-REQUEST answer from 198.18.0.2:3478" "$output.2" \
  'Response origin: (: )?198\.18\.0\.2:3478$'

lab_engine_stop_checked

lab_verdict
