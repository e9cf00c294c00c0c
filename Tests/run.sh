#!/usr/bin/env bash
# The test command: set up a fresh machine, build, then run every test suite:
# the Swift tests (codec, shims, integration against the real binary, a short soak) and the
# interoperability tests with third-party clients (paho-mqtt, mosquitto_pub/sub).
#
# Each suite runs under `timeout` and its output is read by Tests/summary.py, which prints
# passed / failed / skipped per suite, every skip, a FAIL line for whatever fails the run,
# and as the very last line the totals:
#     swift test (XCTest 0, Swift Testing 214): 213 passed, 0 failed, 1 skipped
#       ALLOWED SKIP Swift Testing "...": ...
#     interop (pytest): 316 passed, 0 failed, 0 skipped
#     529 passed, 0 failed, 1 skipped
# The exit status is non-zero when a test fails, a suite times out or crashes (each such
# suite counts as one more failure), or a test is skipped whose "<name>: <reason>" the
# regular expression PARLEY_ALLOW_SKIPS does not match (unset or empty: no skip is allowed).
#
# Knobs (environment): PARLEY_SWIFT_TIMEOUT (s, default 1800), PARLEY_INTEROP_TIMEOUT (s,
# default 900), PARLEY_SOAK_SECONDS (default 15) and PARLEY_SOAK_PAIRS (default 250) for the
# short soak in `swift test` (Tests/soak.sh runs the long one), PARLEY_ALLOW_SKIPS.
set -euo pipefail
cd "$(dirname "$0")/.."

# Set-up and build: a failure here is one failure, and still ends with the totals line.
for step in "Tests/setup.sh" "swift build --product parley" "swift build --build-tests" \
            "python3 Tests/summary.py --self-test"; do
    # (the last one: the summary parser against its hand-written samples, Tests/summary-samples/)
    if ! $step; then
        echo "FAIL: $step"
        echo "0 passed, 1 failed, 0 skipped"
        exit 1
    fi
done

swift_limit="${PARLEY_SWIFT_TIMEOUT:-1800}"
interop_limit="${PARLEY_INTEROP_TIMEOUT:-900}"
swift_log=$(mktemp)
py_log=$(mktemp)
trap 'rm -f "$swift_log" "$py_log"' EXIT

# Swift: the short soak is bounded by PARLEY_SOAK_SECONDS of publishing plus at most 20 s of
# draining (SoakTests.swift); it needs 2 sockets per client on this host, hence the ulimit.
echo "== swift test (timeout ${swift_limit} s; soak ${PARLEY_SOAK_SECONDS:-15} s, ${PARLEY_SOAK_PAIRS:-250} pairs)"
set +e
(
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    PARLEY_SOAK_SECONDS="${PARLEY_SOAK_SECONDS:-15}" PARLEY_SOAK_PAIRS="${PARLEY_SOAK_PAIRS:-250}" \
        exec timeout --kill-after=30 "$swift_limit" swift test --skip-build
) 2>&1 | tee "$swift_log"
swift_status=${PIPESTATUS[0]}
set -e
if [ "$swift_status" -eq 124 ] || [ "$swift_status" -eq 137 ]; then echo "swift test: TIMEOUT after ${swift_limit} s"; fi

echo "== interop: pytest Tests/interop (timeout ${interop_limit} s)"
set +e
timeout --kill-after=30 "$interop_limit" python3 -m pytest -q Tests/interop 2>&1 | tee "$py_log"
py_status=${PIPESTATUS[0]}
set -e
if [ "$py_status" -eq 124 ] || [ "$py_status" -eq 137 ]; then echo "interop: TIMEOUT after ${interop_limit} s"; fi

# Prints the per-suite lines and, last, "N passed, N failed, N skipped"; exit status 1 on
# any failure, timeout, crash or unexpected skip (set -e passes it on).
python3 Tests/summary.py --swift "$swift_log" "$swift_status" "$swift_limit" \
                         --pytest "$py_log" "$py_status" "$interop_limit"
