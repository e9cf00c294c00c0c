"""Raw HTTP/1.1 over a socket, and the `gateway` fixture (the broker with the HTTP gateway).

- `gateway(config="", users=(), rooms=None, https=False, certs=None, extra_args=())`:
  `parley serve` with `plugins = chat,gateway`, `--http 127.0.0.1:0` (and `--https 127.0.0.1:0`
  with tls_cert / tls_key when `https`), on a data directory holding `users` and `rooms` (made
  with the command line, see chat.py). Returns a `chat.Chat` whose `.broker` has `http_port`
  (and `https_port`). A broker that dies during the test fails it.
- `HttpConn(port)`: one TCP (or TLS) connection; `send(bytes)`, `read_response(head=)`
  parses exactly one response (strictly: a malformed response is an AssertionError, so the
  framing of pipelined answers is checked byte for byte), `expect_closed()`, `still_open()`.
- `request(...)`: the bytes of one request; `assert_error(resp, status, code)`: the JSON
  error shape `{"error": code, "message": "..."}`.

Every read is bounded.
"""

import json
import os
import re
import shutil
import socket
import ssl
import time

import pytest

from chat import Chat, template
from conftest import Broker, _check_alive

HOST = "127.0.0.1"
HTTP_LISTEN_RE = re.compile(r"event=listener\.open address=127\.0\.0\.1:(\d+) protocol=http\b")
HTTPS_LISTEN_RE = re.compile(r"event=listener\.open address=127\.0\.0\.1:(\d+) protocol=https\b")
STATUS_RE = re.compile(rb"^HTTP/1\.([01]) (\d{3}) ([\t \x21-\x7e\x80-\xff]*)$")
TOKEN_RE = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Generous defaults for everything the tests do not look at: sign-ups from 127.0.0.1 are
# not rate-limited away.
BASE_CONFIG = "plugins = chat,gateway\nsys_interval = 1\nhttp_auth_rate = 1000/1000\n"


# --- the broker ------------------------------------------------------------------------

def _port_from_log(b, rx, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in b.log():
            m = rx.search(line)
            if m:
                return int(m.group(1))
        if not b.alive:
            break
        time.sleep(0.02)
    raise AssertionError(f"no {what} listener logged within {timeout}s (alive={b.alive}):\n"
                         + "\n".join(b.log()[-20:]))


def start_gateway(started, paho, raw, config="", users=(), rooms=None, https=False, certs=None,
                  extra_args=(), loops=2):
    args = ["--http", "127.0.0.1:0"]
    text = BASE_CONFIG + config
    if https:
        args += ["--https", "127.0.0.1:0"]
        text += f"tls_cert = {certs.server_a_crt}\ntls_key = {certs.server_a_key}\n"
    b = Broker(text, loops=loops, name="gateway", extra_args=args + list(extra_args))
    c = Chat(b, paho, raw)
    if users:
        shutil.copytree(template(users, rooms or {}, {}), c.data)
    started.append(b)
    b.start()
    b.http_port = _port_from_log(b, HTTP_LISTEN_RE, "http")
    b.https_port = _port_from_log(b, HTTPS_LISTEN_RE, "https") if https else None
    c.http_port = b.http_port
    c.https_port = b.https_port
    return c


@pytest.fixture
def gateway(request, paho, raw, chat_templates):
    started = []
    request.node.parley_brokers = started

    def start(**kw):
        return start_gateway(started, paho, raw, **kw)

    yield start
    problems = [p for p in (_check_alive(b) for b in started) if p]
    for b in started:
        b.stop()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# --- requests --------------------------------------------------------------------------

def request(method="GET", target="/healthz", headers=None, body=b"", version="HTTP/1.1", host="127.0.0.1",
            content_length=None):
    """One request. headers: list of (name, value). A Host header comes first unless host is
    None; Content-Length is added for a non-empty body unless content_length is False (or given)."""
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {target} {version}".encode()]
    if host is not None:
        lines.append(b"Host: " + host.encode())
    for k, v in headers or []:
        lines.append((k.encode() if isinstance(k, str) else k) + b": " + (v.encode() if isinstance(v, str) else v))
    if content_length is None and body:
        lines.append(b"Content-Length: %d" % len(body))
    elif content_length not in (None, False):
        lines.append(b"Content-Length: %s" % str(content_length).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(*chunks, trailers=(), ext=None):
    """A chunked body: each chunk `size[;ext]\\r\\ndata\\r\\n`, then `0\\r\\n`, trailers, `\\r\\n`."""
    out = b""
    for ch in chunks:
        if isinstance(ch, str):
            ch = ch.encode()
        out += b"%x" % len(ch) + (ext.encode() if ext else b"") + b"\r\n" + ch + b"\r\n"
    out += b"0\r\n"
    for k, v in trailers:
        out += f"{k}: {v}\r\n".encode()
    return out + b"\r\n"


def json_post(target, obj_or_text, headers=(), **kw):
    body = obj_or_text if isinstance(obj_or_text, (bytes, str)) else json.dumps(obj_or_text)
    return request("POST", target, [("Content-Type", "application/json"), *headers], body, **kw)


# A body for POST /v1/users that is valid JSON with exactly one fault (a too-short password):
# 400 invalid_password shows the body was read completely and exactly (a truncated or
# shifted body is `bad_json`), without creating anything.
SHORT_PW = '{"username": "framing_check", "password": "short"}'


class Closed(Exception):
    pass


class Response:
    def __init__(self, minor, status, reason, headers, body, raw):
        self.minor, self.status, self.reason = minor, status, reason
        self.headers, self.body, self.raw = headers, body, raw

    def header(self, name):
        """The value of a header (several lines joined with ', '), or None."""
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(vals) if vals else None

    def count(self, name):
        return sum(1 for k, _ in self.headers if k.lower() == name.lower())

    def tokens(self, name):
        """A comma-separated header as a list of stripped, lower-cased items."""
        v = self.header(name)
        return [t.strip().lower() for t in v.split(",") if t.strip()] if v else []

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError(f"body is not JSON: {self.body[:200]!r}")

    def __repr__(self):
        return f"<HTTP/1.{self.minor} {self.status} {self.reason!r} headers={self.headers} body={self.body[:120]!r}>"


class HttpConn:
    """One connection to the gateway. Reads are bounded; `buf` keeps bytes not yet parsed."""

    def __init__(self, port, timeout=5.0, ssl_ctx=None, sock=None):
        self.port = port
        self.buf = bytearray()
        self.eof = False
        if sock is None:
            sock = socket.create_connection((HOST, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ssl_ctx is not None:
                sock = ssl_ctx.wrap_socket(sock, server_hostname=HOST)
        self.sock = sock

    def send(self, data):
        self.sock.sendall(data)

    def try_send(self, data):
        """send, returning False if the server has already closed (EPIPE / reset)."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            return False

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from the server")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data from the server")
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        except ssl.SSLError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _need(self, n, deadline, what):
        while len(self.buf) < n:
            if self.eof or not self._fill(deadline):
                raise AssertionError(f"connection closed in the middle of {what}: {bytes(self.buf[:200])!r}")

    def _line(self, deadline, what, limit=65536):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > limit:
                raise AssertionError(f"{what} longer than {limit} bytes")
            if self.eof or not self._fill(deadline):
                raise AssertionError(f"connection closed in the middle of {what}: {bytes(self.buf[:200])!r}")

    def read_response(self, timeout=5.0, head=False):
        """Exactly one response (a 1xx too). Raises Closed if the connection ends before its
        first byte, TimeoutError if nothing arrives, AssertionError if it is malformed."""
        deadline = time.monotonic() + timeout
        start = len(self.buf)
        while not self.buf:
            if self.eof or not self._fill(deadline):
                raise Closed("connection closed before a response")
        raw_start = bytes(self.buf)
        status_line = self._line(deadline, "the status line")
        m = STATUS_RE.match(status_line)
        assert m, f"malformed status line {status_line!r} (buffer {raw_start[:200]!r})"
        minor, status, reason = int(m.group(1)), int(m.group(2)), m.group(3).decode("latin-1")
        headers = []
        while True:
            line = self._line(deadline, "the response headers")
            if line == b"":
                break
            assert line[:1] not in (b" ", b"\t"), f"obs-fold in a response header: {line!r}"
            name, sep, value = line.partition(b":")
            assert sep and TOKEN_RE.match(name), f"malformed response header line {line!r}"
            headers.append((name.decode(), value.strip(b" \t").decode("latin-1")))
        resp = Response(minor, status, reason, headers, b"", None)
        te = resp.header("Transfer-Encoding")
        cl = resp.header("Content-Length")
        assert not (te and cl), f"response with both Transfer-Encoding and Content-Length: {resp}"
        if cl is not None:
            assert re.fullmatch(r"\d+", cl), f"bad Content-Length {cl!r} in {resp}"
        if head or status < 200 or status in (204, 304):
            if status in (204, 304) or status < 200:
                assert cl in (None, "0") or head, f"{status} with a Content-Length: {resp}"
            return resp
        if te is not None:
            assert te.lower() == "chunked", f"unexpected Transfer-Encoding {te!r}"
            body = bytearray()
            while True:
                size_line = self._line(deadline, "a chunk size")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while self._line(deadline, "the trailers") != b"":
                        pass
                    break
                self._need(size + 2, deadline, "a chunk")
                body += self.buf[:size]
                assert self.buf[size:size + 2] == b"\r\n", "chunk not followed by CRLF"
                del self.buf[:size + 2]
            resp.body = bytes(body)
        elif cl is not None:
            n = int(cl)
            self._need(n, deadline, f"a {n}-byte body")
            resp.body = bytes(self.buf[:n])
            del self.buf[:n]
        else:
            # Delimited by the close (allowed for a response, though the gateway should not).
            while not self.eof:
                try:
                    self._fill(deadline)
                except TimeoutError:
                    raise AssertionError(f"response without Content-Length or chunked did not end: {resp}")
            resp.body = bytes(self.buf)
            self.buf.clear()
        return resp

    def read_final(self, timeout=5.0, head=False):
        """The next non-1xx response; the 1xx responses before it are in `.interim`."""
        interim = []
        deadline = time.monotonic() + timeout
        while True:
            r = self.read_response(max(0.01, deadline - time.monotonic()), head=head)
            if r.status >= 200:
                r.interim = interim
                return r
            interim.append(r)

    def expect_closed(self, timeout=3.0):
        """The server closes the connection within `timeout`; returns bytes sent before the close
        (beyond what was parsed)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._fill(deadline)
            except TimeoutError:
                raise AssertionError(f"connection still open after {timeout}s (unread: {bytes(self.buf[:200])!r})")
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def still_open(self, wait=0.3):
        """True if nothing arrives and the connection is not closed within `wait` seconds."""
        try:
            if self._fill(time.monotonic() + wait):
                return False  # data arrived: not idle; it is left in buf
            return False
        except TimeoutError:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def assert_error(resp, status, code):
    """`status` with a JSON error body `{"error": code, "message": <non-empty string>}`."""
    assert resp.status == status, f"expected {status} {code}, got {resp}"
    ctype = (resp.header("Content-Type") or "").lower()
    assert ctype.startswith("application/json"), f"error without a JSON content type: {resp}"
    body = resp.json()
    assert isinstance(body, dict) and set(body) == {"error", "message"}, f"error body {body!r}"
    assert body["error"] == code, f"error code {body['error']!r}, expected {code!r}: {resp}"
    assert isinstance(body["message"], str) and body["message"], f"empty error message: {resp}"
    return body


def roundtrip(port, data, timeout=5.0, head=False):
    """Open a connection, send `data`, read one response. Returns (response, conn)."""
    c = HttpConn(port, timeout=timeout)
    c.send(data)
    return c.read_response(timeout, head=head), c


def get(port, target="/healthz", headers=None, timeout=5.0):
    c = HttpConn(port, timeout=timeout)
    try:
        c.send(request("GET", target, headers))
        return c.read_response(timeout)
    finally:
        c.close()


def tls_client_ctx(ca):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    return ctx


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))
