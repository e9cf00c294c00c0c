#!/usr/bin/env python3
"""Chat crash test: no acknowledged post is lost, none is stored twice, ids stay in order.

Makes a data directory in a temporary folder; with the command line (PARLEY_SCRYPT_LN=10)
adds the users poster0..poster3 and `reader` (user names need 3+ characters), creates the
room `crash` (owner poster0) with all of them as members and gives each user an access
token (`parley user token`: the MQTT password, no hashing on login). Then runs
`parley serve --mqtt 127.0.0.1:PORT --data DIR --config FILE` (`plugins = chat`,
`chat_post_rate = 100000/100000` so the rate limit never refuses, default
`durability = full`), puts posts on it, kills it with SIGKILL at a random moment, restarts
it on the same port and data directory, `--rounds` times, and stops it with SIGTERM at the
end (exit status 0 expected).

Clients (paho-mqtt 2.x; clean sessions for posters, 3.1.1 and 5.0 mixed):
- posters pN (users posterN; even N 3.1.1, odd N 5.0) post
  `{"body": "pN:SEQ", "ckey": "pN-SEQ"}` at QoS 1 to `rooms/crash/messages`, SEQ from 1 up,
  at most `--window` (8) unacknowledged at a time. A post is *acknowledged* when paho's
  on_publish fires for its mid with a success reason code (v5: < 0x80). A new
  Client object per connection; after every restart the poster reconnects and re-posts
  EVERY unacknowledged post, with the same body and ckey, in SEQ order, before any new one
  (the client-key retry SPEC section 3 promises is safe). Some rounds (`--early`) are
  killed within 0.3 s of the restart (half of them within 20 ms), while those retries
  may be in flight.
- `reader` (v5, persistent session: Clean Start 1 the first time and 0 after, Session
  Expiry 3600, QoS 1 on rooms/crash/messages) reconnects after every restart and records
  every envelope it gets.
- Before each restart the data directory's database files are copied (never opened in
  place) and the copy is read: what was stored at that kill.

Verdict, from `DIR/parley.db` read with sqlite3 after the broker stopped (table
`chat_messages`, room 'crash'), plus 5. the SIGTERM at the end exits 0:
  1. ids are exactly 1..N (no hole, no duplicate), and a row stored at a kill is still
     there, unchanged, at the end;
  2. every acknowledged post (its ckey) is stored exactly once; no ckey twice; no row that
     was never posted (body, ckey and sender must match a post); every post acknowledged
     on a broker's connection is in the copy taken when that broker was killed; no post
     was refused;
  3. per poster, ids increase with SEQ (order holds);
  4. online: the reader never sees an id smaller than one it already saw on the same
     connection, never loses its session, and by the end has seen every id 1..N at least
     once, each envelope matching the stored row (duplicates across reconnects are QoS 1's
     right, and counted).
"Repeats recognised" are posts acknowledged on a retry whose ckey was already stored
before that retry (in the copy taken at the kill before it).

Exit status: 0 all checks pass; 1 loss, duplicate, order or other check failed (the work
directory is kept: broker.log, data/); 2 harness error (the broker would not start, a
client could not connect, a command failed).

Loopback only; every wait is bounded; only processes started here are stopped, by PID.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HOST = "127.0.0.1"
ROOM = "crash"
TOPIC = f"rooms/{ROOM}/messages"
READER = "reader"
SESSION_EXPIRY = 3600
CONNECT_TIMEOUT = 10.0
START_TIMEOUT = 20.0
CLI_TIMEOUT = 30.0
CLI_ENV = dict(os.environ, PARLEY_SCRYPT_LN="10")
CONFIG = "plugins = chat\nchat_post_rate = 100000/100000\n"


class HarnessError(Exception):
    pass


class BrokerDied(Exception):
    """The broker exited without being killed: a crash of its own."""


def log(*a):
    print(*a, flush=True)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def rc_failed(rc):
    """paho 2.x reason code (v3.1.1 acks are always Success): a failure is >= 0x80."""
    value = getattr(rc, "value", rc)
    try:
        return bool(getattr(rc, "is_failure", False)) or int(value) >= 0x80
    except (TypeError, ValueError):
        return True


# --------------------------------------------------------------------------- broker

class Broker:
    """One `parley serve` at a time on a fixed port and data directory."""

    def __init__(self, binary, port, workdir, extra_config=()):
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self.datadir = os.path.join(workdir, "data")
        self.conf = os.path.join(workdir, "chat.conf")
        self.logpath = os.path.join(workdir, "broker.log")
        self.proc = None
        self.reader = None
        self.starts = 0
        self.listen_re = re.compile(rf"event=listener\.open address=127\.0\.0\.1:{port} protocol=mqtt\b")
        os.makedirs(self.datadir, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(CONFIG + "".join(line + "\n" for line in extra_config))

    def cli(self, *args, stdin=""):
        """`parley ARGS --data DIR`; stdout, or HarnessError."""
        cmd = [self.binary, *args, "--data", self.datadir]
        try:
            p = subprocess.run(cmd, input=stdin.encode(), capture_output=True, timeout=CLI_TIMEOUT,
                               env=CLI_ENV, cwd=self.workdir)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"`{' '.join(args)}` did not finish within {CLI_TIMEOUT} s")
        if p.returncode != 0:
            raise HarnessError(f"`parley {' '.join(args)}` exited {p.returncode}: "
                               f"{p.stderr.decode(errors='replace').strip()}")
        return p.stdout.decode(errors="replace")

    def start(self):
        self.starts += 1
        listening = threading.Event()
        logf = open(self.logpath, "ab")
        logf.write(f"==== start {self.starts} {time.strftime('%H:%M:%S')}\n".encode())
        logf.flush()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--mqtt", f"{HOST}:{self.port}", "--data", self.datadir, "--config", self.conf],
            cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.PIPE)
        proc = self.proc

        def pump():
            try:
                for line in proc.stderr:
                    logf.write(line)
                    logf.flush()
                    if not listening.is_set() and self.listen_re.search(line.decode(errors="replace")):
                        listening.set()
            finally:
                logf.close()

        self.reader = threading.Thread(target=pump, name=f"broker-stderr-{self.starts}", daemon=True)
        self.reader.start()
        deadline = t0 + START_TIMEOUT
        while not listening.wait(0.02):
            if proc.poll() is not None:
                self.reader.join(2)
                raise HarnessError(f"parley exited with {proc.returncode} at start {self.starts}; "
                                   f"see {self.logpath}:\n{self.tail()}")
            if time.monotonic() > deadline:
                self.kill9()
                raise HarnessError(f"parley did not log its listener on {self.port} within "
                                   f"{START_TIMEOUT} s; see {self.logpath}")
        return time.monotonic() - t0

    def _reap(self):
        if self.reader is not None:
            self.reader.join(3)
        if self.proc is not None and self.proc.stderr:
            try:
                self.proc.stderr.close()
            except Exception:
                pass

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)  # this PID only
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                raise HarnessError(f"parley (pid {self.proc.pid}) still there 10 s after SIGKILL")
        self._reap()

    def terminate(self, timeout=15.0):
        """SIGTERM by PID; the exit status (None: had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                return None
        self._reap()
        return self.proc.returncode

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n=20):
        try:
            with open(self.logpath, "rb") as f:
                return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def read_rows(dbpath):
    """[(id, sender, body, ckey)] of the room, ascending id."""
    con = sqlite3.connect(f"file:{dbpath}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("SELECT id, sender, body, ckey FROM chat_messages WHERE room = ? ORDER BY id",
                           (ROOM,)).fetchall()
    finally:
        con.close()


def snapshot_rows(datadir, dest):
    """Copies the database files of a dead broker (never opening them in place) and reads the copy."""
    os.makedirs(dest)
    names = [n for n in os.listdir(datadir) if n.startswith("parley.db")]
    if "parley.db" not in names:
        raise HarnessError(f"no parley.db in {datadir}: {sorted(os.listdir(datadir))}")
    for n in names:
        if n.endswith("-shm"):
            continue  # rebuilt from the WAL by whoever opens the copy
        shutil.copy2(os.path.join(datadir, n), os.path.join(dest, n))
    con = sqlite3.connect(os.path.join(dest, "parley.db"), timeout=10)
    try:
        rows = con.execute("SELECT id, sender, body, ckey FROM chat_messages WHERE room = ? ORDER BY id",
                           (ROOM,)).fetchall()
    finally:
        con.close()
    shutil.rmtree(dest, ignore_errors=True)
    return rows


# --------------------------------------------------------------------------- clients

class Endpoint:
    """One paho Client object per connection (a new one after every restart)."""

    def __init__(self, run, user, cid, version):
        self.run = run
        self.user = user
        self.cid = cid
        self.version = version          # 4 (3.1.1) or 5
        self.token = None
        self.client = None
        self.gen = 0
        self.gen_start = {}             # connection number -> broker start it was made to
        self.connected = threading.Event()
        self.connack = threading.Event()
        self.connack_rc = None
        self.session_present = None

    def _hook(self, client, gen):
        pass

    def _connect_args(self, first):
        return {}

    def open(self, first=False):
        """A new Client object, connected (CONNACK success) or HarnessError."""
        self.gen += 1
        gen = self.gen
        self.gen_start[gen] = self.run.broker.starts
        proto = mqtt.MQTTv5 if self.version == 5 else mqtt.MQTTv311
        kw = {} if self.version == 5 else {"clean_session": True}
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.cid, protocol=proto,
                        reconnect_on_failure=False, **kw)
        c.username_pw_set(self.user, self.token)
        c.max_inflight_messages_set(max(20, self.run.window * 2))
        c.max_queued_messages_set(0)

        def on_connect(client, userdata, flags, rc, props):
            if gen != self.gen:
                return
            self.connack_rc = rc
            self.session_present = bool(getattr(flags, "session_present", False))
            if not rc_failed(rc):
                self.connected.set()
            self.connack.set()

        def on_disconnect(client, userdata, flags, rc, props):
            if gen == self.gen:
                self.connected.clear()

        c.on_connect = on_connect
        c.on_disconnect = on_disconnect
        self._hook(c, gen)
        self.connack.clear()
        self.connected.clear()
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while True:
            try:
                c.connect(HOST, self.run.port, keepalive=30, **self._connect_args(first))
                break
            except OSError as e:
                if time.monotonic() > deadline:
                    raise HarnessError(f"{self.cid}: cannot connect: {e}")
                time.sleep(0.1)
        self.client = c
        c.loop_start()
        if not self.connack.wait(max(0.5, deadline - time.monotonic())):
            raise HarnessError(f"{self.cid}: no CONNACK within {CONNECT_TIMEOUT} s")
        if rc_failed(self.connack_rc):
            raise HarnessError(f"{self.cid}: CONNACK {self.connack_rc}")
        return c

    def wait_down(self, timeout=10.0):
        """After the broker died: until paho noticed and its thread ended (so every ack
        that arrived before the death has been handled)."""
        c = self.client
        if c is None:
            return
        deadline = time.monotonic() + timeout
        while self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        t = c._thread
        if t is not None:
            t.join(max(0.1, deadline - time.monotonic()))
            if t.is_alive():
                raise HarnessError(f"{self.cid}: paho thread still running {timeout} s after the broker died")
        self.connected.clear()

    def close(self):
        """DISCONNECT, bounded."""
        c = self.client
        if c is None:
            return
        try:
            c.disconnect()
        except Exception:
            pass
        t = c._thread
        if t is not None and t is not threading.current_thread():
            t.join(5)
            if t.is_alive():
                c._thread_terminate = True
                t.join(2)
        self.connected.clear()


class Poster(Endpoint):
    def __init__(self, run, idx):
        version = 4 if idx % 2 == 0 else 5
        super().__init__(run, f"poster{idx}", f"chatcrash-{run.runid}-p{idx}", version)
        self.idx = idx
        self.tag = f"p{idx}"               # bodies "pN:SEQ", ckeys "pN-SEQ" (user names need 3+ characters)
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.pub_lock = threading.Lock()   # one sender: the loop thread, or reopen() re-posting
        self.next_seq = 1
        self.outstanding = set()           # seqs not yet acknowledged (nor refused)
        self.attempts = {}                 # seq -> how many times it was sent
        self.first_round = {}              # seq -> round it was first sent in
        self.acked = {}                    # seq -> (broker start of the acking connection, attempt)
        self.refused = {}                  # seq -> reason code
        self.mids = {}                     # connection -> {mid: (seq, attempt)}
        self.early = {}                    # connection -> {mid: rc} when the ack beat publish()'s return
        self.resent = 0                    # re-posts sent
        self.stop = threading.Event()
        self.no_new = threading.Event()    # retries only (the end of the run)
        self.thread = None

    @staticmethod
    def payload(name, seq):
        return json.dumps({"body": f"{name}:{seq}", "ckey": f"{name}-{seq}"})

    def _hook(self, client, gen):
        with self.lock:
            self.mids[gen] = {}
            self.early[gen] = {}

        def on_publish(c, userdata, mid, rc, props):
            with self.lock:
                entry = self.mids[gen].pop(mid, None)
                if entry is None:
                    self.early[gen][mid] = rc
                    return
                self._resolve(gen, entry, rc)
                self.cond.notify_all()
        client.on_publish = on_publish

    def _resolve(self, gen, entry, rc):
        seq, attempt = entry
        if seq not in self.outstanding:
            return
        self.outstanding.discard(seq)
        if rc_failed(rc):
            self.refused[seq] = f"0x{int(getattr(rc, 'value', 0)):02X} {rc}"
        else:
            self.acked[seq] = (self.gen_start[gen], attempt)

    def _send(self, seq):
        """Publishes seq on the current connection (caller holds pub_lock)."""
        with self.lock:
            gen = self.gen
            client = self.client
            self.outstanding.add(seq)
            self.attempts[seq] = attempt = self.attempts.get(seq, 0) + 1
            if attempt > 1:
                self.resent += 1
        info = client.publish(TOPIC, self.payload(self.tag, seq), qos=1)
        with self.lock:
            rc = self.early[gen].pop(info.mid, None)
            if rc is not None:
                self._resolve(gen, (seq, attempt), rc)
                self.cond.notify_all()
            elif seq in self.outstanding:
                self.mids[gen][info.mid] = (seq, attempt)

    def reopen(self):
        """After a restart: a new connection, then every unacknowledged post again, in SEQ order."""
        with self.pub_lock:
            self.open()
            with self.lock:
                again = sorted(self.outstanding)
            for seq in again:
                self._send(seq)

    def unacked(self):
        with self.lock:
            return len(self.outstanding)

    def loop(self):
        while not self.stop.is_set():
            if self.no_new.is_set() or not self.connected.is_set():
                time.sleep(0.01)
                continue
            with self.lock:
                if len(self.outstanding) >= self.run.window:
                    self.cond.wait(0.05)
                    continue
            with self.pub_lock:
                if self.stop.is_set() or self.no_new.is_set() or not self.connected.is_set():
                    continue
                seq = self.next_seq
                self.next_seq += 1
                self.first_round[seq] = self.run.round
                self._send(seq)

    def start(self):
        self.thread = threading.Thread(target=self.loop, name=self.cid, daemon=True)
        self.thread.start()


class Reader(Endpoint):
    def __init__(self, run):
        super().__init__(run, READER, f"chatcrash-{run.runid}-reader", 5)
        self.lock = threading.Lock()
        self.count = {}             # id -> deliveries
        self.envelope = {}          # id -> (from, body, ckey) of the first delivery
        self.mismatch = []          # envelopes that disagree with each other or are malformed
        self.ckeys = set()
        self.order_errors = []      # (connection, id, highest id seen before on that connection)
        self.same_conn_dups = 0
        self.conn_max = {}          # connection -> highest id seen on it
        self.deliveries = 0
        self.last_rx = time.monotonic()
        self.subacked = threading.Event()
        self.granted = None
        self.session_lost = 0
        self.connects = 0

    def _connect_args(self, first):
        p = Properties(PacketTypes.CONNECT)
        p.SessionExpiryInterval = SESSION_EXPIRY
        return {"clean_start": bool(first), "properties": p}

    def _hook(self, client, gen):
        def on_message(c, userdata, msg):
            with self.lock:
                self.last_rx = time.monotonic()
                self.deliveries += 1
                try:
                    e = json.loads(msg.payload)
                    mid = int(e["id"])
                    key = (e["from"], e["body"], e.get("ckey"))
                    if msg.topic != TOPIC or e.get("room") != ROOM or msg.qos != 1:
                        raise ValueError(f"topic {msg.topic} room {e.get('room')} qos {msg.qos}")
                    props = dict(getattr(msg.properties, "UserProperty", []) or [])
                    if props.get("parley-id") != str(mid) or props.get("parley-from") != e["from"]:
                        raise ValueError(f"user properties {props}")
                except (ValueError, KeyError, TypeError) as ex:
                    self.mismatch.append(f"conn {gen}: bad delivery {msg.payload[:80]!r}: {ex}")
                    return
                top = self.conn_max.get(gen, 0)
                if mid < top:
                    self.order_errors.append((gen, mid, top))
                elif mid == top:
                    self.same_conn_dups += 1
                else:
                    self.conn_max[gen] = mid
                self.count[mid] = self.count.get(mid, 0) + 1
                old = self.envelope.setdefault(mid, key)
                if old != key:
                    self.mismatch.append(f"id {mid} delivered as {old} and as {key}")
                if key[2] is not None:
                    self.ckeys.add(key[2])

        def on_subscribe(c, userdata, mid, rcs, props):
            self.granted = [getattr(r, "value", r) for r in rcs]
            self.subacked.set()

        client.on_message = on_message
        client.on_subscribe = on_subscribe

    def subscribe(self):
        self.subacked.clear()
        self.client.subscribe(TOPIC, qos=1)
        if not self.subacked.wait(CONNECT_TIMEOUT):
            raise HarnessError(f"{self.cid}: no SUBACK")
        if self.granted != [1]:
            raise HarnessError(f"{self.cid}: SUBACK {self.granted}")

    def connect(self, first=False):
        self.open(first=first)
        self.connects += 1
        if first:
            self.subscribe()
        elif not self.session_present:
            self.session_lost += 1
            self.subscribe()


# --------------------------------------------------------------------------- the run

class Run:
    def __init__(self, binary=None, rounds=10, seconds=(2.0, 5.0), seed=None, posters=4, window=8,
                 early=0.2, drain_max=60.0, keep=False, verbose=True, extra_config=()):
        self.binary = binary or os.path.join(REPO, ".build", "debug", "parley")
        if not os.access(self.binary, os.X_OK):
            raise HarnessError(f"broker binary {self.binary} not found or not executable")
        self.rounds = rounds
        self.seconds = seconds
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        self.window = window
        self.early = early
        self.drain_max = drain_max
        self.keep = keep
        self.verbose = verbose
        self.runid = uuid.uuid4().hex[:8]
        self.port = free_port()
        self.round = 0
        self.workdir = tempfile.mkdtemp(prefix="parley-chatcrash-")
        self.broker = Broker(self.binary, self.port, self.workdir, extra_config)
        self.posters = [Poster(self, i) for i in range(posters)]
        self.reader = Reader(self)
        self.snapshots = {}         # broker start -> rows stored when it was killed
        self.restart_times = []
        self.kill_after = []        # seconds after the (re)start each kill came
        self.shutdown_rc = None
        self.t_start = time.monotonic()

    def say(self, *a):
        if self.verbose:
            log(*a)

    def setup(self):
        b = self.broker
        users = [p.user for p in self.posters] + [READER]
        for u in users:
            b.cli("user", "add", u, stdin=f"pw-{u}-{self.runid}\n")
        b.cli("room", "create", ROOM, "--owner", self.posters[0].user)
        for u in users[1:]:
            b.cli("room", "add", ROOM, u)
        for e in self.posters + [self.reader]:
            tok = b.cli("user", "token", e.user).strip()
            if not tok.startswith("pt_") or "\n" in tok:
                raise HarnessError(f"`parley user token {e.user}` printed {tok!r}")
            e.token = tok

    def totals(self):
        posted = sum(p.next_seq - 1 for p in self.posters)
        acked = sum(len(p.acked) for p in self.posters)
        return posted, acked

    def check_alive(self):
        if not self.broker.alive():
            raise BrokerDied(f"parley exited by itself with {self.broker.proc.returncode} in round "
                             f"{self.round}; see {self.broker.logpath}:\n{self.broker.tail()}")

    def kill(self):
        """SIGKILL; waits until every client noticed (and handled the acks that came before)."""
        self.broker.kill9()
        for e in [self.reader] + self.posters:
            e.wait_down()

    def restart(self):
        killed = self.broker.starts
        self.snapshots[killed] = snapshot_rows(self.broker.datadir, os.path.join(self.workdir, f"snap-{killed}"))
        dt = self.broker.start()
        self.restart_times.append(dt)
        self.reader.connect()
        for p in self.posters:
            p.reopen()
        return dt

    def execute(self):
        self.t_start = time.monotonic()
        self.say(f"chat crash test: {self.binary} port={self.port} rounds={self.rounds} "
                 f"seconds={self.seconds[0]}-{self.seconds[1]} early={self.early} seed={self.seed} "
                 f"workdir={self.workdir}")
        self.say("posters: " + ", ".join(f"{p.user}=v{'5' if p.version == 5 else '3.1.1'}" for p in self.posters)
                 + f"; window {self.window}; reader v5 persistent")
        t0 = time.monotonic()
        self.setup()
        self.say(f"setup (users, room, tokens) in {time.monotonic() - t0:.1f} s")
        self.broker.start()
        self.reader.connect(first=True)
        for p in self.posters:
            p.open()
        self.round = 1
        for p in self.posters:
            p.start()
        for r in range(1, self.rounds + 1):
            self.round = r
            before = self.totals()
            resent_before = sum(p.resent for p in self.posters)
            if r > 1 and self.rng.random() < self.early:
                # half of them within 20 ms: the retries are still in flight
                dur = self.rng.uniform(0.0, 0.02) if self.rng.random() < 0.5 else self.rng.uniform(0.02, 0.3)
            else:
                dur = self.rng.uniform(*self.seconds)
            t0 = time.monotonic()
            while time.monotonic() - t0 < dur:
                self.check_alive()
                time.sleep(min(0.02, max(0.0, dur - (time.monotonic() - t0))))
            self.check_alive()
            self.kill_after.append(dur)
            self.kill()
            after = self.totals()
            dt = self.restart()
            self.say(f"round {r:2d}: killed after {dur:4.2f} s, posted {after[0] - before[0]:6d}, "
                     f"acknowledged {after[1] - before[1]:6d}, re-posted after the restart "
                     f"{sum(p.resent for p in self.posters) - resent_before:3d}, broker back in {dt:.2f} s")
        # The end: no new posts; every retry of the last restart must be acknowledged.
        for p in self.posters:
            p.no_new.set()
        t0 = time.monotonic()
        while any(p.unacked() for p in self.posters) and time.monotonic() - t0 < 30.0:
            self.check_alive()
            time.sleep(0.05)
        unresolved = {p.tag: sorted(p.outstanding) for p in self.posters if p.unacked()}
        for p in self.posters:
            p.stop.set()
        for p in self.posters:
            p.thread.join(5)
        # Drain the reader: until it has every acknowledged ckey and has been quiet a second.
        acked_ckeys = {f"{p.tag}-{s}" for p in self.posters for s in p.acked}
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.drain_max:
            self.check_alive()
            with self.reader.lock:
                have_all = acked_ckeys <= self.reader.ckeys
                quiet = time.monotonic() - self.reader.last_rx
            if (have_all and quiet > 1.0) or quiet > 5.0:
                break
            time.sleep(0.1)
        drain = time.monotonic() - t0
        for e in self.posters + [self.reader]:
            e.close()
        self.shutdown_rc = self.broker.terminate()
        self.elapsed = time.monotonic() - self.t_start
        self.say(f"final retries and drain in {drain:.1f} s; SIGTERM exit status {self.shutdown_rc}; "
                 f"total {self.elapsed:.1f} s")
        return self.verdict(unresolved)

    # -- the verdict

    def verdict(self, unresolved):
        rows = read_rows(os.path.join(self.broker.datadir, "parley.db"))
        checks = []   # (name, ok, detail)
        ids = [r[0] for r in rows]
        N = len(rows)

        # 1. ids exactly 1..N, and rows stored at a kill unchanged at the end.
        id_set = set(ids)
        dup_ids = sorted({i for i in ids if ids.count(i) > 1}) if len(id_set) != len(ids) else []
        top = max(ids) if ids else 0
        holes = sorted(set(range(1, top + 1)) - id_set)
        final_by_id = {r[0]: r for r in rows}
        changed = []
        for start, snap in sorted(self.snapshots.items()):
            for r in snap:
                if final_by_id.get(r[0]) != r:
                    changed.append(f"id {r[0]} {r[1:]} stored at kill {start}, at the end "
                                   f"{final_by_id.get(r[0], ('missing',))[1:] or 'missing'}")
        snap_holes = []
        for start, snap in sorted(self.snapshots.items()):
            s_ids = [r[0] for r in snap]
            if s_ids != list(range(1, len(s_ids) + 1)):
                snap_holes.append(f"kill {start}: ids not 1..{len(s_ids)} "
                                  f"(missing {sorted(set(range(1, max(s_ids, default=0) + 1)) - set(s_ids))[:10]})")
        ok1 = not dup_ids and not holes and top == N and not changed and not snap_holes
        checks.append(("1 ids are exactly 1..N; stored rows never change", ok1,
                       f"N={N}, max id {top}, holes {holes[:20]}{'...' if len(holes) > 20 else ''}, "
                       f"duplicate ids {dup_ids[:20]}, rows changed/lost after a kill {len(changed)}"
                       + (": " + "; ".join(changed[:10]) if changed else "")
                       + ("; " + "; ".join(snap_holes[:5]) if snap_holes else "")))

        # 2. every acknowledged ckey exactly once; no ckey twice; nothing never posted.
        posters = {p.user: p for p in self.posters}
        by_tag = {p.tag: p for p in self.posters}
        by_ckey = {}
        unknown = []
        for (i, sender, body, ckey) in rows:
            by_ckey.setdefault(ckey, []).append(i)
            m = re.fullmatch(r"(p\d+):(\d+)", body or "")
            p = by_tag.get(m.group(1)) if m else None
            seq = int(m.group(2)) if m else None
            if (p is None or p.user != sender or ckey != f"{p.tag}-{seq}" or seq not in p.attempts):
                unknown.append(f"id {i}: sender {sender!r} body {body!r} ckey {ckey!r}")
        dup_ckeys = {k: v for k, v in by_ckey.items() if len(v) > 1}
        lost = []
        acked_total = 0
        for p in self.posters:
            for seq in sorted(p.acked):
                acked_total += 1
                if f"{p.tag}-{seq}" not in by_ckey:
                    start, attempt = p.acked[seq]
                    lost.append(f"{p.tag}-{seq} (acknowledged by broker start {start}, attempt {attempt}, "
                                f"first sent in round {p.first_round.get(seq)})")
        # acknowledged on a connection to broker start k => in the copy taken when k was killed
        snap_ckeys = {k: {r[3] for r in v} for k, v in self.snapshots.items()}
        not_at_kill = []
        for p in self.posters:
            for seq, (start, attempt) in sorted(p.acked.items()):
                if start in snap_ckeys and f"{p.tag}-{seq}" not in snap_ckeys[start]:
                    not_at_kill.append(f"{p.tag}-{seq} (acked by start {start}, attempt {attempt})")
        refused = [f"{p.tag}-{s}: {rc}" for p in self.posters for s, rc in sorted(p.refused.items())]
        unacked_end = [f"{u}-{s}" for u, seqs in unresolved.items() for s in seqs]
        stored_unacked = []
        for (i, sender, body, ckey) in rows:
            m = re.fullmatch(r"(p\d+)-(\d+)", ckey or "")
            if m and m.group(1) in by_tag and int(m.group(2)) not in by_tag[m.group(1)].acked:
                stored_unacked.append(f"id {i} {ckey}")
        ok2 = not lost and not dup_ckeys and not unknown and not not_at_kill and not refused and not unacked_end
        checks.append(("2 every acknowledged post stored exactly once; nothing else", ok2,
                       f"acknowledged {acked_total}, lost {len(lost)}"
                       + (f" {lost[:10]}" if lost else "")
                       + f", ckeys stored twice {len(dup_ckeys)}"
                       + (f" {dict(list(dup_ckeys.items())[:10])}" if dup_ckeys else "")
                       + f", rows never posted {len(unknown)}" + (f" {unknown[:10]}" if unknown else "")
                       + f", acked but not stored at the kill {len(not_at_kill)}"
                       + (f" {not_at_kill[:10]}" if not_at_kill else "")
                       + f", refused {len(refused)}" + (f" {refused[:10]}" if refused else "")
                       + f", never acknowledged at the end {len(unacked_end)}"
                       + (f" {unacked_end[:10]}" if unacked_end else "")
                       + f", stored but unacknowledged {len(stored_unacked)}"))

        # 3. per poster, ids increase with SEQ.
        order = []
        for p in self.posters:
            pairs = sorted((int(b.split(":")[1]), i) for (i, s, b, k) in rows
                           if s == p.user and re.fullmatch(rf"{p.tag}:\d+", b or ""))
            for (s1, i1), (s2, i2) in zip(pairs, pairs[1:]):
                if i2 <= i1:
                    order.append(f"{p.tag}: seq {s1} -> id {i1}, seq {s2} -> id {i2}")
        checks.append(("3 per poster, ids increase with SEQ", not order,
                       f"order errors {len(order)}" + (f" {order[:10]}" if order else "")))

        # 4. the reader: order per connection, every id 1..N, envelopes match the rows.
        rd = self.reader
        with rd.lock:
            seen = dict(rd.count)
            env = dict(rd.envelope)
            r_order = list(rd.order_errors)
            mismatch = list(rd.mismatch)
            deliveries = rd.deliveries
            same_conn = rd.same_conn_dups
        missing = sorted(set(range(1, N + 1)) - set(seen))
        extra = sorted(set(seen) - set(range(1, N + 1)))
        differ = [f"id {i}: delivered {env[i]}, stored {final_by_id[i][1:]}" for i in sorted(env)
                  if i in final_by_id and env[i] != final_by_id[i][1:]]
        dups = deliveries - len(seen) - len(mismatch)
        ok4 = not r_order and not missing and not extra and not mismatch and not differ and rd.session_lost == 0
        checks.append(("4 reader: in order per connection, saw every id 1..N", ok4,
                       f"deliveries {deliveries}, distinct ids {len(seen)}, duplicates {dups} "
                       f"({same_conn} on the same connection), connections {rd.connects}, "
                       f"order errors {len(r_order)}"
                       + (" " + "; ".join(f"conn {c}: id {i} after {t}" for c, i, t in r_order[:10]) if r_order else "")
                       + f", missing {len(missing)}" + (f" {missing[:20]}" if missing else "")
                       + f", ids not stored {extra[:10]}, bad/inconsistent deliveries {len(mismatch)}"
                       + (f" {mismatch[:5]}" if mismatch else "")
                       + f", envelope != row {len(differ)}" + (f" {differ[:5]}" if differ else "")
                       + f", sessions lost {rd.session_lost}"))

        checks.append(("5 SIGTERM at the end: exit status 0", self.shutdown_rc == 0,
                       f"exit status {self.shutdown_rc}"))

        # figures
        posted = sum(p.next_seq - 1 for p in self.posters)
        resent = sum(p.resent for p in self.posters)
        retried_posts = sum(1 for p in self.posters for a in p.attempts.values() if a > 1)
        acked_on_retry = 0
        repeats = 0
        for p in self.posters:
            for seq, (start, attempt) in p.acked.items():
                if attempt > 1:
                    acked_on_retry += 1
                    # the retry went to broker start `start`; the copy at the kill before it
                    if f"{p.tag}-{seq}" in snap_ckeys.get(start - 1, ()):
                        repeats += 1
        ok = all(c[1] for c in checks)
        lines = [
            f"rounds {self.rounds}, seed {self.seed}, kills after "
            + " ".join(f"{x:.2f}" for x in self.kill_after) + " s, restart max "
            f"{max(self.restart_times, default=0):.2f} s, total {self.elapsed:.1f} s",
            f"posted {posted}, acknowledged {acked_total}, retried {resent} re-posts of {retried_posts} posts, "
            f"acknowledged on a retry {acked_on_retry}, repeats recognised {repeats} "
            f"(stored anew on a retry {acked_on_retry - repeats}), N {N}",
        ]
        for name, c_ok, detail in checks:
            lines.append(f"{'PASS' if c_ok else 'FAIL'} {name}: {detail}")
        lines.append(f"RESULT: {'PASS' if ok else 'FAIL'} (seed {self.seed})")
        totals = dict(rounds=self.rounds, posted=posted, acked=acked_total, retried=resent,
                      retried_posts=retried_posts, acked_on_retry=acked_on_retry, repeats=repeats, N=N,
                      lost=len(lost), dup_ckeys=len(dup_ckeys), holes=len(holes), order=len(order),
                      reader_missing=len(missing), reader_order=len(r_order), reader_dups=dups)
        return Result(ok=ok, checks=checks, totals=totals, text="\n".join(lines), seed=self.seed,
                      workdir=self.workdir)

    def cleanup(self, ok):
        for p in self.posters:
            p.stop.set()
        for e in self.posters + [self.reader]:
            try:
                if e.client is not None and e.client._thread is not None:
                    e.close()
            except Exception:
                pass
        try:
            self.broker.kill9()
        except HarnessError:
            pass
        if ok and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            log(f"kept {self.workdir} (broker.log, data/)")


class Result:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def run(**kw):
    """The whole test; returns a Result (ok, checks, totals, text). Raises HarnessError when it
    cannot run, BrokerDied when the broker exited by itself."""
    r = Run(**kw)
    ok = False
    try:
        res = r.execute()
        ok = res.ok
        return res
    finally:
        r.cleanup(ok)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", help="parley binary (default .build/debug/parley)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seconds", default="2-5", help="load time per round, MIN-MAX seconds (default 2-5)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--posters", type=int, default=4, help="posters p0..pN-1 (even: 3.1.1, odd: 5.0)")
    ap.add_argument("--window", type=int, default=8, help="unacknowledged posts per poster")
    ap.add_argument("--early", type=float, default=0.2,
                    help="share of rounds (after the first) killed within 0.3 s of the restart "
                         "(half of them within 20 ms), while the retries may be in flight (default 0.2)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory even on success")
    ap.add_argument("--config-line", action="append", default=[],
                    help="extra line for the broker's config file (repeatable), e.g. a negative "
                         "control: --config-line 'durability = batch' must fail check 2")
    a = ap.parse_args(argv)
    lo, _, hi = a.seconds.partition("-")
    seconds = (float(lo), float(hi or lo))
    try:
        res = run(binary=a.binary, rounds=a.rounds, seconds=seconds, seed=a.seed, posters=a.posters,
                  window=a.window, early=a.early, keep=a.keep, extra_config=a.config_line)
    except HarnessError as e:
        log(f"HARNESS ERROR: {e}")
        return 2
    except BrokerDied as e:
        log(f"FAIL: {e}")
        return 1
    log(res.text)
    return 0 if res.ok else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # paho threads are daemons; never hang at exit
