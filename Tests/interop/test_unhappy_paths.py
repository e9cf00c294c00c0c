"""Misbehaving clients on a raw socket: the broker closes the connection (v5:
DISCONNECT with the right reason code first), and keeps serving others."""

import time

import pytest

import raw as r


@pytest.fixture
def others_unaffected(broker, paho, topic):
    """A bystander subscribed before the bad client; after the test it must still get messages."""
    by = paho(broker.port)
    by.connect()
    by.subscribe(topic + "/bystander", 1)
    yield
    assert broker.alive, "broker died"
    p = paho(broker.port)
    p.connect()
    p.publish(topic + "/bystander", b"still here", 1)
    assert by.get().payload == b"still here"


def _v5_disconnect(got, reason):
    assert got, "connection closed without a DISCONNECT"
    last = got[-1]
    assert last.type == r.DISCONNECT, got
    assert last.reason == reason, f"DISCONNECT reason 0x{last.reason:02X}, expected 0x{reason:02X}"


def _closed_for(got, version, reason):
    """The one right end of a violation after CONNACK: v5 exactly one packet, DISCONNECT
    `reason`, then the close; 3.x (no server DISCONNECT) the close with nothing sent."""
    if version == 5:
        _v5_disconnect(got, reason)
        assert len(got) == 1, got
    else:
        assert got == [], got


# --- before / at CONNECT --------------------------------------------------------------

def test_garbage_bytes_instead_of_connect_close_connection(broker, raw, others_unaffected):
    """MQTT-3.1.0-1 / 4.8: not an MQTT CONNECT -> closed, nothing sent."""
    c = raw(broker.port)
    # 'G' = 0x47 reads as a PUBACK header with a remaining length of 'E' = 69: send enough
    # bytes to complete that frame so the broker must decide.
    c.send(b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUser-Agent: interop\r\n"
           b"Accept: */*\r\nConnection: keep-alive\r\n\r\n" + b"x" * 64)
    assert c.expect_closed() == []


def test_random_garbage_after_connect_closes_connection(broker, raw, others_unaffected):
    c = raw(broker.port, version=4)
    c.connect("garbage", version=4)
    c.send(bytes([0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]) + b"\xde\xad\xbe\xef" * 8)
    assert c.expect_closed() == []


def test_first_packet_not_connect_closes_connection(broker, raw, others_unaffected):
    """MQTT-3.1.0-1: the first packet must be CONNECT."""
    c = raw(broker.port, version=4)
    c.send(r.subscribe(1, [("a", 0)], version=4))
    assert c.expect_closed() == []


@pytest.mark.parametrize("version", [4, 5])
def test_second_connect_is_protocol_violation_and_closes(broker, raw, version, others_unaffected):
    """MQTT-3.1.0-2: a second CONNECT is a protocol violation (v5: DISCONNECT 0x82)."""
    c = raw(broker.port, version=version)
    c.connect("twice", version=version)
    c.send(r.connect("twice", version=version))
    got = c.expect_closed()
    if version == 5:
        _v5_disconnect(got, 0x82)
    else:
        assert got == []


def test_connect_reserved_flag_set_closes(broker, raw, others_unaffected):
    """MQTT-3.1.2-3: CONNECT reserved flag must be 0."""
    c = raw(broker.port, version=4)
    c.send(r.connect("rsv", version=4, reserved=True))
    assert c.expect_closed() == []  # 3.1.1: disconnect, no CONNACK


def test_v5_connect_malformed_gets_connack_error_and_close(broker, raw, others_unaffected):
    """v5 3.1.2.3 / 4.13.1: the reserved flag set makes the CONNECT malformed: CONNACK 0x81
    (Malformed Packet), then the close."""
    c = raw(broker.port)
    c.send(r.connect("rsv5", reserved=True))
    got = c.expect_closed()
    assert len(got) == 1 and got[0].type == r.CONNACK and got[0].reason == 0x81, got


# --- PUBLISH rules ------------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("bad", ["a/+/b", "a/#", "#", "+"])
def test_publish_with_wildcard_topic_closes_connection(broker, raw, version, bad, others_unaffected):
    """MQTT-3.3.2-2 / MQTT-4.7.1-1 (3.1.1), MQTT-3.3.2-2 (v5: DISCONNECT 0x90 Topic Name invalid)."""
    c = raw(broker.port, version=version)
    c.connect("wild", version=version)
    c.send(r.publish(bad, b"x", qos=1, pid=1, version=version))
    _closed_for(c.expect_closed(), version, 0x90)


@pytest.mark.parametrize("version", [4, 5])
def test_publish_with_invalid_utf8_topic_closes_connection(broker, raw, version, others_unaffected):
    """MQTT-1.5.3-1 (3.1.1) / MQTT-1.5.4-1 (v5: malformed, DISCONNECT 0x81)."""
    c = raw(broker.port, version=version)
    c.connect("utf8", version=version)
    c.send(r.publish(b"bad/\xff\xfe/topic", b"x", qos=1, pid=1, version=version))
    _closed_for(c.expect_closed(), version, 0x81)


@pytest.mark.parametrize("version", [4, 5])
def test_publish_with_utf16_surrogate_in_topic_closes_connection(broker, raw, version, others_unaffected):
    """MQTT-1.5.3-1 / MQTT-1.5.4-1: encoded surrogates (ED A0 80) are ill-formed (v5: 0x81)."""
    c = raw(broker.port, version=version)
    c.connect("surrogate", version=version)
    c.send(r.publish(b"bad/\xed\xa0\x80", b"x", qos=1, pid=1, version=version))
    _closed_for(c.expect_closed(), version, 0x81)


@pytest.mark.parametrize("version", [4, 5])
def test_publish_with_null_character_in_topic_closes_connection(broker, raw, version, others_unaffected):
    """MQTT-1.5.3-2 / MQTT-4.7.3-2: U+0000 is not allowed in a topic (v5 1.5.4: malformed, 0x81)."""
    c = raw(broker.port, version=version)
    c.connect("nul", version=version)
    c.send(r.publish(b"bad/\x00/t", b"x", qos=1, pid=1, version=version))
    _closed_for(c.expect_closed(), version, 0x81)


@pytest.mark.parametrize("version", [4, 5])
def test_publish_qos3_closes_connection(broker, raw, version, others_unaffected):
    """MQTT-3.3.1-4: both QoS bits set is malformed."""
    c = raw(broker.port, version=version)
    c.connect("qos3", version=version)
    c.send(r.publish("t", b"x", qos=3, pid=1, version=version))
    _closed_for(c.expect_closed(), version, 0x81)


@pytest.mark.parametrize("version", [4, 5])
def test_publish_qos1_packet_id_zero_closes_connection(broker, raw, version, others_unaffected):
    """MQTT-2.3.1-1: QoS > 0 needs a non-zero packet identifier (v5: DISCONNECT 0x81)."""
    c = raw(broker.port, version=version)
    c.connect("pid0", version=version)
    c.send(r.publish("t", b"x", qos=1, pid=0, version=version))
    _closed_for(c.expect_closed(), version, 0x81)


@pytest.mark.parametrize("version", [4, 5])
def test_publish_empty_topic_without_alias_closes_connection(broker, raw, version, others_unaffected):
    """MQTT-4.7.3-1 (3.1.1) / MQTT-3.3.2-1 + 3.3.2.3.4 (v5: 0x82 without an alias)."""
    c = raw(broker.port, version=version)
    c.connect("empty-topic", version=version)
    c.send(r.publish("", b"x", qos=1, pid=1, version=version))
    _closed_for(c.expect_closed(), version, 0x82)


# --- oversized packets ------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5])
def test_oversized_packet_closes_connection(start_broker, raw, version):
    """SPEC 1 limits / v5 4.13: a packet over max_packet_size -> closed (v5: DISCONNECT 0x95 first)."""
    b = start_broker("max_packet_size = 1024\n")
    c = raw(b.port, version=version)
    c.connect("big", version=version)
    c.send(r.publish("t", b"A" * 3000, qos=0, version=version))
    got = c.expect_closed()
    if version == 5:
        _v5_disconnect(got, 0x95)


def test_v5_oversized_packet_refused_from_length_header_alone(start_broker, raw):
    """The declared remaining length alone (no body sent) is enough to refuse the packet."""
    b = start_broker("max_packet_size = 1024\n")
    c = raw(b.port)
    c.connect("big-header")
    c.send(bytes([0x30]) + r.vbi(100_000))
    got = c.expect_closed()
    _v5_disconnect(got, 0x95)


def test_oversized_connect_closes_connection(start_broker, raw):
    b = start_broker("max_packet_size = 1024\n")
    c = raw(b.port)
    c.send(r.connect("x" * 2000))
    # Refused from its declared length: closed without a CONNACK (4.13.1 allows the
    # server to close a connection with a bad CONNECT without sending anything).
    assert c.expect_closed() == []


# --- SUBSCRIBE / other packets -------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5])
def test_subscribe_with_wrong_fixed_header_flags_closes(broker, raw, version, others_unaffected):
    """MQTT-3.8.1-1: SUBSCRIBE flags must be 0010 (v5 2.1.3: malformed, DISCONNECT 0x81)."""
    c = raw(broker.port, version=version)
    c.connect("subflags", version=version)
    c.send(r.subscribe(1, [("a", 0)], version=version, flags=0x00))
    _closed_for(c.expect_closed(), version, 0x81)


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("bad", ["a/#/b", "a+"])
def test_subscribe_with_malformed_filter_closes(broker, raw, version, bad, others_unaffected):
    """MQTT-4.7.1-1 / -2: '#' not alone as the last level, '+' not a whole level: the filter is
    malformed, so the SUBSCRIBE is a malformed packet (v5 4.13: DISCONNECT 0x81, then the
    close; 3.1.1 4.8: the connection is closed). No SUBACK either way (SUBACK 0x8F is for
    well-formed filters the server will not accept)."""
    c = raw(broker.port, version=version)
    c.connect("badfilter", version=version)
    c.send(r.subscribe(1, [("ok/filter", 0), (bad, 0)], version=version))
    got = c.expect_closed()
    if version == 5:
        _v5_disconnect(got, 0x81)
        assert len(got) == 1, got
    else:
        assert got == [], got


def test_subscribe_without_topic_filters_closes(broker, raw, others_unaffected):
    """MQTT-3.8.3-3: a SUBSCRIBE with no payload is a protocol violation."""
    c = raw(broker.port, version=4)
    c.connect("subempty", version=4)
    c.send(r.subscribe(1, [], version=4))
    assert c.expect_closed() == []


def test_pubrel_with_wrong_flags_closes(broker, raw, others_unaffected):
    """MQTT-3.6.1-1: PUBREL flags must be 0010."""
    c = raw(broker.port, version=4)
    c.connect("pubrelflags", version=4)
    c.send(r.packet(r.PUBREL, 0, b"\x00\x01"))
    assert c.expect_closed() == []


def test_disconnect_with_reserved_bits_closes(broker, raw, others_unaffected):
    """MQTT-3.14.1-1 (3.1.1)."""
    c = raw(broker.port, version=4)
    c.connect("discflags", version=4)
    c.send(r.packet(r.DISCONNECT, 1, b""))
    assert c.expect_closed() == []


def test_v5_unknown_inbound_topic_alias_sends_disconnect(broker, raw, others_unaffected):
    """3.3.2.3.4: empty topic + alias never set -> DISCONNECT 0x82."""
    c = raw(broker.port)
    c.connect("unknown-alias-2")
    c.send(r.publish("", b"x", qos=1, pid=1, properties=r.props(TopicAlias=1)))
    got = c.expect_closed()
    _v5_disconnect(got, 0x82)


def test_v5_invalid_property_in_publish_is_disconnect(broker, raw, others_unaffected):
    """2.2.2.2: a property not allowed in PUBLISH (Session Expiry) makes it a Malformed Packet
    (DISCONNECT 0x81)."""
    c = raw(broker.port)
    c.connect("badprop")
    c.send(r.publish("t", b"x", properties=r.props(SessionExpiryInterval=5)))
    _closed_for(c.expect_closed(), 5, 0x81)


def test_v5_payload_format_utf8_with_invalid_payload_is_disconnect_0x99(broker, paho, raw, topic, others_unaffected):
    """MQTT-3.3.2-4 lets the server check a payload marked UTF-8 (Payload Format Indicator 1);
    Parley does (README: codec, 0x99 payload format invalid): DISCONNECT 0x99 and the close,
    no PUBACK, and the message reaches no subscriber."""
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(topic, 1)
    c = raw(broker.port)
    c.connect("pfi")
    c.publish(topic, b"\xff\xfe", qos=1, pid=2, properties=r.props(PayloadFormatIndicator=1))
    got = c.expect_closed()
    _v5_disconnect(got, 0x99)
    assert len(got) == 1, got
    sub.expect_no_message(0.3)


def _stays_open(c, seconds):
    """Nothing arrives and the connection stays open for `seconds` (a window in which
    something must NOT happen)."""
    try:
        c.expect_nothing(seconds)
    except r.Closed:
        raise AssertionError(f"connection closed within {seconds}s")


def test_connect_timeout_closes_silent_connection(start_broker, raw):
    """conf connect_timeout = 1: a connection that never sends CONNECT is left alone for
    less than that, then closed without a byte sent (no CONNACK before a CONNECT)."""
    b = start_broker("connect_timeout = 1\n")
    c = raw(b.port)
    _stays_open(c, 0.6)
    assert c.expect_closed(timeout=5) == []
    b.wait_log(r"event=client\.connect_timeout")


# --- keep alive -------------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5])
def test_keep_alive_silent_client_disconnected_after_one_and_a_half_times(broker, raw, version):
    """MQTT-3.1.2-24 (3.1.1) / MQTT-3.1.2-22 (v5): keep alive 1 s and silence -> not closed
    before 1.5 x the keep alive, then closed (v5: DISCONNECT 0x8D first; 3.1.1: just closed)."""
    c = raw(broker.port, version=version)
    c.connect("ka", version=version, keepalive=1)
    _stays_open(c, 1.2)  # not before 1.5 x keep alive
    got = c.expect_closed(timeout=5)
    if version == 5:
        _v5_disconnect(got, 0x8D)  # Keep Alive timeout
        assert len(got) == 1, got
    else:
        assert got == [], got
    broker.wait_log(r"event=client\.keepalive_timeout client=ka\b")


def test_keep_alive_pingreq_keeps_connection_open(broker, raw):
    """MQTT-3.12.4-1: PINGREQ -> PINGRESP; regular pings keep a keep-alive-1 client connected."""
    c = raw(broker.port, version=4)
    c.connect("pinger", version=4, keepalive=1)
    for _ in range(6):
        time.sleep(0.5)
        c.send(r.pingreq())
        p = c.read(2)
        assert p.type == r.PINGRESP, p
