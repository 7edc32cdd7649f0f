#!/usr/bin/env bash
# tests/nat/probe_interop_test.sh PUNCHLINED PUNCH — `punch probe` against punchlined's STUN
# role (RFC 5780: two addresses, two ports) over a veth, no NAT between them, and coturn's
# turnutils_natdiscovery from the same namespace as the second opinion.
#
#   namespace e   punchlined on net_af_packet over eng0: 203.0.113.2 and .3 (alternate), ports
#                 3478/3479 (tests/engine/interop/lab.sh, lab_public_pair)
#   namespace c   the client: cli0 203.0.113.10/24
#
# Checks:
#   - JSON: the nearest is the engine (a second --stun, 203.0.113.99, has nobody behind it and
#     must be reported as a timeout, not hold up the answer), the reflexive address is the
#     client's own, mapping no_nat, filtering endpoint_independent (the CHANGE-REQUEST answers
#     arrive from 203.0.113.3:3479 and 203.0.113.2:3479, as RFC 5780 §4.4 asks), hairpinning
#     supported, NAT type none, exit 0
#   - the human report says "no NAT"
#   - turnutils_natdiscovery agrees: endpoint-independent mapping and filtering
#   - a server without OTHER-ADDRESS (the engine's alternate port switched off) gives the
#     reflexive address and exit 3 (type unknown); nobody answering gives exit 1; a bad
#     --stun exit 2 with the argument named
# Exit 77 (skipped) when not root or when coturn is not installed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/../engine/interop/lab.sh"

punch=${2:?usage: probe_interop_test.sh PATH_TO_PUNCHLINED PATH_TO_PUNCH}
lab_init "${1:?usage: probe_interop_test.sh PATH_TO_PUNCHLINED PATH_TO_PUNCH}" \
  turnutils_natdiscovery timeout
[[ -x $punch ]] || lab_fail "$punch is not an executable (ninja -C build nat/punch)"

failures=0
json_field() {
  /usr/bin/python3 -c 'import json, sys; v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v = v[int(k)] if k.isdigit() else v[k]
print(v)' "$1" "$2"
}
expect_field() {
  local file=$1 field=$2 pattern=$3 value
  value=$(json_field "$file" "$field" 2>&1) || value="(missing: $value)"
  if [[ $value =~ ^($pattern)$ ]]; then
    echo "ok: $field = $value"
  else
    echo "FAIL: $field = $value, expected /$pattern/"
    failures=$((failures + 1))
  fi
}
lab_public_pair

json=$LAB_WORKDIR/probe.json
status=0
lab_exec_wait c timeout 20 "$punch" probe --stun 203.0.113.2:3478 --stun 203.0.113.99:3478 \
  --timeout 2 --json >"$json" 2>&1 || status=$?
echo "\$ punch probe --stun 203.0.113.2:3478 --stun 203.0.113.99:3478 --timeout 2 --json"
sed 's/^/  | /' "$json"
expect_status "punch probe (no NAT)" 0 "$status"
expect_field "$json" nearest '203\.0\.113\.2:3478'
expect_field "$json" reflexive '203\.0\.113\.10:[0-9]+'
expect_field "$json" classifier '203\.0\.113\.2:3478'
expect_field "$json" mapping no_nat
expect_field "$json" filtering endpoint_independent
expect_field "$json" hairpinning supported
expect_field "$json" nat_type none
expect_field "$json" servers.0.status success
expect_field "$json" servers.0.other_address '203\.0\.113\.3:3479'
expect_field "$json" servers.1.status timeout
expect_field "$json" tests.filtering2.from '203\.0\.113\.3:3479'
expect_field "$json" tests.filtering3.from '203\.0\.113\.2:3479'
# The reflexive address is the probe's own socket: the local address it reports.
if [[ $(json_field "$json" reflexive) == "$(json_field "$json" local)" ]]; then
  echo "ok: reflexive = local"
else
  echo "FAIL: reflexive $(json_field "$json" reflexive) != local $(json_field "$json" local)"
  failures=$((failures + 1))
fi

human=$LAB_WORKDIR/probe.txt
status=0
lab_exec_wait c timeout 20 "$punch" probe --stun 203.0.113.2:3478 >"$human" 2>&1 || status=$?
echo "\$ punch probe --stun 203.0.113.2:3478"
sed 's/^/  | /' "$human"
expect_status "punch probe (human)" 0 "$status"
check "human report: no NAT" "$human" '^NAT type +no NAT$'
check "human report: nearest" "$human" '^nearest +203\.0\.113\.2:3478 '

coturn=$LAB_WORKDIR/natdiscovery.txt
lab_exec_wait c timeout 20 stdbuf -oL turnutils_natdiscovery -m -f -p 3478 203.0.113.2 \
  >"$coturn" 2>&1 || true
echo "\$ turnutils_natdiscovery -m -f -p 3478 203.0.113.2"
sed -e '/^$/d' -e 's/^/  | /' "$coturn"
# coturn compares with its socket bound to 0.0.0.0, so it calls even a public host "NAT with
# Endpoint Independent ...": agreement is endpoint-independent behaviour on both sides (our
# no_nat is the identity mapping, endpoint-independent by definition).
check "coturn agrees: mapping endpoint independent" "$coturn" 'NAT with Endpoint Independent Mapping!'
check "coturn agrees: filtering endpoint independent" "$coturn" 'NAT with Endpoint Independent Filtering!'
check "coturn agrees: the same reflexive IP" "$coturn" 'UDP reflexive addr: 203\.0\.113\.10:[0-9]+$'

# Nobody answers: exit 1, type blocked.
status=0
lab_exec_wait c timeout 20 "$punch" probe --stun 203.0.113.99:3478 --timeout 0.5 --json \
  >"$LAB_WORKDIR/none.json" 2>&1 || status=$?
sed 's/^/  | /' "$LAB_WORKDIR/none.json"
expect_status "punch probe (nobody answers)" 1 "$status"
expect_field "$LAB_WORKDIR/none.json" nat_type blocked

# A usage error names the argument.
status=0
lab_exec_wait c "$punch" probe --stun 203.0.113.2 >"$LAB_WORKDIR/usage.txt" 2>&1 || status=$?
sed 's/^/  | /' "$LAB_WORKDIR/usage.txt"
expect_status "punch probe (bad --stun)" 2 "$status"
check "usage error names --stun" "$LAB_WORKDIR/usage.txt" '^punch probe: --stun "203\.0\.113\.2": expected HOST:PORT'

lab_engine_stop_checked

# A server without OTHER-ADDRESS: the reflexive address, no classification, exit 3.
sed -i 's/^alternate_port = 3479$/alternate_port = 0/; s/^ipv4 = .*/ipv4 = ["203.0.113.2"]/' \
  "$LAB_WORKDIR/engine.toml"
lab_engine_start e "$LAB_WORKDIR/engine.toml"
status=0
lab_exec_wait c timeout 20 "$punch" probe --stun 203.0.113.2:3478 --timeout 1 --json \
  >"$LAB_WORKDIR/plain.json" 2>&1 || status=$?
sed 's/^/  | /' "$LAB_WORKDIR/plain.json"
expect_status "punch probe (no OTHER-ADDRESS)" 3 "$status"
expect_field "$LAB_WORKDIR/plain.json" reflexive '203\.0\.113\.10:[0-9]+'
expect_field "$LAB_WORKDIR/plain.json" nat_type unknown
lab_engine_stop_checked

lab_verdict
