"""SPEC 3: direct messages to users/<user>/inbox are stamped like posts (sender and time
from the server, an id in the recipient's inbox sequence); unread counts per room are
retained on users/<user>/unread ({"<room>": <count>}: messages after the member's read
marker, their own excluded) and follow posts and receipts."""

import json
import time

from chat import assert_recent, chat, chat_templates, envelope  # noqa: F401  (fixtures)

CAST = dict(users=("alice", "bob", "carol"), rooms={"general": ("alice", ["bob", "carol"])})


def next_message(c, timeout=3.0):
    return c.messages.get(timeout=timeout)


def unread_of(c, want, timeout=4.0):
    """The latest users/<u>/unread payload once it equals `want` (published at most once a
    second), or the last one seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            m = c.messages.get(timeout=max(0.01, deadline - time.monotonic()))
        except Exception:
            break
        if m.topic.endswith("/unread"):
            last = json.loads(m.payload)
            if last == want:
                return last
    return last


def test_direct_message_is_stamped_with_an_inbox_id_and_cannot_be_spoofed(chat):  # noqa: F811
    c = chat(**CAST)
    bob = c.client("bob")
    assert bob.subscribe("users/bob/inbox", qos=1) == [1]
    alice = c.client("alice")
    assert alice.publish("users/bob/inbox", json.dumps({"body": "psst", "from": "carol", "id": 99}), qos=1) == 0
    assert c.client("carol").publish("users/bob/inbox", "hello bob", qos=1) == 0
    first, second = envelope(next_message(bob).payload), envelope(next_message(bob).payload)
    assert (first["id"], first["from"], first["body"]) == (1, "alice", "psst")
    assert (second["id"], second["from"], second["body"]) == (2, "carol", "hello bob")
    assert set(first) == {"id", "from", "ts", "body"}
    assert_recent(first["ts"])
    # Nobody else reads bob's inbox, and the sequence survives a restart.
    assert alice.subscribe("users/bob/inbox", qos=1) == [0x87]
    c.restart()
    bob = c.client("bob")
    assert bob.subscribe("users/bob/inbox", qos=1) == [1]
    assert c.client("alice").publish("users/bob/inbox", "after restart", qos=1) == 0
    assert envelope(next_message(bob).payload)["id"] == 3


def test_direct_message_to_an_unknown_user_is_refused(chat):  # noqa: F811
    c = chat(**CAST)
    assert c.client("alice").publish("users/nobody/inbox", "hi", qos=1) == 0x87


def test_unread_counts_follow_posts_and_receipts(chat):  # noqa: F811
    c = chat(**CAST)
    bob = c.client("bob")
    assert bob.subscribe("users/bob/unread", qos=1) == [1]
    alice = c.client("alice")
    for i in range(3):
        assert alice.publish("rooms/general/messages", f"m{i}", qos=1) == 0
    assert unread_of(bob, {"general": 3}) == {"general": 3}
    # bob's own post does not count for bob; it does for carol.
    assert bob.publish("rooms/general/messages", "mine", qos=1) == 0
    carol = c.client("carol")
    assert carol.subscribe("users/carol/unread", qos=1) == [1]
    assert unread_of(carol, {"general": 4}) == {"general": 4}
    # A receipt up to id 2 leaves id 3 (alice's) unread for bob; id 4 is his own.
    assert bob.publish("rooms/general/receipts", json.dumps({"up_to": 2}), qos=1) == 0
    assert unread_of(bob, {"general": 1}) == {"general": 1}
    # Retained: a later subscriber gets the current counts at once.
    later = c.client("bob")
    assert later.subscribe("users/bob/unread", qos=1) == [1]
    assert unread_of(later, {"general": 1}) == {"general": 1}
    # Across a restart the counts are rebuilt from history and markers.
    c.restart()
    alice = c.client("alice")
    assert alice.publish("rooms/general/messages", "after restart", qos=1) == 0
    bob = c.client("bob")
    assert bob.subscribe("users/bob/unread", qos=1) == [1]
    assert unread_of(bob, {"general": 2}) == {"general": 2}
