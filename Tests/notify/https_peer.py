#!/usr/bin/env python3
"""HTTPS (and loopback HTTP) receivers for Tests/NotifyTests/TransportHTTPSTests.swift.

Usage: https_peer.py CERT_DIR

Listens on free ports of 127.0.0.1 and prints them as one JSON line on stdout:
  https  TLS with the certificate for localhost / 127.0.0.1 / ::1
  http   the same handler in the clear
  wrong  TLS with a certificate for wrong.example only
Answers by path:
  /echo        200, JSON of the request (method, path, headers, body)
  /empty       204
  /gone        410
  /busy        503 with Retry-After: 7
  /moved       302 to /echo (not to be followed)
  /chunked     200, a chunked body ("hello, chunked world")
  /early       103 Early Hints, then 200 "after hints"
  /until-close 200 without Content-Length, the body ends with the connection
  /hangup      closes the connection without answering or reading the body
  /big         200 with a 2 MiB body (over the client's limit)
  /slow        waits 3 s, then 200
It exits when its stdin closes (the test ended) or after 300 s.
"""
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def route(self):
        if self.path == "/hangup":
            # Without reading the request body: a client still writing it gets a reset.
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        if path == "/echo":
            seen = {"method": self.command, "path": self.path, "headers": [[k, v] for k, v in self.headers.items()],
                    "body": body.decode("utf-8", "replace")}
            self.answer(200, json.dumps(seen).encode(), [("Content-Type", "application/json")])
        elif path == "/empty":
            self.answer(204)
        elif path == "/gone":
            self.answer(410, b"gone")
        elif path == "/busy":
            self.answer(503, b"busy", [("Retry-After", "7")])
        elif path == "/moved":
            self.answer(302, b"", [("Location", "/echo")])
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello, ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/early":
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            self.answer(200, b"after hints")
        elif path == "/until-close":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe body runs to the close")
            self.close_connection = True
        elif path == "/big":
            self.answer(200, b"x" * (2 * 1024 * 1024))
        elif path == "/slow":
            time.sleep(3)
            self.answer(200, b"late")
        else:
            self.answer(404, b"no such path")


def server(cert_dir, cert):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    if cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(os.path.join(cert_dir, cert + ".pem"), os.path.join(cert_dir, cert + ".key"))
        # The handshake runs in the request's thread, not in the accepting one.
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd.server_address[1]


def main(cert_dir):
    ports = {"https": server(cert_dir, "server"), "http": server(cert_dir, None), "wrong": server(cert_dir, "wrong")}
    print(json.dumps(ports), flush=True)
    threading.Timer(300, lambda: os._exit(0)).start()
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1])
