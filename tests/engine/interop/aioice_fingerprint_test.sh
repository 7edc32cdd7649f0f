#!/usr/bin/env bash
# tests/engine/interop/aioice_fingerprint_test.sh PUNCHLINED — aioice (python3-aioice) against
# punchlined on net_af_packet: a Binding request with FINGERPRINT checked end to end, a wrong
# FINGERPRINT discarded, and ICE gathering of a server-reflexive candidate. The checks are in
# aioice_fingerprint.py, which runs in the client namespace; this script builds the lab and
# checks the engine's counters afterwards: "conserved", stun ok > 0, and one
# stun_bad_fingerprint drop. Exit 77 (skipped) when not root or when aioice is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/lab.sh"

# Debian's python3-aioice lives in /usr/bin/python3's dist-packages, not in a pyenv shim's.
python=/usr/bin/python3
lab_init "${1:?usage: aioice_fingerprint_test.sh PATH_TO_PUNCHLINED}" "$python" timeout
if ! "$python" -c 'import aioice' 2>/dev/null; then
  echo "SKIP: aioice is not importable by $python (apt-get install python3-aioice)"
  exit 77
fi
lab_public_pair

failures=0
if ! lab_exec_wait c timeout 40 "$python" "$here/aioice_fingerprint.py" 203.0.113.2 203.0.113.3 \
  203.0.113.10; then
  echo "FAIL: aioice_fingerprint.py"
  failures=$((failures + 1))
fi

lab_engine_stop_checked
if grep -Eq '^  drop stun_bad_fingerprint +1 ' "$LAB_ENGINE_LOG"; then
  echo "ok: one stun_bad_fingerprint drop"
else
  echo "FAIL: the engine did not count exactly one stun_bad_fingerprint drop"
  failures=$((failures + 1))
fi

lab_verdict
