"""The notification bridge end to end (SPEC 5, /work/notify-contract.md, issue 13): the real
binary (`--plugins chat,gateway,notify`, MQTT and HTTP on 127.0.0.1:0) delivering to real
peers from notify_peers.py: an aiosmtpd submission server (STARTTLS + AUTH, or implicit
TLS) and an HTTPS receiver standing for webhook, ntfy and Web Push services, both with
certificates of a test CA given to Parley as `notify_ca_file`.

Users are made over REST with an e-mail address, preferences set with
`PATCH /v1/me {"notify": ...}`, devices registered with `POST /v1/devices`; rooms and posts
over REST, online members over MQTT (paho). Settings that make it quick:
`notify_grace = 1s`, `notify_retry_base = 1s`. What Parley sent is checked as its receivers
check it: Standard Webhooks signatures, RFC 8291 decryption (http_ece), the VAPID JWT against
`GET /v1/push/vapid`, the mail's headers and decoded UTF-8 body; the outbox through
`parley outbox list`, `GET /metrics` and the SQLite file.

Waits are polls with deadlines; the sleeps that remain are windows in which something must
not happen (`expect_nothing_more`). The digest cases wait for a one-minute window
(`digest_minutes` counts minutes); they share one broker. ~3 minutes in all.
"""

import base64
import faulthandler
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from email.utils import parsedate_to_datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import BIN, Broker, _check_alive
from notify_peers import (HTTPSReceiver, PushSubscription, SMTPPeer, TestPKI, verify_vapid, verify_webhook,
                          wait_for)
from pahoclient import PahoClient
from test_gateway_rest import BASE_CONFIG, HTTP_RE, Gateway, expect, pw

SMTP_FROM = "parley@notify.test"
VAPID_SUBJECT = "mailto:ops@parley.test"
GRACE = 1.0            # notify_grace
RETRY_BASE = 1.0       # notify_retry_base
MSGID_RE = re.compile(r"^<parley-notify-(\d+)@notify\.test>$")
NTF_RE = re.compile(r"^ntf_(\d+)$")
RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
CERT_ERROR_RE = re.compile(r"certificate|verif|host ?name|mismatch", re.I)
DELIVERY = 20.0        # seconds allowed for a delivery that is due now (or after a short retry)


def email_of(name):
    return f"{name}@example.test"


def new_secret():
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(scope="module")
def pki():
    with tempfile.TemporaryDirectory(prefix="parley-notify-e2e-pki-") as d:
        yield TestPKI(d)


class NotifyEnv:
    """One broker with the three plugins, its peers and REST users. Peers are made first
    (their ports go into the config), then `start()`."""

    def __init__(self, pki):
        self.pki = pki
        self.peers = []
        self.gw = None
        self.smtp_peer = None
        self.users = {}

    # -- peers --
    def smtp(self, **kw):
        p = SMTPPeer(self.pki, **kw)
        self.peers.append(p)
        self.smtp_peer = p
        return p

    def receiver(self, **kw):
        r = HTTPSReceiver(self.pki, **kw)
        self.peers.append(r)
        return r

    # -- broker --
    def config(self, smtp_tls="starttls", max_attempts=6, extra=""):
        lines = [BASE_CONFIG.strip(),
                 f"notify_ca_file = {self.pki.ca_file}",
                 f"notify_grace = {int(GRACE)}s",
                 f"notify_retry_base = {int(RETRY_BASE)}s",
                 f"notify_max_attempts = {max_attempts}",
                 f"notify_vapid_subject = {VAPID_SUBJECT}"]
        if self.smtp_peer is not None:
            lines += [f"smtp_server = 127.0.0.1:{self.smtp_peer.port}",
                      f"smtp_tls = {smtp_tls}",
                      f"smtp_username = {SMTPPeer.USERNAME}",
                      f"smtp_password = {SMTPPeer.PASSWORD}",
                      f"smtp_from = {SMTP_FROM}"]
        return "\n".join(lines) + "\n" + extra

    def start(self, request=None, **kw):
        b = Broker(config_text=self.config(**kw), name="notify",
                   extra_args=["--plugins", "chat,gateway,notify", "--http", "127.0.0.1:0"])
        if request is not None:
            request.node.parley_brokers = [b]
        b.start()
        self.gw = Gateway(b).find_port()
        return self

    def restart_after_kill(self):
        """Starts the broker again on the same data directory (after `kill()`)."""
        b = self.gw.broker
        b._reader.join(timeout=2)
        mark = len(b.log())
        b.port = None
        b.start()
        line = b.wait_log(r"event=listener\.open .*protocol=http\b", after=mark, timeout=10)
        self.gw.http_port = int(HTTP_RE.search(line).group(1))
        for c in self.gw.clients:
            c.close()
            c.port = self.gw.http_port
            c.conn = type(c.conn)("127.0.0.1", self.gw.http_port, timeout=10)

    @property
    def data(self):
        return os.path.join(self.gw.broker.tmp, "data")

    def close(self):
        problems = []
        if self.gw is not None:
            p = _check_alive(self.gw.broker)
            if p:
                problems.append(p)
            self.gw.close()
            self.gw.broker.stop()
        for p in self.peers:
            try:
                p.stop()
            except Exception:  # noqa: BLE001 - a peer already stopped
                pass
        return problems

    # -- REST --
    def user(self, name, notify=None, email=True):
        """Signs `name` up (with an e-mail address), logs in, sets `notify`; an Http client."""
        c = self.gw.user(name, email=email_of(name) if email else None)
        c.name = name
        if notify is not None:
            me = expect(c.patch("/v1/me", {"notify": notify}), 200).json
            assert me["notify"] == notify, me
        self.users[name] = c
        return c

    def room(self, owner, name, members):
        self.gw.room(owner, name, members=members)

    def post(self, client, room, body):
        r = expect(client.post(f"/v1/rooms/{room}/messages", {"body": body}), 201).json
        assert r["body"] == body and r["room"] == room, r
        return r

    def device(self, client, body):
        r = expect(client.post("/v1/devices", body), 201).json
        assert r["kind"] == body["kind"], r
        return r

    def webhook(self, client, recv, path):
        secret = new_secret()
        d = self.device(client, {"kind": "webhook", "url": recv.url(path), "secret": secret})
        d["secret"] = secret
        return d

    def webpush(self, client, recv, path):
        sub = PushSubscription()
        d = self.device(client, {"kind": "webpush", "endpoint": recv.url(path), "keys": sub.keys()})
        d["subscription"] = sub
        d["endpoint_url"] = recv.url(path)
        return d

    def vapid_key(self):
        return expect(self.gw.http().get("/v1/push/vapid"), 200).json["public_key"]

    def device_ids(self, client):
        return [d["id"] for d in expect(client.get("/v1/devices"), 200).json]

    # -- MQTT --
    def mqtt(self, name, subscribe=None, qos=1, manual_ack=False):
        c = PahoClient(self.gw.port, client_id=f"{name}-{uuid.uuid4().hex[:8]}", version=5, manual_ack=manual_ack)
        self.peers.append(_Closer(c))
        with c._lock:
            c.c.username_pw_set(name, pw(name))
        c.connect()
        if subscribe:
            assert c.subscribe(subscribe, qos=qos) == [qos]
        return c

    # -- the outbox --
    def rows(self, where="1", args=()):
        """notify_outbox rows as dicts, read from the SQLite file (fine while the broker runs:
        WAL readers do not block it)."""
        db = sqlite3.connect(os.path.join(self.data, "parley.db"), timeout=5)
        try:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(f"SELECT * FROM notify_outbox WHERE {where} ORDER BY id", args)]
        finally:
            db.close()

    def outbox_list(self):
        """`parley outbox list --data DIR`: rows not sent, as tuples of the 7 fields."""
        r = subprocess.run([BIN, "outbox", "list", "--data", self.data], capture_output=True, text=True,
                           timeout=20, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r
        return [tuple(line.split("\t", 6)) for line in r.stdout.splitlines() if line]

    def metrics(self):
        """{(sample name, frozenset(labels)): value} from GET /metrics."""
        r = expect(self.gw.http().get("/metrics"), 200)
        out = {}
        for fam in text_string_to_metric_families(r.body.decode()):
            for s in fam.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out

    def detail(self):
        parts = [p.summary() for p in self.peers if hasattr(p, "summary")]
        try:
            parts.append("outbox: " + json.dumps(self.rows(), default=str))
        except Exception as e:  # noqa: BLE001 - only for the failure message
            parts.append(f"outbox unreadable: {e!r}")
        if self.gw is not None:
            parts.append("log tail:\n" + "\n".join(self.gw.broker.log()[-15:]))
        return "\n".join(parts)

    def wait(self, cond, what, timeout=DELIVERY):
        return wait_for(cond, timeout, what, step=0.05, detail=self.detail)


class _Closer:
    def __init__(self, c):
        self.c = c

    def stop(self):
        self.c.close()


@pytest.fixture
def env(request, pki):
    e = NotifyEnv(pki)
    e.request = request
    yield e
    problems = e.close()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def metric(m, name, **labels):
    return m.get((name, frozenset(labels.items())), 0.0)


def expect_nothing_more(what, check, window):
    """`check()` stays true for `window` seconds (a window in which nothing may happen)."""
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        assert check(), f"unexpected: {what}"
        time.sleep(0.05)
    assert check(), f"unexpected: {what}"


ALL_NOW = {"email": "all", "push": "all", "digest_minutes": 0}
PUSH_ONLY = {"email": "off", "push": "all", "digest_minutes": 0}
EMAIL_ONLY = {"email": "all", "push": "off", "digest_minutes": 0}


def check_mail_headers(mail, to, subject_room=None):
    """The RFC 5322 headers and envelope of a notification mail; returns the Message-ID's N."""
    assert mail.mail_from == SMTP_FROM, mail.mail_from
    assert mail.rcpt_tos == [to], mail.rcpt_tos
    assert mail.tls, "the mail was not sent inside TLS"
    assert mail.login == SMTPPeer.USERNAME, f"AUTH as {mail.login!r}"
    assert SMTP_FROM in mail.header("From"), mail.header("From")
    assert to in mail.header("To"), mail.header("To")
    subject = mail.header("Subject")
    assert subject, "no Subject"
    if subject_room:
        assert subject_room in subject, subject
    date = parsedate_to_datetime(mail.header("Date"))
    assert date.tzinfo is not None and abs(date.timestamp() - mail.at) < 300, mail.header("Date")
    m = MSGID_RE.match(mail.header("Message-ID") or "")
    assert m, f"Message-ID {mail.header('Message-ID')!r}"
    assert (mail.header("MIME-Version") or "").strip() == "1.0", mail.header("MIME-Version")
    assert mail.message.get_content_type() == "text/plain", mail.message.get_content_type()
    assert (mail.message.get_content_charset() or "").lower() == "utf-8", mail.message["Content-Type"]
    # The shorter of the two for the text (mostly non-ASCII text is shorter in base64).
    assert (mail.message["Content-Transfer-Encoding"] or "").lower() in ("quoted-printable", "base64"), \
        mail.message["Content-Transfer-Encoding"]
    assert all(b < 0x80 for b in mail.raw), "an encoded mail with ASCII headers is 7-bit"
    return int(m.group(1))


def body_lines(mail):
    return [line.rstrip() for line in mail.body.splitlines()]


# --- who gets what --------------------------------------------------------------------------

def test_offline_member_gets_every_channel_and_the_sender_nothing(env):
    recv = env.receiver()
    smtp = env.smtp()
    env.start(env.request)
    alice = env.user("alice", notify=ALL_NOW)
    bob = env.user("bob", notify=ALL_NOW)
    env.room(alice, "general", ["bob"])
    hook = env.webhook(bob, recv, "/hook/bob")
    env.device(bob, {"kind": "ntfy", "url": recv.url("/ntfy/bob")})
    push = env.webpush(bob, recv, "/push/bob")
    env.webhook(alice, recv, "/hook/alice")            # the sender's own device
    vapid = env.vapid_key()

    text = "héllo wörld ☕ — 日本語 @nobody"
    t_post = time.time()
    msg = env.post(alice, "general", text)

    env.wait(lambda: smtp.mails_to(email_of("bob")) and recv.to("/hook/bob") and recv.to("/ntfy/bob")
             and recv.to("/push/bob"), "bob's mail, webhook, ntfy and Web Push")

    # E-mail.
    [mail] = smtp.mails_to(email_of("bob"))
    n = check_mail_headers(mail, email_of("bob"), subject_room="general")
    lines = body_lines(mail)
    assert any(re.search(r"\bgeneral\b", line) for line in lines if line and not line[0].isspace()), lines
    assert f"  alice: {text}" in lines, lines
    email_rows = env.rows("channel = 'email' AND user = 'bob'")
    assert n in [r["id"] for r in email_rows], (n, email_rows)

    # Webhook.
    [req] = recv.to("/hook/bob")
    assert req.method == "POST"
    assert (req.header("Content-Type") or "").split(";")[0] == "application/json", req.header("Content-Type")
    doc = verify_webhook(req, hook["secret"])
    assert NTF_RE.match(req.header("webhook-id")), req.header("webhook-id")
    assert doc["type"] == "message.unseen" and RFC3339_RE.match(doc["timestamp"]), doc
    assert doc["data"] == {"user": "bob", "room": "general", "id": msg["id"], "from": "alice", "ts": msg["ts"],
                           "body": text, "mention": False}, doc

    # ntfy.
    [req] = recv.to("/ntfy/bob")
    assert req.method == "POST" and req.body.decode("utf-8") == text, req.body
    assert req.header("Title") == "alice in general", req.header("Title")
    assert NTF_RE.match(req.header("X-Parley-Id") or ""), req.header("X-Parley-Id")
    assert (req.header("Priority") or "").lower() != "high", req.header("Priority")

    # Web Push.
    [req] = recv.to("/push/bob")
    assert req.method == "POST"
    assert req.header("Content-Encoding") == "aes128gcm", req.header("Content-Encoding")
    assert (req.header("Content-Type") or "").split(";")[0] == "application/octet-stream", req.header("Content-Type")
    assert req.header("TTL") == "86400", req.header("TTL")
    assert req.header("Urgency") == "normal", req.header("Urgency")
    verify_vapid(req, vapid, push["endpoint_url"], subject=VAPID_SUBJECT)
    payload = json.loads(push["subscription"].decrypt(req.body))
    assert NTF_RE.match(payload.get("tag", "")), payload
    assert {k: v for k, v in payload.items() if k != "tag"} == {
        "title": "alice in general", "body": text, "room": "general", "id": msg["id"], "from": "alice",
        "ts": msg["ts"]}, payload

    # Three push deliveries, three outbox ids; none before the post.
    ids = {recv.to("/hook/bob")[0].header("webhook-id"), recv.to("/ntfy/bob")[0].header("X-Parley-Id"), payload["tag"]}
    assert len(ids) == 3, ids
    assert all(r.at >= t_post - 1 for r in recv.all())

    # The sender gets nothing, on any channel.
    expect_nothing_more("a notification to the sender alice",
                        lambda: not recv.to("/hook/alice") and not smtp.mails_to(email_of("alice")), 1.5)
    assert len(smtp.snapshot()) == 1 and len(recv.all()) == 3, env.detail()


@pytest.mark.parametrize("qos", [1, 0])
def test_member_online_and_subscribed_gets_nothing(env, qos):
    """bob reads the room over MQTT (QoS 1 acknowledged, or QoS 0 written out): no
    notification, also after the grace. carol, offline in the same room, is notified of the
    same message (so the bridge is working)."""
    recv = env.receiver()
    smtp = env.smtp()
    env.start(env.request)
    alice = env.user("alice", notify=ALL_NOW)
    bob = env.user("bob", notify=ALL_NOW)
    carol = env.user("carol", notify=ALL_NOW)
    env.room(alice, "general", ["bob", "carol"])
    env.webhook(bob, recv, "/hook/bob")
    env.webhook(carol, recv, "/hook/carol")
    live = env.mqtt("bob", subscribe="rooms/general/messages", qos=qos)

    t_post = time.time()
    msg = env.post(alice, "general", "are you there?")
    got = live.get(timeout=5)
    assert json.loads(got.payload)["id"] == msg["id"]

    env.wait(lambda: recv.to("/hook/carol") and smtp.mails_to(email_of("carol")), "carol's notifications")
    assert recv.to("/hook/carol")[0].json["data"]["id"] == msg["id"]
    window = max(0.0, t_post + GRACE + 2.5 - time.time())
    expect_nothing_more("a notification to bob, who saw the message",
                        lambda: not recv.to("/hook/bob") and not smtp.mails_to(email_of("bob")), window)


@pytest.mark.parametrize("how", ["not subscribed", "not acknowledging"])
def test_member_connected_but_not_reading_is_notified_after_the_grace(env, how):
    recv = env.receiver()
    env.start(env.request)
    alice = env.user("alice", notify=PUSH_ONLY)
    bob = env.user("bob", notify=PUSH_ONLY)
    env.room(alice, "general", ["bob"])
    hook = env.webhook(bob, recv, "/hook/bob")
    if how == "not subscribed":
        live = env.mqtt("bob")
    else:
        live = env.mqtt("bob", subscribe="rooms/general/messages", qos=1, manual_ack=True)

    t_post = time.time()
    msg = env.post(alice, "general", "ping")
    if how == "not acknowledging":
        assert json.loads(live.get(timeout=5).payload)["id"] == msg["id"]  # delivered, never PUBACKed
    env.wait(lambda: recv.to("/hook/bob"), "bob's webhook")
    [req] = recv.to("/hook/bob")
    assert req.at - t_post >= GRACE - 0.1, f"notified {req.at - t_post:.2f}s after the post, grace {GRACE}s"
    assert verify_webhook(req, hook["secret"])["data"]["id"] == msg["id"]
    assert live.connected


def test_mentions_only_preferences(env):
    recv = env.receiver()
    smtp = env.smtp()
    env.start(env.request)
    alice = env.user("alice", notify=ALL_NOW)
    mentions = {"email": "mentions", "push": "mentions", "digest_minutes": 0}
    bob = env.user("bob", notify=mentions)
    env.room(alice, "general", ["bob"])
    hook = env.webhook(bob, recv, "/hook/bob")
    env.device(bob, {"kind": "ntfy", "url": recv.url("/ntfy/bob")})
    push = env.webpush(bob, recv, "/push/bob")

    env.post(alice, "general", "nothing for anyone in particular")
    mention = env.post(alice, "general", "hey @BOB, have a look")   # case-insensitive
    env.wait(lambda: smtp.mails_to(email_of("bob")) and recv.to("/hook/bob") and recv.to("/ntfy/bob")
             and recv.to("/push/bob"), "the mention's notifications")
    expect_nothing_more("a notification of the message without a mention",
                        lambda: len(smtp.snapshot()) == 1 and len(recv.all()) == 3, 1.5)
    [mail] = smtp.snapshot()
    check_mail_headers(mail, email_of("bob"))
    assert "  alice: hey @BOB, have a look" in body_lines(mail), mail.body
    assert "nothing for anyone" not in mail.body
    doc = verify_webhook(recv.to("/hook/bob")[0], hook["secret"])
    assert doc["data"]["id"] == mention["id"] and doc["data"]["mention"] is True, doc
    assert (recv.to("/ntfy/bob")[0].header("Priority") or "").lower() == "high"
    req = recv.to("/push/bob")[0]
    assert req.header("Urgency") == "high", req.header("Urgency")
    assert json.loads(push["subscription"].decrypt(req.body))["id"] == mention["id"]


# --- digests and receipts (one broker, one one-minute window) ----------------------------------

class DigestRun:
    pass


@pytest.fixture(scope="module")
def digest_run(pki):
    """bob and carol, both offline, `digest_minutes: 1`; alice posts g1, r1, g2 in rooms
    general and random; carol then reads both rooms (receipts over MQTT) within the window.
    Waits until bob's digest arrives (one window), plus a margin for carol's."""
    # This fixture waits out a one-minute digest window; the suite's 60 s faulthandler
    # dump would fire in it without being a hang.
    faulthandler.dump_traceback_later(180, file=sys.__stderr__)
    e = NotifyEnv(pki)
    run = DigestRun()
    run.env = e
    run.problems = []
    try:
        smtp = e.smtp()
        e.start()
        digest = {"email": "all", "push": "off", "digest_minutes": 1}
        alice = e.user("alice", notify={"email": "off", "push": "off", "digest_minutes": 0})
        e.user("bob", notify=digest)
        e.user("carol", notify=digest)
        e.room(alice, "general", ["bob", "carol"])
        e.room(alice, "random", ["bob", "carol"])
        run.t0 = time.time()
        run.g1 = e.post(alice, "general", "g1 first in general")
        run.r1 = e.post(alice, "random", "r1 snow ☃ in random")
        run.g2 = e.post(alice, "general", "g2 second in general")
        carol = e.mqtt("carol")
        for room, up_to in (("general", run.g2["id"]), ("random", run.r1["id"])):
            assert carol.publish(f"rooms/{room}/receipts", json.dumps({"up_to": up_to}), qos=1) == 0
        run.t_receipts = time.time()
        e.wait(lambda: smtp.mails_to(email_of("bob")), "bob's digest", timeout=100)
        run.bob_rows = e.rows("channel = 'email' AND user = 'bob'")
        expect_margin = time.time() + 3.0
        while time.time() < expect_margin and not smtp.mails_to(email_of("carol")):
            time.sleep(0.05)  # a window for carol's (cancelled) digest to show up if it were sent
        run.mails = smtp.snapshot()
        run.transactions = smtp.all_transactions()
        run.detail = e.detail()
        yield run
    except Exception as ex:  # the tests report it
        run.error = ex
        run.detail = e.detail()
        yield run
    finally:
        faulthandler.cancel_dump_traceback_later()
        e.close()


def _digest(run):
    err = getattr(run, "error", None)
    if err is not None:
        pytest.fail(f"the digest run failed: {err}\n{run.detail}", pytrace=False)
    return run


def test_digest_coalesces_a_window_into_one_mail_grouped_by_room(digest_run):
    run = _digest(digest_run)
    mine = [m for m in run.mails if email_of("bob") in m.rcpt_tos]
    assert len(mine) == 1, [m.header("Subject") for m in mine]
    [mail] = mine
    assert mail.at >= run.t0 + 55, f"digest sent {mail.at - run.t0:.1f}s after the first post (window 60s)"
    n = check_mail_headers(mail, email_of("bob"))
    assert n == min(r["id"] for r in run.bob_rows), (n, run.bob_rows)
    subject = mail.header("Subject")
    assert re.search(r"\b3\b", subject) and re.search(r"\b2 rooms\b", subject), subject
    lines = body_lines(mail)
    heads = [i for i, line in enumerate(lines) if line and not line[0].isspace()]

    def head_of(room):
        found = [i for i in heads if re.search(rf"\b{room}\b", lines[i])]
        assert found, f"no heading for {room} in {lines}"
        return found[0]
    g, r = head_of("general"), head_of("random")
    assert g < r, f"general (first message) should come before random: {lines}"
    at = {t: lines.index(f"  alice: {t}") for t in ("g1 first in general", "g2 second in general",
                                                   "r1 snow ☃ in random")}
    assert g < at["g1 first in general"] < at["g2 second in general"] < r < at["r1 snow ☃ in random"], lines
    if (mail.message["Content-Transfer-Encoding"] or "").lower() == "quoted-printable":
        assert b"=E2=98=83" in mail.raw, "the snowman should be quoted-printable in the body"


def test_read_receipts_cancel_pending_digest_mail(digest_run):
    run = _digest(digest_run)
    assert run.t_receipts < run.t0 + 50, "the receipts came too late to test a cancel"
    to_carol = [m for m in run.transactions if email_of("carol") in m.rcpt_tos]
    assert to_carol == [], [(m.header("Subject"), m.body) for m in to_carol]


# --- SMTP failures ------------------------------------------------------------------------------

def _bob_mail_setup(env, smtp_tls="starttls", max_attempts=6):
    env.start(env.request, smtp_tls=smtp_tls, max_attempts=max_attempts)
    alice = env.user("alice", notify=EMAIL_ONLY)
    env.user("bob", notify=EMAIL_ONLY)
    env.room(alice, "general", ["bob"])
    return alice


def test_smtp_implicit_tls(env):
    smtp = env.smtp(tls="implicit")
    alice = _bob_mail_setup(env, smtp_tls="implicit")
    env.post(alice, "general", "over implicit TLS")
    env.wait(lambda: smtp.snapshot(), "the mail over implicit TLS")
    check_mail_headers(smtp.snapshot()[0], email_of("bob"))


def test_smtp_server_down_at_post_time_then_started(env):
    smtp = env.smtp(start=False)
    alice = _bob_mail_setup(env)
    env.post(alice, "general", "are you up yet?")
    [row] = env.wait(lambda: [r for r in env.rows("channel = 'email'") if r["attempts"] >= 1],
                     "a failed first attempt in the outbox")
    assert row["state"] == "pending" and row["last_error"], row
    smtp.start()
    env.wait(lambda: smtp.snapshot(), "the mail once the server is up")
    [mail] = smtp.snapshot()
    assert check_mail_headers(mail, email_of("bob")) == row["id"]
    assert "  alice: are you up yet?" in body_lines(mail)
    env.wait(lambda: env.rows(f"id = {row['id']} AND state = 'sent'"), "the row recorded sent")


def test_smtp_451_twice_then_accepted_once_with_one_message_id(env):
    smtp = env.smtp()
    smtp.reply_next([451, 451])
    alice = _bob_mail_setup(env)
    env.post(alice, "general", "third time lucky")
    env.wait(lambda: smtp.snapshot(), "the mail after two 451s")
    expect_nothing_more("another transaction after the accepted one",
                        lambda: len(smtp.all_transactions()) == 3, 2 * RETRY_BASE + 0.5)
    tx = smtp.all_transactions()
    assert [m.code for m in tx] == [451, 451, 250]
    ids = {m.header("Message-ID") for m in tx}
    assert len(ids) == 1 and MSGID_RE.match(ids.pop()), [m.header("Message-ID") for m in tx]
    gaps = [b.at - a.at for a, b in zip(tx, tx[1:])]
    assert gaps[0] >= 0.45 * RETRY_BASE and gaps[1] >= 0.95 * RETRY_BASE, f"retry gaps {gaps} (back-off)"
    check_mail_headers(smtp.snapshot()[0], email_of("bob"))


def test_smtp_550_is_dead_with_the_reason(env):
    smtp = env.smtp()
    smtp.reject_all(550)
    alice = _bob_mail_setup(env)
    env.post(alice, "general", "to nobody")
    dead = env.wait(lambda: [l for l in env.outbox_list() if l[1] == "dead" and l[3] == "email"],
                    "a dead e-mail row in `parley outbox list`")
    [line] = dead
    _, _, user, _, destination, attempts, last_error = line
    assert (user, destination) == ("bob", email_of("bob")), line
    assert int(attempts) == 1 and "550" in last_error, line
    expect_nothing_more("a retry of a 550", lambda: len(smtp.all_transactions()) == 1, 2 * RETRY_BASE + 0.5)
    assert smtp.snapshot() == []


def test_smtp_certificate_for_another_name_sends_nothing(env):
    smtp = env.smtp(wrong_cert=True)
    alice = _bob_mail_setup(env)
    env.post(alice, "general", "not to an impostor")
    [row] = env.wait(lambda: [r for r in env.rows("channel = 'email'") if r["attempts"] >= 2],
                     "two failed attempts (a certificate failure is retried)")
    assert row["state"] in ("pending", "dead") and CERT_ERROR_RE.search(row["last_error"] or ""), row
    assert smtp.auths == [] and smtp.all_transactions() == [], smtp.summary()
    assert all(not tls for _, tls in smtp.ehlos), smtp.summary()  # no EHLO inside the TLS session


# --- push failures ------------------------------------------------------------------------------

def _bob_push_setup(env, max_attempts=6):
    env.start(env.request, max_attempts=max_attempts)
    alice = env.user("alice", notify=PUSH_ONLY)
    bob = env.user("bob", notify=PUSH_ONLY)
    env.room(alice, "general", ["bob"])
    return alice, bob


def test_webhook_500_500_200_retried_with_one_id_all_signed(env):
    recv = env.receiver()
    recv.script("/hook/bob", [500, 500, 200])
    alice, bob = _bob_push_setup(env)
    hook = env.webhook(bob, recv, "/hook/bob")
    msg = env.post(alice, "general", "retry me")
    env.wait(lambda: len(recv.to("/hook/bob")) >= 3, "three webhook requests")
    expect_nothing_more("a request after the 200", lambda: len(recv.to("/hook/bob")) == 3, 2 * RETRY_BASE + 0.5)
    reqs = recv.to("/hook/bob")
    assert [r.status for r in reqs] == [500, 500, 200]
    docs = [verify_webhook(r, hook["secret"]) for r in reqs]
    assert len({r.header("webhook-id") for r in reqs}) == 1, [r.header("webhook-id") for r in reqs]
    assert all(d["data"] == docs[0]["data"] and d["data"]["id"] == msg["id"] for d in docs), docs
    stamps = [int(r.header("webhook-timestamp")) for r in reqs]
    assert stamps == sorted(stamps), stamps
    gaps = [b.at - a.at for a, b in zip(reqs, reqs[1:])]
    assert gaps[0] >= 0.45 * RETRY_BASE and gaps[1] >= 0.95 * RETRY_BASE, f"retry gaps {gaps}"
    [row] = env.rows("channel = 'webhook'")
    assert f"ntf_{row['id']}" == reqs[0].header("webhook-id")
    env.wait(lambda: env.rows(f"id = {row['id']} AND state = 'sent'"), "the row recorded sent")


def test_ntfy_503_retry_after_is_honoured(env):
    recv = env.receiver()
    recv.script("/ntfy/bob", [(503, {"Retry-After": "3"}), 200])
    alice, bob = _bob_push_setup(env)
    env.device(bob, {"kind": "ntfy", "url": recv.url("/ntfy/bob")})
    env.post(alice, "general", "later, please")
    env.wait(lambda: len(recv.to("/ntfy/bob")) >= 2, "the retry after Retry-After")
    a, b = recv.to("/ntfy/bob")[:2]
    assert b.at - a.at >= 2.9, f"retried {b.at - a.at:.2f}s after a 503 with Retry-After: 3"
    assert a.header("X-Parley-Id") == b.header("X-Parley-Id") and NTF_RE.match(a.header("X-Parley-Id"))
    assert b.body == a.body


def test_gone_devices_are_removed_other_refusals_are_dead(env):
    """410 (webhook) and 404 (Web Push) remove the device; 400 and a 302 (not followed) make
    the notification dead and keep the device; none of them is retried."""
    recv = env.receiver()
    recv.default("/hook/gone", 410)
    recv.default("/push/gone", 404)
    recv.default("/ntfy/bad", 400)
    recv.default("/hook/moved", (302, {"Location": recv.url("/hook/elsewhere")}))
    alice, bob = _bob_push_setup(env)
    gone_hook = env.webhook(bob, recv, "/hook/gone")
    gone_push = env.webpush(bob, recv, "/push/gone")
    bad = env.device(bob, {"kind": "ntfy", "url": recv.url("/ntfy/bad")})
    moved = env.webhook(bob, recv, "/hook/moved")
    ok = env.device(bob, {"kind": "ntfy", "url": recv.url("/ntfy/ok")})
    env.post(alice, "general", "who is still there?")
    keep = [bad["id"], moved["id"], ok["id"]]
    env.wait(lambda: env.device_ids(bob) == keep, "the 410 and 404 devices removed")
    failing = 4
    dead = env.wait(lambda: (lambda d: d if len(d) == failing else None)(
        [l for l in env.outbox_list() if l[1] == "dead"]), "four dead notifications")
    reasons = " | ".join(l[6] for l in dead)
    for code in ("410", "404", "400", "302"):
        assert code in reasons, dead
    expect_nothing_more("a retry of a refused notification",
                        lambda: all(len(recv.to(p)) == 1 for p in ("/hook/gone", "/push/gone", "/ntfy/bad",
                                                                   "/hook/moved", "/ntfy/ok")), 2 * RETRY_BASE + 0.5)
    assert recv.to("/hook/elsewhere") == [], "a redirect was followed"
    # The next message goes to the devices that are left only.
    env.post(alice, "general", "second round")
    env.wait(lambda: len(recv.to("/ntfy/ok")) == 2 and len(recv.to("/hook/moved")) == 2
             and len(recv.to("/ntfy/bad")) == 2, "the second round")
    assert len(recv.to("/hook/gone")) == 1 and len(recv.to("/push/gone")) == 1
    assert gone_hook["id"] not in env.device_ids(bob) and gone_push["id"] not in env.device_ids(bob)


def test_webhook_certificate_for_another_name_is_refused(env):
    wrong = env.receiver(wrong_cert=True)
    alice, bob = _bob_push_setup(env)
    env.webhook(bob, wrong, "/hook/bob")
    env.post(alice, "general", "not to an impostor")
    [row] = env.wait(lambda: [r for r in env.rows("channel = 'webhook'") if r["attempts"] >= 2],
                     "two failed attempts (a TLS failure is retried)")
    assert CERT_ERROR_RE.search(row["last_error"] or ""), row
    assert wrong.all() == [], wrong.summary()
    assert wrong.tls_failures, "the handshake should have been tried and abandoned"


# --- metrics ------------------------------------------------------------------------------------

def test_metrics_count_sent_failed_dead_and_pending(env):
    recv = env.receiver()
    recv.script("/hook/bob", [500, 200])
    smtp = env.smtp()
    smtp.reject_all(550)
    env.start(env.request)
    alice = env.user("alice", notify=ALL_NOW)
    bob = env.user("bob", notify=ALL_NOW)
    env.room(alice, "general", ["bob"])
    env.webhook(bob, recv, "/hook/bob")
    env.device(bob, {"kind": "ntfy", "url": recv.url("/ntfy/bob")})
    env.webpush(bob, recv, "/push/bob")
    before = env.metrics()
    for ch in ("email", "webhook", "ntfy", "webpush"):
        for name in ("parley_notify_sent_total", "parley_notify_failed_total", "parley_notify_dead_total"):
            assert metric(before, name, channel=ch) == 0, (name, ch)
    assert ("parley_notify_pending", frozenset()) in before, "no parley_notify_pending gauge"
    env.post(alice, "general", "count me")
    want = {("parley_notify_sent_total", "webhook"): 1, ("parley_notify_failed_total", "webhook"): 1,
            ("parley_notify_sent_total", "ntfy"): 1, ("parley_notify_sent_total", "webpush"): 1,
            ("parley_notify_dead_total", "email"): 1, ("parley_notify_sent_total", "email"): 0}

    def settled():
        m = env.metrics()
        ok = all(metric(m, n, channel=c) == v for (n, c), v in want.items())
        ok = ok and metric(m, "parley_notify_failed_total", channel="email") >= 1
        ok = ok and metric(m, "parley_notify_pending") == 0
        ok = ok and metric(m, "parley_notify_delivery_seconds_count") >= 3
        return m if ok else None
    m = wait_for(settled, DELIVERY, "the notify metrics to count 3 sent, 1 failed webhook attempt, 1 dead mail",
                 step=0.1, detail=lambda: "\n".join(f"{k}: {v}" for k, v in sorted(
                     ((n, dict(l)), v) for (n, l), v in env.metrics().items() if "notify" in n)) + "\n" + env.detail())
    assert metric(m, "parley_notify_delivery_seconds_bucket", le="+Inf") >= 3
    assert metric(m, "parley_notify_delivery_seconds_sum") > 0


# --- a crash with a full outbox ----------------------------------------------------------------

N_CRASH = 30
SENT_BEFORE_KILL = 10


def test_kill_9_with_a_full_outbox_delivers_everything_and_resends_nothing_sent(env):
    recv = env.receiver()
    recv.script("/hook/bob", [200] * SENT_BEFORE_KILL)
    recv.default("/hook/bob", 503)
    alice, bob = _bob_push_setup(env, max_attempts=20)
    env.webhook(bob, recv, "/hook/bob")
    posted = [env.post(alice, "general", f"queued {i}") for i in range(N_CRASH)]

    def ready():
        rows = env.rows("channel = 'webhook'")
        sent = [r for r in rows if r["state"] == "sent"]
        tried = [r for r in rows if r["attempts"] >= 1 or r["state"] == "sent"]
        return len(rows) == N_CRASH and len(sent) >= SENT_BEFORE_KILL // 2 and len(tried) == N_CRASH
    env.wait(ready, f"{N_CRASH} rows, some sent, every one tried at least once")
    env.gw.broker.kill()  # SIGKILL, by PID
    t_kill = time.time()
    recv.default("/hook/bob", 200)
    rows = env.rows("channel = 'webhook'")
    assert len(rows) == N_CRASH and {r["state"] for r in rows} <= {"pending", "sent"}, rows
    sent_ids = {f"ntf_{r['id']}" for r in rows if r["state"] == "sent"}
    all_ids = {f"ntf_{r['id']}" for r in rows}
    assert sent_ids and sent_ids != all_ids, rows

    env.restart_after_kill()

    def delivered():
        return {r.header("webhook-id") for r in recv.to("/hook/bob") if r.status == 200} >= all_ids
    env.wait(delivered, "every notification delivered after the restart", timeout=45)
    def resent():
        return sorted({r.header("webhook-id") for r in recv.to("/hook/bob") if r.at >= t_kill} & sent_ids)
    assert resent() == [], f"recorded sent before the kill, sent again after it: {resent()}"
    expect_nothing_more("a notification recorded sent before the kill sent again", lambda: not resent(), 1.5)
    reqs = recv.to("/hook/bob")
    data_ids = sorted({r.json["data"]["id"] for r in reqs})
    assert data_ids == [p["id"] for p in posted], data_ids
    by_id = {}
    for r in reqs:
        if r.status == 200:
            by_id.setdefault(r.header("webhook-id"), []).append(r)
    twice = {k for k, v in by_id.items() if len(v) > 1}
    assert not (twice & sent_ids), twice
    env.wait(lambda: all(r["state"] == "sent" for r in env.rows("channel = 'webhook'")), "every row sent")
