"""Peers for the notification bridge's end-to-end tests (SPEC 5, /work/notify-contract.md).

Everything listens on 127.0.0.1 on a free port, runs on threads of its own, is stopped by
the test (`stop()`), and records what it saw in plain lists the test thread reads (under a
lock; `wait_for(...)` polls them with a deadline).

- `TestPKI(dir)`: a CA (`ca_file`, the PEM to give Parley as `notify_ca_file`), a server
  certificate for `localhost` + IP 127.0.0.1 (`server_cert`, `server_key`) and one for
  `wrong.example` (`wrong_cert`, `wrong_key`), both signed by the CA; made with
  `cryptography` at run time into a temporary directory.
- `SMTPPeer(pki, tls="starttls"|"implicit")`: an aiosmtpd submission server. STARTTLS is
  required before anything else (`require_starttls`), AUTH PLAIN / LOGIN is required with
  `SMTPPeer.USERNAME` / `SMTPPeer.PASSWORD`. `messages` are the accepted mails
  (`Mail`: envelope, parsed `email.message.EmailMessage`, decoded body, whether it came over
  TLS and with which login); `transactions` are every DATA seen, with the code answered.
  `reply_next([451, 451])` answers the next DATA commands with those codes,
  `reject_all(550)` answers every DATA with that code; `stop()` / `start()` restart it on the
  same port; `SMTPPeer(..., port=free_port(), start=False)` is a server that is down.
- `HTTPSReceiver(pki)`: a threaded HTTPS server (HTTP/1.1, keep-alive) with per-path
  behaviour: `script(path, [500, 500, 200])` answers the next requests to `path` in that
  order, then the path's default (`default(path, 503)`, else 200); an entry may be
  `(status, {"Retry-After": "3"})`. `requests` records every request (`Request`: method,
  path, headers, body, arrival time, status answered); `tls_failures` every handshake that
  did not complete (e.g. the client refused the certificate).
- Verifiers: `verify_webhook(req, secret)` (Standard Webhooks), `PushSubscription` (a
  browser-side Web Push key pair and auth secret; `decrypt(body)` with http_ece) and
  `verify_vapid(req, public_key, endpoint, subject=None)` (RFC 8292 header and ES256 JWT).
"""

import asyncio
import base64
import datetime
import email
import email.policy
import hashlib
import hmac
import http.server
import ipaddress
import json
import os
import re
import socket
import socketserver
import ssl
import threading
import time
import warnings
from dataclasses import dataclass, field

import http_ece
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"



def free_port():
    """A port nothing listens on right now (for a peer started later on it)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(cond, timeout, what, step=0.02, detail=None):
    """Polls `cond()` until it returns something true, which is returned; AssertionError
    naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            extra = ("\n" + detail()) if detail else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(step)


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- PKI -------------------------------------------------------------------------------------

class TestPKI:
    """A CA and two server certificates it signed, as PEM files in `folder`."""
    __test__ = False  # not a pytest class

    def __init__(self, folder):
        self.folder = folder
        now = datetime.datetime.now(datetime.timezone.utc)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Parley notify test CA")])
        ski = x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key())
        self.ca_cert = (x509.CertificateBuilder()
                        .subject_name(ca_name).issuer_name(ca_name)
                        .public_key(self.ca_key.public_key())
                        .serial_number(x509.random_serial_number())
                        .not_valid_before(now - datetime.timedelta(hours=1))
                        .not_valid_after(now + datetime.timedelta(days=2))
                        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                     content_commitment=False, key_encipherment=False,
                                                     data_encipherment=False, key_agreement=False,
                                                     encipher_only=False, decipher_only=False), critical=True)
                        .add_extension(ski, critical=False)
                        .sign(self.ca_key, hashes.SHA256()))
        self.ca_file = self._write("ca.pem", self.ca_cert.public_bytes(serialization.Encoding.PEM))
        self.server_cert, self.server_key = self._leaf(
            "server", "localhost", [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))], now)
        self.wrong_cert, self.wrong_key = self._leaf("wrong", "wrong.example", [x509.DNSName("wrong.example")], now)

    def _write(self, name, data):
        path = os.path.join(self.folder, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def _leaf(self, stem, cn, sans, now):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                .issuer_name(self.ca_cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                               critical=False)
                .sign(self.ca_key, hashes.SHA256()))
        cert_file = self._write(f"{stem}.pem", cert.public_bytes(serialization.Encoding.PEM))
        key_file = self._write(f"{stem}.key", key.private_bytes(serialization.Encoding.PEM,
                                                                 serialization.PrivateFormat.PKCS8,
                                                                 serialization.NoEncryption()))
        return cert_file, key_file

    def server_context(self, wrong_name=False):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if wrong_name:
            ctx.load_cert_chain(self.wrong_cert, self.wrong_key)
        else:
            ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx

    def client_context(self):
        """What a correct client does: trusts this CA, checks the host name."""
        return ssl.create_default_context(cafile=self.ca_file)


# --- SMTP ------------------------------------------------------------------------------------

@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list
    raw: bytes
    message: email.message.EmailMessage
    body: str          # the text/plain body, transfer-decoded and charset-decoded
    tls: bool          # the transaction ran inside TLS
    login: str         # the AUTH user name ('' when none)
    at: float          # time.time() when DATA ended
    code: int = 250    # what the server answered

    def header(self, name):
        v = self.message[name]
        return None if v is None else str(v)


class _SMTPHandler:
    def __init__(self, peer):
        self.peer = peer

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        with self.peer._lock:
            self.peer.ehlos.append((hostname, _is_tls(server)))
        return responses

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        try:
            part = msg.get_body(("plain",)) or msg
            body = part.get_content()
        except Exception as e:  # recorded, the test then fails on the body
            body = f"<undecodable body: {e!r}>"
        auth = session.auth_data
        login = auth.login.decode(errors="replace") if isinstance(auth, LoginPassword) else ""
        with self.peer._lock:
            if self.peer._next_codes:
                code = self.peer._next_codes.pop(0)
            else:
                code = self.peer._always or 250
            m = Mail(envelope.mail_from, list(envelope.rcpt_tos), raw, msg, body, _is_tls(server), login,
                     time.time(), code)
            self.peer.transactions.append(m)
            if code == 250:
                self.peer.messages.append(m)
        texts = {250: "250 2.0.0 OK queued", 421: "421 4.3.2 Service shutting down",
                 451: "451 4.3.0 Temporary failure, try again later",
                 550: "550 5.1.1 Mailbox unavailable: no such user"}
        return texts.get(code, f"{code} scripted answer")


def _is_tls(server):
    t = server.transport
    return t is not None and t.get_extra_info("ssl_object") is not None


class _Controller(Controller):
    def factory(self):
        # The implicit-TLS server turns auth_require_tls off (see SMTPPeer.start), which
        # aiosmtpd warns about on every connection.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
            return super().factory()


class SMTPPeer:
    USERNAME = "parley-notify"
    PASSWORD = "s3cret-Subm1ssion"

    def __init__(self, pki, tls="starttls", port=None, wrong_cert=False, start=True):
        assert tls in ("starttls", "implicit")
        self.pki = pki
        self.tls = tls
        self.wrong_cert = wrong_cert
        self.port = port or free_port()
        self._lock = threading.Lock()
        self.messages = []       # accepted (250) mails
        self.transactions = []   # every DATA, whatever was answered
        self.auths = []          # (mechanism, login, accepted)
        self.ehlos = []          # (name the client gave, inside TLS)
        self._next_codes = []
        self._always = None
        self._controller = None
        if start:
            self.start()

    # -- behaviour --
    def reply_next(self, codes):
        """Answer the next len(codes) DATA commands with these codes (then 250 again)."""
        with self._lock:
            self._next_codes = list(codes)

    def reject_all(self, code):
        """Answer every DATA with `code` (None: accept again)."""
        with self._lock:
            self._always = code

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == self.USERNAME.encode()
              and auth_data.password == self.PASSWORD.encode())
        login = auth_data.login.decode(errors="replace") if isinstance(auth_data, LoginPassword) else repr(auth_data)
        with self._lock:
            self.auths.append((mechanism, login, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    # -- life --
    def start(self):
        assert self._controller is None, "already running"
        ctx = self.pki.server_context(wrong_name=self.wrong_cert)
        kw = dict(hostname=HOST, port=self.port, authenticator=self._authenticate, auth_required=True,
                  server_hostname="smtp.notify.test", ready_timeout=5.0)
        if self.tls == "starttls":
            kw.update(tls_context=ctx, require_starttls=True, auth_require_tls=True)
        else:
            # The whole connection is TLS; aiosmtpd only counts STARTTLS as "TLS" for
            # auth_require_tls, so the check is off here (a plaintext client cannot even
            # reach the greeting).
            kw.update(ssl_context=ctx, auth_require_tls=False)
        last = None
        for _ in range(50):  # a port just freed by stop() may linger a moment
            c = _Controller(_SMTPHandler(self), **kw)
            try:
                c.start()
                self._controller = c
                return self
            except Exception as e:  # noqa: BLE001 - retried, then raised
                last = e
                time.sleep(0.1)
        raise RuntimeError(f"SMTP peer could not listen on {HOST}:{self.port}: {last!r}")

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self):
        return self._controller is not None

    def snapshot(self):
        with self._lock:
            return list(self.messages)

    def all_transactions(self):
        with self._lock:
            return list(self.transactions)

    def mails_to(self, address):
        return [m for m in self.snapshot() if address in m.rcpt_tos]

    def summary(self):
        with self._lock:
            return (f"SMTP peer {HOST}:{self.port} tls={self.tls} running={self.running}: "
                    f"ehlos={self.ehlos} auths={self.auths} transactions="
                    f"{[(m.code, m.rcpt_tos, m.header('Message-ID')) for m in self.transactions]}")


# --- HTTPS -----------------------------------------------------------------------------------

@dataclass
class Request:
    method: str
    path: str
    headers: object      # http.client.HTTPMessage: case-insensitive get()
    body: bytes
    at: float            # time.time() on arrival (after the body was read)
    status: int = 0      # what was answered

    def header(self, name):
        return self.headers.get(name)

    @property
    def json(self):
        return json.loads(self.body)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "notify-peer/1"

    def log_message(self, format, *args):  # quiet
        pass

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _serve(self):
        body = self._read_body()
        recv = self.server.receiver
        path = self.path.split("?", 1)[0]
        req = Request(self.command, self.path, self.headers, body, time.time())
        status, headers = recv._answer_for(path)
        req.status = status
        with recv._lock:
            recv.requests.append(req)
        payload = json.dumps({"status": status}).encode() if status not in (204, 304) else b""
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve


class _TLSServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def process_request_thread(self, request, client_address):
        # The handshake runs here, on the connection's thread, so that a client that
        # stalls or aborts it never blocks the accept loop.
        try:
            request.settimeout(15)
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            with self.receiver._lock:
                self.receiver.tls_failures.append((time.time(), repr(e)))
            self.shutdown_request(request)
            return
        super().process_request_thread(tls, client_address)

    def handle_error(self, request, client_address):
        pass  # a client closing mid-request is not the test's business


class HTTPSReceiver:
    def __init__(self, pki, wrong_cert=False, port=0):
        self.pki = pki
        self._lock = threading.Lock()
        self.requests = []
        self.tls_failures = []
        self._scripts = {}
        self._defaults = {}
        self._server = _TLSServer((HOST, port), _Handler)
        self._server.receiver = self
        self._server.ssl_context = pki.server_context(wrong_name=wrong_cert)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def origin(self):
        return f"https://{HOST}:{self.port}"

    def url(self, path):
        return self.origin + path

    def script(self, path, answers):
        """The next requests to `path` get these answers (status or (status, headers)), in order."""
        with self._lock:
            self._scripts[path] = [a if isinstance(a, tuple) else (a, {}) for a in answers]

    def default(self, path, answer):
        """What `path` answers once its script is used up (default 200)."""
        with self._lock:
            self._defaults[path] = answer if isinstance(answer, tuple) else (answer, {})

    def _answer_for(self, path):
        with self._lock:
            script = self._scripts.get(path)
            if script:
                return script.pop(0)
            return self._defaults.get(path, (200, {}))

    def to(self, path):
        with self._lock:
            return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    def all(self):
        with self._lock:
            return list(self.requests)

    def summary(self):
        with self._lock:
            return (f"HTTPS receiver {self.origin}: requests="
                    f"{[(r.method, r.path, r.status, r.header('webhook-id') or r.header('X-Parley-Id')) for r in self.requests]}"
                    f" tls_failures={self.tls_failures}")

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# --- verifiers -------------------------------------------------------------------------------

def webhook_signature(secret, msg_id, timestamp, body):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def verify_webhook(req, secret, tolerance=300):
    """Checks a Standard Webhooks request: the three headers, a timestamp within `tolerance`
    seconds of its arrival, and one `v1,` signature (of possibly several, space-separated)
    equal to HMAC-SHA256 over `id.timestamp.body`. Returns the JSON body."""
    msg_id, ts, sigs = req.header("webhook-id"), req.header("webhook-timestamp"), req.header("webhook-signature")
    assert msg_id and ts and sigs, f"Standard Webhooks headers missing: {dict(req.headers)}"
    assert re.fullmatch(r"\d+", ts), f"webhook-timestamp {ts!r} is not unix seconds"
    assert abs(int(ts) - req.at) <= tolerance, f"webhook-timestamp {ts} is {int(ts) - req.at:+.0f}s off"
    expected = webhook_signature(secret, msg_id, ts, req.body)
    given = sigs.split()
    assert expected in given, f"no valid signature: got {given}, expected {expected} (id={msg_id} ts={ts})"
    return json.loads(req.body)


class PushSubscription:
    """What a browser makes for Web Push: a P-256 key pair and a 16-byte auth secret."""

    def __init__(self):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.public_bytes = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        self.auth = os.urandom(16)

    def keys(self):
        return {"p256dh": b64url_encode(self.public_bytes), "auth": b64url_encode(self.auth)}

    def decrypt(self, body):
        return http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth, version="aes128gcm")

    def encrypt_as_server(self, plaintext):
        """An RFC 8291 body for this subscription, as an application server makes it."""
        sender = ec.generate_private_key(ec.SECP256R1())
        return http_ece.encrypt(plaintext, private_key=sender, dh=self.public_bytes, auth_secret=self.auth,
                                version="aes128gcm")


def parse_vapid(header):
    """`vapid t=<jwt>, k=<key>` -> {"t": ..., "k": ...}."""
    assert header, "no Authorization header"
    scheme, _, rest = header.partition(" ")
    assert scheme.lower() == "vapid", f"Authorization scheme {scheme!r}, expected vapid"
    params = {}
    for part in rest.split(","):
        k, sep, v = part.strip().partition("=")
        assert sep, f"bad vapid parameter {part!r} in {header!r}"
        params[k.strip()] = v.strip()
    assert set(params) >= {"t", "k"}, f"vapid header without t or k: {header!r}"
    return params


def endpoint_origin(endpoint):
    m = re.match(r"^(https?)://([^/?#]+)", endpoint)
    scheme, authority = m.group(1).lower(), m.group(2).lower()
    if (scheme, authority.rsplit(":", 1)[-1]) in (("https", "443"), ("http", "80")):
        authority = authority.rsplit(":", 1)[0]
    return f"{scheme}://{authority}"


def verify_vapid(req, public_key, endpoint, subject=None, now=None):
    """RFC 8292: `k` is the server's VAPID key (base64url of the uncompressed point, as
    `GET /v1/push/vapid` gives it), `t` an ES256 JWT signed with it whose `aud` is the
    endpoint's origin, `exp` in the future and at most 24 h away, `sub` a mailto:/https:
    contact (equal to `subject` when given). Returns the claims."""
    params = parse_vapid(req.header("Authorization"))
    assert params["k"] == public_key, f"k={params['k']!r}, the server's key is {public_key!r}"
    parts = params["t"].split(".")
    assert len(parts) == 3, f"not a JWT: {params['t']!r}"
    header, claims = json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1]))
    assert header.get("alg") == "ES256", header
    assert header.get("typ", "JWT").upper() == "JWT", header
    sig = b64url_decode(parts[2])
    assert len(sig) == 64, f"ES256 signature of {len(sig)} bytes (want r||s, 64)"
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(public_key))
    key.verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if wrong
    assert claims.get("aud") == endpoint_origin(endpoint), f"aud {claims.get('aud')!r}, endpoint {endpoint!r}"
    now = req.at if now is None else now
    exp = claims.get("exp")
    assert isinstance(exp, int) and now < exp <= now + 24 * 3600 + 5, f"exp {exp} (now {now:.0f})"
    sub = claims.get("sub")
    assert isinstance(sub, str) and re.match(r"^(mailto:.+|https://.+)$", sub), f"sub {sub!r}"
    if subject is not None:
        assert sub == subject, f"sub {sub!r}, configured {subject!r}"
    return claims


def make_vapid_header(private_key, aud, sub="mailto:test@example.test", exp=None):
    """A VAPID header as an application server would send it (for the harness's own tests)."""
    def enc(obj):
        return b64url_encode(json.dumps(obj, separators=(",", ":")).encode())
    head = enc({"typ": "JWT", "alg": "ES256"})
    body = enc({"aud": aud, "exp": exp or int(time.time()) + 12 * 3600, "sub": sub})
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    r, s = decode_dss_signature(private_key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256())))
    sig = b64url_encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    k = b64url_encode(private_key.public_key().public_bytes(serialization.Encoding.X962,
                                                            serialization.PublicFormat.UncompressedPoint))
    return f"vapid t={head}.{body}.{sig}, k={k}", k
