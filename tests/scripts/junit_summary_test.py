#!/usr/bin/env python3
"""tests/scripts/junit_summary_test.py JUNIT_SUMMARY - scripts/junit_summary.py's closing line
and failure list, over JUnit logs written here in meson's shape: a passing and a failing
exitcode test (the failing one's output holds "FAIL" checks), a gtest suite with a failed and a
DISABLED case, and an exit status with nothing failed in its log."""

import os
import subprocess
import sys
import tempfile

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite name="punchline" tests="2" errors="0" failures="1" skipped="0">
    <testcase name="punchline:natlab / natlab_ok" classname="punchline"/>
    <testcase name="punchline:natlab / natlab_sfu" classname="punchline">
      <failure/>
      <system-out>== 1. a call
ok: sfu-public: fine
FAIL: sfu-cone: bsym ended on 'relay', expected sfu
  | a report line
FAIL: 1 check(s)
</system-out>
    </testcase>
  </testsuite>
  <testsuite name="punchline.stun_message.Message" tests="3">
    <testcase name="Parses" classname="Message"/>
    <testcase name="Rejects" classname="Message"><failure message="x"/></testcase>
    <testcase name="DISABLED_Later" classname="Message" status="notrun"/>
  </testsuite>
</testsuites>
"""

PASSING = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="punchline"><testcase name="a"/></testsuite></testsuites>
"""


def run(script, *args):
    r = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                       check=False)
    return r.returncode, r.stdout, r.stderr


def main():
    script = sys.argv[1]
    failures = 0

    def check(what, ok, detail=""):
        nonlocal failures
        print(("ok: " if ok else "FAIL: ") + what + ("" if ok else f" ({detail})"))
        failures += 0 if ok else 1

    with tempfile.TemporaryDirectory() as tmp:
        failing = os.path.join(tmp, "failing.xml")
        passing = os.path.join(tmp, "passing.xml")
        with open(failing, "w", encoding="utf-8") as f:
            f.write(JUNIT)
        with open(passing, "w", encoding="utf-8") as f:
            f.write(PASSING)

        rc, out, err = run(script, failing)
        check("the closing line counts passed, failed and skipped",
              out.splitlines()[-1:] == ["2 passed, 2 failed, 1 skipped"], repr(out))
        check("exit status 1 when a test failed", rc == 1, rc)
        lines = err.splitlines()
        check("the failed exitcode test is named",
              "FAILED: punchline :: punchline:natlab / natlab_sfu" in lines, err)
        check("its FAIL lines follow it, indented, and nothing else of its output",
              "    FAIL: sfu-cone: bsym ended on 'relay', expected sfu" in lines
              and "    FAIL: 1 check(s)" in lines
              and not any("a report line" in l or "ok: sfu-public" in l for l in lines), err)
        check("the failed gtest case is named",
              "FAILED: punchline.stun_message.Message :: Rejects" in lines, err)

        rc, out, err = run(script, passing)
        check("a passing log: one passed, exit status 0",
              rc == 0 and out.splitlines()[-1:] == ["1 passed, 0 failed"] and err == "",
              f"{rc} {out!r} {err!r}")

        rc, out, err = run(script, "--exit-status", f"{passing}=1", passing)
        check("meson's non-zero exit with nothing failed counts one failure",
              rc == 1 and out.splitlines()[-1:] == ["1 passed, 1 failed"], f"{rc} {out!r}")

    print("PASS" if failures == 0 else f"FAIL: {failures} check(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
