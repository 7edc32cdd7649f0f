#!/usr/bin/env bash
# tests/interop/flood_coturn_test.sh STUN_FLOOD — our load generator against a real third-party
# STUN server: coturn's turnserver, STUN-only, on loopback.
#
# Passes iff `stun_flood --count 20000` gets a valid Binding success response to every request
# (XOR-MAPPED-ADDRESS equal to the source socket's address, FINGERPRINT present and correct):
# this checks the generator's encoder, matcher and validator against a server we did not
# write, so that its figures for our engine can be trusted. Exit 77 (skipped) only when
# turnserver is not installed (Debian package coturn).
set -euo pipefail

flood=${1:?usage: flood_coturn_test.sh PATH_TO_STUN_FLOOD}

if ! command -v turnserver >/dev/null 2>&1; then
  echo "SKIP: turnserver not installed (apt-get install coturn, or scripts/setup)"
  exit 77
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# shellcheck source=tests/interop/turnserver.sh
source "$here/turnserver.sh"

workdir=$(mktemp -d)
cleanup() {
  turnserver_stop
  rm -rf -- "$workdir"
}
trap cleanup EXIT

if ! turnserver_start "$workdir" "$flood"; then
  echo "FAIL: turnserver did not start and answer on loopback"
  exit 1
fi
echo "turnserver $TURNSERVER_PID answering on 127.0.0.1:$TURNSERVER_PORT"

status=0
"$flood" --server "127.0.0.1:$TURNSERVER_PORT" --count 20000 --duration 20 || status=$?
if [[ $status -ne 0 ]]; then
  echo "FAIL: stun_flood exited $status; turnserver log tail:"
  tail -n 20 "$TURNSERVER_LOG"
  exit 1
fi
echo "PASS"
