"""The web chat client (`GET /` on the HTTP gateway, Sources/Gateway/Web/) in real headless
Chromium browsers driven by Selenium, against the real binary with `--plugins chat,gateway`.

- `test_static_files_are_the_sources`: `/`, `/app.js`, `/mqtt.js`, `/app.css` are served with
  their content types and are byte for byte the files in Sources/Gateway/Web (the embedded copy
  is current).
- `test_mqtt_js_codec_under_node`: Tests/web/mqtt_codec_test.mjs (`node --test`): mqtt.js's codec
  against MQTT.js's mqtt-packet, and its client against a fake WebSocket.
- `test_two_browsers_chat`: alice and bob sign up in their own browsers (alice logs out and in
  again), alice makes a room and adds bob, who sees it appear with an unread count; typing,
  live posts both ways, read receipts ("seen by"), presence dots; bob's browser goes offline
  (DevTools network emulation, and its WebSocket cut) while alice posts and bob writes, and
  after the reconnect bob has every message in id order with no gap, his own post sent once.
- `test_history_scroll_back`: 130 messages posted over REST; the page shows the newest 50 and
  scrolling to the top loads the older pages, in order, without the view jumping.
- `test_push_offer`: with the notification plugin on, the page registers its service worker
  (/sw.js, active on scope /) and shows the Web Push button; clicking it with notification
  permission granted asks the browser for a subscription with Parley's VAPID key (the sandbox has
  no push service to reach, so the browser's refusal is what comes back, and no device is made).
- `test_reconnect_after_broker_restart`: the broker stops and comes back on the same port; the
  page reconnects with its stored token and fetches what was posted before it was back.

Chromium, chromedriver and selenium are required (Tests/setup.sh installs them): if one is
missing the tests fail, they are not skipped. Waits are WebDriverWait / wait_until with
bounds. PARLEY_SCREENSHOT=1 saves alice's view at the end of the chat test to
Tests/web/screenshot.png (for the README).
"""

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO, wait_until

HTTP_LISTEN_RE = r"event=listener\.open address=127\.0\.0\.1:(\d+) protocol=http\b"
GATEWAY_ARGS = ["--plugins", "chat,gateway", "--http", "127.0.0.1:0"]
CONFIG = "http_auth_rate = 1000/1000\nsys_interval = 1\n"
WEB_DIR = os.path.join(REPO, "Sources", "Gateway", "Web")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 15.0          # seconds for anything the page should show
RECONNECT_WAIT = 30.0  # the back-off is at most 15 s


# --- the broker with the gateway -------------------------------------------------------------

def http_port(broker):
    line = broker.wait_log(HTTP_LISTEN_RE, timeout=10.0)
    return int(re.search(HTTP_LISTEN_RE, line).group(1))


@pytest.fixture
def gateway(start_broker, monkeypatch):
    """A broker with the chat plugin and the gateway; returns (broker, base URL)."""
    monkeypatch.setenv("PARLEY_SCRYPT_LN", "10")  # cheap password hashing for the sign-ups
    b = start_broker(config_text=CONFIG, extra_args=GATEWAY_ARGS)
    return b, f"http://127.0.0.1:{http_port(b)}"


def rest(base, method, path, body=None, token=None, timeout=10.0):
    """One request; (status, headers, parsed JSON body or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, headers, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, e.headers, e.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return status, headers, parsed


def rest_ok(base, method, path, body=None, token=None, want=(200, 201, 204)):
    status, _, parsed = rest(base, method, path, body, token)
    assert status in want, f"{method} {path} {body!r}: HTTP {status} {parsed!r}"
    return parsed


# --- browsers -------------------------------------------------------------------------------

def _selenium():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: the web client test needs Chromium and its driver "
                    "(Tests/setup.sh: apt-get install chromium chromium-driver)", pytrace=False)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        pytest.fail(f"selenium missing ({e}): pip install selenium (Tests/setup.sh)", pytrace=False)
    return webdriver, Options, Service


@pytest.fixture
def browser():
    """browser(name, base) -> Page in a fresh headless Chromium (its own profile and storage)."""
    webdriver, Options, Service = _selenium()
    made = []

    def make(name, base):
        opts = Options()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,800",
                  "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        page = Page(name, driver, base)
        made.append(page)
        return page

    yield make
    for p in made:
        try:
            p.driver.quit()
        except Exception:
            pass


class Page:
    """One user's browser on the web client, through the page's own elements (see the list at
    the top of Sources/Gateway/Web/app.js)."""

    def __init__(self, name, driver, base):
        self.name = name
        self.driver = driver
        self.base = base
        self.console = []

    # plumbing

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def logs(self):
        try:
            self.console += [f"{e['level']} {e['message']}" for e in self.driver.get_log("browser")]
        except Exception:
            pass
        return self.console

    def wait(self, cond, what, timeout=WAIT):
        """Polls cond() (a function of nothing) until truthy; fails naming `what` with the
        page's console and a summary of what it shows."""
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            try:
                v = cond()
                if v:
                    return v
            except Exception as e:  # an element between renders, say
                last_error = e
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.name}'s page: timed out after {timeout}s waiting for {what}\n"
                    f"page state: {self.summary()}\nlast error: {last_error!r}\n"
                    "console:\n" + "\n".join(self.logs()[-30:]))
            time.sleep(0.05)

    def summary(self):
        try:
            return json.dumps(self.js("""
                const q = (s) => document.querySelector(s);
                return {
                  auth: !q('#auth-view').hidden, chat: !q('#chat-view').hidden, me: q('#me').textContent,
                  conn: q('#connection-status').dataset.state, authError: q('#auth-error').textContent,
                  error: q('#error').textContent, room: q('#room-view').dataset.room,
                  rooms: [...document.querySelectorAll('#room-list li')].map(li => [li.dataset.room, li.dataset.unread]),
                  members: [...document.querySelectorAll('#member-list li')].map(li => [li.dataset.user, li.dataset.presence]),
                  ids: [...document.querySelectorAll('#message-list li[data-id]')].map(li => +li.dataset.id),
                  pending: document.querySelectorAll('#message-list li.pending').length,
                  typing: q('#typing').textContent,
                };"""))
        except Exception as e:
            return f"(unavailable: {e!r})"

    def fill(self, selector, text):
        from selenium.webdriver.common.by import By
        e = self.driver.find_element(By.CSS_SELECTOR, selector)
        e.clear()
        e.send_keys(text)
        return e

    def click(self, selector):
        """Clicks the element, waiting for it (the page may be re-rendering it just then)."""
        from selenium.webdriver.common.by import By
        self.wait(lambda: self.driver.find_element(By.CSS_SELECTOR, selector).click() or True, f"a click on {selector}")

    def text(self, selector):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", selector)

    def attr(self, selector, name):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;",
                       selector, name)

    def shown(self, selector):
        return self.js("const e = document.querySelector(arguments[0]); return !!e && !e.closest('[hidden]');", selector)

    # the app

    def open(self):
        self.driver.get(self.base + "/")
        self.wait(lambda: self.shown("#auth-view") or self.shown("#chat-view"), "the page to start")

    def logged_in_as(self, user):
        self.wait(lambda: self.shown("#chat-view") and self.text("#me") == user, f"logged in as {user}")

    def online(self, timeout=WAIT):
        self.wait(lambda: self.attr("#connection-status", "data-state") == "online", "the MQTT connection", timeout)

    def sign_up(self, user, password):
        self.fill("#signup-username", user)
        self.fill("#signup-password", password)
        self.click("#signup-button")
        self.logged_in_as(user)

    def log_in(self, user, password):
        self.fill("#login-username", user)
        self.fill("#login-password", password)
        self.click("#login-button")
        self.logged_in_as(user)

    def log_out(self):
        self.click("#logout-button")
        self.wait(lambda: self.shown("#auth-view") and not self.shown("#chat-view"), "the log-in form after log-out")

    def token(self):
        return self.js("return localStorage.getItem('parley.token');")

    def create_room(self, name, title=""):
        self.fill("#new-room-name", name)
        if title:
            self.fill("#new-room-title", title)
        self.click("#new-room-button")
        self.wait(lambda: self.attr("#room-view", "data-room") == name, f"room {name} open")

    def add_member(self, user):
        self.fill("#add-member-username", user)
        self.click("#add-member-button")
        self.wait(lambda: self.members().get(user) is not None, f"{user} in the member list")

    def open_room(self, name):
        self.wait(lambda: self.shown(f'#room-list li[data-room="{name}"]'), f"room {name} in the room list")
        self.click(f'#room-list li[data-room="{name}"]')
        self.wait(lambda: self.attr("#room-view", "data-room") == name, f"room {name} open")

    def unread(self, room):
        v = self.attr(f'#room-list li[data-room="{room}"]', "data-unread")
        return None if v is None else int(v)

    def members(self):
        return dict(self.js("return [...document.querySelectorAll('#member-list li')]"
                            ".map(li => [li.dataset.user, li.dataset.presence]);"))

    def messages(self):
        """[(id, from, body, seen-by text)] of the open room, top to bottom."""
        return [tuple(x) for x in self.js("""
            return [...document.querySelectorAll('#message-list li[data-id]')].map(li => [
              +li.dataset.id, li.dataset.from, li.querySelector('.body').textContent,
              (li.querySelector('.seen-by') || {}).textContent || '']);""")]

    def ids(self):
        return [m[0] for m in self.messages()]

    def pending(self):
        return self.js("return document.querySelectorAll('#message-list li.pending').length;")

    def type(self, text):
        self.fill("#composer", text)

    def send(self, text=None):
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.common.by import By
        if text is not None:
            self.type(text)
        self.driver.find_element(By.CSS_SELECTOR, "#composer").send_keys(Keys.ENTER)

    def set_offline(self, offline):
        """DevTools network emulation: no request, no new WebSocket while offline."""
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})


def assert_contiguous(ids, first=1):
    assert ids == list(range(first, first + len(ids))), f"ids not in order without a gap: {ids}"


# --- tests ------------------------------------------------------------------------------------

def test_static_files_are_the_sources(gateway):
    _, base = gateway
    for path, name, ctype in (("/", "index.html", "text/html"), ("/app.js", "app.js", "javascript"),
                              ("/mqtt.js", "mqtt.js", "javascript"), ("/app.css", "app.css", "text/css"),
                              ("/sw.js", "sw.js", "javascript")):
        with urllib.request.urlopen(base + path, timeout=10) as r:
            body = r.read()
            assert r.status == 200, path
            assert ctype in r.headers.get("Content-Type", ""), f"{path}: Content-Type {r.headers.get('Content-Type')!r}"
        with open(os.path.join(WEB_DIR, name), "rb") as f:
            assert body == f.read(), f"{path} is not Sources/Gateway/Web/{name} (rebuild the binary?)"


def test_mqtt_js_codec_under_node():
    node = shutil.which("node")
    assert node, "node missing: apt-get install nodejs node-mqtt (Tests/setup.sh)"
    p = subprocess.run([node, "--test", os.path.join(REPO, "Tests", "web")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"node --test Tests/web failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-2000:]}"
    assert re.search(r"^# pass [1-9]", p.stdout, re.M) and re.search(r"^# fail 0$", p.stdout, re.M), p.stdout[-2000:]


def test_two_browsers_chat(gateway, browser):
    b, base = gateway
    alice = browser("alice", base)
    bob = browser("bob", base)

    # Sign up; alice also logs out (her token is revoked) and back in.
    alice.open()
    alice.sign_up("alice", "alice-secret-1")
    alice.online()
    old_token = alice.token()
    assert old_token and old_token.startswith("pt_"), old_token
    alice.log_out()
    assert alice.token() is None
    status, headers, _ = rest(base, "GET", "/v1/me", token=old_token)
    assert status == 401, f"the logged-out token still works: HTTP {status}"
    alice.log_in("alice", "alice-secret-1")
    alice.online()
    assert alice.token() != old_token

    bob.open()
    bob.sign_up("bob", "bob-secret-12")
    bob.online()

    # alice's room, bob added: it appears in bob's list by itself (no reload).
    alice.create_room("lobby", "The lobby")
    alice.add_member("bob")
    bob.wait(lambda: bob.unread("lobby") is not None, "lobby in bob's room list")

    # A post before bob opens the room: his unread count shows it.
    alice.send("welcome")
    alice.wait(lambda: alice.ids() == [1] and alice.pending() == 0, "alice's first post confirmed")
    bob.wait(lambda: bob.unread("lobby") == 1, "unread 1 in bob's room list")

    # bob opens it: the message, no unread left, and alice sees bob has read it.
    bob.open_room("lobby")
    bob.wait(lambda: [m[:3] for m in bob.messages()] == [(1, "alice", "welcome")], "the first message in bob's view")
    bob.wait(lambda: bob.unread("lobby") == 0, "no unread for the open room")
    alice.wait(lambda: "bob" in alice.messages()[0][3], "'seen by bob' under message 1 in alice's view")

    # Presence: each sees the other online.
    alice.wait(lambda: alice.members() == {"alice": "online", "bob": "online"}, "alice and bob online in alice's view")
    bob.wait(lambda: bob.members() == {"alice": "online", "bob": "online"}, "alice and bob online in bob's view")

    # Typing, then the post, live.
    alice.type("hello bob")
    bob.wait(lambda: bob.text("#typing") == "alice is typing", "'alice is typing' in bob's view")
    alice.send()
    bob.wait(lambda: [m[:3] for m in bob.messages()][-1:] == [(2, "alice", "hello bob")], "message 2 live in bob's view")
    assert bob.text("#typing") == "", "the typing indicator stays after alice's post"
    alice.wait(lambda: alice.ids() == [1, 2] and alice.pending() == 0, "message 2 confirmed in alice's view")
    assert alice.js("return document.querySelector('#composer').value") == "", "the composer is not cleared"

    # bob answers; receipts both ways.
    bob.send("hi alice")
    alice.wait(lambda: [m[:3] for m in alice.messages()] == [(1, "alice", "welcome"), (2, "alice", "hello bob"),
                                                             (3, "bob", "hi alice")], "bob's answer in alice's view")
    bob.wait(lambda: bob.messages()[-1][3] == "seen by alice", "'seen by alice' under bob's answer in bob's view")
    # bob has read up to his own answer: "seen by bob" stays under alice's newest message.
    wait_until(lambda: alice.js("return window.parleyApp.state.rooms.get('lobby').seen.get('bob')?.up_to") == 3,
               WAIT, "bob's receipt for message 3 in alice's page")
    seen = [m[3] for m in alice.messages()]
    assert seen == ["", "seen by bob", ""], f"'seen by bob' should be under message 2 (the newest not his): {seen}"

    # bob's browser goes offline: no network, and its WebSocket cut without DISCONNECT.
    bob.set_offline(True)
    bob.js("window.parleyApp.debug.dropConnection();")
    bob.wait(lambda: bob.attr("#connection-status", "data-state") != "online", "bob's page to notice it is offline")
    alice.wait(lambda: alice.members().get("bob") == "offline", "bob's presence dot offline in alice's view")
    for i in range(1, 6):
        alice.send(f"while you were away {i}")
    alice.wait(lambda: alice.ids() == list(range(1, 9)) and alice.pending() == 0, "alice's 5 posts confirmed")
    bob.send("typed while offline")
    bob.wait(lambda: bob.pending() == 1, "bob's offline post pending")
    assert bob.ids() == [1, 2, 3], f"bob got messages while offline: {bob.summary()}"
    assert bob.attr("#connection-status", "data-state") != "online"

    bob.set_offline(False)
    bob.online(RECONNECT_WAIT)
    want = [(1, "alice", "welcome"), (2, "alice", "hello bob"), (3, "bob", "hi alice")] + \
           [(3 + i, "alice", f"while you were away {i}") for i in range(1, 6)] + [(9, "bob", "typed while offline")]
    bob.wait(lambda: [m[:3] for m in bob.messages()] == want and bob.pending() == 0,
             "every message in id order after the reconnect, bob's own post sent once", RECONNECT_WAIT)
    alice.wait(lambda: [m[:3] for m in alice.messages()] == want, "bob's offline post in alice's view")
    alice.wait(lambda: alice.members().get("bob") == "online", "bob's presence dot online again in alice's view")
    # The post was sent exactly once (its client key made any repeat a no-op).
    assert_contiguous(bob.ids())
    hist = rest_ok(base, "GET", "/v1/rooms/lobby/messages?limit=500", token=alice.token())
    assert [m["body"] for m in hist["messages"]].count("typed while offline") == 1, hist
    assert [m["id"] for m in hist["messages"]] == list(range(1, 10)), hist
    bob.wait(lambda: bob.messages()[-1][3] == "seen by alice", "alice's receipt for bob's offline post")

    if os.environ.get("PARLEY_SCREENSHOT"):
        alice.type("see you")  # bob sees typing; alice's view as the README shows it
        bob.wait(lambda: bob.text("#typing") == "alice is typing", "typing before the screenshot")
        bob.type("on my way")
        alice.wait(lambda: alice.text("#typing") == "bob is typing", "bob typing in alice's view")
        path = os.path.join(REPO, "Tests", "web", "screenshot.png")
        assert alice.driver.save_screenshot(path), path

    errors = [l for l in alice.logs() + bob.logs() if l.startswith("SEVERE")]
    # The cut WebSocket and the offline requests are expected errors of bob's page.
    errors = [l for l in errors if "ERR_INTERNET_DISCONNECTED" not in l and "WebSocket" not in l]
    assert errors == [], "errors in the browsers' consoles:\n" + "\n".join(errors)


def test_history_scroll_back(gateway, browser):
    _, base = gateway
    total = 130
    rest_ok(base, "POST", "/v1/users", {"username": "carol", "password": "carol-secret-1"})
    token = rest_ok(base, "POST", "/v1/tokens", {"username": "carol", "password": "carol-secret-1"})["token"]
    rest_ok(base, "POST", "/v1/rooms", {"name": "archive", "title": "Old news"}, token=token)
    i = 1
    while i <= total:
        status, headers, body = rest(base, "POST", "/v1/rooms/archive/messages", {"body": f"old {i}", "ckey": f"seed-{i}"},
                                     token=token)
        if status == 429:  # the post rate limit (burst 100): wait as told, then the same post again
            time.sleep(float(headers.get("Retry-After", "1")))
            continue
        assert status == 201 and body["id"] == i, f"seed post {i}: HTTP {status} {body!r}"
        i += 1

    carol = browser("carol", base)
    carol.open()
    carol.log_in("carol", "carol-secret-1")
    carol.online()
    carol.open_room("archive")
    carol.wait(lambda: carol.ids() == list(range(total - 49, total + 1)), "the newest 50 messages")
    assert carol.attr("#load-older", "data-has-more") == "true"
    assert carol.js("const b = document.querySelector('#messages'); return b.scrollHeight > b.clientHeight;"), \
        "50 messages should overflow the message box"
    assert carol.js("const b = document.querySelector('#messages');"
                    "return b.scrollHeight - b.scrollTop - b.clientHeight < 5;"), "the room opens at the bottom"

    # Scroll to the top: one more page each time; the view keeps its place.
    for first in (total - 99, 1):
        top_before = carol.ids()[0]
        carol.js("document.querySelector('#messages').scrollTop = 0;")
        carol.wait(lambda: carol.ids()[:1] == [first], f"messages from {first} after scrolling up")
        ids = carol.ids()
        assert_contiguous(ids, first)
        assert ids[-1] == total
        # The message that was on top is still in view: nothing jumped to the top.
        in_view = carol.js("""
            const b = document.querySelector('#messages').getBoundingClientRect();
            const e = document.querySelector('#message-list li[data-id="' + arguments[0] + '"]').getBoundingClientRect();
            return e.bottom > b.top && e.top < b.bottom;""", top_before)
        assert in_view, f"message {top_before} left the view after older messages were loaded"
    carol.wait(lambda: carol.attr("#load-older", "data-has-more") == "false", "no more history")
    assert not carol.shown("#load-older")
    assert [m[2] for m in carol.messages()] == [f"old {i}" for i in range(1, total + 1)]


def free_port():
    """A port nothing listens on now (for a broker that must come back on the same one)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_reconnect_after_broker_restart(start_broker, browser, monkeypatch):
    """The broker stops (SIGTERM) and comes back on the same HTTP port: the page reconnects by
    itself with its stored token and fetches what was posted before it was back."""
    monkeypatch.setenv("PARLEY_SCRYPT_LN", "10")
    port = free_port()
    b = start_broker(config_text=CONFIG, extra_args=["--plugins", "chat,gateway", "--http", f"127.0.0.1:{port}"])
    base = f"http://127.0.0.1:{port}"
    assert http_port(b) == port

    rest_ok(base, "POST", "/v1/users", {"username": "erin", "password": "erin-secret-1"})
    erin = rest_ok(base, "POST", "/v1/tokens", {"username": "erin", "password": "erin-secret-1"})["token"]
    dave = browser("dave", base)
    dave.open()
    dave.sign_up("dave", "dave-secret-1")
    dave.online()
    dave.create_room("ops")
    dave.add_member("erin")
    dave.send("before the restart")
    dave.wait(lambda: dave.ids() == [1] and dave.pending() == 0, "the first post confirmed")

    rc = b.terminate()
    assert rc == 0, f"parley exited with {rc} on SIGTERM"
    b._reader.join(timeout=1)
    b.proc.stderr.close()
    dave.wait(lambda: dave.attr("#connection-status", "data-state") != "online", "the page to see the broker gone")
    mark = len(b.log())
    b.port = None
    b.stopped_by_test = False
    b.start()
    b.wait_log(rf"event=listener\.open address=127\.0\.0\.1:{port} protocol=http\b", timeout=10.0, after=mark)

    for i in range(1, 4):  # erin posts while the page may still be backing off
        rest_ok(base, "POST", "/v1/rooms/ops/messages", {"body": f"meanwhile {i}"}, token=erin)
    dave.online(RECONNECT_WAIT)
    want = [(1, "dave", "before the restart")] + [(1 + i, "erin", f"meanwhile {i}") for i in range(1, 4)]
    dave.wait(lambda: [m[:3] for m in dave.messages()] == want, "the messages posted during the restart, in order",
              RECONNECT_WAIT)
    dave.send("after the restart")
    dave.wait(lambda: dave.ids() == [1, 2, 3, 4, 5] and dave.pending() == 0, "a post after the reconnect")
    assert dave.shown("#chat-view") and dave.text("#me") == "dave", "the stored token should survive the restart"


def test_push_offer(start_broker, browser, monkeypatch):
    monkeypatch.setenv("PARLEY_SCRYPT_LN", "10")
    b = start_broker(config_text=CONFIG, extra_args=["--plugins", "chat,gateway,notify", "--http", "127.0.0.1:0"])
    base = f"http://127.0.0.1:{http_port(b)}"
    page = browser("dora", base)
    page.open()
    page.sign_up("dora", "dora-secret-1")
    page.logged_in_as("dora")
    page.wait(lambda: page.shown("#push-button"), "the push button")
    assert page.attr("#push-button", "data-state") in ("ready", "denied"), page.summary()
    active = page.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "navigator.serviceWorker.ready.then(r => done(r.active ? r.active.scriptURL + ' ' + r.scope : 'none'),"
        " e => done('error ' + e));")
    assert active == f"{base}/sw.js {base}/", active
    page.driver.execute_cdp_cmd("Browser.grantPermissions", {"origin": base, "permissions": ["notifications"]})
    page.click("#push-button")
    # Permission granted, the VAPID key fetched and decoded: the browser is asked to subscribe.
    page.wait(lambda: page.attr("#push-button", "data-state") in ("subscribing", "on", "failed"), "the subscription")
    page.wait(lambda: page.attr("#push-button", "data-state") in ("on", "failed"), "the subscription outcome", timeout=40)
    token = page.token()
    devices = rest_ok(base, "GET", "/v1/devices", token=token)
    if page.attr("#push-button", "data-state") == "on":
        # A browser that reached a push service: the device is registered as Web Push.
        assert [d["kind"] for d in devices] == ["webpush"], devices
    else:
        # No push service is reachable from here: the browser refuses or never answers, and the
        # page says so (it would have refused a malformed VAPID key before asking).
        reason = page.attr("#push-button", "data-reason") or ""
        assert re.search(r"push service|registration failed", reason, re.I), reason
        assert devices == [], devices
