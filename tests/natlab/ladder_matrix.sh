#!/usr/bin/env bash
# tests/natlab/ladder_matrix.sh PUNCHLINED PUNCH PUNCHCOORD [OUTDIR] — the full ladder matrix
# (issue 7): client NAT types 5×5 × SFU node placements (public, behind a full cone, behind a
# port-restricted NAT, behind a symmetric NAT), one real punchlined SFU node registered at a
# time, `punch call` in every cell. Each cell must take the rung the NAT compatibility matrix
# (nat/include/punch/nat_matrix.h) predicts: P2P where the two clients can punch, else the SFU
# where the node can punch with both, else the relay; media both ways, nothing lost.
#
# Writes to OUTDIR (default: the lab's work directory): ladder-matrix.json (every call: types,
# placement, rung, time to first media packet), ladder-matrix.md (the tables and the share of
# calls kept off the relay) and ladder-matrix.png (tests/natlab/plot_matrix.py). scripts/ladder-
# matrix runs it into docs/. Exit 77 (skipped) when not root or a tool is missing. About 3 min.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/natlab/natlab.sh
source "$here/natlab.sh"

usage="usage: ladder_matrix.sh PUNCHLINED PUNCH PUNCHCOORD [OUTDIR]"
punchlined=${1:?$usage}
punch=${2:?$usage}
punchcoord=${3:?$usage}
natlab_init "$punchlined" jq /usr/bin/python3 "$punch" "$punchcoord"
out=${4:-$LAB_WORKDIR}
mkdir -p "$out"
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || {
  echo "SKIP: python3-matplotlib is not installed (scripts/setup installs it)"
  exit 77
}

natlab_up
types=(none full-cone address-restricted port-restricted symmetric)
short=(none full addr port sym)
for i in "${!types[@]}"; do
  natlab_add_client "a${short[$i]}" "${types[$i]}"
  natlab_add_client "b${short[$i]}" "${types[$i]}"
done
placements=(none full-cone port-restricted symmetric)
nodes=(npub ncone nport nsym)
for k in "${!placements[@]}"; do natlab_sfu_node_add "${nodes[$k]}" "${placements[$k]}"; done
natlab_coord_start "$punchcoord"
failures=0

# The compatibility matrix as natlab.md measures it (and nat_matrix.h holds): two hosts can
# punch unless one is symmetric and the other symmetric or port-restricted.
can_punch() {
  case "$1/$2" in
    symmetric/symmetric | symmetric/port-restricted | port-restricted/symmetric) return 1 ;;
    *) return 0 ;;
  esac
}
expect_rung() {  # A B NODE
  if can_punch "$1" "$2"; then
    echo p2p
  elif can_punch "$3" "$1" && can_punch "$3" "$2"; then
    echo sfu
  else
    echo relay
  fi
}

field() { natlab_call_field "$@"; }
results=$LAB_WORKDIR/calls.jsonl
: >"$results"

for k in "${!placements[@]}"; do
  node=${nodes[$k]}
  placement=${placements[$k]}
  echo "== SFU node behind: $placement"
  natlab_sfu_node_start "$node"
  natlab_sfu_node_wait_registered "$node" 20
  for round in 0 1 2 3 4; do
    for i in 0 1 2 3 4; do
      j=$(((i + round) % 5))
      room=m$k-$i-$j
      for side in "a${short[$i]}" "b${short[$j]}"; do
        natlab_call_start "$room" "$side" "$punch" --duration 3 --rate 50 --bitrate 64000 \
          --punch-timeout 1
      done
    done
    natlab_call_wait
  done
  for i in 0 1 2 3 4; do
    for j in 0 1 2 3 4; do
      room=m$k-$i-$j
      a=a${short[$i]}
      b=b${short[$j]}
      want=$(expect_rung "${types[$i]}" "${types[$j]}" "$placement")
      ok=1
      for side in "$a" "$b"; do
        other=$b
        [[ $side == "$b" ]] && other=$a
        rung=$(field "$room" "$side" .rung)
        sent=$(field "$room" "$other" .media.sent)
        got=$(field "$room" "$side" .media.received)
        [[ $rung == "$want" ]] || {
          echo "FAIL: $placement node, ${types[$i]} ↔ ${types[$j]}: $side on '$rung', expected $want"
          ok=0
        }
        [[ $sent != - && $sent -ge 1 && $got == "$sent" ]] || {
          echo "FAIL: $placement node, ${types[$i]} ↔ ${types[$j]}: $other sent $sent, $side got $got"
          ok=0
        }
      done
      if [[ $ok == 0 ]]; then
        failures=$((failures + 1))
        sed 's/^/  | /' "$LAB_WORKDIR/$room-$a.json" "$LAB_WORKDIR/$room-$a.err" | head -40
      fi
      ta=$(field "$room" "$a" .time_to_connect_ms)
      tb=$(field "$room" "$b" .time_to_connect_ms)
      jq -nc --arg placement "$placement" --arg a "${types[$i]}" --arg b "${types[$j]}" \
        --arg want "$want" --arg rung "$(field "$room" "$a" .rung)" --arg ta "$ta" --arg tb "$tb" \
        --argjson ok "$ok" \
        '{placement: $placement, a: $a, b: $b, expected: $want, rung: $rung, ok: ($ok == 1),
          time_to_first_media_ms: ([$ta, $tb] | map(tonumber? // null) | if any(. == null)
                                   then null else max end)}' >>"$results"
    done
  done
  echo "  $(jq -s --arg p "$placement" '[.[] | select(.placement == $p and .ok)] | length' \
    "$results")/25 cells as predicted"
  natlab_sfu_node_stop "$node" >"$LAB_WORKDIR/sfu-$node/stop.txt" 2>&1 || {
    cat "$LAB_WORKDIR/sfu-$node/stop.txt"
    echo "FAIL: SFU node $node did not stop cleanly (or its counters were not conserved)"
    failures=$((failures + 1))
  }
done

jq -s . "$results" >"$out/ladder-matrix.json"
/usr/bin/python3 "$here/plot_matrix.py" "$out/ladder-matrix.json" "$out/ladder-matrix.png" \
  "$out/ladder-matrix.md" || { echo "FAIL: plot_matrix.py"; failures=$((failures + 1)); }
echo
cat "$out/ladder-matrix.md" 2>/dev/null || true
echo "(written: $out/ladder-matrix.json, .md, .png)"

natlab_coord_stop >/dev/null || { echo "FAIL: punchcoord did not exit 0"; failures=$((failures + 1)); }
lab_engine_stop_checked
lab_verdict
