#!/usr/bin/env bash
# tests/engine/interop/stunclient_af_packet_test.sh PUNCHLINED — coturn's turnutils_stunclient
# against punchlined on net_af_packet over a veth pair between two namespaces.
#
# Passes iff, for a plain and an RFC 5780 (-f) run against 203.0.113.2:3478:
#   - the reflexive address is the client's own 203.0.113.10 (RFC 8489 §14.2, no NAT between);
#   - the first answer comes from 203.0.113.2:3478 and names OTHER-ADDRESS 203.0.113.3:3479
#     (RFC 5780 §6.1);
#   - the CHANGE-REQUEST answer ("RFC 5780 response 2") has RESPONSE-ORIGIN 203.0.113.3:3479;
# and punchlined, stopped with SIGINT, prints counters that say "conserved" with stun ok > 0.
# Exit 77 (skipped) when not root or when coturn is not installed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/lab.sh"

lab_init "${1:?usage: stunclient_af_packet_test.sh PATH_TO_PUNCHLINED}" \
  turnutils_stunclient timeout stdbuf
lab_public_pair

failures=0

for mode in plain rfc5780; do
  output=$LAB_WORKDIR/stunclient-$mode.txt
  if [[ $mode == plain ]]; then
    lab_stunclient c "$output" -p 3478 203.0.113.2
  else
    lab_stunclient c "$output" -f -p 3478 203.0.113.2
  fi
  # coturn prints "0: : IPv4. UDP reflexive addr: 203.0.113.10:40527".
  check "$mode: reflexive address is the client's 203.0.113.10" "$output" \
    'UDP reflexive addr: 203\.0\.113\.10:[0-9]+$'
  if grep -E 'UDP reflexive addr:' "$output" | grep -Evq 'addr: 203\.0\.113\.10:[0-9]+$'; then
    echo "FAIL: $mode: a reflexive address other than 203.0.113.10"
    failures=$((failures + 1))
  fi
  if [[ $mode == rfc5780 ]]; then
    answer "$output" 1 >"$output.1"
    answer "$output" 2 >"$output.2"
    check "rfc5780: Other addr 203.0.113.3:3479" "$output.1" 'Other addr: (: )?203\.0\.113\.3:3479$'
    check "rfc5780: first answer from 203.0.113.2:3478" "$output.1" \
      'Response origin: (: )?203\.0\.113\.2:3478$'
    check "rfc5780: CHANGE-REQUEST answer from 203.0.113.3:3479" "$output.2" \
      'Response origin: (: )?203\.0\.113\.3:3479$'
    check "rfc5780: CHANGE-REQUEST answer's reflexive address" "$output.2" \
      'UDP reflexive addr: 203\.0\.113\.10:[0-9]+$'
  fi
done

lab_engine_stop_checked

lab_verdict
