#!/usr/bin/env python3
"""junit_summary.py - one closing line for CI from meson's JUnit logs.

Usage:
    scripts/junit_summary.py [--exit-status JUNIT=RC]... [--extra-failure LABEL]... JUNIT...

JUNIT is a meson JUnit log, <builddir>/meson-logs/testlog.junit.xml.

Counting: every <testcase> element in every file is one test. It failed when it has a
<failure> or <error> child, was skipped when it has a <skipped> child or GoogleTest's
status="notrun" (a DISABLED_ test), and passed otherwise. Meson writes one <testsuite> per
GoogleTest suite of a protocol:'gtest' binary (named "<project>.<test name>.<GTest suite>",
one <testcase> per TEST) and one <testsuite name="<project>"> holding one <testcase> per
exitcode test; a gtest binary never appears as a testcase of its own, so nothing is counted
twice.

Meson's JUnit misses three kinds of failure, so when <builddir>/meson-logs/testlog.json sits
beside a JUnit file its per-test results are checked as well, and each test that meson rated
FAIL, ERROR, TIMEOUT, UNEXPECTEDPASS or INTERRUPT but whose JUnit entries show no failure
counts as a failure:
  * an exitcode test that timed out is written as a plain (passing) testcase: it is
    counted as failed instead of passed;
  * a gtest binary that passes every case and then exits non-zero (LeakSanitizer at exit);
  * a gtest binary that crashed, where meson reads a stale <name>.xml of an earlier run;
    for these two the binary counts as one failure on top of its cases.

--exit-status JUNIT=RC: meson test's exit status for that log; when RC != 0 and nothing from
    that file counted as failed, one failure is added.
--extra-failure LABEL: a failure from outside the logs (a build step); counts as one failure.

Failed tests go to stderr, one per line, each followed by the first lines of its output that
start with "FAIL" (indented), so that a log's tail names the check that failed. The last line
on stdout is exactly "N passed, N failed" or "N passed, N failed, N skipped" (skipped only
when N > 0).
Exit status 1 when anything failed, a file is missing or unparseable (each counts as one
failure too), or there were no test cases at all; otherwise 0.
"""

import argparse
import json
import os
import re
import sys
import xml.etree.ElementTree as et

BAD_RESULTS = {"FAIL", "ERROR", "TIMEOUT", "UNEXPECTEDPASS", "INTERRUPT"}
# The C0 controls but tab, line feed and carriage return: not characters in XML 1.0.
INVALID_XML_CHARACTERS = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def fail_lines(case, limit=12):
    """The first LIMIT lines of a failed testcase's <system-out> that start with "FAIL" (the
    checks of the lab and interop scripts), each on its own indented line: a CI log that keeps
    only its tail still says which check failed."""
    out = case.find("system-out")
    lines = [l for l in (out.text or "").splitlines() if l.startswith("FAIL")] \
        if out is not None else []
    return "".join(f"\n    {l}" for l in lines[:limit])


def summarize_file(path, failures):
    """Counts one JUnit file; appends failure labels. Returns (passed, failed, skipped)."""
    passed = failed = skipped = 0
    try:
        with open(path, "rb") as f:
            # Meson copies a test's output into <system-out> as it came, control characters
            # included, which XML 1.0 does not allow (a BEL a test printed made the whole log
            # unreadable): they are taken out before parsing; the counts are in the elements.
            root = et.fromstring(INVALID_XML_CHARACTERS.sub(b"", f.read()))
    except FileNotFoundError:
        failures.append(f"{path}: missing")
        return 0, 1, 0
    except (et.ParseError, OSError) as e:
        failures.append(f"{path}: unparseable ({e})")
        return 0, 1, 0

    failed_suites = set()      # testsuite names holding a failed case
    failed_exitcode = set()    # exitcode test names that failed
    passed_cases = set()       # names of passed testcases
    for suite in root.iter("testsuite"):
        sname = suite.get("name", "?")
        for case in suite.findall("testcase"):
            cname = case.get("name", "?")
            tags = {child.tag for child in case}
            if "failure" in tags or "error" in tags:
                failed += 1
                failed_suites.add(sname)
                failed_exitcode.add(cname)
                failures.append(f"{sname} :: {cname}" + fail_lines(case))
            elif "skipped" in tags or case.get("status") == "notrun":
                skipped += 1
            else:
                passed += 1
                passed_cases.add(cname)

    # Cross-check with meson's per-test results (see the module docstring).
    testlog = os.path.join(os.path.dirname(path), "testlog.json")
    if os.path.exists(testlog):
        try:
            with open(testlog, encoding="utf-8") as f:
                results = [json.loads(line) for line in f if line.strip()]
        except (OSError, ValueError) as e:
            failures.append(f"{testlog}: unparseable ({e})")
            return passed, failed + 1, skipped
        for r in results:
            name, res = r.get("name", "?"), r.get("result", "?")
            if res not in BAD_RESULTS:
                continue
            # A gtest suite is named "<project>.<test name>.<GTest suite>"; the test name is
            # "<project>:<suite> / <name>", or just "<name>" when the run had one suite.
            if name in failed_exitcode or any(
                    s.partition(".")[2].startswith(name + ".") for s in failed_suites):
                continue
            # Its JUnit entries (if any) show no failure. An exitcode test's own testcase
            # (named like the test) was counted as passed: move it to failed. A gtest
            # binary's cases did pass (or are stale): the binary counts as one more failure.
            if name in passed_cases:
                passed -= 1
                passed_cases.discard(name)
            failed += 1
            failures.append(f"{name} :: {res} (returncode {r.get('returncode')}), "
                            "no failing case in JUnit")
    return passed, failed, skipped


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("junit", nargs="*", help="meson testlog.junit.xml files")
    ap.add_argument("--exit-status", action="append", default=[], metavar="JUNIT=RC")
    ap.add_argument("--extra-failure", action="append", default=[], metavar="LABEL")
    args = ap.parse_intermixed_args()

    exit_status = {}
    for item in args.exit_status:
        path, _, rc = item.rpartition("=")
        try:
            exit_status[os.path.realpath(path)] = int(rc)
        except ValueError:
            ap.error(f"--exit-status wants JUNIT=RC, got {item!r}")

    passed = failed = skipped = 0
    failures = []
    for path in args.junit:
        p, f, s = summarize_file(path, failures)
        rc = exit_status.get(os.path.realpath(path), 0)
        if rc != 0 and f == 0:
            f = 1
            failures.append(f"{path}: meson test exited {rc} but no test failed in the log")
        passed, failed, skipped = passed + p, failed + f, skipped + s

    for label in args.extra_failure:
        failed += 1
        failures.append(label)

    for label in failures:
        print(f"FAILED: {label}", file=sys.stderr)
    if passed + failed + skipped == 0:
        print("no test cases found", file=sys.stderr)
    sys.stderr.flush()

    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line, flush=True)
    return 1 if failed or passed + failed + skipped == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
