"""Retained messages, v5 subscription options (retain handling, retain as
published, no local)."""

import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions


@pytest.mark.parametrize("version", [4, 5])
def test_retained_message_delivered_on_subscribe_with_retain_flag(broker, paho, topic, version):
    """MQTT-3.3.1-6 / -8 (3.1.1), MQTT-3.3.1-9 (v5): a new subscription gets the retained message,
    with RETAIN set."""
    pub = paho(broker.port, version=version)
    pub.connect()
    pub.publish(topic, b"kept", 1, retain=True)
    sub = paho(broker.port, version=version)
    sub.connect()
    sub.subscribe(topic, 1)
    m = sub.get()
    assert m.payload == b"kept" and m.retain is True and m.qos == 1


@pytest.mark.parametrize("version", [4, 5])
def test_retained_message_to_existing_subscriber_has_retain_flag_clear(broker, paho, topic, version):
    """MQTT-3.3.1-9 (3.1.1) / v5 retain-as-published 0: live delivery has RETAIN 0."""
    sub = paho(broker.port, version=version)
    sub.connect()
    sub.subscribe(topic, 1)
    pub = paho(broker.port, version=version)
    pub.connect()
    pub.publish(topic, b"live", 1, retain=True)
    m = sub.get()
    assert m.payload == b"live" and m.retain is False


@pytest.mark.parametrize("version", [4, 5])
def test_retained_message_replaced_by_newer(broker, paho, topic, version):
    """MQTT-3.3.1-5: a new retained message replaces the old one."""
    pub = paho(broker.port, version=version)
    pub.connect()
    pub.publish(topic, b"old", 1, retain=True)
    pub.publish(topic, b"new", 1, retain=True)
    sub = paho(broker.port, version=version)
    sub.connect()
    sub.subscribe(topic, 1)
    assert sub.get().payload == b"new"
    sub.expect_no_message(0.3)


@pytest.mark.parametrize("version", [4, 5])
def test_retained_message_cleared_by_empty_payload(broker, paho, topic, version):
    """MQTT-3.3.1-10 / -11 (3.1.1), MQTT-3.3.1-6 / -7 (v5): zero-byte retained payload removes it
    and is not itself stored."""
    pub = paho(broker.port, version=version)
    pub.connect()
    pub.publish(topic, b"gone soon", 1, retain=True)
    pub.publish(topic, b"", 1, retain=True)
    sub = paho(broker.port, version=version)
    sub.connect()
    sub.subscribe(topic, 1)
    sub.expect_no_message(0.5)


@pytest.mark.parametrize("version", [4, 5])
def test_non_retained_publish_does_not_replace_retained(broker, paho, topic, version):
    """MQTT-3.3.1-12 (3.1.1): RETAIN 0 -> the retained message is left alone."""
    pub = paho(broker.port, version=version)
    pub.connect()
    pub.publish(topic, b"retained", 1, retain=True)
    pub.publish(topic, b"plain", 1, retain=False)
    sub = paho(broker.port, version=version)
    sub.connect()
    sub.subscribe(topic, 1)
    assert sub.get().payload == b"retained"
    sub.expect_no_message(0.3)


def test_retained_messages_matched_by_wildcard_subscription(broker, paho, topic):
    pub = paho(broker.port)
    pub.connect()
    for t in ("a", "b/c", "d/e/f"):
        pub.publish(f"{topic}/{t}", t.encode(), 1, retain=True)
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(f"{topic}/#", 1)
    got = {m.topic: m.payload for m in sub.collect(3)}
    assert got == {f"{topic}/a": b"a", f"{topic}/b/c": b"b/c", f"{topic}/d/e/f": b"d/e/f"}
    assert all(m for m in got)


def test_retained_delivered_at_min_qos(broker, paho, topic):
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"q2", 2, retain=True)
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(topic, 1)
    m = sub.get()
    assert m.qos == 1 and m.retain


# --- v5 subscription options ------------------------------------------------------

def test_v5_retain_handling_0_sends_retained_on_every_subscribe(broker, paho, topic):
    """MQTT-3.3.1-9: retain handling 0 -> retained messages at every SUBSCRIBE, even a repeated one."""
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"r", 1, retain=True)
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=0))
    assert sub.get().payload == b"r"
    sub.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=0))
    assert sub.get().payload == b"r"


def test_v5_retain_handling_1_sends_retained_only_for_new_subscription(broker, paho, topic):
    """MQTT-3.3.1-10: retain handling 1 -> only if the subscription did not exist."""
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"r", 1, retain=True)
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=1))
    assert sub.get().payload == b"r"
    sub.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=1))
    sub.expect_no_message(0.5)


def test_v5_retain_handling_2_never_sends_retained(broker, paho, topic):
    """MQTT-3.3.1-11: retain handling 2 -> no retained messages at subscribe."""
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"r", 1, retain=True)
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=2))
    sub.expect_no_message(0.5)
    pub.publish(topic, b"live", 1)
    assert sub.get().payload == b"live"


def test_v5_retain_as_published_keeps_retain_flag_on_live_delivery(broker, paho, topic):
    """MQTT-3.3.1-12 / -13: RAP 1 -> RETAIN as published; RAP 0 -> RETAIN 0."""
    rap = paho(broker.port)
    rap.connect()
    rap.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=True))
    norap = paho(broker.port)
    norap.connect()
    norap.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=False))
    pub = paho(broker.port)
    pub.connect()
    pub.publish(topic, b"r1", 1, retain=True)
    pub.publish(topic, b"r0", 1, retain=False)
    a = rap.collect(2)
    assert [(m.payload, m.retain) for m in a] == [(b"r1", True), (b"r0", False)]
    b = norap.collect(2)
    assert [(m.payload, m.retain) for m in b] == [(b"r1", False), (b"r0", False)]
    pub.publish(topic, b"", 1, retain=True)  # clean up


def test_v5_no_local_does_not_echo_own_messages(broker, paho, topic):
    """MQTT-3.8.3-3: No Local 1 -> the server does not forward a client's messages to itself."""
    c = paho(broker.port)
    c.connect()
    c.subscribe(topic, options=SubscribeOptions(qos=1, noLocal=True))
    c.publish(topic, b"mine", 1)
    c.expect_no_message(0.5)
    other = paho(broker.port)
    other.connect()
    other.publish(topic, b"theirs", 1)
    assert c.get().payload == b"theirs"


def test_v5_without_no_local_own_messages_are_echoed(broker, paho, topic):
    c = paho(broker.port)
    c.connect()
    c.subscribe(topic, options=SubscribeOptions(qos=1, noLocal=False))
    c.publish(topic, b"mine", 1)
    assert c.get().payload == b"mine"


@pytest.mark.parametrize("version", [4, 5])
def test_retained_flag_with_mosquitto_sub_reports_retained(broker, paho, topic, version):
    """mosquitto_sub prints %r (retain flag) 1 for the stored message it gets on subscribe."""
    import subprocess
    pub = paho(broker.port, version=version)
    pub.connect()
    pub.publish(topic, b"stored", 1, retain=True)
    out = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port),
                          "-V", "mqttv5" if version == 5 else "mqttv311", "-t", topic, "-q", "1",
                          "-C", "1", "-W", "4", "-F", "%r %q %p"],
                         capture_output=True, timeout=8)
    assert out.stdout.decode().strip() == "1 1 stored", out
