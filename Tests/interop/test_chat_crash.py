"""Chat crash test, short mode: 3 rounds of QoS 1 posts by 4 posters (3.1.1 and 5.0) to one
room, kill -9 of the broker at a random moment and a restart on the same port and data
directory, the posters re-posting every unacknowledged post with the same ckey. Then, from
the database: ids exactly 1..N, every acknowledged post stored exactly once, per-poster
order; and a persistent v5 reader saw every id, in order per connection. The full test is
`Tests/crash/chat_crash_test.py`; this runs the same code.

Uses the same binary as the rest of the suite (`.build/debug/parley`, or PARLEY_BIN) with
`plugins = chat` and the default `durability = full`. About 20-35 s. CHAT_CRASH_SEED=N
repeats a run.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "crash"))

from conftest import BIN  # noqa: E402
import chat_crash_test  # noqa: E402


def test_chat_posts_survive_kill_9_once_and_in_order():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"broker binary {BIN} not found; build it with "
                    "`flock /tmp/parley-build.lock swift build --product parley`", pytrace=False)
    seed = int(os.environ.get("CHAT_CRASH_SEED", "0")) or None
    try:
        res = chat_crash_test.run(binary=BIN, rounds=3, seconds=(4.0, 6.5), seed=seed, posters=4,
                                  window=8, early=0.2, drain_max=20.0, verbose=False)
    except chat_crash_test.HarnessError as e:
        pytest.fail(f"chat crash test could not run: {e}", pytrace=False)
    except chat_crash_test.BrokerDied as e:
        pytest.fail(f"the broker died by itself: {e}", pytrace=False)
    print(res.text)
    t = res.totals
    assert t["acked"] > 0 and t["N"] > 0, res.text
    assert res.ok, "chat posts lost, duplicated or reordered across kill -9:\n" + res.text
