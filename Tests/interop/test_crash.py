"""Crash test, short mode: 3 rounds of QoS 1/2 load, kill -9 and restart on the
same port and data directory, then a drain; every acknowledged PUBLISH must reach
every persistent subscriber (QoS 2 exactly once, QoS 1 at least once) in per-
publisher order. The full test (20 rounds, also against Mosquitto) is
`Tests/crash/crash_test.py`; this runs the same code.

Uses the same binary as the rest of the suite (`.build/debug/parley`, or
PARLEY_BIN) with its built-in defaults (`durability = full`). About 20-40 s.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "crash"))

from conftest import BIN  # noqa: E402
import crash_test  # noqa: E402


def test_nothing_acknowledged_is_lost_across_kill_9():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"broker binary {BIN} not found; build it with "
                    "`flock /tmp/parley-build.lock swift build --product parley`", pytrace=False)
    seed = int(os.environ.get("CRASH_SEED", "0")) or None
    try:
        res = crash_test.run(broker="parley", binary=BIN, rounds=3, seconds=(2.0, 3.5), seed=seed,
                             publishers=4, subscribers=4, window=8, drain_quiet=3.0, drain_max=15.0,
                             verbose=False)
    except crash_test.HarnessError as e:
        pytest.fail(f"crash test could not run: {e}", pytrace=False)
    print(res.text)
    t = res.totals
    assert t["acked"] > 0, res.text
    assert res.ok, "acknowledged messages lost, duplicated or reordered across kill -9:\n" + res.text
    assert t["lost"] == 0 and t["dup_qos2"] == 0 and t["out_of_order"] == 0, res.text
