#!/usr/bin/env python3
"""bench_results.py - turn Google Benchmark JSON output into punchline's JSON-lines figures.

Usage:
    scripts/bench_results.py --out FILE.jsonl [--commit SHA] [--date ISO8601] BENCH.json...

BENCH.json is what a benchmark binary wrote with --benchmark_out=BENCH.json
--benchmark_out_format=json --benchmark_repetitions=N (N > 1). scripts/bench calls this.

One line per figure is appended to FILE.jsonl:
    {"name": "BM_Foo", "value": <median real_time per iteration>, "unit": "ns/op",
     "commit": ..., "date": ..., ["baseline": "BM_Baseline_Foo", "ratio": value/baseline]}
    {"name": "BM_Foo/items_per_second", "value": <median>, "unit": "items/s", ...}
The value is taken from the "_median" aggregate row (a run without repetitions falls back
to its single iteration row) and converted to ns from the row's time_unit.
A benchmark names its same-run baseline with state.SetLabel("baseline=BM_Baseline_Xyz");
when that baseline's median is in the same run, "baseline" and "ratio" (3 decimals) are added.
A compact table (name, ns/op, baseline, ratio) goes to stdout.
"""

import argparse
import datetime
import json
import re
import sys

NS_PER = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def baseline_of(label):
    m = re.search(r"(?:^|[\s,;])baseline=([^\s,;]+)", label or "")
    return m.group(1) if m else None


def collect(paths):
    """Returns {run_name: row} with the median row of each benchmark, in run order."""
    medians, singles = {}, {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            sys.exit(f"bench_results: cannot read {path}: {e}")
        for row in data.get("benchmarks", []):
            if row.get("error_occurred"):
                print(f"bench_results: {row.get('name')}: {row.get('error_message')}",
                      file=sys.stderr)
                continue
            run = row.get("run_name", row.get("name"))
            if row.get("run_type") == "aggregate":
                if row.get("aggregate_name") == "median":
                    medians[run] = row
            else:
                singles.setdefault(run, []).append(row)
    rows = dict(medians)
    for run, its in singles.items():
        if run not in rows and len(its) == 1:
            rows[run] = its[0]
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="+", help="Google Benchmark JSON files")
    ap.add_argument("--out", required=True, help="JSON-lines file to append to")
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--date", default=None, help="ISO 8601; default: now, UTC")
    args = ap.parse_args()
    date = args.date or datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds")

    rows = collect(args.json)
    if not rows:
        sys.exit("bench_results: no benchmark results in " + " ".join(args.json))

    ns = {run: row["real_time"] * NS_PER[row.get("time_unit", "ns")]
          for run, row in rows.items()}
    figures, table = [], []
    for run, row in rows.items():
        fig = {"name": run, "value": round(ns[run], 4), "unit": "ns/op",
               "commit": args.commit, "date": date}
        base = baseline_of(row.get("label"))
        ratio = None
        if base is not None:
            if base in ns and ns[base] > 0:
                ratio = round(ns[run] / ns[base], 3)
                fig["baseline"] = base
                fig["ratio"] = ratio
            else:
                print(f"bench_results: {run}: baseline {base} not in this run",
                      file=sys.stderr)
        figures.append(fig)
        table.append((run, ns[run], fig.get("baseline", ""), ratio))
        if "items_per_second" in row:
            figures.append({"name": run + "/items_per_second",
                            "value": round(row["items_per_second"], 1), "unit": "items/s",
                            "commit": args.commit, "date": date})

    with open(args.out, "a", encoding="utf-8") as f:
        for fig in figures:
            f.write(json.dumps(fig) + "\n")

    width = max(len("benchmark"), *(len(r[0]) for r in table))
    bwidth = max(len("baseline"), *(len(r[2]) for r in table))
    print(f"{'benchmark':<{width}}  {'ns/op':>12}  {'baseline':<{bwidth}}  {'ratio':>7}")
    for run, value, base, ratio in table:
        r = f"{ratio:.3f}" if ratio is not None else ""
        print(f"{run:<{width}}  {value:>12.3f}  {base:<{bwidth}}  {r:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
