#!/usr/bin/env bash
# The test command: set up a fresh machine, build, then run every test suite:
# the Swift tests (codec, shims, integration against the real binary) and the
# interoperability tests with third-party clients (paho-mqtt, mosquitto_pub/sub).
set -euo pipefail
cd "$(dirname "$0")/.."

Tests/setup.sh
swift build --product parley

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
swift test 2>&1 | tee "$log"
swift_status=${PIPESTATUS[0]}
set -e
swift_passed=$(grep -Eo 'Test run with [0-9]+ tests?' "$log" | tail -n 1 | grep -Eo '[0-9]+' || echo 0)
swift_failed=$(grep -Eo 'with [0-9]+ issues?' "$log" | tail -n 1 | grep -Eo '[0-9]+' || echo 0)

set +e
python3 -m pytest -q Tests/interop 2>&1 | tee "$log"
py_status=${PIPESTATUS[0]}
set -e
py_passed=$(grep -Eo '[0-9]+ passed' "$log" | tail -n 1 | grep -Eo '[0-9]+' || echo 0)
py_failed=$(grep -Eo '[0-9]+ failed' "$log" | tail -n 1 | grep -Eo '[0-9]+' || echo 0)

echo
echo "swift test: $swift_passed passed (status $swift_status); interop: $py_passed passed, $py_failed failed (status $py_status)"
if [ "$swift_status" -ne 0 ] || [ "$py_status" -ne 0 ] || [ "$swift_passed" -eq 0 ] || [ "$py_passed" -eq 0 ]; then
    echo "$((swift_passed + py_passed)) passed, $((py_failed + (swift_status != 0 ? 1 : 0))) failed"
    exit 1
fi
echo "$((swift_passed + py_passed)) passed, 0 failed"
