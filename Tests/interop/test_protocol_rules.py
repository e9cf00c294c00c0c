"""More normative rules checked on the wire: QoS 2 duplicates, QoS 1 redelivery
with DUP, MQTT 3.1, UNSUBACK codes, DISCONNECT session expiry, configured limits."""

import pytest

import raw as r
from conftest import closed_line
from test_mosquitto_clients import Sub, mpub


def test_qos2_duplicate_publish_before_pubrel_delivered_once(broker, raw, paho, topic):
    """MQTT-4.3.3-2 / 4.3.3: a re-sent QoS 2 PUBLISH (DUP) with the same packet id before PUBREL
    is acknowledged again but not delivered twice."""
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(topic, 2)
    c = raw(broker.port)
    c.connect("q2dup")
    c.publish(topic, b"once", qos=2, pid=5)
    assert c.read_type(r.PUBREC).pid == 5
    c.publish(topic, b"once", qos=2, pid=5, dup=True)
    assert c.read_type(r.PUBREC).pid == 5
    c.send(r.ack(r.PUBREL, 5))
    comp = c.read_type(r.PUBCOMP)
    assert comp.pid == 5 and (comp.reason or 0) == 0
    assert sub.get().payload == b"once"
    sub.expect_no_message(0.5)


def test_qos2_pubrel_for_unknown_packet_id_gets_pubcomp(broker, raw):
    """v5 3.7.2.1: PUBREL for an unknown id -> PUBCOMP 0x92 (Packet Identifier not found)."""
    c = raw(broker.port)
    c.connect("pubrel-unknown")
    c.send(r.ack(r.PUBREL, 77))
    comp = c.read_type(r.PUBCOMP)
    assert comp.pid == 77 and comp.reason == 0x92, comp


@pytest.mark.parametrize("version", [4, 5])
def test_unacked_qos1_redelivered_with_dup_on_reconnect(debug_broker, raw, paho, topic, version):
    """MQTT-4.4.0-1 / MQTT-3.3.1-1: on reconnect with a session, unacknowledged QoS 1 PUBLISHes are
    re-sent with the same packet id and DUP 1."""
    broker = debug_broker
    c = raw(broker.port, version=version)
    kw = dict(clean=False, version=version)
    if version == 5:
        kw["properties"] = r.props(SessionExpiryInterval=60)
    c.connect("redeliver-" + str(version), **kw)
    c.subscribe([(topic, 1)], version=version)
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"unacked", 1)
    first = c.read_type(r.PUBLISH)
    assert first.dup is False
    c.close()  # no PUBACK
    broker.wait_log(closed_line("redeliver-" + str(version)))  # a reconnect, not a take-over
    c2 = raw(broker.port, version=version)
    ca = c2.connect("redeliver-" + str(version), **kw)
    assert ca.session_present
    again = c2.read_type(r.PUBLISH)
    assert again.payload == b"unacked" and again.pid == first.pid and again.dup is True, again
    c2.send(r.ack(r.PUBACK, again.pid, version=version))
    c2.expect_nothing(0.4)


def test_unacked_qos2_pubrel_resent_on_reconnect(debug_broker, raw, paho, topic):
    """MQTT-4.4.0-1: after PUBREC the broker's PUBREL is re-sent on reconnect (not the PUBLISH)."""
    broker = debug_broker
    kw = dict(clean=False, properties=r.props(SessionExpiryInterval=60))
    c = raw(broker.port)
    c.connect("q2-resume", **kw)
    c.subscribe([(topic, 2)])
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"q2", 2)
    p = c.read_type(r.PUBLISH)
    c.send(r.ack(r.PUBREC, p.pid))
    rel = c.read_type(r.PUBREL)
    assert rel.pid == p.pid
    c.close()  # no PUBCOMP
    broker.wait_log(closed_line("q2-resume"))  # a reconnect, not a take-over
    c2 = raw(broker.port)
    assert c2.connect("q2-resume", **kw).session_present
    rel2 = c2.read()
    assert rel2.type == r.PUBREL and rel2.pid == p.pid, rel2
    c2.send(r.ack(r.PUBCOMP, p.pid))
    c2.expect_nothing(0.4)


def test_mqtt31_mqisdp_client_can_publish_and_subscribe(broker, topic):
    """SPEC 1: protocol level 3 (MQIsdp) with mosquitto -V mqttv31."""
    s = Sub(broker.port, ["-t", topic, "-q", "1", "-i", "v31sub"], 3)  # returns once subscribed
    try:
        mpub(broker.port, 3, "-t", topic, "-q", "1", "-m", "three-one", "-i", "v31pub")
        out = s.output()
    finally:
        s.kill()
    assert out == ["three-one"], s.lines


def test_mqtt31_client_id_longer_than_23_refused_rc2(broker, raw):
    """3.1: client ids are 1..23 characters -> CONNACK 0x02."""
    c = raw(broker.port, version=3)
    c.send(r.connect("x" * 24, version=3))
    p = c.read()
    assert p.type == r.CONNACK and p.reason == 0x02, p


def test_v5_unsubscribe_nonexistent_gets_unsuback_0x11(broker, raw, topic):
    """3.11.3: UNSUBACK 0x11 'No subscription existed' / 0x00 for a real one."""
    c = raw(broker.port)
    c.connect("unsub")
    c.subscribe([(topic + "/a", 0)])
    body = b"\x00\x09" + r.props() + r.s(topic + "/a") + r.s(topic + "/none")
    c.send(r.packet(r.UNSUBSCRIBE, 2, body))
    ua = c.read_type(r.UNSUBACK)
    assert ua.pid == 9 and ua.reasons == [0x00, 0x11], ua


def test_v5_disconnect_setting_session_expiry_when_connect_had_zero_is_protocol_error(broker, raw):
    """MQTT-3.14.2-2: Session Expiry 0 at CONNECT and non-zero in DISCONNECT -> protocol error
    (server DISCONNECT 0x82)."""
    c = raw(broker.port)
    c.connect("sei-zero")
    c.send(r.disconnect(reason=0, properties=r.props(SessionExpiryInterval=30)))
    got = c.expect_closed()
    assert got and got[-1].type == r.DISCONNECT and got[-1].reason == 0x82, got


def test_max_topic_levels_publish_is_disconnect_0x90_and_subscribe_suback_0x8f(start_broker, raw):
    """conf max_topic_levels = 3: deeper PUBLISH -> DISCONNECT 0x90; deeper SUBSCRIBE -> SUBACK 0x8F."""
    b = start_broker("max_topic_levels = 3\n")
    s = raw(b.port)
    s.connect("levels-sub")
    sa = s.subscribe([("a/b/c", 0), ("a/b/c/d", 0)])
    assert sa.reasons == [0x00, 0x8F], sa
    p = raw(b.port)
    p.connect("levels-pub")
    p.publish("a/b/c/d", b"x", qos=1, pid=1)
    got = p.expect_closed()
    assert got and got[-1].type == r.DISCONNECT and got[-1].reason == 0x90, got


@pytest.mark.parametrize("version,expected", [(5, 0x89), (4, 0x03)])
def test_max_connections_refuses_extra_connect(start_broker, raw, version, expected):
    """conf max_connections = 2: the third CONNECT gets exactly one CONNACK, refusing it (v5
    0x89 Server busy, 3.1.1 0x03 Server unavailable), and is closed; the first two keep working."""
    b = start_broker("max_connections = 2\n")
    a = raw(b.port)
    assert a.connect("mc1").reason == 0
    c2 = raw(b.port)
    assert c2.connect("mc2").reason == 0
    c3 = raw(b.port, version=version)
    c3.send(r.connect("mc3", version=version))
    got = c3.expect_closed()
    assert len(got) == 1 and got[0].type == r.CONNACK and got[0].reason == expected, got
    assert got[0].session_present is False, got
    for c in (a, c2):
        c.send(r.pingreq())
        assert c.read().type == r.PINGRESP


@pytest.mark.parametrize("version,expected", [(4, 0x05), (5, 0x87)])
def test_allow_anonymous_false_refuses_anonymous_connect(start_broker, raw, version, expected):
    """conf allow_anonymous = false: CONNACK 0x05 (3.1.1 not authorized) / 0x87 (v5)."""
    b = start_broker("allow_anonymous = false\n")
    c = raw(b.port, version=version)
    c.send(r.connect("anon", version=version))
    got = c.expect_closed()
    assert got and got[0].type == r.CONNACK and got[0].reason == expected, got


def test_v5_connack_announces_server_capabilities(broker, raw):
    """3.2.2.3: what the broker supports is stated (or defaults: all available)."""
    c = raw(broker.port)
    ca = c.connect("caps")
    assert ca.reason == 0
    for name in ("RetainAvailable", "WildcardSubscriptionAvailable", "SubscriptionIdentifierAvailable",
                 "SharedSubscriptionAvailable"):
        assert ca.props.get(name, 1) == 1, (name, ca.props)
    assert ca.props.get("MaximumQoS", 2) == 2


def test_v5_request_problem_information_0_still_allows_reason_string_on_disconnect(start_broker, raw, topic):
    """MQTT-3.1.2-29 exempts DISCONNECT: the 0x95 DISCONNECT may carry a reason string; the
    connection must still close."""
    b = start_broker("max_packet_size = 1024\n")
    c = raw(b.port)
    c.connect("rpi0-disc", properties=r.props(RequestProblemInformation=0))
    c.publish(topic, b"x" * 2000)
    got = c.expect_closed()
    assert got and got[-1].type == r.DISCONNECT and got[-1].reason == 0x95, got


def test_v5_session_takeover_publishes_will_of_old_connection_when_delay_0(broker, paho, cid, topic):
    """3.1.4 / 3.1.2.5 (v5): on take-over the old connection's will (delay 0) is published."""
    client_id = cid()
    w = paho(broker.port)
    w.connect()
    w.subscribe(topic, 1)
    old = paho(broker.port, client_id)
    old.will_set(topic, b"taken over", 1)
    old.connect()
    new = paho(broker.port, client_id)
    new.connect()
    assert old.wait_disconnect()[0] == 0x8E
    assert w.get().payload == b"taken over"


def test_v5_session_takeover_with_will_delay_and_clean_start_0_does_not_publish_will(broker, paho, cid, topic):
    """3.1.2.5 (v5): a new connection for the session before the will delay elapses cancels the will."""
    from pahoclient import connect_props, will_props
    client_id = cid()
    w = paho(broker.port)
    w.connect()
    w.subscribe(topic, 1)
    old = paho(broker.port, client_id)
    old.will_set(topic, b"must not appear", 1, properties=will_props(WillDelayInterval=2))
    old.connect(properties=connect_props(SessionExpiryInterval=30))
    new = paho(broker.port, client_id)
    new.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=30))
    old.wait_disconnect()
    w.expect_no_message(2.5)


def test_v5_retained_message_on_subscribe_carries_subscription_identifier(broker, paho, topic):
    """MQTT-3.3.4-3: the subscription identifier also comes with retained messages sent at subscribe."""
    from pahoclient import subscribe_props, prop
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"r", 1, retain=True)
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(topic, 1, properties=subscribe_props(SubscriptionIdentifier=42))
    m = sub.get()
    assert m.retain and prop(m.properties, "SubscriptionIdentifier") == [42]


def test_v5_inbound_topic_alias_does_not_survive_reconnect(broker, raw, topic):
    """MQTT-3.3.2-7: topic alias mappings exist only within one network connection."""
    kw = dict(clean=False, properties=r.props(SessionExpiryInterval=30))
    c = raw(broker.port)
    c.connect("alias-life", **kw)
    c.publish(topic, b"x", qos=1, pid=1, properties=r.props(TopicAlias=1))
    assert c.read_type(r.PUBACK).reason == 0x10  # accepted (alias set); nobody subscribes
    c.send(r.disconnect())
    c.expect_closed()
    c2 = raw(broker.port)
    c2.connect("alias-life", **kw)
    c2.publish("", b"y", qos=1, pid=2, properties=r.props(TopicAlias=1))
    got = c2.expect_closed()
    assert got and got[-1].type == r.DISCONNECT and got[-1].reason == 0x82, got


def test_v5_outbound_topic_aliases_reset_on_reconnect(broker, raw, paho, topic):
    """MQTT-3.3.2-7: after a reconnect the broker sets each alias up again (topic + alias) before
    sending an empty topic."""
    kw = dict(clean=False, properties=r.props(SessionExpiryInterval=30, TopicAliasMaximum=4))
    c = raw(broker.port)
    c.connect("alias-out", **kw)
    c.subscribe([(topic, 0)])
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"1", 1)
    pub.publish(topic, b"2", 1)
    first = [c.read_type(r.PUBLISH) for _ in range(2)]
    assert first[0].topic == topic.encode()
    c.send(r.disconnect())
    c.expect_closed()
    c2 = raw(broker.port)
    c2.connect("alias-out", **kw)
    pub.publish(topic, b"3", 1)
    p = c2.read_type(r.PUBLISH)
    assert p.topic == topic.encode(), f"first PUBLISH after reconnect relies on an old alias: {p}"
