"""Regression tests for reported deviations from the MQTT 3.1.1 / 5.0 specs.

Each test is named after the OASIS rule it checks (where there is one) and asserts
the one right outcome. Items:

1. queued QoS 1/2 messages delivered when a v5 session is resumed with Session
   Expiry 0 (MQTT-3.1.2-4/-5), and that session ends with the connection
   (MQTT-3.1.2-23), also across a restart;
2. a clean session is not carried into a later persistent one (MQTT-3.1.2-6,
   MQTT-3.2.2-3, v5 Clean Start);
3. the client's Maximum Packet Size holds for every packet (MQTT-3.1.2-24/-25,
   MQTT-3.2.2-19, MQTT-3.4.2-2);
4. order on a topic is kept when some messages wait for a commit (MQTT-4.6.0-6);
5. v5 PUBACK / PUBREC 0x10 "No matching subscribers";
6. the publisher's PUBACK / PUBREC goes out before its own copy of the message;
7. an ack that does not fit the packet identifier's state is a protocol error
   (MQTT-4.8.0-1 / 4.13); unknown identifiers keep their answers;
8. malformed topic filters in SUBSCRIBE / UNSUBSCRIBE are malformed packets
   (MQTT-4.7.1-1/-2, MQTT-3.8.3-2, MQTT-3.10.3-2);
9. the default `max_topic_levels` is 200.
"""

import time

import pytest

import raw as r
from pahoclient import connect_props

LOOPS = 2  # conftest starts every broker with --loops 2
NAMES = {r.PUBLISH: "PUBLISH", r.PUBACK: "PUBACK", r.PUBREC: "PUBREC", r.PUBREL: "PUBREL",
         r.PUBCOMP: "PUBCOMP", r.SUBACK: "SUBACK", r.UNSUBACK: "UNSUBACK", r.DISCONNECT: "DISCONNECT"}


# --- helpers ---------------------------------------------------------------------------

def home_loop(client_id, loops=LOOPS):
    """The loop a client id's session lives on: FNV-1a 64 of the UTF-8 id, modulo the loops
    (Broker.homeLoop in Sources/Broker/Broker.swift)."""
    h = 0xCBF29CE484222325
    for b in client_id.encode():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h % loops


def id_on_loop(base, loop):
    """A client id starting with `base` whose session lives on `loop`."""
    for i in range(1000):
        c = f"{base}-{i}"
        if home_loop(c) == loop:
            return c
    raise AssertionError(f"no client id {base}-N on loop {loop}")


def restart_on_same_data(b):
    """SIGTERM (flushes and exits 0), then a new `parley serve` on the same data directory
    and config (a new port), the way test_storage.py restarts a broker."""
    rc = b.terminate()
    assert rc == 0, f"parley exited with {rc} on SIGTERM"
    if b.proc is not None and b.proc.stderr:
        b._reader.join(timeout=1)
        b.proc.stderr.close()
    b.port = None
    b.start()
    return b


def read_sized(c, timeout=3.0):
    """The next packet from a RawClient and its size on the wire (fixed header included).
    Raises r.Closed on EOF, TimeoutError when nothing complete arrives in time."""
    deadline = time.monotonic() + timeout
    while True:
        if len(c.buf) >= 2:
            try:
                length, i = r.read_vbi(c.buf, 1)
            except IndexError:
                length, i = None, None
            if length is not None and len(c.buf) >= i + length:
                size = i + length
                first = c.buf[0]
                body = bytes(c.buf[i:size])
                del c.buf[:size]
                return r.Packet(first >> 4, first & 0x0F, body, c.version), size
        if c.eof or not c._fill(deadline):
            raise r.Closed(f"connection closed by broker ({len(c.buf)} bytes of an incomplete packet left)")


def read_until_closed(c, timeout=3.0):
    """(bytes the broker sent, whether it closed the connection within `timeout`)."""
    deadline = time.monotonic() + timeout
    while not c.eof:
        try:
            c._fill(deadline)
        except TimeoutError:
            return bytes(c.buf), False
    return bytes(c.buf), True


def frames_of(data):
    """Split raw bytes into (type, size) frames; a trailing incomplete frame is reported with
    its declared size (or None when even its length is incomplete)."""
    out, i = [], 0
    while i < len(data):
        try:
            length, j = r.read_vbi(data, i + 1)
        except IndexError:
            out.append((data[i] >> 4, None))
            break
        out.append((data[i] >> 4, j - i + length))
        i = j + length
    return out


def ping_ok(c):
    c.send(r.pingreq())
    p = c.read_type(r.PINGRESP)
    assert p.type == r.PINGRESP


# --- 1. resume with Session Expiry 0 keeps the queue ------------------------------------

RESUME_CASES = [
    pytest.param(d, v, rs, id=f"{d}-{'v5' if v == 5 else 'v311'}{'-restart' if rs else ''}")
    for d in ("full", "batch", "none") for v in (4, 5) for rs in (False, True)
    if not (rs and d == "none")  # durability = none keeps nothing across a restart by design
]


@pytest.mark.parametrize("durability,version,restart", RESUME_CASES)
def test_mqtt_3_1_2_4_resume_with_expiry_0_keeps_queue(start_broker, paho, cid, topic,
                                                       durability, version, restart):
    """MQTT-3.1.2-4 / -5: Clean Start 0 resumes the existing session, with the QoS 1 and QoS 2
    messages queued for it (QoS 0 is not queued by default). v5: the first connection has
    Session Expiry 99999, the resuming one has no Session Expiry property (0 from now on);
    3.1.1: clean session 0 both times."""
    b = start_broker(f"durability = {durability}\n")
    client_id = cid("offq")
    prefix = f"{topic}/offq"
    kw = dict(version=4, clean_session=False) if version == 4 else {}
    sub = paho(b.port, client_id, **kw)
    ca = sub.connect(clean_start=True,
                     properties=connect_props(SessionExpiryInterval=99999) if version == 5 else None)
    assert ca.session_present is False
    assert sub.subscribe(f"{prefix}/#", 2) == [2]
    sub.disconnect()
    pub = paho(b.port, version=5)
    pub.connect()
    pub.publish(f"{prefix}/0", b"m0", 0)
    assert pub.publish(f"{prefix}/1", b"m1", 1) == 0
    assert pub.publish(f"{prefix}/2", b"m2", 2) == 0
    pub.disconnect()
    if restart:
        restart_on_same_data(b)
    again = paho(b.port, client_id, **kw)
    ca = again.connect(clean_start=False, properties=None)
    assert ca.session_present is True
    got = again.collect(2, timeout=5)
    assert [(m.topic, m.payload, m.qos) for m in got] == [(f"{prefix}/1", b"m1", 1), (f"{prefix}/2", b"m2", 2)]
    again.expect_no_message(0.5)


ENDS_CASES = [pytest.param(d, False, id=d) for d in ("full", "batch", "none")] + \
             [pytest.param("full", True, id="full-restart")]


@pytest.mark.parametrize("durability,restart", ENDS_CASES)
def test_mqtt_3_1_2_23_resumed_session_with_expiry_0_ends_with_the_connection(start_broker, paho, cid, topic,
                                                                              durability, restart):
    """A v5 session stored with Session Expiry 99999 and resumed by a CONNECT without Session
    Expiry (0) ends when that connection closes (3.1.2.11.2, MQTT-3.1.2-23 only keeps sessions
    with an expiry > 0): a later Clean Start 0 CONNECT gets Session Present 0 (also after a
    restart: the session is gone from the store too) and nothing was queued for it."""
    b = start_broker(f"durability = {durability}\n")
    client_id = cid("ends")
    sub = paho(b.port, client_id)
    sub.connect(clean_start=True, properties=connect_props(SessionExpiryInterval=99999))
    sub.subscribe(f"{topic}/#", 1)
    sub.disconnect()
    resumed = paho(b.port, client_id)
    assert resumed.connect(clean_start=False, properties=None).session_present is True
    resumed.disconnect()
    pub = paho(b.port, version=5)
    pub.connect()
    pub.publish(f"{topic}/x", b"after", 1)
    pub.disconnect()
    if restart:
        restart_on_same_data(b)
    later = paho(b.port, client_id)
    ca = later.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=99999))
    assert ca.session_present is False
    later.expect_no_message(0.5)


# --- 2. a clean session is not carried into a later persistent one -----------------------

def test_mqtt_3_1_2_6_v311_clean_session_taken_over_by_persistent_one_is_discarded(broker, paho, cid, topic):
    """MQTT-3.1.2-6 / MQTT-3.2.2-3: the session of a clean session 1 connection lasts only as long
    as that connection; a clean session 0 take-over with the same id starts a new session:
    CONNACK Session Present 0, and the old subscription does not deliver."""
    client_id = cid("x")
    first = paho(broker.port, client_id, version=4, clean_session=True)
    assert first.connect().session_present is False
    assert first.subscribe(f"{topic}/#", 1) == [1]
    second = paho(broker.port, client_id, version=4, clean_session=False)
    ca = second.connect()
    assert ca.session_present is False
    first.wait_disconnect()
    pub = paho(broker.port, version=4)
    pub.connect()
    pub.publish(f"{topic}/a", b"old-subscription", 1)
    second.expect_no_message(0.7)


def test_mqtt_3_1_2_4_v5_clean_start_session_with_expiry_0_taken_over_is_discarded(broker, paho, cid, topic):
    """v5: a Clean Start 1 session without Session Expiry ends with its connection
    (3.1.2.11.2); a Clean Start 0, Session Expiry 100 take-over finds no session
    (MQTT-3.1.2-4 / MQTT-3.2.2-3: Session Present 0) and the old subscription does not deliver."""
    client_id = cid("x")
    first = paho(broker.port, client_id)
    assert first.connect(clean_start=True).session_present is False
    assert first.subscribe(f"{topic}/#", 1) == [1]
    second = paho(broker.port, client_id)
    ca = second.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=100))
    assert ca.session_present is False
    rc, _ = first.wait_disconnect()
    assert rc == 0x8E
    pub = paho(broker.port)
    pub.connect()
    pub.publish(f"{topic}/a", b"old-subscription", 1)
    second.expect_no_message(0.7)


# --- 3. Maximum Packet Size for every packet ---------------------------------------------

@pytest.mark.parametrize("maximum", [2, 3, 5])
def test_mqtt_3_1_2_24_connack_larger_than_client_maximum_is_not_sent(broker, raw, cid, maximum):
    """MQTT-3.1.2-24: the server does not send a packet larger than the client's Maximum Packet
    Size. The broker's CONNACK (with the properties it must announce) does not fit in 2, 3 or 5
    bytes, so the broker closes the connection without sending it."""
    big = raw(broker.port)
    full_connack = read_sized_connack(big, cid("measure"))
    assert full_connack > 5, f"CONNACK is only {full_connack} bytes; pick smaller maximums"
    c = raw(broker.port)
    c.send(r.connect(cid("small"), properties=r.props(MaximumPacketSize=maximum)))
    data, closed = read_until_closed(c)
    frames = [(NAMES.get(t, t), n) for t, n in frames_of(data)]
    too_big = [(t, n) for t, n in frames if n is None or n > maximum]
    assert not too_big, f"broker sent packets over the maximum of {maximum} bytes: {too_big} ({data!r})"
    assert closed, f"broker did not close the connection within 3 s (sent {frames})"


def read_sized_connack(c, client_id, **props):
    c.send(r.connect(client_id, properties=r.props(**props)))
    p, size = read_sized(c)
    assert p.type == r.CONNACK and p.reason == 0, p
    return size


@pytest.mark.parametrize("qos,ack_type", [(1, r.PUBACK), (2, r.PUBREC)], ids=["puback", "pubrec"])
def test_mqtt_3_4_2_2_ack_reason_string_dropped_when_over_client_maximum(broker, raw, cid, qos, ack_type):
    """MQTT-3.1.2-24 / MQTT-3.4.2-2 (PUBACK) / MQTT-3.5.2-2 (PUBREC): the server does not add a
    Reason String that would make the packet exceed the client's Maximum Packet Size: it sends
    the ack without it. Sizes are measured first with a large maximum: a PUBLISH to a $-topic
    gets 0x87 with the reason string "clients may not publish to $-topics"."""
    m = raw(broker.port)
    connack_size = read_sized_connack(m, cid("measure"))
    m.publish("$parley-test/x", b"x", qos=qos, pid=7)
    ack, with_reason = read_sized(m)
    assert ack.type == ack_type and ack.reason == 0x87 and "ReasonString" in ack.props, ack
    without_reason = 2 + 2 + 1 + 1  # fixed header, packet id, reason code, property length 0
    maximum = max(connack_size, without_reason)
    assert maximum < with_reason, (f"measured CONNACK {connack_size} B, ack with reason string "
                                   f"{with_reason} B: no maximum separates them")
    c = raw(broker.port)
    assert read_sized_connack(c, cid("small"), MaximumPacketSize=maximum) <= maximum
    c.publish("$parley-test/x", b"x", qos=qos, pid=8)
    try:
        ack, size = read_sized(c)
    except (TimeoutError, r.Closed) as e:
        raise AssertionError(f"no {('PUBACK', 'PUBREC')[qos - 1]} within 3 s with Maximum Packet "
                             f"Size {maximum} (with reason string it is {with_reason} B): {e}")
    assert (ack.type, ack.pid, ack.reason, ack.props) == (ack_type, 8, 0x87, {}), \
        f"{ack}: {size} bytes with Maximum Packet Size {maximum}"
    ping_ok(c)


# --- 4. order on a topic ----------------------------------------------------------------

def _publish_in_windows(pub, packets, window=20):
    """Send (topic, payload, qos, retain) on a raw 3.1.1 client exactly in this order, `window`
    packets per write, waiting for the QoS 1 PUBACKs of each window before the next (in flight
    stays well under max_inflight). The order of the PUBACKs is not what these tests check."""
    pid = 0
    for i in range(0, len(packets), window):
        chunk, want = b"", []
        for t, payload, qos, retain in packets[i:i + window]:
            if qos:
                pid += 1
                want.append(pid)
            chunk += r.publish(t, payload, qos=qos, pid=pid if qos else None, retain=retain, version=4)
        pub.send(chunk)
        got = [pub.read_type(r.PUBACK, timeout=10).pid for _ in want]
        assert sorted(got) == want, f"PUBACKs {got}, expected {want}"


def test_mqtt_4_6_0_6_order_kept_when_retained_messages_wait_for_commit(broker, raw, paho, cid, topic):
    """MQTT-4.6.0-6: messages on one topic from one client reach a subscriber in the order they
    were published, also when some of them (retained, durability = full) are acknowledged
    only after a commit and others (not retained) need none."""
    t = f"{topic}/ord/t"
    sub = paho(broker.port, version=4)
    sub.connect()
    assert sub.subscribe(t, 1) == [1]
    pub = raw(broker.port, version=4)
    pub.connect(cid("pub"), version=4)
    packets = []
    for i in range(100):
        packets.append((t, f"r{i}".encode(), 1, True))
        packets.append((t, f"n{i}".encode(), 1, False))
    _publish_in_windows(pub, packets)
    expected = [p[1].decode() for p in packets]
    got = [m.payload.decode() for m in sub.collect(len(expected), timeout=10)]
    assert got == expected, _first_difference(got, expected)


def test_mqtt_4_6_0_6_order_kept_across_topics_mixing_qos0_and_retained_qos1(broker, raw, paho, cid, topic):
    """4.6: one client publishes QoS 1 retained to <p>/a and QoS 0 to <p>/b alternately; a
    subscriber of <p>/# at QoS 1 gets them in publish order (the retained ones wait for a
    commit, the QoS 0 ones do not)."""
    sub = paho(broker.port, version=4)
    sub.connect()
    assert sub.subscribe(f"{topic}/#", 1) == [1]
    pub = raw(broker.port, version=4)
    pub.connect(cid("pub"), version=4)
    packets = []
    for i in range(100):
        packets.append((f"{topic}/a", f"a{i}".encode(), 1, True))
        packets.append((f"{topic}/b", f"b{i}".encode(), 0, False))
    _publish_in_windows(pub, packets)
    expected = [p[1].decode() for p in packets]
    got = [m.payload.decode() for m in sub.collect(len(expected), timeout=10)]
    assert got == expected, _first_difference(got, expected)


def test_v311_publisher_far_over_the_inflight_limit_is_slowed_not_cut_off(broker, raw, paho, cid, topic):
    """3.1.1 has no Receive Maximum: a client that sends 300 retained QoS 1 PUBLISHes (each
    waits for a commit) in one write, three times max_inflight (100), gets all 300 PUBACKs in
    order and stays connected; the broker reads it no further while they pile up instead of
    disconnecting it. The subscriber gets them in order too."""
    t = f"{topic}/burst"
    sub = paho(broker.port, version=4)
    sub.connect()
    assert sub.subscribe(t, 1) == [1]
    pub = raw(broker.port, version=4)
    pub.connect(cid("pub"), version=4)
    pub.send(b"".join(r.publish(t, f"m{i}".encode(), qos=1, pid=i + 1, retain=True, version=4)
                      for i in range(300)))
    acks = [pub.read_type(r.PUBACK, timeout=10).pid for _ in range(300)]
    assert acks == list(range(1, 301))
    ping_ok(pub)
    got = [m.payload.decode() for m in sub.collect(300, timeout=10)]
    expected = [f"m{i}" for i in range(300)]
    assert got == expected, _first_difference(got, expected)


def _first_difference(got, expected):
    for i, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            return f"first difference at #{i}: got {got[max(0, i - 3):i + 6]}, expected {expected[max(0, i - 3):i + 6]}"
    return f"lengths differ: {len(got)} vs {len(expected)}"


# --- 5. PUBACK / PUBREC 0x10 No matching subscribers --------------------------------------

def _publish_and_ack(c, t, qos, pid):
    """Publish at QoS 1 or 2 on a raw v5 client; the PUBACK / PUBREC (a PUBREC is completed)."""
    c.publish(t, b"x", qos=qos, pid=pid)
    ack = c.read_type(r.PUBACK if qos == 1 else r.PUBREC)
    assert ack.pid == pid, ack
    if qos == 2:
        c.send(r.ack(r.PUBREL, pid))
        comp = c.read_type(r.PUBCOMP)
        assert comp.pid == pid and comp.reason == 0, comp
    return ack


@pytest.mark.parametrize("qos", [1, 2])
def test_v5_ack_no_matching_subscribers_is_0x10(broker, raw, cid, topic, qos):
    """3.4.2.1 / 3.5.2.1: a v5 publisher whose message nobody receives (no subscriber on any loop,
    no stored session, no shared group) gets PUBACK / PUBREC 0x10 No matching subscribers."""
    # Subscriptions elsewhere on both loops that do not match.
    others = []
    for loop in range(LOOPS):
        o = raw(broker.port)
        o.connect(id_on_loop(cid("other"), loop))
        o.subscribe([(f"{topic}/other/#", 1)])
        others.append(o)
    for loop in range(LOOPS):
        p = raw(broker.port)
        p.connect(id_on_loop(cid(f"pub{loop}"), loop))
        ack = _publish_and_ack(p, f"{topic}/nobody", qos, pid=5)
        assert ack.reason == 0x10, f"publisher on loop {loop}: {ack}"


@pytest.mark.parametrize("qos", [1, 2])
@pytest.mark.parametrize("pub_loop,sub_loop", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_v5_ack_is_0x00_with_a_subscriber_on_either_loop(broker, raw, cid, topic, qos, pub_loop, sub_loop):
    """A subscriber on the publisher's loop or on the other one: PUBACK / PUBREC 0x00."""
    s = raw(broker.port)
    s.connect(id_on_loop(cid("sub"), sub_loop))
    s.subscribe([(f"{topic}/#", 1)])
    p = raw(broker.port)
    p.connect(id_on_loop(cid("pub"), pub_loop))
    ack = _publish_and_ack(p, f"{topic}/x", qos, pid=5)
    assert ack.reason == 0x00, ack
    got = s.read_type(r.PUBLISH)
    assert got.payload == b"x"


@pytest.mark.parametrize("qos", [1, 2])
@pytest.mark.parametrize("sub_loop", [0, 1])
def test_v5_ack_is_0x00_when_only_an_offline_stored_session_subscribes(broker, raw, paho, cid, topic, qos, sub_loop):
    """An offline session (Session Expiry > 0) subscribed to the topic receives it later: 0x00."""
    client_id = id_on_loop(cid("off"), sub_loop)
    s = paho(broker.port, client_id)
    s.connect(clean_start=True, properties=connect_props(SessionExpiryInterval=300))
    s.subscribe(f"{topic}/#", 1)
    s.disconnect()
    p = raw(broker.port)
    p.connect(id_on_loop(cid("pub"), 0))
    ack = _publish_and_ack(p, f"{topic}/x", qos, pid=5)
    assert ack.reason == 0x00, ack
    again = paho(broker.port, client_id)
    assert again.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=300)).session_present
    assert again.get(timeout=5).payload == b"x"


@pytest.mark.parametrize("qos", [1, 2])
@pytest.mark.parametrize("sub_loop", [0, 1])
def test_v5_ack_is_0x00_when_only_a_shared_subscription_matches(broker, raw, cid, topic, qos, sub_loop):
    """Only `$share/g/<topic>/#` matches: the group receives it, 0x00."""
    s = raw(broker.port)
    s.connect(id_on_loop(cid("member"), sub_loop))
    sa = s.subscribe([(f"$share/g/{topic}/#", 1)])
    assert sa.reasons == [1], sa
    p = raw(broker.port)
    p.connect(id_on_loop(cid("pub"), 0))
    ack = _publish_and_ack(p, f"{topic}/x", qos, pid=5)
    assert ack.reason == 0x00, ack
    assert s.read_type(r.PUBLISH).payload == b"x"


@pytest.mark.parametrize("qos", [1, 2])
def test_v311_ack_without_subscribers_is_plain(broker, raw, cid, topic, qos):
    """3.1.1 has no reason codes: PUBACK / PUBREC is the packet identifier only."""
    p = raw(broker.port, version=4)
    p.connect(cid("pub"), version=4)
    p.publish(f"{topic}/nobody", b"x", qos=qos, pid=9, version=4)
    ack = p.read_type(r.PUBACK if qos == 1 else r.PUBREC)
    assert (ack.pid, ack.body) == (9, b"\x00\x09"), ack


# --- 6. ack before forward --------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
@pytest.mark.parametrize("qos", [1, 2])
def test_publisher_ack_sent_before_its_own_copy_of_the_message(broker, raw, cid, topic, version, qos):
    """A client subscribed to the topic it publishes to at QoS 1 (2) gets its PUBACK (PUBREC)
    before its own copy of the PUBLISH."""
    c = raw(broker.port, version=version)
    c.connect(cid("self"), version=version)
    sa = c.subscribe([(f"{topic}/#", qos)], version=version)
    assert sa.reasons == [qos], sa
    c.publish(f"{topic}/x", b"mine", qos=qos, pid=3, version=version)
    got = [c.read(), c.read()]
    seen = [(NAMES[p.type], p.pid if p.type != r.PUBLISH else p.payload) for p in got]
    ack = NAMES[r.PUBACK if qos == 1 else r.PUBREC]
    assert seen == [(ack, 3), ("PUBLISH", b"mine")], f"packet order {seen}: {got}"


# --- 7. acks that do not fit the packet identifier's state -----------------------------------

def _delivery(broker, raw, cid, topic, version, qos):
    """A raw client subscribed at `qos` that has just received one delivery: (client, publish)."""
    c = raw(broker.port, version=version)
    c.connect(cid("recv"), version=version)
    c.subscribe([(f"{topic}/#", qos)], version=version)
    p = raw(broker.port, version=5)
    p.connect(cid("pub"))
    p.publish(f"{topic}/x", b"x", qos=qos, pid=1)
    p.read_type(r.PUBACK if qos == 1 else r.PUBREC)
    d = c.read_type(r.PUBLISH)
    assert d.qos == qos, d
    return c, d


WRONG_STATE = [
    pytest.param(1, r.PUBREC, id="qos1-pubrec"),
    pytest.param(1, r.PUBCOMP, id="qos1-pubcomp"),
    pytest.param(2, r.PUBACK, id="qos2-puback"),
    pytest.param(2, r.PUBCOMP, id="qos2-pubcomp-before-pubrec"),
]


@pytest.mark.parametrize("qos,ack_type", WRONG_STATE)
def test_mqtt_4_8_0_1_v5_ack_in_wrong_state_is_disconnect_0x82(broker, raw, cid, topic, qos, ack_type):
    """4.13 / MQTT-4.8.0-1 flow: an ack that does not belong to the state of the outgoing packet
    identifier (PUBREC / PUBCOMP for a QoS 1 delivery, PUBACK for a QoS 2 one, PUBCOMP before
    PUBREC) is a Protocol Error: DISCONNECT 0x82, then close."""
    c, d = _delivery(broker, raw, cid, topic, 5, qos)
    c.send(r.ack(ack_type, d.pid))
    got = c.expect_closed()
    assert [(p.type, p.reason) for p in got] == [(r.DISCONNECT, 0x82)], got


@pytest.mark.parametrize("qos,ack_type", WRONG_STATE)
def test_mqtt_4_8_0_1_v311_ack_in_wrong_state_closes_connection(broker, raw, cid, topic, qos, ack_type):
    """3.1.1 (4.8 / MQTT-4.8.0-1): the same violations close the connection, nothing sent."""
    c, d = _delivery(broker, raw, cid, topic, 4, qos)
    c.send(r.ack(ack_type, d.pid, version=4))
    assert c.expect_closed() == []


def test_v5_pubrel_for_unknown_id_gets_pubcomp_0x92(broker, raw, cid):
    c = raw(broker.port)
    c.connect(cid())
    c.send(r.ack(r.PUBREL, 77))
    p = c.read()
    assert (p.type, p.pid, p.reason) == (r.PUBCOMP, 77, 0x92), p
    ping_ok(c)


def test_v5_pubrec_for_unknown_id_gets_pubrel_0x92(broker, raw, cid):
    c = raw(broker.port)
    c.connect(cid())
    c.send(r.ack(r.PUBREC, 78))
    p = c.read()
    assert (p.type, p.pid, p.reason) == (r.PUBREL, 78, 0x92), p
    ping_ok(c)


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
@pytest.mark.parametrize("ack_type", [r.PUBACK, r.PUBCOMP], ids=["puback", "pubcomp"])
def test_puback_or_pubcomp_for_unknown_id_is_ignored(broker, raw, cid, version, ack_type):
    c = raw(broker.port, version=version)
    c.connect(cid(), version=version)
    c.send(r.ack(ack_type, 79, version=version))
    c.send(r.pingreq())
    p = c.read()
    assert p.type == r.PINGRESP, p


# --- 8. malformed topic filters --------------------------------------------------------

BAD_FILTERS = ["", "#/x", "a/#/b", "a+", "+a"]


def _filter_packet(kind, f, version):
    if kind == "subscribe":
        return r.subscribe(1, [(f, 1)], version=version)
    body = b"\x00\x01" + (r.props() if version == 5 else b"") + r.s(f)
    return r.packet(r.UNSUBSCRIBE, 2, body)


@pytest.mark.parametrize("kind", ["subscribe", "unsubscribe"])
@pytest.mark.parametrize("bad", BAD_FILTERS, ids=["empty", "hash-not-last", "hash-in-middle", "plus-after", "plus-before"])
def test_mqtt_4_7_1_1_v5_malformed_filter_is_disconnect_0x81(broker, raw, cid, topic, kind, bad):
    """MQTT-4.7.1-1 / -2, MQTT-4.7.3-1, MQTT-3.8.3-2 / MQTT-3.10.3-2: an empty filter or a
    misplaced wildcard makes SUBSCRIBE / UNSUBSCRIBE a malformed packet: DISCONNECT 0x81, close."""
    c = raw(broker.port)
    c.connect(cid())
    c.send(_filter_packet(kind, bad, 5))
    got = c.expect_closed()
    assert [(p.type, p.reason) for p in got] == [(r.DISCONNECT, 0x81)], got


@pytest.mark.parametrize("kind", ["subscribe", "unsubscribe"])
@pytest.mark.parametrize("bad", BAD_FILTERS, ids=["empty", "hash-not-last", "hash-in-middle", "plus-after", "plus-before"])
def test_mqtt_4_7_1_1_v311_malformed_filter_closes_connection(broker, raw, cid, topic, kind, bad):
    """3.1.1 (MQTT-4.7.1-1 / -2, MQTT-3.8.3-3, MQTT-3.10.3-2, MQTT-4.8.0-1): the connection is closed."""
    c = raw(broker.port, version=4)
    c.connect(cid(), version=4)
    c.send(_filter_packet(kind, bad, 4))
    assert c.expect_closed() == []


# --- 9. default max_topic_levels = 200 --------------------------------------------------

def _deep(topic, levels):
    parts = topic.split("/")
    return "/".join(parts + [f"l{i}" for i in range(levels - len(parts))])


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_default_max_topic_levels_200_levels_accepted(broker, raw, cid, topic, version):
    """conf/parley.conf: max_topic_levels defaults to 200: a 200-level filter and topic work."""
    t = _deep(topic, 200)
    assert t.count("/") == 199
    s = raw(broker.port, version=version)
    s.connect(cid("sub"), version=version)
    sa = s.subscribe([(t, 1)], version=version)
    assert sa.reasons == [1], f"SUBACK {sa.reasons} for a 200-level filter"
    p = raw(broker.port, version=version)
    p.connect(cid("pub"), version=version)
    p.publish(t, b"deep", qos=1, pid=2, version=version)
    ack = p.read_type(r.PUBACK)
    assert ack.pid == 2 and (ack.body == b"\x00\x02" if version == 4 else ack.reason == 0x00), ack
    d = s.read_type(r.PUBLISH)
    assert (d.topic, d.payload) == (t.encode(), b"deep")


@pytest.mark.parametrize("version,suback_code", [(4, 0x80), (5, 0x8F)], ids=["v311", "v5"])
def test_default_max_topic_levels_201_levels_refused(broker, raw, cid, topic, version, suback_code):
    """conf/parley.conf: deeper than max_topic_levels (default 200): SUBSCRIBE gets SUBACK 0x8F
    (3.1.1: 0x80 Failure), PUBLISH gets DISCONNECT 0x90 and the close (3.1.1: the close)."""
    t = _deep(topic, 201)
    assert t.count("/") == 200
    s = raw(broker.port, version=version)
    s.connect(cid("sub"), version=version)
    sa = s.subscribe([(t, 1)], version=version)
    assert sa.reasons == [suback_code], sa
    p = raw(broker.port, version=version)
    p.connect(cid("pub"), version=version)
    p.publish(t, b"too-deep", qos=1, pid=2, version=version)
    got = p.expect_closed()
    want = [] if version == 4 else [(r.DISCONNECT, 0x90)]
    assert [(x.type, x.reason) for x in got] == want, got
