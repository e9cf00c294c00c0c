"""PUBLISH/SUBSCRIBE with paho: QoS 0/1/2 both directions, overlapping
subscriptions, wildcards, $SYS, shared subscriptions."""

import time
from collections import Counter

import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions

from pahoclient import subscribe_props, prop


def _collect_members(members, n, timeout=5.0, settle=0.3):
    """Payloads (ints) each member of a group receives, polled until the group has `n` in all
    (bounded by `timeout`), then whatever else comes within `settle` seconds (a window in
    which no duplicate may arrive)."""
    per_member = [[] for _ in members]
    deadline = time.monotonic() + timeout
    while sum(map(len, per_member)) < n:
        assert time.monotonic() < deadline, f"{sum(map(len, per_member))} of {n} within {timeout}s: {per_member}"
        for got, m in zip(per_member, members):
            got += [int(x.payload) for x in m.drain(0.02)]
    end = time.monotonic() + settle
    for got, m in zip(per_member, members):
        got += [int(x.payload) for x in m.drain(max(0.0, end - time.monotonic()))]
    return per_member


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
def test_publish_subscribe_delivered_at_min_of_publish_and_subscription_qos(broker, paho, topic, version, pub_qos, sub_qos):
    """MQTT-3.8.4-6 (3.1.1) / 3.8.4 (v5): delivered QoS = min(published QoS, granted QoS)."""
    sub = paho(broker.port, version=version)
    sub.connect()
    assert sub.subscribe(topic, sub_qos) == [sub_qos]
    pub = paho(broker.port, version=version)
    pub.connect()
    rc = pub.publish(topic, f"q{pub_qos}".encode(), pub_qos)
    if pub_qos and version == 5:
        assert rc == 0
    m = sub.get()
    assert m.topic == topic and m.payload == f"q{pub_qos}".encode()
    assert m.qos == min(pub_qos, sub_qos)
    assert m.retain is False
    sub.expect_no_message(0.2)


@pytest.mark.parametrize("version", [4, 5])
def test_qos2_many_messages_both_directions_exactly_once_in_order(broker, paho, topic, version):
    """4.3.3 / 4.6: QoS 2 exactly once, and order kept per topic, with traffic both ways."""
    a = paho(broker.port, version=version)
    b = paho(broker.port, version=version)
    a.connect()
    b.connect()
    a.subscribe(topic + "/to-a", 2)
    b.subscribe(topic + "/to-b", 2)
    n = 30
    for i in range(n):
        a.publish(topic + "/to-b", f"{i}".encode(), 2, wait=False)
        b.publish(topic + "/to-a", f"{i}".encode(), 2, wait=False)
    got_b = b.collect(n, timeout=8)
    got_a = a.collect(n, timeout=8)
    assert [int(m.payload) for m in got_b] == list(range(n))
    assert [int(m.payload) for m in got_a] == list(range(n))
    a.expect_no_message(0.2)
    b.expect_no_message(0.2)


@pytest.mark.parametrize("version", [4, 5])
def test_overlapping_subscriptions_delivered_once_at_max_qos(broker, paho, topic, version):
    """MQTT-3.3.5-1 (3.1.1) / MQTT-3.3.4-2 (v5): overlapping filters -> the message at the
    maximum QoS of the matching subscriptions (and, in this broker, one copy)."""
    sub = paho(broker.port, version=version)
    sub.connect()
    sub.subscribe(topic + "/a/b", 0)
    sub.subscribe(topic + "/+/b", 2)
    sub.subscribe(topic + "/#", 1)
    pub = paho(broker.port, version=version)
    pub.connect()
    pub.publish(topic + "/a/b", b"once", 2)
    m = sub.get()
    assert m.payload == b"once"
    assert m.qos == 2
    sub.expect_no_message(0.5)


@pytest.mark.parametrize("version", [4, 5])
def test_single_level_wildcard_plus_matches_one_level(broker, paho, topic, version):
    """4.7.1.3: '+' matches exactly one level (also an empty one)."""
    sub = paho(broker.port, version=version)
    sub.connect()
    sub.subscribe(topic + "/+/temp", 1)
    pub = paho(broker.port, version=version)
    pub.connect()
    for t in ["/k1/temp", "/k2/temp", "//temp", "/k1/x/temp", "/temp", "/k1/temp/x"]:
        pub.publish(topic + t, t.encode(), 1)
    got = sorted(m.payload for m in sub.drain(1.0))
    assert got == sorted([b"/k1/temp", b"/k2/temp", b"//temp"])


@pytest.mark.parametrize("version", [4, 5])
def test_multi_level_wildcard_hash_matches_parent_and_all_children(broker, paho, topic, version):
    """4.7.1.2: 'a/#' matches 'a', 'a/b', 'a/b/c' (and not 'ab')."""
    sub = paho(broker.port, version=version)
    sub.connect()
    sub.subscribe(topic + "/a/#", 1)
    pub = paho(broker.port, version=version)
    pub.connect()
    for t in ["/a", "/a/b", "/a/b/c", "/ab", "/b/a"]:
        pub.publish(topic + t, t.encode(), 1)
    got = sorted(m.payload for m in sub.drain(1.0))
    assert got == sorted([b"/a", b"/a/b", b"/a/b/c"])


def test_unsubscribe_stops_delivery(broker, paho, topic):
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(topic, 1)
    sub.unsubscribe(topic)
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"x", 1)
    sub.expect_no_message(0.5)


def test_resubscribe_replaces_subscription_qos(broker, paho, topic):
    """MQTT-3.8.4-3: a SUBSCRIBE with an existing filter replaces the subscription (no duplicate)."""
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(topic, 2)
    sub.subscribe(topic, 0)
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"x", 2)
    m = sub.get()
    assert m.qos == 0
    sub.expect_no_message(0.4)


@pytest.mark.parametrize("filt", ["#", "+/broker/#", "+/+/+"])
def test_dollar_sys_topics_not_matched_by_hash_or_plus_at_first_level(broker, paho, filt):
    """MQTT-4.7.2-1: topics starting with '$' are not matched by filters starting with '#' or '+'."""
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(filt, 0)
    got = sub.drain(1.6)  # sys_interval = 1: at least one round of $SYS publications
    leaked = [m.topic for m in got if m.topic.startswith("$")]
    assert not leaked, f"{filt} matched {leaked[:5]}"


def test_dollar_sys_broker_statistics_topics_present(broker, paho):
    """SPEC 1: `$SYS/broker/...` statistics (sys_interval = 1)."""
    sub = paho(broker.port, version=4)
    sub.connect()
    sub.subscribe("$SYS/broker/#", 0)
    want = {f"$SYS/broker/{name}" for name in [
        "version", "uptime", "clients/connected", "messages/received", "messages/sent",
        "subscriptions/count", "bytes/received", "bytes/sent"]}
    # Until every topic has come and clients/connected has been published live (the
    # retained copies on subscribe were published before this client connected).
    got, live = {}, {}
    deadline = time.monotonic() + 5
    while not (want <= set(got) and "$SYS/broker/clients/connected" in live):
        assert time.monotonic() < deadline, f"missing {sorted(want - set(got))}; got {sorted(got)}"
        for m in sub.drain(0.1):
            got[m.topic] = m.payload
            if not m.retain:
                live[m.topic] = m.payload
    got.update(live)
    assert int(got["$SYS/broker/clients/connected"].split()[0]) >= 1


def test_dollar_sys_statistics_update_every_sys_interval(broker, paho):
    """sys_interval = 1: the statistics are published again and again, with new values (two
    live uptime publications in a row differ; the retained copy sent on subscribe is not counted)."""
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe("$SYS/broker/uptime", 0)
    live = []
    deadline = time.monotonic() + 5
    while len(live) < 2:
        assert time.monotonic() < deadline, f"{len(live)} live uptime publications within 5 s"
        live += [m.payload for m in sub.drain(0.1) if not m.retain]
    assert live[0] != live[1], live


def test_publish_to_dollar_topic_by_client_not_matched_by_hash(broker, paho, topic):
    """MQTT-4.7.2-1: a client PUBLISH to a $-topic (which this broker refuses with 0x87, $-topics
    being reserved for it) never reaches a '#' subscriber."""
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe("#", 0)
    pub = paho(broker.port)
    pub.connect()
    rc = pub.publish("$" + topic.replace("/", "_"), b"d", 1)
    assert rc == 0x87, hex(rc)
    got = sub.drain(0.8)
    assert not [m.topic for m in got if m.topic.startswith("$")]


# --- shared subscriptions --------------------------------------------------------

@pytest.mark.parametrize("version", [5])
def test_shared_subscription_each_message_to_exactly_one_member(broker, paho, topic, version):
    """4.8.2 (v5): $share/<group>/<filter> -> each message to exactly one member of the group;
    a non-shared subscriber still gets every message. (v5 only: this broker treats `$share/...`
    from 3.1.1 clients as an ordinary filter, see test_v311_share_prefix_is_an_ordinary_filter.)"""
    members = [paho(broker.port, version=version) for _ in range(3)]
    for m in members:
        m.connect()
        m.subscribe(f"$share/g1/{topic}/#", 1)
    plain = paho(broker.port, version=version)
    plain.connect()
    plain.subscribe(f"{topic}/#", 1)
    pub = paho(broker.port, version=version)
    pub.connect()
    n = 30
    for i in range(n):
        pub.publish(f"{topic}/x", f"{i}".encode(), 1, wait=False)
    assert [int(m.payload) for m in plain.collect(n, timeout=5)] == list(range(n))
    per_member = _collect_members(members, n)
    counts = Counter(i for lst in per_member for i in lst)
    assert sorted(counts) == list(range(n)), f"missing: {set(range(n)) - set(counts)}"
    assert all(c == 1 for c in counts.values()), f"duplicates: {[k for k, c in counts.items() if c > 1]}"
    assert sum(1 for lst in per_member if lst) >= 2, f"one member got everything: {per_member}"


def test_v311_clients_may_use_shared_subscriptions_too(broker, paho, topic):
    """Shared subscriptions are a 5.0 feature that Parley offers to 3.1.1 clients as
    well (as most brokers do): two 3.1.1 members of `$share/g/t` split the messages."""
    members = [paho(broker.port, version=4) for _ in range(2)]
    for m in members:
        m.connect()
        assert m.subscribe(f"$share/g/{topic}", 1) == [1]
    pub = paho(broker.port, version=4)
    pub.connect()
    n = 10
    for i in range(n):
        pub.publish(topic, f"{i}".encode(), 1)
    per_member = _collect_members(members, n)
    assert sorted(sum(per_member, [])) == list(range(n)), per_member
    assert all(per_member), f"one member got nothing: {per_member}"


def test_shared_subscription_two_groups_each_get_every_message_once(broker, paho, topic):
    groups = {g: [paho(broker.port) for _ in range(2)] for g in ("ga", "gb")}
    for g, ms in groups.items():
        for m in ms:
            m.connect()
            m.subscribe(f"$share/{g}/{topic}", 1)
    pub = paho(broker.port)
    pub.connect()
    n = 10
    for i in range(n):
        pub.publish(topic, f"{i}".encode(), 1, wait=False)
    for g, ms in groups.items():
        got = sorted(sum(_collect_members(ms, n), []))
        assert got == list(range(n)), (g, got)


def test_shared_subscription_message_to_remaining_member_after_unsubscribe(broker, paho, topic):
    a = paho(broker.port)
    b = paho(broker.port)
    a.connect()
    b.connect()
    a.subscribe(f"$share/g/{topic}", 1)
    b.subscribe(f"$share/g/{topic}", 1)
    a.unsubscribe(f"$share/g/{topic}")
    pub = paho(broker.port)
    pub.connect()
    for i in range(5):
        pub.publish(topic, f"{i}".encode(), 1)
    assert [int(m.payload) for m in b.collect(5)] == list(range(5))
    a.expect_no_message(0.2)


def test_v5_shared_subscription_with_no_local_is_protocol_error(broker, raw, topic):
    """MQTT-3.8.3-4: No Local on a shared subscription is a protocol error (DISCONNECT 0x82)."""
    import raw as r
    c = raw(broker.port)
    c.connect("nl-shared")
    c.send(r.subscribe(1, [(f"$share/g/{topic}", 0x05)]))
    got = c.expect_closed()
    assert got and got[-1].type == r.DISCONNECT and got[-1].reason == 0x82, got


def test_v5_subscription_identifier_delivered(broker, paho, topic):
    """MQTT-3.3.4-3 / -4: the message carries the subscription identifier(s) of matching subscriptions."""
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(topic + "/a", 1, properties=subscribe_props(SubscriptionIdentifier=7))
    sub.subscribe(topic + "/+", 1, properties=subscribe_props(SubscriptionIdentifier=300))
    sub.subscribe(topic + "/b", 1)
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic + "/a", b"both", 1)
    m = sub.get()
    ids = prop(m.properties, "SubscriptionIdentifier", [])
    assert sorted(ids) == [7, 300], ids
    sub.expect_no_message(0.3)
    pub.publish(topic + "/b", b"one", 1)
    m = sub.get()
    assert prop(m.properties, "SubscriptionIdentifier", []) == [300]


def test_v5_subscription_identifier_not_sent_to_publisher_of_other_session(broker, paho, topic):
    """MQTT-3.3.4-5: identifiers belong to the receiving subscription only."""
    a = paho(broker.port)
    a.connect()
    a.subscribe(topic, 1, properties=subscribe_props(SubscriptionIdentifier=5))
    b = paho(broker.port)
    b.connect()
    b.subscribe(topic, 1)
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"x", 1)
    assert prop(a.get().properties, "SubscriptionIdentifier") == [5]
    assert prop(b.get().properties, "SubscriptionIdentifier") is None


def test_v5_subscribe_options_qos_granted_in_suback(broker, paho, topic):
    sub = paho(broker.port)
    sub.connect()
    rcs = sub.subscribe([(topic + "/0", SubscribeOptions(qos=0)), (topic + "/1", SubscribeOptions(qos=1)),
                         (topic + "/2", SubscribeOptions(qos=2))])
    assert rcs == [0, 1, 2]


@pytest.mark.parametrize("version", [4, 5])
def test_fan_in_fan_out_across_loops_qos1_no_loss_no_duplicates_order_per_publisher(broker, paho, topic, version):
    """4.6 message ordering + QoS 1 with clients spread over the broker's 2 event loops:
    5 publishers x 40 messages to 12 subscribers; each gets all 200, once, in each publisher's order."""
    subs = [paho(broker.port, version=version) for _ in range(12)]
    for s in subs:
        s.connect()
        s.subscribe(topic + "/#", 1)
    pubs = [paho(broker.port, version=version) for _ in range(5)]
    for p in pubs:
        p.connect()
    n = 40
    for i in range(n):
        for k, p in enumerate(pubs):
            p.publish(f"{topic}/p{k}", f"{k}:{i}".encode(), 1, wait=False)
    for s in subs:
        got = s.collect(5 * n, timeout=10)
        per = {}
        for m in got:
            k, i = m.payload.decode().split(":")
            per.setdefault(k, []).append(int(i))
        assert {k: v for k, v in per.items()} == {str(k): list(range(n)) for k in range(5)}
    for s in subs:
        s.expect_no_message(0.05)
