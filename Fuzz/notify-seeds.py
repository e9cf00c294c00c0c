#!/usr/bin/env python3
"""Writes the seed corpora of the notification harnesses (corpus/smtp-reply,
corpus/http-response) in each harness's input layout. Run from Fuzz/: python3 notify-seeds.py"""
import os

def write(harness, name, data):
    os.makedirs(f"corpus/{harness}", exist_ok=True)
    with open(f"corpus/{harness}/{name}", "wb") as f:
        f.write(data)

# smtp-reply: byte 0 chunk seed, byte 1 limits (bits 0-1 line bytes 2000/64/16/8,
# bits 2-3 lines 100/4/2/1), then the stream.
S = {
    "greeting": b"220 mx.example.net ESMTP Postfix\r\n",
    "greeting-multi": b"220-mx.example.net ESMTP\r\n220-no UCE\r\n220 ready\r\n",
    "ehlo": b"250-mx.example.net Hello [127.0.0.1]\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-ETRN\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n",
    "starttls": b"220 2.0.0 Ready to start TLS\r\n",
    "auth-login": b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n",
    "pipelined": b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
    "queued": b"250 2.0.0 Ok: queued as 4F1A2C0D3\r\n221 2.0.0 Bye\r\n",
    "failures": b"421 4.3.2 Service not available\r\n451 4.7.1 Greylisted, try again\r\n452 4.2.2 Mailbox full\r\n535 5.7.8 Error: authentication failed\r\n554 5.7.1 Spam\r\n",
    "empty-text": b"250-\r\n250\r\n250 \r\n",
    "utf8": b"550 5.1.1 Gr\xc3\xbc\xc3\x9fe \xe2\x98\x83\r\n",
    "tab": b"250 a\tb\r\n",
    "bad-mismatch": b"250-one\r\n251 two\r\n",
    "bad-bare-lf": b"220 hi\n250 x\r\n",
    "bad-bare-cr": b"220 h\ri\r\n",
    "bad-code": b"120 x\r\n620 x\r\n260 x\r\n",
    "bad-separator": b"220x\r\n",
    "bad-short": b"22\r\n",
    "bad-control": b"250 a\x00b\r\n",
    "bad-utf8": b"250 \xc3\x28\r\n",
    "partial": b"250-first\r\n250 seco",
    # A whole conversation, as the server's side: STARTTLS, AUTH LOGIN, a pipelined batch.
    "conversation": b"220 mx ESMTP\r\n250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n220 go ahead\r\n250-mx\r\n250-PIPELINING\r\n250 AUTH LOGIN\r\n334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 ok\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no\r\n354 go\r\n250 2.0.0 queued\r\n221 bye\r\n",
    "conversation-plain": b"220 mx\r\n250-mx\r\n250 STARTTLS\r\n220 go\r\n250-mx\r\n250 AUTH PLAIN\r\n235 ok\r\n250 ok\r\n250 ok\r\n251 ok\r\n354 go\r\n451 4.7.1 later\r\n",
}
for i, (name, stream) in enumerate(sorted(S.items())):
    write("smtp-reply", name, bytes([0, 0]) + stream)
    write("smtp-reply", name + "-chunks", bytes([0x80 | i, 0]) + stream)
# The limits at their boundaries: lines of 16 bytes (byte 1 = 0x02), 2 lines (0x08).
write("smtp-reply", "limit-line-16", bytes([0x81, 0x02]) + b"250 0123456789\r\n")
write("smtp-reply", "limit-line-17", bytes([0x81, 0x02]) + b"250 0123456789a\r\n")
write("smtp-reply", "limit-lines-2", bytes([0x83, 0x08]) + b"250-a\r\n250 b\r\n")
write("smtp-reply", "limit-lines-3", bytes([0x83, 0x08]) + b"250-a\r\n250-b\r\n250 c\r\n")

# http-response: byte 0 chunk seed, byte 1 (bits 0-1 header bytes 16K/128/64/40,
# bits 2-3 header count 100/4/2/1, bits 4-5 body 1M/64/16/0, bit 6 HEAD, bit 7 no end).
H = {
    "length": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
    "created": b"HTTP/1.1 201 Created\r\nLocation: /v1/x\r\nContent-Length: 0\r\n\r\n",
    "no-content": b"HTTP/1.1 204 No Content\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;name=v\r\nwiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n",
    "close-delimited": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody until the end\r\n",
    "http10": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nokHTTP/1.0 404 Not Found\r\n\r\n",
    "interim": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
    "keep-alive": b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\nHTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    "retry-date": b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\n\r\n",
    "not-modified": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "no-reason": b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
    "latin1": b"HTTP/1.1 200 Caf\xe9\r\nX-A: na\xefve\r\nContent-Length: 0\r\n\r\n",
    "cl-twice-same": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "bad-fold": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\nContent-Length: 0\r\n\r\n",
    "bad-cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad-cl-differ": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "bad-cl-list": b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc",
    "bad-te-gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    "bad-switching": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    "bad-version": b"HTTP/2.0 200 OK\r\n\r\n",
    "bad-status": b"HTTP/1.1 600 Weird\r\n\r\n",
    "bad-bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    "bad-bare-cr": b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
    "bad-space-colon": b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
    "bad-chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "bad-chunk-end": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
    "bad-truncated": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
}
for i, (name, stream) in enumerate(sorted(H.items())):
    write("http-response", name, bytes([0, 0]) + stream)
    write("http-response", name + "-chunks", bytes([0x80 | i, 0]) + stream)
write("http-response", "head", bytes([0x81, 0x40]) + b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
write("http-response", "no-end", bytes([0x83, 0x80]) + b"HTTP/1.1 200 OK\r\n\r\nclose-delimited, no end yet")
# The limits at their boundaries: header bytes 40 (bits 0-1 = 3), 1 header (bits 2-3 = 3),
# body 16 (bits 4-5 = 2).
write("http-response", "limit-headers-40", bytes([0x85, 0x03]) + b"HTTP/1.1 200 OK\r\nContent-Length: 000\r\n\r\n")
write("http-response", "limit-headers-41", bytes([0x85, 0x03]) + b"HTTP/1.1 200 OK\r\nContent-Length: 0000\r\n\r\n")
write("http-response", "limit-count", bytes([0x87, 0x0C]) + b"HTTP/1.1 200 OK\r\nA: 1\r\nContent-Length: 0\r\n\r\n")
write("http-response", "limit-body-16", bytes([0x89, 0x20]) + b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n" + b"x" * 16)
write("http-response", "limit-body-17", bytes([0x89, 0x20]) + b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n" + b"x" * 17)
write("http-response", "limit-chunked-17", bytes([0x8B, 0x20]) + b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + b"x" * 16 + b"\r\n1\r\nx\r\n0\r\n\r\n")
write("http-response", "limit-close-17", bytes([0x8D, 0x20]) + b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 17)
