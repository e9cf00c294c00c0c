"""Settings that README.md and conf/parley.conf promise, each checked against the real
binary: SIGHUP reloads (acl, log_level), queue limits (queue_memory_budget,
max_queued_bytes, queue_qos0_messages), slow consumers (slow_consumer_bytes),
max_connections, shared subscriptions of stored sessions (also across a restart),
max_topic_length, allow_zero_keepalive, max_session_expiry,
persistent_session_expiry, durability_batch_ms, reason_strings, ACL %c / %u, and a
second broker on the same port.

Limits are small and times short so that every test takes a few seconds at most.
Waits are conditions with deadlines; fixed windows only show that something does
NOT happen.
"""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time

import pytest
from paho.mqtt.packettypes import PacketTypes

import conftest
import raw as r
from conftest import BIN, Broker, LISTEN_RE, START_TIMEOUT
from pahoclient import connect_props, prop, props

NOT_AUTHORIZED = 0x87


# --- helpers ---------------------------------------------------------------------------

def wait_for(cond, timeout, what, step=0.02):
    """Polls `cond` until it returns a truthy value; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def count_lines(b, needle):
    return sum(1 for line in b.log() if needle in line)


def reload_config(b, text, timeout=5.0):
    """Rewrites the broker's config file, sends SIGHUP to its PID and waits for the
    `event=config.reloaded` line (a `config.reload_failed` line fails at once)."""
    before = count_lines(b, "event=config.reloaded")
    failed_before = count_lines(b, "event=config.reload_failed")
    with open(os.path.join(b.tmp, "parley.conf"), "w") as f:
        f.write(text.strip() + "\n")
    os.kill(b.proc.pid, signal.SIGHUP)

    def done():
        if count_lines(b, "event=config.reload_failed") > failed_before:
            raise AssertionError("reload failed:\n" + "\n".join(b.log()[-5:]))
        return count_lines(b, "event=config.reloaded") > before

    wait_for(done, timeout, "event=config.reloaded after SIGHUP")


class SysWatch:
    """A normal-speed 3.1.1 client watching one `$SYS/broker/...` counter (retained,
    republished every sys_interval)."""

    def __init__(self, paho, port, name):
        self.name = name
        self.c = paho(port, version=4)
        self.c.connect()
        self.c.subscribe(f"$SYS/broker/{name}", 0)
        self.last = None

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            for m in self.c.drain(0.05):
                self.last = int(m.payload.split()[0])
            if self.last is not None and pred(self.last):
                return self.last
            if time.monotonic() > deadline:
                raise AssertionError(f"$SYS/broker/{self.name}: {what} not seen within {timeout}s; "
                                     f"last value {self.last}")


def gather(clients, n, timeout=5.0, extra=0.4):
    """Messages from several clients until `n` arrived in total (deadline), then
    `extra` seconds more to catch any surplus (duplicates)."""
    got = [[] for _ in clients]
    deadline = time.monotonic() + timeout
    while sum(len(g) for g in got) < n and time.monotonic() < deadline:
        for i, c in enumerate(clients):
            got[i] += c.drain(0.03)
    end = time.monotonic() + extra
    while time.monotonic() < end:
        for i, c in enumerate(clients):
            got[i] += c.drain(0.03)
    return got


def payloads(msgs):
    return [m.payload.decode() for m in msgs]


def quiet_collect(c, quiet=0.5, timeout=5.0):
    """Everything a client receives until `quiet` seconds pass without a message."""
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = c.drain(quiet)
        if not got:
            return out
        out += got
    return out


def raw_connect_expect(port, client_id, version, timeout=3.0):
    """Opens a raw connection and sends CONNECT; returns the client (read the answer)."""
    c = r.RawClient(port, version=version, timeout=timeout)
    c.send(r.connect(client_id, version=version))
    return c


class PinnedBroker(Broker):
    """A Broker whose MQTT listener can be pinned to a port (for restarts on the same
    port); otherwise like conftest.Broker."""

    def __init__(self, config_text=None, port=0, **kw):
        super().__init__(config_text, **kw)
        self.fixed_port = port

    def start(self):
        if not os.access(BIN, os.X_OK):
            pytest.fail(f"broker binary {BIN} not found", pytrace=False)
        args = [BIN, "serve", "--plugins", "", "--mqtt", f"127.0.0.1:{self.fixed_port}", "--data",
                os.path.join(self.tmp, "data"), "--loops", str(self.loops)]
        if self.config_text is not None:
            cfg = os.path.join(self.tmp, "parley.conf")
            with open(cfg, "w") as f:
                f.write(self.config_text.strip() + "\n")
            args += ["--config", cfg]
        self.port = None
        self.stopped_by_test = False
        self.proc = subprocess.Popen(args, cwd=self.tmp, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        found = threading.Event()
        proc = self.proc

        def reader():
            for raw_line in proc.stderr:
                line = raw_line.decode(errors="replace").rstrip("\n")
                with self._lines_lock:
                    self.lines.append(line)
                m = LISTEN_RE.search(line)
                if m and not found.is_set():
                    self.port = int(m.group(1))
                    found.set()

        self._reader = threading.Thread(target=reader, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not found.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"parley did not start (exit={self.proc.returncode}); args={args}\n"
                            + "\n".join(self.log()[-30:]), pytrace=False)
        return self

    def restart_same_port(self):
        """SIGTERM (exit 0 expected), then start again on the same data dir and port."""
        port = self.port
        rc = self.terminate()
        assert rc == 0, f"SIGTERM exit code {rc}"
        self._reader.join(timeout=2)
        self.proc.stderr.close()
        self.fixed_port = port
        self.start()
        assert self.port == port
        return self


@pytest.fixture
def pinned_broker(request):
    started = []
    request.node.parley_brokers = started

    def start(config_text=None):
        b = PinnedBroker(config_text).start()
        started.append(b)
        return b

    yield start
    problems = [p for p in (conftest._check_alive(b) for b in started) if p]
    for b in started:
        b.stop()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


class SlowReader(r.RawClient):
    """A raw client with a small receive buffer that simply stops reading."""

    def __init__(self, port, version=5, rcvbuf=4096, timeout=3.0):
        self.version = version
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        self.sock = s
        self.buf = bytearray()
        self.eof = False


@pytest.fixture
def closing():
    """closing(obj) -> obj, closed at the end of the test."""
    made = []

    def keep(obj):
        made.append(obj)
        return obj

    yield keep
    for o in made:
        try:
            o.close()
        except Exception:
            pass


# --- SIGHUP: acl and log_level -----------------------------------------------------------

ACL_BEFORE = """
sys_interval = 1
acl = deny subscribe * acl/a/#
acl = deny publish * acl/p/#
"""
ACL_AFTER = """
sys_interval = 1
acl = deny subscribe * acl/b/#
acl = deny publish * acl/q/#
"""


def test_sighup_reloads_acl_rules_for_new_subscriptions_and_publishes(start_broker, paho):
    """README / conf: SIGHUP reloads the `acl` rules. After a rule is changed in the
    file and SIGHUP sent: a new connection's SUBSCRIBE and PUBLISH follow the new rules,
    and so do new SUBSCRIBEs and PUBLISHes of a connection that was open before
    (checked per packet); nobody is disconnected by the reload."""
    b = start_broker(ACL_BEFORE)
    watcher = paho(b.port, client_id="acl-watcher")
    watcher.connect()
    assert watcher.subscribe("acl/#", 1) == [1]  # no rule covers acl/# as a whole
    old = paho(b.port, client_id="acl-old")
    old.connect()
    # The old rules.
    assert old.subscribe("acl/a/x", 1) == [NOT_AUTHORIZED]
    assert old.subscribe("acl/b/x", 1) == [1]
    assert old.publish("acl/p/x", b"before", 1) == NOT_AUTHORIZED
    assert old.publish("acl/q/x", b"before", 1) == 0
    assert payloads(watcher.collect(1)) == ["before"]

    reload_config(b, ACL_AFTER)

    new = paho(b.port, client_id="acl-new")
    new.connect()
    assert new.subscribe("acl/a/x", 1) == [1], "new connection: acl/a is allowed after reload"
    assert new.subscribe("acl/b/y", 1) == [NOT_AUTHORIZED], "new connection: acl/b is denied after reload"
    assert new.publish("acl/p/x", b"new-p", 1) == 0
    assert new.publish("acl/q/x", b"new-q", 1) == NOT_AUTHORIZED
    # The connection opened before the reload is still there and follows the new rules too.
    assert old.connected
    assert old.subscribe("acl/a/z", 1) == [1]
    assert old.subscribe("acl/b/z", 1) == [NOT_AUTHORIZED]
    assert old.publish("acl/p/z", b"old-p", 1) == 0
    assert old.publish("acl/q/z", b"old-q", 1) == NOT_AUTHORIZED
    got = payloads(watcher.collect(2))
    assert sorted(got) == ["new-p", "old-p"], got
    watcher.expect_no_message(0.3)


def _debug_lines(lines):
    return [l for l in lines if " level=debug " in l]


def test_sighup_reloads_log_level_debug_on_then_off(start_broker, paho):
    """conf: log_level; SIGHUP reloads it. At info there are no debug lines; after
    `log_level = debug` + SIGHUP a CONNECT logs `level=debug event=client.connect`;
    after `log_level = info` + SIGHUP debug lines stop again."""
    b = start_broker("sys_interval = 1\nlog_level = info\n")
    c1 = paho(b.port, client_id="ll-info-1")
    c1.connect()
    c1.disconnect()
    time.sleep(0.3)  # window: nothing at debug level may appear
    assert not _debug_lines(b.log()), _debug_lines(b.log())

    reload_config(b, "sys_interval = 1\nlog_level = debug\n")
    c2 = paho(b.port, client_id="ll-debug-2")
    c2.connect()
    wait_for(lambda: any(" level=debug event=client.connect " in l and "client=ll-debug-2" in l
                         for l in b.log()), 3, "debug line event=client.connect for ll-debug-2")
    c2.disconnect()
    wait_for(lambda: any(" level=debug event=client.closed " in l and "client=ll-debug-2" in l
                         for l in b.log()), 3, "debug line event=client.closed for ll-debug-2")

    reload_config(b, "sys_interval = 1\nlog_level = info\n")
    mark = len(b.log())
    c3 = paho(b.port, client_id="ll-info-3")
    c3.connect()
    c3.disconnect()
    time.sleep(0.4)  # window: no debug line after switching back
    after = _debug_lines(b.log()[mark:])
    assert not after, after


# --- queues: queue_memory_budget, max_queued_bytes, queue_qos0_messages -------------------

def _padded(label, cost, topic):
    """A payload whose message costs exactly `cost` bytes of queue budget
    (the broker counts 128 + topic length + payload length per queued message)."""
    n = cost - 128 - len(topic)
    return label.encode().ljust(n, b".")


def _label(m):
    return m.payload.split(b".")[0].decode()


def test_queue_memory_budget_caps_all_offline_queues_together(start_broker, paho):
    """conf queue_memory_budget = 10K ("all sessions' queues together"): two offline
    sessions (durability = none: queues in memory) subscribed to one topic; 8 QoS 1
    messages of 1 KiB each make 16 deliveries, of which exactly 10 fit the budget
    (each session keeps a prefix of the stream, in order); the other 6 are dropped and
    counted in $SYS/broker/publish/messages/dropped. Once the queues are drained the
    budget is free again."""
    t = "qmb/t"
    b = start_broker("durability = none\nqueue_memory_budget = 10K\nsys_interval = 1\n")
    dropped = SysWatch(paho, b.port, "publish/messages/dropped")
    cp = connect_props(SessionExpiryInterval=60)
    for name in ("qmb-a", "qmb-b"):
        s = paho(b.port, client_id=name)
        s.connect(properties=cp)
        assert s.subscribe(t, 1) == [1]
        s.disconnect()
    pub = paho(b.port, client_id="qmb-pub")
    pub.connect()
    for i in range(8):
        pub.publish(t, _padded(f"m{i}", 1024, t), 1)
    dropped.wait(lambda v: v >= 6, 4, "6 drops")
    a = paho(b.port, client_id="qmb-a")
    bb = paho(b.port, client_id="qmb-b")
    assert a.connect(clean_start=False, properties=cp).session_present
    assert bb.connect(clean_start=False, properties=cp).session_present
    got_a, got_b = gather([a, bb], 10, timeout=5)
    la, lb = [_label(m) for m in got_a], [_label(m) for m in got_b]
    assert len(la) + len(lb) == 10, f"budget holds exactly 10 deliveries of 1 KiB; a={la} b={lb}"
    assert la == [f"m{i}" for i in range(len(la))], la
    assert lb == [f"m{i}" for i in range(len(lb))], lb
    assert dropped.wait(lambda v: v == 6, 3, "exactly 6 drops") == 6
    # Drained: the budget is free again for both sessions.
    a.disconnect()
    bb.disconnect()
    for i in range(2):
        pub.publish(t, _padded(f"n{i}", 1024, t), 1)
    a2 = paho(b.port, client_id="qmb-a")
    b2 = paho(b.port, client_id="qmb-b")
    a2.connect(clean_start=False, properties=cp)
    b2.connect(clean_start=False, properties=cp)
    assert [_label(m) for m in a2.collect(2)] == ["n0", "n1"]
    assert [_label(m) for m in b2.collect(2)] == ["n0", "n1"]


def test_max_queued_bytes_qos0_gives_way_first_then_new_messages_dropped(start_broker, paho):
    """conf max_queued_bytes = 4K per session (durability = none: the queue is in memory)
    with queue_qos0_messages = true; messages of 1 KiB each. Offline queue gets
    z0 z1 z2 (QoS 0) m0 (QoS 1): full. m1, m2, m3 each push out the oldest queued QoS 0
    ("queued QoS 0 messages give way first"); m4 finds no QoS 0 left and is dropped
    ("then new messages are dropped"). On reconnect exactly m0..m3 arrive; all four drops
    (z0, z1, z2, m4) are counted in $SYS/broker/publish/messages/dropped."""
    t = "mqb/t"
    b = start_broker("durability = none\nmax_queued_bytes = 4K\nqueue_qos0_messages = true\n"
                     "sys_interval = 1\n")
    dropped = SysWatch(paho, b.port, "publish/messages/dropped")
    cp = connect_props(SessionExpiryInterval=60)
    s = paho(b.port, client_id="mqb-sub")
    s.connect(properties=cp)
    assert s.subscribe(t, 1) == [1]
    s.disconnect()
    pub = paho(b.port, client_id="mqb-pub")
    pub.connect()
    for i in range(3):
        pub.publish(t, _padded(f"z{i}", 1024, t), 0)
    for i in range(5):
        pub.publish(t, _padded(f"m{i}", 1024, t), 1)
    s2 = paho(b.port, client_id="mqb-sub")
    assert s2.connect(clean_start=False, properties=cp).session_present
    got = s2.collect(4)
    assert [(_label(m), m.qos) for m in got] == [("m0", 1), ("m1", 1), ("m2", 1), ("m3", 1)]
    s2.expect_no_message(0.4)
    assert dropped.wait(lambda v: v == 4, 3, "4 drops (z0, z1, z2 gave way; m4 dropped)") == 4


def test_max_queued_bytes_limits_qos1_queue_new_messages_dropped(start_broker, paho):
    """conf max_queued_bytes = 3K, only QoS 1 (1 KiB each): an offline session keeps the
    first 3 of 5; the last 2 are dropped and counted."""
    t = "mqb1/t"
    b = start_broker("durability = none\nmax_queued_bytes = 3K\nsys_interval = 1\n")
    dropped = SysWatch(paho, b.port, "publish/messages/dropped")
    cp = connect_props(SessionExpiryInterval=60)
    s = paho(b.port, client_id="mqb1-sub")
    s.connect(properties=cp)
    s.subscribe(t, 1)
    s.disconnect()
    pub = paho(b.port)
    pub.connect()
    for i in range(5):
        pub.publish(t, _padded(f"m{i}", 1024, t), 1)
    s2 = paho(b.port, client_id="mqb1-sub")
    s2.connect(clean_start=False, properties=cp)
    assert [_label(m) for m in s2.collect(3)] == ["m0", "m1", "m2"]
    s2.expect_no_message(0.4)
    assert dropped.wait(lambda v: v == 2, 3, "2 drops") == 2


def test_max_queued_messages_0_means_no_limit(start_broker, paho):
    """conf (per-session queue, in memory): "0 = no limit". With durability = none and
    max_queued_messages = 0, an offline session keeps all 5 QoS 1 messages."""
    t = "mqm0/t"
    b = start_broker("durability = none\nmax_queued_messages = 0\n")
    cp = connect_props(SessionExpiryInterval=60)
    s = paho(b.port, client_id="mqm0-sub")
    s.connect(properties=cp)
    s.subscribe(t, 1)
    s.disconnect()
    pub = paho(b.port)
    pub.connect()
    for i in range(5):
        pub.publish(t, f"m{i}".encode(), 1)
    s2 = paho(b.port, client_id="mqm0-sub")
    assert s2.connect(clean_start=False, properties=cp).session_present
    got = quiet_collect(s2, 0.5)
    assert payloads(got) == [f"m{i}" for i in range(5)], payloads(got)


@pytest.mark.parametrize("enabled,version", [(True, 5), (True, 4), (False, 5), (False, 4)],
                         ids=["true-v5", "true-v311", "false-v5", "false-v311"])
def test_queue_qos0_messages_for_offline_persistent_sessions(start_broker, paho, enabled, version):
    """conf queue_qos0_messages: QoS 0 messages are queued for an offline persistent
    session (v5 session expiry > 0 / 3.1.1 clean session 0) only when true; QoS 1 ones
    always. True: q0a, q1, q0b all arrive (the QoS 0 ones at QoS 0, in order);
    false: only q1."""
    t = f"qq0/{version}"
    b = start_broker(f"queue_qos0_messages = {'true' if enabled else 'false'}\nsys_interval = 1\n")
    cid = f"qq0-{version}-{enabled}"
    kw = {} if version == 5 else {"clean_session": False}
    cp = connect_props(SessionExpiryInterval=60) if version == 5 else None
    s = paho(b.port, client_id=cid, version=version, **kw)
    s.connect(properties=cp)
    s.subscribe(t, 1)
    s.disconnect()
    pub = paho(b.port)
    pub.connect()
    pub.publish(t, b"q0a", 0)
    pub.publish(t, b"q1", 1)
    pub.publish(t, b"q0b", 0)
    pub.publish(t + "/sync", b"", 1)  # the three above are routed by now
    s2 = paho(b.port, client_id=cid, version=version, **kw)
    assert s2.connect(clean_start=False, properties=cp).session_present
    if enabled:
        got = s2.collect(3)
        assert sorted(payloads(got)) == ["q0a", "q0b", "q1"], payloads(got)
        assert [m.payload for m in got if m.qos == 0] == [b"q0a", b"q0b"]
        assert [m.payload for m in got if m.qos == 1] == [b"q1"]
    else:
        got = s2.collect(1)
        assert payloads(got) == ["q1"]
    s2.expect_no_message(0.4)


# --- slow consumers -----------------------------------------------------------------------

def test_slow_consumer_gets_qos0_dropped_and_counted_qos1_waits_and_arrives(start_broker, paho, closing):
    """conf slow_consumer_bytes = 64K: a subscriber that stops reading its socket gets
    QoS 0 messages dropped once that much is unsent, and $SYS/broker/publish/messages/
    dropped (sys_interval = 1) counts exactly the ones it never got; its QoS 1 messages
    wait in its queue and all of them arrive, in order, once it reads."""
    b = start_broker("slow_consumer_bytes = 64K\nsys_interval = 1\n")
    dropped = SysWatch(paho, b.port, "publish/messages/dropped")
    slow = closing(SlowReader(b.port, version=5, rcvbuf=4096))
    assert slow.connect("slow-sub").reason == 0
    sa = slow.subscribe([("slow/q0", 0), ("slow/q1", 1)])
    assert sa.reasons == [0, 1]
    pub = closing(r.RawClient(b.port, version=5))
    assert pub.connect("slow-pub").reason == 0
    n0, n1, big = 400, 10, 16 * 1024
    for i in range(n0):
        pub.send(r.publish("slow/q0", f"z{i}:".encode().ljust(big, b"z"), qos=0))
    for i in range(n1):
        pub.send(r.publish("slow/q1", f"m{i}".encode(), qos=1, pid=i + 1))
        ack = pub.read_type(r.PUBACK, timeout=5)
        assert ack.pid == i + 1
    # While it does not read, QoS 0 messages to it are dropped (and counted).
    dropped.wait(lambda v: v > 0, 4, "QoS 0 drops for the slow reader")
    # Now it reads: everything that was accepted for it arrives; QoS 1 all of it.
    q0, q1 = [], []
    deadline = time.monotonic() + 15
    while len(q1) < n1 and time.monotonic() < deadline:
        p = slow.read(timeout=max(0.05, deadline - time.monotonic()))
        if p.type != r.PUBLISH:
            continue
        if p.topic == b"slow/q0":
            q0.append(int(p.payload.split(b":")[0][1:]))
        else:
            q1.append(p.payload.decode())
            slow.send(r.ack(r.PUBACK, p.pid))
    try:
        while True:  # anything left (there should be no QoS 0 after the QoS 1 ones)
            p = slow.read(timeout=0.4)
            if p.type == r.PUBLISH and p.topic == b"slow/q0":
                q0.append(int(p.payload.split(b":")[0][1:]))
    except TimeoutError:
        pass
    print(f"slow consumer: {len(q0)} of {n0} QoS 0 messages received, {len(q1)} of {n1} QoS 1")
    assert q1 == [f"m{i}" for i in range(n1)], q1
    assert q0 == sorted(q0), "QoS 0 messages out of order"
    assert 0 < len(q0) < n0, f"received {len(q0)} of {n0} QoS 0 messages"
    expected = n0 - len(q0)
    assert dropped.wait(lambda v: v == expected, 4, f"exactly {expected} drops") == expected


# --- max_connections ----------------------------------------------------------------------

def test_max_connections_refuses_beyond_limit_v5_0x89_and_frees_slots(start_broker, closing):
    """conf max_connections = 2: beyond it CONNECT is refused (v5: CONNACK 0x89 server
    busy; 3.1.1: a refusing CONNACK or a close), the connection closed, the first two
    keep working; when one leaves, a new client gets in (refused ones hold no slot)."""
    b = start_broker("max_connections = 2\n")
    a = closing(r.RawClient(b.port, version=5))
    assert a.connect("mc-a").reason == 0
    c = closing(r.RawClient(b.port, version=4))
    assert c.connect("mc-c", version=4).reason == 0
    x5 = closing(raw_connect_expect(b.port, "mc-x5", 5))
    got = x5.expect_closed()
    assert got and got[0].type == r.CONNACK and got[0].reason == 0x89, got
    x4 = closing(raw_connect_expect(b.port, "mc-x4", 4))
    got = x4.expect_closed()
    assert all(p.type == r.CONNACK and p.reason != 0 for p in got), got
    for cl in (a, c):
        cl.send(r.pingreq())
        assert cl.read().type == r.PINGRESP
    a.send(r.disconnect())
    a.expect_closed()

    def gets_in():
        n = r.RawClient(b.port, version=5)
        n.send(r.connect("mc-new"))
        try:
            p = n.read(2)
        except (r.Closed, TimeoutError, ConnectionResetError):
            n.close()
            return None
        if p.type == r.CONNACK and p.reason == 0:
            return n
        n.close()
        return None

    new = closing(wait_for(gets_in, 3, "a free slot after one client left", step=0.1))
    y = closing(raw_connect_expect(b.port, "mc-y", 5))
    got = y.expect_closed()
    assert got and got[0].reason == 0x89, got
    new.send(r.pingreq())
    assert new.read().type == r.PINGRESP


# --- shared subscriptions with stored sessions --------------------------------------------

def _nums(msgs):
    return [int(m.payload) for m in msgs]


def test_shared_subscription_stored_sessions_online_members_first(broker, paho, topic):
    """MQTT 5 4.8.2 / README: `$share/g/...` from two persistent sessions: each message
    goes to exactly one member, in turn while both are online. While one member's
    session is offline (stored), every message goes to the online member (none waits
    in the offline one's queue while another member could take it); the offline member
    comes back to an empty share, and the group goes on sharing."""
    f = f"$share/g/{topic}"
    cp = connect_props(SessionExpiryInterval=3600)
    a = paho(broker.port, client_id="sh-a-" + topic[-8:])
    bm = paho(broker.port, client_id="sh-b-" + topic[-8:])
    for m in (a, bm):
        m.connect(properties=cp)
        assert m.subscribe(f, 1) == [1]
    pub = paho(broker.port)
    pub.connect()
    for i in range(10):
        assert pub.publish(topic, str(i).encode(), 1) == 0
    ga, gb = gather([a, bm], 10)
    assert sorted(_nums(ga) + _nums(gb)) == list(range(10)), (_nums(ga), _nums(gb))
    assert len(ga) == 5 and len(gb) == 5, "in turn while both are online"
    bm.disconnect()
    for i in range(10, 20):
        assert pub.publish(topic, str(i).encode(), 1) == 0
    ga2 = [m for m in a.collect(10, timeout=5)]
    assert _nums(ga2) == list(range(10, 20)), "the online member takes every message"
    b2 = paho(broker.port, client_id="sh-b-" + topic[-8:])
    assert b2.connect(clean_start=False, properties=cp).session_present
    b2.expect_no_message(0.5)
    for i in range(20, 30):
        assert pub.publish(topic, str(i).encode(), 1) == 0
    ga3, gb3 = gather([a, b2], 10)
    assert sorted(_nums(ga3) + _nums(gb3)) == list(range(20, 30)), (_nums(ga3), _nums(gb3))
    assert ga3 and gb3, "shared again once both are online"


def test_shared_subscription_offline_share_goes_to_another_member_when_session_ends(broker, paho, topic):
    """MQTT 5 4.8.2: "If the Client's Session terminates before the Client reconnects,
    the Server SHOULD send the Application Message to another Client that is subscribed
    to the same Shared Subscription." Member b (session expiry 1 s) goes offline; its
    share of 10 QoS 1 messages is queued for it; when its session expires, that share
    goes to the online member a: a ends up with all 10."""
    f = f"$share/g/{topic}"
    a = paho(broker.port, client_id="she-a-" + topic[-8:])
    a.connect(properties=connect_props(SessionExpiryInterval=3600))
    assert a.subscribe(f, 1) == [1]
    bm = paho(broker.port, client_id="she-b-" + topic[-8:])
    bm.connect(properties=connect_props(SessionExpiryInterval=1))
    assert bm.subscribe(f, 1) == [1]
    bm.disconnect()
    pub = paho(broker.port)
    pub.connect()
    for i in range(10):
        assert pub.publish(topic, str(i).encode(), 1) == 0
    got = a.drain(2.5)  # b's session expires 1 s after its disconnect
    got += quiet_collect(a, 0.5)
    assert sorted(_nums(got)) == list(range(10)), \
        f"member a got {_nums(got)}; the rest went down with b's expired session"


def test_shared_subscription_stored_sessions_across_restart(pinned_broker, paho, topic):
    """Stored members of `$share/g/...` across SIGTERM and a start on the same data dir
    and port: what was queued for them before, and what is published after the
    restart while they are still offline, arrives exactly once across the group; once
    they are back online the subscription is still shared (one member per message)."""
    b = pinned_broker("sys_interval = 1\n")
    f = f"$share/g/{topic}"
    cp = connect_props(SessionExpiryInterval=3600)
    ids = ["shr-a-" + topic[-8:], "shr-b-" + topic[-8:]]
    for cid in ids:
        m = paho(b.port, client_id=cid)
        m.connect(properties=cp)
        assert m.subscribe(f, 1) == [1]
        m.disconnect()
    pub = paho(b.port)
    pub.connect()
    for i in range(10):
        assert pub.publish(topic, str(i).encode(), 1) == 0
    pub.close()
    b.restart_same_port()
    pub = paho(b.port)
    pub.connect()
    for i in range(10, 20):
        assert pub.publish(topic, str(i).encode(), 1) == 0
    members = [paho(b.port, client_id=cid) for cid in ids]
    for m in members:
        assert m.connect(clean_start=False, properties=cp).session_present
    ga, gb = gather(members, 20, timeout=6)
    assert sorted(_nums(ga) + _nums(gb)) == list(range(20)), (_nums(ga), _nums(gb))
    for i in range(20, 30):
        assert pub.publish(topic, str(i).encode(), 1) == 0
    ga, gb = gather(members, 10)
    assert sorted(_nums(ga) + _nums(gb)) == list(range(20, 30)), (_nums(ga), _nums(gb))
    assert ga and gb, "still one shared group after the restart"


# --- max_topic_length ---------------------------------------------------------------------

@pytest.mark.parametrize("version", [5, 4])
def test_max_topic_length_publish_disconnect_subscribe_refused(start_broker, closing, version):
    """conf max_topic_length = 20: a topic name or filter of 20 bytes is fine; 21 bytes:
    PUBLISH -> DISCONNECT 0x90 (v5; 3.1.1: the connection closes), SUBSCRIBE -> SUBACK
    0x8F (3.1.1: 0x80 failure)."""
    b = start_broker("max_topic_length = 20\n")
    ok, long = "t" * 20, "t" * 21
    s = closing(r.RawClient(b.port, version=version))
    s.connect("mtl-sub")
    sa = s.subscribe([(ok, 1), (long, 1), ("t" * 19 + "/#", 1)])  # the last: a 21-byte filter
    refused = 0x8F if version == 5 else 0x80
    assert sa.reasons == [1, refused, refused], sa
    p = closing(r.RawClient(b.port, version=version))
    p.connect("mtl-pub")
    p.publish(ok, b"fits", qos=1, pid=1)
    assert p.read_type(r.PUBACK).pid == 1
    m = s.read_type(r.PUBLISH)
    assert m.payload == b"fits"
    p.publish(long, b"too long", qos=1, pid=2)
    got = p.expect_closed()
    if version == 5:
        assert got and got[-1].type == r.DISCONNECT and got[-1].reason == 0x90, got
    else:
        assert all(x.type != r.PUBACK for x in got), got
    s.expect_nothing(0.3)


# --- keep alive ---------------------------------------------------------------------------

def test_allow_zero_keepalive_false_gives_v5_clients_max_keepalive(start_broker, closing):
    """conf allow_zero_keepalive = false, max_keepalive = 1: a v5 CONNECT with keep alive
    0 gets Server Keep Alive 1 in CONNACK, and a silent client is then disconnected
    (0x8D) after 1.5 s; a 3.1.1 client with keep alive 0 is not affected ("v5 only")."""
    b = start_broker("allow_zero_keepalive = false\nmax_keepalive = 1\n")
    v5 = closing(r.RawClient(b.port, version=5))
    ca = v5.connect("zk5", keepalive=0)
    assert ca.reason == 0 and ca.props.get("ServerKeepAlive") == 1, ca
    v4 = closing(r.RawClient(b.port, version=4))
    t0 = time.monotonic()
    assert v4.connect("zk4", version=4, keepalive=0).reason == 0
    got = v5.expect_closed(timeout=4)
    assert got and got[-1].type == r.DISCONNECT and got[-1].reason == 0x8D, got
    time.sleep(max(0, t0 + 2.6 - time.monotonic()))  # window: the 3.1.1 client stays
    v4.send(r.pingreq())
    assert v4.read().type == r.PINGRESP


def test_allow_zero_keepalive_true_keeps_v5_keepalive_0(start_broker, closing):
    """Default allow_zero_keepalive = true (with max_keepalive = 1): a v5 keep alive 0
    needs no Server Keep Alive and a silent client is never timed out."""
    b = start_broker("max_keepalive = 1\n")
    v5 = closing(r.RawClient(b.port, version=5))
    ca = v5.connect("zk5t", keepalive=0)
    assert ca.reason == 0 and "ServerKeepAlive" not in ca.props, ca
    v5.expect_nothing(2.6)  # window: longer than 1.5 x max_keepalive
    v5.send(r.pingreq())
    assert v5.read().type == r.PINGRESP


# --- session expiry -----------------------------------------------------------------------

def test_max_session_expiry_lowers_expiry_in_connack_and_session_expires_then(start_broker, paho, topic):
    """conf max_session_expiry = 1: a v5 client asking for 3600 s gets Session Expiry
    Interval 1 in CONNACK; its session is still there 0.4 s after it disconnects and gone
    1.7 s after; a DISCONNECT asking for 3600 s is capped the same way."""
    b = start_broker("max_session_expiry = 1\nsys_interval = 1\n")
    cp = connect_props(SessionExpiryInterval=3600)
    a = paho(b.port, client_id="mse-a")
    bm = paho(b.port, client_id="mse-b")
    for c in (a, bm):
        ca = c.connect(properties=cp)
        assert prop(ca.properties, "SessionExpiryInterval") == 1, ca.properties
        c.subscribe(topic, 1)
    small = paho(b.port, client_id="mse-small")
    ca = small.connect(properties=connect_props(SessionExpiryInterval=1))
    assert prop(ca.properties, "SessionExpiryInterval") is None, "granted as asked: not repeated"
    a.disconnect()
    bm.disconnect()
    t0 = time.monotonic()
    time.sleep(0.4)
    a2 = paho(b.port, client_id="mse-a")
    assert a2.connect(clean_start=False, properties=cp).session_present, "expired too early"
    a2.disconnect(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=3600))
    t1 = time.monotonic()
    time.sleep(max(0, t0 + 1.7 - time.monotonic()))
    b2 = paho(b.port, client_id="mse-b")
    assert not b2.connect(clean_start=False, properties=cp).session_present, "not expired after 1 s"
    time.sleep(max(0, t1 + 1.7 - time.monotonic()))
    a3 = paho(b.port, client_id="mse-a")
    assert not a3.connect(clean_start=False, properties=cp).session_present, \
        "DISCONNECT's 3600 s was not capped to max_session_expiry"


def test_persistent_session_expiry_applies_to_311_persistent_sessions(start_broker, paho, topic):
    """conf persistent_session_expiry = 1: a 3.1.1 clean-session-0 session is there 0.4 s
    after its client leaves and gone 1.7 s after; a v5 session asking for 3600 s is not
    affected (it follows max_session_expiry)."""
    b = start_broker("persistent_session_expiry = 1\nsys_interval = 1\n")
    a = paho(b.port, client_id="pse-a", version=4, clean_session=False)
    bm = paho(b.port, client_id="pse-b", version=4, clean_session=False)
    v5 = paho(b.port, client_id="pse-v5")
    cp = connect_props(SessionExpiryInterval=3600)
    for c in (a, bm):
        c.connect()
        c.subscribe(topic, 1)
    v5.connect(properties=cp)
    v5.subscribe(topic, 1)
    for c in (a, bm, v5):
        c.disconnect()
    t0 = time.monotonic()
    time.sleep(0.4)
    a2 = paho(b.port, client_id="pse-a", version=4, clean_session=False)
    assert a2.connect().session_present, "expired too early"
    a2.disconnect()
    time.sleep(max(0, t0 + 1.7 - time.monotonic()))
    b2 = paho(b.port, client_id="pse-b", version=4, clean_session=False)
    assert not b2.connect().session_present, "3.1.1 persistent session not expired after 1 s"
    v52 = paho(b.port, client_id="pse-v5")
    assert v52.connect(clean_start=False, properties=cp).session_present


# --- durability_batch_ms ------------------------------------------------------------------

def _db(b):
    path = os.path.join(b.tmp, "data", "parley.db")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
    return con


def _query(b, sql, args=()):
    con = _db(b)
    try:
        return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()


def test_durability_batch_ms_acks_at_once_commits_after_the_window(start_broker, paho, topic):
    """README / conf durability = batch: "ack at once, commit every durability_batch_ms".
    With durability_batch_ms = 800: a QoS 1 PUBLISH for a stored session is PUBACKed at
    once (well before the window), its delivery reaches the database (read with sqlite3)
    only about 800 ms later, and once committed it survives a kill -9."""
    b = start_broker("durability = batch\ndurability_batch_ms = 800\nsys_interval = 1\n")
    cp = connect_props(SessionExpiryInterval=3600)
    s = paho(b.port, client_id="dbm-sub")
    s.connect(properties=cp)
    s.subscribe(topic, 1)
    s.disconnect()
    # Wait until the session (disconnected) and its subscription are committed: the writer is idle.
    wait_for(lambda: _query(b, "SELECT 1 FROM sessions s JOIN subscriptions u USING(client_id) "
                                "WHERE s.client_id = 'dbm-sub' AND s.expires_at IS NOT NULL"),
             5, "the stored session in the database")
    time.sleep(0.1)
    pub = paho(b.port)
    pub.connect()
    t0 = time.monotonic()
    assert pub.publish(topic, b"batched", 1) == 0
    ack_after = time.monotonic() - t0
    wait_for(lambda: _query(b, "SELECT 1 FROM deliveries WHERE client_id = 'dbm-sub'"), 5,
             "the delivery in the database", step=0.01)
    commit_after = time.monotonic() - t0
    print(f"batch: PUBACK after {ack_after:.3f}s, commit after {commit_after:.3f}s")
    assert ack_after < 0.4, f"PUBACK took {ack_after:.3f}s: not 'at once'"
    assert 0.6 <= commit_after <= 2.5, f"commit {commit_after:.3f}s after the PUBLISH (window 0.8 s)"
    b.kill()
    b.port = None
    b.start()
    s2 = paho(b.port, client_id="dbm-sub")
    assert s2.connect(clean_start=False, properties=cp).session_present
    assert payloads(s2.collect(1, timeout=5)) == ["batched"]


# --- reason_strings -----------------------------------------------------------------------

@pytest.mark.parametrize("enabled", [False, True], ids=["false", "true"])
def test_reason_strings_setting(start_broker, closing, enabled):
    """conf reason_strings: false -> no v5 packet carries a Reason String, even for a
    client that allows them (Request Problem Information 1): PUBACK/PUBREC 0x87, CONNACK
    0x89 (max_connections), CONNACK for a malformed CONNECT, DISCONNECT 0x8E
    (take-over), 0x90 (topic too long), 0x8B (shutdown). true -> each of them does."""
    b = start_broker(f"reason_strings = {'true' if enabled else 'false'}\nmax_connections = 3\n"
                     "max_topic_length = 40\nacl = deny publish * rs/deny/#\n")
    errors = []  # the refusals: (what, packet)
    seen = []    # every packet received

    def note(what, p):
        seen.append((what, p))
        if what:
            errors.append((what, p))
        return p

    c1 = closing(r.RawClient(b.port))
    note(None, c1.connect("rs-1", properties=r.props(RequestProblemInformation=1)))
    c1.publish("rs/deny/x", b"x", qos=1, pid=1)
    p = note("PUBACK 0x87", c1.read_type(r.PUBACK))
    assert p.reason == NOT_AUTHORIZED, p
    c1.publish("rs/deny/y", b"y", qos=2, pid=2)
    p = note("PUBREC 0x87", c1.read_type(r.PUBREC))
    assert p.reason == NOT_AUTHORIZED, p
    note(None, c1.subscribe([("rs/ok/#", 1)]))
    c2 = closing(r.RawClient(b.port))
    note(None, c2.connect("rs-2"))
    c3 = closing(r.RawClient(b.port))
    note(None, c3.connect("rs-3"))
    c4 = closing(raw_connect_expect(b.port, "rs-4", 5))
    got = c4.expect_closed()
    assert got and got[0].type == r.CONNACK and got[0].reason == 0x89, got
    note("CONNACK 0x89", got[0])
    c3.send(r.disconnect())
    c3.expect_closed()

    def take_over():
        n = r.RawClient(b.port)
        n.send(r.connect("rs-2"))
        try:
            p = n.read(2)
        except (r.Closed, TimeoutError, ConnectionResetError):
            n.close()
            return None
        if p.type == r.CONNACK and p.reason == 0:
            note(None, p)
            return n
        n.close()
        return None

    c5 = closing(wait_for(take_over, 3, "a free slot for the take-over", step=0.1))
    got = c2.expect_closed()
    assert got and got[-1].type == r.DISCONNECT and got[-1].reason == 0x8E, got
    note("DISCONNECT 0x8E", got[-1])
    c1.publish("rs/ok/" + "x" * 40, b"long", qos=0)
    got = c1.expect_closed()
    assert got and got[-1].type == r.DISCONNECT and got[-1].reason == 0x90, got
    note("DISCONNECT 0x90", got[-1])
    bad = closing(r.RawClient(b.port))
    bad.send(r.connect("rs-bad", reserved=True))  # reserved flag set: malformed CONNECT
    got = bad.expect_closed()
    assert got and got[0].type == r.CONNACK and got[0].reason >= 0x80, got
    note("CONNACK for a malformed CONNECT", got[0])
    assert b.terminate() == 0
    got = c5.expect_closed()
    assert got and got[-1].type == r.DISCONNECT and got[-1].reason == 0x8B, got
    note("DISCONNECT 0x8B", got[-1])
    if enabled:
        missing = [what for what, p in errors if "ReasonString" not in p.props]
        assert not missing, f"reason_strings = true, but no Reason String in: {missing}"
    else:
        carrying = [(what or p.type, p.props["ReasonString"]) for what, p in seen if "ReasonString" in p.props]
        assert not carrying, f"reason_strings = false, yet Reason Strings were sent: {carrying}"


# --- ACL %c / %u ----------------------------------------------------------------------------

ACL_SUBST = """
sys_interval = 1
acl = allow readwrite * clients/%c/#
acl = allow readwrite * users/%u/#
acl = deny readwrite * clients/#
acl = deny readwrite * users/#
"""


def _user_client(paho, port, client_id, username=None):
    c = paho(port, client_id=client_id)
    if username is not None:
        with c._lock:
            c.c.username_pw_set(username)
    c.connect()
    return c


def test_acl_client_id_and_username_substitution(start_broker, paho):
    """conf: "%u and %c in FILTER stand for the user name and the client id":
    `allow readwrite * clients/%c/#` (then `deny readwrite * clients/#`) lets each client
    subscribe and publish under clients/<its id>/ and nowhere else under clients/;
    `users/%u/#` the same for the user name."""
    b = start_broker(ACL_SUBST)
    alice = _user_client(paho, b.port, "alice", "ualice")
    bob = _user_client(paho, b.port, "bob", "ubob")
    assert alice.subscribe("clients/alice/#", 1) == [1]
    assert alice.subscribe("clients/bob/#", 1) == [NOT_AUTHORIZED]
    assert alice.subscribe("clients/+/inbox", 1) == [NOT_AUTHORIZED]
    assert alice.subscribe("users/ualice/#", 1) == [1]
    assert alice.subscribe("users/ubob/#", 1) == [NOT_AUTHORIZED]
    assert bob.subscribe("clients/bob/#", 1) == [1]
    assert bob.subscribe("users/ubob/#", 1) == [1]
    assert alice.publish("clients/alice/x", b"own", 1) == 0
    assert alice.publish("users/ualice/x", b"own-user", 1) == 0
    assert sorted(payloads(alice.collect(2))) == ["own", "own-user"]
    assert alice.publish("clients/bob/x", b"intrude", 1) == NOT_AUTHORIZED
    assert alice.publish("users/ubob/x", b"intrude", 1) == NOT_AUTHORIZED
    assert bob.publish("clients/bob/y", b"bob-own", 1) == 0
    assert payloads(bob.collect(1)) == ["bob-own"]
    bob.expect_no_message(0.3)


@pytest.mark.parametrize("who", ["client-id +", "client-id #", "username +", "username #"])
def test_acl_substitution_of_a_wildcard_id_grants_nobody_elses_topics(start_broker, paho, who):
    """%c / %u stand for the client id / user name: a client whose id (or user name) is
    `+` or `#` may use clients/+/... (users/#/...) literally, i.e. nothing of anybody
    else; the substituted wildcard must not open every client's topics."""
    b = start_broker(ACL_SUBST)
    kind, wild = who.split()
    victim = _user_client(paho, b.port, "victim", "uvictim")
    assert victim.subscribe("clients/victim/#", 1) == [1]
    assert victim.subscribe("users/uvictim/#", 1) == [1]
    if kind == "client-id":
        evil = _user_client(paho, b.port, wild, "uevil")
        base = "clients/victim"
    else:
        evil = _user_client(paho, b.port, "evil", wild)
        base = "users/uvictim"
    problems = []
    sub = evil.subscribe(f"{base}/#", 1)
    if sub != [NOT_AUTHORIZED]:
        problems.append(f"SUBSCRIBE {base}/# granted {sub}")
    rc = evil.publish(f"{base}/x", b"intrude", 1)
    if rc != NOT_AUTHORIZED:
        problems.append(f"PUBLISH {base}/x acknowledged {rc:#04x}")
    leaked = payloads(victim.drain(0.3))
    if leaked:
        problems.append(f"the victim received {leaked}")
    assert not problems, f"{who}: " + "; ".join(problems)


# --- a second broker on the same port ------------------------------------------------------

def test_second_broker_on_the_same_port_refuses_to_start(start_broker, paho, topic):
    """README: a second broker on the same port fails to start instead of sharing it:
    non-zero exit with a clear message (`cannot start`, the address, `in use`); the
    first one keeps working."""
    b = start_broker()
    other = tempfile.mkdtemp(prefix="parley-interop-second-")
    try:
        p = subprocess.run([BIN, "serve", "--plugins", "", "--mqtt", f"127.0.0.1:{b.port}", "--data",
                            os.path.join(other, "data"), "--loops", "1"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10, cwd=other)
    finally:
        shutil.rmtree(other, ignore_errors=True)
    err = p.stderr.decode(errors="replace")
    assert p.returncode != 0, err
    assert "cannot start" in err and f"127.0.0.1:{b.port}" in err and "in use" in err, err
    assert b.alive
    sub = paho(b.port)
    sub.connect()
    sub.subscribe(topic, 1)
    pub = paho(b.port)
    pub.connect()
    assert pub.publish(topic, b"still here", 1) == 0
    assert payloads(sub.collect(1)) == ["still here"]
