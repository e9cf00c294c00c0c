"""A raw RFC 6455 WebSocket client over a socket, for the gateway's `/mqtt` (and `/echo`).

- `handshake(...)`: the bytes of an opening handshake (every header can be left out or
  replaced, for the negative cases); `accept_for(key)` the expected Sec-WebSocket-Accept.
- `frame(opcode, payload, fin=, mask=, rsv=, length=)`: one frame as a client sends it
  (masked unless mask=False; `length` overrides the announced payload length).
- `WSConn(port)`: connects and handshakes (`.response` is the parsed HTTP answer; bytes the
  server sent after it stay buffered for the frame reader). `read_frame()` checks that server
  frames are unmasked and have no RSV bits; `read_mqtt()` returns the next MQTT packet (raw.py
  `Packet`) from the concatenated binary payloads, whatever the frame boundaries; pings are
  answered by the test itself where it wants; pongs are kept in `pongs`; a close frame raises
  `WSClose(code, reason)`.
"""

import base64
import hashlib
import os
import socket
import struct
import time

import raw as r
from httpraw import HOST, Closed, HttpConn

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def handshake(path="/mqtt", key=None, version="13", protocol="mqtt", origin=None, upgrade="websocket",
              connection="Upgrade", host="127.0.0.1", method="GET", http="HTTP/1.1", extra=()):
    """A client opening handshake; pass None to leave a header out."""
    lines = [f"{method} {path} {http}"]
    if host is not None:
        lines.append(f"Host: {host}")
    if upgrade is not None:
        lines.append(f"Upgrade: {upgrade}")
    if connection is not None:
        lines.append(f"Connection: {connection}")
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    if protocol is not None:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    if origin is not None:
        lines.append(f"Origin: {origin}")
    lines += [f"{k}: {v}" for k, v in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None, mask_key=None):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class WSClose(Exception):
    def __init__(self, code, reason, payload):
        super().__init__(f"close frame code={code} reason={reason!r}")
        self.code, self.reason, self.payload = code, reason, payload


class Frame:
    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    def __repr__(self):
        return f"<Frame op={self.opcode} fin={self.fin} len={len(self.payload)} {self.payload[:40]!r}>"


class WSConn:
    def __init__(self, port, path="/mqtt", key=None, protocol="mqtt", origin=None, extra=(), first=b"",
                 ssl_ctx=None, timeout=5.0, version=5, request=None):
        self.key = key or new_key()
        self.http = HttpConn(port, timeout=timeout, ssl_ctx=ssl_ctx)
        self.sock = self.http.sock
        self.version = version
        req = request if request is not None else handshake(path, self.key, protocol=protocol, origin=origin,
                                                            extra=extra)
        self.http.send(req + first)
        self.response = self.http.read_response(timeout)
        self.mqtt = bytearray()  # binary payload bytes not yet parsed as MQTT
        self.pongs = []
        self.frames = []  # every frame read, in order

    @property
    def upgraded(self):
        return self.response.status == 101

    # -- sending --
    def send(self, data):
        self.http.send(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.http.send(frame(opcode, payload, **kw))

    def send_binary(self, data, **kw):
        self.send_frame(BINARY, data, **kw)

    def send_close(self, code=1000, reason=b""):
        try:
            self.send_frame(CLOSE, close_payload(code, reason) if code is not None else b"")
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass

    # -- receiving --
    def _need(self, n, deadline):
        h = self.http
        while len(h.buf) < n:
            if h.eof or not h._fill(deadline):
                raise Closed(f"TCP closed (had {bytes(h.buf[:40])!r}, needed {n} bytes)")

    def read_frame(self, timeout=3.0):
        deadline = time.monotonic() + timeout
        h = self.http
        self._need(2, deadline)
        b0, b1 = h.buf[0], h.buf[1]
        assert not b1 & 0x80, f"a masked frame from the server: {bytes(h.buf[:16])!r}"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            (n,) = struct.unpack_from("!H", h.buf, 2)
            off = 4
        elif n == 127:
            self._need(10, deadline)
            (n,) = struct.unpack_from("!Q", h.buf, 2)
            off = 10
        self._need(off + n, deadline)
        payload = bytes(h.buf[off:off + n])
        del h.buf[:off + n]
        f = Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload)
        assert f.rsv == 0, f"RSV bits from the server: {f}"
        self.frames.append(f)
        return f

    def next_data(self, timeout=3.0, answer_pings=True):
        """The next data frame (binary / continuation); pongs collected, a close raises WSClose."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.read_frame(max(0.01, deadline - time.monotonic()))
            if f.opcode == CLOSE:
                code = struct.unpack("!H", f.payload[:2])[0] if len(f.payload) >= 2 else None
                raise WSClose(code, f.payload[2:], f.payload)
            if f.opcode == PONG:
                self.pongs.append(f.payload)
                continue
            if f.opcode == PING:
                if answer_pings:
                    self.send_frame(PONG, f.payload)
                continue
            assert f.opcode in (BINARY, CONT), f"server sent a non-binary data frame: {f}"
            return f

    def read_mqtt(self, timeout=3.0):
        deadline = time.monotonic() + timeout
        while True:
            p = self._mqtt_packet()
            if p is not None:
                return p
            f = self.next_data(max(0.01, deadline - time.monotonic()))
            self.mqtt += f.payload

    def _mqtt_packet(self):
        b = self.mqtt
        if len(b) < 2:
            return None
        try:
            length, i = r.read_vbi(b, 1)
        except IndexError:
            return None
        if len(b) < i + length:
            return None
        first = b[0]
        body = bytes(b[i:i + length])
        del b[:i + length]
        return r.Packet(first >> 4, first & 0x0F, body, self.version)

    def read_mqtt_type(self, ptype, timeout=3.0):
        deadline = time.monotonic() + timeout
        while True:
            p = self.read_mqtt(max(0.01, deadline - time.monotonic()))
            if p.type == ptype:
                return p

    def connect_mqtt(self, client_id="", **kw):
        kw.setdefault("version", self.version)
        self.send_binary(r.connect(client_id, **kw))
        p = self.read_mqtt()
        assert p.type == r.CONNACK, p
        return p

    def read_pong(self, timeout=3.0):
        deadline = time.monotonic() + timeout
        while not self.pongs:
            f = self.read_frame(max(0.01, deadline - time.monotonic()))
            if f.opcode == PONG:
                self.pongs.append(f.payload)
            elif f.opcode == CLOSE:
                raise WSClose(struct.unpack("!H", f.payload[:2])[0] if len(f.payload) >= 2 else None,
                              f.payload[2:], f.payload)
            elif f.opcode in (BINARY, CONT):
                self.mqtt += f.payload
        return self.pongs.pop(0)

    def expect_close(self, timeout=3.0):
        """Frames until the server's close frame; answers it, then the TCP close must follow.
        Returns (code or None, reason, frames before it). AssertionError if the server just drops
        the TCP connection without a close frame, or never closes."""
        deadline = time.monotonic() + timeout
        before = []
        while True:
            try:
                f = self.read_frame(max(0.01, deadline - time.monotonic()))
            except Closed as e:
                raise AssertionError(f"TCP closed without a close frame ({e}); frames: {before}")
            except TimeoutError:
                raise AssertionError(f"no close frame within {timeout}s; frames: {before}")
            if f.opcode == CLOSE:
                break
            before.append(f)
        code = struct.unpack("!H", f.payload[:2])[0] if len(f.payload) >= 2 else None
        assert len(f.payload) != 1, f"close frame with a 1-byte payload: {f.payload!r}"
        self.send_close(code if code is not None else None)
        rest = self.http.expect_closed(max(0.5, deadline - time.monotonic()) + 2.0)
        assert rest == b"", f"bytes after the close frame: {rest[:100]!r}"
        return code, f.payload[2:], before

    def expect_tcp_closed(self, timeout=3.0):
        """The connection ends (with or without a close frame); returns the frames before."""
        deadline = time.monotonic() + timeout
        before = []
        while True:
            try:
                before.append(self.read_frame(max(0.01, deadline - time.monotonic())))
            except Closed:
                return before
            except TimeoutError:
                raise AssertionError(f"connection still open after {timeout}s; frames: {before}")
            if before[-1].opcode == CLOSE:
                self.send_close(None)

    def close(self):
        self.http.close()
