"""The HTTP gateway's REST API (SPEC section 4) against the real binary, as a new user would
use it with curl: sign-up, tokens, the account, rooms, members, messages, the operational
routes, and the OpenAPI document (Sources/Gateway/Web/openapi.json) checked by
openapi-spec-validator and exercised by schemathesis.

Every broker here runs `parley serve --plugins chat,gateway,notify --http 127.0.0.1:0` on a fresh
data directory (`http_auth_rate = 1000/1000`: the tests sign up many users from one
address); the HTTP port is read from its `event=listener.open ... protocol=http` log line.
Clients are `http.client` connections (keep-alive: one per user, reused) or raw sockets
where a well-behaved client cannot say what the test needs. Password hashing is made cheap
with PARLEY_SCRYPT_LN=10 in the environment the brokers inherit.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import struct
import subprocess
import time
import uuid

import pytest

from chat import check_post, parse_ts, user_props
from conftest import REPO, Broker, _check_alive, wait_until

# The broker hashes sign-up and new passwords with this cost (never below 10); it inherits
# the environment of the test process.
os.environ["PARLEY_SCRYPT_LN"] = "10"

HTTP_RE = re.compile(r"event=listener\.open address=127\.0\.0\.1:(\d+) protocol=http\b")
OPENAPI_FILE = os.path.join(REPO, "Sources", "Gateway", "Web", "openapi.json")
TOKEN_RE = re.compile(r"^pt_[A-Za-z0-9_-]{43,}$")
BASE_CONFIG = "http_auth_rate = 1000/1000\nchat_post_rate = 1000/1000\n"
DEFAULT_NOTIFY = {"email": "mentions", "push": "all", "digest_minutes": 10}

# Error codes of SPEC section 4 that its table leaves unnamed (the contract's choice).
UNAUTHORIZED = "unauthorized"      # 401 on an authenticated route without a valid token
BAD_QUERY = "bad_request"          # 400 on a bad before / after / limit
INVALID_BODY = "invalid_body"      # 400 on an empty or oversized post body, or a bad ckey


def pw(user):
    return f"pw-{user.lower()}-0123"


# --- HTTP ----------------------------------------------------------------------------------

class Resp:
    def __init__(self, r, body):
        self.status = r.status
        self.reason = r.reason
        self.headers = r.headers
        self.body = body

    def header(self, name):
        return self.headers.get(name)

    @property
    def json(self):
        ctype = self.header("Content-Type") or ""
        assert ctype.split(";")[0].strip() == "application/json", \
            f"Content-Type {ctype!r}, expected application/json; body {self.body[:200]!r}"
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError(f"not JSON: {self.body[:300]!r}")

    def __repr__(self):
        return f"<{self.status} {self.reason} {dict(self.headers)} {self.body[:300]!r}>"


class Http:
    """One keep-alive connection to the gateway; reopened by http.client after a close."""

    def __init__(self, port, token=None):
        self.port = port
        self.token = token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def request(self, method, path, body=None, token=None, headers=None, raw=None):
        """body: JSON-encoded; raw: bytes sent as is (Content-Type application/json unless given)."""
        h = {}
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
        elif raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode()
        if data is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        self.conn.request(method, path, body=data, headers=h)
        r = self.conn.getresponse()
        return Resp(r, r.read())

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def close(self):
        self.conn.close()


def expect(resp, status, error=None):
    """The status, and for an error the exact error object: {"error": code, "message": non-empty}."""
    assert resp.status == status, f"expected {status}{' ' + error if error else ''}, got {resp!r}"
    if error is not None:
        e = resp.json
        assert set(e) == {"error", "message"}, e
        assert e["error"] == error, e
        assert isinstance(e["message"], str) and e["message"], e
    return resp


def expect_no_body(resp, status=204):
    assert resp.status == status, resp
    assert resp.body == b"", resp
    return resp


def expect_401(resp):
    expect(resp, 401, UNAUTHORIZED)
    www = resp.header("WWW-Authenticate") or ""
    assert re.match(r"^Bearer\b", www), f"WWW-Authenticate {www!r}: {resp!r}"
    return resp


def expect_429(resp):
    expect(resp, 429, "rate_limited")
    ra = resp.header("Retry-After")
    assert ra is not None and ra.isdigit() and int(ra) >= 1, f"Retry-After {ra!r}: {resp!r}"
    return int(ra)


class Gateway:
    """A broker with the chat and gateway plugins; users signed up over REST."""

    def __init__(self, broker):
        self.broker = broker
        self.http_port = None
        self.clients = []

    def find_port(self):
        def seen():
            for line in self.broker.log():
                m = HTTP_RE.search(line)
                if m:
                    self.http_port = int(m.group(1))
                    return True
            return False
        wait_until(seen, 10.0, "the HTTP listener's log line",
                   detail=lambda: "\n".join(self.broker.log()[-20:]))
        return self

    @property
    def port(self):
        return self.broker.port

    @property
    def base(self):
        return f"http://127.0.0.1:{self.http_port}"

    def http(self, token=None):
        c = Http(self.http_port, token)
        self.clients.append(c)
        return c

    def signup(self, name, password=None, email=None):
        body = {"username": name, "password": password or pw(name)}
        if email is not None:
            body["email"] = email
        r = expect(self.http().post("/v1/users", body), 201)
        assert r.json == {"username": name, "email": email}, r
        return r

    def login(self, name, password=None):
        r = expect(self.http().post("/v1/tokens", {"username": name, "password": password or pw(name)}), 201)
        t = r.json
        assert set(t) == {"token", "expires_at"}, t
        assert TOKEN_RE.match(t["token"]), t
        return t["token"]

    def user(self, name, email=None):
        """Signs `name` up and logs in: an Http client with its token."""
        self.signup(name, email=email)
        return self.http(self.login(name))

    def room(self, owner, name, members=(), title=None):
        body = {"name": name} if title is None else {"name": name, "title": title}
        expect(owner.post("/v1/rooms", body), 201)
        for m in members:
            expect(owner.post(f"/v1/rooms/{name}/members", {"username": m}), 201)

    def close(self):
        for c in self.clients:
            c.close()


@pytest.fixture
def gateway(request):
    """gateway(config="", extra_args=()) -> Gateway: a fresh broker with chat,gateway,notify."""
    started = []
    request.node.parley_brokers = []

    def start(config=BASE_CONFIG, extra_args=()):
        b = Broker(config_text=config, name="gateway",
                   extra_args=["--plugins", "chat,gateway,notify", "--http", "127.0.0.1:0", *extra_args])
        request.node.parley_brokers.append(b)
        b.start()
        g = Gateway(b).find_port()
        started.append(g)
        return g

    yield start
    problems = [p for p in (_check_alive(g.broker) for g in started) if p]
    for g in started:
        g.close()
        g.broker.stop()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def gw(gateway):
    return gateway()


def alice_bob(gw, room="general"):
    """alice owns `room`, bob is a member; (alice, bob) clients."""
    alice, bob = gw.user("alice"), gw.user("bob")
    gw.room(alice, room, members=["bob"])
    return alice, bob


def post(c, room, body, ckey=None, status=201):
    payload = {"body": body} if ckey is None else {"body": body, "ckey": ckey}
    return expect(c.post(f"/v1/rooms/{room}/messages", payload), status).json


def history(c, room, query=""):
    r = expect(c.get(f"/v1/rooms/{room}/messages{query}"), 200).json
    assert set(r) == {"messages", "has_more"}, r
    assert isinstance(r["has_more"], bool), r
    return r


def ids(page):
    return [m["id"] for m in page["messages"]]


# --- sign-up -------------------------------------------------------------------------------

def test_signup_201(gw):
    c = gw.http()
    r = expect(c.post("/v1/users", {"username": "Alice.B-1_x", "password": "correct horse",
                                    "email": "alice@example.com"}), 201)
    assert r.json == {"username": "Alice.B-1_x", "email": "alice@example.com"}
    r = expect(c.post("/v1/users", {"username": "bob", "password": "12345678"}), 201)
    assert r.json == {"username": "bob", "email": None}
    # Boundaries: 3 and 32 characters, 8 and 256 bytes (4-byte characters: 64 of them).
    expect(c.post("/v1/users", {"username": "abc", "password": "x" * 256}), 201)
    expect(c.post("/v1/users", {"username": "a" * 32, "password": "\U0001F600" * 64}), 201)
    # And they can log in (case does not matter for the name).
    gw.login("ALICE.b-1_X", "correct horse")
    gw.login("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "\U0001F600" * 64)


@pytest.mark.parametrize("body,code", [
    ({"username": "ab", "password": "12345678"}, "invalid_username"),
    ({"username": "a" * 33, "password": "12345678"}, "invalid_username"),
    ({"username": "al ice", "password": "12345678"}, "invalid_username"),
    ({"username": "alicé", "password": "12345678"}, "invalid_username"),
    ({"username": "al/ice", "password": "12345678"}, "invalid_username"),
    ({"username": "al+ice", "password": "12345678"}, "invalid_username"),
    ({"username": "", "password": "12345678"}, "invalid_username"),
    ({"username": "alice", "password": "1234567"}, "invalid_password"),
    ({"username": "alice", "password": ""}, "invalid_password"),
    ({"username": "alice", "password": "x" * 257}, "invalid_password"),
    ({"username": "alice", "password": "é" * 129}, "invalid_password"),  # 129 characters, 258 bytes
    ({"username": "alice", "password": "12345678", "email": "nope"}, "invalid_email"),
    ({"username": "alice", "password": "12345678", "email": "a@b"}, "invalid_email"),
    ({"username": "alice", "password": "12345678", "email": "a@@example.com"}, "invalid_email"),
    ({"username": "alice", "password": "12345678", "email": ""}, "invalid_email"),
    ({"username": 5, "password": "12345678"}, "bad_json"),
    ({"username": "alice", "password": 12345678}, "bad_json"),
    ({"username": "alice", "password": "12345678", "email": 7}, "bad_json"),
    ({"password": "12345678"}, "invalid_username"),    # missing
    ({"username": None, "password": "12345678"}, "invalid_username"),
    ({"username": "alice"}, "invalid_password"),
    ({"username": "alice", "password": None}, "invalid_password"),
    ([], "bad_json"),
    ("alice", "bad_json"),
])
def test_signup_400(gw, body, code):
    c = gw.http()
    expect(c.post("/v1/users", body), 400, code)
    # Nothing was created: the name (when it was a good one) is still free.
    if isinstance(body, dict) and body.get("username") == "alice":
        gw.signup("alice")


@pytest.mark.parametrize("raw", [b"", b"{", b"{\"username\": \"alice\", \"password\": \"12345678\"", b"not json",
                                 b"\xff\xfe", b"{\"username\": \"alice\", \"password\": \"1234\xff5678\"}"])
def test_signup_bad_json(gw, raw):
    expect(gw.http().post("/v1/users", raw=raw), 400, "bad_json")


def test_signup_409_taken_ignoring_case(gw):
    gw.signup("Bob")
    c = gw.http()
    for name in ("Bob", "bob", "BOB", "bOb"):
        expect(c.post("/v1/users", {"username": name, "password": "another-pass"}), 409, "username_taken")
    # The first Bob keeps his password and his spelling.
    tok = gw.login("bob")
    me = expect(gw.http(tok).get("/v1/me"), 200).json
    assert me["username"] == "Bob", me
    expect(c.post("/v1/tokens", {"username": "bob", "password": "another-pass"}), 401, "invalid_credentials")


# --- tokens --------------------------------------------------------------------------------

def test_token_201(gw):
    gw.signup("alice")
    before = time.time()
    r = expect(gw.http().post("/v1/tokens", {"username": "alice", "password": pw("alice")}), 201).json
    assert set(r) == {"token", "expires_at"}, r
    assert TOKEN_RE.match(r["token"]), r
    # 30 days (token_lifetime's default) from now.
    expires = parse_ts(r["expires_at"])
    assert before + 30 * 86400 - 60 <= expires <= time.time() + 30 * 86400 + 60, r
    # Each login is a new token; both work.
    other = gw.login("alice")
    assert other != r["token"]
    for tok in (r["token"], other):
        assert expect(gw.http(tok).get("/v1/me"), 200).json["username"] == "alice"


def test_token_401_and_400(gw):
    gw.signup("alice")
    c = gw.http()
    expect(c.post("/v1/tokens", {"username": "alice", "password": "wrong-password"}), 401, "invalid_credentials")
    expect(c.post("/v1/tokens", {"username": "nobody", "password": "whatever-1"}), 401, "invalid_credentials")
    expect(c.post("/v1/tokens", {"username": "alice"}), 401, "invalid_credentials")
    expect(c.post("/v1/tokens", {"password": pw("alice")}), 401, "invalid_credentials")
    expect(c.post("/v1/tokens", {"username": "alice", "password": 5}), 400, "bad_json")
    expect(c.post("/v1/tokens", raw=b"{"), 400, "bad_json")
    # Two failures so far (the others were not attempts): the right password still works.
    gw.login("alice")


def test_token_lockout_429(gw):
    """SPEC 2: 5 failures in 5 minutes start a lock-out (1 minute at first) in which even the
    right password is refused with 429 + Retry-After; per user name and per address."""
    gw.signup("alice")
    gw.signup("bob")
    c = gw.http()
    for i in range(5):
        expect(c.post("/v1/tokens", {"username": "alice", "password": f"wrong-{i}-xx"}), 401, "invalid_credentials")
    ra = expect_429(c.post("/v1/tokens", {"username": "alice", "password": pw("alice")}))
    assert 1 <= ra <= 60, ra
    # The address is locked out too (its 5 failures), so another user's right password waits as well.
    assert 1 <= expect_429(c.post("/v1/tokens", {"username": "bob", "password": pw("bob")})) <= 60
    gw.broker.wait_log(r"event=chat\.lockout ", timeout=5)


def test_logout(gw):
    gw.signup("alice")
    t1, t2 = gw.login("alice"), gw.login("alice")
    c = gw.http(t1)
    expect(c.get("/v1/me"), 200)
    expect_no_body(c.delete("/v1/tokens/current"), 204)
    expect_401(c.get("/v1/me"))
    expect_401(c.delete("/v1/tokens/current"))
    # Only that token went.
    expect(gw.http(t2).get("/v1/me"), 200)


def test_token_expires(gateway):
    """token_lifetime: expires_at says when, and from then on the token is refused (REST 401)."""
    gw = gateway(config=BASE_CONFIG + "token_lifetime = 3s\n")
    gw.signup("alice")
    r = expect(gw.http().post("/v1/tokens", {"username": "alice", "password": pw("alice")}), 201).json
    expires = parse_ts(r["expires_at"])
    assert abs(expires - (time.time() + 3)) < 2, r
    c = gw.http(r["token"])
    expect(c.get("/v1/me"), 200)
    wait_until(lambda: c.get("/v1/me").status == 401, 8.0, "the token to expire")
    assert time.time() >= expires - 0.5, "refused before its expires_at"
    expect_401(c.get("/v1/me"))


AUTHENTICATED = [
    ("DELETE", "/v1/tokens/current", None),
    ("GET", "/v1/me", None),
    ("PATCH", "/v1/me", {"email": "x@example.com"}),
    ("DELETE", "/v1/me", None),
    ("GET", "/v1/rooms", None),
    ("POST", "/v1/rooms", {"name": "newroom"}),
    ("GET", "/v1/rooms/general", None),
    ("POST", "/v1/rooms/general/members", {"username": "bob"}),
    ("DELETE", "/v1/rooms/general/members/bob", None),
    ("GET", "/v1/rooms/general/messages", None),
    ("POST", "/v1/rooms/general/messages", {"body": "hi"}),
]


def test_401_without_valid_token(gw):
    alice, bob = alice_bob(gw)
    gw.signup("carol")
    revoked = gw.login("carol")
    expect_no_body(gw.http(revoked).delete("/v1/tokens/current"))
    bad = [
        {},                                                   # no Authorization
        {"Authorization": "Bearer pt_" + "A" * 43},           # well-formed, unknown
        {"Authorization": "Bearer " + revoked},               # revoked
        {"Authorization": "Bearer"},                          # no token
        {"Authorization": "Basic " + base64.b64encode(b"alice:" + pw("alice").encode()).decode()},
        {"Authorization": alice.token},                       # no scheme
        {"Authorization": "Bearer " + alice.token[:-1]},      # one character short
    ]
    c = gw.http()
    for method, path, body in AUTHENTICATED:
        for h in bad:
            r = c.request(method, path, body=body, token="", headers=h)
            try:
                expect_401(r)
            except AssertionError as e:
                raise AssertionError(f"{method} {path} with {h}: {e}")
    # None of them did anything: the room, its member and its history are as they were.
    room = expect(alice.get("/v1/rooms/general"), 200).json
    assert sorted(room["members"]) == ["alice", "bob"] and room["last_id"] == 0, room
    assert [r["name"] for r in expect(alice.get("/v1/rooms"), 200).json] == ["general"]
    assert expect(alice.get("/v1/me"), 200).json["email"] is None
    expect(bob.get("/v1/me"), 200)


# --- the account -----------------------------------------------------------------------------

def test_me_get(gw):
    gw.signup("Alice", email="alice@example.com")
    me = expect(gw.http(gw.login("alice")).get("/v1/me"), 200).json
    assert me == {"username": "Alice", "email": "alice@example.com", "notify": DEFAULT_NOTIFY}
    gw.signup("bob")
    me = expect(gw.http(gw.login("bob")).get("/v1/me"), 200).json
    assert me == {"username": "bob", "email": None, "notify": DEFAULT_NOTIFY}


def test_me_patch(gw):
    alice = gw.user("alice")
    r = expect(alice.patch("/v1/me", {"email": "a@example.com"}), 200).json
    assert r == {"username": "alice", "email": "a@example.com", "notify": DEFAULT_NOTIFY}
    r = expect(alice.patch("/v1/me", {"notify": {"push": "off"}}), 200).json
    assert r == {"username": "alice", "email": "a@example.com",
                 "notify": {"email": "mentions", "push": "off", "digest_minutes": 10}}
    r = expect(alice.patch("/v1/me", {"notify": {"email": "all", "digest_minutes": 0}}), 200).json
    assert r["notify"] == {"email": "all", "push": "off", "digest_minutes": 0}, r
    r = expect(alice.patch("/v1/me", {"email": None}), 200).json
    assert r == {"username": "alice", "email": None, "notify": {"email": "all", "push": "off", "digest_minutes": 0}}
    assert expect(alice.get("/v1/me"), 200).json == r
    r = expect(alice.patch("/v1/me", {}), 200).json
    assert expect(alice.get("/v1/me"), 200).json == r
    # Refused changes change nothing.
    expect(alice.patch("/v1/me", {"email": "not-an-address"}), 400, "invalid_email")
    expect(alice.patch("/v1/me", {"password": "short"}), 400, "invalid_password")
    expect(alice.patch("/v1/me", {"password": "x" * 257}), 400, "invalid_password")
    expect(alice.patch("/v1/me", {"email": 5}), 400, "bad_json")
    assert expect(alice.patch("/v1/me", {"password": None}), 200).json == r  # null: unchanged
    expect(alice.patch("/v1/me", raw=b"[1]"), 400, "bad_json")
    expect(alice.patch("/v1/me", {"notify": {"push": "sometimes"}}), 400, "invalid_notify")
    expect(alice.patch("/v1/me", {"notify": {"digest_minutes": -1}}), 400, "invalid_notify")
    expect(alice.patch("/v1/me", {"notify": "all"}), 400, "bad_json")
    assert expect(alice.get("/v1/me"), 200).json == r
    gw.login("alice")


def test_me_patch_password_revokes_tokens(gw):
    gw.signup("alice")
    t1, t2 = gw.login("alice"), gw.login("alice")
    c1 = gw.http(t1)
    r = expect(c1.patch("/v1/me", {"password": "a-new-password"}), 200).json
    assert r == {"username": "alice", "email": None, "notify": DEFAULT_NOTIFY}
    expect_401(c1.get("/v1/me"))
    expect_401(gw.http(t2).get("/v1/me"))
    expect(gw.http().post("/v1/tokens", {"username": "alice", "password": pw("alice")}), 401, "invalid_credentials")
    t3 = gw.login("alice", "a-new-password")
    expect(gw.http(t3).get("/v1/me"), 200)


def test_me_delete(gw):
    """DELETE /v1/me: the user, tokens and memberships go; past messages stay."""
    alice, bob = alice_bob(gw)
    gw.room(bob, "bobs", members=["alice"])
    m1 = post(bob, "general", "hello from bob")
    m2 = post(bob, "bobs", "in my own room")
    other = gw.login("bob")
    expect_no_body(bob.delete("/v1/me"), 204)
    expect_401(bob.get("/v1/me"))
    expect_401(gw.http(other).get("/v1/me"))
    expect(gw.http().post("/v1/tokens", {"username": "bob", "password": pw("bob")}), 401, "invalid_credentials")
    room = expect(alice.get("/v1/rooms/general"), 200).json
    assert room["members"] == ["alice"], room
    assert history(alice, "general")["messages"] == [m1]
    assert history(alice, "bobs")["messages"] == [m2]
    # The name is free again; the new bob is nobody's member.
    newbob = gw.user("bob")
    expect(newbob.get("/v1/rooms/general"), 403, "not_a_member")
    assert expect(newbob.get("/v1/rooms"), 200).json == []
    expect(alice.post("/v1/rooms/general/members", {"username": "bob"}), 201)


# --- rooms -----------------------------------------------------------------------------------

def test_rooms_create(gw):
    alice = gw.user("Alice")
    r = expect(alice.post("/v1/rooms", {"name": "general"}), 201).json
    assert r == {"name": "general", "title": None, "owner": "Alice", "members": ["Alice"], "last_id": 0}
    r = expect(alice.post("/v1/rooms", {"name": "0-x_y", "title": "Zero ✓"}), 201).json
    assert r == {"name": "0-x_y", "title": "Zero ✓", "owner": "Alice", "members": ["Alice"], "last_id": 0}
    n64 = "r" * 64
    expect(alice.post("/v1/rooms", {"name": n64}), 201)
    assert expect(alice.get("/v1/rooms/0-x_y"), 200).json == r
    bob = gw.user("bob")
    expect(bob.post("/v1/rooms", {"name": "general"}), 409, "room_exists")
    expect(alice.post("/v1/rooms", {"name": "general", "title": "again"}), 409, "room_exists")
    for bad in ("General", "-x", "_x", "", "r" * 65, "a b", "a/b", "a.b", "é", "a+", "#"):
        expect(alice.post("/v1/rooms", {"name": bad}), 400, "invalid_room")
    for body in ({}, {"name": None}, {"title": "no name"}, {"name": "ok", "title": "t" * 201},
                 {"name": "ok", "title": "€" * 67}):  # 201 bytes
        expect(alice.post("/v1/rooms", body), 400, "invalid_room")
    for body in ({"name": 5}, {"name": "ok", "title": 5}, {"name": ["ok"]}, ["general"]):
        expect(alice.post("/v1/rooms", body), 400, "bad_json")
    r = expect(alice.post("/v1/rooms", {"name": "titled", "title": "€" * 66 + "xx"}), 201).json  # 200 bytes
    assert r["title"] == "€" * 66 + "xx", r
    r = expect(alice.post("/v1/rooms", {"name": "untitled", "title": None}), 201).json
    assert r["title"] is None, r
    expect(alice.post("/v1/rooms", raw=b"{name}"), 400, "bad_json")
    names = sorted(x["name"] for x in expect(alice.get("/v1/rooms"), 200).json)
    assert names == ["0-x_y", "general", n64, "titled", "untitled"], names
    assert expect(bob.get("/v1/rooms"), 200).json == []


def test_rooms_list_last_id_and_unread(gw):
    alice, bob = alice_bob(gw)
    gw.room(alice, "quiet", title="Nothing here")
    gw.room(bob, "bobs")

    def rooms(c):
        out = expect(c.get("/v1/rooms"), 200).json
        assert isinstance(out, list), out
        for x in out:
            assert set(x) == {"name", "title", "owner", "last_id", "unread"}, x
        return {x["name"]: x for x in out}

    assert rooms(alice) == {
        "general": {"name": "general", "title": None, "owner": "alice", "last_id": 0, "unread": 0},
        "quiet": {"name": "quiet", "title": "Nothing here", "owner": "alice", "last_id": 0, "unread": 0},
    }
    assert rooms(bob) == {
        "general": {"name": "general", "title": None, "owner": "alice", "last_id": 0, "unread": 0},
        "bobs": {"name": "bobs", "title": None, "owner": "bob", "last_id": 0, "unread": 0},
    }
    for i in range(3):
        post(alice, "general", f"a{i}")
    post(bob, "general", "b0")
    post(bob, "bobs", "mine")
    a, b = rooms(alice), rooms(bob)
    assert (a["general"]["last_id"], a["general"]["unread"]) == (4, 1), a   # bob's one
    assert (b["general"]["last_id"], b["general"]["unread"]) == (3 + 1, 3), b  # own post excluded
    assert (b["bobs"]["last_id"], b["bobs"]["unread"]) == (1, 0), b
    assert (a["quiet"]["last_id"], a["quiet"]["unread"]) == (0, 0), a


def test_rooms_unread_after_receipt(gw, paho):
    """A read receipt over MQTT moves bob's marker: unread counts what lies after it."""
    alice, bob = alice_bob(gw)
    for i in range(5):
        post(alice, "general", f"m{i}")
    m = mqtt_login(paho, gw, "bob", bob.token)
    assert m.publish("rooms/general/receipts", json.dumps({"up_to": 3}), qos=1) == 0

    def unread():
        return {x["name"]: x["unread"] for x in expect(bob.get("/v1/rooms"), 200).json}["general"]
    wait_until(lambda: unread() == 2, 5.0, "bob's unread count to drop to 2 after his receipt up to 3")


def test_room_get(gw):
    alice, bob = alice_bob(gw)
    expect(alice.post("/v1/rooms/general/members", {"username": "carol"}), 404, "user_not_found")
    carol = gw.user("Carol")
    expect(alice.post("/v1/rooms/general/members", {"username": "carol"}), 201)
    post(bob, "general", "one")
    post(bob, "general", "two")
    want = {"name": "general", "title": None, "owner": "alice", "members": ["alice", "bob", "Carol"], "last_id": 2}
    for c in (alice, bob, carol):
        r = expect(c.get("/v1/rooms/general"), 200).json
        assert set(r) == set(want), r
        assert {**r, "members": sorted(r["members"], key=str.lower)} == want, r
    dave = gw.user("dave")
    expect(dave.get("/v1/rooms/general"), 403, "not_a_member")
    expect(dave.get("/v1/rooms/nosuchroom"), 404, "room_not_found")
    expect(alice.get("/v1/rooms/nosuchroom"), 404, "room_not_found")


# --- members ---------------------------------------------------------------------------------

def test_members_add(gw):
    alice = gw.user("alice")
    bob, carol = gw.user("Bob"), gw.user("carol")
    gw.room(alice, "general")
    r = expect(alice.post("/v1/rooms/general/members", {"username": "BOB"}), 201).json
    # The answer names the member as registered, whatever the spelling asked for.
    assert r == {"room": "general", "username": "Bob"}, r
    assert [x["name"] for x in expect(bob.get("/v1/rooms"), 200).json] == ["general"]
    expect(bob.get("/v1/rooms/general"), 200)
    # Only the owner adds: a member cannot (not_owner), nor can a stranger (not_a_member).
    expect(bob.post("/v1/rooms/general/members", {"username": "carol"}), 403, "not_owner")
    expect(carol.post("/v1/rooms/general/members", {"username": "carol"}), 403, "not_a_member")
    expect(carol.get("/v1/rooms/general"), 403, "not_a_member")
    expect(alice.post("/v1/rooms/general/members", {"username": "nobody"}), 404, "user_not_found")
    expect(alice.post("/v1/rooms/nosuchroom/members", {"username": "carol"}), 404, "room_not_found")
    expect(alice.post("/v1/rooms/general/members", {"username": "bob"}), 409, "already_member")
    expect(alice.post("/v1/rooms/general/members", {"username": 5}), 400, "bad_json")
    expect(alice.post("/v1/rooms/general/members", {}), 400, "invalid_username")
    members = expect(alice.get("/v1/rooms/general"), 200).json["members"]
    assert sorted(members) == ["Bob", "alice"], members


def test_members_remove(gw, paho):
    alice = gw.user("alice")
    bob, carol, dave = gw.user("bob"), gw.user("carol"), gw.user("dave")
    gw.room(alice, "general", members=["bob", "carol", "dave"])
    sub = mqtt_login(paho, gw, "bob", bob.token)
    assert sub.subscribe("rooms/general/messages", qos=1) == [1]
    # A member removes nobody but himself; a stranger nobody.
    outsider = gw.user("erin")
    expect(dave.delete("/v1/rooms/general/members/carol"), 403, "not_owner")
    expect(outsider.delete("/v1/rooms/general/members/carol"), 403, "not_a_member")
    # The owner removes bob: his subscription ends at once.
    expect_no_body(alice.delete("/v1/rooms/general/members/Bob"), 204)
    expect(bob.get("/v1/rooms/general"), 403, "not_a_member")
    assert expect(bob.get("/v1/rooms"), 200).json == []
    post(alice, "general", "after bob left")
    sub.expect_no_message(0.5)
    expect(bob.post("/v1/rooms/general/messages", {"body": "let me in"}), 403, "not_a_member")
    # carol leaves on her own.
    expect_no_body(carol.delete("/v1/rooms/general/members/carol"), 204)
    expect(carol.get("/v1/rooms/general"), 403, "not_a_member")
    members = expect(alice.get("/v1/rooms/general"), 200).json["members"]
    assert sorted(members) == ["alice", "dave"], members
    expect(alice.delete("/v1/rooms/nosuchroom/members/dave"), 404, "room_not_found")
    expect(alice.delete("/v1/rooms/general/members/nobody"), 403, "not_a_member")
    expect(alice.delete("/v1/rooms/general/members/erin"), 403, "not_a_member")
    # The owner stays: a room without its owner could never get members again.
    expect(alice.delete("/v1/rooms/general/members/Alice"), 409, "owner_cannot_leave")
    assert sorted(expect(alice.get("/v1/rooms/general"), 200).json["members"]) == ["alice", "dave"]


# --- messages --------------------------------------------------------------------------------

def test_post_201_and_ckey_200(gw):
    alice, bob = alice_bob(gw)
    e1 = post(alice, "general", "hi")
    check_post(e1, 1, "general", "alice", "hi")
    e2 = post(bob, "general", "with a key", ckey="c-1")
    check_post(e2, 2, "general", "bob", "with a key", ckey="c-1")
    # The same ckey again from bob: 200 and the original envelope, nothing new.
    again = expect(bob.post("/v1/rooms/general/messages", {"body": "different text", "ckey": "c-1"}), 200).json
    assert again == e2
    # The same ckey from alice, or in another room, is another message.
    e3 = post(alice, "general", "alice's c-1", ckey="c-1")
    check_post(e3, 3, "general", "alice", "alice's c-1", ckey="c-1")
    # Boundaries: a body of 16384 bytes, a ckey of 64 characters, multi-byte text.
    big = "€" * 5461 + "x"  # 16384 bytes
    e4 = post(bob, "general", big, ckey="k" * 64)
    check_post(e4, 4, "general", "bob", big, ckey="k" * 64)
    e5 = post(bob, "general", "日本語 🎉 \"quoted\" \\ \n newline")
    check_post(e5, 5, "general", "bob", "日本語 🎉 \"quoted\" \\ \n newline")
    assert history(alice, "general") == {"messages": [e1, e2, e3, e4, e5], "has_more": False}
    # A null ckey is no ckey.
    e6 = expect(bob.post("/v1/rooms/general/messages", {"body": "no key", "ckey": None}), 201).json
    check_post(e6, 6, "general", "bob", "no key")


def test_post_body_with_nul_is_kept_whole(gw):
    """A body may hold U+0000: the live envelope and the history both keep all of it (the
    store once bound text as a C string, so history held "" for a body of one U+0000,
    which schemathesis caught against the schema's minLength, and "a" for "a\u0000b")."""
    alice, bob = alice_bob(gw)
    for i, body in enumerate(["\u0000", "a\u0000b", "\u0000" * 3 + "tail"], start=1):
        e = post(bob, "general", body)
        check_post(e, i, "general", "bob", body)
    page = history(alice, "general")
    assert [m["body"] for m in page["messages"]] == ["\u0000", "a\u0000b", "\u0000" * 3 + "tail"], page


@pytest.mark.parametrize("body,code", [
    ({"body": ""}, INVALID_BODY),
    ({"body": "x" * 16385}, INVALID_BODY),
    ({"body": "€" * 5462}, INVALID_BODY),  # 5462 characters, 16386 bytes
    ({"body": "hi", "ckey": ""}, INVALID_BODY),
    ({"body": "hi", "ckey": "k" * 65}, INVALID_BODY),
    ({"body": 5}, "bad_json"),
    ({"body": None}, INVALID_BODY),
    ({"body": "hi", "ckey": 5}, "bad_json"),
    ({}, INVALID_BODY),
    ({"text": "hi"}, INVALID_BODY),
    ("hi", "bad_json"),
    ([{"body": "hi"}], "bad_json"),
])
def test_post_400(gw, body, code):
    alice, bob = alice_bob(gw)
    e1 = post(alice, "general", "before")
    expect(bob.post("/v1/rooms/general/messages", body), 400, code)
    # Nothing was stored: the next post is id 2.
    check_post(post(alice, "general", "after"), 2, "general", "alice", "after")
    assert ids(history(alice, "general")) == [1, 2] and history(alice, "general")["messages"][0] == e1


@pytest.mark.parametrize("raw", [b"", b"hi", b"{\"body\": ", b"{\"body\": \"\xff\"}"])
def test_post_bad_json(gw, raw):
    alice, _ = alice_bob(gw)
    expect(alice.post("/v1/rooms/general/messages", raw=raw), 400, "bad_json")
    assert history(alice, "general")["messages"] == []


def test_post_403_404(gw):
    alice, bob = alice_bob(gw)
    carol = gw.user("carol")
    expect(carol.post("/v1/rooms/general/messages", {"body": "hi"}), 403, "not_a_member")
    expect(alice.post("/v1/rooms/nosuchroom/messages", {"body": "hi"}), 404, "room_not_found")
    expect(carol.get("/v1/rooms/general/messages"), 403, "not_a_member")
    expect(alice.get("/v1/rooms/nosuchroom/messages"), 404, "room_not_found")
    assert history(alice, "general")["messages"] == []


def test_post_rate_limited_429(gateway):
    # 3 at once, then one per 100 s: the 4th is refused however slowly the first three go.
    gw = gateway(config="http_auth_rate = 1000/1000\nchat_post_rate = 0.01/3\n")
    alice = gw.user("alice")
    gw.room(alice, "general")
    for i in range(3):
        post(alice, "general", f"m{i}")
    expect_429(alice.post("/v1/rooms/general/messages", {"body": "one too many"}))
    assert ids(history(alice, "general")) == [1, 2, 3]


def test_auth_rate_limited_429(gateway):
    """http_auth_rate: sign-up and token requests per source address (per second / burst)."""
    gw = gateway(config="http_auth_rate = 0.01/3\n")  # 3 at once, then one per 100 s
    c = gw.http()
    for i in range(2):
        expect(c.post("/v1/users", {"username": f"user{i}", "password": pw("x")}), 201)
    expect(c.post("/v1/tokens", {"username": "user0", "password": pw("x")}), 201)
    expect_429(c.post("/v1/users", {"username": "user9", "password": pw("x")}))
    expect_429(c.post("/v1/tokens", {"username": "user0", "password": pw("x")}))
    # Other routes are not limited.
    expect(c.get("/healthz"), 200)


def test_messages_paging(gw):
    alice, bob = alice_bob(gw)
    sent = [post(alice if i % 2 else bob, "general", f"message {i}") for i in range(1, 121)]
    assert [e["id"] for e in sent] == list(range(1, 121))
    by_id = {e["id"]: e for e in sent}

    def page(query, want_ids, more):
        p = history(bob, "general", query)
        assert ids(p) == list(want_ids), f"{query}: {ids(p)}"
        assert p["has_more"] is more, f"{query}: has_more {p['has_more']}"
        assert p["messages"] == [by_id[i] for i in want_ids]

    page("", range(71, 121), True)                       # default: the newest 50
    page("?before=71", range(21, 71), True)               # paging back
    page("?before=21", range(1, 21), False)
    page("?before=1", [], False)
    page("?after=0", range(1, 51), True)                  # paging forward
    page("?after=50", range(51, 101), True)
    page("?after=100", range(101, 121), False)
    page("?after=120", [], False)
    page("?after=1000", [], False)
    page("?after=10&before=20", range(11, 20), False)
    page("?after=10&before=20&limit=5", range(11, 16), True)
    page("?before=20&limit=5", range(15, 20), True)
    page("?limit=1", [120], True)
    page("?limit=119", range(2, 121), True)
    page("?limit=120", range(1, 121), False)
    page("?limit=500", range(1, 121), False)
    page("?after=0&limit=500", range(1, 121), False)
    page("?before=9223372036854775807&limit=2", [119, 120], True)


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=-1", "limit=abc", "limit=1.5", "limit=",
                                   "before=-1", "before=x", "after=-5", "after=1e3", "after=0x10",
                                   "after=99999999999999999999999"])
def test_messages_400(gw, query):
    alice, _ = alice_bob(gw)
    post(alice, "general", "hi")
    expect(alice.get(f"/v1/rooms/general/messages?{query}"), 400, BAD_QUERY)


def test_messages_limit_500_of_more(gw):
    alice = gw.user("alice")
    gw.room(alice, "big")
    for i in range(505):
        post(alice, "big", str(i))
    p = history(alice, "big", "?limit=500")
    assert ids(p) == list(range(6, 506)) and p["has_more"] is True
    p = history(alice, "big", "?after=5&limit=500")
    assert ids(p) == list(range(6, 506)) and p["has_more"] is False
    expect(alice.get("/v1/rooms/big/messages?limit=501"), 400, BAD_QUERY)


# --- REST and MQTT are the same thing --------------------------------------------------------

def mqtt_login(paho, gw, user, token, version=5):
    """A paho client logged in as `user` with an access token in the password field."""
    c = paho(gw.port, client_id=f"{user}-{uuid.uuid4().hex[:6]}", version=version)
    with c._lock:
        c.c.username_pw_set(user, token)
    c.connect()
    return c


def test_rest_post_reaches_mqtt_subscribers(gw, paho):
    alice, bob = alice_bob(gw)
    sub5 = mqtt_login(paho, gw, "bob", bob.token, version=5)
    sub4 = mqtt_login(paho, gw, "bob", bob.token, version=4)
    assert sub5.subscribe("rooms/general/messages", qos=1) == [1]
    assert sub4.subscribe("rooms/+/messages", qos=1) == [1]
    e = post(alice, "general", "over REST", ckey="r-1")
    for sub in (sub5, sub4):
        m = sub.get(5.0)
        assert m.topic == "rooms/general/messages", m
        assert json.loads(m.payload) == e, (m.payload, e)
    # A repeated ckey over REST delivers nothing twice.
    expect(alice.post("/v1/rooms/general/messages", {"body": "over REST", "ckey": "r-1"}), 200)
    sub5.expect_no_message(0.5)


def test_rest_post_v5_user_properties(gw, paho):
    alice, bob = alice_bob(gw)
    sub = mqtt_login(paho, gw, "bob", bob.token)
    assert sub.subscribe("rooms/general/messages", qos=1) == [1]
    e = post(alice, "general", "props")
    m = sub.get(5.0)
    assert json.loads(m.payload) == e
    up = dict(user_props(m))
    assert up.get("parley-id") == str(e["id"]) and up.get("parley-from") == "alice" \
        and up.get("parley-ts") == e["ts"], up


def test_mqtt_post_in_rest_history(gw, paho):
    alice, bob = alice_bob(gw)
    pub = mqtt_login(paho, gw, "bob", bob.token)
    sub = mqtt_login(paho, gw, "alice", alice.token)
    assert sub.subscribe("rooms/general/messages", qos=1) == [1]
    post(alice, "general", "first, over REST")
    first = sub.get(5.0)
    assert pub.publish("rooms/general/messages", json.dumps({"body": "second, over MQTT", "ckey": "m-1"}), qos=1) == 0
    assert pub.publish("rooms/general/messages", "third, plain text", qos=1) == 0
    got = [first] + [sub.get(5.0) for _ in range(2)]
    envs = [json.loads(m.payload) for m in got]
    check_post(envs[1], 2, "general", "bob", "second, over MQTT", ckey="m-1")
    check_post(envs[2], 3, "general", "bob", "third, plain text")
    assert history(alice, "general") == {"messages": envs, "has_more": False}
    # The MQTT post's ckey is the REST post's ckey: repeating it over REST returns the original.
    assert expect(bob.post("/v1/rooms/general/messages", {"body": "again", "ckey": "m-1"}), 200).json == envs[1]
    # An MQTT post that REST would refuse is refused over MQTT as well (v5: 0x99).
    assert pub.publish("rooms/general/messages", json.dumps({"body": ""}), qos=1) == 0x99
    assert ids(history(alice, "general")) == [1, 2, 3]


# --- routes, methods, HEAD -------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"), ("GET", "/v1"), ("GET", "/v1/"), ("POST", "/v1/nope"), ("GET", "/v1/users/alice"),
    ("GET", "/v1/rooms/general/extra"), ("GET", "/v1/rooms/general/members/bob/x"),
    ("GET", "/v1/devices/x/y"), ("POST", "/v1/push"),
    ("GET", "/index.html/x"), ("GET", "/index.html"), ("DELETE", "/nope/nope"),
])
def test_404_unknown_route(gw, method, path):
    alice = gw.user("alice")
    r = alice.request(method, path)
    expect(r, 404, "not_found")
    # The keep-alive connection goes on.
    expect(alice.get("/healthz"), 200)


ALLOW = {
    "/v1/users": {"POST"},
    "/v1/tokens": {"POST"},
    "/v1/tokens/current": {"DELETE"},
    "/v1/me": {"GET", "PATCH", "DELETE"},
    "/v1/rooms": {"GET", "POST"},
    "/v1/rooms/general": {"GET"},
    "/v1/rooms/general/members": {"POST"},
    "/v1/rooms/general/members/bob": {"DELETE"},
    "/v1/rooms/general/messages": {"GET", "POST"},
    "/healthz": {"GET"},
    "/metrics": {"GET"},
    "/openapi.json": {"GET"},
    "/": {"GET"},
    "/mqtt": {"GET"},
}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "TRACE", "QUERY"]


def allow_set(value):
    return {m.strip().upper() for m in (value or "").split(",") if m.strip()}


@pytest.mark.parametrize("path", sorted(ALLOW))
def test_405_with_allow(gw, path):
    alice, _ = alice_bob(gw)
    for method in METHODS:
        if method in ALLOW[path]:
            continue
        for token in (alice.token, ""):
            r = alice.request(method, path, token=token)
            expect(r, 405, "method_not_allowed")
            allowed = allow_set(r.header("Allow"))
            # HEAD goes wherever GET does; OPTIONS may be listed.
            assert allowed - {"HEAD", "OPTIONS"} == ALLOW[path], f"{method} {path}: Allow {r.header('Allow')!r}"
            assert ("HEAD" in allowed) == ("GET" in ALLOW[path]), f"{method} {path}: Allow {r.header('Allow')!r}"
    expect(alice.get("/healthz"), 200)


def test_head(gw):
    alice, _ = alice_bob(gw)
    post(alice, "general", "hi")
    for path, token in [("/healthz", ""), ("/", ""), ("/openapi.json", ""), ("/metrics", ""),
                        ("/v1/me", alice.token), ("/v1/rooms", alice.token),
                        ("/v1/rooms/general", alice.token), ("/v1/rooms/general/messages", alice.token)]:
        g = alice.get(path, token=token)
        assert g.status == 200, (path, g)
        h = alice.request("HEAD", path, token=token)
        assert h.status == 200 and h.body == b"", (path, h)
        assert h.header("Content-Type") == g.header("Content-Type"), (path, h, g)
        if path != "/metrics":  # the counters move between the two requests
            assert h.header("Content-Length") == str(len(g.body)), (path, h, len(g.body))
    # HEAD on an authenticated route needs the token too.
    h = alice.request("HEAD", "/v1/me", token="")
    assert h.status == 401 and h.body == b"" and (h.header("WWW-Authenticate") or "").startswith("Bearer"), h
    # Nothing of a body was sent after a HEAD answer: the connection still reads right.
    assert expect(alice.get("/healthz"), 200).json == {"status": "ok"}


def raw_http(port, data, timeout=5.0):
    """Sends `data` on a fresh socket; returns everything read until the server closes it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                raise AssertionError(f"server did not close the connection; got {out[:300]!r}")
            except ConnectionResetError:
                return out
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


def parse_raw(answer):
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", len(body)))
    return status, headers, body[:n]


@pytest.mark.parametrize("request_bytes,status,code", [
    (b"GARBAGE\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, "bad_request"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 17000 + b"\r\n\r\n", 431, "headers_too_large"),
    (b"POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{",
     413, "body_too_large"),
    (b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505, "version_not_supported"),
    (b"POST /v1/users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "not_implemented"),
    (b"POST /v1/users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "bad_request"),  # RFC 9112 6.3
    (b"POST /v1/users HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}", 417,
     "expectation_failed"),
])
def test_limits_and_malformed(gw, request_bytes, status, code):
    """A malformed request or one over a limit: the status, the error object, and the end of
    the connection (the server does not wait for what is left)."""
    got, headers, body = parse_raw(raw_http(gw.http_port, request_bytes))
    assert got == status, (got, headers, body)
    e = json.loads(body)
    assert set(e) == {"error", "message"} and e["error"] == code, e
    # The gateway goes on serving.
    expect(gw.http().get("/healthz"), 200)


def test_408_slow_request(gateway):
    """http_header_timeout: a request whose head does not arrive in time gets 408 and the end."""
    gw = gateway(config=BASE_CONFIG + "http_header_timeout = 1s\n")
    started = time.monotonic()
    got, _, body = parse_raw(raw_http(gw.http_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", timeout=10))
    assert got == 408 and json.loads(body)["error"] == "timeout", (got, body)
    assert time.monotonic() - started >= 0.9, "408 before the timeout"
    expect(gw.http().get("/healthz"), 200)


def test_pipelining(gw):
    """Three requests in one write on one connection: three answers, in order."""
    alice, _ = alice_bob(gw)
    s = socket.create_connection(("127.0.0.1", gw.http_port), timeout=5)
    try:
        auth = f"Authorization: Bearer {alice.token}\r\n".encode()
        body = b'{"body":"piped"}'
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                  + b"POST /v1/rooms/general/messages HTTP/1.1\r\nHost: x\r\n" + auth
                  + b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                  + b"GET /v1/rooms/general/messages HTTP/1.1\r\nHost: x\r\n" + auth + b"Connection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    answers = []
    while data:
        status, headers, body = parse_raw(data)
        answers.append((status, json.loads(body)))
        head_len = data.index(b"\r\n\r\n") + 4
        data = data[head_len + int(headers["content-length"]):]
    assert [a[0] for a in answers] == [200, 201, 200], answers
    assert answers[0][1] == {"status": "ok"}
    check_post(answers[1][1], 1, "general", "alice", "piped")
    assert answers[2][1] == {"messages": [answers[1][1]], "has_more": False}


# --- operations: health, metrics, the document, the web client ---------------------------------

def test_healthz(gw):
    r = expect(gw.http().get("/healthz"), 200)
    assert r.json == {"status": "ok"}


def test_web_client(gw):
    r = expect(gw.http().get("/"), 200)
    assert (r.header("Content-Type") or "").split(";")[0].strip() == "text/html", r
    assert b"<html" in r.body.lower() or b"<!doctype html" in r.body.lower(), r.body[:200]


def test_openapi_document(gw):
    from openapi_spec_validator import validate
    r = expect(gw.http().get("/openapi.json"), 200)
    with open(OPENAPI_FILE, "rb") as f:
        assert r.body == f.read(), "GET /openapi.json is not Sources/Gateway/Web/openapi.json"
    doc = r.json
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    # Every route of SPEC section 4 is in it.
    want = {"/v1/users": {"post"}, "/v1/tokens": {"post"}, "/v1/tokens/current": {"delete"},
            "/v1/me": {"get", "patch", "delete"}, "/v1/rooms": {"get", "post"}, "/v1/rooms/{room}": {"get"},
            "/v1/rooms/{room}/members": {"post"}, "/v1/rooms/{room}/members/{user}": {"delete"},
            "/v1/rooms/{room}/messages": {"get", "post"}, "/healthz": {"get"}, "/metrics": {"get"},
            "/openapi.json": {"get"}, "/": {"get"}, "/mqtt": {"get"}, "/v1/devices": {"get", "post"},
            "/v1/devices/{id}": {"delete"}, "/v1/push/vapid": {"get"}}
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    got = {p: {m for m in item if m in methods} for p, item in doc["paths"].items()}
    for p, ms in want.items():
        assert got.get(p) == ms, (p, got.get(p))
    # Every operation of the document is routed (not 404 not_found, not 405) and every
    # authenticated one answers 401 + WWW-Authenticate without a token.
    c = gw.http()
    for p, ms in got.items():
        path = p.replace("{room}", "general").replace("{user}", "bob").replace("{id}", "dev_nosuchdevice0000")
        for m in ms:
            o = doc["paths"][p][m]
            r = c.request(m.upper(), path, token="")
            assert r.status != 405 and not (r.status == 404 and r.body and json.loads(r.body).get("error") == "not_found"), \
                (m, p, r)
            if o.get("security"):
                expect_401(r)
            assert str(r.status) in o["responses"], (m, p, r.status, sorted(o["responses"]))


def metric_families(text):
    from prometheus_client.parser import text_string_to_metric_families
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams, family, name, **labels):
    f = fams.get(family)
    if f is None:
        return 0.0
    total = 0.0
    for s in f.samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            total += s.value
    return total


def test_metrics(gw, paho):
    alice, bob = alice_bob(gw)
    c = gw.http()

    def scrape():
        r = expect(c.get("/metrics"), 200)
        ctype = r.header("Content-Type") or ""
        assert ctype.split(";")[0].strip() == "text/plain" and "version=0.0.4" in ctype, ctype
        return metric_families(r.body.decode())

    m0 = scrape()
    types = {
        "parley_connections": "gauge", "parley_messages_received": "counter", "parley_messages_sent": "counter",
        "parley_messages_dropped": "counter", "parley_queued_messages": "gauge",
        "parley_store_commit_seconds": "histogram", "parley_chat_posts": "counter", "parley_users_online": "gauge",
        "parley_http_requests": "counter", "parley_http_request_seconds": "histogram",
    }
    for name, kind in types.items():
        assert name in m0, f"{name} missing; have {sorted(m0)}"
        assert m0[name].type == kind, (name, m0[name].type)
    for listener in ("mqtt", "ws"):
        assert any(s.labels.get("listener") == listener for s in m0["parley_connections"].samples), \
            m0["parley_connections"].samples
    route = "/v1/rooms/{room}/messages"
    get0 = sample(m0, "parley_http_requests", "parley_http_requests_total", route=route, method="GET", status="200")
    post0 = sample(m0, "parley_http_requests", "parley_http_requests_total", route=route, method="POST", status="201")
    posts0 = sample(m0, "parley_chat_posts", "parley_chat_posts_total")
    hist0 = sample(m0, "parley_http_request_seconds", "parley_http_request_seconds_count", route=route)
    online0 = sample(m0, "parley_users_online", "parley_users_online")
    mqtt0 = sample(m0, "parley_connections", "parley_connections", listener="mqtt")

    for i in range(3):
        post(alice, "general", f"m{i}")
    history(bob, "general")
    history(bob, "general", "?limit=1")
    expect(bob.get("/v1/rooms/general/messages?limit=0"), 400, BAD_QUERY)
    m = mqtt_login(paho, gw, "bob", bob.token)
    assert m.publish("rooms/general/messages", "over mqtt", qos=1) == 0

    m1 = scrape()
    assert sample(m1, "parley_http_requests", "parley_http_requests_total", route=route, method="GET",
                  status="200") == get0 + 2
    assert sample(m1, "parley_http_requests", "parley_http_requests_total", route=route, method="GET",
                  status="400") >= 1
    assert sample(m1, "parley_http_requests", "parley_http_requests_total", route=route, method="POST",
                  status="201") == post0 + 3
    assert sample(m1, "parley_chat_posts", "parley_chat_posts_total") == posts0 + 4  # 3 REST + 1 MQTT
    assert sample(m1, "parley_http_request_seconds", "parley_http_request_seconds_count", route=route) >= hist0 + 6
    # Gauges: bob's MQTT session (presence may be applied a moment after the CONNACK).
    wait_until(lambda: sample(scrape(), "parley_users_online", "parley_users_online") == online0 + 1, 5.0,
               "parley_users_online to count bob")
    wait_until(lambda: sample(scrape(), "parley_connections", "parley_connections", listener="mqtt") == mqtt0 + 1,
               5.0, "parley_connections{listener=mqtt} to count bob's connection")
    # Route labels are templates, never the raw path (bounded cardinality).
    for s in m1["parley_http_requests"].samples:
        assert "general" not in s.labels.get("route", ""), s


# --- /mqtt: the WebSocket handshake ----------------------------------------------------------

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_handshake(port, headers):
    key = base64.b64encode(os.urandom(16)).decode()
    h = {"Host": f"127.0.0.1:{port}", "Upgrade": "websocket", "Connection": "Upgrade",
         "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13", "Sec-WebSocket-Protocol": "mqtt"}
    h.update(headers)
    req = "GET /mqtt HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items() if v is not None) + "\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(req.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return s, key, data


def ws_frame(payload, opcode=2):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def mqtt_connect_v4(client_id, username, password):
    def s(b):
        return struct.pack("!H", len(b)) + b
    var = s(b"MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 30)
    payload = s(client_id.encode()) + s(username.encode()) + s(password.encode())
    body = var + payload
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


def test_mqtt_websocket_upgrade(gw):
    alice = gw.user("alice")
    s, key, data = ws_handshake(gw.http_port, {})
    try:
        status, headers, _ = parse_raw(data)
        assert status == 101, data
        assert headers.get("upgrade", "").lower() == "websocket", headers
        assert headers.get("sec-websocket-accept") == base64.b64encode(
            hashlib.sha1((key + WS_GUID).encode()).digest()).decode(), headers
        assert headers.get("sec-websocket-protocol") == "mqtt", headers
        # An MQTT CONNECT with the REST token in the password field; CONNACK 0 in a binary frame.
        s.sendall(ws_frame(mqtt_connect_v4("ws-" + uuid.uuid4().hex[:6], "alice", alice.token)))
        frame = b""
        while len(frame) < 6:
            chunk = s.recv(64)
            assert chunk, f"closed; got {frame!r}"
            frame += chunk
        assert frame[:6] == bytes([0x82, 4, 0x20, 2, 0, 0]), frame
    finally:
        s.close()


@pytest.mark.parametrize("headers,status", [
    ({"Sec-WebSocket-Version": None}, 426),
    ({"Sec-WebSocket-Version": "8"}, 426),
    ({"Upgrade": None, "Connection": None}, 426),
    ({"Upgrade": "h2c"}, 426),
    ({"Sec-WebSocket-Key": None}, 400),
    ({"Sec-WebSocket-Key": "c2hvcnQ="}, 400),
    ({"Connection": "keep-alive"}, 400),
    ({"Sec-WebSocket-Protocol": "wamp"}, 400),
])
def test_mqtt_websocket_refused(gw, headers, status):
    s, _, data = ws_handshake(gw.http_port, headers)
    s.close()
    got, h, _ = parse_raw(data)
    assert got == status, data
    if status == 426:
        assert h.get("sec-websocket-version") == "13", h


def test_mqtt_websocket_origins(gateway):
    """ws_origins: only those Origin values may open /mqtt (a request without Origin, from a
    non-browser client, may)."""
    gw = gateway(config=BASE_CONFIG + "ws_origins = http://good.example\n")
    for origin, status in [("http://evil.example", 403), ("http://good.example", 101), (None, 101)]:
        s, _, data = ws_handshake(gw.http_port, {"Origin": origin})
        s.close()
        got, _, body = parse_raw(data)
        assert got == status, (origin, data)
        if status == 403:
            assert json.loads(body)["error"] == "origin_not_allowed", body


# --- schemathesis ----------------------------------------------------------------------------

SCHEMATHESIS_TIMEOUT = 300
DESTRUCTIVE = ["revokeToken", "updateMe", "deleteMe"]  # they end the run's token
# A Web Push key must be a point on P-256, which JSON Schema cannot say: schema-valid keys off
# the curve are refused (400 invalid_device), so addDevice runs without the check that every
# schema-valid request is accepted (test_devices_400_invalid_device covers the refusals).
CURVE_BOUND = ["addDevice"]
# --generation-codec ascii: the limits on passwords (8-256) and post bodies (1-16384) are in
# bytes of UTF-8, which JSON Schema's minLength / maxLength (characters) cannot say; with ASCII
# strings the two agree, so "valid" and "invalid" mean what the gateway means. Non-ASCII input
# is tested above (test_signup_201, test_signup_400, test_post_201_and_ckey_200, test_post_400).


def schemathesis(gw, token, select, tmp_path):
    args = ["schemathesis", "run", f"{gw.base}/openapi.json", "--checks", "all", "--max-examples", "20",
            "--no-color", "--generation-database", "none", "--generation-codec", "ascii",
            "-H", f"Authorization: Bearer {token}",
            "--exclude-path", "/mqtt", *select]
    try:
        p = subprocess.run(args, capture_output=True, timeout=SCHEMATHESIS_TIMEOUT, cwd=tmp_path,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"schemathesis did not finish within {SCHEMATHESIS_TIMEOUT}s:\n"
                             + (e.stdout or b"").decode(errors="replace")[-5000:])
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    assert p.returncode == 0, f"schemathesis exit {p.returncode}:\n{out[-20000:]}"
    return out


def test_schemathesis(gw, tmp_path):
    """schemathesis drives every operation of the document (except the WebSocket upgrade,
    which it cannot speak) with generated requests: each answer must be documented (status,
    content type, headers, body schema), valid requests accepted, invalid ones refused, no
    5xx. The operations that end the run's token (log-out, a password change, deleting the
    account) run afterwards, each with a token of its own, taken before the first run's
    failed logins lock the address out."""
    alice, bob = alice_bob(gw)
    post(alice, "general", "something to page through")
    own = {}
    for op in DESTRUCTIVE:
        name = "fz-" + op.lower()
        gw.signup(name)
        own[op] = gw.login(name)
    schemathesis(gw, alice.token, [f"--exclude-operation-id={o}" for o in DESTRUCTIVE + CURVE_BOUND], tmp_path)
    schemathesis(gw, alice.token, [f"--include-operation-id={o}" for o in CURVE_BOUND]
                 + ["--exclude-checks", "positive_data_acceptance"], tmp_path)
    for op in DESTRUCTIVE:
        schemathesis(gw, own[op], [f"--include-operation-id={op}"], tmp_path)
    # The broker survived it all and still serves.
    expect(gw.http().get("/healthz"), 200)


# --- devices and the VAPID key (SPEC 5) -------------------------------------------------------

DEVICE_ID_RE = re.compile(r"^dev_[A-Za-z0-9_-]{16}$")
P256DH = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
AUTH = "BTBZMqHH6r4Tts7J_aSIgg"


def test_devices_register_list_remove(gw):
    alice, bob = gw.user("alice"), gw.user("bob")
    hook = expect(alice.post("/v1/devices", {"kind": "webhook", "url": "https://hooks.example.com/parley"}), 201)
    d = hook.json
    assert DEVICE_ID_RE.match(d["id"]) and d["kind"] == "webhook" and d["url"] == "https://hooks.example.com/parley", d
    assert d["secret"].startswith("whsec_") and len(base64.b64decode(d["secret"][6:])) == 32, d
    assert hook.header("Location") == f"/v1/devices/{d['id']}"
    given = "whsec_" + base64.b64encode(b"k" * 24).decode()
    mine = expect(alice.post("/v1/devices", {"kind": "webhook", "url": "http://127.0.0.1:9/x", "secret": given}), 201).json
    assert mine["secret"] == given, mine
    ntfy = expect(alice.post("/v1/devices", {"kind": "ntfy", "url": "https://ntfy.example.net/alice"}), 201).json
    push = expect(alice.post("/v1/devices", {"kind": "webpush", "endpoint": "https://push.example.org/wpush/abc",
                                             "keys": {"p256dh": P256DH, "auth": AUTH}}), 201).json
    assert push["endpoint"] == "https://push.example.org/wpush/abc" and "secret" not in push and "url" not in push, push
    listed = expect(alice.get("/v1/devices"), 200).json
    assert [x["id"] for x in listed] == [d["id"], mine["id"], ntfy["id"], push["id"]], listed
    assert all("secret" not in x for x in listed), listed
    assert expect(bob.get("/v1/devices"), 200).json == []
    # Only the owner removes a device; a removed one is gone.
    expect(bob.delete(f"/v1/devices/{d['id']}"), 404, "device_not_found")
    expect_no_body(alice.delete(f"/v1/devices/{d['id']}"), 204)
    expect(alice.delete(f"/v1/devices/{d['id']}"), 404, "device_not_found")
    assert [x["id"] for x in expect(alice.get("/v1/devices"), 200).json] == [mine["id"], ntfy["id"], push["id"]]


@pytest.mark.parametrize("body", [
    {"kind": "email", "url": "https://x.example.com"},
    {"kind": "webhook"},
    {"kind": "webhook", "url": "ftp://x.example.com/a"},
    {"kind": "webhook", "url": "http://x.example.com/a"},           # plain HTTP only to this machine
    {"kind": "webhook", "url": "https://user@x.example.com/a"},
    {"kind": "webhook", "url": "https://x.example.com/a b"},
    {"kind": "webhook", "url": "https://x.example.com/" + "a" * 2100},
    {"kind": "webhook", "url": "https://x.example.com/", "secret": "nope"},
    {"kind": "ntfy", "url": 5},
    {"kind": "webpush", "endpoint": "https://push.example.org/x"},
    {"kind": "webpush", "endpoint": "https://push.example.org/x", "keys": {"p256dh": "AAAA", "auth": AUTH}},
    {"kind": "webpush", "endpoint": "https://push.example.org/x", "keys": {"p256dh": P256DH, "auth": "AAAA"}},
])
def test_devices_400_invalid_device(gw, body):
    alice = gw.user("alice")
    expect(alice.post("/v1/devices", body), 400, "invalid_device")
    assert expect(alice.get("/v1/devices"), 200).json == []


def test_devices_401_and_bad_json(gw):
    alice = gw.user("alice")
    expect_401(gw.http().get("/v1/devices"))
    expect_401(gw.http().post("/v1/devices", {"kind": "ntfy", "url": "https://n.example.com/a"}))
    expect(alice.post("/v1/devices", raw=b"[1,2]"), 400, "bad_json")
    expect(alice.post("/v1/devices", raw=b"{nope"), 400, "bad_json")


def test_delete_me_removes_devices(gw):
    alice = gw.user("alice")
    expect(alice.post("/v1/devices", {"kind": "ntfy", "url": "https://n.example.com/a"}), 201)
    expect_no_body(alice.delete("/v1/me"), 204)
    again = gw.user("alice")  # the name is free again; the devices did not survive
    assert expect(again.get("/v1/devices"), 200).json == []


def test_vapid_key_is_made_once_and_kept(gateway):
    g = gateway()
    key = expect(g.http().get("/v1/push/vapid"), 200).json
    assert set(key) == {"public_key"} and re.fullmatch(r"[A-Za-z0-9_-]{87}", key["public_key"]), key
    raw = base64.urlsafe_b64decode(key["public_key"] + "=")
    assert len(raw) == 65 and raw[0] == 4, raw  # an uncompressed P-256 point
    assert expect(g.http().get("/v1/push/vapid"), 200).json == key
    rc = g.broker.terminate()
    assert rc == 0
    g.broker._reader.join(timeout=1)
    mark = len(g.broker.log())
    g.broker.port = None
    g.broker.start()
    line = g.broker.wait_log(r"protocol=http\b", after=mark)
    g.http_port = int(HTTP_RE.search(line).group(1))
    assert expect(g.http().get("/v1/push/vapid"), 200).json == key
