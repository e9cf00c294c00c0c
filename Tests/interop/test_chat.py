"""The chat plugin (SPEC sections 2, 3 and 7) against the real binary, with paho-mqtt
(3.1.1 and 5.0), mosquitto_pub / mosquitto_sub and raw CONNECTs.

Every broker here runs with `plugins = chat` on a fresh data directory whose users and rooms
were made with `parley user add` / `parley room create|add` (chat.py: made once per cast and
copied; changes while a broker runs use the command line directly). The usual cast:
alice owns `general` (bob is a member), carol owns `side` (dave is a member); so alice and
bob share a room, carol and dave share another, and nobody else shares one.

Negative checks use a barrier where one exists (the next post's id shows that a refused
post was never stored; the next event shows that a refused publish was not delivered before
it); the remaining short windows are for "nothing more arrives".
"""

import json
import os
import re
import threading
import time
import uuid

import pytest

import raw as r
from chat import (History, assert_recent, chat, chat_templates, check_post, envelope,  # noqa: F401
                  id_on_loop, parse_ts, password_of, user_props)
from conftest import wait_until
from pahoclient import publish_props
from test_mosquitto_clients import Sub, mpub

VERSIONS = [4, 5]
CAST = dict(users=("alice", "bob", "carol", "dave"),
            rooms={"general": ("alice", ["bob"]), "side": ("carol", ["dave"])})
NOTHING = 0.3  # seconds in which nothing (more) may arrive


def sub_refused(version):
    """SUBACK code of a refused subscription: v5 0x87, 3.1.1 0x80."""
    return 0x87 if version == 5 else 0x80


def refuse(c, version, topic, payload, code=0x87, retain=False):
    """A PUBLISH the broker must refuse. v5: QoS 1, answered with PUBACK `code`. 3.1.1 has no
    way to hear a refusal: QoS 0, dropped, and the client stays connected (a SUBSCRIBE round
    trip after it works). What a refused 3.1.1 QoS 1/2 PUBLISH gets: test_refused_publish_311."""
    if version == 5:
        rc = c.publish(topic, payload, qos=1, retain=retain)
        assert rc == code, f"PUBLISH {topic}: PUBACK 0x{rc:02X}, expected 0x{code:02X}"
    else:
        c.publish(topic, payload, qos=0, retain=retain)
        assert c.subscribe(f"sync/{uuid.uuid4().hex[:8]}", qos=0) == [0], \
            f"3.1.1 client lost after a refused QoS 0 PUBLISH to {topic}"


def topics_of(msgs):
    return [m.topic for m in msgs]


def gather(c, until, timeout=3.0, quiet=NOTHING):
    """Messages of `c` until `until(list)` holds (bounded), then whatever comes in `quiet` s."""
    got = []
    deadline = time.monotonic() + timeout
    while not until(got):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out; got {[(m.topic, m.payload) for m in got]}")
        try:
            got.append(c.messages.get(timeout=remaining))
        except Exception:
            pass
    got += c.drain(quiet)
    return got


def upto(c, n, timeout=3.0):
    """Up to n messages of `c`, as many as arrive within `timeout` (never raises)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        try:
            out.append(c.messages.get(timeout=max(0.01, deadline - time.monotonic())))
        except Exception:
            pass
    return out


def pending(c):
    """What `c` has received and not yet taken, without waiting."""
    out = []
    while True:
        try:
            out.append(c.messages.get_nowait())
        except Exception:
            return out


def quiet(*clients, wait=NOTHING, allow=lambda m: False):
    """Nothing (but what `allow` accepts) arrives at any of `clients` within one window."""
    time.sleep(wait)
    for c in clients:
        got = [m for m in pending(c) if not allow(m)]
        assert not got, f"unexpected messages: {[(m.topic, m.payload) for m in got]}"


def gather_all(pairs, timeout=3.0):
    """gather() for several (client, until) at once, with one quiet window for all."""
    out = [gather(c, until, timeout, quiet=0) for c, until in pairs]
    time.sleep(NOTHING)
    return [got + pending(c) for got, (c, _) in zip(out, pairs)]


def event_of(msg, type_, user):
    """A room event `{"type", "user", "by", "ts"}` (made by the command line: by = null)."""
    e = envelope(msg.payload)
    assert set(e) == {"type", "user", "by", "ts"}, e
    assert (e["type"], e["user"], e["by"]) == (type_, user, None), e
    assert_recent(e["ts"])
    return e


def wait_event(c, room, type_, user, timeout=3.0):
    m = c.get(timeout)
    assert m.topic == f"rooms/{room}/events", (m.topic, m.payload)
    return event_of(m, type_, user)


# =====================================================================================
# SPEC 2: access control table, row by row
# =====================================================================================

MEMBER_KINDS = {
    "messages": "hi",
    "typing": "...",
    "receipts": '{"up_to": 0}',
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", list(MEMBER_KINDS))
def test_acl_rooms_room_kind_publish_and_subscribe_members_only(chat, kind, version):
    """SPEC 2 rows rooms/<room>/messages|typing|receipts: publish members, subscribe members.
    Non-members and anonymous clients are refused both ways (SUBACK 0x87 / 3.1.1 0x80; v5
    PUBACK 0x87, 3.1.1 dropped); a member's publish reaches the members' subscriptions."""
    c = chat(**CAST, anonymous=True)
    t = f"rooms/general/{kind}"
    observer = c.client("alice")
    assert observer.subscribe(t, qos=1) == [1]
    member = c.client("bob", version=version)
    outsider = c.client("carol", version=version)
    anon = c.client(None, version=version)
    assert member.subscribe(t, qos=1) == [1]
    assert outsider.subscribe(t, qos=1) == [sub_refused(version)]
    assert anon.subscribe(t, qos=1) == [sub_refused(version)]

    refuse(outsider, version, t, MEMBER_KINDS[kind])
    refuse(anon, version, t, MEMBER_KINDS[kind])
    assert member.publish(t, MEMBER_KINDS[kind], qos=1) == 0
    for sub in (observer, member):
        m = sub.get()
        assert m.topic == t
        e = envelope(m.payload)
        assert e["from"] == "bob", e  # the refused publishes came first and were not delivered
        if kind == "messages":
            check_post(e, 1, "general", "bob", "hi")  # id 1: no refused post was stored
    quiet(observer, member, outsider, anon)


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_rooms_messages_retained_publish_refused(chat, version):
    """SPEC 2/3: rooms/<room>/messages is never retained: a member's retained post is refused
    (v5 0x87; 3.1.1 dropped), and a later subscriber gets no retained message."""
    c = chat(**CAST)
    bob = c.client("bob", version=version)
    refuse(bob, version, "rooms/general/messages", "sticky", retain=True)
    assert bob.publish("rooms/general/messages", "plain", qos=1) == 0
    alice = c.client("alice")
    assert alice.subscribe("rooms/general/messages", qos=1) == [1]
    alice.expect_no_message(NOTHING)
    h = History(alice, "alice")
    assert [m["body"] for m in h.ok("general", {})["messages"]] == ["plain"]


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_rooms_events_publish_broker_only_subscribe_members(chat, version):
    """SPEC 2 row rooms/<room>/events: nobody but the broker publishes (a member's publish:
    v5 0x87, 3.1.1 dropped); members subscribe, others are refused."""
    c = chat(**CAST, anonymous=True)
    t = "rooms/general/events"
    alice = c.client("alice", version=version)
    bob = c.client("bob", version=version)
    carol = c.client("carol", version=version)
    anon = c.client(None, version=version)
    assert alice.subscribe(t, qos=1) == [1]
    assert bob.subscribe(t, qos=1) == [1]
    assert carol.subscribe(t, qos=1) == [sub_refused(version)]
    assert anon.subscribe(t, qos=1) == [sub_refused(version)]
    fake = json.dumps({"type": "kick", "user": "alice", "by": "bob", "ts": "2020-01-01T00:00:00.000Z"})
    refuse(bob, version, t, fake)
    refuse(alice, version, t, fake)  # the owner neither
    refuse(anon, version, t, fake)
    c.ok("room", "add", "general", "dave")  # barrier: the broker's own event comes next
    for sub in (alice, bob):
        wait_event(sub, "general", "join", "dave")
    quiet(alice, bob, carol)


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_rooms_history_members_publish_nobody_subscribes(chat, version):
    """SPEC 2 row rooms/<room>/history: members publish requests, nobody subscribes (not even
    a member or the owner: SUBACK 0x87 / 0x80). A non-member's request is refused (0x87)."""
    c = chat(**CAST, anonymous=True)
    t = "rooms/general/history"
    for user in ("alice", "bob", "carol", None):
        s = c.client(user, version=version)
        assert s.subscribe(t, qos=1) == [sub_refused(version)], user
    alice = c.client("alice")
    assert alice.publish("rooms/general/messages", "one", qos=1) == 0
    h = History(c.client("bob"), "bob")
    ans = h.ok("general", {})
    assert [m["id"] for m in ans["messages"]] == [1] and ans["has_more"] is False
    hc = History(c.client("carol"), "carol")
    rc, ans = hc.request("general", {})
    assert (rc, ans) == (0x87, None)
    watcher = c.client("alice")
    assert watcher.subscribe("#", qos=1) == [1]
    watcher.drain(0.1)  # retained presence
    if version == 4:  # no response topic in 3.1.1: dropped
        refuse(c.client("bob", version=4), 4, t, "{}")
    quiet(hc.c, watcher, allow=lambda m: m.topic.startswith("presence/"))


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_users_inbox_any_user_publishes_only_owner_subscribes(chat, version):
    """SPEC 2 row users/<user>/inbox: any user publishes (also one sharing no room), only
    <user> subscribes; anonymous clients do neither. (Direct-message stamping is not built:
    only delivery is checked here, not the payload.)"""
    c = chat(**CAST, anonymous=True)
    t = "users/bob/inbox"
    bob = c.client("bob", version=version)
    assert bob.subscribe(t, qos=1) == [1]
    for user in ("alice", "carol", None):
        assert c.client(user, version=version).subscribe(t, qos=1) == [sub_refused(version)], user
    anon = c.client(None, version=version)
    refuse(anon, version, t, "from nobody")
    assert c.client("alice", version=version).publish(t, "from alice", qos=1) == 0
    assert c.client("carol", version=version).publish(t, "from carol", qos=1) == 0
    got = gather(bob, lambda g: len(g) >= 2)
    assert topics_of(got) == [t, t], [(m.topic, m.payload) for m in got]
    assert all(b"nobody" not in m.payload for m in got)


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_users_other_topics_broker_only_owner_subscribes(chat, version):
    """SPEC 2 row users/<user>/# (other than the inbox): the broker publishes (a user's own
    publish there is refused too), only <user> subscribes."""
    c = chat(**CAST, anonymous=True)
    bob = c.client("bob", version=version)
    assert bob.subscribe("users/bob/#", qos=1) == [1]
    assert bob.subscribe("users/bob/replies", qos=1) == [1]
    alice = c.client("alice", version=version)
    assert alice.subscribe("users/bob/replies", qos=1) == [sub_refused(version)]
    assert alice.subscribe("users/bob/#", qos=1) == [sub_refused(version)]
    assert c.client(None, version=version).subscribe("users/bob/replies", qos=1) == [sub_refused(version)]
    refuse(alice, version, "users/bob/replies", "fake")
    refuse(bob, version, "users/bob/unread", '{"general": 99}')
    refuse(bob, version, "users/bob/replies", "self")
    bob.expect_no_message(NOTHING)


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_presence_broker_only_subscribe_users_sharing_a_room(chat, version):
    """SPEC 2 row presence/<user>: broker only (retained); subscribe: users sharing a room with
    <user> (and the user), not others nor anonymous clients."""
    c = chat(**CAST, anonymous=True)
    alice = c.client("alice", version=version)
    assert alice.subscribe("presence/bob", qos=1) == [1]
    c.client("bob")  # bob online: the broker's presence/bob
    m = alice.get()
    assert m.topic == "presence/bob" and envelope(m.payload)["status"] == "online", m
    assert alice.subscribe("presence/alice", qos=1) == [1]  # oneself
    gather(alice, lambda g: any(x.topic == "presence/alice" for x in g), quiet=0)
    assert alice.subscribe("presence/carol", qos=1) == [sub_refused(version)]
    assert c.client("carol", version=version).subscribe("presence/bob", qos=1) == [sub_refused(version)]
    assert c.client("carol", version=version).subscribe("presence/dave", qos=1) == [1]
    assert c.client(None, version=version).subscribe("presence/bob", qos=1) == [sub_refused(version)]
    spoof = json.dumps({"user": "bob", "status": "offline", "last_seen": "2020-01-01T00:00:00.000Z"})
    bob2 = c.client("bob", version=version)
    refuse(bob2, version, "presence/bob", spoof, retain=True)
    refuse(alice, version, "presence/bob", spoof, retain=True)
    alice.expect_no_message(NOTHING)
    later = c.client("alice")
    assert later.subscribe("presence/bob", qos=1) == [1]
    m = later.get()
    assert envelope(m.payload)["status"] == "online", m.payload


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_plain_topics_for_users_and_anonymous_when_allowed(chat, version):
    """SPEC 2 row "anything else": authenticated users, and anonymous clients with
    allow_anonymous = true, publish and subscribe plain topics."""
    c = chat(**CAST, anonymous=True)
    alice = c.client("alice", version=version)
    anon = c.client(None, version=version)
    assert alice.subscribe("plain/x", qos=1) == [1]
    assert anon.subscribe("plain/x", qos=1) == [1]
    assert anon.publish("plain/x", "from anon", qos=1) == 0
    assert alice.publish("plain/x", "from alice", qos=1) == 0
    for s in (alice, anon):
        got = s.collect(2)
        assert sorted(m.payload for m in got) == [b"from alice", b"from anon"]


@pytest.mark.parametrize("version", VERSIONS)
def test_anonymous_clients_refused_by_default(chat, raw, version):
    """SPEC 2: with the chat plugin, anonymous clients are refused unless allow_anonymous
    (v5 CONNACK 0x87 not authorized, 3.1.1 return code 5); users still log in."""
    c = chat(**CAST)
    rc = raw(c.port, version=version)
    ca = rc.connect(c.client_id("anon"))
    assert ca.reason == (0x87 if version == 5 else 0x05), ca
    _, ca = c.raw_login("alice", version=version)
    assert ca.reason == 0, ca


def test_acl_dollar_topics_nobody_publishes(chat):
    """SPEC 2 row $-topics: nobody publishes (v5 PUBACK 0x87)."""
    c = chat(**CAST)
    alice = c.client("alice")
    assert alice.publish("$SYS/broker/fake", "x", qos=1) == 0x87
    assert alice.publish("$chat/x", "x", qos=1) == 0x87


# --- wildcards: granted, but each delivery is checked ----------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_acl_wildcard_room_filters_deliver_only_member_rooms(chat, version):
    """SPEC 2: "a wildcard filter never delivers anything its user may not read": carol (in
    `side` only) subscribed to rooms/+/messages, rooms/#, +/+/+ and # gets side's posts,
    typing and events, never general's."""
    c = chat(users=CAST["users"] + ("bob2",), rooms=CAST["rooms"])
    filters = ["rooms/+/messages", "rooms/#", "+/+/+", "#", "rooms/+/+"]
    subs = {}
    for f in filters:
        s = c.client("carol", version=version)
        assert s.subscribe(f, qos=1) == [1], f
        subs[f] = s
    alice, dave = c.client("alice"), c.client("dave")
    assert alice.publish("rooms/general/messages", "secret", qos=1) == 0
    assert dave.publish("rooms/side/messages", "open", qos=1) == 0
    assert alice.publish("rooms/general/typing", "x", qos=1) == 0
    assert dave.publish("rooms/side/typing", "x", qos=1) == 0
    assert alice.publish("rooms/general/receipts", '{"up_to": 1}', qos=1) == 0
    assert dave.publish("rooms/side/receipts", '{"up_to": 1}', qos=1) == 0
    c.ok("room", "add", "general", "bob2")
    c.ok("room", "add", "side", "bob")  # applied after general's: its event comes after
    expect = {
        "rooms/+/messages": {"rooms/side/messages"},
        "rooms/#": {"rooms/side/messages", "rooms/side/typing", "rooms/side/receipts", "rooms/side/events"},
        "+/+/+": {"rooms/side/messages", "rooms/side/typing", "rooms/side/receipts", "rooms/side/events"},
        "#": {"rooms/side/messages", "rooms/side/typing", "rooms/side/receipts", "rooms/side/events"},
        "rooms/+/+": {"rooms/side/messages", "rooms/side/typing", "rooms/side/receipts", "rooms/side/events"},
    }
    pairs = [(s, lambda got, want=expect[f]: want <= {m.topic for m in got}) for f, s in subs.items()]
    for (f, s), got in zip(subs.items(), gather_all(pairs)):
        want = expect[f]
        got = [m for m in got if m.topic.startswith("rooms/")]
        leaked = [(m.topic, m.payload) for m in got if m.topic.startswith("rooms/general/")]
        assert not leaked, (f, leaked)
        side = [m for m in got if m.topic.startswith("rooms/side/")]
        assert sorted({m.topic for m in side}) == sorted(want), (f, topics_of(got))
        assert len(side) == len(want), (f, [(m.topic, m.payload) for m in side])


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_wildcard_users_and_presence_filters_deliver_only_readable(chat, version):
    """SPEC 2: users/# and presence/# are granted, but deliver only the user's own users/...
    topics and the presence of users sharing a room (live changes here; retained ones: next test)."""
    c = chat(**CAST)
    carol_users = c.client("carol", version=version)
    assert carol_users.subscribe("users/#", qos=1) == [1]
    carol_pres = c.client("carol", version=version)
    assert carol_pres.subscribe("presence/#", qos=1) == [1]
    carol_plus = c.client("carol", version=version)
    assert carol_plus.subscribe("presence/+", qos=1) == [1]
    for u in ("alice", "bob", "dave"):
        c.client(u)  # online now: live presence changes
    pairs = [(s, lambda g: {"presence/dave", "presence/carol"} <= set(topics_of(g))) for s in (carol_pres, carol_plus)]
    for got in gather_all(pairs):
        assert sorted(topics_of(got)) == ["presence/carol", "presence/dave"], topics_of(got)
    alice = c.client("alice")
    assert alice.publish("users/bob/inbox", "to bob", qos=1) == 0
    assert alice.publish("users/carol/inbox", "to carol", qos=1) == 0
    got = gather(carol_users, lambda g: len(g) >= 1)
    assert topics_of(got) == ["users/carol/inbox"], [(m.topic, m.payload) for m in got]


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_wildcard_subscribe_gets_only_readable_retained_presence(chat, version):
    """SPEC 2: the delivery check holds for retained messages too: subscribing presence/#,
    presence/+ or # when alice, bob and dave are online (retained presence/<user> for each)
    delivers carol only dave's (and her own), and an anonymous # none."""
    c = chat(**CAST, anonymous=True)
    for u in ("alice", "bob", "dave", "carol"):
        c.client(u)
    for u in ("alice", "bob", "dave", "carol"):  # wait until the four are retained
        w = c.client(u)
        assert w.subscribe(f"presence/{u}", qos=1) == [1]
        presence_of(w.get(), u, "online")
    subs = {}
    for who, f in (("carol", "presence/#"), ("carol", "presence/+"), ("carol", "#"), (None, "#")):
        s = c.client(who, version=version)
        assert s.subscribe(f, qos=1) == [1]
        subs[f"{who or 'anonymous'} {f}"] = s
    time.sleep(NOTHING)
    got = {k: sorted((m.topic, m.retain) for m in pending(s) if m.topic.startswith("presence/"))
           for k, s in subs.items()}
    mine = [("presence/carol", True), ("presence/dave", True)]
    assert got == {"carol presence/#": mine, "carol presence/+": mine, "carol #": mine, "anonymous #": []}


def test_acl_wildcards_never_deliver_history_requests_or_others_answers(chat):
    """SPEC 2: rooms/<room>/history has no subscribers, wildcards included: alice's #,
    rooms/general/#, rooms/general/+ and rooms/+/+ see neither bob's history request nor the
    answer on users/bob/..."""
    c = chat(**CAST)
    subs = {}
    for f in ("#", "rooms/general/#", "rooms/general/+", "rooms/+/+", "+/general/history", "users/+/#"):
        s = c.client("alice")
        assert s.subscribe(f, qos=1) == [1], f
        subs[f] = s
    h = History(c.client("bob"), "bob")
    assert h.ok("general", {"limit": 5}) == {"messages": [], "has_more": False}
    assert h.c.publish("rooms/general/messages", "barrier", qos=1) == 0
    # the post made after the request is the barrier where the filter matches it
    pairs = [(s, (lambda g: True) if f in ("+/general/history", "users/+/#")
              else (lambda g: any(m.topic == "rooms/general/messages" for m in g))) for f, s in subs.items()]
    for f, got in zip(subs, gather_all(pairs)):
        bad = [(m.topic, m.payload) for m in got if m.topic.endswith("/history") or m.topic.startswith("users/bob/")]
        assert not bad, (f, bad)


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_anonymous_wildcards_deliver_only_plain_topics(chat, version):
    """SPEC 2: an anonymous client (allow_anonymous) may subscribe #, which delivers plain
    topics only; rooms/+/messages, users/# and presence/# are refused to it."""
    c = chat(**CAST, anonymous=True)
    anon = c.client(None, version=version)
    assert anon.subscribe("#", qos=1) == [1]
    c.client("bob")  # bob's presence (live) is not for anonymous eyes either
    for f in ("rooms/+/messages", "users/#", "presence/#"):
        assert c.client(None, version=version).subscribe(f, qos=1) == [sub_refused(version)], f
    alice = c.client("alice")
    assert alice.publish("rooms/general/messages", "secret", qos=1) == 0
    assert alice.publish("users/bob/inbox", "dm", qos=1) == 0
    assert alice.publish("plain/topic", "public", qos=1) == 0
    got = gather(anon, lambda g: any(m.topic == "plain/topic" for m in g))
    assert topics_of(got) == ["plain/topic"], [(m.topic, m.payload) for m in got]


# =====================================================================================
# SPEC 3: posting
# =====================================================================================

def test_post_envelope_and_v5_user_properties(chat):
    """SPEC 3: every subscriber receives the server-stamped envelope {"id", "room", "from",
    "ts", "body", "ckey"?}; v5 subscribers also user properties parley-id, parley-from,
    parley-ts; 3.1.1 subscribers get the same JSON."""
    c = chat(**CAST)
    v5 = c.client("alice")
    v4 = c.client("alice", version=4)
    for s in (v5, v4):
        assert s.subscribe("rooms/general/messages", qos=1) == [1]
    bob = c.client("bob")
    assert bob.publish("rooms/general/messages", "héllo wörld", qos=1) == 0
    assert bob.publish("rooms/general/messages", json.dumps({"body": "with key", "ckey": "c-1"}), qos=1) == 0
    a = v5.collect(2)
    b = v4.collect(2)
    e1 = check_post(a[0].payload, 1, "general", "bob", "héllo wörld")
    e2 = check_post(a[1].payload, 2, "general", "bob", "with key", ckey="c-1")
    assert [m.payload for m in b] == [m.payload for m in a]
    for m, e in ((a[0], e1), (a[1], e2)):
        assert user_props(m) == [("parley-id", str(e["id"])), ("parley-from", "bob"), ("parley-ts", e["ts"])]
        assert m.qos == 1
    assert parse_ts(e1["ts"]) <= parse_ts(e2["ts"])


def test_post_ids_are_per_room_sequences_from_1(chat):
    """SPEC 3: `id` is the room's own sequence 1, 2, 3, ...: two rooms count separately."""
    c = chat(users=("alice", "bob"), rooms={"general": ("alice", ["bob"]), "other": ("bob", ["alice"])})
    s = c.client("alice")
    assert s.subscribe([("rooms/general/messages", 1), ("rooms/other/messages", 1)]) == [1, 1]
    bob = c.client("bob")
    for room, body in (("general", "g1"), ("other", "o1"), ("general", "g2"), ("other", "o2"), ("other", "o3")):
        assert bob.publish(f"rooms/{room}/messages", body, qos=1) == 0
    got = [envelope(m.payload) for m in s.collect(5)]
    ids = {(e["room"], e["body"]): e["id"] for e in got}
    assert ids == {("general", "g1"): 1, ("general", "g2"): 2, ("other", "o1"): 1, ("other", "o2"): 2,
                   ("other", "o3"): 3}


def test_post_body_limits_v5_0x99(chat):
    """SPEC 3: a body is 1..max_message_body (16K) bytes of UTF-8, plain or {"body", "ckey"}
    (ckey at most 64 characters); anything else: v5 PUBACK 0x99, nothing stored or delivered."""
    c = chat(**CAST)
    sub = c.client("alice")
    assert sub.subscribe("rooms/general/messages", qos=1) == [1]
    bob = c.client("bob")
    t = "rooms/general/messages"
    bad = [
        b"",
        b"x" * 16385,
        b"\xff\xfe invalid utf-8",
        json.dumps({"text": "no body"}).encode(),
        json.dumps({"body": ""}).encode(),
        json.dumps({"body": 42}).encode(),
        json.dumps({"body": "x" * 16385}).encode(),
        json.dumps({"body": "ok", "ckey": "k" * 65}).encode(),
        json.dumps({"body": "ok", "ckey": ""}).encode(),
        json.dumps({"body": "ok", "ckey": 7}).encode(),
    ]
    for p in bad:
        assert bob.publish(t, p, qos=1) == 0x99, p[:60]
    good = ["x" * 16384, "é" * 8192, json.dumps({"body": "y" * 16384, "ckey": "k" * 64})]
    for p in good:
        assert bob.publish(t, p, qos=1) == 0, p[:60]
    got = [envelope(m.payload) for m in sub.collect(3)]
    assert [e["id"] for e in got] == [1, 2, 3]  # none of the refused ones took an id
    assert [len(e["body"].encode()) for e in got] == [16384, 16384, 16384]
    sub.expect_no_message(NOTHING)


REFUSED_311 = [  # (case, user, topic, payload, qos, retain)
    ("bad body", "bob", "rooms/general/messages", b"", 1, False),
    ("invalid UTF-8 body", "bob", "rooms/general/messages", b"\xff\xfe", 1, False),
    ("non-member post", "carol", "rooms/general/messages", b"hi", 1, False),
    ("non-member post QoS 2", "carol", "rooms/general/messages", b"hi", 2, False),
    ("retained post", "bob", "rooms/general/messages", b"hi", 1, True),
    ("events topic", "alice", "rooms/general/events", b"{}", 1, False),
    ("presence topic", "bob", "presence/bob", b"{}", 1, True),
    ("non-member post QoS 0", "carol", "rooms/general/messages", b"hi", 0, False),
]


def test_refused_publish_311_never_delivered_and_logged(chat, raw):
    """SPEC 2: a refused 3.1.1 PUBLISH is "dropped (and logged)". 3.1.1 cannot carry a refusal:
    MQTT-3.3.5-2 lets the server either acknowledge a QoS 1/2 PUBLISH normally or close the
    connection. Parley never acknowledges a refused one as a success: QoS 1/2 closes the
    connection, QoS 0 is just dropped (the connection stays). Nothing is stored or delivered
    (the next good post is id 1) and the refusal is logged (event=publish.refused)."""
    c = chat(**CAST)
    sub = c.client("alice")
    assert sub.subscribe("rooms/general/#", qos=1) == [1]
    outcomes, problems = {}, []
    for case, user, topic, payload, qos, retain in REFUSED_311:
        cid = c.client_id(user)
        cl, ca = c.raw_login(user, version=4, client_id=cid)
        assert ca.reason == 0, ca
        mark = len(c.broker.log())
        cl.publish(topic, payload, qos=qos, pid=7, version=4, retain=retain)
        if qos == 0:
            cl.send(r.pingreq())
        want = {0: r.PINGRESP, 1: r.PUBACK, 2: r.PUBREC}[qos]
        try:
            p = cl.read(3.0)
            outcome = "acked" if p.type == want and (qos == 0 or p.pid == 7) else f"unexpected {p}"
        except r.Closed:
            outcome = "closed"
        except TimeoutError:
            outcome = "neither acked nor closed within 3 s"
        outcomes[case] = outcome
        if (qos == 0 and outcome != "acked") or (qos and outcome != "closed"):
            problems.append(f"{case}: {outcome}")
        try:
            c.broker.wait_log(rf"event=publish\.refused client={re.escape(cid)} ", timeout=1.0, after=mark)
        except AssertionError:
            problems.append(f"{case}: not logged (no event=publish.refused client={cid} line)")
        cl.close()
    assert c.client("alice").publish("rooms/general/messages", "fine", qos=1) == 0
    got = upto(sub, 1)
    assert got and got[0].topic == "rooms/general/messages", [(m.topic, m.payload) for m in got]
    check_post(got[0].payload, 1, "general", "alice", "fine")
    quiet(sub)
    later = c.client("alice")
    assert later.subscribe("presence/bob", qos=1) == [1]
    e = envelope(later.get().payload)  # the broker's presence, not the refused b"{}"
    assert e.get("user") == "bob" and e.get("status") in ("online", "offline"), e
    assert not problems, (problems, outcomes)


def test_post_body_limit_follows_max_message_body(chat):
    """SPEC 3: the body limit is `max_message_body`: with 100, 100 bytes pass and 101 get 0x99."""
    c = chat(**CAST, config="max_message_body = 100\n")
    bob = c.client("bob")
    assert bob.publish("rooms/general/messages", "a" * 101, qos=1) == 0x99
    assert bob.publish("rooms/general/messages", json.dumps({"body": "a" * 101}), qos=1) == 0x99
    assert bob.publish("rooms/general/messages", "a" * 100, qos=1) == 0


@pytest.mark.parametrize("sender_version", VERSIONS)
def test_post_spoofed_from_id_ts_get_server_values(chat, sender_version):
    """SPEC 3: "What the publisher wrote about sender, id or time is ignored": a post whose
    JSON claims from/id/ts/room (and, v5, parley-* user properties) arrives with the server's
    values and nothing of the claims."""
    c = chat(**CAST)
    v5 = c.client("alice")
    v4 = c.client("alice", version=4)
    for s in (v5, v4):
        assert s.subscribe("rooms/general/messages", qos=1) == [1]
    bob = c.client("bob", version=sender_version)
    claim = {"body": "trust me", "from": "alice", "id": 999, "ts": "2000-01-01T00:00:00.000Z",
             "room": "side", "ckey": "sp-1"}
    props = None
    if sender_version == 5:
        props = publish_props(UserProperty=[("parley-from", "alice"), ("parley-id", "999"),
                                            ("parley-ts", "2000-01-01T00:00:00.000Z")])
    assert bob.publish("rooms/general/messages", json.dumps(claim), qos=1, properties=props) == 0
    m = v5.get()
    e = check_post(m.payload, 1, "general", "bob", "trust me", ckey="sp-1")
    assert user_props(m) == [("parley-id", "1"), ("parley-from", "bob"), ("parley-ts", e["ts"])]
    assert v4.get().payload == m.payload
    h = History(v5, "alice")
    assert h.ok("general", {})["messages"] == [e]


@pytest.mark.parametrize("version", VERSIONS)
def test_post_with_mosquitto_clients(chat, version):
    """SPEC 3 with mosquitto_pub / mosquitto_sub (user name + password): the subscriber prints
    the envelope of mosquitto_pub's post, also when it claims another sender."""
    c = chat(**CAST)
    s = Sub(c.port, ["-t", "rooms/general/messages", "-q", "1", "-F", "%p",
                     "-u", "alice", "-P", password_of("alice")], version, count=2)
    try:
        mpub(c.port, version, "-t", "rooms/general/messages", "-q", "1", "-m", "from mosquitto",
             "-u", "bob", "-P", password_of("bob"))
        mpub(c.port, version, "-t", "rooms/general/messages", "-q", "1",
             "-m", json.dumps({"body": "spoof", "from": "alice", "id": 7}), "-u", "bob", "-P", password_of("bob"))
        out = s.output()
    finally:
        s.kill()
    check_post(out[0], 1, "general", "bob", "from mosquitto")
    check_post(out[1], 2, "general", "bob", "spoof")


def test_post_acked_is_committed_before_kill9(chat):
    """SPEC 3/6: "A QoS 1/2 post is acknowledged only after it is stored": right after the
    PUBACK, kill -9; after the restart history has the post and the next id follows it."""
    c = chat(**CAST)
    bob = c.client("bob")
    for i in range(5):
        assert bob.publish("rooms/general/messages", f"p{i}", qos=1) == 0
    c.restart("kill")
    alice = c.client("alice")
    assert alice.subscribe("rooms/general/messages", qos=1) == [1]
    h = History(alice, "alice")
    assert [m["body"] for m in h.ok("general", {})["messages"]] == [f"p{i}" for i in range(5)]
    assert c.client("bob").publish("rooms/general/messages", "after", qos=1) == 0
    check_post(alice.get().payload, 6, "general", "bob", "after")


# --- ckey ---------------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_ckey_repeat_by_same_user_acked_and_delivered_once(chat, version):
    """SPEC 3: re-posting with the same ckey by the same user in the same room creates no new
    message: the ack is a success, nothing is delivered twice, no id is used."""
    c = chat(**CAST)
    sub = c.client("alice")
    assert sub.subscribe("rooms/general/messages", qos=1) == [1]
    bob = c.client("bob", version=version)
    post = json.dumps({"body": "once", "ckey": "k-1"})
    assert bob.publish("rooms/general/messages", post, qos=1) == 0
    assert bob.publish("rooms/general/messages", post, qos=1) == 0
    other = c.client("bob", version=version)  # another session of the same user
    assert other.publish("rooms/general/messages", json.dumps({"body": "changed", "ckey": "k-1"}), qos=1) == 0
    assert bob.publish("rooms/general/messages", "next", qos=1) == 0
    got = sub.collect(2)
    check_post(got[0].payload, 1, "general", "bob", "once", ckey="k-1")
    check_post(got[1].payload, 2, "general", "bob", "next")
    sub.expect_no_message(NOTHING)
    assert [m["id"] for m in History(sub, "alice").ok("general", {})["messages"]] == [1, 2]


def test_ckey_same_key_other_user_or_other_room_is_a_new_message(chat):
    """SPEC 3: the ckey is per user and room: alice and bob with the same key both post; bob's
    key in another room is another message."""
    c = chat(users=("alice", "bob"), rooms={"general": ("alice", ["bob"]), "other": ("alice", ["bob"])})
    sub = c.client("alice")
    assert sub.subscribe([("rooms/general/messages", 1), ("rooms/other/messages", 1)]) == [1, 1]
    post = json.dumps({"body": "same", "ckey": "shared"})
    assert c.client("alice").publish("rooms/general/messages", post, qos=1) == 0
    assert c.client("bob").publish("rooms/general/messages", post, qos=1) == 0
    assert c.client("bob").publish("rooms/other/messages", post, qos=1) == 0
    got = [envelope(m.payload) for m in sub.collect(3)]
    assert sorted((e["room"], e["id"], e["from"]) for e in got) == [
        ("general", 1, "alice"), ("general", 2, "bob"), ("other", 1, "bob")]
    sub.expect_no_message(NOTHING)


def test_ckey_repeat_recognised_after_restart(chat):
    """SPEC 3: the 24-hour ckey memory survives a restart (SIGTERM, start on the same data):
    the repeat is acked as a success and not delivered; history survives too."""
    c = chat(**CAST)
    bob = c.client("bob")
    post = json.dumps({"body": "durable", "ckey": "k-restart"})
    assert bob.publish("rooms/general/messages", post, qos=1) == 0
    c.restart("term")
    sub = c.client("alice")
    assert sub.subscribe("rooms/general/messages", qos=1) == [1]
    bob = c.client("bob")
    assert bob.publish("rooms/general/messages", post, qos=1) == 0
    assert bob.publish("rooms/general/messages", "fresh", qos=1) == 0
    check_post(sub.get().payload, 2, "general", "bob", "fresh")
    sub.expect_no_message(NOTHING)
    msgs = History(sub, "alice").ok("general", {})["messages"]
    assert [(m["id"], m["body"], m.get("ckey")) for m in msgs] == [(1, "durable", "k-restart"), (2, "fresh", None)]


# --- ordering under concurrency -----------------------------------------------------------

def test_room_ids_in_order_at_every_subscriber_under_concurrent_posters(chat):
    """SPEC 3: ids are handed out in the order the broker accepted the posts and every
    subscriber sees one room's messages in id order; history has the same order. 8 posters
    (both loops, 3.1.1 and 5.0) post 100 each at QoS 1 as fast as they can; 3 subscribers
    (paho 5.0 and 3.1.1, mosquitto_sub 5.0; both loops) each see ids exactly 1..800 once, in
    order, each poster's posts in its own order, and the same envelopes as history."""
    posters = [f"poster{i}" for i in range(8)]
    readers = ["reader0", "reader1", "reader2"]
    c = chat(users=["alice"] + posters + readers, rooms={"general": ("alice", posters + readers)})
    n, per = 8, 100
    total = n * per
    r0 = c.client("reader0", client_id=id_on_loop("reader0", 0))
    r1 = c.client("reader1", version=4, client_id=id_on_loop("reader1", 1))
    for s in (r0, r1):
        assert s.subscribe("rooms/general/messages", qos=1) == [1]
    msub = Sub(c.port, ["-t", "rooms/general/messages", "-q", "1", "-F", "%p", "-i", id_on_loop("reader2", 0),
                        "-u", "reader2", "-P", password_of("reader2")], 5, count=total, wait=60)
    clients = [c.client(p, version=5 if (i // 2) % 2 else 4, client_id=id_on_loop(p, i % 2), connect=False)
               for i, p in enumerate(posters)]
    for cl in clients:  # all 100 in flight at once (paho's default window is 20)
        cl.c.max_inflight_messages_set(per)
        cl.connect()
    errors = []

    def run(i, cl):
        try:
            mids = [cl.publish("rooms/general/messages", f"{posters[i]}-{k}", qos=1, wait=False) for k in range(per)]
            for mid in mids:
                rc, _ = cl.wait_publish(mid, timeout=30)
                assert rc == 0, f"PUBACK 0x{rc:02X}"
        except BaseException as e:  # noqa: BLE001
            errors.append((posters[i], e))

    threads = [threading.Thread(target=run, args=(i, cl)) for i, cl in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    try:
        seen = {
            "paho v5 loop 0": [envelope(m.payload) for m in r0.collect(total, timeout=30)],
            "paho 3.1.1 loop 1": [envelope(m.payload) for m in r1.collect(total, timeout=30)],
            "mosquitto_sub v5 loop 0": [envelope(l) for l in msub.output(timeout=30)],
        }
    finally:
        msub.kill()
    for name, envs in seen.items():
        ids = [e["id"] for e in envs]
        assert ids == list(range(1, total + 1)), (name, [i for i in range(1, total + 1) if i not in set(ids)][:10],
                                                  ids[:20])
        for p in posters:
            bodies = [e["body"] for e in envs if e["from"] == p]
            assert bodies == [f"{p}-{k}" for k in range(per)], (name, p, bodies[:10])
    first = seen["paho v5 loop 0"]
    for name, envs in seen.items():
        assert envs == first, name
    r0.expect_no_message(0.2)
    hist = History(r0, "reader0").all("general")
    assert hist == first


# =====================================================================================
# SPEC 3: history over MQTT 5
# =====================================================================================

def test_history_paging_before_after_limit_has_more(chat):
    """SPEC 3: {"before", "after", "limit"} (all optional) answered with {"messages": [...
    ascending id ...], "has_more"} and the request's correlation data, on the response topic."""
    c = chat(**CAST)
    bob = c.client("bob")
    for i in range(1, 8):
        assert bob.publish("rooms/general/messages", f"m{i}", qos=1) == 0
    h = History(c.client("alice"), "alice")

    def page(q):
        ans = h.ok("general", q)
        return [m["id"] for m in ans["messages"]], ans["has_more"]

    assert page({}) == ([1, 2, 3, 4, 5, 6, 7], False)
    assert page({"limit": 3}) == ([5, 6, 7], True)
    assert page({"before": 5, "limit": 3}) == ([2, 3, 4], True)
    assert page({"before": 2, "limit": 3}) == ([1], False)
    assert page({"before": 1}) == ([], False)
    assert page({"after": 3, "limit": 2}) == ([4, 5], True)
    assert page({"after": 5}) == ([6, 7], False)
    assert page({"after": 5, "limit": 2}) == ([6, 7], False)
    assert page({"after": 7}) == ([], False)
    assert page({"after": 2, "before": 6}) == ([3, 4, 5], False)
    assert page({"after": 2, "before": 6, "limit": 2}) == ([3, 4], True)
    assert page({"after": 0, "limit": 7}) == ([1, 2, 3, 4, 5, 6, 7], False)
    msgs = h.ok("general", {"after": 0})["messages"]
    for i, m in enumerate(msgs, 1):
        check_post(m, i, "general", "bob", f"m{i}")


def test_history_default_limit_50_and_max_500(chat):
    """SPEC 3 / HistoryQuery: the default page is the newest 50; limit goes up to 500."""
    c = chat(**CAST)
    bob = c.client("bob")
    mids = [bob.publish("rooms/general/messages", f"m{i}", qos=1, wait=False) for i in range(1, 61)]
    for mid in mids:
        assert bob.wait_publish(mid)[0] == 0
    h = History(c.client("alice"), "alice")
    ans = h.ok("general", {})
    assert [m["id"] for m in ans["messages"]] == list(range(11, 61)) and ans["has_more"] is True
    ans = h.ok("general", {"limit": 500})
    assert [m["id"] for m in ans["messages"]] == list(range(1, 61)) and ans["has_more"] is False


def test_history_empty_room(chat):
    """SPEC 3: a room with no posts answers {"messages": [], "has_more": false}."""
    c = chat(**CAST)
    h = History(c.client("alice"), "alice")
    assert h.ok("general", {}) == {"messages": [], "has_more": False}
    assert h.ok("general", {"after": 0, "limit": 500}) == {"messages": [], "has_more": False}
    assert h.ok("general", {"before": 10}) == {"messages": [], "has_more": False}


BAD_HISTORY_QUERIES = [
    b"not json", b"[1, 2]", b'"text"', b"42",
    b'{"limit": 0}', b'{"limit": 501}', b'{"limit": -1}', b'{"limit": "5"}',
    b'{"before": -1}', b'{"after": "x"}', b'{"before": 1.5}', b'{"after": true}',
]


def test_history_bad_queries_0x99(chat):
    """SPEC 3: a malformed history request (not a JSON object, limit outside 1..500, ids that
    are not non-negative integers) is refused with v5 PUBACK 0x99 and not answered."""
    c = chat(**CAST)
    h = History(c.client("alice"), "alice")
    wrong = [(q, rc) for q in BAD_HISTORY_QUERIES for rc, _ in [h.request("general", q)] if rc != 0x99]
    quiet(h.c)
    assert not wrong, [f"{q.decode()}: PUBACK 0x{rc:02X}" for q, rc in wrong]


def test_history_response_topic_must_be_under_own_users_topic(chat):
    """SPEC 3: the response topic must lie under users/<self>/; elsewhere (another user's,
    users/<self> itself, a plain topic, none at all) the request is refused with 0x87."""
    c = chat(**CAST)
    bob = c.client("bob")
    assert bob.subscribe("users/bob/#", qos=1) == [1]
    alice = c.client("alice")
    h = History(alice, "alice")
    for rt in ("users/bob/history", "plain/answers", "users/alice", "rooms/general/messages"):
        rc, ans = h.request("general", {}, response_topic=rt)
        assert (rc, ans) == (0x87, None), rt
    corr = publish_props(CorrelationData=b"c")
    assert alice.publish("rooms/general/history", "{}", qos=1, properties=corr) == 0x87
    ans = h.ok("general", {})  # the right one is answered
    assert ans == {"messages": [], "has_more": False}
    quiet(bob, alice)


# =====================================================================================
# SPEC 3: receipts and typing
# =====================================================================================

@pytest.mark.parametrize("version", VERSIONS)
def test_receipts_delivered_to_members_capped_at_last_id(chat, version):
    """SPEC 3: {"up_to": id} to rooms/<room>/receipts; members receive {"from", "up_to",
    "ts"}, up_to at most the room's last id."""
    c = chat(**CAST)
    alice = c.client("alice", version=version)
    assert alice.subscribe("rooms/general/receipts", qos=1) == [1]
    bob = c.client("bob", version=version)
    assert bob.subscribe("rooms/general/receipts", qos=1) == [1]
    for i in range(3):
        assert alice.publish("rooms/general/messages", f"m{i}", qos=1) == 0
    assert bob.publish("rooms/general/receipts", json.dumps({"up_to": 2}), qos=1) == 0
    assert bob.publish("rooms/general/receipts", json.dumps({"up_to": 99}), qos=1) == 0
    for s in (alice, bob):
        got = [envelope(m.payload) for m in s.collect(2)]
        for e, up in zip(got, (2, 3)):
            assert set(e) == {"from", "up_to", "ts"}, e
            assert (e["from"], e["up_to"]) == ("bob", up), e
            assert_recent(e["ts"])
    quiet(alice, bob, wait=0.2)


def test_receipts_bad_payload_0x99(chat):
    """A receipt that is not {"up_to": <non-negative integer>} is refused (v5 0x99), not
    delivered."""
    c = chat(**CAST)
    alice = c.client("alice")
    assert alice.subscribe("rooms/general/receipts", qos=1) == [1]
    bob = c.client("bob")
    for p in (b"3", b"{}", b'{"up_to": "3"}', b'{"up_to": -1}', b"nope"):
        assert bob.publish("rooms/general/receipts", p, qos=1) == 0x99, p
    alice.expect_no_message(NOTHING)


@pytest.mark.parametrize("version", VERSIONS)
def test_typing_delivered_at_qos0_as_from_and_ts(chat, version):
    """SPEC 3: members publish anything to rooms/<room>/typing; members receive {"from",
    "ts"} at QoS 0 (also when subscribed and published at QoS 1 or 2)."""
    c = chat(**CAST)
    alice = c.client("alice", version=version)
    assert alice.subscribe("rooms/general/typing", qos=2) == [2]
    bob = c.client("bob", version=version)
    assert bob.publish("rooms/general/typing", b"\x00\xffanything at all", qos=1) == 0
    assert bob.publish("rooms/general/typing", b"", qos=2) == 0
    for m in alice.collect(2):
        assert (m.topic, m.qos, m.retain) == ("rooms/general/typing", 0, False)
        e = envelope(m.payload)
        assert set(e) == {"from", "ts"} and e["from"] == "bob", e
        assert_recent(e["ts"])
    alice.expect_no_message(0.2)


@pytest.mark.parametrize("version", VERSIONS)
def test_typing_never_queued_or_retained_or_stored(chat, version):
    """SPEC 3/2: typing is ephemeral: an offline persistent session gets the posts made while
    it was away, never the typing; a retained typing publish is refused; history has none."""
    c = chat(**CAST)
    cid = c.client_id("alice-p")
    alice = c.client("alice", version=version, client_id=cid, clean=False, expiry=300)
    assert alice.subscribe([("rooms/general/typing", 1), ("rooms/general/messages", 1)]) == [1, 1]
    alice.disconnect()
    bob = c.client("bob", version=version)
    assert bob.publish("rooms/general/typing", "t", qos=1) == 0
    assert bob.publish("rooms/general/messages", "while away", qos=1) == 0
    refuse(bob, version, "rooms/general/typing", "t", retain=True)
    back = c.client("alice", version=version, client_id=cid, clean=False, expiry=300)
    got = gather(back, lambda g: len(g) >= 1)
    assert topics_of(got) == ["rooms/general/messages"], [(m.topic, m.payload) for m in got]
    later = c.client("alice")
    assert later.subscribe("rooms/general/typing", qos=1) == [1]
    later.expect_no_message(0.2)
    assert [m["body"] for m in History(later, "alice").ok("general", {})["messages"]] == ["while away"]


# =====================================================================================
# SPEC 3: presence
# =====================================================================================

def presence_of(msg, user, status):
    e = envelope(msg.payload)
    key = "since" if status == "online" else "last_seen"
    assert msg.topic == f"presence/{user}", msg.topic
    assert set(e) == {"user", "status", key}, e
    assert (e["user"], e["status"]) == (user, status), e
    assert_recent(e[key])
    return e


@pytest.mark.parametrize("version", VERSIONS)
def test_presence_online_with_first_session_offline_after_last(chat, version):
    """SPEC 3: retained presence/<user> {"user", "status": "online", "since"} when the first
    session connects, {"user", "status": "offline", "last_seen"} when the last one goes; a
    second session's coming and going changes nothing."""
    c = chat(**CAST)
    alice = c.client("alice")
    assert alice.subscribe("presence/bob", qos=1) == [1]
    alice.expect_no_message(0.2)  # bob was never online: nothing retained
    s1 = c.client("bob", version=version)
    on = presence_of(alice.get(), "bob", "online")
    s2 = c.client("bob", version=version)
    s1.disconnect()
    alice.expect_no_message(NOTHING)  # s2 is still there
    fresh = c.client("alice")
    assert fresh.subscribe("presence/bob", qos=1) == [1]
    m = fresh.get()
    assert m.retain is True
    assert presence_of(m, "bob", "online") == on
    s2.drop()  # the last one goes (network loss counts)
    off = presence_of(alice.get(timeout=5), "bob", "offline")
    assert parse_ts(off["last_seen"]) >= parse_ts(on["since"])
    fresh2 = c.client("alice")
    assert fresh2.subscribe("presence/bob", qos=1) == [1]
    m = fresh2.get()
    assert m.retain is True and presence_of(m, "bob", "offline") == off


def test_presence_offline_after_kill9_and_restart(chat):
    """SPEC 3: "After a crash and restart, nobody is shown online who is not connected": bob
    is online, the broker is killed with -9 and started again: presence/bob is offline."""
    c = chat(**CAST)
    c.client("bob")
    alice = c.client("alice")
    assert alice.subscribe("presence/bob", qos=1) == [1]
    on = presence_of(alice.get(), "bob", "online")
    c.restart("kill")
    watcher = c.client("alice")
    assert watcher.subscribe("presence/bob", qos=1) == [1]
    m = watcher.get(timeout=5)
    assert m.retain is True
    off = presence_of(m, "bob", "offline")
    assert parse_ts(off["last_seen"]) >= parse_ts(on["since"])


# =====================================================================================
# SPEC 3/7: moderation and room events made with the command line
# =====================================================================================

@pytest.mark.parametrize("version", VERSIONS)
def test_removed_member_subscriptions_end_and_publish_refused(chat, version):
    """SPEC 3 moderation: `parley room remove` while the member is subscribed: within about
    a second nothing more of the room reaches them (exact and wildcard filters), publishing
    there is refused (v5 0x87, 3.1.1 dropped) and so is subscribing again."""
    c = chat(users=("alice", "bob", "carol"), rooms={"general": ("alice", ["bob", "carol"])})
    bob = c.client("bob", version=version)
    assert bob.subscribe([(f"rooms/general/{k}", 1) for k in ("messages", "typing", "receipts", "events")]) == [1] * 4
    bob_wild = c.client("bob", version=version)
    assert bob_wild.subscribe([("rooms/+/messages", 1), ("rooms/general/#", 1)]) == [1, 1]
    carol = c.client("carol")
    assert carol.subscribe([("rooms/general/messages", 1), ("rooms/general/typing", 1)]) == [1, 1]
    alice = c.client("alice")
    assert alice.subscribe("rooms/general/events", qos=1) == [1]
    assert alice.publish("rooms/general/messages", "before", qos=1) == 0
    for s in (bob, bob_wild, carol):
        check_post(s.get().payload, 1, "general", "alice", "before")
    c.ok("room", "remove", "general", "bob")
    wait_event(alice, "general", "kick", "bob")
    assert alice.publish("rooms/general/messages", "after", qos=1) == 0
    assert alice.publish("rooms/general/typing", "x", qos=1) == 0
    got = carol.collect(2)
    check_post(got[0].payload, 2, "general", "alice", "after")
    quiet(bob, bob_wild, allow=lambda m: m.topic == "rooms/general/events")
    refuse(bob, version, "rooms/general/messages", "still here?")
    refuse(bob, version, "rooms/general/typing", "x")
    assert bob.subscribe("rooms/general/messages", qos=1) == [sub_refused(version)]
    assert alice.publish("rooms/general/messages", "barrier", qos=1) == 0
    check_post(carol.get().payload, 3, "general", "alice", "barrier")  # bob's post got no id
    carol.expect_no_message(0.2)


@pytest.mark.parametrize("version", VERSIONS)
def test_removed_member_queued_posts_dropped_on_reconnect(chat, version):
    """SPEC 3 moderation: a persistent session subscribed to the room, offline while posts
    are queued for it; the member is removed; on reconnect none of that room's queued posts
    arrive (another room's and a plain topic's do), and later posts do not either."""
    c = chat(users=("alice", "bob"), rooms={"general": ("alice", ["bob"]), "other": ("alice", ["bob"])})
    cid = c.client_id("bob-p")
    bob = c.client("bob", version=version, client_id=cid, clean=False, expiry=300)
    assert bob.subscribe([("rooms/general/messages", 1), ("rooms/other/messages", 1), ("plain/bob", 1)]) == [1, 1, 1]
    bob.disconnect()
    alice = c.client("alice")
    assert alice.subscribe("rooms/general/events", qos=1) == [1]
    for i in range(3):
        assert alice.publish("rooms/general/messages", f"g{i}", qos=1) == 0
    assert alice.publish("rooms/other/messages", "o0", qos=1) == 0
    assert alice.publish("plain/bob", "p0", qos=1) == 0
    c.ok("room", "remove", "general", "bob")
    wait_event(alice, "general", "kick", "bob")
    back = c.client("bob", version=version, client_id=cid, clean=False, expiry=300)
    got = gather(back, lambda g: len(g) >= 2)
    assert sorted(topics_of(got)) == ["plain/bob", "rooms/other/messages"], [(m.topic, m.payload) for m in got]
    assert alice.publish("rooms/general/messages", "g3", qos=1) == 0
    back.expect_no_message(NOTHING)


def test_user_del_ends_sessions_and_logins(chat, raw):
    """SPEC 7: `parley user del` on a running broker ends the user's sessions (v5 DISCONNECT
    0x87 not authorized; 3.1.1 closed), publishes leave events in their rooms, and the
    password and token no longer log in (0x86)."""
    c = chat(**CAST, start=False)
    token = c.token("bob")
    c.start()
    v5 = c.client("bob")
    v4 = c.client("bob", version=4)
    _, ca = c.raw_login("bob", password=token)
    assert ca.reason == 0
    alice = c.client("alice")
    assert alice.subscribe("rooms/general/events", qos=1) == [1]
    c.ok("user", "del", "bob")
    rc, _ = v5.wait_disconnect(timeout=5)
    assert rc == 0x87, f"DISCONNECT reason {rc}"
    v4.wait_disconnect(timeout=5)
    wait_event(alice, "general", "leave", "bob")
    for pw in (password_of("bob"), token):
        _, ca = c.raw_login("bob", password=pw)
        assert ca.reason == 0x86, ca
    assert "bob" not in c.ok("user", "list").split()
    assert c.ok("room", "members", "general").split() == ["alice"]


def test_password_change_revokes_tokens_and_ends_their_sessions(chat):
    """SPEC 2/7: `parley user passwd` revokes all the user's tokens; the old password and
    the tokens fail (0x86), the new password works."""
    c = chat(**CAST, start=False)
    token = c.token("bob")
    c.start()
    s = c.client("bob", password=token)
    c.ok("user", "passwd", "bob", stdin="brand-new-password\n")
    rc, _ = s.wait_disconnect(timeout=5)
    assert rc == 0x87, rc
    for pw in (token, password_of("bob")):
        _, ca = c.raw_login("bob", password=pw)
        assert ca.reason == 0x86, ca
    _, ca = c.raw_login("bob", password="brand-new-password")
    assert ca.reason == 0


def test_room_add_while_running_grants_access_and_join_event(chat):
    """SPEC 7: `parley room add` on a running broker applies at once: carol may subscribe and
    post within about a second, and members see {"type": "join"} on the room's events."""
    c = chat(**CAST)
    alice = c.client("alice")
    assert alice.subscribe([("rooms/general/events", 1), ("rooms/general/messages", 1)]) == [1, 1]
    carol = c.client("carol")
    assert carol.subscribe("rooms/general/messages", qos=1) == [0x87]
    c.ok("room", "add", "general", "carol")
    wait_event(alice, "general", "join", "carol")
    assert carol.subscribe("rooms/general/messages", qos=1) == [1]
    assert carol.publish("rooms/general/messages", "hi all", qos=1) == 0
    check_post(alice.get().payload, 1, "general", "carol", "hi all")


def test_room_events_join_kick_leave_room_deleted(chat):
    """SPEC 3 events on rooms/<room>/events, JSON {"type", "user", "by", "ts"}: join (room add),
    kick (room remove), leave (user del), room_deleted (room delete: user null), each made with
    the command line on a running broker; after the deletion the room is gone for everyone."""
    c = chat(users=("alice", "bob", "carol", "dave"), rooms={"general": ("alice", ["bob", "dave"])})
    ev = c.client("alice")
    assert ev.subscribe("rooms/general/events", qos=1) == [1]
    c.ok("room", "add", "general", "carol")
    c.ok("room", "remove", "general", "carol")
    c.ok("user", "del", "dave")
    wait_event(ev, "general", "join", "carol")
    wait_event(ev, "general", "kick", "carol")
    wait_event(ev, "general", "leave", "dave")
    c.ok("room", "delete", "general")
    probe = c.client("bob")
    wait_until(lambda: probe.subscribe("rooms/general/typing", qos=1) == [0x87], 5, "the deletion applied", step=0.1)
    for u in ("alice", "bob"):
        s = c.client(u)
        assert s.publish("rooms/general/messages", "gone?", qos=1) == 0x87, u
        assert s.subscribe("rooms/general/messages", qos=1) == [0x87], u
    wait_event(ev, "general", "room_deleted", None)  # to the members subscribed at the time


def test_room_recreated_after_delete_starts_a_new_sequence(chat):
    """SPEC 3/7: `parley room delete` removes the room and its history; a room created again
    with that name is a new room: its ids start at 1 (no gap that history cannot fill) and a
    ckey used in the old room is not taken for a repeat."""
    c = chat(**CAST)
    bob = c.client("bob")
    assert bob.publish("rooms/general/messages", json.dumps({"body": "old", "ckey": "k"}), qos=1) == 0
    assert bob.publish("rooms/general/messages", "old 2", qos=1) == 0
    probe = c.client("alice")
    c.ok("room", "delete", "general")
    wait_until(lambda: probe.subscribe("rooms/general/typing", qos=1) == [0x87], 5, "the deletion applied", step=0.1)
    c.ok("room", "create", "general", "--owner", "alice")
    c.ok("room", "add", "general", "bob")
    sub = c.client("alice")
    bob = c.client("bob")
    wait_until(lambda: sub.subscribe("rooms/general/messages", qos=1) == [1], 5, "alice in the new room", step=0.1)
    wait_until(lambda: bob.subscribe("rooms/general/typing", qos=1) == [1], 5, "bob in the new room", step=0.1)
    assert bob.publish("rooms/general/messages", "new", qos=1) == 0
    assert bob.publish("rooms/general/messages", json.dumps({"body": "new with k", "ckey": "k"}), qos=1) == 0
    got = [envelope(m.payload) for m in upto(sub, 2)]
    summary = [(e["id"], e["body"], e.get("ckey")) for e in got]
    assert summary == [(1, "new", None), (2, "new with k", "k")], summary
    assert History(sub, "alice").ok("general", {})["messages"] == got


# =====================================================================================
# SPEC 2: login and lock-out
# =====================================================================================

@pytest.mark.parametrize("version", VERSIONS)
def test_login_password_token_and_wrong_credentials(chat, version):
    """SPEC 2: CONNECT with user name + password or user name + token in the password field;
    a wrong password, an unknown user, a bad token: CONNACK 0x86 (3.1.1: 4)."""
    c = chat(**CAST, start=False)
    alice_token = c.token("alice")
    c.start()
    bad = 0x86 if version == 5 else 0x04
    _, ca = c.raw_login("alice", version=version)
    assert ca.reason == 0
    _, ca = c.raw_login("alice", password=alice_token, version=version)
    assert ca.reason == 0
    _, ca = c.raw_login("alice", password="wrong-password", version=version)
    assert ca.reason == bad
    _, ca = c.raw_login("nobody", password="whatever-pass", version=version)
    assert ca.reason == bad
    _, ca = c.raw_login("alice", password="pt_" + "A" * 43, version=version)
    assert ca.reason == bad
    _, ca = c.raw_login("bob", password=alice_token, version=version)  # alice's token, bob's name
    assert ca.reason == bad


def test_login_with_a_token_made_while_the_broker_runs(chat):
    """SPEC 7: admin commands work on a running broker: a token from `parley user token`
    logs in at once (not only after the next poll of the changes); a revoked one never."""
    c = chat(**CAST)
    for _ in range(3):
        tok = c.token("alice")
        _, ca = c.raw_login("alice", password=tok)
        assert ca.reason == 0, ca
    _, ca = c.raw_login("bob", password=c.token("alice"))  # another user's fresh token
    assert ca.reason == 0x86, ca


def test_login_token_expires(chat):
    """SPEC 2: an access token expires (`parley user token --lifetime`)."""
    c = chat(**CAST, start=False)
    tok = c.token("alice", lifetime="2s")
    issued = time.monotonic()
    c.start()
    _, ca = c.raw_login("alice", password=tok)
    assert ca.reason == 0
    time.sleep(max(0.0, 2.2 - (time.monotonic() - issued)))  # the lifetime must pass
    _, ca = c.raw_login("alice", password=tok)
    assert ca.reason == 0x86


def test_lockout_after_5_failures_v5_0x9F(chat):
    """SPEC 2: 5 failures in 5 minutes, then a lock-out in which even the right password is
    refused: CONNACK 0x9F (connection rate exceeded); logged."""
    c = chat(**CAST)
    for i in range(5):
        _, ca = c.raw_login("bob", password=f"wrong-password-{i}")
        assert ca.reason == 0x86, (i, ca)
    _, ca = c.raw_login("bob")
    assert ca.reason == 0x9F, ca
    c.broker.wait_log(r"event=chat\.lockout")
    # the token path is locked too
    _, ca = c.raw_login("bob", password=c.token("bob"))
    assert ca.reason == 0x9F, ca


def test_lockout_after_5_failures_311_return_code_5(chat, paho):
    """SPEC 2: the lock-out for a 3.1.1 client is CONNACK return code 0x05 ("3.1.1 0x05"),
    which paho reports as 0x87 (not authorized)."""
    c = chat(**CAST)
    for i in range(5):
        _, ca = c.raw_login("bob", password=f"wrong-password-{i}", version=4)
        assert ca.reason == 0x04, (i, ca)
    _, ca = c.raw_login("bob", version=4)
    p = c.client("bob", version=4, expect_rc=None, connect=False)
    got = p.connect(expect_rc=None).reason
    assert (ca.reason, got) == (0x05, 0x87), f"raw return code {ca.reason:#x}, paho reports {got:#x}"


def test_lockout_per_source_address(chat):
    """SPEC 2: failures also count per source address: 5 failures for different user names
    from 127.0.0.1, then even another user's right password from there is refused (0x9F)."""
    c = chat(**CAST)
    for i, u in enumerate(("alice", "bob", "carol", "nobody1", "nobody2")):
        _, ca = c.raw_login(u, password=f"wrong-password-{i}")
        assert ca.reason == 0x86, (u, ca)
    _, ca = c.raw_login("dave")
    assert ca.reason == 0x9F, ca


# =====================================================================================
# SPEC 7: the admin command line
# =====================================================================================

PW = "good-password\n"
CLI_REFUSALS = [
    (["user", "add", "ab"], PW, "parley user: ", "3 to 32 characters"),
    (["user", "add", "x" * 33], PW, "parley user: ", "3 to 32 characters"),
    (["user", "add", "has space"], PW, "parley user: ", "letters"),
    (["user", "add", "bad/name"], PW, "parley user: ", "letters"),
    (["user", "add", "alice"], PW, "parley user: ", "exists already"),
    (["user", "add", "ALICE"], PW, "parley user: ", "exists already"),
    (["user", "add", "erin"], "short\n", "parley user: ", "8 to 256 bytes"),
    (["user", "add", "erin"], None, "parley user: ", "no password"),
    (["user", "add", "erin", "--email", "not-an-address"], PW, "parley user: ", "e-mail"),
    (["user", "add", "erin", "--bogus", "x"], PW, "parley user: ", "unknown option"),
    (["user", "add"], PW, "parley user: ", "one user name"),
    (["user", "passwd", "nobody"], PW, "parley user: ", "no user nobody"),
    (["user", "passwd", "alice"], "short\n", "parley user: ", "8 to 256 bytes"),
    (["user", "del", "nobody"], None, "parley user: ", "no user nobody"),
    (["user", "token", "nobody"], None, "parley user: ", "no user nobody"),
    (["user", "token", "alice", "--lifetime", "soon"], None, "parley user: ", "--lifetime"),
    (["user", "frob"], None, "parley user: ", "unknown user command"),
    (["room", "create", "Bad", "--owner", "alice"], None, "parley room: ", "room names"),
    (["room", "create", "_x", "--owner", "alice"], None, "parley room: ", "room names"),
    (["room", "create", "a" * 65, "--owner", "alice"], None, "parley room: ", "room names"),
    (["room", "create", "has/slash", "--owner", "alice"], None, "parley room: ", "room names"),
    (["room", "create", "newroom", "--owner", "nobody"], None, "parley room: ", "no user nobody"),
    (["room", "create", "newroom"], None, "parley room: ", "--owner"),
    (["room", "create", "general", "--owner", "bob"], None, "parley room: ", "exists already"),
    (["room", "members", "nope"], None, "parley room: ", "no room nope"),
    (["room", "add", "nope", "bob"], None, "parley room: ", "no room nope"),
    (["room", "add", "general", "nobody"], None, "parley room: ", "no user nobody"),
    (["room", "add", "general", "bob"], None, "parley room: ", "already"),
    (["room", "add", "general"], None, "parley room: ", "a room and a user"),
    (["room", "remove", "general", "carol"], None, "parley room: ", "not a member"),
    (["room", "remove", "nope", "bob"], None, "parley room: ", "no room nope"),
    (["room", "delete", "nope"], None, "parley room: ", "no room nope"),
    (["room", "frob"], None, "parley room: ", "unknown room command"),
]


@pytest.mark.parametrize("running", [False, True], ids=["stopped", "running"])
def test_cli_refusals_exit_1_with_one_line(chat, running):
    """SPEC 7: "a refused command exits 1 with one line saying why" (bad names, existing users,
    unknown users and rooms, bad options), with and without a broker on the data directory,
    and nothing changes."""
    c = chat(**CAST, start=running)
    failures = []
    for args, stdin, prefix, why in CLI_REFUSALS:
        rc, out, err = c.cli(*args, stdin=stdin)
        ok = rc == 1 and out == "" and err.count("\n") == 1 and err.endswith("\n") \
            and err.startswith(prefix) and why in err
        if not ok:
            failures.append((args, rc, out, err))
    assert not failures, "\n".join(map(repr, failures))
    assert c.ok("user", "list").split() == ["alice", "bob", "carol", "dave"]
    assert [l.split("\t")[0] for l in c.ok("room", "list").splitlines()] == ["general", "side"]
    assert c.ok("room", "members", "general").split() == ["alice", "bob"]


def test_cli_commands_and_listings(chat):
    """SPEC 7: user add/list (with e-mail), room create (title)/list/members/add/remove/delete,
    user token/passwd/del: exit 0 and the listings show each change."""
    c = chat(**CAST)
    c.add_user("Erin", email="erin@example.com")
    assert c.ok("user", "list").splitlines() == ["alice", "bob", "carol", "dave", "Erin\terin@example.com"]
    c.ok("room", "create", "lounge", "--owner", "erin", "--title", "The lounge")
    assert c.ok("room", "list").splitlines() == ["general\talice\t", "lounge\tErin\tThe lounge", "side\tcarol\t"]
    c.ok("room", "add", "lounge", "BOB")
    assert c.ok("room", "members", "lounge").splitlines() == ["bob", "Erin"]
    c.ok("room", "remove", "lounge", "bob")
    assert c.ok("room", "members", "lounge").splitlines() == ["Erin"]
    tok = c.token("erin")
    assert re.fullmatch(r"pt_[A-Za-z0-9_-]{43,}", tok), tok
    c.ok("user", "passwd", "erin", stdin="another-password\n")
    c.ok("room", "delete", "lounge")
    assert [l.split("\t")[0] for l in c.ok("room", "list").splitlines()] == ["general", "side"]
    c.ok("user", "del", "erin")
    assert c.ok("user", "list").splitlines() == ["alice", "bob", "carol", "dave"]


def test_cli_password_file(chat, tmp_path):
    """SPEC 7: --password-file FILE gives the password (its first line)."""
    c = chat(**CAST)
    f = tmp_path / "pw"
    f.write_text("from-the-file-1\nsecond line ignored\n")
    c.ok("user", "add", "erin", "--password-file", str(f))
    wait_until(lambda: c.raw_login("erin", password="from-the-file-1")[1].reason == 0, 3,
               "erin logging in with the password from the file", step=0.45)
    rc, out, err = c.cli("user", "add", "fred", "--password-file", str(tmp_path / "missing"))
    assert (rc, out) == (1, "") and err.startswith("parley user: ") and err.count("\n") == 1, err


def test_cli_user_add_while_running_logs_in_within_the_poll_second(chat):
    """SPEC 7: "a running broker applies them at once": a user added with the command line
    while the broker runs can log in (polled with a deadline; the broker reads the changes on
    its 1 s tick), with a password and with a token."""
    c = chat(**CAST)
    c.add_user("erin")
    started = time.monotonic()
    attempts = []

    def logged_in():
        _, ca = c.raw_login("erin")
        attempts.append(ca.reason)
        return ca.reason == 0

    wait_until(logged_in, 3.0, "erin's first successful CONNECT", step=0.45)
    assert time.monotonic() - started < 3.0
    assert set(attempts[:-1]) <= {0x86}, attempts
    # A token issued now: applied with the next change rows; the join event of a room change
    # made after it shows that the broker has read both.
    ev = c.client("alice")
    assert ev.subscribe("rooms/general/events", qos=1) == [1]
    token = c.token("erin")
    c.ok("room", "add", "general", "erin")
    wait_event(ev, "general", "join", "erin")
    _, ca = c.raw_login("erin", password=token)
    assert ca.reason == 0, ca


def test_cli_refuses_broker_without_chat_plugin(start_broker):
    """SPEC 7: on the data directory of a running broker without the chat plugin the admin
    commands refuse with one line (exit 1)."""
    from chat import cli
    b = start_broker("sys_interval = 1\n")
    rc, out, err = cli(os.path.join(b.tmp, "data"), "user", "add", "erin", stdin=PW)
    assert (rc, out) == (1, "") and err.count("\n") == 1 and "chat plugin" in err, err
