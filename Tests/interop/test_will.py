"""Will messages: network loss, clean DISCONNECT, v5 DISCONNECT 0x04, v5 will delay."""

import pytest

import raw as r
from conftest import closed_line
from pahoclient import connect_props, will_props, prop


def _watcher(paho, port, topic, version=5):
    w = paho(port, version=version)
    w.connect()
    w.subscribe(topic, 1)
    return w


@pytest.mark.parametrize("version", [4, 5])
def test_will_published_on_network_loss(broker, paho, topic, version):
    """MQTT-3.1.2-8: the will is published when the network connection closes without DISCONNECT."""
    w = _watcher(paho, broker.port, topic, version)
    c = paho(broker.port, version=version)
    c.will_set(topic, b"gone", 1)
    c.connect()
    c.drop()
    m = w.get()
    assert m.payload == b"gone" and m.qos == 1


@pytest.mark.parametrize("version", [4, 5])
def test_will_not_published_on_clean_disconnect(broker, paho, topic, version):
    """MQTT-3.1.2-10 (3.1.1) / MQTT-3.1.2-8 (v5 reason 0x00): a normal DISCONNECT deletes the will."""
    w = _watcher(paho, broker.port, topic, version)
    c = paho(broker.port, version=version)
    c.will_set(topic, b"should not appear", 1)
    c.connect()
    c.disconnect()
    w.expect_no_message(0.8)


def test_v5_disconnect_with_will_message_0x04_publishes_will(broker, paho, topic):
    """v5 3.14.2.1: DISCONNECT reason 0x04 'Disconnect with Will Message' -> will is published."""
    w = _watcher(paho, broker.port, topic)
    c = paho(broker.port)
    c.will_set(topic, b"asked for", 1)
    c.connect()
    c.disconnect(reason=0x04)
    assert w.get().payload == b"asked for"


@pytest.mark.parametrize("version", [4, 5])
def test_will_retain_flag_makes_will_retained(broker, paho, topic, version):
    """MQTT-3.1.2-17: Will Retain 1 -> the will is published as a retained message."""
    w = _watcher(paho, broker.port, topic, version)
    c = paho(broker.port, version=version)
    c.will_set(topic, b"retained will", 1, retain=True)
    c.connect()
    c.drop()
    assert w.get().payload == b"retained will"  # the will is out (and so retained)
    late = paho(broker.port, version=version)
    late.connect()
    late.subscribe(topic, 1)
    m = late.get()
    assert m.payload == b"retained will" and m.retain


def test_v5_will_properties_passed_through(broker, paho, topic):
    """Will properties (content type, user properties, response topic, correlation data) arrive unchanged."""
    w = _watcher(paho, broker.port, topic)
    c = paho(broker.port)
    c.will_set(topic, b"{}", 1, properties=will_props(ContentType="application/json",
                                                      UserProperty=[("k", "v")],
                                                      ResponseTopic=topic + "/resp",
                                                      CorrelationData=b"\x01\x02"))
    c.connect()
    c.drop()
    m = w.get()
    assert prop(m.properties, "ContentType") == "application/json"
    assert prop(m.properties, "UserProperty") == [("k", "v")]
    assert prop(m.properties, "ResponseTopic") == topic + "/resp"
    assert prop(m.properties, "CorrelationData") == b"\x01\x02"


def test_v5_will_delay_interval_delays_will(broker, paho, topic):
    """MQTT-3.1.3-9: the will is published after the Will Delay Interval (2 s), not at once:
    nothing for most of the delay, then the will."""
    w = _watcher(paho, broker.port, topic)
    c = paho(broker.port)
    c.will_set(topic, b"delayed", 1, properties=will_props(WillDelayInterval=2))
    c.connect(properties=connect_props(SessionExpiryInterval=30))
    c.drop()
    w.expect_no_message(1.6)
    assert w.get(timeout=5.0).payload == b"delayed"


def test_v5_will_delay_not_sent_if_client_reconnects_in_time(debug_broker, paho, cid, topic):
    """MQTT-3.1.3-9 / 3.1.2.5: reconnecting (same client id) before the delay ends cancels the will."""
    broker = debug_broker
    client_id = cid()
    w = _watcher(paho, broker.port, topic)
    c = paho(broker.port, client_id)
    c.will_set(topic, b"must not appear", 1, properties=will_props(WillDelayInterval=2))
    c.connect(properties=connect_props(SessionExpiryInterval=30))
    c.drop()
    broker.wait_log(closed_line(client_id))  # the broker saw the drop: the delay runs
    back = paho(broker.port, client_id)
    ca = back.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=30))
    assert ca.session_present
    w.expect_no_message(2.5)


def test_v5_will_sent_when_session_expires_before_will_delay(broker, paho, topic):
    """3.1.3.2.2: the will is sent when the session ends if that comes first (expiry 1 s < delay 10 s)."""
    w = _watcher(paho, broker.port, topic)
    c = paho(broker.port)
    c.will_set(topic, b"session ended", 1, properties=will_props(WillDelayInterval=10))
    c.connect(properties=connect_props(SessionExpiryInterval=1))
    c.drop()
    m = w.get(timeout=3.5)
    assert m.payload == b"session ended"


def test_will_published_when_keep_alive_expires(broker, paho, raw, topic):
    """MQTT-3.1.2-8: a keep-alive timeout is a network failure: the will is published."""
    w = _watcher(paho, broker.port, topic, version=4)
    c = raw(broker.port, version=4)
    c.connect("ka-will", version=4, keepalive=1, will=dict(topic=topic, payload=b"timed out", qos=1))
    m = w.get(timeout=4)
    assert m.payload == b"timed out"


def test_will_published_on_protocol_violation(broker, paho, raw, topic):
    """MQTT-3.1.2-8 (3.1.1: 'closes the Network Connection because of a protocol error')."""
    w = _watcher(paho, broker.port, topic, version=4)
    c = raw(broker.port, version=4)
    c.connect("pv-will", version=4, will=dict(topic=topic, payload=b"violated", qos=1))
    c.send(r.connect("again", version=4))  # a second CONNECT
    c.expect_closed()
    assert w.get().payload == b"violated"
