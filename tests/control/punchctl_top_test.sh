#!/usr/bin/env bash
# tests/control/punchctl_top_test.sh PUNCHLINED PUNCHCTL — punchctl top under tmux.
#
# The lab of punchctl_test.sh (namespace "e" runs punchlined on net_af_packet, "c" holds a
# STUN client); punchctl top runs in a detached tmux session of this run's own tmux server (a
# socket in the work folder), whose screen capture-pane reads. Checked:
#   - the view: the engine's header, a row per worker core and the total, the drop reasons,
#     the keys line; with no traffic the core's RX rate is 0, with Binding requests flowing it
#     is not (the view is live), and the clock moves;
#   - a resized window: the view is redrawn to fit it (no line wider, the keys line last);
#   - the engine going away: the view says so and keeps trying; an engine started again is
#     shown again;
#   - q quits with exit 0, Ctrl-C too, and either way the terminal is restored (stty: canonical
#     mode and echo back on);
#   - without a terminal: exit 2 and what to type instead.
# Needs root (namespaces, EAL) and tmux; exit 77 (skipped) otherwise or without aioice.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/engine/interop/lab.sh
source "$here/../engine/interop/lab.sh"

python=/usr/bin/python3
lab_init "${1:?usage: punchctl_top_test.sh PUNCHLINED PUNCHCTL}" "$python" tmux timeout stty
punchctl=${2:?usage: punchctl_top_test.sh PUNCHLINED PUNCHCTL}
if ! "$python" -c 'import aioice' 2>/dev/null; then
  echo "SKIP: aioice is not importable by $python (apt-get install python3-aioice)"
  exit 77
fi

# This run's tmux server, stopped by its PID before the lab's cleanup (it lives in the root
# namespace, where the lab's namespace sweep does not reach).
tmux_socket=$LAB_WORKDIR/tmux.sock
tmux_pid=""
top_cleanup() {
  local status=$?
  if [[ -n $tmux_pid ]]; then
    kill "$tmux_pid" 2>/dev/null || true
    lab_poll 50 eval "! kill -0 $tmux_pid 2>/dev/null" || kill -KILL "$tmux_pid" 2>/dev/null || true
  fi
  (exit "$status")
  lab_cleanup
}
trap top_cleanup EXIT
tmux() { command tmux -S "$tmux_socket" "$@"; }

lab_public_link
config=$LAB_WORKDIR/engine.toml
lab_public_config "$config"
lab_engine_start e "$config"
sock=$LAB_WORKDIR/punchlined.sock
failures=0
screen=$LAB_WORKDIR/screen

# top_start NAME: punchctl top in a new detached session NAME (120 × 30); when it ends, its
# exit status and the terminal's settings (stty -a) go to $LAB_WORKDIR/NAME.exit and .stty.
top_start() {
  local name=$1
  # The wrapper shell ignores SIGINT (top sets its own handler), so that Ctrl-C reaches top
  # alone and the wrapper lives on to record how it ended.
  tmux new-session -d -s "$name" -x 120 -y 30 \
    "trap '' INT; '$punchctl' --socket '$sock' top; echo \$? >'$LAB_WORKDIR/$name.exit.tmp'; stty -a >'$LAB_WORKDIR/$name.stty'; mv '$LAB_WORKDIR/$name.exit.tmp' '$LAB_WORKDIR/$name.exit'; sleep 60"
  [[ -n $tmux_pid ]] || tmux_pid=$(tmux display-message -p '#{pid}')
}
# capture NAME: the session's screen into $screen.
capture() { tmux capture-pane -p -t "$1" >"$screen"; }
# shows NAME PATTERN: polls the screen (at most 5 s) until a line matches PATTERN (ERE).
shows() {
  local name=$1 pattern=$2
  lab_poll 50 eval "capture $name && grep -Eq \"\$pattern\" \"\$screen\""
}
expect_screen() {
  local what=$1 name=$2 pattern=$3
  if shows "$name" "$pattern"; then
    echo "ok: $what"
  else
    echo "FAIL: $what (no line matching /$pattern/ on the screen:)"
    sed 's/^/  | /' "$screen"
    failures=$((failures + 1))
  fi
}
# ended NAME STATUS: the session's top exited (at most 5 s) with STATUS, the terminal restored.
ended() {
  local name=$1 want=$2
  if ! lab_poll 50 test -e "$LAB_WORKDIR/$name.exit"; then
    echo "FAIL: $name: top still running 5 s after the key"
    capture "$name"
    sed 's/^/  | /' "$screen"
    failures=$((failures + 1))
    return
  fi
  local status
  status=$(<"$LAB_WORKDIR/$name.exit")
  [[ $status -eq $want ]] && echo "ok: $name: top exited $want" ||
    { echo "FAIL: $name: top exited $status, expected $want"; failures=$((failures + 1)); }
  check "$name: the terminal is back in canonical mode with echo" "$LAB_WORKDIR/$name.stty" '(^| )icanon .*(^| )echo( |$)'
  tmux kill-session -t "$name"
}

echo "== the view, idle"
top_start view
expect_screen "the engine's header" view '^punchlined [0-9]+\.[0-9]+\.[0-9]+  pid [0-9]+  up .* rates over [0-9.]+ s'
expect_screen "the column header" view '^CORE +RX PPS +RX BIT/S +TX PPS +TX BIT/S +HANDOFF/S +DROP/S +DROPPED +ALLOCATIONS'
expect_screen "a row for the worker core, idle: RX 0 pps" view '^lcore1 +0 +0 +0 +0 +0 +0 +[0-9]+ +-$'
expect_screen "the total row" view '^total +[0-9.kM]+ '
expect_screen "the drop reasons" view '^TOP DROP REASONS +PER S +PACKETS'
expect_screen "the keys, on the last line" view '^q quits'
capture view
cp "$screen" "$LAB_WORKDIR/idle"
[[ $(tail -n 1 "$screen") == "q quits" ]] && echo "ok: the keys line is the last of the window" ||
  { echo "FAIL: the last line is '$(tail -n 1 "$screen")'"; failures=$((failures + 1)); }

echo "== the view, with traffic"
ip netns exec "$(lab_ns c)" timeout 30 "$python" "$here/socket_client.py" flood 203.0.113.2 6 \
  >"$LAB_WORKDIR/flood" 2>&1 &
flood_pid=$!
expect_screen "with Binding requests flowing, lcore1's RX and TX rates are not 0" view \
  '^lcore1 +[1-9][0-9.]*k? +[1-9][0-9.]*[kM]? +[1-9][0-9.]*k? +[1-9][0-9.]*[kM]? '
header_before=$(head -n 1 "$screen")
sleep 1.2  # the view's period is a second: the next frame
capture view
[[ $(head -n 1 "$screen") != "$header_before" ]] && echo "ok: the clock in the header moves" ||
  { echo "FAIL: the header did not change in 1.2 s: $header_before"; failures=$((failures + 1)); }
flood_status=0
wait "$flood_pid" || flood_status=$?
sed 's/^/  | /' "$LAB_WORKDIR/flood"
[[ $flood_status -eq 0 ]] || failures=$((failures + 1))
expect_screen "the traffic over, lcore1's RX rate falls back to 0" view '^lcore1 +0 +0 +0 +0 '

echo "== a resized window"
tmux resize-window -t view -x 60 -y 12
expect_screen "the keys line is still shown" view '^q quits'
capture view
sed 's/^/  | /' "$screen"
if awk 'length($0) > 60 { bad = 1 } END { exit bad }' "$screen"; then
  echo "ok: no line wider than the 60-column window"
else
  echo "FAIL: a line wider than 60 columns"
  failures=$((failures + 1))
fi
[[ $(wc -l <"$screen") -eq 12 && $(tail -n 1 "$screen") == "q quits" ]] &&
  echo "ok: 12 rows, the keys line last" ||
  { echo "FAIL: $(wc -l <"$screen") rows, last '$(tail -n 1 "$screen")'"; failures=$((failures + 1)); }
tmux resize-window -t view -x 120 -y 30

echo "== the engine goes away, and comes back"
lab_engine_stop || { echo "FAIL: the engine's counters"; failures=$((failures + 1)); }
expect_screen "top says the engine cannot be reached" view '^ENGINE UNREACHABLE'
expect_screen "and why" view "cannot connect to $sock"
expect_screen "and that it keeps trying" view '^trying again every second'
lab_engine_start e "$config"
expect_screen "the engine started again is shown again" view '^lcore1 '
ip netns exec "$(lab_ns c)" timeout 30 "$python" "$here/socket_client.py" binding 203.0.113.2

echo "== q quits"
tmux send-keys -t view q
ended view 0

echo "== Ctrl-C quits"
top_start interrupt
expect_screen "top runs" interrupt '^lcore1 '
tmux send-keys -t interrupt C-c
ended interrupt 0

echo "== without a terminal"
status=0
"$punchctl" --socket "$sock" top </dev/null >"$LAB_WORKDIR/out" 2>"$LAB_WORKDIR/err" || status=$?
sed 's/^/  | /' "$LAB_WORKDIR/err"
[[ $status -eq 2 ]] && echo "ok: no terminal: exit 2" || { echo "FAIL: no terminal: exit $status"; failures=$((failures + 1)); }
check "it says what to type instead" "$LAB_WORKDIR/err" '^  try: punchctl --watch 1 stats$'

lab_engine_stop_checked
lab_verdict
