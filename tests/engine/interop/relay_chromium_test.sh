#!/usr/bin/env bash
# tests/engine/interop/relay_chromium_test.sh PUNCHLINED — headless Chromium's WebRTC through
# punchlined's relay role (RFC 8656): two RTCPeerConnections, both relay-only, talk through two
# allocations of the one engine.
#
# Namespaces: "e" holds the engine's end of a veth pair (203.0.113.2/.3, no kernel address);
# "c" holds Chromium (203.0.113.10/24), driven by playwright-core (chromium/relay_chromium.mjs).
# In one page, peer connections a and b each allocate on turn:203.0.113.2:3478 over UDP with
# long-term credentials; iceTransportPolicy 'relay' leaves each only its relayed candidate, so
# a's peer is b's relayed address on the same engine and the reverse: the engine relays between
# two of its own allocations (a hairpin), with permissions, channels and ChannelData as Chromium
# asks for them. Passes iff the data channel opens, three messages each way arrive intact, each
# side's getStats() shows a nominated, succeeded relay-to-relay pair, no candidate error was
# reported, the engine's report (SIGUSR1, while Chromium holds its connections open) shows two
# allocations that relayed datagrams both ways, and the engine's counters are conserved.
#
# Exit 77 (skipped) when not root, or when chromium, node (18 or newer) or playwright-core
# (scripts/setup: `npm ci` in tests/engine/interop/chromium) is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/lab.sh"

lab_init "${1:?usage: relay_chromium_test.sh PATH_TO_PUNCHLINED}" chromium node timeout

if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)'; then
  echo "SKIP: node $(node --version) is older than 18, which playwright-core needs"
  exit 77
fi
if [[ ! -f $here/chromium/node_modules/playwright-core/package.json ]]; then
  echo "SKIP: playwright-core is not installed in $here/chromium (scripts/setup runs npm ci there)"
  exit 77
fi

lab_public_link

config=$LAB_WORKDIR/engine.toml
lab_relay_config "$config"
cat >>"$config" <<'EOF'
users = [{ name = "alice", password = "relay-password" }]
EOF
lab_engine_start e "$config"

failures=0
output=$LAB_WORKDIR/chromium.txt
hold=$LAB_WORKDIR/release
# The script's own deadlines (30 s per wait, 10 s of holding, a watchdog 15 s later) come first;
# timeout(1) only if node itself hangs. HOME: Chromium writes under it even with a fresh
# profile. Once it has judged the exchange, the script holds both peer connections open until
# $hold exists: meanwhile the engine reports the allocations (SIGUSR1).
: >"$output"
ip netns exec "$(lab_ns c)" env HOME="$LAB_WORKDIR" timeout -k 5 70 \
  node "$here/chromium/relay_chromium.mjs" --turn 'turn:203.0.113.2:3478?transport=udp' \
  --username alice --credential relay-password --user-data-dir "$LAB_WORKDIR/profile" \
  --chromium "$(command -v chromium)" --timeout-ms 30000 --hold-file "$hold" >"$output" 2>&1 &
node_pid=$!
report=$LAB_WORKDIR/report.txt
: >"$report"
if lab_poll 600 eval "grep -q '^holding: ' \"\$output\" || ! kill -0 $node_pid 2>/dev/null" &&
  grep -q '^holding: ' "$output"; then
  lab_engine_report "$report" || echo "no report from the engine within 5 s"
fi
touch "$hold"
status=0
wait "$node_pid" || status=$?
echo "relay_chromium.mjs exit $status:"
sed 's/^/  | /' "$output"
if [[ $status -eq 77 ]]; then
  exit 77
fi
echo "the engine's report while Chromium held its allocations:"
sed 's/^/  | /' "$report"
check "a gathered a relayed candidate" "$output" '^a: candidate .* typ relay '
check "b gathered a relayed candidate" "$output" '^b: candidate .* typ relay '
if grep -q 'icecandidateerror' "$output"; then
  echo "FAIL: Chromium reported candidate errors (above)"
  failures=$((failures + 1))
else
  echo "ok: no candidate errors"
fi
check "the data channel opened on both sides" "$output" \
  '^data channel "punchline" open on both sides'
check "a's messages arrived at b" "$output" '^b: 3 of 3 messages from a arrived intact, in order$'
check "b's messages arrived at a" "$output" '^a: 3 of 3 messages from b arrived intact, in order$'
check "a selected a relay-to-relay pair" "$output" \
  '^a: selected pair state succeeded nominated true local relay remote relay '
check "b selected a relay-to-relay pair" "$output" \
  '^b: selected pair state succeeded nominated true local relay remote relay '
check "the script judged it ok" "$output" '^result: ok$'
check "the engine held both allocations" "$report" '^relay lcore1: 2 allocations '
# Summed over both allocations: datagrams each client sent to its peer (the other's relayed
# address), and those each got from its peer.
check "the engine relayed both ways" "$report" \
  '^relay lcore1: .*\| relayed [1-9][0-9]* to peers, [1-9][0-9]* to clients( |$)'

if ! lab_engine_stop; then
  echo "FAIL: punchlined's counters"
  failures=$((failures + 1))
fi

lab_verdict
