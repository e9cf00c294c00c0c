"""CONNECT/CONNACK, clean session / clean start, session expiry, assigned client
ids, session take-over, offline queues."""

import time

import pytest

import raw as r
from pahoclient import connect_props, publish_props, prop


# --- CONNACK session present -------------------------------------------------

def test_v311_connack_session_present_false_then_true_for_persistent_session(broker, paho, cid, topic):
    """MQTT-3.2.2-2 / -3: clean session 0 -> session present 0 first, 1 when the session exists."""
    client_id = cid()
    c = paho(broker.port, client_id, version=4, clean_session=False)
    assert c.connect().session_present is False
    c.subscribe(topic, 1)
    c.disconnect()
    c2 = paho(broker.port, client_id, version=4, clean_session=False)
    assert c2.connect().session_present is True
    c2.disconnect()


def test_v311_clean_session_1_discards_session_and_session_present_0(broker, paho, cid, topic):
    """MQTT-3.1.2-6 / MQTT-3.2.2-1: clean session 1 discards the old session; session present 0."""
    client_id = cid()
    c = paho(broker.port, client_id, version=4, clean_session=False)
    c.connect()
    c.subscribe(topic, 1)
    c.disconnect()
    clean = paho(broker.port, client_id, version=4, clean_session=True)
    assert clean.connect().session_present is False
    clean.disconnect()
    # The persistent session is gone too: reconnecting with clean session 0 finds nothing.
    again = paho(broker.port, client_id, version=4, clean_session=False)
    assert again.connect().session_present is False
    pub = paho(broker.port, version=4)
    pub.connect()
    pub.publish(topic, b"x", 1)
    again.expect_no_message(0.5)


def test_v5_clean_start_0_resumes_session_clean_start_1_discards_it(broker, paho, cid, topic):
    """MQTT-3.1.2-4 / -5, MQTT-3.2.2-2 / -3 (v5 session present)."""
    client_id = cid()
    c = paho(broker.port, client_id)
    assert c.connect(clean_start=True, properties=connect_props(SessionExpiryInterval=60)).session_present is False
    c.subscribe(topic, 1)
    c.disconnect()
    c2 = paho(broker.port, client_id)
    assert c2.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=60)).session_present is True
    c2.disconnect()
    c3 = paho(broker.port, client_id)
    assert c3.connect(clean_start=True, properties=connect_props(SessionExpiryInterval=60)).session_present is False
    c3.disconnect()


def test_v5_session_expiry_absent_means_session_ends_at_disconnect(broker, paho, cid, topic):
    """MQTT-3.1.2-11 (v5): no Session Expiry Interval -> the session ends with the connection."""
    client_id = cid()
    c = paho(broker.port, client_id)
    c.connect(clean_start=False)
    c.subscribe(topic, 1)
    c.disconnect()
    c2 = paho(broker.port, client_id)
    assert c2.connect(clean_start=False).session_present is False


def test_v5_session_within_expiry_keeps_subscriptions_and_queued_qos1(broker, paho, cid, topic):
    """v5 session expiry: reconnecting in time resumes subscriptions and the QoS 1 messages queued meanwhile."""
    client_id = cid()
    sub = paho(broker.port, client_id)
    sub.connect(clean_start=True, properties=connect_props(SessionExpiryInterval=10))
    sub.subscribe(topic, 1)
    sub.disconnect()
    pub = paho(broker.port)
    pub.connect()
    for i in range(3):
        assert pub.publish(topic, f"m{i}".encode(), 1) == 0
    sub2 = paho(broker.port, client_id)
    ca = sub2.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=10))
    assert ca.session_present is True
    got = sub2.collect(3)
    assert [m.payload for m in got] == [b"m0", b"m1", b"m2"]
    assert all(m.qos == 1 for m in got)
    # and the subscription is live again
    pub.publish(topic, b"live", 1)
    assert sub2.get().payload == b"live"


def test_v5_session_after_expiry_is_gone_with_its_subscriptions_and_queue(broker, paho, cid, topic):
    """MQTT-3.1.2-23 (v5): the server discards the session when the expiry interval has passed."""
    client_id = cid()
    sub = paho(broker.port, client_id)
    sub.connect(clean_start=True, properties=connect_props(SessionExpiryInterval=1))
    sub.subscribe(topic, 1)
    sub.disconnect()
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"queued", 1)
    time.sleep(2.5)
    sub2 = paho(broker.port, client_id)
    ca = sub2.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=1))
    assert ca.session_present is False
    sub2.expect_no_message(0.5)
    pub.publish(topic, b"after", 1)
    sub2.expect_no_message(0.5)


def test_v5_session_expiry_set_in_disconnect_shortens_session(broker, paho, cid, topic):
    """MQTT-3.14.2-2 allows changing a non-zero expiry in DISCONNECT; 0 ends the session now."""
    client_id = cid()
    sub = paho(broker.port, client_id)
    sub.connect(properties=connect_props(SessionExpiryInterval=60))
    sub.subscribe(topic, 1)
    from paho.mqtt.packettypes import PacketTypes
    from pahoclient import props
    sub.disconnect(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0))
    sub2 = paho(broker.port, client_id)
    assert sub2.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=60)).session_present is False


# --- client identifiers --------------------------------------------------------

def test_v5_empty_client_id_gets_assigned_client_identifier(broker, paho, topic):
    """MQTT-3.1.3-7 / MQTT-3.2.2-16 (v5): zero-length id -> Assigned Client Identifier in CONNACK."""
    c = paho(broker.port, "")
    ca = c.connect()
    assigned = prop(ca.properties, "AssignedClientIdentifier")
    assert assigned, f"no AssignedClientIdentifier in CONNACK {ca.properties}"
    c2 = paho(broker.port, "")
    other = prop(c2.connect().properties, "AssignedClientIdentifier")
    assert other and other != assigned, "two clients got the same assigned id"
    # the client works normally
    c.subscribe(topic, 1)
    c2.publish(topic, b"hi", 1)
    assert c.get().payload == b"hi"


def test_v5_assigned_client_identifier_with_session_expiry_can_resume(broker, paho, raw, topic):
    """An assigned id names a real session: reconnecting with it and clean start 0 resumes it."""
    c = raw(broker.port)
    ca = c.connect("", properties=r.props(SessionExpiryInterval=30))
    assigned = ca.props.get("AssignedClientIdentifier")
    assert assigned
    c.subscribe([(topic, 1)])
    c.send(r.disconnect())
    c.expect_closed()
    c2 = raw(broker.port)
    ca2 = c2.connect(assigned, clean=False, properties=r.props(SessionExpiryInterval=30))
    assert ca2.session_present


def test_v311_empty_client_id_with_clean_session_0_refused_rc2(broker, raw):
    """MQTT-3.1.3-8: zero-byte ClientId with CleanSession 0 -> CONNACK 0x02 then close."""
    c = raw(broker.port, version=4)
    c.send(r.connect("", version=4, clean=False))
    p = c.read()
    assert p.type == r.CONNACK
    assert p.reason == 0x02
    assert p.session_present is False
    c.expect_closed()


def test_v311_empty_client_id_with_clean_session_1_accepted(broker, raw):
    """MQTT-3.1.3-6: zero-byte ClientId with CleanSession 1 is accepted."""
    c = raw(broker.port, version=4)
    ca = c.connect("", version=4, clean=True)
    assert ca.reason == 0


def test_v311_unsupported_protocol_level_gets_connack_0x01(broker, raw):
    """MQTT-3.1.2-2: unsupported protocol level -> CONNACK 0x01 and close."""
    c = raw(broker.port, version=4)
    pkt = bytearray(r.connect("x", version=4))
    # protocol level byte sits after fixed header (2) + "MQTT" string (6)
    pkt[8] = 9
    c.send(bytes(pkt))
    got = c.expect_closed()
    assert got and got[0].type == r.CONNACK and got[0].body[1] == 0x01, got


# --- session take-over ----------------------------------------------------------

def test_v5_session_takeover_old_connection_gets_disconnect_0x8e(broker, paho, cid, topic):
    """MQTT-3.1.4-3: same client id connects again -> old connection is closed; v5 reason 0x8E."""
    client_id = cid()
    first = paho(broker.port, client_id)
    first.connect()
    second = paho(broker.port, client_id)
    second.connect()
    reason, _ = first.wait_disconnect()
    assert reason == 0x8E, f"first connection got reason {reason:#x}, expected 0x8E (session taken over)"
    # the new connection works
    second.subscribe(topic, 1)
    second.publish(topic, b"ok", 1)
    assert second.get().payload == b"ok"


def test_v5_session_takeover_raw_disconnect_packet_0x8e(broker, raw, cid):
    """The same check on the wire: a DISCONNECT packet with 0x8E precedes the close."""
    client_id = cid()
    a = raw(broker.port)
    a.connect(client_id)
    b = raw(broker.port)
    assert b.connect(client_id).reason == 0
    got = a.expect_closed()
    assert got and got[-1].type == r.DISCONNECT and got[-1].reason == 0x8E, got


def test_v311_session_takeover_closes_first_connection(broker, paho, cid, topic):
    """MQTT-3.1.4-2: the existing client with the same id is disconnected."""
    client_id = cid()
    first = paho(broker.port, client_id, version=4)
    first.connect()
    second = paho(broker.port, client_id, version=4)
    second.connect()
    first.wait_disconnect()
    second.subscribe(topic, 1)
    second.publish(topic, b"ok", 1)
    assert second.get().payload == b"ok"


def test_v5_session_takeover_keeps_persistent_session(broker, paho, cid, topic):
    """Take-over with clean start 0 continues the session (subscriptions survive)."""
    client_id = cid()
    first = paho(broker.port, client_id)
    first.connect(properties=connect_props(SessionExpiryInterval=30))
    first.subscribe(topic, 1)
    second = paho(broker.port, client_id)
    ca = second.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=30))
    assert ca.session_present is True
    first.wait_disconnect()
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"still subscribed", 1)
    assert second.get().payload == b"still subscribed"


# --- offline queue ----------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5])
def test_offline_queue_qos1_delivered_in_order_on_reconnect(broker, paho, cid, topic, version):
    """MQTT-3.1.2-5 (3.1.1) / 4.6 ordering: QoS 1 messages for an offline persistent session are kept
    and delivered, in order, on reconnect."""
    client_id = cid()
    kw = dict(version=version, clean_session=False) if version == 4 else {}
    cp = connect_props(SessionExpiryInterval=60) if version == 5 else None
    sub = paho(broker.port, client_id, **kw)
    sub.connect(clean_start=False, properties=cp)
    sub.subscribe(topic, 1)
    sub.disconnect()
    pub = paho(broker.port, version=version)
    pub.connect()
    n = 20
    for i in range(n):
        pub.publish(topic, f"{i}".encode(), 1)
    sub2 = paho(broker.port, client_id, **kw)
    assert sub2.connect(clean_start=False, properties=cp).session_present is True
    got = sub2.collect(n, timeout=5)
    assert [int(m.payload) for m in got] == list(range(n))
    sub2.expect_no_message(0.3)


@pytest.mark.parametrize("version", [4, 5])
def test_offline_queue_qos2_delivered_exactly_once_on_reconnect(broker, paho, cid, topic, version):
    client_id = cid()
    kw = dict(version=version, clean_session=False) if version == 4 else {}
    cp = connect_props(SessionExpiryInterval=60) if version == 5 else None
    sub = paho(broker.port, client_id, **kw)
    sub.connect(clean_start=False, properties=cp)
    sub.subscribe(topic, 2)
    sub.disconnect()
    pub = paho(broker.port, version=version)
    pub.connect()
    for i in range(3):
        pub.publish(topic, f"{i}".encode(), 2)
    sub2 = paho(broker.port, client_id, **kw)
    sub2.connect(clean_start=False, properties=cp)
    got = sub2.collect(3)
    assert [m.payload for m in got] == [b"0", b"1", b"2"]
    assert all(m.qos == 2 for m in got)
    sub2.expect_no_message(0.3)


def test_offline_queue_qos0_not_queued_by_default(broker, paho, cid, topic):
    """conf: queue_qos0_messages = false by default: QoS 0 messages for offline sessions are dropped."""
    client_id = cid()
    sub = paho(broker.port, client_id)
    sub.connect(properties=connect_props(SessionExpiryInterval=60))
    sub.subscribe(topic, 1)
    sub.disconnect()
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"q0", 0)
    pub.publish(topic, b"q1", 1)
    sub2 = paho(broker.port, client_id)
    sub2.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=60))
    got = sub2.collect(1)
    assert got[0].payload == b"q1"
    sub2.expect_no_message(0.3)


@pytest.mark.parametrize("config", ["durability = none\nmax_queued_messages = 5\n", "max_stored_messages = 5\n"],
                         ids=["memory-queue", "stored-queue"])
def test_max_queued_messages_limits_offline_queue(start_broker, paho, cid, topic, config):
    """An offline session keeps at most 5 messages (new ones dropped): max_queued_messages for a
    session in memory, max_stored_messages for a stored one (its queue is on disk)."""
    b = start_broker(config)
    client_id = cid()
    sub = paho(b.port, client_id)
    sub.connect(properties=connect_props(SessionExpiryInterval=60))
    sub.subscribe(topic, 1)
    sub.disconnect()
    pub = paho(b.port)
    pub.connect()
    for i in range(10):
        pub.publish(topic, f"{i}".encode(), 1)
    sub2 = paho(b.port, client_id)
    sub2.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=60))
    got = sub2.collect(5)
    sub2.expect_no_message(0.5)
    assert [int(m.payload) for m in got] == [0, 1, 2, 3, 4]


def test_max_inflight_limits_unacknowledged_qos1_deliveries(start_broker, raw, paho, topic):
    """conf max_inflight = 3: a 3.1.1 subscriber that does not ack sees at most 3 messages in flight;
    acking one releases the next."""
    b = start_broker("max_inflight = 3\n")
    sub = raw(b.port, version=4)
    sub.connect("inflight-sub", version=4)
    assert sub.subscribe([(topic, 1)], version=4).reasons == [1]
    pub = paho(b.port, version=4)
    pub.connect()
    for i in range(6):
        pub.publish(topic, f"{i}".encode(), 1)
    got = [sub.read() for _ in range(3)]
    assert [p.payload for p in got] == [b"0", b"1", b"2"]
    sub.expect_nothing(0.5)
    sub.send(r.ack(r.PUBACK, got[0].pid, version=4))
    nxt = sub.read()
    assert nxt.type == r.PUBLISH and nxt.payload == b"3"
    sub.expect_nothing(0.3)
