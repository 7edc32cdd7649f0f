#!/usr/bin/env python3
"""bench_results.py - turn Google Benchmark JSON output into punchline's JSON-lines figures.

Usage:
    scripts/bench_results.py --out FILE.jsonl [--commit SHA] [--date ISO8601]
                             [--lines FIGURES.jsonl]... [BENCH.json...]

BENCH.json is what a benchmark binary wrote with --benchmark_out=BENCH.json
--benchmark_out_format=json --benchmark_repetitions=N (N > 1). scripts/bench calls this.

One line per figure is appended to FILE.jsonl:
    {"name": "BM_Foo", "value": <median real_time per iteration>, "unit": "ns/op",
     "commit": ..., "date": ..., ["baseline": "BM_Baseline_Foo", "ratio": value/baseline]}
    {"name": "BM_Foo/items_per_second", "value": <median>, "unit": "items/s", ...}
    {"name": "BM_Foo/<counter>", "value": <median>, "unit": "counter", ...}
        for each user counter the benchmark set (state.counters, e.g. bytes_per_allocation)
The value is taken from the "_median" aggregate row (a run without repetitions falls back
to its single iteration row) and converted to ns from the row's time_unit.
A benchmark names its same-run baseline with state.SetLabel("baseline=BM_Baseline_Xyz");
when that baseline's median is in the same run, "baseline" and "ratio" (3 decimals) are added.
A compact table (name, ns/op, baseline, ratio) goes to stdout.

FIGURES.jsonl (--lines, repeatable) holds figures that programs other than Google Benchmark
printed as "RESULT {json}" lines (scripts/bench strips the prefix): bench/engine_pipeline_bench
(its --control-load figures too: the hammered engine's "baseline" is the same run's idle one, its
"ratio" given, its other keys kept as they are) and bench/testpmd_baseline.sh. Each is one JSON object with at least "name", "value" and
"unit"; it is appended as it is, plus "commit" and "date", except:
    "baseline" without "ratio": the ratio value/baseline is added when that figure is in
        this run (these are throughputs, so a higher ratio is better);
    "compare": [names]: replaced by "ratios": {name: value/that figure} for each name in
        this run, the "baseline" one included.
They get a table of their own (name, value, unit, ratio to each baseline).
"""

import argparse
import datetime
import json
import re
import sys

NS_PER = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# The keys Google Benchmark writes in every row; any other numeric key is a user counter.
STANDARD_KEYS = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type",
    "repetitions", "repetition_index", "threads", "iterations", "real_time", "cpu_time",
    "time_unit", "items_per_second", "bytes_per_second", "label", "aggregate_name",
    "aggregate_unit", "error_occurred", "error_message",
}


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


def read_lines(paths):
    """Returns the figures in FIGURES.jsonl files, in order."""
    figures = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    line = line.strip()
                    if not line:
                        continue
                    fig = json.loads(line)
                    if not isinstance(fig, dict) or not {"name", "value", "unit"} <= fig.keys():
                        sys.exit(f"bench_results: {path}:{number}: not a figure "
                                 "(an object with name, value and unit)")
                    figures.append(fig)
        except (OSError, ValueError) as e:
            sys.exit(f"bench_results: cannot read {path}: {e}")
    return figures


def line_figures(figures, commit, date):
    """Adds commit, date and same-run ratios; returns (figures, table rows)."""
    values = {fig["name"]: fig["value"] for fig in figures}
    out, table = [], []
    for fig in figures:
        fig = dict(fig)
        base = fig.get("baseline")
        if base is not None and "ratio" not in fig:
            if values.get(base):
                fig["ratio"] = round(fig["value"] / values[base], 3)
            else:
                print(f"bench_results: {fig['name']}: baseline {base} not in this run",
                      file=sys.stderr)
        compare = fig.pop("compare", None)
        if compare is not None:
            ratios = {}
            if base is not None and "ratio" in fig:
                ratios[base] = fig["ratio"]
            for other in compare:
                if values.get(other):
                    ratios[other] = round(fig["value"] / values[other], 3)
                else:
                    print(f"bench_results: {fig['name']}: {other} not in this run",
                          file=sys.stderr)
            fig["ratios"] = ratios
        fig["commit"] = commit
        fig["date"] = date
        out.append(fig)
        ratios = fig.get("ratios") or ({base: fig["ratio"]} if "ratio" in fig else {})
        note = "" if fig.get("hugepages", True) else "  (no hugepages)"
        table.append((fig["name"], fig["value"], fig["unit"], list(ratios.items()), note))
    return out, table


def print_line_table(table):
    width = max(len("figure"), *(len(r[0]) for r in table))
    bases = [b for r in table for b, _ in r[3]]
    bwidth = max(len("vs"), *(len(b) for b in bases)) if bases else len("vs")
    print(f"{'figure':<{width}}  {'value':>10}  {'unit':<6}  {'vs':<{bwidth}}  {'ratio':>7}")
    for name, value, unit, ratios, note in table:
        first = ratios[0] if ratios else ("", None)
        r = f"{first[1]:.3f}" if first[1] is not None else ""
        print(f"{name:<{width}}  {value:>10.3f}  {unit:<6}  {first[0]:<{bwidth}}  {r:>7}{note}")
        for base, ratio in ratios[1:]:
            print(f"{'':<{width}}  {'':>10}  {'':<6}  {base:<{bwidth}}  {ratio:>7.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="*", help="Google Benchmark JSON files")
    ap.add_argument("--out", required=True, help="JSON-lines file to append to")
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--date", default=None, help="ISO 8601; default: now, UTC")
    ap.add_argument("--lines", action="append", default=[], metavar="FIGURES.jsonl",
                    help="figures as JSON lines (RESULT lines without the prefix)")
    args = ap.parse_args()
    date = args.date or datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds")
    if not args.json and not args.lines:
        ap.error("give Google Benchmark JSON files, --lines files, or both")

    extra, extra_table = line_figures(read_lines(args.lines), args.commit, date)
    rows = collect(args.json) if args.json else {}
    if args.json and not rows:
        sys.exit("bench_results: no benchmark results in " + " ".join(args.json))
    if not rows and not extra:
        sys.exit("bench_results: no figures in " + " ".join(args.lines))

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
        for key, value in row.items():
            if key not in STANDARD_KEYS and isinstance(value, (int, float)):
                figures.append({"name": f"{run}/{key}", "value": round(value, 3),
                                "unit": "counter", "commit": args.commit, "date": date})

    with open(args.out, "a", encoding="utf-8") as f:
        for fig in figures + extra:
            f.write(json.dumps(fig) + "\n")

    if table:
        width = max(len("benchmark"), *(len(r[0]) for r in table))
        bwidth = max(len("baseline"), *(len(r[2]) for r in table))
        print(f"{'benchmark':<{width}}  {'ns/op':>12}  {'baseline':<{bwidth}}  {'ratio':>7}")
        for run, value, base, ratio in table:
            r = f"{ratio:.3f}" if ratio is not None else ""
            print(f"{run:<{width}}  {value:>12.3f}  {base:<{bwidth}}  {r:>7}")
    if extra_table:
        if table:
            print()
        print_line_table(extra_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
