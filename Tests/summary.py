#!/usr/bin/env python3
"""Reads the saved output of each test suite and prints what Tests/run.sh reports: one line
per suite (passed, failed, skipped), every skip, a FAIL line for each thing that makes the
run fail, and the totals as the very last line: `N passed, N failed, N skipped`.

    Tests/summary.py --swift LOG STATUS LIMIT --pytest LOG STATUS LIMIT
    Tests/summary.py --self-test      # the parsers against Tests/summary-samples/*.txt

STATUS is the suite's exit status, LIMIT the seconds it was given (`timeout` exits 124, or
137 after its SIGKILL). The run fails (exit status 1) when a test fails, a suite times out,
ends without its summary line (a crash), exits non-zero without a failed test, runs no test,
or a test is skipped whose "<name>: <reason>" the regular expression PARLEY_ALLOW_SKIPS (unset
or empty: none) does not match. `failed` counts failed tests plus one per suite that broke
that way; unexpected skips stay in `skipped` and fail the run with their own FAIL line.

Formats read (`swift test` runs XCTest, then Swift Testing, in one output):
- XCTest: `Test Case '...' failed (0.1 seconds)`, `Test Case '...' skipped (...)` and
  `Executed N tests, with [K tests skipped and ]M failures (U unexpected) in ...`, printed
  per suite and bundle; the total is the one after `Test Suite 'All tests' passed|failed`
  ('Selected tests' with --filter).
- Swift Testing: `✔ Test X passed after 0.1 seconds.`, `✘ Test X failed after ... with
  K issues.`, `➜ Test X skipped: "reason"`, and at the end `Test run with N tests [in M
  suites] passed|failed after S seconds[ with K issues].` (N counts skipped tests too).
- pytest: its last line `N passed, M failed, K skipped, E errors in S s`, and the
  `UNEXPECTED SKIP <test id>: <reason>` lines conftest.py prints.
"""

import os
import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

XC_EXEC = re.compile(r"^\s*Executed (\d+) tests?, with (?:(\d+) tests? skipped and )?(\d+) failures? \((\d+) unexpected\)")
XC_ALL_START = re.compile(r"^Test Suite '(?:All|Selected) tests' started")
XC_ALL_END = re.compile(r"^Test Suite '(?:All|Selected) tests' (passed|failed) at")
XC_CASE_FAIL = re.compile(r"^Test Case '(.+)' failed \(")
XC_CASE_SKIP = re.compile(r"^Test Case '(.+)' skipped \(")
XC_SKIP_MSG = re.compile(r": (\S+) : Test skipped(?: - |: )?(.*)$")

ST_START = re.compile(r"^Test run started\.")
ST_RUN = re.compile(r"^Test run with (\d+) tests?(?: in (\d+) suites?)? (passed|failed) after [\d.]+ seconds?"
                    r"(?: with (\d+) issues?)?")
ST_END = re.compile(r"^Test (.+) (passed|failed) after [\d.]+ seconds?")
ST_SKIP = re.compile(r'^(Test|Suite) (.+?) skipped(?:: "(.*)")?\.?$')

PY_FINAL = re.compile(r"^=*\s*((?:\d+ [a-z]+(?:, )?)+|no tests ran) in [\d.]+s\b")
PY_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected|warnings?)")
PY_SKIP = re.compile(r"^(UNEXPECTED|ALLOWED) SKIP (.*)$")

TIMEOUT_STATUSES = (124, 137)


def _lines(text):
    for raw in ANSI.sub("", text).splitlines():
        # Swift Testing starts its lines with a symbol (◇ ✔ ✘ ➜ ↳ ...): drop it and the indent.
        yield re.sub(r"^\s*[^\x00-\x7F]*\s*", "", raw.rstrip())


class Result:
    @property
    def unexpected(self):
        return [what for what, ok in self.skips if not ok]

    def __init__(self, name):
        self.name = name
        self.passed = self.failed = self.skipped = 0
        self.skips = []       # (what was skipped and why, allowed by PARLEY_ALLOW_SKIPS)
        self.problems = []    # reasons the suite broke (each counts as one failure)
        self.detail = ""


def parse_swift(text):
    """(xctest, testing): dicts of what each framework reported, or None if it printed nothing."""
    xc = None
    st = None
    all_ended = False
    for line in _lines(text):
        if XC_ALL_START.match(line):
            xc = xc or {"exec": None, "failed": [], "skipped": [], "ended": False}
        m = XC_EXEC.match(line)
        if m:
            xc = xc or {"exec": None, "failed": [], "skipped": [], "ended": False}
            if xc["exec"] is None or not xc["ended"]:
                xc["exec"] = tuple(int(g or 0) for g in m.groups())  # executed, skipped, failures, unexpected
            if all_ended:
                xc["ended"] = True  # the total: the line right after 'All tests' ended
                all_ended = False
            continue
        if XC_ALL_END.match(line):
            all_ended = True
            continue
        m = XC_CASE_FAIL.match(line)
        if m and xc is not None:
            xc["failed"].append(m.group(1))
            continue
        m = XC_CASE_SKIP.match(line)
        if m and xc is not None:
            xc["skipped"].append((m.group(1), ""))
            continue
        m = XC_SKIP_MSG.search(line)
        if m and xc is not None:
            xc.setdefault("skip_reasons", {})[m.group(1)] = m.group(2)
            continue
        if line.startswith("Test Case '") or line.startswith("Test Suite '"):
            continue
        if ST_START.match(line):
            st = {"run": None, "passed": 0, "failed": [], "skipped": []}
            continue
        if st is None:
            continue
        m = ST_RUN.match(line)
        if m:
            st["run"] = (int(m.group(1)), m.group(3), int(m.group(4) or 0))  # tests, verdict, issues
            continue
        m = ST_SKIP.match(line)
        if m:
            st["skipped"].append((m.group(2) if m.group(1) == "Test" else f"suite {m.group(2)}", m.group(3) or ""))
            continue
        m = ST_END.match(line)
        if m:
            if m.group(2) == "passed":
                st["passed"] += 1
            else:
                st["failed"].append(m.group(1))
    if xc is not None:
        reasons = xc.pop("skip_reasons", {})
        xc["skipped"] = [(n, reasons.get(n, r)) for n, r in xc["skipped"]]
    return xc, st


def swift_result(text, status, limit, allow):
    r = Result("swift test")
    xc, st = parse_swift(text)
    parts = []
    if xc is not None:
        if xc["exec"] is None:
            r.problems.append("XCTest started but printed no 'Executed N tests' total (crashed?)")
            failed = len(set(xc["failed"]))
            skipped = len(xc["skipped"])
            passed = 0
        else:
            executed, skipped, failures, _ = xc["exec"]
            failed = len(set(xc["failed"]))
            if failures and not failed:
                failed = 1  # a failure outside any test case
            passed = max(0, executed - skipped - failed)
            if not xc["ended"]:
                r.problems.append("XCTest did not finish 'All tests' (crashed?)")
        r.passed += passed
        r.failed += failed
        r.skipped += skipped
        r.skips += [(f"XCTest {n}: {why}", None) for n, why in xc["skipped"]]
        parts.append(f"XCTest {passed + failed + skipped}")
    if st is None:
        r.problems.append("no Swift Testing output ('Test run started.' missing)")
    else:
        failed = len(st["failed"])
        skipped = len(st["skipped"])
        if st["run"] is None:
            r.problems.append("Swift Testing printed no 'Test run with N tests' line (crashed or killed?)")
            passed = st["passed"]
        else:
            total, verdict, issues = st["run"]
            if verdict == "failed" and not failed:
                failed = 1  # an issue recorded outside any test
            passed = max(0, total - failed - sum(1 for n, _ in st["skipped"] if not n.startswith("suite ")))
            if passed != st["passed"]:
                r.detail = f" (run line: {total} tests; {st['passed']} 'passed' lines)"
        r.passed += passed
        r.failed += failed
        r.skipped += skipped
        r.skips += [(f"Swift Testing {n}: {why}", None) for n, why in st["skipped"]]
        parts.append(f"Swift Testing {passed + failed + skipped}")
    r.name += f" ({', '.join(parts) or 'no tests'})"
    _finish(r, status, limit, allow, status_explained=r.failed > 0)
    return r


def pytest_result(text, status, limit, allow):
    r = Result("interop (pytest)")
    final = None
    for line in _lines(text):
        m = PY_FINAL.match(line.strip())
        if m:
            final = m.group(1)
        m = PY_SKIP.match(line)
        if m:  # conftest.py has applied PARLEY_ALLOW_SKIPS already
            r.skips.append((m.group(2), m.group(1) == "ALLOWED"))
    if final is None:
        r.problems.append("pytest printed no final 'N passed ... in S s' line (crashed or killed?)")
    else:
        counts = {}
        for n, what in PY_COUNT.findall(final):
            key = "error" if what.startswith("error") else what
            counts[key] = counts.get(key, 0) + int(n)
        r.passed = counts.get("passed", 0)
        r.failed = counts.get("failed", 0) + counts.get("error", 0)
        r.skipped = counts.get("skipped", 0)
    if r.skipped > len(r.skips):  # a skip conftest.py did not see: never allowed
        r.skips.append((f"{r.skipped - len(r.skips)} skip(s) not listed by conftest.py", False))
    _finish(r, status, limit, allow, status_explained=r.failed > 0 or (status == 1 and bool(r.unexpected)))
    return r


def _finish(r, status, limit, allow, status_explained):
    if status in TIMEOUT_STATUSES:
        # One failure: a missing summary line is what being killed looks like.
        r.problems = [f"TIMEOUT: killed after {limit} s (exit status {status}); counts are what it printed until then"]
    elif status != 0 and not status_explained and not r.problems:
        r.problems.append(f"exited with status {status} but reported no failed test")
    if status == 0 and r.passed == 0 and not r.problems:
        r.problems.append("ran no tests")
    r.skips = [(what, ok if ok is not None else bool(allow and re.search(allow, what))) for what, ok in r.skips]


def report(results, allow, out=sys.stdout):
    """Prints the summary; returns the exit status (0 only if nothing failed)."""
    w = lambda s="": print(s, file=out)
    w()
    w("== summary")
    bad = False
    for r in results:
        w(f"{r.name}: {r.passed} passed, {r.failed + len(r.problems)} failed, {r.skipped} skipped{r.detail}")
        for what, ok in r.skips:
            w(f"  {'ALLOWED' if ok else 'UNEXPECTED'} SKIP {what}")
    for r in results:
        for p in r.problems:
            w(f"FAIL {r.name.split(' (')[0]}: {p}")
            bad = True
        if r.failed:
            w(f"FAIL {r.name.split(' (')[0]}: {r.failed} failed test{'s' if r.failed != 1 else ''}")
            bad = True
        if r.unexpected:
            w(f"FAIL {r.name.split(' (')[0]}: {len(r.unexpected)} unexpected skip{'s' if len(r.unexpected) != 1 else ''} "
              f"(PARLEY_ALLOW_SKIPS={allow!r}; see Tests/interop/README.md)")
            bad = True
    passed = sum(r.passed for r in results)
    failed = sum(r.failed + len(r.problems) for r in results)
    skipped = sum(r.skipped for r in results)
    w(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if bad else 0


# --- self-test ---------------------------------------------------------------------------
# Hand-written samples of each format (Tests/summary-samples/); expected
# (passed, failed incl. broken suites, skipped, number of unexpected skips).
SAMPLES = {
    "swift-real-filter.txt": ("swift", 0, (4, 0, 0, 0)),  # captured: swift test --skip-build --filter SystemShimTests
    "swift-pass.txt": ("swift", 0, (5, 0, 0, 0)),
    "swift-skip.txt": ("swift", 0, (4, 0, 1, 1)),
    "swift-fail.txt": ("swift", 1, (5, 3, 2, 2)),
    "swift-crash.txt": ("swift", 134, (2, 1, 0, 0)),
    "swift-timeout.txt": ("swift", 124, (1, 1, 0, 0)),
    "pytest-pass.txt": ("pytest", 0, (299, 0, 0, 0)),
    "pytest-fail.txt": ("pytest", 1, (296, 4, 1, 0)),
    "pytest-unexpected-skip.txt": ("pytest", 1, (297, 0, 2, 1)),
    "pytest-crash.txt": ("pytest", 1, (0, 1, 0, 0)),
}


def self_test():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "summary-samples")
    bad = 0
    for name, (kind, status, want) in SAMPLES.items():
        with open(os.path.join(here, name), encoding="utf-8") as f:
            text = f.read()
        r = (swift_result if kind == "swift" else pytest_result)(text, status, 60, "")
        got = (r.passed, r.failed + len(r.problems), r.skipped, len(r.unexpected))
        ok = got == want
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {got}{'' if ok else f' expected {want}'} {r.problems}")
    # An allowed skip does not fail the run.
    with open(os.path.join(here, "swift-skip.txt"), encoding="utf-8") as f:
        r = swift_result(f.read(), 0, 60, "PARLEY_SOAK_SECONDS")
    ok = not r.unexpected
    bad += not ok
    print(f"{'ok  ' if ok else 'FAIL'} swift-skip.txt with PARLEY_ALLOW_SKIPS=PARLEY_SOAK_SECONDS: allowed")
    return 1 if bad else 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    allow = os.environ.get("PARLEY_ALLOW_SKIPS", "")
    results = []
    args = argv[1:]
    while args:
        kind, log, status, limit, args = args[0], args[1], int(args[2]), args[3], args[4:]
        try:
            with open(log, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as e:
            text = ""
            print(f"cannot read {log}: {e}")
        if kind == "--swift":
            results.append(swift_result(text, status, limit, allow))
        elif kind == "--pytest":
            results.append(pytest_result(text, status, limit, allow))
        else:
            raise SystemExit(f"unknown suite kind {kind}")
    return report(results, allow)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
