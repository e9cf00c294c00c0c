"""A tiny MQTT 3.1.1 / 5.0 encoder and decoder over a plain socket.

Used where a real client library cannot misbehave on purpose (garbage bytes,
second CONNECT, wildcard topic names, silent keep-alive clients, ...) or where
the exact bytes the broker sends matter (topic aliases, reason codes).
"""

import socket
import struct
import time

# Packet types
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15

# v5 property identifiers and their wire types
PROPS = {
    0x01: ("PayloadFormatIndicator", "u8"),
    0x02: ("MessageExpiryInterval", "u32"),
    0x03: ("ContentType", "str"),
    0x08: ("ResponseTopic", "str"),
    0x09: ("CorrelationData", "bin"),
    0x0B: ("SubscriptionIdentifier", "vbi"),
    0x11: ("SessionExpiryInterval", "u32"),
    0x12: ("AssignedClientIdentifier", "str"),
    0x13: ("ServerKeepAlive", "u16"),
    0x15: ("AuthenticationMethod", "str"),
    0x16: ("AuthenticationData", "bin"),
    0x17: ("RequestProblemInformation", "u8"),
    0x18: ("WillDelayInterval", "u32"),
    0x19: ("RequestResponseInformation", "u8"),
    0x1A: ("ResponseInformation", "str"),
    0x1C: ("ServerReference", "str"),
    0x1F: ("ReasonString", "str"),
    0x21: ("ReceiveMaximum", "u16"),
    0x22: ("TopicAliasMaximum", "u16"),
    0x23: ("TopicAlias", "u16"),
    0x24: ("MaximumQoS", "u8"),
    0x25: ("RetainAvailable", "u8"),
    0x26: ("UserProperty", "pair"),
    0x27: ("MaximumPacketSize", "u32"),
    0x28: ("WildcardSubscriptionAvailable", "u8"),
    0x29: ("SubscriptionIdentifierAvailable", "u8"),
    0x2A: ("SharedSubscriptionAvailable", "u8"),
}
PROP_IDS = {name: (pid, kind) for pid, (name, kind) in PROPS.items()}
MULTI = {"UserProperty", "SubscriptionIdentifier"}


def vbi(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def s(x):
    if isinstance(x, str):
        x = x.encode()
    return struct.pack("!H", len(x)) + x


def props(**kw):
    """Encode v5 properties (with their length prefix). UserProperty takes a
    list of (key, value) pairs; SubscriptionIdentifier an int or list."""
    body = bytearray()
    for name, value in kw.items():
        pid, kind = PROP_IDS[name]
        values = value if (name in MULTI and isinstance(value, list)) else [value]
        for v in values:
            body += vbi(pid)
            if kind == "u8":
                body += struct.pack("!B", v)
            elif kind == "u16":
                body += struct.pack("!H", v)
            elif kind == "u32":
                body += struct.pack("!I", v)
            elif kind == "vbi":
                body += vbi(v)
            elif kind in ("str", "bin"):
                body += s(v)
            elif kind == "pair":
                body += s(v[0]) + s(v[1])
    return vbi(len(body)) + bytes(body)


def packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + vbi(len(body)) + body


def connect(client_id="", version=5, clean=True, keepalive=60, properties=None,
            will=None, username=None, password=None, reserved=False):
    """will = dict(topic=, payload=, qos=, retain=, properties=bytes (v5))."""
    name = b"MQTT" if version >= 4 else b"MQIsdp"
    flags = 0
    if clean:
        flags |= 0x02
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    if reserved:
        flags |= 0x01
    body = s(name) + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        body += properties if properties is not None else props()
    body += s(client_id)
    if will:
        if version == 5:
            body += will.get("properties", props())
        body += s(will["topic"]) + s(will.get("payload", b""))
    if username is not None:
        body += s(username)
    if password is not None:
        body += s(password)
    return packet(CONNECT, 0, body)


def publish(topic, payload=b"", qos=0, pid=None, retain=False, dup=False, version=5,
            properties=None):
    if isinstance(payload, str):
        payload = payload.encode()
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    body = s(topic)
    if qos:
        body += struct.pack("!H", pid if pid is not None else 1)
    if version == 5:
        body += properties if properties is not None else props()
    return packet(PUBLISH, flags, body + payload)


def subscribe(pid, filters, version=5, properties=None, flags=0x02):
    """filters: list of (filter, options byte)."""
    body = struct.pack("!H", pid)
    if version == 5:
        body += properties if properties is not None else props()
    for f, opts in filters:
        body += s(f) + bytes([opts])
    return packet(SUBSCRIBE, flags, body)


def ack(ptype, pid, version=5, reason=None):
    body = struct.pack("!H", pid)
    if version == 5 and reason is not None:
        body += bytes([reason])
    return packet(ptype, 0x02 if ptype == PUBREL else 0, body)


def pingreq():
    return packet(PINGREQ, 0, b"")


def disconnect(version=5, reason=0, properties=None):
    if version == 5:
        return packet(DISCONNECT, 0, bytes([reason]) + (properties if properties is not None else props()))
    return packet(DISCONNECT, 0, b"")


# ---- decoding ---------------------------------------------------------------

def read_vbi(buf, i):
    mult, value = 1, 0
    while True:
        b = buf[i]
        i += 1
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, i
        mult *= 128


def read_str(buf, i):
    (n,) = struct.unpack_from("!H", buf, i)
    return bytes(buf[i + 2:i + 2 + n]), i + 2 + n


def parse_props(buf, i):
    length, i = read_vbi(buf, i)
    end = i + length
    out = {}
    while i < end:
        pid, i = read_vbi(buf, i)
        name, kind = PROPS[pid]
        if kind == "u8":
            v = buf[i]; i += 1
        elif kind == "u16":
            (v,) = struct.unpack_from("!H", buf, i); i += 2
        elif kind == "u32":
            (v,) = struct.unpack_from("!I", buf, i); i += 4
        elif kind == "vbi":
            v, i = read_vbi(buf, i)
        elif kind == "str":
            v, i = read_str(buf, i); v = v.decode()
        elif kind == "bin":
            v, i = read_str(buf, i)
        else:
            k, i = read_str(buf, i)
            v2, i = read_str(buf, i)
            v = (k.decode(), v2.decode())
        if name in MULTI:
            out.setdefault(name, []).append(v)
        else:
            out[name] = v
    return out, end


class Packet:
    def __init__(self, ptype, flags, body, version):
        self.type, self.flags, self.body, self.version = ptype, flags, body, version
        self.props = {}
        self.reason = None
        b = body
        if ptype == CONNACK:
            self.session_present = bool(b[0] & 1)
            self.reason = b[1]
            if version == 5 and len(b) > 2:
                self.props, _ = parse_props(b, 2)
        elif ptype == PUBLISH:
            self.qos = (flags >> 1) & 3
            self.retain = bool(flags & 1)
            self.dup = bool(flags & 8)
            topic, i = read_str(b, 0)
            self.topic = topic
            self.pid = None
            if self.qos:
                (self.pid,) = struct.unpack_from("!H", b, i); i += 2
            if version == 5:
                self.props, i = parse_props(b, i)
            self.payload = bytes(b[i:])
        elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, SUBACK):
            (self.pid,) = struct.unpack_from("!H", b, 0)
            if ptype == SUBACK or (ptype == UNSUBACK and version == 5):
                i = 2
                if version == 5:
                    self.props, i = parse_props(b, 2)
                self.reasons = list(b[i:])
            elif version == 5:
                self.reason = b[2] if len(b) > 2 else 0
                if len(b) > 3:
                    self.props, _ = parse_props(b, 3)
        elif ptype == DISCONNECT:
            self.reason = b[0] if len(b) else 0
            if len(b) > 1:
                self.props, _ = parse_props(b, 1)

    def __repr__(self):
        extra = ""
        if self.type == PUBLISH:
            extra = f" topic={self.topic!r} qos={self.qos} retain={self.retain} payload={self.payload[:40]!r}"
        if self.reason is not None:
            extra += f" reason=0x{self.reason:02X}"
        if self.props:
            extra += f" props={self.props}"
        return f"<Packet type={self.type}{extra}>"


class Closed(Exception):
    pass


class RawClient:
    """One TCP connection that speaks raw MQTT. Every read is bounded."""

    def __init__(self, port, version=5, timeout=3.0):
        self.version = version
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Read more bytes; False on EOF/reset; raises TimeoutError at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from broker")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data from broker")
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _frame(self):
        if len(self.buf) < 2:
            return None
        try:
            length, i = read_vbi(self.buf, 1)
        except IndexError:
            return None
        if len(self.buf) < i + length:
            return None
        first = self.buf[0]
        body = bytes(self.buf[i:i + length])
        del self.buf[:i + length]
        return Packet(first >> 4, first & 0x0F, body, self.version)

    def read(self, timeout=3.0):
        """The next packet; raises Closed on EOF, TimeoutError if none in time."""
        deadline = time.monotonic() + timeout
        while True:
            p = self._frame()
            if p is not None:
                return p
            if self.eof or not self._fill(deadline):
                raise Closed("connection closed by broker")

    def read_type(self, ptype, timeout=3.0):
        """Skip packets until one of ptype (e.g. skip PUBLISHes while waiting for an ack)."""
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            p = self.read(max(0.01, deadline - time.monotonic()))
            if p.type == ptype:
                p.skipped = skipped
                return p
            skipped.append(p)

    def expect_closed(self, timeout=3.0):
        """Read until the broker closes; returns the packets it sent first.
        Fails if the connection is still open after `timeout`."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            try:
                got.append(self.read(max(0.01, deadline - time.monotonic())))
            except Closed:
                return got
            except TimeoutError:
                raise AssertionError(f"broker did not close the connection within {timeout}s; got {got}")

    def expect_nothing(self, wait=0.5):
        """Nothing arrives (and the connection stays open) for `wait` seconds."""
        try:
            p = self.read(wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected packet {p}")

    def connect(self, client_id="", **kw):
        kw.setdefault("version", self.version)
        self.send(connect(client_id, **kw))
        p = self.read()
        assert p.type == CONNACK, p
        return p

    def subscribe(self, filters, pid=1, **kw):
        kw.setdefault("version", self.version)
        self.send(subscribe(pid, filters, **kw))
        return self.read_type(SUBACK)

    def publish(self, topic, payload=b"", qos=0, pid=1, **kw):
        kw.setdefault("version", self.version)
        self.send(publish(topic, payload, qos=qos, pid=pid, **kw))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def unsubscribe(pid, filters, version=5, properties=None, flags=0x02):
    """filters: list of topic filter strings."""
    body = struct.pack("!H", pid)
    if version == 5:
        body += properties if properties is not None else props()
    for f in filters:
        body += s(f)
    return packet(UNSUBSCRIBE, flags, body)
