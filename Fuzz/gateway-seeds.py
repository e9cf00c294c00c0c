#!/usr/bin/env python3
"""Writes the seed corpora of the gateway harnesses (corpus/http, corpus/websocket,
corpus/rest) in each harness's input layout. Run from Fuzz/: python3 gateway-seeds.py"""
import json, os, random, struct

def write(harness, name, data):
    os.makedirs(f"corpus/{harness}", exist_ok=True)
    with open(f"corpus/{harness}/{name}", "wb") as f:
        f.write(data)

# http: byte 0 chunk seed, byte 1 limits, then the stream.
H = {
    "get": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "get-query": b"GET /v1/rooms/general/messages?before=10&limit=5 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\n\r\n",
    "post-length": b"POST /v1/users HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 37\r\n\r\n{\"username\":\"bob\",\"password\":\"pw123\"}",
    "chunked": b"POST /v1/rooms HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"nam\r\n9;ext=1\r\ne\":\"gen\"}\r\n0\r\nX-Trailer: 1\r\n\r\n",
    "chunked-upper": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
    "pipelined": b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiHEAD /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    "expect": b"POST /v1/rooms/x/messages HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
    "expect-chunked": b"PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
    "expect-bad": b"POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n",
    "http10": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    "absolute": b"GET http://example.com/v1/me?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "options-star": b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    "leading-blank": b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "many-blank": b"\r\n" * 6 + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "upgrade": b"GET /mqtt HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n\x82\x80\x00\x00\x00\x00",
    "bad-fold": b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n",
    "bad-cl-te": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad-cl-twice": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "cl-list-same": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
    "bad-te-gzip": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "bad-te-last": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    "bad-bare-lf": b"GET / HTTP/1.1\nHost: a\n\n",
    "bad-bare-cr": b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
    "bad-version": b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    "bad-no-host": b"GET / HTTP/1.1\r\n\r\n",
    "bad-two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "bad-method": b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
    "bad-target": b"GET v1 HTTP/1.1\r\nHost: a\r\n\r\n",
    "bad-chunk-size": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "bad-chunk-long": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
    "bad-control": b"GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n",
    "chunked-10": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
}
for i, (name, stream) in enumerate(sorted(H.items())):
    write("http", name, bytes([0, 0]) + stream)
    write("http", name + "-chunks", bytes([0x80 | i, 0]) + stream)
# The limits at their boundaries (byte 1: request line 20, headers 40, 1 header, body 16 -> 0xFF;
# request line 64, headers 128, 4 headers, body 64 -> 0x55).
def rl(n):  # a request line of n bytes (without CR LF)
    return b"GET /" + b"a" * (n - 14) + b" HTTP/1.1"
write("http", "limit-line-20", bytes([0x81, 0xFF]) + rl(20) + b"\r\nHost: a\r\n\r\n")
write("http", "limit-line-21", bytes([0x81, 0xFF]) + rl(21) + b"\r\nHost: a\r\n\r\n")
write("http", "limit-headers-40", bytes([0x83, 0x55 & ~0x0C | 0x0C]) + b"GET / HTTP/1.1\r\nHost: " + b"a" * 32 + b"\r\n\r\n")
write("http", "limit-headers-41", bytes([0x83, 0x55 & ~0x0C | 0x0C]) + b"GET / HTTP/1.1\r\nHost: " + b"a" * 33 + b"\r\n\r\n")
write("http", "limit-count", bytes([0x85, 0x55]) + b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n")
write("http", "limit-body-64", bytes([0x87, 0x55]) + b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 64\r\n\r\n" + b"x" * 64)
write("http", "limit-body-65", bytes([0x87, 0x55]) + b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n" + b"x" * 65)
write("http", "limit-chunked-65", bytes([0x89, 0x55]) + b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + b"x" * 64 + b"\r\n1\r\nx\r\n0\r\n\r\n")

# websocket: byte 0 chunk seed, byte 1 settings, then the stream (also the round-trip script).
def frame(opcode, payload, fin=True, mask=b"\x37\xfa\x21\x3d", masked=True, rsv=0):
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n <= 125:
        head = bytes([b0, (0x80 if masked else 0) | n])
    elif n <= 0xFFFF:
        head = bytes([b0, (0x80 if masked else 0) | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, (0x80 if masked else 0) | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
W = {
    "text": frame(1, b"Hello"),
    "binary": frame(2, bytes(range(40))),
    "fragmented": frame(1, b"Hel", fin=False) + frame(9, b"p") + frame(0, b"lo", fin=False) + frame(0, b"!"),
    "ping-pong": frame(9, b"abc") + frame(10, b"") + frame(9, b"x" * 125),
    "close": frame(8, b"\x03\xe8bye"),
    "close-empty": frame(8, b""),
    "len16": frame(2, b"y" * 200),
    "len16-max": frame(2, b"z" * 300)[:4] + b"tail",
    "len64": frame(2, b"q" * 65536)[:14] + b"partial",
    "mqtt-connect": frame(2, bytes.fromhex("101000044d5154540402003c0004746573") ),
    "bad-unmasked": frame(1, b"hi", masked=False),
    "bad-rsv": frame(1, b"hi", rsv=0x40),
    "bad-opcode": frame(3, b"hi"),
    "bad-continuation": frame(0, b"hi"),
    "bad-nested": frame(1, b"a", fin=False) + frame(1, b"b"),
    "bad-control-long": frame(9, b"p" * 126),
    "bad-control-fragmented": frame(9, b"p", fin=False),
    "bad-close-1": frame(8, b"\x03"),
    "bad-close-code": frame(8, b"\x03\xed"),
    "bad-close-utf8": frame(8, b"\x03\xe8\xc3\x28"),
    "bad-len64-top": bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]) + b"\0\0\0\0",
}
for i, (name, stream) in enumerate(sorted(W.items())):
    write("websocket", name, bytes([0, 0]) + stream)
    write("websocket", name + "-chunks", bytes([0x80 | i, 0]) + stream)
write("websocket", "small-max-frame", bytes([0x81, 1]) + frame(2, b"w" * 1025))
write("websocket", "unmasked-allowed", bytes([0x82, 4]) + frame(1, b"hi", masked=False) + frame(8, b"\x03\xe8", masked=False))
# Round-trip scripts: text, binary with a long fragment, ping, pong, close.
write("websocket", "script-messages", bytes([0x83, 0]) + bytes([0, 2, 5, 0x45, 7, 1, 0, 0x81, 0x00, 2, 20, 3, 0, 4, 3, 10]))
write("websocket", "script-long", bytes([0x84, 0]) + bytes([1, 1, 0xC0, 0xFF, 0x10, 0x85, 0xFF, 0xFF, 4, 0]))

# rest: the body (its printable ASCII is also the query string).
R = {
    "signup": {"username": "bob", "password": "correct horse", "email": "bob@example.com"},
    "signup-null-email": {"username": "bob", "password": "pw", "email": None},
    "signup-no-password": {"username": "bob"},
    "signup-bad-type": {"username": 5, "password": []},
    "token": {"username": "alice", "password": "secret"},
    "patch-me": {"email": None, "password": "new", "notify": {"email": "off", "push": "all", "digest_minutes": 10}},
    "patch-bad-email": {"email": 3},
    "patch-bad-notify": {"notify": "all"},
    "patch-both-bad": {"password": 1, "email": 1},
    "room": {"name": "general", "title": "General chat"},
    "room-long-title": {"name": "r", "title": "t" * 201},
    "room-title-200": {"name": "r", "title": "\u00e9" * 100},
    "member": {"username": "carol"},
    "post": {"body": "hi @bob", "ckey": "c-1"},
    "post-ckey-64": {"body": "x", "ckey": "k" * 64},
    "post-ckey-65": {"body": "x", "ckey": "k" * 65},
    "post-ckey-empty": {"body": "x", "ckey": ""},
    "post-ckey-graphemes": {"body": "x", "ckey": "e\u0301" * 64},
    "post-no-body": {"ckey": "c"},
    "empty-object": {},
}
for name, value in sorted(R.items()):
    write("rest", name, json.dumps(value, ensure_ascii=False).encode())
write("rest", "bad-array", b'["username"]')
write("rest", "bad-trailing", b'{"username":"a","password":"b"} x')
write("rest", "bad-deep", b'{"a":' * 17 + b"1" + b"}" * 17)
write("rest", "deep-16", b'{"username":"u","password":"p","x":' + b"[" * 15 + b"]" * 15 + b"}")
write("rest", "duplicate-key", b'{"username":"a","username":"b"}')
write("rest", "escaped", b'{"body":"\\u00e9\\ud83d\\ude00\\n","ckey":"\\u0041"}')
for name, q in {
    "query": "before=10&after=2&limit=500",
    "query-limit-0": "limit=0",
    "query-limit-501": "limit=501",
    "query-plus": "limit=%2B5&before=+1",
    "query-negative": "after=-1",
    "query-max": "before=9223372036854775807&after=9223372036854775808",
    "query-bad-percent": "before=%4",
    "query-bad-utf8": "x=%FF",
    "query-empty-pairs": "&&limit=7&=&before",
}.items():
    write("rest", name, q.encode())
