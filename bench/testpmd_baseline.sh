#!/usr/bin/env bash
# bench/testpmd_baseline.sh — dpdk-testpmd macswap on net_null, one forwarding core: the DPDK
# reference the engine's pipeline figure is compared with (design.md §6). A benchmark, not a
# test: scripts/bench runs it beside build/bench/engine_pipeline_bench.
#
# Usage: bench/testpmd_baseline.sh [--runs N] [--seconds S] [--no-huge]
#   --runs N     testpmd runs (default 3); the figure is their median
#   --seconds S  forwarding seconds per run (default 5); the first 1-second stats period is
#                left out (forwarding starts part-way through it), the rest are averaged
#   --no-huge    run without hugepages (--no-huge -m 1024 --total-num-mbufs=16384); slower,
#                labelled "hugepages":false. The default needs reserved hugepages
#                (dpdk-hugepages.py -p 2M --setup 1G) for --in-memory.
#   TESTPMD=path overrides the dpdk-testpmd binary (Debian package dpdk-dev).
#
# Each run: dpdk-testpmd -l 0,1 (main lcore 0, forwarding lcore 1) --no-pci with two net_null
# ports paired, --forward-mode=macswap --stats-period 1, stopped with SIGINT after S+1 seconds
# (at most S+6 with the kill fallback). Mpps = the sum over both ports of testpmd's "Tx-pps"
# per period. Prints each run and a closing line
#   RESULT {"name":"testpmd_macswap_null_mpps","value":<median>,"unit":"Mpps","runs":[...],
#           "hugepages":true}
# Exit status: 0; 1 when a run gave no figure (its output is shown); 2 on a usage error.
set -euo pipefail

runs=3
seconds=5
no_huge=0
while (($# > 0)); do
  case $1 in
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
    --no-huge) no_huge=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "testpmd_baseline: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ! [[ $runs =~ ^[1-9][0-9]*$ && $seconds =~ ^[1-9][0-9]*$ ]] || ((seconds < 2)); then
  echo "testpmd_baseline: --runs must be >= 1 and --seconds >= 2 (whole numbers)" >&2
  exit 2
fi

TESTPMD=${TESTPMD:-dpdk-testpmd}
if ! command -v "$TESTPMD" >/dev/null 2>&1; then
  echo "testpmd_baseline: $TESTPMD not found (Debian package dpdk-dev)" >&2
  exit 1
fi

eal=(-l "0,1" --no-pci --no-telemetry --log-level=lib.eal:error
     --vdev=net_null0 --vdev=net_null1)
app=(--forward-mode=macswap --stats-period 1 --nb-cores=1)
if ((no_huge)); then
  eal+=(--no-huge -m 1024 --no-shconf)
  app+=(--total-num-mbufs=16384)
  huge=false
else
  eal+=(--in-memory)
  huge=true
fi

tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

# Mean over the periods after the first of (port 0 Tx-pps + port 1 Tx-pps), in Mpps.
mpps_of() {
  awk '
    /NIC statistics for port/ { port = $6 + 0 }
    /Tx-pps:/ { period[port] = period[port] + 1; pps[period[port], port] = $2 }
    END {
      n = 0; total = 0
      for (p = 2; p <= period[0] && p <= period[1]; p++) { total += pps[p, 0] + pps[p, 1]; n++ }
      if (n == 0) exit 1
      printf "%.3f\n", total / n / 1e6
    }' "$1"
}

echo "testpmd_baseline: $TESTPMD ${eal[*]} -- ${app[*]}; $runs run(s) of ${seconds} s," \
  "hugepages $huge"
values=()
for ((run = 1; run <= runs; run++)); do
  out="$tmp/run$run.txt"
  # stdin from /dev/null: without -i, testpmd only polls stats until the signal.
  rc=0
  timeout -s INT -k 5 "$((seconds + 1))" "$TESTPMD" "${eal[@]}" -- "${app[@]}" \
    </dev/null >"$out" 2>&1 || rc=$?
  # 124: stopped by the SIGINT above, which is the normal end.
  if ((rc != 0 && rc != 124)) || ! value=$(mpps_of "$out"); then
    echo "testpmd_baseline: run $run gave no figure (exit $rc); its output:" >&2
    tail -n 40 "$out" >&2
    exit 1
  fi
  echo "run $run: testpmd macswap net_null $value Mpps"
  values+=("$value")
done

python3 - "$huge" "${values[@]}" <<'EOF'
import json, statistics, sys
huge = sys.argv[1] == "true"
runs = [float(v) for v in sys.argv[2:]]
median = round(statistics.median(runs), 3)
print(f"testpmd macswap on net_null, 1 forwarding core: median {median:.3f} Mpps "
      f"({1e3 / median:.2f} ns/pkt)")
print("RESULT " + json.dumps({"name": "testpmd_macswap_null_mpps", "value": median,
                              "unit": "Mpps", "runs": runs, "hugepages": huge},
                             separators=(",", ":")))
EOF
