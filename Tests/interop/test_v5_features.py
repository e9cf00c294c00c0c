"""MQTT 5.0 features: topic aliases both ways, message expiry, properties passed
through, receive maximum, maximum packet size both ways, reason strings, server
keep alive, ACL reason codes."""

import math
import time

import pytest
from paho.mqtt.packettypes import PacketTypes

import raw as r
from pahoclient import connect_props, publish_props, prop


# --- topic aliases ------------------------------------------------------------------

def test_v5_topic_alias_from_client_is_resolved(broker, paho, topic):
    """3.3.2.3.4: a client sets alias 1 with the topic, then sends empty-topic PUBLISHes with alias 1."""
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(topic, 1)
    pub = paho(broker.port)
    ca = pub.connect()
    assert prop(ca.properties, "TopicAliasMaximum", 0) >= 1, "broker announces no topic aliases"
    pub.publish(topic, b"first", 1, properties=publish_props(TopicAlias=1))
    pub.publish("", b"second", 1, properties=publish_props(TopicAlias=1))
    pub.publish("", b"third", 0, properties=publish_props(TopicAlias=1))
    got = sub.collect(3)
    assert [(m.topic, m.payload) for m in got] == [(topic, b"first"), (topic, b"second"), (topic, b"third")]


def test_v5_topic_alias_from_client_can_be_remapped(broker, paho, topic):
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(topic + "/#", 1)
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic + "/a", b"1", 1, properties=publish_props(TopicAlias=2))
    pub.publish(topic + "/b", b"2", 1, properties=publish_props(TopicAlias=2))
    pub.publish("", b"3", 1, properties=publish_props(TopicAlias=2))
    got = sub.collect(3)
    assert [(m.topic, m.payload) for m in got] == [(topic + "/a", b"1"), (topic + "/b", b"2"), (topic + "/b", b"3")]


def test_v5_topic_alias_maximum_announced_from_config(start_broker, raw):
    b = start_broker("topic_alias_maximum = 5\n")
    c = raw(b.port)
    assert c.connect("tam").props.get("TopicAliasMaximum") == 5


def test_v5_topic_alias_above_server_maximum_is_disconnect_0x94(start_broker, raw, topic):
    """MQTT-3.3.2-8 / 3.3.2.3.4: alias 0 or above Topic Alias Maximum -> DISCONNECT 0x94."""
    b = start_broker("topic_alias_maximum = 5\n")
    c = raw(b.port)
    c.connect("tam6")
    c.send(r.publish(topic, b"x", properties=r.props(TopicAlias=6)))
    got = c.expect_closed()
    assert got and got[-1].type == r.DISCONNECT and got[-1].reason == 0x94, got


def test_v5_topic_alias_zero_is_disconnect_0x94(broker, raw, topic):
    c = raw(broker.port)
    c.connect("ta0")
    c.send(r.publish(topic, b"x", properties=r.props(TopicAlias=0)))
    got = c.expect_closed()
    assert got and got[-1].type == r.DISCONNECT and got[-1].reason == 0x94, got


def test_v5_topic_alias_from_broker_when_client_allows_it(broker, paho, topic):
    """3.3.2.3.4 / MQTT-3.3.2-9: client announces Topic Alias Maximum 5; messages arrive with the
    right topic (paho does not resolve inbound aliases, the wrapper does what a client must)."""
    sub = paho(broker.port)
    sub.connect(properties=connect_props(TopicAliasMaximum=5))
    sub.subscribe(topic + "/#", 1)
    pub = paho(broker.port)
    pub.connect()
    topics = [f"{topic}/{i % 3}" for i in range(9)]
    for i, t in enumerate(topics):
        pub.publish(t, f"{i}".encode(), 1)
    got = sub.collect(9)
    assert [(m.topic, int(m.payload)) for m in got] == [(t, i) for i, t in enumerate(topics)]
    for m in got:
        if m.alias is not None:
            assert 1 <= m.alias <= 5, f"broker used alias {m.alias} above the client's maximum 5"
        if m.wire_topic == "":
            assert m.alias is not None, "empty topic without an alias"


def test_v5_topic_alias_from_broker_first_use_carries_topic_raw(broker, raw, paho, topic):
    """On the wire: an alias the broker uses is set up (topic + alias) before any empty-topic use."""
    sub = raw(broker.port)
    sub.connect("alias-raw", properties=r.props(TopicAliasMaximum=2))
    sub.subscribe([(topic + "/#", 0)])
    pub = paho(broker.port)
    pub.connect()
    topics = [f"{topic}/{i % 4}" for i in range(12)]
    for i, t in enumerate(topics):
        pub.publish(t, f"{i}".encode(), 1)
    known = {}
    for i, t in enumerate(topics):
        p = sub.read_type(r.PUBLISH)
        alias = p.props.get("TopicAlias")
        if alias is not None:
            assert 1 <= alias <= 2, alias
            if p.topic:
                known[alias] = p.topic.decode()
            else:
                assert alias in known, f"alias {alias} used before it was set"
        resolved = p.topic.decode() if p.topic else known[alias]
        assert (resolved, p.payload) == (t, f"{i}".encode())


def test_v5_no_topic_alias_from_broker_when_client_maximum_is_0(broker, raw, paho, topic):
    """MQTT-3.3.2-9 / -10: without a client Topic Alias Maximum the broker sends no aliases."""
    sub = raw(broker.port)
    sub.connect("no-alias")
    sub.subscribe([(topic, 0)])
    pub = paho(broker.port)
    pub.connect()
    for i in range(5):
        pub.publish(topic, b"x", 1)
    for _ in range(5):
        p = sub.read_type(r.PUBLISH)
        assert "TopicAlias" not in p.props and p.topic == topic.encode(), p


def test_v5_unknown_inbound_topic_alias_is_disconnect_0x82(broker, raw):
    """3.3.2.3.4: empty topic with an alias that has no mapping is a protocol error (0x82)."""
    c = raw(broker.port)
    c.connect("unknown-alias")
    c.send(r.publish("", b"x", properties=r.props(TopicAlias=3)))
    got = c.expect_closed()
    assert got and got[-1].type == r.DISCONNECT and got[-1].reason == 0x82, got


# --- message expiry -----------------------------------------------------------------

def test_v5_message_expiry_queued_message_whose_expiry_passed_is_not_delivered(broker, paho, cid, topic):
    """MQTT-3.3.2-5: a message whose expiry interval has passed is not delivered to the subscriber."""
    client_id = cid()
    sub = paho(broker.port, client_id)
    sub.connect(properties=connect_props(SessionExpiryInterval=30))
    sub.subscribe(topic, 1)
    sub.disconnect()
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"short", 1, properties=publish_props(MessageExpiryInterval=1))
    pub.publish(topic, b"long", 1, properties=publish_props(MessageExpiryInterval=60))
    pub.publish(topic, b"forever", 1)
    time.sleep(2.2)
    sub2 = paho(broker.port, client_id)
    sub2.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=30))
    got = sub2.collect(2)
    assert [m.payload for m in got] == [b"long", b"forever"]
    sub2.expect_no_message(0.3)


def test_v5_message_expiry_interval_forwarded_reduced_by_time_waited(broker, paho, cid, topic):
    """MQTT-3.3.2-6: the forwarded Message Expiry Interval is the received one minus the time spent waiting."""
    client_id = cid()
    sub = paho(broker.port, client_id)
    sub.connect(properties=connect_props(SessionExpiryInterval=30))
    sub.subscribe(topic, 1)
    sub.disconnect()
    pub = paho(broker.port)
    pub.connect()
    published = time.monotonic()
    pub.publish(topic, b"x", 1, properties=publish_props(MessageExpiryInterval=60))
    time.sleep(2.1)  # the message waits in the queue at least this long
    sub2 = paho(broker.port, client_id)
    sub2.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=30))
    m = sub2.get()
    waited = m.received_at - published  # at least 2.1 s, measured rather than assumed
    left = prop(m.properties, "MessageExpiryInterval")
    assert left is not None, "expiry interval dropped"
    # Reduced by the whole seconds it waited: at least 2, at most what it took (rounded up).
    assert 60 - math.ceil(waited) <= left <= 58, f"expiry interval {left} after {waited:.2f}s waiting"


def test_v5_retained_message_expires(broker, paho, topic):
    """SPEC 1: message expiry also applies to retained messages."""
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"brief", 1, retain=True, properties=publish_props(MessageExpiryInterval=1))
    time.sleep(2.2)
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(topic, 1)
    sub.expect_no_message(0.5)


# --- properties passed through -------------------------------------------------------

def test_v5_request_response_and_user_properties_passed_through_unchanged(broker, paho, topic):
    """MQTT-3.3.2-15 / -16 / -17 / -18 / 3.3.2.3.7: response topic, correlation data, content type,
    payload format and user properties (order and duplicates kept) reach the subscriber unchanged."""
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(topic, 1)
    pub = paho(broker.port)
    pub.connect()
    user = [("a", "1"), ("b", "2"), ("a", "3"), ("ünï", "cödé"), ("empty", "")]
    pub.publish(topic, "héllo".encode(), 1, properties=publish_props(
        UserProperty=user, ContentType="text/plain; charset=utf-8", ResponseTopic=topic + "/reply",
        CorrelationData=b"\x00\xffcorr", PayloadFormatIndicator=1))
    m = sub.get()
    assert prop(m.properties, "UserProperty") == user
    assert prop(m.properties, "ContentType") == "text/plain; charset=utf-8"
    assert prop(m.properties, "ResponseTopic") == topic + "/reply"
    assert prop(m.properties, "CorrelationData") == b"\x00\xffcorr"
    assert prop(m.properties, "PayloadFormatIndicator") == 1
    assert m.payload == "héllo".encode()


def test_v5_request_response_round_trip(broker, paho, topic):
    """A requester and a responder using response topic + correlation data."""
    responder = paho(broker.port)
    responder.connect()
    responder.subscribe(topic + "/req", 1)
    requester = paho(broker.port)
    requester.connect()
    requester.subscribe(topic + "/resp", 1)
    requester.publish(topic + "/req", b"ping", 1, properties=publish_props(
        ResponseTopic=topic + "/resp", CorrelationData=b"id-42"))
    req = responder.get()
    responder.publish(prop(req.properties, "ResponseTopic"), b"pong", 1, properties=publish_props(
        CorrelationData=prop(req.properties, "CorrelationData")))
    resp = requester.get()
    assert resp.payload == b"pong" and prop(resp.properties, "CorrelationData") == b"id-42"


def test_v5_user_properties_reach_v311_subscriber_as_plain_message(broker, paho, topic):
    """A v5 publish with properties is delivered to a 3.1.1 subscriber (properties dropped)."""
    sub = paho(broker.port, version=4)
    sub.connect()
    sub.subscribe(topic, 1)
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"mixed", 1, properties=publish_props(UserProperty=[("k", "v")]))
    assert sub.get().payload == b"mixed"


# --- receive maximum -----------------------------------------------------------------

def test_v5_receive_maximum_respected_by_broker(broker, paho, topic):
    """MQTT-3.3.4-9: the server never has more unacknowledged QoS 1/2 PUBLISHes to a client than its
    Receive Maximum (2 here; acks withheld with paho manual_ack)."""
    sub = paho(broker.port, manual_ack=True)
    sub.connect(properties=connect_props(ReceiveMaximum=2))
    sub.subscribe(topic, 1)
    pub = paho(broker.port)
    pub.connect()
    for i in range(6):
        pub.publish(topic, f"{i}".encode(), 1)
    first = sub.collect(2)
    assert [m.payload for m in first] == [b"0", b"1"]
    sub.expect_no_message(0.6)
    sub.ack(first[0].mid)
    m = sub.get()
    assert m.payload == b"2"
    sub.expect_no_message(0.4)
    sub.ack(first[1].mid)
    sub.ack(m.mid)
    rest = sub.collect(2)
    assert [x.payload for x in rest] == [b"3", b"4"]
    for x in rest:
        sub.ack(x.mid)
    assert sub.get().payload == b"5"


def test_v5_receive_maximum_does_not_limit_qos0(broker, paho, topic):
    sub = paho(broker.port, manual_ack=True)
    sub.connect(properties=connect_props(ReceiveMaximum=1))
    sub.subscribe(topic, 1)
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"q1", 1)
    for i in range(5):
        pub.publish(topic, f"{i}".encode(), 0)
    got = sub.collect(6)
    assert got[0].payload == b"q1"


def test_v5_broker_receive_maximum_announced_from_max_inflight(start_broker, raw):
    """conf max_inflight is announced as the server Receive Maximum (3.2.2.3.3)."""
    b = start_broker("max_inflight = 10\n")
    c = raw(b.port)
    assert c.connect("rm").props.get("ReceiveMaximum") == 10


def test_v5_client_exceeding_server_receive_maximum_is_disconnect_0x93(start_broker, raw, topic):
    """MQTT-3.3.4-8 / 3.3.4: more unacknowledged QoS 2 PUBLISHes than Receive Maximum -> 0x93."""
    b = start_broker("max_inflight = 2\n")
    c = raw(b.port)
    c.connect("rm-exceed")
    for pid in (1, 2, 3):
        c.send(r.publish(topic, b"x", qos=2, pid=pid))
        # never send PUBREL
    got = c.expect_closed()
    assert got and got[-1].type == r.DISCONNECT and got[-1].reason == 0x93, got


# --- maximum packet size --------------------------------------------------------------

def test_v5_client_maximum_packet_size_larger_messages_not_delivered(broker, paho, topic):
    """MQTT-3.1.2-25: the server does not send packets larger than the client's Maximum Packet Size;
    it drops the message for that client and goes on with the next ones."""
    sub = paho(broker.port)
    sub.connect(properties=connect_props(MaximumPacketSize=200))
    sub.subscribe(topic, 1)
    big = paho(broker.port)
    big.connect()
    big.subscribe(topic, 1)
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"small-1", 1)
    pub.publish(topic, b"B" * 500, 1)
    pub.publish(topic, b"small-2", 1)
    got = sub.collect(2)
    assert [m.payload for m in got] == [b"small-1", b"small-2"]
    sub.expect_no_message(0.3)
    assert [len(m.payload) for m in big.collect(3)] == [7, 500, 7]
    assert sub.connected, "subscriber was disconnected"


def test_v5_server_maximum_packet_size_announced_in_connack(start_broker, raw):
    b = start_broker("max_packet_size = 2048\n")
    c = raw(b.port)
    assert c.connect("mps").props.get("MaximumPacketSize") == 2048


def test_v5_server_maximum_packet_size_oversized_publish_is_disconnect_0x95(start_broker, raw, paho, topic):
    """3.2.2.3.6 / 4.13: a packet above the server's Maximum Packet Size -> DISCONNECT 0x95, close;
    other clients are not affected."""
    b = start_broker("max_packet_size = 2048\n")
    other = paho(b.port)
    other.connect()
    other.subscribe(topic, 1)
    c = raw(b.port)
    c.connect("too-big")
    c.send(r.publish(topic, b"Z" * 4000, qos=1, pid=1))
    got = c.expect_closed()
    assert got and got[-1].type == r.DISCONNECT and got[-1].reason == 0x95, got
    other.expect_no_message(0.3)
    p = paho(b.port)
    p.connect()
    p.publish(topic, b"fine", 1)
    assert other.get().payload == b"fine"


def test_v311_oversized_publish_closes_connection(start_broker, raw, topic):
    b = start_broker("max_packet_size = 2048\n")
    c = raw(b.port, version=4)
    c.connect("too-big-311", version=4)
    c.send(r.publish(topic, b"Z" * 4000, qos=1, pid=1, version=4))
    assert c.expect_closed() == []  # 3.1.1: just the close, no PUBACK


# --- reason strings ------------------------------------------------------------------

def test_v5_reason_string_not_sent_when_request_problem_information_is_0(start_broker, raw, topic):
    """MQTT-3.1.2-29: Request Problem Information 0 -> no Reason String (or User Property) on
    packets other than PUBLISH, CONNACK, DISCONNECT: here the 0x87 PUBACK of a denied publish and
    the SUBACK of a refused subscription."""
    b = start_broker("acl = deny publish * secret/#\nacl = deny subscribe * nosub/#\n")
    c = raw(b.port)
    c.connect("rpi0", properties=r.props(RequestProblemInformation=0))
    c.publish("secret/x", b"x", qos=1, pid=7)
    ack = c.read_type(r.PUBACK)
    assert ack.reason == 0x87
    assert "ReasonString" not in ack.props and "UserProperty" not in ack.props, ack
    sa = c.subscribe([("nosub/x", 1)], pid=8)
    assert sa.reasons == [0x87], sa
    assert "ReasonString" not in sa.props, sa


def test_v5_reason_string_sent_when_request_problem_information_allows(start_broker, raw, topic):
    """Default (RPI 1) and `reason_strings = true`: the denied PUBACK explains itself."""
    b = start_broker("acl = deny publish * secret/#\n")
    c = raw(b.port)
    c.connect("rpi1")
    c.publish("secret/x", b"x", qos=1, pid=7)
    ack = c.read_type(r.PUBACK)
    assert ack.reason == 0x87
    assert ack.props.get("ReasonString"), ack


# --- keep alive -------------------------------------------------------------------------

def test_v5_server_keep_alive_sent_when_client_asks_for_more_than_max_keepalive(start_broker, raw):
    """3.2.2.3.14 / MQTT-3.2.2-21: the server's keep alive in CONNACK overrides the client's."""
    b = start_broker("max_keepalive = 10\n")
    c = raw(b.port)
    ca = c.connect("ska", keepalive=60)
    assert ca.props.get("ServerKeepAlive") == 10, ca


def test_v5_server_keep_alive_is_enforced(start_broker, raw):
    """The broker enforces the keep alive it granted (1 s, not the 60 s asked for): silence is
    left alone for less than 1.5 x 1 s, then the connection gets DISCONNECT 0x8D and is closed
    (long before the client's own 60 s)."""
    b = start_broker("max_keepalive = 1\n")
    c = raw(b.port)
    ca = c.connect("ska-enforced", keepalive=60)
    assert ca.props.get("ServerKeepAlive") == 1
    try:
        c.expect_nothing(1.2)
    except r.Closed:
        raise AssertionError("closed before 1.5 x the granted keep alive")
    got = c.expect_closed(timeout=5)
    assert len(got) == 1 and got[0].type == r.DISCONNECT and got[0].reason == 0x8D, got


# --- ACL -------------------------------------------------------------------------------

def test_acl_deny_publish_v5_qos1_gets_puback_0x87_and_is_not_delivered(start_broker, paho):
    """conf `acl = deny publish * secret/#`: PUBACK 0x87 (not authorized); subscribers get nothing."""
    b = start_broker("acl = deny publish * secret/#\n")
    sub = paho(b.port)
    sub.connect()
    sub.subscribe("secret/#", 1)
    sub.subscribe("public/#", 1)
    pub = paho(b.port)
    pub.connect()
    assert pub.publish("secret/x", b"classified", 1) == 0x87
    sub.expect_no_message(0.5)
    assert pub.publish("public/x", b"ok", 1) == 0
    assert sub.get().payload == b"ok"
    assert pub.connected


def test_acl_deny_publish_v5_qos2_gets_pubrec_0x87(start_broker, raw):
    b = start_broker("acl = deny publish * secret/#\n")
    c = raw(b.port)
    c.connect("acl-q2")
    c.publish("secret/x", b"x", qos=2, pid=3)
    rec = c.read_type(r.PUBREC)
    assert rec.pid == 3 and rec.reason == 0x87, rec


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_acl_deny_publish_v311_not_delivered(start_broker, paho, raw, qos):
    """MQTT-3.3.5-2: a 3.1.1 publisher cannot hear a refusal; the broker must ack it as if
    accepted or close the connection. Parley never acks a refused PUBLISH as a success:
    QoS 0 is dropped (the connection stays), QoS 1/2 closes the connection; either way
    nothing is delivered and the refusal is logged."""
    b = start_broker("acl = deny publish * secret/#\n")
    sub = paho(b.port, version=4)
    sub.connect()
    sub.subscribe("secret/#", 1)
    pub = raw(b.port, version=4)
    pub.connect("pub-" + str(qos), version=4)
    pub.send(r.publish("secret/y", b"classified", qos=qos, pid=1 if qos else None, version=4))
    if qos == 0:
        pub.send(r.pingreq())
        assert pub.read_type(r.PINGRESP).type == r.PINGRESP
    else:
        pub.expect_closed()
    sub.expect_no_message(0.5)
    action = "dropped" if qos == 0 else "closed"
    assert any("event=publish.refused" in l and "topic=secret/y" in l and f"action={action}" in l for l in b.log())


def test_acl_deny_publish_applies_to_will(start_broker, paho):
    b = start_broker("acl = deny publish * secret/#\n")
    sub = paho(b.port)
    sub.connect()
    sub.subscribe("secret/#", 1)
    c = paho(b.port)
    c.will_set("secret/will", b"leak", 1)
    c.connect()
    c.drop()
    sub.expect_no_message(0.8)
