#!/usr/bin/env python3
"""Crash test: nothing acknowledged is ever lost.

Runs a broker (Parley or Mosquitto) on a free loopback port with a fresh data
directory, puts QoS 1 / QoS 2 load on it, kills it with SIGKILL at a random
moment, restarts it on the same port and data directory, and does that
`--rounds` times. Then it restarts it once more, connects every subscriber (the
v5 ones with Clean Start 0 and no Session Expiry, so the stored session must be
resumed with expiry 0 and still deliver its whole queue), drains until quiet and checks that every acknowledged PUBLISH reached every
subscriber (all subscribe before the first PUBLISH): QoS 2 exactly once,
QoS 1 at least once, and per publisher in order (order of first arrival).

Clients (paho-mqtt 2.x, v3.1.1 and v5 mixed):
- publishers: one topic and one QoS each (`<prefix>/q1/pN` or `<prefix>/q2/pN`),
  payload `N:SEQ:padding`, SEQ counting up from 1 over the whole run; at most
  `--window` unacknowledged PUBLISHes each. A message is *acknowledged* when
  paho's on_publish fires for its mid (PUBACK / PUBCOMP) with a success reason
  code. Clean-session publishers start a new Client object (and so forget
  their unacknowledged messages: no promise) after every restart; persistent
  ones keep theirs, and paho resends the in-flight ones (DUP / PUBREL).
- subscribers: persistent sessions (3.1.1 clean_session=0, v5 session expiry
  1 h), `<prefix>/q1/+` at QoS 1 and `<prefix>/q2/+` at QoS 2. "online" ones
  reconnect after every restart; "offline" ones connect now and then (and
  whenever their backlog nears the broker's queue limit) and at the end; in
  most rounds they go offline a moment before the kill, so the kill finds
  their queues on disk.
  Each subscriber is ONE paho Client object for the whole run: paho delivers an
  inbound QoS 2 message on PUBREL and keeps the PUBREC'd-but-not-released ones
  across reconnects of the same object when the session is not clean; a new
  object would forget them (a loss that is paho's, not the broker's).
  If a broker answers a reconnect with session present = 0 the subscriber
  records "session lost" and subscribes again.

The broker's default per-session queue limit is 1000 messages (both brokers):
publishers pause while some subscriber's estimated backlog is above
`HIGH_WATER`, so a correct broker never has to drop for that reason.

Exit status: parley: 1 on any loss, QoS 2 duplicate, order error, lost
session or unknown message; mosquitto: 0 (it saves to disk only every
autosave_interval, 30 min by default, so it is expected to lose). 2 if the
harness itself could not run (broker would not start, client could not connect).

Loopback only; every wait is bounded; only processes started here are stopped,
by PID.
"""

import argparse
import bisect
import os
import random
import shutil
import signal
import socket
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
LOW_WATER = 600      # an offline subscriber with this backlog connects to drain
HIGH_WATER = 800     # publishers pause while some subscriber's backlog is above this
SESSION_EXPIRY = 3600
CONNECT_TIMEOUT = 10.0


class HarnessError(Exception):
    pass


def log(*a):
    print(*a, flush=True)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def is_failure(rc):
    return bool(getattr(rc, "is_failure", False))


# --------------------------------------------------------------------------- broker

class BrokerProc:
    """One broker process at a time on a fixed port and data directory."""

    def __init__(self, kind, binary, port, workdir, extra_args=()):
        self.kind = kind
        self.extra_args = list(extra_args)
        self.binary = binary
        self.port = port
        self.datadir = os.path.join(workdir, "data")
        self.logpath = os.path.join(workdir, "broker.log")
        self.workdir = workdir
        self.proc = None
        self.starts = 0
        os.makedirs(self.datadir, exist_ok=True)
        if kind == "mosquitto":
            self.conf = os.path.join(workdir, "mosquitto.conf")
            with open(self.conf, "w") as f:
                f.write(f"listener {port} {HOST}\nallow_anonymous true\n"
                        f"persistence true\npersistence_location {self.datadir}/\n")
            if os.geteuid() == 0:
                # mosquitto started as root drops to the `mosquitto` user: let it write.
                os.chmod(workdir, 0o755)
                os.chmod(self.datadir, 0o777)

    def args(self):
        if self.kind == "parley":
            return [self.binary, "serve", "--plugins", "", "--mqtt", f"{HOST}:{self.port}", "--data",
                    self.datadir] + self.extra_args
        return [self.binary, "-c", self.conf] + self.extra_args

    def start(self, timeout=20.0):
        self.starts += 1
        logf = open(self.logpath, "ab")
        logf.write(f"==== start {self.starts} {time.strftime('%H:%M:%S')}\n".encode())
        logf.flush()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.args(), cwd=self.workdir, stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf)
        logf.close()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"{self.kind} exited with {self.proc.returncode} at start "
                                   f"{self.starts}; see {self.logpath}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return time.monotonic() - t0
            except OSError:
                time.sleep(0.02)
        self.kill9()
        raise HarnessError(f"{self.kind} did not listen on {self.port} within {timeout} s; see {self.logpath}")

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)  # this PID only
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill9()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


# --------------------------------------------------------------------------- clients

class Endpoint:
    """What publishers and subscribers share: one paho client, connect/drop."""

    def __init__(self, run, cid, version, persistent):
        self.run = run
        self.cid = cid
        self.version = version            # 4 (3.1.1) or 5
        self.persistent = persistent
        self.client = None
        self.gen = 0
        self.connected = threading.Event()
        self.connack = threading.Event()
        self.connack_rc = None
        self.session_present = None
        self.ever_connected = False

    def _new_client(self):
        self.gen += 1
        gen = self.gen
        proto = mqtt.MQTTv5 if self.version == 5 else mqtt.MQTTv311
        kw = {}
        if self.version != 5:
            kw["clean_session"] = not self.persistent
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.cid, protocol=proto,
                        reconnect_on_failure=False, **kw)
        c.max_inflight_messages_set(max(20, self.run.window))
        c.max_queued_messages_set(0)

        def on_connect(client, userdata, flags, rc, props):
            if gen != self.gen:
                return
            self.connack_rc = rc
            self.session_present = bool(getattr(flags, "session_present", False))
            if not is_failure(rc):
                self.connected.set()
            self.connack.set()

        def on_disconnect(client, userdata, flags, rc, props):
            if gen == self.gen:
                self.connected.clear()

        c.on_connect = on_connect
        c.on_disconnect = on_disconnect
        self._hook(c, gen)
        kw = {"keepalive": 30}
        if self.version == 5:
            if self.persistent:
                p = Properties(PacketTypes.CONNECT)
                p.SessionExpiryInterval = SESSION_EXPIRY
                kw["properties"] = p
                kw["clean_start"] = mqtt.MQTT_CLEAN_START_FIRST_ONLY
            else:
                kw["clean_start"] = True
        c.connect_async(HOST, self.run.port, **kw)
        self.client = c
        return c

    def _hook(self, client, gen):
        pass

    def open(self, fresh=False):
        """Connects (a new Client object if fresh or none yet); waits for CONNACK."""
        if fresh or self.client is None:
            self._new_client()
        c = self.client
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while True:
            self.connack.clear()
            self.connected.clear()
            try:
                c.reconnect()
            except OSError as e:
                if time.monotonic() > deadline:
                    raise HarnessError(f"{self.cid}: cannot connect: {e}")
                time.sleep(0.1)
                continue
            c.loop_start()
            if not self.connack.wait(max(0.5, deadline - time.monotonic())):
                raise HarnessError(f"{self.cid}: no CONNACK within {CONNECT_TIMEOUT} s")
            if is_failure(self.connack_rc):
                raise HarnessError(f"{self.cid}: CONNACK {self.connack_rc}")
            first = not self.ever_connected
            self.ever_connected = True
            return first

    def wait_down(self, timeout=5.0):
        """After the broker died: waits until paho noticed, and its thread ended."""
        if self.client is None:
            return
        deadline = time.monotonic() + timeout
        while self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        t = self.client._thread
        if t is not None:
            t.join(max(0.1, deadline - time.monotonic()))
            if t.is_alive():
                raise HarnessError(f"{self.cid}: paho thread still running after broker death")
        self.connected.clear()

    def close(self):
        """DISCONNECT (keeps a persistent session), bounded."""
        c = self.client
        if c is None:
            return
        try:
            c.disconnect()
        except Exception:
            pass
        t = c._thread
        if t is not None:
            t.join(5)
            if t.is_alive():
                c._thread_terminate = True
                t.join(2)
        self.connected.clear()


class Publisher(Endpoint):
    def __init__(self, run, idx, qos, version, persistent):
        super().__init__(run, f"crash-{run.runid}-pub{idx}", version, persistent)
        self.idx = idx
        self.qos = qos
        self.topic = f"{run.prefix}/q{qos}/p{idx}"
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.pub_lock = threading.Lock()
        self.next_seq = 1
        self.round_of = {}        # seq -> round it was first published in
        self.acked = []           # sorted acknowledged seqs
        self.acked_set = set()
        self.outstanding = set()  # seqs sent on the current Client object, not yet acknowledged
        self.mid_to_seq = {}
        self.early = {}           # mid -> reason code, when the ack beat publish()'s return
        self.refused = 0          # on_publish with a failure reason code
        self.abandoned = 0        # unacknowledged when a clean publisher started over
        self.stop = threading.Event()
        self.thread = None

    def _hook(self, client, gen):
        def on_publish(c, userdata, mid, rc, props):
            with self.lock:
                if gen != self.gen:
                    return
                seq = self.mid_to_seq.pop(mid, None)
                if seq is None:
                    self.early[mid] = rc
                    return
                self._resolve(seq, rc)
                self.cond.notify_all()
        client.on_publish = on_publish

    def _resolve(self, seq, rc):
        self.outstanding.discard(seq)
        if is_failure(rc):
            self.refused += 1
        else:
            self.acked_set.add(seq)
            bisect.insort(self.acked, seq)

    def reopen(self):
        """After a restart: clean publishers start over with a new Client object."""
        with self.pub_lock:
            if not self.persistent:
                with self.lock:
                    self.abandoned += len(self.outstanding)
                    self.outstanding.clear()
                    self.mid_to_seq.clear()
                    self.early.clear()
                self.open(fresh=True)
            else:
                self.open()

    def pending_after(self, seq):
        """Acknowledged or in-flight messages with a sequence number above seq."""
        with self.lock:
            n = len(self.acked) - bisect.bisect_right(self.acked, seq)
            n += sum(1 for s in self.outstanding if s > seq)
            return n

    def loop(self):
        payload_pad = b"x" * self.run.payload_pad
        while not self.stop.is_set():
            if not self.connected.is_set() or not self.run.gate.is_set():
                time.sleep(0.01)
                continue
            with self.lock:
                if len(self.outstanding) >= self.run.window:
                    self.cond.wait(0.05)
                    continue
            with self.pub_lock:
                if self.stop.is_set() or not self.connected.is_set():
                    continue
                seq = self.next_seq
                self.next_seq += 1
                self.round_of[seq] = self.run.round
                with self.lock:
                    self.outstanding.add(seq)
                info = self.client.publish(self.topic, b"%d:%d:" % (self.idx, seq) + payload_pad, qos=self.qos)
                with self.lock:
                    rc = self.early.pop(info.mid, None)
                    if rc is not None:
                        self._resolve(seq, rc)
                    elif seq in self.outstanding:
                        self.mid_to_seq[info.mid] = seq

    def start(self):
        self.thread = threading.Thread(target=self.loop, name=self.cid, daemon=True)
        self.thread.start()


class Subscriber(Endpoint):
    def __init__(self, run, idx, version, online):
        super().__init__(run, f"crash-{run.runid}-sub{idx}", version, True)
        self.idx = idx
        self.online = online        # reconnects after every restart
        self.lock = threading.Lock()
        self.count = {}             # (pub, seq) -> deliveries
        self.maxseq = {}            # pub -> highest seq seen (first arrivals)
        self.order_errors = []      # (pub, seq, seen-before)
        self.bogus = []             # payloads we never published / wrong QoS
        self.distinct = 0
        self.last_rx = time.monotonic()
        self.subacked = threading.Event()
        self.granted = None
        self.session_lost = 0
        self.is_open = False
        self.opened_at = 0.0
        self.connects = 0
        self.crashes_offline = 0    # broker killed while this subscriber was offline
        self.floor = {}             # pub -> seq below which nothing is expected any more (a lossy broker)
        self.trace = []             # (time, broker start, connection, pub, seq, dup, mid): for diagnosis

    def _hook(self, client, gen):
        def on_message(c, userdata, msg):
            try:
                pub_s, seq_s, _ = msg.payload.split(b":", 2)
                key = (int(pub_s), int(seq_s))
            except ValueError:
                with self.lock:
                    self.bogus.append((msg.topic, msg.payload[:40]))
                return
            want_qos = 2 if "/q2/" in msg.topic else 1
            with self.lock:
                self.last_rx = time.monotonic()
                self.trace.append((self.last_rx, self.run.broker.starts, self.connects, key[0], key[1],
                                   int(msg.dup), msg.mid))
                if msg.qos != want_qos:
                    self.bogus.append((msg.topic, f"qos {msg.qos}"))
                n = self.count.get(key, 0)
                self.count[key] = n + 1
                if n == 0:
                    self.distinct += 1
                    top = self.maxseq.get(key[0], 0)
                    if key[1] < top:
                        self.order_errors.append((key[0], key[1], top))
                    else:
                        self.maxseq[key[0]] = key[1]

        def on_subscribe(c, userdata, mid, rcs, props):
            self.granted = [getattr(r, "value", r) for r in rcs]
            self.subacked.set()

        client.on_message = on_message
        client.on_subscribe = on_subscribe

    def subscribe(self):
        self.subacked.clear()
        self.client.subscribe([(f"{self.run.prefix}/q1/+", 1), (f"{self.run.prefix}/q2/+", 2)])
        if not self.subacked.wait(CONNECT_TIMEOUT):
            raise HarnessError(f"{self.cid}: no SUBACK")
        if self.granted != [1, 2]:
            raise HarnessError(f"{self.cid}: SUBACK {self.granted}")

    def connect(self):
        first = self.open()
        if first:
            self.subscribe()
        elif not self.session_present:
            self.session_lost += 1
            self.subscribe()
        self.is_open = True
        self.opened_at = time.monotonic()
        self.connects += 1

    def resume_without_expiry(self):
        """v5: reconnects with Clean Start 0 and no Session Expiry (0 from now on). The
        broker must resume the stored session and deliver its whole queue; the new
        expiry applies only when this connection ends [MQTT-3.1.2-4, MQTT-3.1.2-5]."""
        if self.is_open:
            self.close()
            self.is_open = False
        self.client._connect_properties = None  # paho reuses connect_async's properties on reconnect()
        self.connect()

    def backlog(self):
        """Estimated messages queued for us: acknowledged or in flight above what we saw
        per publisher (a correct broker delivers in order, so nothing below is pending)."""
        with self.lock:
            top = {i: max(self.maxseq.get(i, 0), self.floor.get(i, 0)) for i in range(len(self.run.publishers))}
        return sum(p.pending_after(top[p.idx]) for p in self.run.publishers)

    def give_up_waiting(self):
        """Connected, quiet for a second, backlog left: the broker lost it. Stop
        counting it as queued (only the pacing estimate; the verdict counts it lost)."""
        for p in self.run.publishers:
            with p.lock:
                top = p.acked[-1] if p.acked else 0
            with self.lock:
                self.floor[p.idx] = max(self.floor.get(p.idx, 0), top)


# --------------------------------------------------------------------------- the run

class Run:
    def __init__(self, broker="parley", binary=None, rounds=20, seconds=(2.0, 5.0), seed=None,
                 publishers=4, subscribers=4, window=8, payload_pad=24, drain_quiet=3.0,
                 drain_max=120.0, keep=False, verbose=True, broker_args=(), snapshots=False,
                 final_expiry_zero=True):
        self.snapshots = snapshots
        self.final_expiry_zero = final_expiry_zero
        self.kind = broker
        if binary is None:
            binary = os.path.join(REPO, ".build", "release", "parley") if broker == "parley" \
                else (shutil.which("mosquitto") or "/usr/sbin/mosquitto")
        self.binary = binary
        self.rounds = rounds
        self.seconds = seconds
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        self.window = window
        self.payload_pad = payload_pad
        self.drain_quiet = drain_quiet
        self.drain_max = drain_max
        self.keep = keep
        self.verbose = verbose
        self.runid = uuid.uuid4().hex[:8]
        self.prefix = f"crash/{self.runid}"
        self.port = free_port()
        self.round = 0
        self.gate = threading.Event()
        self.gate.set()
        self.gate_closed = 0.0
        self.gate_since = 0.0
        self.rate = 2000.0  # acknowledged messages per second (last round)
        self.workdir = tempfile.mkdtemp(prefix=f"parley-crash-{broker}-")
        # Publishers cover QoS x version x clean/persistent; subscribers alternate
        # version and online/offline.
        combos = [(1, 4, False), (1, 5, True), (2, 4, True), (2, 5, False),
                  (1, 4, True), (1, 5, False), (2, 4, False), (2, 5, True)]
        self.publishers = [Publisher(self, i, *combos[i % len(combos)]) for i in range(publishers)]
        kinds = [(4, True), (5, True), (4, False), (5, False)]
        self.subscribers = [Subscriber(self, i, *kinds[i % len(kinds)]) for i in range(subscribers)]
        self.broker = BrokerProc(broker, self.binary, self.port, self.workdir, broker_args)
        self.restart_times = []
        self.start_times = []
        self.round_stats = []

    def say(self, *a):
        if self.verbose:
            log(*a)

    # -- during a round

    def manage(self, wake, tail):
        backlogs = {s.idx: s.backlog() for s in self.subscribers}
        worst = max(backlogs.values()) if backlogs else 0
        if worst >= HIGH_WATER and self.gate.is_set():
            self.gate.clear()
            self.gate_since = time.monotonic()
        elif worst < HIGH_WATER - 100 and not self.gate.is_set():
            self.gate.set()
            self.gate_closed += time.monotonic() - self.gate_since
        now = time.monotonic()
        for s in self.subscribers:
            if s.is_open and backlogs[s.idx] > 0 and now - s.last_rx > 1.0 and now - s.opened_at > 1.0:
                s.give_up_waiting()
        for s in self.subscribers:
            if s.online:
                continue
            if s.idx in tail and now >= tail[s.idx] - 1.0:
                # Offline at the kill, with a queue on disk: drain for a second, then go
                # offline for the last moments (short enough not to reach HIGH_WATER, so
                # the kill still finds PUBLISHes in flight).
                if now < tail[s.idx]:
                    if not s.is_open:
                        s.connect()
                elif s.is_open:
                    s.close()
                    s.is_open = False
                continue
            if not s.is_open:
                if backlogs[s.idx] >= LOW_WATER or (s.idx in wake and now >= wake[s.idx]):
                    wake.pop(s.idx, None)
                    s.connect()
            else:
                quiet = now - s.last_rx
                if (now - s.opened_at > 1.0 and backlogs[s.idx] < 20 and quiet > 0.3) or now - s.opened_at > 10:
                    s.close()
                    s.is_open = False

    def crash_and_restart(self, reconnect_publishers=True):
        self.broker.kill9()
        for s in self.subscribers:
            if not s.is_open:
                s.crashes_offline += 1
        for e in self.subscribers + self.publishers:
            e.wait_down()
        for s in self.subscribers:
            s.is_open = False
        self.start_times.append(time.monotonic())
        if self.snapshots:
            shutil.copytree(self.broker.datadir, os.path.join(self.workdir, f"snap-{self.broker.starts + 1}"))
        dt = self.broker.start()
        self.restart_times.append(dt)
        for s in self.subscribers:
            if s.online:
                s.connect()
        if reconnect_publishers:
            for p in self.publishers:
                p.reopen()
        return dt

    def totals(self):
        pub = sum(p.next_seq - 1 for p in self.publishers)
        ack = sum(len(p.acked) for p in self.publishers)
        return pub, ack

    def execute(self):
        t_start = self.t_start = time.monotonic()
        self.say(f"crash test: broker={self.kind} ({self.binary}) port={self.port} rounds={self.rounds} "
                 f"seconds={self.seconds[0]}-{self.seconds[1]} seed={self.seed} workdir={self.workdir}")
        self.say("publishers: " + ", ".join(f"p{p.idx}=QoS{p.qos}/v{'5' if p.version == 5 else '3.1.1'}/"
                                             f"{'persistent' if p.persistent else 'clean'}" for p in self.publishers))
        self.say("subscribers: " + ", ".join(f"s{s.idx}=v{'5' if s.version == 5 else '3.1.1'}/"
                                              f"{'online' if s.online else 'offline'}" for s in self.subscribers))
        self.broker.start()
        for s in self.subscribers:          # every session and subscription exists first
            s.connect()
        for s in self.subscribers:
            if not s.online:
                s.close()
                s.is_open = False
        for p in self.publishers:
            p.open()
        self.round = 1
        for p in self.publishers:
            p.start()
        for r in range(1, self.rounds + 1):
            self.round = r
            before = self.totals()
            dur = self.rng.uniform(*self.seconds)
            t0 = time.monotonic()
            wake = {s.idx: t0 + self.rng.uniform(0, dur) for s in self.subscribers
                    if not s.online and self.rng.random() < 0.5}
            span = min(dur - 1.2, (HIGH_WATER - 150) / max(self.rate, 1.0))
            tail = {s.idx: t0 + dur - self.rng.uniform(0.2, 1.0) * span for s in self.subscribers
                    if not s.online and self.rng.random() < 0.75}
            while time.monotonic() - t0 < dur:
                self.manage(wake, tail)
                time.sleep(0.05)
            last = r == self.rounds
            if last:
                # Load runs up to the kill; the publishers stop with it.
                self.broker.kill9()
                for p in self.publishers:
                    p.stop.set()
            after = self.totals()
            self.rate = (after[1] - before[1]) / dur
            dt = self.crash_and_restart(reconnect_publishers=not last)
            self.say(f"round {r:2d}: {dur:4.1f} s load, published {after[0] - before[0]:6d}, "
                     f"acknowledged {after[1] - before[1]:6d}, broker back in {dt:.2f} s")
        for p in self.publishers:
            p.thread.join(5)
        # Drain: everyone connects; wait until each has every acknowledged message or is quiet.
        # v5 subscribers come back with no session expiry: a resume with expiry 0 must
        # still get everything queued.
        for s in self.subscribers:
            if s.version == 5 and self.final_expiry_zero:
                s.resume_without_expiry()
            elif not s.is_open:
                s.connect()
        self.gate.set()
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.drain_max:
            now = time.monotonic()
            done = True
            for s in self.subscribers:
                quiet = now - s.last_rx
                if quiet < 1.0 or (self.missing(s) > 0 and quiet < self.drain_quiet):
                    done = False
            if done:
                break
            time.sleep(0.2)
        drain = time.monotonic() - t0
        for s in self.subscribers:
            s.close()
        self.broker.stop()
        self.say(f"drained in {drain:.1f} s; total {time.monotonic() - t_start:.1f} s")
        return self.report()

    def missing(self, s):
        n = 0
        with s.lock:
            for p in self.publishers:
                for seq in list(p.acked_set):
                    if (p.idx, seq) not in s.count:
                        n += 1
        return n

    # -- the verdict

    def report(self):
        R = self.rounds
        cols = ["published", "acked", "delivered", "lost", "dup_qos2", "dup_qos1", "out_of_order", "unacked_delivered"]
        per = {r: dict.fromkeys(cols, 0) for r in range(1, R + 1)}
        lost_examples = []
        dup_examples = []
        for p in self.publishers:
            for seq, r in p.round_of.items():
                row = per[r]
                row["published"] += 1
                acked = seq in p.acked_set
                row["acked"] += acked
                for s in self.subscribers:
                    n = s.count.get((p.idx, seq), 0)
                    if acked:
                        if n:
                            row["delivered"] += 1
                        else:
                            row["lost"] += 1
                            if len(lost_examples) < 20:
                                lost_examples.append(f"s{s.idx} missed p{p.idx}#{seq} (round {r})")
                    elif n:
                        row["unacked_delivered"] += 1
                    if n > 1:
                        row["dup_qos2" if p.qos == 2 else "dup_qos1"] += 1
                        if p.qos == 2 and len(dup_examples) < 20:
                            dup_examples.append(f"s{s.idx} got p{p.idx}#{seq} {n} times (round {r}, "
                                                f"{'acked' if acked else 'unacked'})")
        order_examples = []
        for s in self.subscribers:
            for (pi, seq, top) in s.order_errors:
                r = self.publishers[pi].round_of.get(seq) if pi < len(self.publishers) else None
                if r in per:
                    per[r]["out_of_order"] += 1
                if len(order_examples) < 20:
                    order_examples.append(f"s{s.idx} got p{pi}#{seq} after p{pi}#{top}")
        if any(s.order_errors for s in self.subscribers) or total_lost_or_dup(per):
            self.dump_trace()
        unknown = []
        for s in self.subscribers:
            unknown += [f"s{s.idx}: {b}" for b in s.bogus]
            for (pi, seq) in s.count:
                if pi >= len(self.publishers) or seq not in self.publishers[pi].round_of:
                    unknown.append(f"s{s.idx}: p{pi}#{seq} never published")
        total = {c: sum(per[r][c] for r in per) for c in cols}
        w = [5] + [max(9, len(c)) for c in cols]
        lines = ["round " + " ".join(c.rjust(x) for c, x in zip(cols, w[1:]))]
        for r in range(1, R + 1):
            lines.append(f"{r:5d} " + " ".join(str(per[r][c]).rjust(x) for c, x in zip(cols, w[1:])))
        lines.append("total " + " ".join(str(total[c]).rjust(x) for c, x in zip(cols, w[1:])))
        n_subs = len(self.subscribers)
        lines.append(f"(delivered/lost count subscriber x message pairs: {n_subs} subscribers, expected "
                     f"{total['acked'] * n_subs} = acked x {n_subs})")
        session_lost = sum(s.session_lost for s in self.subscribers)
        refused = sum(p.refused for p in self.publishers)
        abandoned = sum(p.abandoned for p in self.publishers)
        lines.append(f"sessions lost on reconnect: {session_lost}; publishes refused by reason code: {refused}; "
                     f"unacked dropped by clean publishers at restarts: {abandoned}; unknown/bad deliveries: "
                     f"{len(unknown)}; publishers paused for queue limit: {self.gate_closed:.1f} s; "
                     f"restart times: max {max(self.restart_times):.2f} s")
        lines.append("subscribers: " + "; ".join(
            f"s{s.idx} {'online' if s.online else 'offline'}: {s.connects} connects, "
            f"offline at {s.crashes_offline} of {self.rounds} kills" for s in self.subscribers))
        for title, ex in (("lost", lost_examples), ("QoS 2 duplicates", dup_examples),
                          ("out of order", order_examples), ("unknown", unknown[:20])):
            if ex:
                lines.append(f"first {title}: " + "; ".join(ex))
        ok = (total["lost"] == 0 and total["dup_qos2"] == 0 and total["out_of_order"] == 0
              and session_lost == 0 and not unknown)
        lines.append(f"RESULT {self.kind}: {'PASS' if ok else 'FAIL'} (seed {self.seed})")
        text = "\n".join(lines)
        return Result(ok=ok, totals=total, per_round=per, session_lost=session_lost, unknown=unknown,
                      text=text, workdir=self.workdir, seed=self.seed)

    def dump_trace(self):
        """Arrivals around each subscriber's first order error (and all acks), to the work dir."""
        path = os.path.join(self.workdir, "trace.txt")
        t0 = self.t_start
        with open(path, "w") as f:
            for s in self.subscribers:
                f.write(f"== s{s.idx} order errors {len(s.order_errors)} (time, broker start, connection, "
                        f"pub, seq, dup, mid)\n")
                for t in s.trace:
                    f.write(f"{t[0] - t0:9.3f} start={t[1]} conn={t[2]} p{t[3]}#{t[4]} dup={t[5]} mid={t[6]}\n")
            for p in self.publishers:
                f.write(f"== p{p.idx} acked {len(p.acked)} of {p.next_seq - 1}; unacked: "
                        + " ".join(str(q) for q in sorted(set(p.round_of) - p.acked_set)) + "\n")
            f.write("== broker starts (s since t0): " + " ".join(f"{x - t0:.3f}" for x in self.start_times) + "\n")
        self.say(f"trace: {path}")

    def cleanup(self, ok):
        for p in self.publishers:
            p.stop.set()
        for e in self.subscribers + self.publishers:
            try:
                if e.client is not None and e.client._thread is not None:
                    e.close()
            except Exception:
                pass
        self.broker.kill9()
        if ok and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            self.say(f"kept {self.workdir} (broker.log, data/)")


def total_lost_or_dup(per):
    return sum(row["lost"] + row["dup_qos2"] for row in per.values())


class Result:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def run(**kw):
    """Runs the whole test; returns a Result (ok, totals, per_round, text, ...)."""
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
    ap.add_argument("--broker", choices=["parley", "mosquitto"], default="parley")
    ap.add_argument("--binary", help="broker binary (default .build/release/parley or mosquitto)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seconds", default="2-5", help="load time per round, MIN-MAX seconds (default 2-5)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--subscribers", type=int, default=4)
    ap.add_argument("--window", type=int, default=8, help="unacknowledged PUBLISHes per publisher")
    ap.add_argument("--keep", action="store_true", help="keep the work directory even on success")
    ap.add_argument("--snapshots", action="store_true",
                    help="copy the data directory before every restart (work dir snap-N/), for diagnosis")
    ap.add_argument("--keep-expiry-at-drain", action="store_true",
                    help="v5 subscribers drain with their session expiry (default: they resume with none, i.e. 0)")
    ap.add_argument("--broker-arg", action="append", default=[],
                    help="extra broker argument (repeatable), e.g. --broker-arg=--config --broker-arg=FILE")
    a = ap.parse_args(argv)
    lo, _, hi = a.seconds.partition("-")
    seconds = (float(lo), float(hi or lo))
    try:
        res = run(broker=a.broker, binary=a.binary, rounds=a.rounds, seconds=seconds, seed=a.seed,
                  publishers=a.publishers, subscribers=a.subscribers, window=a.window, keep=a.keep,
                  broker_args=a.broker_arg, snapshots=a.snapshots, final_expiry_zero=not a.keep_expiry_at_drain)
    except HarnessError as e:
        log(f"HARNESS ERROR: {e}")
        return 2
    log(res.text)
    if a.broker == "mosquitto":
        return 0
    return 0 if res.ok else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # paho threads are daemons; never hang at exit
