"""The gateway's HTTP/1.1 server (SPEC 4, issue 12), with raw sockets: how strictly it reads
requests, and that bad or slow input never stalls or crashes it.

Rules checked, with the RFC 9110 / 9112 text they come from, and the choices made here
where the RFCs leave room:

- Request line: `method SP request-target SP HTTP-version CRLF`. A method that is not a
  token, a missing or ill-formed version (`GET /x` as in HTTP/0.9, `http/1.1`, `HTTP/1`,
  `HTTP/1.10`), a target that is neither origin-form nor absolute-form: 400 `bad_request`
  and the connection closes. A well-formed version with another major number (`HTTP/2.0`,
  `HTTP/3.0`, `HTTP/0.9`): 505 and close (RFC 9110 15.6.6: the server does not support that
  major version; with an unknown major version the framing of what follows is unknown, so
  it cannot go on). `HTTP/1.2` is answered as HTTP/1.1 (RFC 9112 2.3: a higher minor version
  is treated as the highest minor version the recipient implements).
  The absolute-form (`GET http://host/path`) is accepted (RFC 9112 3.2.2: a server MUST);
  an empty line before the request line is ignored (RFC 9112 2.2, SHOULD).
- Headers: names are case-insensitive; whitespace between name and colon (RFC 9112 5.1,
  MUST reject), obs-fold (RFC 9112 5.2: reject or unfold; the gateway rejects), a line
  without a colon, a name that is not a token, no Host or two Host lines in HTTP/1.1
  (RFC 9112 3.2, MUST): 400 and close.
- Bodies: Content-Length (1*DIGIT; two different values or a non-number: 400 and close,
  RFC 9112 6.3) or chunked (sizes in hex, extensions ignored, trailers read and dropped;
  a bad size or missing CRLF: 400 and close). Content-Length together with
  Transfer-Encoding: 400 and close (RFC 9112 6.3 lets a server reject it; the gateway does,
  that is the request smuggling shape). Transfer-Encoding whose last coding is not chunked:
  400 and close (RFC 9112 6.3, MUST); an unknown coding before chunked: 400 or 501 (RFC 9112
  6.1 says 501, SHOULD) and close.
- Keep-alive by default in HTTP/1.1, pipelined requests answered in order; `Connection:
  close` honoured (the answer says `Connection: close` and the server closes, RFC 9112 9.6);
  HTTP/1.0 closes after the answer.
- `Expect: 100-continue`: `100 Continue` before the client sends the body; when the
  announced body is over `http_max_body`, 413 `body_too_large` and no 100.
- HEAD: the headers of GET (the same Content-Length), no body.
- Limits: request line over `http_max_request_line` (8K) 414 `uri_too_long`, headers over
  `http_max_header_bytes` (16K) 431 `headers_too_large`, body over `http_max_body` (1K here)
  413 `body_too_large`; each also while the line is still unterminated, and each closes
  (the server refused to read the rest, so it cannot find the next request).
  `http_header_timeout` (1s here): 408 `timeout` and close, counted from the request's
  start (a client trickling a byte at a time does not reset it); an idle keep-alive
  connection is closed after `http_idle_timeout` (408 or a plain close).
- Every response has a Date (RFC 9110 6.6.1, MUST for an origin server with a clock) and is
  framed by Content-Length or chunked; errors are JSON `{"error", "message"}`.
- Routes: unknown 404 `not_found`; wrong method 405 `method_not_allowed` with `Allow`.
- CORS: `http_cors_origins = http://example.test`: a preflight (OPTIONS with
  Access-Control-Request-Method) from that origin is answered 200/204 with the origin
  echoed in Access-Control-Allow-Origin, the method and requested headers allowed and
  `Vary: Origin`; from any other origin no Access-Control-* header at all.
- Load: 300 half-sent requests plus a client flooding garbage do not slow down a client
  asking /healthz (each answer within 1 s, median under 100 ms: a noisy 2-core VM); 2,000
  mutated requests (fixed seed, `PARLEY_HTTP_FUZZ_SEED` to change it) each get a 2xx/4xx
  answer (or 501/505, or 100/101 where the mutant asked for them) or a close, and the
  server lives, answers and has closed what it opened.
"""

import json
import os
import random
import re
import resource
import select
import socket
import statistics
import subprocess
import sys
import time
from email.utils import parsedate_to_datetime

import pytest

from chat import chat_templates  # noqa: F401
from conftest import wait_until
from httpraw import (SHORT_PW, Closed, HttpConn, assert_error, chunked, gateway, get,  # noqa: F401
                     json_post, open_fds, request, roundtrip)

LIMITS = "http_max_body = 1K\nhttp_cors_origins = http://example.test\n"
TIMEOUTS = "http_header_timeout = 1s\nhttp_idle_timeout = 1s\n"
H = b"Host: 127.0.0.1\r\n"
JSON_CT = b"Content-Type: application/json\r\n"


def _raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


_raise_nofile()  # the broker inherits it; the slow-client test holds 300+ sockets


@pytest.fixture
def gw(gateway):
    return gateway(config=LIMITS)


def healthz_ok(resp):
    assert resp.status == 200, resp
    assert resp.json() == {"status": "ok"}, resp
    return resp


def nothing_yet(c):
    """Nothing has arrived on `c` (no data, no close) at this instant."""
    r, _, _ = select.select([c.sock], [], [], 0)
    return not r and not c.buf


def short_pw_body(size):
    """SHORT_PW padded with JSON whitespace to exactly `size` bytes."""
    pad = size - len(SHORT_PW)
    assert pad >= 0
    return (SHORT_PW[:-1] + " " * pad + "}").encode()


def assert_framing_check(resp):
    """The answer to a POST /v1/users carrying SHORT_PW: the whole body was read."""
    assert_error(resp, 400, "invalid_password")


# =====================================================================================
# Basics
# =====================================================================================

IMF_FIXDATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                         r"\d{4} \d\d:\d\d:\d\d GMT$")


@pytest.mark.parametrize("target,status", [("/healthz", 200), ("/no/such/route", 404), ("/", 200)])
def test_response_framing_and_keep_alive(gw, target, status):
    """Status line HTTP/1.1, one Content-Length matching the body, and the connection stays
    open for the next request."""
    c = HttpConn(gw.http_port)
    c.send(request("GET", target))
    r = c.read_response()
    assert r.status == status and r.minor == 1, r
    assert r.count("Content-Length") == 1 and int(r.header("Content-Length")) == len(r.body), r
    assert r.header("Connection") is None or "close" not in r.tokens("Connection"), r
    if target == "/healthz":
        healthz_ok(r)
        assert r.header("Content-Type").lower().startswith("application/json"), r
    if status == 404:
        assert_error(r, 404, "not_found")
    c.send(request("GET", "/healthz"))
    healthz_ok(c.read_response())
    c.close()


@pytest.mark.parametrize("req,status", [
    (request("GET", "/healthz"), 200),
    (request("GET", "/"), 200),
    (request("GET", "/no/such/route"), 404),
    (request("DELETE", "/healthz"), 405),
    (b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n", 400),
], ids=["200", "static", "404", "405", "400"])
def test_responses_carry_a_current_date(gw, req, status):
    """RFC 9110 6.6.1: an origin server with a clock MUST send Date in 2xx, 3xx and 4xx
    answers, as an IMF-fixdate."""
    c = HttpConn(gw.http_port)
    c.send(req)
    r = c.read_response()
    assert r.status == status, r
    date = r.header("Date")
    assert date and IMF_FIXDATE.match(date), f"Date header {date!r} in {r}"
    assert abs(parsedate_to_datetime(date).timestamp() - time.time()) < 60, date
    c.close()


# =====================================================================================
# Malformed requests: 400 bad_request and close
# =====================================================================================

def _pw_post(extra_headers, body):
    return b"POST /v1/users HTTP/1.1\r\n" + H + JSON_CT + extra_headers + b"\r\n" + body


BAD_REQUESTS = {
    # request line
    "method-token-with-paren": b"G(T /healthz HTTP/1.1\r\n" + H + b"\r\n",
    "method-token-with-nul": b"GE\x00T /healthz HTTP/1.1\r\n" + H + b"\r\n",
    "no-version-http09-style": b"GET /healthz\r\n" + H + b"\r\n",
    "lowercase-http-name": b"GET /healthz http/1.1\r\n" + H + b"\r\n",
    "version-without-minor": b"GET /healthz HTTP/1\r\n" + H + b"\r\n",
    "version-two-digit-minor": b"GET /healthz HTTP/1.10\r\n" + H + b"\r\n",
    "version-not-digits": b"GET /healthz HTTP/x.y\r\n" + H + b"\r\n",
    "empty-target": b"GET  HTTP/1.1\r\n" + H + b"\r\n",
    "target-not-a-path": b"GET healthz HTTP/1.1\r\n" + H + b"\r\n",
    "extra-token-after-version": b"GET /healthz HTTP/1.1 extra\r\n" + H + b"\r\n",
    "nul-in-target": b"GET /heal\x00thz HTTP/1.1\r\n" + H + b"\r\n",
    # headers
    "missing-host-http11": b"GET /healthz HTTP/1.1\r\nUser-Agent: t\r\n\r\n",
    "two-host-headers": b"GET /healthz HTTP/1.1\r\n" + H + H + b"\r\n",
    "whitespace-before-colon": b"GET /healthz HTTP/1.1\r\nHost : 127.0.0.1\r\n\r\n",
    "header-line-without-colon": b"GET /healthz HTTP/1.1\r\n" + H + b"X-Parley-Test\r\n\r\n",
    "empty-header-name": b"GET /healthz HTTP/1.1\r\n" + H + b": value\r\n\r\n",
    "header-name-not-a-token": b"GET /healthz HTTP/1.1\r\n" + H + b"X(Test): v\r\n\r\n",
    "obs-fold-space": b"GET /healthz HTTP/1.1\r\n" + H + b"X-Test: a\r\n folded\r\n\r\n",
    "obs-fold-tab": b"GET /healthz HTTP/1.1\r\n" + H + b"X-Test: a\r\n\tfolded\r\n\r\n",
    # Content-Length
    "content-length-not-a-number": _pw_post(b"Content-Length: abc\r\n", b""),
    "content-length-negative": _pw_post(b"Content-Length: -1\r\n", b""),
    "content-length-plus-sign": _pw_post(b"Content-Length: +5\r\n", b"hello"),
    "two-different-content-lengths": _pw_post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
    "content-length-list-of-different": _pw_post(b"Content-Length: 5, 6\r\n", b"hello!"),
    "content-length-and-transfer-encoding": _pw_post(
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    "transfer-encoding-and-content-length": _pw_post(
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"),
    "chunked-not-final-coding": _pw_post(b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n"),
    # chunked bodies
    "chunk-size-not-hex": _pw_post(b"Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-negative": _pw_post(b"Transfer-Encoding: chunked\r\n", b"-5\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-0x-prefix": _pw_post(b"Transfer-Encoding: chunked\r\n", b"0x5\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-empty": _pw_post(b"Transfer-Encoding: chunked\r\n", b"\r\nhello\r\n0\r\n\r\n"),
    "chunk-data-longer-than-size": _pw_post(b"Transfer-Encoding: chunked\r\n", b"3\r\nhello\r\n0\r\n\r\n"),
    "chunk-data-without-crlf": _pw_post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhelloX0\r\n\r\n"),
    # not HTTP at all
    "tls-client-hello": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32)) + b"\r\n\r\n",
    "binary-garbage": bytes(range(256)) + b"\r\n\r\n",
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_malformed_request_400_bad_request_and_close(gw, case):
    c = HttpConn(gw.http_port)
    c.send(BAD_REQUESTS[case])
    try:
        r = c.read_response()
    except Closed:
        raise AssertionError(f"{case}: closed without a 400")
    assert_error(r, 400, "bad_request")
    rest = c.expect_closed(3.0)
    assert rest == b"", f"{case}: more after the 400: {rest[:200]!r}"
    healthz_ok(get(gw.http_port))


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9"])
def test_unsupported_http_version_505_and_close(gw, version):
    c = HttpConn(gw.http_port)
    c.send(b"GET /healthz %s\r\n" % version.encode() + H + b"\r\n")
    r = c.read_response()
    assert r.status == 505, r
    c.expect_closed(3.0)


def test_http_1_2_answered_as_http_1_1(gw):
    """RFC 9112 2.3: a higher minor version is understood as the highest implemented one."""
    c = HttpConn(gw.http_port)
    c.send(b"GET /healthz HTTP/1.2\r\n" + H + b"\r\n")
    r = c.read_response()
    assert r.minor == 1, r
    healthz_ok(r)


GOOD_VARIANTS = {
    "lowercase-header-names": b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nuser-agent: t\r\naccept: */*\r\n\r\n",
    "uppercase-header-names": b"GET /healthz HTTP/1.1\r\nHOST: 127.0.0.1\r\nUSER-AGENT: t\r\n\r\n",
    "whitespace-around-value": b"GET /healthz HTTP/1.1\r\nHost:   127.0.0.1 \t \r\n\r\n",
    "no-whitespace-after-colon": b"GET /healthz HTTP/1.1\r\nHost:127.0.0.1\r\n\r\n",
    "tab-after-colon": b"GET /healthz HTTP/1.1\r\nHost:\t127.0.0.1\r\n\r\n",
    "empty-header-value": b"GET /healthz HTTP/1.1\r\n" + H + b"X-Empty:\r\nX-Empty-Too: \r\n\r\n",
    "query-string": b"GET /healthz?probe=1&x=%20y HTTP/1.1\r\n" + H + b"\r\n",
    "absolute-form": b"GET http://127.0.0.1/healthz HTTP/1.1\r\n" + H + b"\r\n",
    "empty-line-before-request-line": b"\r\nGET /healthz HTTP/1.1\r\n" + H + b"\r\n",
    "fifty-headers": b"GET /healthz HTTP/1.1\r\n" + H + b"".join(b"X-H%d: v%d\r\n" % (i, i) for i in range(50)) + b"\r\n",
    "http10-without-host": b"GET /healthz HTTP/1.0\r\n\r\n",
    "get-with-empty-content-length": b"GET /healthz HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n",
}


@pytest.mark.parametrize("case", list(GOOD_VARIANTS))
def test_accepted_request_forms(gw, case):
    c = HttpConn(gw.http_port)
    c.send(GOOD_VARIANTS[case])
    healthz_ok(c.read_response())
    c.close()


# =====================================================================================
# Header names are case-insensitive; bodies by Content-Length and chunked
# =====================================================================================

def test_header_names_case_insensitive_for_framing_and_connection(gw):
    """`cOnTeNt-LeNgTh` frames the body, `content-type` is read, `cOnNeCtIoN: ClOsE` closes."""
    body = SHORT_PW.encode()
    c = HttpConn(gw.http_port)
    c.send(b"POST /v1/users HTTP/1.1\r\nhOsT: 127.0.0.1\r\ncontent-type: application/json\r\n"
           b"cOnTeNt-LeNgTh: %d\r\n\r\n" % len(body) + body
           + b"GET /healthz HTTP/1.1\r\nHOST: 127.0.0.1\r\ncOnNeCtIoN: ClOsE\r\n\r\n")
    assert_framing_check(c.read_response())
    r = c.read_response()
    healthz_ok(r)
    assert "close" in r.tokens("Connection"), r
    assert c.expect_closed(3.0) == b""


def test_content_length_body_read_exactly(gw):
    c = HttpConn(gw.http_port)
    c.send(json_post("/v1/users", SHORT_PW) + request("GET", "/healthz"))
    assert_framing_check(c.read_response())
    healthz_ok(c.read_response())
    c.close()


def test_content_length_zero_is_an_empty_body(gw):
    c = HttpConn(gw.http_port)
    c.send(b"POST /v1/users HTTP/1.1\r\n" + H + JSON_CT + b"Content-Length: 0\r\n\r\n" + request("GET", "/healthz"))
    assert_error(c.read_response(), 400, "bad_json")
    healthz_ok(c.read_response())


def test_body_arriving_in_pieces(gw):
    """Headers, then the body in three writes 0.2 s apart: one request, answered once."""
    body = SHORT_PW.encode()
    c = HttpConn(gw.http_port)
    c.send(b"POST /v1/users HTTP/1.1\r\n" + H + JSON_CT + b"Content-Length: %d\r\n\r\n" % len(body))
    for part in (body[:7], body[7:30], body[30:]):
        time.sleep(0.2)
        assert nothing_yet(c), f"answered before the body was complete: {c.sock.recv(200)!r}"
        c.send(part)
    assert_framing_check(c.read_response())
    c.send(request("GET", "/healthz"))
    healthz_ok(c.read_response())


def test_request_one_byte_at_a_time(gw):
    c = HttpConn(gw.http_port)
    data = json_post("/v1/users", SHORT_PW)
    for i in range(len(data)):
        c.send(data[i:i + 1])
        if i % 16 == 0:
            time.sleep(0.002)
    assert_framing_check(c.read_response())


def test_chunked_body_with_extensions_uppercase_hex_and_trailers(gw):
    """Chunk boundaries inside JSON tokens, chunk extensions (`;a=b`, `;flag`, quoted), an
    upper-case hex size, trailer fields: the body is the chunks' data, and the next request
    on the connection is found right after the last CRLF."""
    body = SHORT_PW.encode()
    parts = [body[:1], body[1:14], body[14:40], body[40:]]
    wire = (b"%x;name=value\r\n" % len(parts[0]) + parts[0] + b"\r\n"
            + b"%X;flag\r\n" % len(parts[1]) + parts[1] + b"\r\n"
            + b"%x ; q=\"a;b\"\r\n" % len(parts[2]) + parts[2] + b"\r\n"
            + b"%x\r\n" % len(parts[3]) + parts[3] + b"\r\n"
            + b"0;last=1\r\nX-Trailer: one\r\nX-Other-Trailer: two\r\n\r\n")
    c = HttpConn(gw.http_port)
    c.send(_pw_post(b"Transfer-Encoding: chunked\r\n", wire) + request("GET", "/healthz"))
    assert_framing_check(c.read_response())
    healthz_ok(c.read_response())


def test_chunked_body_without_trailers_and_leading_zeros(gw):
    body = SHORT_PW.encode()
    wire = b"000%x\r\n" % len(body) + body + b"\r\n0000\r\n\r\n"
    c = HttpConn(gw.http_port)
    c.send(_pw_post(b"Transfer-Encoding: chunked\r\n", wire) + request("GET", "/healthz"))
    assert_framing_check(c.read_response())
    healthz_ok(c.read_response())


def test_chunked_sign_up_creates_the_user(gw):
    body = json.dumps({"username": "chunky", "password": "chunked-pass-123"}).encode()
    c = HttpConn(gw.http_port)
    c.send(_pw_post(b"Transfer-Encoding: chunked\r\n", chunked(body[:10], body[10:25], body[25:])))
    r = c.read_response(10.0)
    assert r.status == 201, r
    assert r.json()["username"] == "chunky", r
    c.send(json_post("/v1/users", body))
    assert_error(c.read_response(10.0), 409, "username_taken")


def test_unknown_transfer_coding_refused_and_closed(gw):
    """RFC 9112 6.1: a coding the server does not know (gzip before chunked): 501 (SHOULD), or 400."""
    c = HttpConn(gw.http_port)
    c.send(_pw_post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"))
    r = c.read_response()
    assert r.status in (400, 501), r
    c.expect_closed(3.0)


# =====================================================================================
# Keep-alive, pipelining, Connection: close, HTTP/1.0
# =====================================================================================

def test_keep_alive_many_sequential_requests(gw):
    c = HttpConn(gw.http_port)
    for i in range(20):
        c.send(request("GET", f"/healthz?i={i}"))
        healthz_ok(c.read_response())
    assert c.still_open(0.3)


def test_pipelined_requests_answered_in_order(gw):
    """Five requests in one write (a body by length, a HEAD, a body by chunks, a 404):
    five answers, in order, each framed exactly."""
    body = SHORT_PW.encode()
    c = HttpConn(gw.http_port)
    c.send(request("GET", "/healthz")
           + json_post("/v1/users", SHORT_PW)
           + request("HEAD", "/healthz")
           + _pw_post(b"Transfer-Encoding: chunked\r\n", chunked(body[:20], body[20:]))
           + request("GET", "/no/such/thing"))
    healthz_ok(c.read_response())
    assert_framing_check(c.read_response())
    h = c.read_response(head=True)
    assert h.status == 200 and h.body == b"", h
    assert_framing_check(c.read_response())
    assert_error(c.read_response(), 404, "not_found")
    assert c.still_open(0.3), f"unexpected bytes or close after the fifth answer: {bytes(c.buf)[:200]!r}"


def test_pipelined_three_healthz_in_one_write(gw):
    c = HttpConn(gw.http_port)
    c.send(b"".join(request("GET", f"/healthz?n={i}") for i in range(3)))
    for _ in range(3):
        healthz_ok(c.read_response())
    assert c.still_open(0.3)


def test_pipelining_stops_at_a_malformed_request(gw):
    """GET, malformed, GET in one write: 200, 400, then the close; the third is never answered."""
    c = HttpConn(gw.http_port)
    c.send(request("GET", "/healthz") + b"GET /x HTTP/1.1\r\n" + H + b"Bad Header\r\n\r\n" + request("GET", "/healthz"))
    healthz_ok(c.read_response())
    assert_error(c.read_response(), 400, "bad_request")
    assert c.expect_closed(3.0) == b""


def test_connection_close_honoured(gw):
    c = HttpConn(gw.http_port)
    c.send(request("GET", "/healthz", [("Connection", "close")]) + request("GET", "/healthz"))
    r = c.read_response()
    healthz_ok(r)
    assert "close" in r.tokens("Connection"), r
    assert c.expect_closed(3.0) == b"", "the request after Connection: close was answered"


def test_http10_closes_by_default(gw):
    c = HttpConn(gw.http_port)
    c.send(b"GET /healthz HTTP/1.0\r\n" + H + b"\r\n" + request("GET", "/healthz"))
    r = c.read_response()
    healthz_ok(r)
    assert r.minor in (0, 1), r
    assert c.expect_closed(3.0) == b"", "HTTP/1.0: a second request was answered"


# =====================================================================================
# Expect: 100-continue
# =====================================================================================

def test_expect_100_continue_before_the_body(gw):
    body = SHORT_PW.encode()
    c = HttpConn(gw.http_port)
    c.send(b"POST /v1/users HTTP/1.1\r\n" + H + JSON_CT + b"Expect: 100-continue\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body))
    r = c.read_response(3.0)
    assert r.status == 100, f"expected 100 Continue before the body, got {r}"
    c.send(body)
    assert_framing_check(c.read_response())
    c.send(request("GET", "/healthz"))
    healthz_ok(c.read_response())


def test_expect_100_continue_with_chunked_body(gw):
    body = SHORT_PW.encode()
    c = HttpConn(gw.http_port)
    c.send(b"POST /v1/users HTTP/1.1\r\n" + H + JSON_CT + b"Expect: 100-continue\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n")
    r = c.read_response(3.0)
    assert r.status == 100, f"expected 100 Continue before the body, got {r}"
    c.send(chunked(body[:9], body[9:]))
    assert_framing_check(c.read_response())


def test_expect_100_continue_body_too_large_413_without_100(gw):
    c = HttpConn(gw.http_port)
    c.send(b"POST /v1/users HTTP/1.1\r\n" + H + JSON_CT + b"Expect: 100-continue\r\n"
           b"Content-Length: 5000\r\n\r\n")
    r = c.read_response(3.0)
    assert r.status != 100, "100 Continue for a body over http_max_body"
    assert_error(r, 413, "body_too_large")


def test_expect_100_continue_body_sent_without_waiting(gw):
    """A client that sends the body at once anyway: one final answer (a 100 before it is
    allowed), and the connection goes on."""
    c = HttpConn(gw.http_port)
    c.send(json_post("/v1/users", SHORT_PW, headers=[("Expect", "100-continue")]) + request("GET", "/healthz"))
    r = c.read_final()
    assert_framing_check(r)
    assert all(i.status == 100 for i in r.interim) and len(r.interim) <= 1, r.interim
    healthz_ok(c.read_response())
    assert c.still_open(0.3)


# =====================================================================================
# HEAD
# =====================================================================================

@pytest.mark.parametrize("target", ["/healthz", "/", "/openapi.json", "/app.js", "/no/such/route"])
def test_head_has_the_get_headers_and_no_body(gw, target):
    c = HttpConn(gw.http_port)
    c.send(request("HEAD", target) + request("GET", target))
    h = c.read_response(head=True)
    g = c.read_response()
    assert h.status == g.status, (h, g)
    assert h.header("Content-Length") is not None, h
    assert int(h.header("Content-Length")) == len(g.body), (h, g)
    assert h.header("Content-Type") == g.header("Content-Type"), (h, g)
    # the GET answer started right after the HEAD headers: no body bytes were sent for HEAD
    assert c.still_open(0.3)


# =====================================================================================
# Limits: 414, 431, 413
# =====================================================================================

def test_request_line_limit(gw):
    ok_target = "/healthz?p=" + "a" * (8000 - len("GET /healthz?p= HTTP/1.1"))
    c = HttpConn(gw.http_port)
    c.send(request("GET", ok_target))
    healthz_ok(c.read_response())
    c.close()
    c = HttpConn(gw.http_port)
    c.send(request("GET", "/healthz?p=" + "a" * 9000))
    assert_error(c.read_response(), 414, "uri_too_long")
    c.expect_closed(3.0)


def test_request_line_limit_without_line_end(gw):
    """9000 bytes of request line and no CRLF: 414 at once, not after the header timeout."""
    c = HttpConn(gw.http_port)
    c.send(b"GET /healthz?p=" + b"a" * 9000)
    assert_error(c.read_response(3.0), 414, "uri_too_long")
    c.expect_closed(3.0)


def test_header_limit(gw):
    under = [(f"X-Pad-{i}", "v" * 340) for i in range(40)]  # ~14 KB in 41 lines
    c = HttpConn(gw.http_port)
    c.send(request("GET", "/healthz", under))
    healthz_ok(c.read_response())
    c.close()
    for headers in ([(f"X-Pad-{i}", "v" * 340) for i in range(60)],  # ~21 KB in 61 lines
                    [("X-Big", "v" * 17000)]):                      # one line of 17 KB
        c = HttpConn(gw.http_port)
        c.send(request("GET", "/healthz", headers))
        assert_error(c.read_response(), 431, "headers_too_large")
        c.expect_closed(3.0)


def test_header_limit_without_end_of_headers(gw):
    c = HttpConn(gw.http_port)
    c.send(b"GET /healthz HTTP/1.1\r\n" + H + b"X-Endless: " + b"v" * 20000)
    assert_error(c.read_response(3.0), 431, "headers_too_large")
    c.expect_closed(3.0)


def test_header_limit_is_16384_bytes_of_header_lines(gw):
    """Header lines (each with its CR LF, the request line and the final empty line not
    counted) of exactly 16384 bytes are taken, also when the final CR LF comes in pieces;
    16385 are 431."""
    host = b"Host: 127.0.0.1\r\n"
    for extra, status in ((0, 200), (1, 431)):
        pad = b"X-Pad: " + b"v" * (16384 - len(host) - len(b"X-Pad: \r\n") + extra) + b"\r\n"
        assert len(host + pad) == 16384 + extra
        c = HttpConn(gw.http_port)
        c.send(b"GET /healthz HTTP/1.1\r\n" + host + pad)
        time.sleep(0.1)
        # (over the limit, the 431 and the close may come before the rest is sent)
        if c.try_send(b"\r"):
            time.sleep(0.1)
            c.try_send(b"\n")
        r = c.read_response()
        if status == 200:
            healthz_ok(r)
        else:
            assert_error(r, 431, "headers_too_large")
        c.close()


def test_body_limit_content_length(gw):
    c = HttpConn(gw.http_port)
    c.send(json_post("/v1/users", short_pw_body(1000)) + request("GET", "/healthz"))
    assert_framing_check(c.read_response())
    healthz_ok(c.read_response())
    c.close()
    c = HttpConn(gw.http_port)
    c.send(json_post("/v1/users", short_pw_body(1100)))
    assert_error(c.read_response(), 413, "body_too_large")
    c.expect_closed(3.0)


def test_body_limit_content_length_announced_only(gw):
    """Content-Length: 10 MB and no body yet: 413 at once (from the header alone)."""
    c = HttpConn(gw.http_port)
    c.send(b"POST /v1/users HTTP/1.1\r\n" + H + JSON_CT + b"Content-Length: 10000000\r\n\r\n" + b"{")
    assert_error(c.read_response(3.0), 413, "body_too_large")
    c.expect_closed(3.0)


def test_body_limit_chunked(gw):
    body = short_pw_body(1000)
    c = HttpConn(gw.http_port)
    c.send(_pw_post(b"Transfer-Encoding: chunked\r\n", chunked(*[body[i:i + 100] for i in range(0, 1000, 100)]))
           + request("GET", "/healthz"))
    assert_framing_check(c.read_response())
    healthz_ok(c.read_response())
    c.close()
    body = short_pw_body(1100)
    c = HttpConn(gw.http_port)
    c.send(_pw_post(b"Transfer-Encoding: chunked\r\n", chunked(*[body[i:i + 100] for i in range(0, 1100, 100)])))
    assert_error(c.read_response(), 413, "body_too_large")
    c.expect_closed(3.0)


def test_body_limit_huge_chunk_size(gw):
    """A chunk size far over the limit (and over 64 bits): refused (413, or 400 as unparseable), closed."""
    for size in (b"100000", b"ffffffffffffffffffffffff"):
        c = HttpConn(gw.http_port)
        c.send(_pw_post(b"Transfer-Encoding: chunked\r\n", size + b"\r\n{\"a\""))
        r = c.read_response(3.0)
        assert r.status in (400, 413), (size, r)
        assert_error(r, r.status, "body_too_large" if r.status == 413 else "bad_request")
        c.expect_closed(3.0)


# =====================================================================================
# Timeouts: 408
# =====================================================================================

@pytest.fixture
def gw_fast(gateway):
    return gateway(config=LIMITS + TIMEOUTS)


def test_header_timeout_408_and_close(gw_fast):
    c = HttpConn(gw_fast.http_port)
    start = time.monotonic()
    c.send(b"GET /healthz HTTP/1.1\r\nHost: 12")
    assert c.still_open(0.5), "closed or answered within 0.5 s of a 1 s header timeout"
    r = c.read_response(5.0)
    took = time.monotonic() - start
    assert_error(r, 408, "timeout")
    assert took >= 0.8, f"408 after {took:.2f}s with http_header_timeout = 1s"
    c.expect_closed(3.0)


def test_header_timeout_not_reset_by_a_trickle(gw_fast):
    """A byte every 0.2 s keeps arriving, yet the request must be complete within the header
    timeout of 1 s: 408 well before the trickle would end (10 s)."""
    c = HttpConn(gw_fast.http_port)
    start = time.monotonic()
    c.send(b"GET /healthz HTTP/1.1\r\n")
    trickle = b"X-Slow: " + b"s" * 60
    for i in range(len(trickle)):
        if not c.try_send(trickle[i:i + 1]):
            break
        r, _, _ = select.select([c.sock], [], [], 0.2)
        if r:
            break
    took = time.monotonic() - start
    assert took < 5.0, f"still reading a trickling request after {took:.1f}s (timeout 1s)"
    try:
        r = c.read_response(3.0)
        assert_error(r, 408, "timeout")
    except Closed:
        raise AssertionError(f"closed without a 408 after {took:.1f}s")
    c.expect_closed(3.0)


def test_silent_connection_closed(gw_fast):
    c = HttpConn(gw_fast.http_port)
    assert c.still_open(0.5)
    rest = c.expect_closed(5.0)
    assert rest == b"" or rest.startswith(b"HTTP/1.1 408 "), rest[:200]


def test_idle_keep_alive_connection_closed(gw_fast):
    c = HttpConn(gw_fast.http_port)
    c.send(request("GET", "/healthz"))
    healthz_ok(c.read_response())
    assert c.still_open(0.5), "closed within 0.5 s of a 1 s idle timeout"
    rest = c.expect_closed(5.0)
    assert rest == b"" or rest.startswith(b"HTTP/1.1 408 "), rest[:200]


def test_activity_keeps_a_keep_alive_connection(gw_fast):
    """Requests 0.6 s apart for 3 s on one connection (timeouts 1 s): all answered."""
    c = HttpConn(gw_fast.http_port)
    for i in range(5):
        c.send(request("GET", f"/healthz?i={i}"))
        healthz_ok(c.read_response())
        time.sleep(0.6)
    c.send(request("GET", "/healthz"))
    healthz_ok(c.read_response())


def test_stalled_body_closed(gw_fast):
    c = HttpConn(gw_fast.http_port)
    c.send(b"POST /v1/users HTTP/1.1\r\n" + H + JSON_CT + b"Content-Length: 100\r\n\r\n" + b"{\"username\":")
    assert c.still_open(0.5)
    rest = c.expect_closed(6.0)
    assert rest == b"" or rest.startswith(b"HTTP/1.1 408 "), rest[:200]


# =====================================================================================
# Routes: 404, 405
# =====================================================================================

@pytest.mark.parametrize("target", ["/nope", "/v1", "/v1/nope", "/v1/devices", "/v1/push/vapid",
                                    "/healthz/extra", "/v1/rooms/general/messages/extra"])
def test_unknown_route_404_json_keep_alive(gw, target):
    c = HttpConn(gw.http_port)
    c.send(request("GET", target))
    assert_error(c.read_response(), 404, "not_found")
    c.send(request("GET", "/healthz"))
    healthz_ok(c.read_response())


@pytest.mark.parametrize("method,target,allowed", [
    ("POST", "/healthz", {"GET"}),
    ("DELETE", "/healthz", {"GET"}),
    ("PUT", "/metrics", {"GET"}),
    ("POST", "/openapi.json", {"GET"}),
    ("PUT", "/v1/rooms", {"GET", "POST"}),
    ("GET", "/v1/tokens", {"POST"}),
    ("GET", "/v1/users", {"POST"}),
    ("POST", "/v1/me", {"GET", "PATCH", "DELETE"}),
    ("TRACE", "/healthz", {"GET"}),
])
def test_wrong_method_405_with_allow(gw, method, target, allowed):
    """405 method_not_allowed, `Allow` naming the route's methods and not this one; the body
    of the refused request is skipped, so the connection goes on."""
    c = HttpConn(gw.http_port)
    c.send(request(method, target, [("Content-Type", "application/json")], body=b'{"x": 1}') + request("GET", "/healthz"))
    r = c.read_response()
    assert_error(r, 405, "method_not_allowed")
    allow = {t.strip() for t in (r.header("Allow") or "").split(",") if t.strip()}
    assert allowed <= allow and method not in allow, f"Allow {r.header('Allow')!r} for {method} {target}"
    healthz_ok(c.read_response())


def test_unknown_method_token(gw):
    """A valid token that no route knows: 405 (the route's methods) or 501 (RFC 9110 9.1)."""
    c = HttpConn(gw.http_port)
    c.send(request("BREW", "/healthz"))
    r = c.read_response()
    assert r.status in (405, 501), r
    if r.status == 405:
        assert "GET" in (r.header("Allow") or ""), r


# =====================================================================================
# CORS
# =====================================================================================

def preflight(origin, target="/v1/rooms", method="POST", headers="authorization, content-type"):
    return request("OPTIONS", target, [("Origin", origin), ("Access-Control-Request-Method", method),
                                       ("Access-Control-Request-Headers", headers)])


def test_cors_preflight_for_configured_origin(gw):
    c = HttpConn(gw.http_port)
    c.send(preflight("http://example.test"))
    r = c.read_response()
    assert r.status in (200, 204), r
    assert r.header("Access-Control-Allow-Origin") == "http://example.test", r
    methods = {m.strip() for m in (r.header("Access-Control-Allow-Methods") or "").split(",")}
    assert "POST" in methods or "*" in methods, r
    allowed_headers = set(r.tokens("Access-Control-Allow-Headers"))
    assert {"authorization", "content-type"} <= allowed_headers or "*" in allowed_headers, r
    assert "origin" in r.tokens("Vary"), f"no Vary: Origin on an origin-dependent answer: {r}"
    c.send(request("GET", "/healthz"))
    healthz_ok(c.read_response())


@pytest.mark.parametrize("origin", ["http://other.test", "http://example.test.evil", "null",
                                    "https://example.test", "http://example.test:8080"])
def test_cors_preflight_other_origin_gets_no_cors_headers(gw, origin):
    c = HttpConn(gw.http_port)
    c.send(preflight(origin))
    r = c.read_response()
    cors = [(k, v) for k, v in r.headers if k.lower().startswith("access-control-")]
    assert cors == [], f"CORS headers for origin {origin}: {cors}"


def test_cors_simple_request_origin_echoed_only_when_allowed(gw):
    r = get(gw.http_port, "/healthz", [("Origin", "http://example.test")])
    healthz_ok(r)
    assert r.header("Access-Control-Allow-Origin") == "http://example.test", r
    assert "origin" in r.tokens("Vary"), r
    r = get(gw.http_port, "/healthz", [("Origin", "http://other.test")])
    healthz_ok(r)
    assert r.header("Access-Control-Allow-Origin") is None, r
    r = get(gw.http_port, "/healthz")
    assert r.header("Access-Control-Allow-Origin") is None, r


def test_cors_wildcard(gateway):
    g = gateway(config="http_cors_origins = *\n")
    c = HttpConn(g.http_port)
    c.send(preflight("http://anything.test"))
    r = c.read_response()
    assert r.status in (200, 204), r
    assert r.header("Access-Control-Allow-Origin") in ("*", "http://anything.test"), r


def test_cors_not_configured_no_headers(gateway):
    g = gateway()
    r = get(g.http_port, "/healthz", [("Origin", "http://example.test")])
    healthz_ok(r)
    assert r.header("Access-Control-Allow-Origin") is None, r


# =====================================================================================
# Slow clients and a flood do not stall the others
# =====================================================================================

FLOOD = r"""
import os, signal, socket, sys, time
port, seconds, kind = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
end = time.monotonic() + seconds
def stop(*_):
    global end
    end = 0
signal.signal(signal.SIGTERM, stop)
conns = sent = 0
junk = os.urandom(65536)
endless = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: " + b"a" * 65536
while time.monotonic() < end:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        time.sleep(0.01)
        continue
    conns += 1
    s.setblocking(False)
    try:
        while time.monotonic() < end:
            try:
                sent += s.send(junk if kind == "garbage" else endless)
            except BlockingIOError:
                time.sleep(0.0005)
            try:
                if s.recv(65536, socket.MSG_DONTWAIT) == b"":
                    break
            except BlockingIOError:
                pass
    except OSError:
        pass
    finally:
        s.close()
print(conns, sent, flush=True)
"""


def test_slow_and_flooding_clients_do_not_stall_healthz(gateway):
    g = gateway(config="http_header_timeout = 120s\nhttp_idle_timeout = 120s\n")
    port = g.http_port
    pid = g.broker.proc.pid
    fds_before = open_fds(pid)
    half = []
    try:
        for i in range(300):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half-%d: " % i)
            half.append(s)
        floods = [subprocess.Popen([sys.executable, "-c", FLOOD, str(port), "60", kind],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE) for kind in ("garbage", "endless")]
        try:
            time.sleep(0.5)  # the floods are running
            latencies = []
            start = time.monotonic()
            for i in range(200):
                t0 = time.monotonic()
                c = HttpConn(port, timeout=5)
                c.send(request("GET", "/healthz", [("Connection", "close")]))
                healthz_ok(c.read_response(5.0))
                c.close()
                latencies.append(time.monotonic() - t0)
            total = time.monotonic() - start
            alive = [f.poll() is None for f in floods]
        finally:
            for f in floods:
                if f.poll() is None:
                    f.terminate()  # by PID
            outs = []
            for f in floods:
                try:
                    out, err = f.communicate(timeout=5)
                except subprocess.TimeoutExpired:
                    f.kill()
                    out, err = f.communicate(timeout=5)
                outs.append((out.decode().strip(), err.decode()[-500:]))
        median = statistics.median(latencies)
        worst = max(latencies)
        assert all(alive), f"a flooding client ended early: {outs}"
        assert worst < 1.0, f"slowest /healthz took {worst:.3f}s (median {median:.3f}s)"
        assert median < 0.1, f"median /healthz latency {median:.3f}s (worst {worst:.3f}s)"
        assert total < 60, f"200 requests took {total:.1f}s"
        # The server kept reading the floods and closing them (they reconnected), and held
        # every half-sent request open (http_header_timeout = 120s).
        still = 0
        for s in half:
            s.setblocking(False)  # (with a timeout set, Python waits for data before recv)
            try:
                data = s.recv(1, socket.MSG_PEEK)
                if data:
                    raise AssertionError(f"a half-sent request was answered: {data!r}")
            except BlockingIOError:
                still += 1
            except ConnectionResetError:
                pass
        assert still == 300, f"only {still} of 300 half-sent requests still open"
        for kind, (out, err) in zip(("garbage", "endless"), outs):
            conns = int(out.split()[0]) if out else 0
            assert conns >= 10, f"{kind} flood: only {conns} connections (server not closing them?) {err}"
    finally:
        for s in half:
            s.close()
    assert g.broker.alive
    healthz_ok(get(port))
    wait_until(lambda: open_fds(pid) <= fds_before + 5, 10, "the server to close the flood's and the half-sent connections",
               detail=lambda: f"{open_fds(pid)} fds open")


# =====================================================================================
# Mutated requests
# =====================================================================================

def fuzz_seeds():
    body = SHORT_PW.encode()
    bearer = [("Authorization", "Bearer pt_" + "A" * 43)]
    return [
        request("GET", "/healthz"),
        request("HEAD", "/healthz"),
        request("GET", "/metrics"),
        request("GET", "/openapi.json"),
        request("GET", "/"),
        request("GET", "/app.js", [("Accept-Encoding", "gzip"), ("If-None-Match", '"x"')]),
        json_post("/v1/users", SHORT_PW),
        _pw_post(b"Transfer-Encoding: chunked\r\n",
                 b"%x;ext=1\r\n" % 10 + body[:10] + b"\r\n" + b"%x\r\n" % (len(body) - 10) + body[10:]
                 + b"\r\n0\r\nX-T: 1\r\n\r\n"),
        json_post("/v1/tokens", {"username": "nobody", "password": "wrong-password"}),
        request("GET", "/v1/me", bearer),
        request("GET", "/v1/rooms?x=1", bearer),
        preflight("http://example.test"),
        b"GET /healthz HTTP/1.0\r\n\r\n",
        request("GET", "/mqtt", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                 ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                 ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Protocol", "mqtt")]),
        request("GET", "/healthz") + request("GET", "/healthz?again=1"),
        json_post("/v1/users", SHORT_PW, headers=[("Expect", "100-continue")]),
        request("DELETE", "/v1/tokens/current", bearer),
        request("PATCH", "/v1/me", bearer + [("Content-Type", "application/json")], b'{"notify": {"email": "off"}}'),
        request("GET", "/v1/rooms/general/messages?before=10&after=2&limit=5", bearer),
        request("POST", "/v1/rooms", bearer + [("Content-Type", "application/json")], b'{"name": "r1", "title": "T"}'),
        request("GET", "/no/such/route"),
        request("PUT", "/healthz", body=b"xyz"),
    ]


SPECIAL = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b";", b",", b"\xff", b"0", b"-", b"/", b"%", b"\x7f"]


def mutate(rng, seed):
    data = bytearray(seed)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(9)
        if op == 0 and data:  # flip bytes
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 1 and data:  # flip one bit
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 2 and data:  # truncate
            del data[rng.randrange(len(data)):]
        elif op == 3:  # duplicate a header line
            lines = bytes(data).split(b"\r\n")
            if len(lines) > 2:
                i = rng.randrange(1, len(lines) - 1)
                lines.insert(i, lines[i])
                data = bytearray(b"\r\n".join(lines))
        elif op == 4 and data:  # delete a range
            i = rng.randrange(len(data))
            del data[i:i + rng.randint(1, 16)]
        elif op == 5:  # insert special bytes
            i = rng.randrange(len(data) + 1)
            data[i:i] = rng.choice(SPECIAL) * rng.randint(1, 3)
        elif op == 6:  # CRLF -> LF somewhere
            j = data.find(b"\r\n", rng.randrange(len(data) + 1))
            if j >= 0:
                del data[j]
        elif op == 7:  # a digit run replaced by a big or odd number
            m = list(re.finditer(rb"\d+", bytes(data)))
            if m:
                x = rng.choice(m)
                data[x.start():x.end()] = rng.choice([b"99999999999999999999", b"-1", b"0", b"1e3", b"ffff", b"00000000"])
        elif op == 8:  # repeat the request (pipelining)
            data = data + data
    return bytes(data)


STATUS_AT_LINE_START = re.compile(rb"(?:^|\r\n)HTTP/1\.[01] (\d{3}) ")


def test_mutated_requests_never_crash_or_hang_the_server(gateway):
    seed = int(os.environ.get("PARLEY_HTTP_FUZZ_SEED", "12061"))
    rng = random.Random(seed)
    g = gateway(config=LIMITS + "http_header_timeout = 2s\nhttp_idle_timeout = 2s\n")
    port, pid = g.http_port, g.broker.proc.pid
    fds_before = open_fds(pid)
    seeds = fuzz_seeds()
    n, slow, deadline = 2000, [], time.monotonic() + 240
    statuses = {}
    for i in range(n):
        assert time.monotonic() < deadline, f"only {i} of {n} mutated requests within 240 s (slow: {slow[:5]})"
        m = mutate(rng, rng.choice(seeds))
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            try:
                s.sendall(m)
                s.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass
            got = b""
            while True:
                if time.monotonic() - t0 > 5.0:
                    raise AssertionError(f"mutant {i} (seed {seed}): connection neither answered nor closed "
                                         f"after 5 s; sent {m[:300]!r}, got {got[:300]!r}")
                s.settimeout(max(0.01, 5.0 - (time.monotonic() - t0)))
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                except ConnectionResetError:
                    break
                if not data:
                    break
                got += data
        finally:
            s.close()
        took = time.monotonic() - t0
        if took > 1.0:
            slow.append((i, round(took, 2), m[:80]))
        if got:
            assert STATUS_AT_LINE_START.match(got), \
                f"mutant {i} (seed {seed}): answer is not a status line: sent {m[:300]!r}, got {got[:300]!r}"
            for code in STATUS_AT_LINE_START.findall(got):
                code = int(code)
                statuses[code] = statuses.get(code, 0) + 1
                ok = 200 <= code < 300 or 400 <= code < 500 or code in (100, 101, 501, 505)
                assert ok, f"mutant {i} (seed {seed}): status {code}; sent {m[:300]!r}, got {got[:300]!r}"
        if i % 100 == 99:
            assert g.broker.alive, f"server died at mutant {i} (seed {seed}): {m[:300]!r}"
            healthz_ok(get(port))
    assert g.broker.alive
    healthz_ok(get(port))
    assert len(slow) <= n // 20, f"{len(slow)} mutants took over 1 s (closed on EOF only after a timeout?): {slow[:10]}"
    assert 400 in statuses and 200 in statuses, statuses
    wait_until(lambda: open_fds(pid) <= fds_before + 5, 10, "the server to close every fuzz connection",
               detail=lambda: f"{open_fds(pid)} fds open, {fds_before} before")
