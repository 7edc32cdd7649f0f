#!/usr/bin/env bash
# tests/fuzz/run_fuzz.sh — runs one libFuzzer target for a fixed time; what `meson test --suite
# fuzz` calls (tests/fuzz/meson.build).
#
# Usage: run_fuzz.sh <fuzzer binary> <seed corpus dir> <seconds>
#
# The seeds are copied to a fresh temporary directory, so the fuzzer's new inputs never land in
# the repository. Crash artifacts go to a temporary directory too; on failure each is printed
# (path and hexdump) and copied to ./fuzz-artifacts/ (the meson build dir when meson runs this),
# from where `<fuzzer binary> <file>` reproduces it. Exits with the fuzzer's status, except
# that 77 ("skipped" to meson) becomes 1.
set -uo pipefail

if (($# != 3)); then
  echo "usage: $0 <fuzzer binary> <seed corpus dir> <seconds>" >&2
  exit 2
fi
fuzzer=$1
seeds=$2
seconds=$3
if [[ ! -x "$fuzzer" ]]; then
  echo "run_fuzz: $fuzzer: not an executable" >&2
  exit 2
fi
if [[ ! -d "$seeds" ]]; then
  echo "run_fuzz: $seeds: not a directory" >&2
  exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/punchline-fuzz.XXXXXX") || exit 2
trap 'rm -rf -- "$work"' EXIT
mkdir -- "$work/corpus" "$work/artifacts"
find "$seeds" -maxdepth 1 -type f -exec cp -- {} "$work/corpus/" \;

# A UBSan finding is a crash, not a line in the log. meson test sets its own defaults when these
# are unset; an explicit setting from the caller wins over both.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

name=$(basename -- "$fuzzer")
echo "run_fuzz: $name for ${seconds}s on $(find "$work/corpus" -type f | wc -l) seed(s) from $seeds"
# -error_exitcode: libFuzzer's default, 77, means "skipped" to meson test (and automake), which
# would turn a crash into a skip.
"$fuzzer" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
  -error_exitcode=1 -artifact_prefix="$work/artifacts/" "$work/corpus"
status=$?
((status == 77)) && status=1

if ((status != 0)); then
  echo "run_fuzz: $name failed with status $status" >&2
  kept="$PWD/fuzz-artifacts/$name"
  for artifact in "$work"/artifacts/*; do
    [[ -f "$artifact" ]] || continue
    mkdir -p -- "$kept" && cp -- "$artifact" "$kept/"
    echo "run_fuzz: crashing input $artifact ($(stat -c %s -- "$artifact") bytes)," \
      "kept as $kept/$(basename -- "$artifact")" >&2
    echo "run_fuzz: reproduce with: $(realpath -- "$fuzzer") $kept/$(basename -- "$artifact")" >&2
    od -A x -t x1z -v -- "$artifact" >&2
  done
fi
exit "$status"
