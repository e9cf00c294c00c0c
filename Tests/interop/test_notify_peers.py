"""The notification tests' peers (notify_peers.py) checked on their own, with Python's
smtplib, http.client and http_ece, so that test_notify_delivery.py's findings are Parley's
and not the harness's: the PKI verifies (and the wrong-name certificate does not), the SMTP
server insists on STARTTLS and AUTH and answers as scripted, restarts on its port, has an
implicit-TLS variant; the HTTPS receiver follows its scripts and records; the webhook, Web
Push and VAPID verifiers accept what is right and refuse what is not."""

import email.utils
import http.client
import json
import smtplib
import socket
import ssl
import tempfile
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from notify_peers import (HOST, HTTPSReceiver, PushSubscription, SMTPPeer, TestPKI, make_vapid_header,
                          verify_vapid, verify_webhook, wait_for, webhook_signature)


@pytest.fixture(scope="module")
def pki():
    with tempfile.TemporaryDirectory(prefix="parley-notify-pki-") as d:
        yield TestPKI(d)


@pytest.fixture
def peers():
    made = []

    def track(p):
        made.append(p)
        return p

    yield track
    for p in made:
        p.stop()


def mail_bytes(msg_id="<t-1@notify.test>", to="bob@example.test", text="héllo ☕ wörld"):
    from email.message import EmailMessage
    m = EmailMessage()
    m["From"] = "parley@notify.test"
    m["To"] = to
    m["Subject"] = "1 new message in general"
    m["Date"] = email.utils.formatdate()
    m["Message-ID"] = msg_id
    m.set_content(f"general\n  alice: {text}\n", charset="utf-8", cte="quoted-printable")
    return m.as_bytes()


def submit(peer, data=None, starttls=True, login=True, password=SMTPPeer.PASSWORD, ctx=None):
    s = smtplib.SMTP(HOST, peer.port, timeout=5)
    try:
        s.ehlo("client.test")
        if starttls:
            s.starttls(context=ctx or peer.pki.client_context())
            s.ehlo("client.test")
        if login:
            s.login(SMTPPeer.USERNAME, password)
        return s.sendmail("parley@notify.test", ["bob@example.test"], data or mail_bytes())
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            pass


# --- PKI ---------------------------------------------------------------------------------

def tls_handshake(pki, wrong, server_hostname, ctx):
    """One TLS handshake against a server using the PKI's (right or wrong-name) certificate."""
    srv = socket.socket()
    srv.bind((HOST, 0))
    srv.listen()
    sctx = pki.server_context(wrong_name=wrong)

    def serve():
        c, _ = srv.accept()
        try:
            t = sctx.wrap_socket(c, server_side=True)
            t.recv(1)
            t.close()
        except (ssl.SSLError, OSError):
            c.close()
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    raw = socket.create_connection(srv.getsockname(), timeout=5)
    try:
        t = ctx.wrap_socket(raw, server_hostname=server_hostname)
        version = t.version()
        t.close()
        return version
    finally:
        raw.close()
        th.join(5)
        srv.close()


@pytest.mark.parametrize("name", ["localhost", HOST])
def test_pki_server_cert_verifies_for_localhost_and_ip(pki, name):
    assert tls_handshake(pki, False, name, pki.client_context()) in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("name", ["localhost", HOST])
def test_pki_wrong_name_cert_fails_the_host_check(pki, name):
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch|match"):
        tls_handshake(pki, True, name, pki.client_context())
    # It is the name, not the chain: without the host check the same certificate is fine.
    ctx = pki.client_context()
    ctx.check_hostname = False
    assert tls_handshake(pki, True, name, ctx)


def test_pki_untrusted_without_the_ca(pki):
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer|self.signed|unknown ca"):
        tls_handshake(pki, False, "localhost", ssl.create_default_context())


# --- SMTP --------------------------------------------------------------------------------

def test_smtp_starttls_auth_records_the_mail(pki, peers):
    p = peers(SMTPPeer(pki))
    assert submit(p) == {}
    m = wait_for(lambda: p.snapshot(), 5, "the mail")[0]
    assert m.mail_from == "parley@notify.test" and m.rcpt_tos == ["bob@example.test"]
    assert m.tls and m.login == SMTPPeer.USERNAME
    assert m.header("Message-ID") == "<t-1@notify.test>"
    assert m.header("Subject") == "1 new message in general"
    assert m.message["Content-Transfer-Encoding"] == "quoted-printable"
    assert "alice: héllo ☕ wörld" in m.body
    assert p.auths == [("PLAIN", SMTPPeer.USERNAME, True)]  # smtplib's first choice
    assert p.ehlos == [("client.test", False), ("client.test", True)]


def test_smtp_auth_plain_and_login_both_work(pki, peers):
    p = peers(SMTPPeer(pki))
    for mech in ("PLAIN", "LOGIN"):
        s = smtplib.SMTP(HOST, p.port, timeout=5)
        s.starttls(context=pki.client_context())
        s.ehlo()
        assert mech in s.esmtp_features.get("auth", "").split(), s.esmtp_features
        s.user, s.password = SMTPPeer.USERNAME, SMTPPeer.PASSWORD
        code, _ = s.auth(mech, getattr(s, f"auth_{mech.lower()}"), initial_response_ok=True)
        assert code == 235
        s.quit()
    assert [(m, ok) for m, _, ok in p.auths] == [("PLAIN", True), ("LOGIN", True)]


def test_smtp_requires_starttls_and_auth(pki, peers):
    p = peers(SMTPPeer(pki))
    s = smtplib.SMTP(HOST, p.port, timeout=5)
    s.ehlo()
    assert "starttls" in s.esmtp_features and "auth" not in s.esmtp_features, s.esmtp_features
    code, _ = s.mail("parley@notify.test")
    assert code == 530, code  # must issue STARTTLS first
    s.close()
    # TLS but no AUTH: MAIL refused.
    s = smtplib.SMTP(HOST, p.port, timeout=5)
    s.starttls(context=pki.client_context())
    s.ehlo()
    code, _ = s.mail("parley@notify.test")
    assert code == 530, code
    s.close()
    # Wrong password: 535.
    with pytest.raises(smtplib.SMTPAuthenticationError):
        submit(p, password="wrong-password")
    assert p.snapshot() == [] and p.all_transactions() == []


def test_smtp_scripted_451_then_accept_and_550(pki, peers):
    p = peers(SMTPPeer(pki))
    p.reply_next([451, 451])
    for _ in range(2):
        with pytest.raises(smtplib.SMTPDataError) as e:
            submit(p)
        assert e.value.smtp_code == 451
    assert submit(p) == {}
    assert [m.code for m in p.all_transactions()] == [451, 451, 250]
    assert len(p.snapshot()) == 1
    p.reject_all(550)
    for _ in range(2):
        with pytest.raises(smtplib.SMTPDataError) as e:
            submit(p)
        assert e.value.smtp_code == 550
    assert len(p.snapshot()) == 1 and [m.code for m in p.all_transactions()][-2:] == [550, 550]


def test_smtp_down_then_started_and_restarted_on_the_same_port(pki, peers):
    p = peers(SMTPPeer(pki, start=False))
    with pytest.raises(ConnectionRefusedError):
        submit(p)
    p.start()
    submit(p)
    port = p.port
    p.stop()
    with pytest.raises(ConnectionRefusedError):
        submit(p)
    p.start()
    assert p.port == port
    submit(p)
    assert len(p.snapshot()) == 2


def test_smtp_implicit_tls_variant(pki, peers):
    p = peers(SMTPPeer(pki, tls="implicit"))
    s = smtplib.SMTP_SSL(HOST, p.port, timeout=5, context=pki.client_context())
    s.login(SMTPPeer.USERNAME, SMTPPeer.PASSWORD)
    s.sendmail("parley@notify.test", ["bob@example.test"], mail_bytes())
    s.quit()
    m = wait_for(lambda: p.snapshot(), 5, "the mail")[0]
    assert m.tls and m.login == SMTPPeer.USERNAME
    # A plaintext client gets no SMTP greeting.
    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError, OSError)):
        smtplib.SMTP(HOST, p.port, timeout=2)


def test_smtp_wrong_name_cert_is_refused_by_a_verifying_client(pki, peers):
    p = peers(SMTPPeer(pki, wrong_cert=True))
    with pytest.raises(ssl.SSLCertVerificationError):
        submit(p)
    assert p.auths == [] and p.all_transactions() == []
    # The certificate itself is good for its own name.
    ctx = pki.client_context()
    ctx.check_hostname = False
    submit(p, ctx=ctx)
    assert len(p.snapshot()) == 1


# --- HTTPS receiver -----------------------------------------------------------------------

def https(recv, method, path, body=b"", headers=None):
    c = http.client.HTTPSConnection(HOST, recv.port, timeout=5, context=recv.pki.client_context())
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    r.read()
    c.close()
    return r


def test_receiver_scripts_and_records(pki, peers):
    r = peers(HTTPSReceiver(pki))
    r.script("/hook/a", [500, 500, 200])
    r.default("/gone", 410)
    r.script("/busy", [(503, {"Retry-After": "7"})])
    assert [https(r, "POST", "/hook/a", b'{"n":%d}' % i).status for i in range(4)] == [500, 500, 200, 200]
    assert [https(r, "POST", "/gone").status for _ in range(2)] == [410, 410]
    busy = https(r, "POST", "/busy", b"x", {"X-Test": "1"})
    assert busy.status == 503 and busy.getheader("Retry-After") == "7"
    assert https(r, "POST", "/busy").status == 200
    hooks = r.to("/hook/a")
    assert [h.json for h in hooks] == [{"n": i} for i in range(4)]
    assert [h.status for h in hooks] == [500, 500, 200, 200]
    assert all(h.method == "POST" for h in hooks)
    assert r.to("/busy")[0].header("x-test") == "1" and r.to("/busy")[0].body == b"x"
    assert hooks[0].at <= hooks[-1].at <= time.time()


def test_receiver_keep_alive_and_chunked(pki, peers):
    r = peers(HTTPSReceiver(pki))
    c = http.client.HTTPSConnection(HOST, r.port, timeout=5, context=pki.client_context())
    for i in range(3):
        c.request("POST", "/k", body=iter([b"ab", b"cd"]), encode_chunked=True,
                  headers={"Transfer-Encoding": "chunked"})
        resp = c.getresponse()
        resp.read()
        assert resp.status == 200
    c.close()
    assert [q.body for q in r.to("/k")] == [b"abcd"] * 3


def test_receiver_records_refused_handshakes(pki, peers):
    r = peers(HTTPSReceiver(pki, wrong_cert=True))
    with pytest.raises(ssl.SSLCertVerificationError):
        https(r, "POST", "/x")
    wait_for(lambda: r.tls_failures, 5, "the refused handshake")
    assert r.all() == []


# --- verifiers ----------------------------------------------------------------------------

def test_webhook_verifier(pki, peers):
    r = peers(HTTPSReceiver(pki))
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks example secret
    body = b'{"type":"message.unseen"}'
    ts = str(int(time.time()))
    sig = webhook_signature(secret, "ntf_1", ts, body)
    https(r, "POST", "/h", body, {"webhook-id": "ntf_1", "webhook-timestamp": ts,
                                  "webhook-signature": f"v1,bm9wZQ== {sig}"})
    assert verify_webhook(r.to("/h")[0], secret) == {"type": "message.unseen"}
    # The spec's published example.
    assert webhook_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                             b'{"test": 2432232314}') == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    for hdrs in ({"webhook-id": "ntf_2", "webhook-timestamp": ts, "webhook-signature": sig},   # other id
                 {"webhook-id": "ntf_1", "webhook-timestamp": str(int(ts) - 1000),
                  "webhook-signature": webhook_signature(secret, "ntf_1", int(ts) - 1000, body)},  # stale
                 {"webhook-id": "ntf_1", "webhook-timestamp": ts}):                        # unsigned
        https(r, "POST", "/bad", body, hdrs)
    for req in r.to("/bad"):
        with pytest.raises(AssertionError):
            verify_webhook(req, secret)


def test_webpush_decrypt_and_vapid_verifier(pki, peers):
    r = peers(HTTPSReceiver(pki))
    sub = PushSubscription()
    assert len(sub.public_bytes) == 65 and len(sub.auth) == 16
    payload = json.dumps({"title": "alice in general", "body": "héllo"}).encode()
    body = sub.encrypt_as_server(payload)
    server_key = ec.generate_private_key(ec.SECP256R1())
    endpoint = r.url("/push/bob")
    auth, k = make_vapid_header(server_key, r.origin, sub="mailto:ops@parley.test")
    https(r, "POST", "/push/bob", body, {"Authorization": auth, "Content-Encoding": "aes128gcm"})
    req = r.to("/push/bob")[0]
    assert json.loads(sub.decrypt(req.body)) == {"title": "alice in general", "body": "héllo"}
    claims = verify_vapid(req, k, endpoint, subject="mailto:ops@parley.test")
    assert claims["aud"] == r.origin
    # Another subscription cannot read it; wrong aud, key, subject or expiry are refused.
    with pytest.raises(Exception):
        PushSubscription().decrypt(req.body)
    with pytest.raises(AssertionError):
        verify_vapid(req, k, "https://other.example/push")
    other_key = make_vapid_header(ec.generate_private_key(ec.SECP256R1()), r.origin)[1]
    with pytest.raises(AssertionError):
        verify_vapid(req, other_key, endpoint)
    with pytest.raises(AssertionError):
        verify_vapid(req, k, endpoint, subject="mailto:someone@else.test")
    late, _ = make_vapid_header(server_key, r.origin, exp=int(time.time()) + 25 * 3600)
    https(r, "POST", "/push/late", body, {"Authorization": late})
    with pytest.raises(AssertionError):
        verify_vapid(r.to("/push/late")[0], k, r.url("/push/late"))
    # A forged signature (claims changed after signing).
    t = auth.split("t=")[1].split(",")[0]
    head, claims_b64, sig = t.split(".")
    import base64
    forged_claims = base64.urlsafe_b64encode(json.dumps({"aud": r.origin, "exp": int(time.time()) + 3600,
                                                         "sub": "mailto:x@y.z"}).encode()).rstrip(b"=").decode()
    https(r, "POST", "/push/forged", body, {"Authorization": f"vapid t={head}.{forged_claims}.{sig}, k={k}"})
    from cryptography.exceptions import InvalidSignature
    with pytest.raises(InvalidSignature):
        verify_vapid(r.to("/push/forged")[0], k, r.url("/push/forged"))
