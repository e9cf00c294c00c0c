"""MQTT over WebSocket on the gateway's `/mqtt` (SPEC 1 and 4, issue 12): the RFC 6455
opening handshake and framing with a raw client (wsraw.py), then real clients: paho-mqtt
(`transport="websockets"`) and MQTT.js (Tests/interop/mqttjs/peer.js on Node.js) against
TCP peers, and WSS (`--https`) with certificates made by test_tls.py's `certs` fixture.

Choices where the RFCs leave room (each asserted below):
- Handshake: a missing or unsupported Sec-WebSocket-Version is 426 with
  `Sec-WebSocket-Version: 13` (RFC 6455 4.2.2 / 4.4; the contract puts a missing one there
  too); a missing key, or one that is not base64 of 16 bytes, is 400. The subprotocol is
  `mqtt` (or `mqttv3.1`), chosen from the client's list; a protocol the client did not offer
  is never echoed. With `ws_origins` set, a browser Origin not in it is 403; a request without
  Origin (not from a browser: paho, MQTT.js on Node) is accepted: the check protects browsers'
  users from other sites, and other clients do not send Origin.
- Frames: an unmasked client frame closes with 1002, a text frame with 1003 (MQTT over
  WebSocket is binary only, MQTT 5.0 6.0), a frame longer than any MQTT packet can be with
  1009, a control frame with more than 125 bytes with 1002; a ping is answered with a pong of
  the same payload, also between the fragments of a message; a client close 1000 is answered
  with close 1000 and the server then closes the TCP connection. MQTT packets may span frames
  and a frame may hold several packets.
- A WebSocket client is an MQTT client like a TCP one: the same login (user + password or
  token; anonymous refused by default), sessions (take-over across transports), queued
  messages, retained messages, wills (a WebSocket close without an MQTT DISCONNECT is a
  network close: the will goes out) and chat stamping.
"""

import base64
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import raw as r
from chat import check_post, chat_templates, id_on_loop, password_of, user_props  # noqa: F401
from conftest import wait_until
from httpraw import Closed, HttpConn, gateway, get, json_post, tls_client_ctx  # noqa: F401
from pahoclient import HOST, PahoClient, connect_props
from test_tls import certs  # noqa: F401  (module-scoped certificate fixture)
from wsraw import (BINARY, CLOSE, CONT, PING, PONG, TEXT, WSClose, WSConn, accept_for, close_payload, frame,
                   handshake, new_key)

CAST = dict(users=("alice", "bob"), rooms={"general": ("alice", ["bob"])})
ANON = "allow_anonymous = true\n"
HERE = os.path.dirname(os.path.abspath(__file__))
PEER_JS = os.path.join(HERE, "mqttjs", "peer.js")


# --- clients ---------------------------------------------------------------------------

class PahoWS(PahoClient):
    """pahoclient.PahoClient over WebSocket (paho's transport="websockets", path /mqtt)."""

    def __init__(self, port, client_id="", version=5, clean_session=True, keepalive=30, path="/mqtt",
                 ca=None, headers=None):
        super().__init__(port, client_id=client_id, version=version, clean_session=clean_session,
                         keepalive=keepalive)
        kw = {} if version == 5 else {"clean_session": clean_session}
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                        protocol=mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311,
                        transport="websockets", **kw)
        c.ws_set_options(path=path, headers=headers)
        if ca:
            c.tls_set(ca_certs=ca)
        for name in ("connect", "disconnect", "message", "subscribe", "unsubscribe", "publish"):
            setattr(c, f"on_{name}", getattr(self, f"_on_{name}"))
        with self._lock:
            self.c = c

    def drop(self):
        """Network loss: close the TCP socket under the WebSocket, no MQTT DISCONNECT, no close frame."""
        with self._lock:
            self._active = False
            ws = self.c.socket()
            sock = getattr(ws, "_socket", ws)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


@pytest.fixture
def paho_ws():
    made = []

    def make(port, client_id=None, version=5, user=None, password=None, **kw):
        c = PahoWS(port, client_id=client_id if client_id is not None else f"ws-{uuid.uuid4().hex[:8]}",
                   version=version, **kw)
        if user is not None:
            with c._lock:
                c.c.username_pw_set(user, password if password is not None else password_of(user))
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def ws():
    """ws(port, **WSConn kwargs) -> WSConn, closed at the end of the test."""
    made = []

    def make(port, **kw):
        c = WSConn(port, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def upgraded(c):
    assert c.response.status == 101, f"handshake refused: {c.response}"
    return c


def metric(port, name, **labels):
    """The value of one sample of /metrics (None if absent)."""
    resp = get(port, "/metrics")
    assert resp.status == 200, resp
    want = {k: v for k, v in labels.items()}
    for line in resp.body.decode().splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in want.items()):
            return float(m.group(3))
    return None


# =====================================================================================
# Opening handshake
# =====================================================================================

RFC_KEY, RFC_ACCEPT = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("key", [RFC_KEY, "random"])
def test_handshake_101_accept_and_subprotocol(gateway, ws, key):
    assert accept_for(RFC_KEY) == RFC_ACCEPT  # the helper agrees with RFC 6455 1.3
    g = gateway(config=ANON)
    key = new_key() if key == "random" else key
    c = upgraded(ws(g.http_port, key=key))
    resp = c.response
    assert "websocket" in resp.tokens("Upgrade"), resp
    assert "upgrade" in resp.tokens("Connection"), resp
    assert resp.header("Sec-WebSocket-Accept") == accept_for(key), resp
    assert resp.header("Sec-WebSocket-Protocol") == "mqtt", resp
    assert resp.header("Content-Length") in (None, "0") and resp.header("Transfer-Encoding") is None, resp
    assert c.connect_mqtt("hs-" + uuid.uuid4().hex[:6]).reason == 0


@pytest.mark.parametrize("offered,chosen", [
    ("mqtt", {"mqtt"}),
    ("foo, mqtt", {"mqtt"}),
    ("mqttv3.1", {"mqttv3.1"}),
    ("mqtt, mqttv3.1", {"mqtt", "mqttv3.1"}),
    ("chat,mqtt,  superchat", {"mqtt"}),
])
def test_subprotocol_chosen_from_the_offer(gateway, ws, offered, chosen):
    g = gateway(config=ANON)
    c = upgraded(ws(g.http_port, protocol=offered))
    assert c.response.header("Sec-WebSocket-Protocol") in chosen, c.response
    assert c.response.count("Sec-WebSocket-Protocol") == 1, c.response


def test_subprotocol_offer_over_two_header_lines(gateway, ws):
    g = gateway(config=ANON)
    key = new_key()
    req = handshake(key=key, protocol=None, extra=[("Sec-WebSocket-Protocol", "foo"),
                                                   ("Sec-WebSocket-Protocol", "mqtt")])
    c = upgraded(ws(g.http_port, request=req, key=key))
    assert c.response.header("Sec-WebSocket-Protocol") == "mqtt", c.response


@pytest.mark.parametrize("offered", ["chat", None])
def test_subprotocol_not_offered_never_echoed(gateway, ws, offered):
    """Without `mqtt` in the offer: refused (400), or accepted without a subprotocol; never
    a protocol the client did not offer (RFC 6455 4.1: the client must then fail)."""
    g = gateway(config=ANON)
    c = ws(g.http_port, protocol=offered)
    if c.response.status == 101:
        assert c.response.header("Sec-WebSocket-Protocol") is None, c.response
    else:
        assert c.response.status == 400, c.response


@pytest.mark.parametrize("version", [None, "8", "14", "12", "abc"])
def test_missing_or_unsupported_version_426(gateway, version):
    g = gateway(config=ANON)
    c = HttpConn(g.http_port)
    c.send(handshake(key=new_key(), version=version))
    resp = c.read_response()
    assert resp.status == 426, resp
    assert "13" in resp.tokens("Sec-WebSocket-Version"), resp
    c.close()


@pytest.mark.parametrize("key", [None, "", "abc", "AAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAA", "!!!!!!!!!!!!!!!!!!!!!!==",
                                 "AAAAAAAAAAAAAAAAAAAAAAAA", "QUFBQUFBQUFBQUFBQUFBQUE="])
def test_missing_or_bad_key_400(gateway, key):
    """Not base64 of exactly 16 bytes (RFC 6455 4.1): 20 chars, 22 without padding, bad
    characters, 18 bytes (24 chars, no padding), 17 bytes."""
    g = gateway(config=ANON)
    c = HttpConn(g.http_port)
    c.send(handshake(key=key))
    resp = c.read_response()
    assert resp.status == 400, f"key {key!r}: {resp}"
    c.close()


@pytest.mark.parametrize("case", ["no-upgrade-headers", "upgrade-h2c", "no-connection-upgrade", "post"])
def test_not_a_websocket_request(gateway, case):
    g = gateway(config=ANON)
    req = {
        "no-upgrade-headers": handshake(key=None, version=None, protocol=None, upgrade=None, connection=None),
        "upgrade-h2c": handshake(key=new_key(), upgrade="h2c"),
        "no-connection-upgrade": handshake(key=new_key(), connection="keep-alive"),
        "post": handshake(key=new_key(), method="POST"),
    }[case]
    c = HttpConn(g.http_port)
    c.send(req)
    resp = c.read_response()
    allowed = {"post": (400, 405)}.get(case, (400, 426))
    assert resp.status in allowed, f"{case}: {resp}"
    c.close()


@pytest.mark.parametrize("case", ["firefox-connection", "lowercase-names-and-values", "mixed-case-values"])
def test_handshake_header_spellings(gateway, ws, case):
    g = gateway(config=ANON)
    key = new_key()
    req = {
        "firefox-connection": handshake(key=key, connection="keep-alive, Upgrade"),
        "lowercase-names-and-values": (f"GET /mqtt HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\n"
                                       f"connection: upgrade\r\nsec-websocket-key: {key}\r\n"
                                       f"sec-websocket-version: 13\r\nsec-websocket-protocol: mqtt\r\n\r\n").encode(),
        "mixed-case-values": handshake(key=key, upgrade="WebSocket", connection="UPGRADE"),
    }[case]
    c = upgraded(ws(g.http_port, request=req, key=key))
    assert c.response.header("Sec-WebSocket-Accept") == accept_for(key)
    assert c.connect_mqtt().reason == 0


def test_handshake_and_connect_in_one_write(gateway, ws):
    """Bytes after the handshake in the same segment are the first frame: a CONNECT sent
    with the handshake is answered, after exactly one 101, for client ids whose sessions
    live on either loop (the connection then moves to the session's loop). A race when it
    fails: 50 tries make it show on most runs."""
    g = gateway(config=ANON)
    for loop in (0, 1):
        for i in range(25):
            cid = id_on_loop(f"one-write-{loop}-{i}", loop)
            c = upgraded(ws(g.http_port, first=frame(BINARY, r.connect(cid, version=5))))
            try:
                p = c.read_mqtt()
            except AssertionError as e:
                raise AssertionError(f"client id {cid} (loop {loop}): after the 101, {e}; "
                                     f"unparsed: {bytes(c.http.buf)[:200]!r}")
            assert p.type == r.CONNACK and p.reason == 0, p
            c.close()


def test_origin_policy(gateway, ws):
    g = gateway(config=ANON + "ws_origins = http://good.test, https://app.test\n")
    for origin in ("http://good.test", "https://app.test", None):
        c = upgraded(ws(g.http_port, origin=origin))
        assert c.connect_mqtt().reason == 0, origin
    for origin in ("http://evil.test", "null", "http://good.test.evil", "https://good.test"):
        c = ws(g.http_port, origin=origin)
        assert c.response.status == 403, f"origin {origin}: {c.response}"
        assert c.response.header("Sec-WebSocket-Accept") is None, c.response


def test_any_origin_without_ws_origins(gateway, ws):
    g = gateway(config=ANON)
    c = upgraded(ws(g.http_port, origin="http://whatever.test"))
    assert c.connect_mqtt().reason == 0


# =====================================================================================
# Framing
# =====================================================================================

@pytest.fixture
def anon_gw(gateway):
    return gateway(config=ANON)


def test_unmasked_client_frame_closes_1002(anon_gw, ws):
    c = upgraded(ws(anon_gw.http_port))
    c.send(frame(BINARY, r.connect("unmasked", version=5), mask=False))
    code, _, before = c.expect_close()
    assert code == 1002, code
    assert not [f for f in before if f.opcode in (BINARY, CONT)], f"MQTT answer to an unmasked frame: {before}"


@pytest.mark.parametrize("payload", [b"hello-ping", b"", bytes(range(125))])
def test_ping_answered_with_same_payload(anon_gw, ws, payload):
    c = upgraded(ws(anon_gw.http_port))
    c.send_frame(PING, payload)
    assert c.read_pong() == payload
    assert c.connect_mqtt().reason == 0
    c.send_frame(PING, payload[::-1])
    assert c.read_pong() == payload[::-1]
    c.send_binary(r.pingreq())
    assert c.read_mqtt().type == r.PINGRESP


def test_control_frame_over_125_bytes_closes_1002(anon_gw, ws):
    c = upgraded(ws(anon_gw.http_port))
    c.send_frame(PING, b"x" * 126)
    code, _, before = c.expect_close()
    assert code == 1002, code
    assert not [f for f in before if f.opcode == PONG], before


def test_fragmented_connect_with_ping_between_fragments(anon_gw, ws):
    c = upgraded(ws(anon_gw.http_port))
    pkt = r.connect("fragmented", version=5)
    c.send_frame(BINARY, pkt[:3], fin=False)
    c.send_frame(CONT, pkt[3:9], fin=False)
    c.send_frame(PING, b"between")
    c.send_frame(CONT, pkt[9:], fin=True)
    # The pong comes first: the CONNECT is only complete with the last fragment.
    f = c.read_frame()
    assert f.opcode == PONG and f.payload == b"between", f
    p = c.read_mqtt()
    assert p.type == r.CONNACK and p.reason == 0, p


def test_one_frame_carrying_connect_subscribe_publish(anon_gw, ws):
    c = upgraded(ws(anon_gw.http_port))
    topic = "ws/one-frame/" + uuid.uuid4().hex[:6]
    c.send_binary(r.connect("oneframe", version=5) + r.subscribe(1, [(topic, 1)]) + r.publish(topic, b"self", qos=0))
    assert c.read_mqtt().type == r.CONNACK
    sa = c.read_mqtt()
    assert sa.type == r.SUBACK and sa.reasons == [1], sa
    p = c.read_mqtt()
    assert p.type == r.PUBLISH and p.payload == b"self" and p.topic == topic.encode(), p


@pytest.mark.parametrize("how", ["one-byte-messages", "one-byte-fragments"])
def test_mqtt_packets_split_over_one_byte_frames(anon_gw, ws, how):
    c = upgraded(ws(anon_gw.http_port))
    topic = "ws/bytes/" + uuid.uuid4().hex[:6]
    data = r.connect("bytewise", version=5) + r.subscribe(1, [(topic, 0)]) + r.publish(topic, b"bytes!" * 10, qos=0)
    if how == "one-byte-messages":
        c.send(b"".join(frame(BINARY, data[i:i + 1]) for i in range(len(data))))
    else:
        frames = [frame(BINARY if i == 0 else CONT, data[i:i + 1], fin=(i == len(data) - 1)) for i in range(len(data))]
        c.send(b"".join(frames))
    assert c.read_mqtt().type == r.CONNACK
    assert c.read_mqtt().type == r.SUBACK
    p = c.read_mqtt()
    assert p.type == r.PUBLISH and p.payload == b"bytes!" * 10, p


@pytest.mark.parametrize("when", ["before-connect", "after-connect"])
def test_text_frame_closes_1003(anon_gw, ws, when):
    c = upgraded(ws(anon_gw.http_port))
    pkt = r.connect("texty", version=5)  # plain ASCII: valid UTF-8, still not allowed as text
    if when == "after-connect":
        assert c.connect_mqtt().reason == 0
        pkt = r.pingreq()
    c.send_frame(TEXT, pkt)
    code, _, before = c.expect_close()
    assert code == 1003, code
    assert not [f for f in before if f.opcode in (BINARY, CONT)], before


def test_oversized_frame_closes_1009(anon_gw, ws):
    """A frame announcing 8 GiB (longer than any MQTT packet): close 1009 at once."""
    c = upgraded(ws(anon_gw.http_port))
    assert c.connect_mqtt().reason == 0
    c.send(frame(BINARY, b"\x30" + b"\x00" * 100, length=1 << 33)[:14 + 101])
    code, _, _ = c.expect_close(3.0)
    assert code == 1009, code


def test_ws_max_frame_limit(gateway, ws):
    """`ws_max_frame = 64K`: a 65536-byte frame (one whole PUBLISH) is taken, one byte more
    closes with 1009."""
    g = gateway(config=ANON + "ws_max_frame = 64K\n")
    c = upgraded(ws(g.http_port))
    assert c.connect_mqtt("maxframe").reason == 0
    topic = "ws/maxframe"
    head = r.publish(topic, b"", qos=1, pid=3)
    # The PUBLISH with a payload that makes it exactly 65536 bytes long.
    n = 65536 - len(head) - 2
    pkt = r.publish(topic, b"p" * n, qos=1, pid=3)
    assert len(pkt) == 65536, len(pkt)
    c.send_binary(pkt)
    ack = c.read_mqtt_type(r.PUBACK)
    assert ack.pid == 3, ack
    c.send_binary(r.publish(topic, b"p" * (n + 1), qos=1, pid=4))
    code, _, _ = c.expect_close()
    assert code == 1009, code


def test_upgrade_after_requests_on_a_keep_alive_connection(anon_gw):
    """GET /healthz, then the upgrade on the same connection (pipelined in one write): the
    answer to the first, then 101, then the MQTT session."""
    key = new_key()
    h = HttpConn(anon_gw.http_port)
    h.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + handshake(key=key))
    first = h.read_response()
    assert first.status == 200 and first.json() == {"status": "ok"}, first
    up = h.read_response()
    assert up.status == 101 and up.header("Sec-WebSocket-Accept") == accept_for(key), up
    h.send(frame(BINARY, r.connect("after-keepalive", version=5)))
    c = WSConn.__new__(WSConn)  # reuse the connection's buffered bytes as a WSConn
    c.http, c.sock, c.version, c.mqtt, c.pongs, c.frames, c.key, c.response = h, h.sock, 5, bytearray(), [], [], key, up
    p = c.read_mqtt()
    assert p.type == r.CONNACK and p.reason == 0, p
    h.close()


def test_echo_endpoint_off_by_default(anon_gw, ws):
    """/echo exists only with http_test_echo = true."""
    c = ws(anon_gw.http_port, path="/echo", protocol=None)
    assert c.response.status == 404, c.response


@pytest.mark.parametrize("code,reason", [(1000, b"bye"), (1001, b""), (None, b"")])
def test_close_handshake_echoed(anon_gw, ws, code, reason):
    c = upgraded(ws(anon_gw.http_port))
    assert c.connect_mqtt().reason == 0
    c.send_frame(CLOSE, close_payload(code, reason) if code is not None else b"")
    f = c.read_frame()
    while f.opcode != CLOSE:
        assert f.opcode in (PONG, BINARY), f
        f = c.read_frame()
    got = struct.unpack("!H", f.payload[:2])[0] if len(f.payload) >= 2 else None
    if code is None:
        assert got in (None, 1000), f.payload
    else:
        assert got == code, f"client closed with {code}, server answered {f.payload!r}"
    assert c.http.expect_closed(3.0) == b""


def test_ws_close_without_mqtt_disconnect_publishes_the_will(anon_gw, ws, paho):
    g = anon_gw
    topic = "ws/will/" + uuid.uuid4().hex[:6]
    sub = paho(g.port, client_id="will-sub-" + uuid.uuid4().hex[:6])
    sub.connect()
    sub.subscribe(topic, 1)
    c = upgraded(ws(g.http_port))
    assert c.connect_mqtt("will-ws", will=dict(topic=topic, payload=b"ws-gone", qos=1)).reason == 0
    c.send_close(1000)
    m = sub.get(5.0)
    assert (m.topic, m.payload) == (topic, b"ws-gone")


def test_mqtt_disconnect_over_ws_closes_without_will(anon_gw, ws, paho):
    g = anon_gw
    topic = "ws/nowill/" + uuid.uuid4().hex[:6]
    sub = paho(g.port, client_id="nowill-sub-" + uuid.uuid4().hex[:6])
    sub.connect()
    sub.subscribe(topic, 1)
    c = upgraded(ws(g.http_port))
    assert c.connect_mqtt("nowill-ws", will=dict(topic=topic, payload=b"should-not", qos=1)).reason == 0
    c.send_binary(r.disconnect(version=5))
    frames = c.expect_tcp_closed(3.0)
    assert not [f for f in frames if f.opcode in (BINARY, CONT)], frames
    sub.expect_no_message(0.7)


def test_mqtt_protocol_error_over_ws_closes(anon_gw, ws):
    c = upgraded(ws(anon_gw.http_port))
    assert c.connect_mqtt("twice").reason == 0
    c.send_binary(r.connect("twice", version=5))  # a second CONNECT is a protocol error
    frames = c.expect_tcp_closed(3.0)
    data = b"".join(f.payload for f in frames if f.opcode in (BINARY, CONT))
    assert data == b"" or data[0] >> 4 == r.DISCONNECT, frames


@pytest.mark.parametrize("size", [200, 70000, 300000])
def test_payload_sizes_both_ways_over_raw_ws(anon_gw, ws, paho, size):
    """7-bit, 16-bit and 64-bit frame lengths, client to server and server to client."""
    g = anon_gw
    topic = "ws/size/" + uuid.uuid4().hex[:6]
    tcp = paho(g.port, client_id="size-tcp-" + uuid.uuid4().hex[:6])
    tcp.connect()
    tcp.subscribe(topic + "/up", 1)
    c = upgraded(ws(g.http_port))
    assert c.connect_mqtt("size-ws").reason == 0
    c.send_binary(r.subscribe(1, [(topic + "/down", 1)]))
    assert c.read_mqtt().type == r.SUBACK
    up = os.urandom(size)
    c.send_binary(r.publish(topic + "/up", up, qos=1, pid=7))
    ack = c.read_mqtt_type(r.PUBACK)
    assert ack.pid == 7
    assert tcp.get(5.0).payload == up
    down = os.urandom(size)
    assert tcp.publish(topic + "/down", down, 1) == 0
    p = c.read_mqtt_type(r.PUBLISH, 5.0)
    assert p.payload == down


def test_ws_connections_metric(anon_gw, ws):
    g = anon_gw
    assert metric(g.http_port, "parley_connections", listener="ws") == 0
    c = upgraded(ws(g.http_port))
    assert c.connect_mqtt("metric-ws").reason == 0
    wait_until(lambda: metric(g.http_port, "parley_connections", listener="ws") == 1, 3,
               'parley_connections{listener="ws"} 1')
    c.send_binary(r.disconnect(version=5))
    c.expect_tcp_closed()
    wait_until(lambda: metric(g.http_port, "parley_connections", listener="ws") == 0, 3,
               'parley_connections{listener="ws"} back to 0')


# =====================================================================================
# paho-mqtt over WebSocket, with TCP peers
# =====================================================================================

@pytest.fixture
def cast(gateway):
    return gateway(**CAST)


# paho 2.x reports a 3.1.1 CONNACK return code as the MQTT 5 reason code it maps to
# (5 not authorized -> 0x87, 4 bad user name or password -> 0x86); the raw client below
# checks the 3.1.1 bytes themselves.

@pytest.mark.parametrize("version", [4, 5])
def test_ws_anonymous_refused_by_default(cast, paho_ws, ws, version):
    c = paho_ws(cast.http_port, version=version)
    c.connect(expect_rc=0x87)
    raw_ws = upgraded(ws(cast.http_port, version=version))
    assert raw_ws.connect_mqtt("anon-raw", version=version).reason == (0x87 if version == 5 else 0x05)


def rest_token(g, user):
    c = HttpConn(g.http_port)
    try:
        c.send(json_post("/v1/tokens", {"username": user, "password": password_of(user)}))
        resp = c.read_response(10.0)
    finally:
        c.close()
    assert resp.status == 201, resp
    tok = resp.json()["token"]
    assert tok.startswith("pt_"), resp
    return tok


@pytest.mark.parametrize("version", [4, 5])
def test_ws_login_password_token_and_wrong_password(gateway, paho_ws, ws, version):
    g = gateway(**CAST)
    tok = rest_token(g, "alice")  # POST /v1/tokens
    paho_ws(g.http_port, version=version, user="alice").connect()
    paho_ws(g.http_port, version=version, user="alice", password=tok).connect()
    paho_ws(g.http_port, version=version, user="alice", password="wrong-password").connect(expect_rc=0x86)
    paho_ws(g.http_port, version=version, user="bob", password=tok).connect(expect_rc=0x86)
    raw_ws = upgraded(ws(g.http_port, version=version))
    ca = raw_ws.connect_mqtt("wrong-raw", version=version, username="alice", password="wrong-password")
    assert ca.reason == (0x86 if version == 5 else 0x04), ca


@pytest.mark.parametrize("version", [4, 5])
def test_ws_and_tcp_exchange_all_qos_both_ways(cast, paho, paho_ws, version):
    g = cast
    topic = "plain/" + uuid.uuid4().hex[:6]
    wsc = paho_ws(g.http_port, version=version, user="alice")
    wsc.connect()
    tcp = paho(g.port, client_id="tcp-" + uuid.uuid4().hex[:6], version=version)
    tcp.c.username_pw_set("bob", password_of("bob"))
    tcp.connect()
    assert wsc.subscribe(topic + "/to-ws", 2) == [2]
    assert tcp.subscribe(topic + "/to-tcp", 2) == [2]
    for qos in (0, 1, 2):
        rc = tcp.publish(topic + "/to-ws", b"t%d" % qos, qos)
        assert version == 4 or qos == 0 or rc == 0
        rc = wsc.publish(topic + "/to-tcp", b"w%d" % qos, qos)
        assert version == 4 or qos == 0 or rc == 0
    got_ws = wsc.collect(3, 5.0)
    got_tcp = tcp.collect(3, 5.0)
    assert sorted((m.payload, m.qos) for m in got_ws) == [(b"t0", 0), (b"t1", 1), (b"t2", 2)]
    assert sorted((m.payload, m.qos) for m in got_tcp) == [(b"w0", 0), (b"w1", 1), (b"w2", 2)]
    wsc.expect_no_message(0.3)
    tcp.expect_no_message(0.3)


def test_ws_and_tcp_retained_both_ways(cast, paho, paho_ws):
    g = cast
    topic = "plain/retained/" + uuid.uuid4().hex[:6]
    wsc = paho_ws(g.http_port, user="alice")
    wsc.connect()
    assert wsc.publish(topic + "/from-ws", b"kept-ws", 1, retain=True) == 0x10  # no subscriber yet
    tcp = paho(g.port, client_id="tcp-" + uuid.uuid4().hex[:6])
    tcp.c.username_pw_set("bob", password_of("bob"))
    tcp.connect()
    assert tcp.publish(topic + "/from-tcp", b"kept-tcp", 1, retain=True) == 0x10
    tcp.subscribe(topic + "/from-ws", 1)
    m = tcp.get(5.0)
    assert (m.payload, m.retain) == (b"kept-ws", True)
    ws2 = paho_ws(g.http_port, user="bob")
    ws2.connect()
    ws2.subscribe(topic + "/from-tcp", 1)
    m = ws2.get(5.0)
    assert (m.payload, m.retain) == (b"kept-tcp", True)


@pytest.mark.parametrize("version", [4, 5])
def test_ws_will_on_network_loss(cast, paho, paho_ws, version):
    g = cast
    topic = "plain/will/" + uuid.uuid4().hex[:6]
    tcp = paho(g.port, client_id="tcp-" + uuid.uuid4().hex[:6])
    tcp.c.username_pw_set("bob", password_of("bob"))
    tcp.connect()
    tcp.subscribe(topic, 1)
    wsc = paho_ws(g.http_port, version=version, user="alice")
    wsc.will_set(topic, b"alice-ws-lost", 1)
    wsc.connect()
    wsc.drop()
    m = tcp.get(5.0)
    assert (m.topic, m.payload, m.qos) == (topic, b"alice-ws-lost", 1)


def test_ws_chat_post_stamped_like_tcp(cast, paho, paho_ws):
    g = cast
    alice = paho_ws(g.http_port, user="alice")
    alice.connect()
    bob = paho(g.port, client_id="bob-" + uuid.uuid4().hex[:6])
    bob.c.username_pw_set("bob", password_of("bob"))
    bob.connect()
    assert alice.subscribe("rooms/general/messages", 1) == [1]
    assert bob.subscribe("rooms/general/messages", 1) == [1]
    assert alice.publish("rooms/general/messages", "hello from ws", 1) == 0
    for who in (alice, bob):
        m = who.get(5.0)
        check_post(m.payload, 1, "general", "alice", "hello from ws")
        props = dict(user_props(m))
        assert props.get("parley-from") == "alice" and props.get("parley-id") == "1", props
    assert bob.publish("rooms/general/messages", json.dumps({"body": "hi over tcp", "ckey": "k-1"}), 1) == 0
    for who in (alice, bob):
        check_post(who.get(5.0).payload, 2, "general", "bob", "hi over tcp", ckey="k-1")


def test_ws_tcp_session_take_over_both_ways(cast, paho, paho_ws):
    g = cast
    cid = "takeover-" + uuid.uuid4().hex[:6]
    topic = "plain/takeover/" + uuid.uuid4().hex[:6]
    wsc = paho_ws(g.http_port, client_id=cid, user="alice")
    wsc.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=300))
    assert wsc.subscribe(topic, 1) == [1]
    tcp = paho(g.port, client_id=cid)
    tcp.c.username_pw_set("alice", password_of("alice"))
    ca = tcp.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=300))
    assert ca.session_present, "TCP take-over of a WebSocket session: no session present"
    rc, _ = wsc.wait_disconnect(5.0)
    assert rc == 0x8E, f"WebSocket client: disconnect reason {rc}, expected 0x8E"
    other = paho(g.port, client_id="pub-" + uuid.uuid4().hex[:6])
    other.c.username_pw_set("bob", password_of("bob"))
    other.connect()
    assert other.publish(topic, b"to-the-session", 1) == 0
    assert tcp.get(5.0).payload == b"to-the-session"
    ws2 = paho_ws(g.http_port, client_id=cid, user="alice")
    ca = ws2.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=300))
    assert ca.session_present
    rc, _ = tcp.wait_disconnect(5.0)
    assert rc == 0x8E, f"TCP client: disconnect reason {rc}, expected 0x8E"
    assert other.publish(topic, b"back-on-ws", 1) == 0
    assert ws2.get(5.0).payload == b"back-on-ws"


@pytest.mark.parametrize("version", [4, 5])
def test_ws_persistent_session_gets_queued_messages_after_reconnect(cast, paho, paho_ws, version):
    g = cast
    cid = "persist-" + uuid.uuid4().hex[:6]
    topic = "plain/persist/" + uuid.uuid4().hex[:6]
    kw = {} if version == 5 else {"clean_session": False}
    props = connect_props(SessionExpiryInterval=300) if version == 5 else None
    wsc = paho_ws(g.http_port, client_id=cid, version=version, user="alice", **kw)
    wsc.connect(clean_start=False, properties=props)
    assert wsc.subscribe(topic, 2) == [2]
    wsc.disconnect()
    tcp = paho(g.port, client_id="pub-" + uuid.uuid4().hex[:6], version=version)
    tcp.c.username_pw_set("bob", password_of("bob"))
    tcp.connect()
    for i, qos in enumerate((1, 2, 1, 2)):
        tcp.publish(topic, b"queued-%d" % i, qos)
    ws2 = paho_ws(g.http_port, client_id=cid, version=version, user="alice", **kw)
    ca = ws2.connect(clean_start=False, properties=props)
    assert ca.session_present
    got = ws2.collect(4, 5.0)
    # In order per QoS (MQTT-4.6.0-6 speaks of one topic and QoS; across QoS levels the
    # broker's offline queue does not keep the order, over TCP as well).
    for qos in (1, 2):
        assert [m.payload for m in got if m.qos == qos] == \
            [b"queued-%d" % i for i, q in enumerate((1, 2, 1, 2)) if q == qos], [(m.payload, m.qos) for m in got]
    assert len(got) == 4
    ws2.expect_no_message(0.3)


def test_ws_large_messages_both_ways_paho(gateway, paho, paho_ws):
    g = gateway(**CAST, config="max_packet_size = 4M\n")
    topic = "plain/large/" + uuid.uuid4().hex[:6]
    wsc = paho_ws(g.http_port, user="alice")
    wsc.connect()
    tcp = paho(g.port, client_id="tcp-" + uuid.uuid4().hex[:6])
    tcp.c.username_pw_set("bob", password_of("bob"))
    tcp.connect()
    wsc.subscribe(topic + "/down", 1)
    tcp.subscribe(topic + "/up", 1)
    big = os.urandom(1_000_000)
    assert wsc.publish(topic + "/up", big, 1, timeout=15) == 0
    assert tcp.get(15).payload == big
    assert tcp.publish(topic + "/down", big[::-1], 1, timeout=15) == 0
    assert wsc.get(15).payload == big[::-1]


# =====================================================================================
# MQTT.js
# =====================================================================================

class NodePeer:
    """peer.js as a subprocess; its JSON lines read with a deadline."""

    def __init__(self, url, version, user, password, topic_in, topic_out, count, ca=None, env=None):
        args = ["node", PEER_JS, url, str(version), user, password, topic_in, topic_out, str(count)]
        if ca:
            args.append(ca)
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=dict(os.environ, NODE_PATH="/usr/share/nodejs", **(env or {})))
        self.lines = []
        os.set_blocking(self.p.stdout.fileno(), False)
        self._buf = b""

    def next(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            if time.monotonic() > deadline:
                raise AssertionError(f"MQTT.js peer: no output within {timeout}s; so far {self.lines}; "
                                     f"stderr: {self.stderr()}")
            chunk = None
            try:
                chunk = self.p.stdout.read()
            except BlockingIOError:
                pass
            if chunk:
                self._buf += chunk
            elif self.p.poll() is not None and not chunk:
                raise AssertionError(f"MQTT.js peer exited {self.p.returncode}; output {self.lines}; "
                                     f"stderr: {self.stderr()}")
            else:
                time.sleep(0.02)
        line, self._buf = self._buf.split(b"\n", 1)
        obj = json.loads(line)
        self.lines.append(obj)
        assert obj["event"] not in ("error", "timeout"), f"MQTT.js peer: {obj}; before: {self.lines}"
        return obj

    def stderr(self):
        if self.p.poll() is None:
            return "(running)"
        return self.p.stderr.read().decode(errors="replace")[-2000:]

    def wait(self, timeout=10.0):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"MQTT.js peer still running after {timeout}s; output {self.lines}")

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()  # by PID
            self.p.wait(5)


def run_mqttjs_exchange(g, paho, url, version, ca=None):
    topic = "plain/mqttjs/" + uuid.uuid4().hex[:6]
    tcp = paho(g.port, client_id="tcp-" + uuid.uuid4().hex[:6], version=version)
    tcp.c.username_pw_set("bob", password_of("bob"))
    tcp.connect()
    assert tcp.subscribe(topic + "/out", 2) == [2]
    peer = NodePeer(url, version, "alice", password_of("alice"), topic + "/in", topic + "/out", 3, ca=ca)
    try:
        assert peer.next() == {"event": "connect", "sessionPresent": False, "code": 0}, peer.lines
        assert peer.next() == {"event": "ready", "granted": [2]}, peer.lines
        for qos in (0, 1, 2):
            tcp.publish(topic + "/in", b"from-paho-q%d" % qos, qos)
        got = [peer.next() for _ in range(3)]
        assert [(m["event"], m["topic"], base64.b64decode(m["payload"]), m["qos"]) for m in got] == [("message", topic + "/in", b"from-paho-q%d" % q, q) for q in (0, 1, 2)], got
        assert peer.next() == {"event": "published"}
        assert peer.next() == {"event": "end"}
        assert peer.wait() == 0, peer.stderr()
    finally:
        peer.kill()
    msgs = tcp.collect(3, 5.0)
    assert sorted((m.payload, m.qos) for m in msgs) == [(b"from-mqttjs-q%d" % q, q) for q in (0, 1, 2)]
    if version == 5:
        for m in msgs:
            assert ("via", "mqtt.js") in user_props(m), user_props(m)


@pytest.mark.parametrize("version", [4, 5])
def test_mqttjs_over_ws_with_paho_tcp_peer(cast, paho, version):
    run_mqttjs_exchange(cast, paho, f"ws://127.0.0.1:{cast.http_port}/mqtt", version)


# =====================================================================================
# WSS
# =====================================================================================

@pytest.fixture
def wss(gateway, certs):
    return gateway(**CAST, https=True, certs=certs)


def test_https_healthz_with_test_ca(wss, certs):
    c = HttpConn(wss.https_port, ssl_ctx=tls_client_ctx(certs.ca_a))
    c.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    resp = c.read_response()
    assert resp.status == 200 and resp.json() == {"status": "ok"}, resp
    c.close()


@pytest.mark.parametrize("version", [4, 5])
def test_paho_wss_verified_with_test_ca_and_tcp_peer(wss, certs, paho, paho_ws, version):
    g = wss
    topic = "plain/wss/" + uuid.uuid4().hex[:6]
    wsc = paho_ws(g.https_port, version=version, user="alice", ca=certs.ca_a)
    wsc.connect()
    tcp = paho(g.port, client_id="tcp-" + uuid.uuid4().hex[:6], version=version)
    tcp.c.username_pw_set("bob", password_of("bob"))
    tcp.connect()
    wsc.subscribe(topic + "/down", 2)
    tcp.subscribe(topic + "/up", 2)
    for qos in (0, 1, 2):
        wsc.publish(topic + "/up", b"wss-%d" % qos, qos)
        tcp.publish(topic + "/down", b"tcp-%d" % qos, qos)
    assert sorted(m.payload for m in tcp.collect(3, 5.0)) == [b"wss-0", b"wss-1", b"wss-2"]
    assert sorted(m.payload for m in wsc.collect(3, 5.0)) == [b"tcp-0", b"tcp-1", b"tcp-2"]
    wait_until(lambda: metric(g.http_port, "parley_connections", listener="wss") == 1, 3,
               'parley_connections{listener="wss"} 1')


def test_wss_client_trusting_another_ca_refuses(wss, certs, paho_ws):
    c = paho_ws(wss.https_port, user="alice", ca=certs.ca_b)
    with pytest.raises(ssl.SSLError):
        c.connect()


def test_raw_wss_handshake_ping_and_connect(wss, certs, ws):
    c = upgraded(ws(wss.https_port, ssl_ctx=tls_client_ctx(certs.ca_a)))
    assert c.response.header("Sec-WebSocket-Accept") == accept_for(c.key)
    c.send_frame(PING, b"over-tls")
    assert c.read_pong() == b"over-tls"
    ca = c.connect_mqtt("wss-raw", username="alice", password=password_of("alice"))
    assert ca.reason == 0, ca


def test_mqttjs_over_wss_verified_with_test_ca(wss, certs, paho):
    run_mqttjs_exchange(wss, paho, f"wss://127.0.0.1:{wss.https_port}/mqtt", 5, ca=certs.ca_a)
