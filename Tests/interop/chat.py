"""Helpers and fixtures for the chat plugin tests (test_chat.py).

- `cli(data_dir, *args, stdin=)`: one `parley user|room ...` admin command on a data
  directory (PARLEY_SCRYPT_LN=10: cheaper hashing; the broker verifies whatever cost a
  stored hash names). Returns (exit code, stdout, stderr).
- `chat` fixture: `chat(users=..., rooms=..., config=..., anonymous=..., start=True)` gives a
  fresh data directory with those users and rooms (made with the command line once per
  session into a template directory, then copied), then starts `parley serve` with
  `plugins = chat` on it. Returns a `Chat` whose clients log in as those users.
- Envelope / time checks, history requests over MQTT 5, `home_loop` / `id_on_loop` (the
  loop a client id's session lives on).

Each user's password is `password_of(name)` unless given.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from datetime import datetime, timezone

import pytest

from conftest import BIN, Broker, _check_alive
from pahoclient import connect_props, publish_props

CLI_ENV = dict(os.environ, PARLEY_SCRYPT_LN="10")
LOOPS = 2
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def password_of(user):
    return f"pw-{user.lower()}-0123"


def cli(data_dir, *args, stdin=None, timeout=15):
    """`parley ARGS --data DIR`; (exit code, stdout, stderr). stdin: text (default: empty)."""
    p = subprocess.run([BIN, *args, "--data", data_dir], input=(stdin or "").encode(),
                       capture_output=True, timeout=timeout, env=CLI_ENV)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def cli_ok(data_dir, *args, stdin=None):
    rc, out, err = cli(data_dir, *args, stdin=stdin)
    assert rc == 0 and err == "", f"parley {' '.join(args)}: exit {rc}, stdout={out!r}, stderr={err!r}"
    return out


def home_loop(client_id, loops=LOOPS):
    """FNV-1a 64 of the UTF-8 client id modulo the loops (Broker.homeLoop)."""
    h = 0xCBF29CE484222325
    for b in client_id.encode():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h % loops


def id_on_loop(base, loop, loops=LOOPS):
    for i in range(1000):
        c = f"{base}-{i}"
        if home_loop(c, loops) == loop:
            return c
    raise AssertionError(f"no client id {base}-N on loop {loop}")


# --- envelopes ---------------------------------------------------------------------------

def parse_ts(ts):
    assert isinstance(ts, str) and ISO_RE.match(ts), f"not ISO 8601 UTC with ms and Z: {ts!r}"
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def assert_recent(ts, slack=30.0):
    t = parse_ts(ts)
    now = time.time()
    assert now - slack <= t <= now + slack, f"timestamp {ts} is not now ({now})"


def envelope(payload):
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise AssertionError(f"not JSON: {payload!r}")


def check_post(payload, id, room, sender, body, ckey=None):
    """The server-stamped envelope: exactly id, room, from, ts, body (+ ckey when given)."""
    e = envelope(payload) if isinstance(payload, (bytes, str)) else payload
    keys = {"id", "room", "from", "ts", "body"} | ({"ckey"} if ckey is not None else set())
    assert set(e) == keys, f"envelope keys {sorted(e)} != {sorted(keys)}: {e}"
    assert (e["id"], e["room"], e["from"], e["body"]) == (id, room, sender, body), e
    if ckey is not None:
        assert e["ckey"] == ckey, e
    assert_recent(e["ts"])
    return e


def user_props(msg):
    p = msg.properties
    return list(getattr(p, "UserProperty", []) or []) if p is not None else []


# --- the broker and its clients -----------------------------------------------------------

class Chat:
    """A broker with the chat plugin and its data directory; clients log in as users."""

    def __init__(self, broker, paho, raw):
        self.broker = broker
        self._paho = paho
        self._raw = raw
        self.n = 0

    @property
    def port(self):
        return self.broker.port

    @property
    def data(self):
        return os.path.join(self.broker.tmp, "data")

    def cli(self, *args, stdin=None):
        return cli(self.data, *args, stdin=stdin)

    def ok(self, *args, stdin=None):
        return cli_ok(self.data, *args, stdin=stdin)

    def add_user(self, name, password=None, email=None):
        args = ["user", "add", name] + (["--email", email] if email else [])
        return self.ok(*args, stdin=(password or password_of(name)) + "\n")

    def token(self, name, lifetime=None):
        out = self.ok("user", "token", name, *(["--lifetime", lifetime] if lifetime else []))
        tok = out.strip()
        assert tok.startswith("pt_") and "\n" not in tok, out
        return tok

    def client_id(self, role="c"):
        self.n += 1
        return f"{role}-{self.n}-{uuid.uuid4().hex[:6]}"

    def client(self, user=None, version=5, client_id=None, password=None, clean=True, expiry=None,
               expect_rc=0, connect=True):
        """A paho client logged in as `user` (None: anonymous), connected unless connect=False."""
        c = self._paho(self.port, client_id=client_id or self.client_id(user or "anon"), version=version,
                       clean_session=clean)
        if user is not None:
            with c._lock:
                c.c.username_pw_set(user, password if password is not None else password_of(user))
        if connect:
            props = connect_props(SessionExpiryInterval=expiry) if (version == 5 and expiry) else None
            c.connect(clean_start=clean, properties=props, expect_rc=expect_rc)
        return c

    def raw_login(self, user, password=None, version=5, client_id=None):
        """A raw CONNECT as `user`; returns (client, CONNACK)."""
        c = self._raw(self.port, version=version)
        ca = c.connect(client_id or self.client_id(user), version=version, username=user,
                       password=password if password is not None else password_of(user))
        return c, ca

    def start(self):
        self.broker.start()
        return self

    def restart(self, how="term"):
        """SIGTERM (exit 0 expected) or kill -9, then `parley serve` again on the same data."""
        b = self.broker
        if how == "kill":
            b.kill()
        else:
            rc = b.terminate()
            assert rc == 0, f"parley exited with {rc} on SIGTERM\n" + "\n".join(b.log()[-10:])
        if b.proc is not None and b.proc.stderr:
            b._reader.join(timeout=1)
            b.proc.stderr.close()
        mark = len(b.log())
        b.port = None
        b.stopped_by_test = False
        b.start()
        return mark


_TEMPLATES = {}


@pytest.fixture(scope="session")
def chat_templates():
    """The template data directories of this session; removed when it ends."""
    yield _TEMPLATES
    for d in list(_TEMPLATES.values()):
        shutil.rmtree(os.path.dirname(d), ignore_errors=True)
    _TEMPLATES.clear()


def template(users, rooms, emails):
    """A data directory with these users and rooms, made once per session with the command
    line (user add, room create, room add) and copied for each broker: the same files the
    commands make, without paying for them (and their password hashing) in every test."""
    key = (tuple(users), tuple((r, o, tuple(m)) for r, (o, m) in rooms.items()), tuple(sorted(emails.items())))
    if key not in _TEMPLATES:
        data = os.path.join(tempfile.mkdtemp(prefix="parley-chat-template-"), "data")
        for u in users:
            args = ["user", "add", u] + (["--email", emails[u]] if u in emails else [])
            cli_ok(data, *args, stdin=password_of(u) + "\n")
        for room, (owner, members) in rooms.items():
            cli_ok(data, "room", "create", room, "--owner", owner)
            for m in members:
                cli_ok(data, "room", "add", room, m)
        _TEMPLATES[key] = data
    return _TEMPLATES[key]


def make_config(config="", anonymous=False):
    text = "plugins = chat\nsys_interval = 1\n"
    if anonymous:
        text += "allow_anonymous = true\n"
    return text + config


@pytest.fixture
def chat(request, paho, raw, chat_templates):
    """chat(users=("alice", ...), rooms={"general": ("alice", ["bob"])}, config="", anonymous=False,
    emails={}, start=True) -> Chat: a data directory with the users and rooms (see `template`),
    then the broker started on it (start=False: call .start() later, e.g. after `user token`)."""
    started = []
    request.node.parley_brokers = started

    def start(users=(), rooms=None, config="", anonymous=False, emails=None, loops=LOOPS, start=True):
        """start=False: made and set up, not running (call .start(), e.g. after issuing tokens)."""
        b = Broker(make_config(config, anonymous), loops=loops, name="chat")
        c = Chat(b, paho, raw)
        if users:
            shutil.copytree(template(users, rooms or {}, emails or {}), c.data)
        started.append(b)
        if start:
            b.start()
        return c

    yield start
    problems = [p for p in (_check_alive(b) for b in started) if p]
    for b in started:
        b.stop()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# --- MQTT 5 history ------------------------------------------------------------------------

class History:
    """History requests of one v5 client subscribed to users/<user>/history/#."""

    def __init__(self, client, user):
        self.c = client
        self.user = user
        assert client.subscribe(f"users/{user}/history/#", qos=1) == [1]

    def request(self, room, query, timeout=5.0, response_topic=None):
        """(PUBACK reason, answer dict or None). Waits for the answer only after a success."""
        corr = uuid.uuid4().bytes
        rt = response_topic or f"users/{self.user}/history/{uuid.uuid4().hex[:8]}"
        payload = query if isinstance(query, (bytes, str)) else json.dumps(query)
        rc = self.c.publish(f"rooms/{room}/history", payload, qos=1,
                            properties=publish_props(ResponseTopic=rt, CorrelationData=corr))
        if rc != 0:
            return rc, None
        deadline = time.monotonic() + timeout
        while True:
            m = self.c.get(max(0.01, deadline - time.monotonic()))
            if m.topic == rt:
                got = getattr(m.properties, "CorrelationData", None)
                assert got == corr, f"correlation data {got!r} != {corr!r}"
                ans = envelope(m.payload)
                assert set(ans) == {"messages", "has_more"}, ans
                return rc, ans
            raise AssertionError(f"unexpected message while waiting for history: {m.topic} {m.payload!r}")

    def ok(self, room, query):
        rc, ans = self.request(room, query)
        assert rc == 0, f"history request {query!r}: PUBACK 0x{rc:02X}"
        return ans

    def all(self, room, page=500):
        """Every message, paged forward with after=."""
        out, after = [], 0
        for _ in range(1000):
            ans = self.ok(room, {"after": after, "limit": page})
            out += ans["messages"]
            if not ans["has_more"]:
                return out
            assert ans["messages"], ans
            after = ans["messages"][-1]["id"]
        raise AssertionError("history paging did not end")
