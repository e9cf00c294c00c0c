"""Differential check: the same scripted raw-client conversation against Mosquitto and
Parley, and a comparison of the packets each broker sends back.

A conversation is a flat list of steps over named raw clients ("a", "b", ...):

    Open(c, version)      a new TCP connection for client c (closes c's old one)
    Send(c, data, label)  bytes (or a function of the client state) sent as is
    Expect(c, n)          read what the broker sends c until it is quiet; n is how many
                          packets to wait for before the short quiet window starts
                          (a speed hint only: whatever arrives is recorded)
    Ack(c)                answer everything c received and has not answered yet
                          (PUBLISH q1 -> PUBACK, q2 -> PUBREC, PUBREL -> PUBCOMP,
                          PUBREC for our own PUBLISH -> PUBREL), in arrival order
    AckAs(c, type, nth)   send an ack of `type` for the nth PUBLISH c received
    Drop(c)               close the socket without DISCONNECT
    Sleep(seconds)

The builders below (`connect`, `sub`, `pub`, `disc`, ...) return lists of steps; a
conversation may nest them, `flatten` is applied before running.

Each run gives a transcript: one line per packet, `c> ...` for what the script sent
(identical on both sides, for reading) and `c< ...` for what the broker sent, in the
order each client received them (the interleaving of different clients is the
script's order of Expect steps, not a measured one). The lines are the decoded
packets, every field, after the normalisation listed in test_differential.py. A packet
longer than the Maximum Packet Size the client announced is marked OVERSIZE(n>max).
"""

import os
import re
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import difflib

import raw as r

# What is allowed to differ, and why, is the list at the top of test_differential.py;
# the code that applies it: fmt_props (1-4), Runner.receive_publish / label_of (5, 8),
# describe (6), tolerate_timing (7).

# Mosquitto is run with these next to `listener PORT 127.0.0.1`, `allow_anonymous true`:
MOSQUITTO_BASE_CONFIG = [
    "persistence false",
    # Mosquitto 2.0.11 defaults to false, and then gives a 3.1.1 client with overlapping
    # subscriptions ONE copy at the QoS of one of them, not the highest (MQTT-3.3.5-1).
    "allow_duplicate_messages true",
    "set_tcp_nodelay true",
    "log_dest stderr",
    "log_type all",
]

QUIET = 0.3        # read-until-quiet window when no packet is awaited
AFTER = 0.02       # quiet window once the awaited packets have arrived (see Expect)
WAIT = 2.0         # longest wait for the awaited packets
EXPECT_CAP = 6.0   # hard cap on one Expect step
SETTLE = 0.1        # after DISCONNECT / drop when the broker's log cannot tell (see settle)
CLOSE_WAIT = 2.0    # longest wait for a broker to log a client's close

MOSQUITTO_BIN = os.environ.get("MOSQUITTO_BIN") or shutil.which("mosquitto") or "/usr/sbin/mosquitto"


# ---- Mosquitto ----------------------------------------------------------------

def free_port():
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


class Mosquitto:
    """One mosquitto process on a free 127.0.0.1 port; stopped by its own PID."""

    def __init__(self, extra_config=""):
        self.extra_config = extra_config
        self.tmp = tempfile.mkdtemp(prefix="parley-diff-mosq-")
        os.chmod(self.tmp, 0o755)  # mosquitto started as root drops to its own user
        self.proc = None
        self.port = None
        self.logpath = os.path.join(self.tmp, "mosquitto.log")

    def start(self):
        if not os.access(MOSQUITTO_BIN, os.X_OK):
            raise RuntimeError(f"mosquitto not found at {MOSQUITTO_BIN} (Tests/setup.sh installs it)")
        last = ""
        for _attempt in range(3):  # the port can be taken between probe and bind
            port = free_port()
            conf = os.path.join(self.tmp, "mosquitto.conf")
            with open(conf, "w") as f:
                f.write("\n".join([f"listener {port} 127.0.0.1", "allow_anonymous true"]
                                  + MOSQUITTO_BASE_CONFIG + [self.extra_config, ""]))
            os.chmod(conf, 0o644)
            logf = open(self.logpath, "ab")
            self.proc = subprocess.Popen([MOSQUITTO_BIN, "-c", conf], cwd=self.tmp,
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
            logf.close()
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self._listening(port):
                    self.port = port
                    return self
                time.sleep(0.01)
            self.stop()
            last = self.log_tail()
        raise RuntimeError(f"mosquitto did not start:\n{last}")

    def _listening(self, port):
        return self._probe(port)

    @staticmethod
    def _probe(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def log_tail(self, n=30):
        try:
            with open(self.logpath, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGKILL to this PID only: with persistence off there is nothing to save, and
        SIGTERM costs ~65 ms per case."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                pass

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---- decoding -------------------------------------------------------------------

TYPE_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
              7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
              12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}
DIAGNOSTIC_PROPS = {"ReasonString", "UserProperty"}
PROP_ORDER = {name: pid for pid, (name, _k) in r.PROPS.items()}


class Malformed(Exception):
    pass


def parse_props_list(buf, i):
    """Properties as a list of (name, value) in wire order; Malformed on anything odd."""
    try:
        length, i = r.read_vbi(buf, i)
        end = i + length
        if end > len(buf):
            raise Malformed("property length past the end")
        out = []
        while i < end:
            pid, i = r.read_vbi(buf, i)
            if pid not in r.PROPS:
                raise Malformed(f"unknown property 0x{pid:02X}")
            name, kind = r.PROPS[pid]
            if kind == "u8":
                v = buf[i]; i += 1
            elif kind == "u16":
                (v,) = struct.unpack_from("!H", buf, i); i += 2
            elif kind == "u32":
                (v,) = struct.unpack_from("!I", buf, i); i += 4
            elif kind == "vbi":
                v, i = r.read_vbi(buf, i)
            elif kind == "str":
                v, i = r.read_str(buf, i); v = v.decode("utf-8", "replace")
            elif kind == "bin":
                v, i = r.read_str(buf, i); v = bytes(v)
            else:
                k, i = r.read_str(buf, i)
                v2, i = r.read_str(buf, i)
                v = (k.decode("utf-8", "replace"), v2.decode("utf-8", "replace"))
            out.append((name, v))
        if i != end:
            raise Malformed("property overruns its length")
        return out, end
    except (IndexError, struct.error) as e:
        raise Malformed(f"truncated properties ({e})")


def fmt_payload(p):
    if len(p) <= 64:
        return repr(bytes(p))
    import hashlib
    return f"<{len(p)} bytes sha1={hashlib.sha1(p).hexdigest()[:10]}>"


def fmt_props(props, normalise, kind):
    """props: list of (name, value). kind: 'publish' | 'connack' | 'ack'."""
    items = list(props)
    if normalise:
        if kind == "connack":
            items = [(n, "<assigned>") for n, v in items if n == "AssignedClientIdentifier"]
        elif kind == "ack":
            items = [(n, v) for n, v in items if n not in DIAGNOSTIC_PROPS]
        subids = sorted(v for n, v in items if n == "SubscriptionIdentifier")
        if len(subids) > 1:
            rest = [(n, v) for n, v in items if n != "SubscriptionIdentifier"]
            items = rest + [("SubscriptionIdentifier", v) for v in subids]
        items = sorted(items, key=lambda nv: PROP_ORDER[nv[0]])
    if not items:
        return ""
    return " {" + ", ".join(f"{n}={v!r}" if isinstance(v, (str, bytes)) else f"{n}={v}"
                            for n, v in items) + "}"


# ---- clients and the runner -------------------------------------------------------

HIDDEN = object()  # label of a merged-away copy (see Pub)


class Line:
    def __init__(self, norm, raw=None):
        self._norm, self._raw = norm, raw if raw is not None else norm

    def norm(self):
        return self._norm

    def raw(self):
        return self._raw


class Pub:
    """One PUBLISH received by a client; with merge_copies, also the further copies of the
    same message that one client gets for its other matching subscriptions."""

    def __init__(self, client, qos, retain, dup, topic, payload, props, subids, pid, label, extra):
        self.client, self.qos, self.retain, self.dup = client, qos, retain, dup
        self.topic, self.payload, self.props, self.subids = topic, payload, props, list(subids)
        self.pid, self.label, self.extra = pid, label, extra
        self.copies = []  # raw text of merged copies

    def key(self):
        return (self.topic, self.payload, self.retain, self.dup, repr(self.props))

    def _text(self, pid_text, normalise):
        props = list(self.props) + [("SubscriptionIdentifier", v) for v in self.subids]
        if not normalise:  # wire order: subscription identifiers are where they came
            props = self.wire_props
        head = f"{self.client}< PUBLISH q={self.qos} r={self.retain} d={self.dup}"
        pid = f" pid={pid_text}" if self.qos else ""
        return (head + pid + f" {self.topic!r} {fmt_payload(self.payload)}"
                + fmt_props(props, normalise, "publish") + self.extra)

    def norm(self):
        return self._text(self.label, True)

    def raw(self):
        text = self._text(self.pid, False)
        if self.copies:
            text += "  [merged copies: " + " + ".join(self.copies) + "]"
        return text


class ClientState:
    def __init__(self, name, version, sock, maxpkt=None, session=None):
        self.name = name
        self.version = version
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.closed_recorded = False
        self.maxpkt = maxpkt
        self.session = session or name
        self.cid = session  # the client id from CONNECT, None if the broker assigns one
        self.close_mark = None
        self.pending = []        # [ack type, pid, hidden] owed to the broker, in arrival order
        self.received_pubs = []  # (pid, qos) of every PUBLISH received by this client name
        self.last_pub = None     # the Pub if the last packet received was a PUBLISH


class Runner:
    """Plays one conversation against one broker; collects normalised and raw transcripts.
    merge_copies: fold the extra copies a broker sends for overlapping subscriptions into
    one (highest QoS, every Subscription Identifier); used for Mosquitto only."""

    def __init__(self, port, merge_copies=False, close_waiter=None):
        self.port = port
        self.merge_copies = merge_copies
        self.close_waiter = close_waiter  # CloseWaiter of this broker, or None
        self.more_work = True
        self.clients = {}
        self.labels = {}      # session -> {pid: label | HIDDEN}
        self.counters = {}    # session -> next label number
        self.entries = []
        self.shortfalls = []  # Expect steps that got fewer packets than awaited (speed hints)
        self.overs = []       # ... and more

    # transcript
    def note(self, line, raw_line=None):
        self.entries.append(Line(line, raw_line))

    def note_raw(self, raw_line):
        self.entries.append(Line(None, raw_line))

    def new_label(self, st, pid):
        n = self.counters.get(st.session, 0) + 1
        self.counters[st.session] = n
        self.labels.setdefault(st.session, {})[pid] = f"m{n}"
        return f"m{n}"

    def close_mark(self):
        return self.close_waiter.mark() if self.close_waiter and self.more_work else None

    def settle(self, st, mark):
        """After a client closed: wait until the broker has logged that close (bounded), so
        the next step does not race it; a fixed SETTLE pause where that cannot be seen."""
        if not self.more_work:
            return
        if mark is None or not st.cid:
            time.sleep(SETTLE)
        elif not self.close_waiter.wait(st.cid, mark, CLOSE_WAIT):
            self.note_raw(f"-- {st.name}: the broker's log did not show the close within {CLOSE_WAIT}s")

    def label_of(self, st, pid):
        return self.labels.get(st.session, {}).get(pid, f"?{pid}")

    def client(self, name):
        if name not in self.clients:
            raise KeyError(f"client {name!r} used before Open")
        return self.clients[name]

    def run(self, steps):
        # a settle pause is only needed if something other than closing follows
        closing = (CloseAfterDisconnect, Drop, MarkClose)
        for i, step in enumerate(steps):
            rest = steps[i + 1:]
            self.more_work = any(not isinstance(s, closing) and
                                 not (isinstance(s, Send) and s.label.startswith("DISCONNECT")) for s in rest)
            try:
                step.run(self)
            except Exception as e:  # recorded, so both transcripts show it
                self.note(f"!! {type(step).__name__} {getattr(step, 'c', '')}: {type(e).__name__}: {e}")
        for st in self.clients.values():
            try:
                st.sock.close()
            except OSError:
                pass
        norm = [e.norm() for e in self.entries if e.norm() is not None]
        raw = [e.raw() for e in self.entries]
        return norm, raw

    # I/O
    def send(self, st, data):
        if st.eof:
            return
        try:
            st.sock.sendall(data)
        except OSError:
            pass  # a broker that closed shows in the next Expect

    def frame(self, st):
        b = st.buf
        if len(b) < 2:
            return None
        mult, length, i = 1, 0, 1
        while True:
            if i >= len(b):
                return None
            byte = b[i]
            i += 1
            length += (byte & 0x7F) * mult
            if not byte & 0x80:
                break
            mult *= 128
            if i > 4:
                raise Malformed("remaining length over 4 bytes")
        if len(b) < i + length:
            return None
        first, body, total = b[0], bytes(b[i:i + length]), i + length
        del b[:total]
        return first >> 4, first & 0x0F, body, total

    def fill(self, st, until):
        remaining = until - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([st.sock], [], [], remaining)
        if not ready:
            return False
        try:
            data = st.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            st.eof = True
            return True
        st.buf += data
        return True

    def expect(self, st, n, timeout, label):
        n0 = n
        start = time.monotonic()
        cap = start + EXPECT_CAP
        got = 0
        last = start
        while time.monotonic() < cap:
            f = None
            try:
                f = self.frame(st)
            except Malformed as e:
                self.note(f"{st.name}< MALFORMED FRAME ({e}) {bytes(st.buf[:32]).hex()}")
                st.buf.clear()
                st.eof = True
            if f is not None:
                self.receive(st, *f)
                got += 1
                last = time.monotonic()
                continue
            if st.eof:
                if not st.closed_recorded:
                    if st.buf:
                        self.note(f"{st.name}< TRUNCATED {bytes(st.buf[:32]).hex()}")
                        st.buf.clear()
                    self.note(f"{st.name}< <closed>")
                    st.closed_recorded = True
                break
            if got < n:
                until = min(start + timeout, cap)
                if time.monotonic() >= until:
                    self.shortfalls.append((label, n, got))
                    n = 0  # gave up waiting; one more quiet window
                    last = time.monotonic()
                    continue
            else:
                until = min(last + (AFTER if n else QUIET), cap)
                if time.monotonic() >= until:
                    break
            self.fill(st, until)
        if got < n and (label, n, got) not in self.shortfalls:
            self.shortfalls.append((label, n, got))
        if got > n0 > 0 or (n0 == 0 and got):
            self.overs.append((label, n0, got))

    def receive(self, st, ptype, flags, body, total):
        name = TYPE_NAMES.get(ptype, f"TYPE{ptype}")
        oversize = ""
        if st.maxpkt is not None and total > st.maxpkt:
            oversize = f" OVERSIZE({total}>{st.maxpkt})"
        try:
            if ptype == r.PUBLISH:
                self.receive_publish(st, flags, body, oversize)
                return
            norm, rawl = self.describe(st, ptype, flags, body)
        except (Malformed, IndexError, struct.error, UnicodeDecodeError) as e:
            norm = rawl = f"{name} MALFORMED flags=0x{flags:X} body={body[:40].hex()} ({e})"
        st.last_pub = None
        if norm is None:
            self.note_raw(f"{st.name}< {rawl}{oversize}  [of a merged copy]")
        else:
            self.note(f"{st.name}< {norm}{oversize}", f"{st.name}< {rawl}{oversize}")

    def receive_publish(self, st, flags, body, oversize):
        v5 = st.version == 5
        qos, retain, dup = (flags >> 1) & 3, flags & 1, (flags >> 3) & 1
        if len(body) < 2:
            raise Malformed("short PUBLISH")
        topic, i = r.read_str(body, 0)
        if i > len(body):
            raise Malformed("topic past the end")
        pid = None
        if qos:
            (pid,) = struct.unpack_from("!H", body, i); i += 2
        props, i = parse_props_list(body, i) if v5 else ([], i)
        payload = bytes(body[i:])
        subids = [v for n, v in props if n == "SubscriptionIdentifier"]
        other = [(n, v) for n, v in props if n != "SubscriptionIdentifier"]
        t = topic.decode("utf-8", "replace")
        flags_extra = f" flags=0x{flags:X}" if qos == 3 else ""
        p = Pub(st.name, qos, retain, dup, t, payload, other, subids, pid, None, flags_extra + oversize)
        p.wire_props = props
        st.received_pubs.append((pid, qos))
        prev = st.last_pub
        table = self.labels.setdefault(st.session, {})
        if (self.merge_copies and prev is not None and prev.key() == p.key()
                and not set(prev.subids) & set(subids)):
            # one more copy of prev for another subscription
            prev.copies.append(p._text(pid, False))
            prev.subids += subids
            prev.wire_props = list(prev.wire_props) + [("SubscriptionIdentifier", v) for v in subids]
            if qos > prev.qos:
                if prev.qos:
                    table[pid], table[prev.pid] = prev.label, HIDDEN
                    for entry in st.pending:
                        if entry[1] == prev.pid:
                            entry[2] = True
                else:
                    prev.label = self.new_label(st, pid)
                prev.qos, prev.pid = qos, pid
                if qos:
                    st.pending.append([r.PUBACK if qos == 1 else r.PUBREC, pid, False])
            elif qos:
                table[pid] = HIDDEN
                st.pending.append([r.PUBACK if qos == 1 else r.PUBREC, pid, True])
            return
        if qos:
            if dup and pid in table and table[pid] is not HIDDEN:
                p.label = table[pid]   # a redelivery keeps its label
            else:
                p.label = self.new_label(st, pid)
            st.pending.append([r.PUBACK if qos == 1 else r.PUBREC, pid, False])
        self.entries.append(p)
        st.last_pub = p

    def describe(self, st, ptype, flags, body):
        """(normalised or None if it belongs to a merged-away copy, raw) text of one packet
        from the broker other than PUBLISH; also tracks owed acks."""
        v5 = st.version == 5
        name = TYPE_NAMES.get(ptype, f"TYPE{ptype}")
        required_flags = 0x2 if ptype in (r.PUBREL, r.SUBSCRIBE, r.UNSUBSCRIBE) else 0
        fl = "" if flags == required_flags else f" flags=0x{flags:X}"
        if ptype == r.CONNACK:
            if len(body) < 2:
                raise Malformed("short CONNACK")
            sp, rc = body[0], body[1]
            props, end = parse_props_list(body, 2) if v5 else ([], 2)
            tail = f" trailing={body[end:].hex()}" if end != len(body) else ""
            sps = f"sp={sp & 1}" + (f" ackflags=0x{sp:02X}" if sp & 0xFE else "")
            head = f"CONNACK{fl} {sps} rc=0x{rc:02X}"
            return (head + fmt_props(props, True, "connack") + tail,
                    head + fmt_props(props, False, "connack") + tail)
        if ptype in (r.PUBACK, r.PUBREC, r.PUBREL, r.PUBCOMP):
            (pid,) = struct.unpack_from("!H", body, 0)
            rc, props, end = None, [], 2
            if v5 and len(body) > 2:
                rc, end = body[2], 3
                if len(body) > 3:
                    props, end = parse_props_list(body, 3)
            if v5 and rc is None:
                rc = 0
            tail = f" trailing={body[end:].hex()}" if end != len(body) else ""
            hidden = False
            if ptype == r.PUBREL:
                label = self.label_of(st, pid)
                hidden = label is HIDDEN
                st.pending.append([r.PUBCOMP, pid, hidden])
            else:
                label = str(pid)
                if ptype == r.PUBREC and (rc is None or rc < 0x80):
                    st.pending.append([r.PUBREL, pid, False])
            rcs = "" if rc is None else f" rc=0x{rc:02X}"
            rawt = f"{name}{fl} pid={pid}{rcs}{fmt_props(props, False, 'ack')}{tail}"
            if hidden:
                return None, rawt
            return f"{name}{fl} pid={label}{rcs}{fmt_props(props, True, 'ack')}{tail}", rawt
        if ptype in (r.SUBACK, r.UNSUBACK):
            (pid,) = struct.unpack_from("!H", body, 0)
            props, i = parse_props_list(body, 2) if v5 else ([], 2)
            codes = list(body[i:])
            if ptype == r.UNSUBACK and not v5:
                extra = f" trailing={body[2:].hex()}" if len(body) > 2 else ""
                return f"{name}{fl} pid={pid}{extra}", f"{name}{fl} pid={pid}{extra}"
            cs = "[" + ", ".join(f"0x{c:02X}" for c in codes) + "]"
            return (f"{name}{fl} pid={pid} {cs}{fmt_props(props, True, 'ack')}",
                    f"{name}{fl} pid={pid} {cs}{fmt_props(props, False, 'ack')}")
        if ptype == r.DISCONNECT:
            if not v5:
                extra = f" body={body.hex()}" if body else ""
                return f"DISCONNECT{fl}{extra}", f"DISCONNECT{fl}{extra}"
            rc = body[0] if body else 0
            props, end = parse_props_list(body, 1) if len(body) > 1 else ([], len(body))
            tail = f" trailing={body[end:].hex()}" if end != len(body) else ""
            return (f"DISCONNECT{fl} rc=0x{rc:02X}{fmt_props(props, True, 'ack')}{tail}",
                    f"DISCONNECT{fl} rc=0x{rc:02X}{fmt_props(props, False, 'ack')}{tail}")
        if ptype == r.PINGRESP:
            extra = f" body={body.hex()}" if body else ""
            return f"PINGRESP{fl}{extra}", f"PINGRESP{fl}{extra}"
        text = f"{name} flags=0x{flags:X} body={body[:40].hex()}"
        return text, text


# ---- steps --------------------------------------------------------------------------

class Open:
    def __init__(self, c, version=5, maxpkt=None, session=None):
        self.c, self.version, self.maxpkt, self.session = c, version, maxpkt, session

    def run(self, rn):
        old = rn.clients.get(self.c)
        if old is not None:
            try:
                old.sock.close()
            except OSError:
                pass
        sk = socket.create_connection(("127.0.0.1", rn.port), timeout=3.0)
        sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        st = ClientState(self.c, self.version, sk, self.maxpkt, self.session)
        if old is not None:
            st.received_pubs = old.received_pubs
        rn.clients[self.c] = st


class Send:
    def __init__(self, c, data, label):
        self.c, self.data, self.label = c, data, label

    def run(self, rn):
        st = rn.client(self.c)
        data = self.data(st) if callable(self.data) else self.data
        rn.note(f"{self.c}> {self.label}")
        rn.send(st, data)


class Expect:
    def __init__(self, c, n=0, timeout=WAIT):
        self.c, self.n, self.timeout = c, n, timeout

    def run(self, rn):
        rn.expect(rn.client(self.c), self.n, self.timeout, f"Expect({self.c!r}, {self.n})")


class Ack:
    """Answer what c owes the broker, in arrival order (all, or the first `count`)."""

    def __init__(self, c, count=None):
        self.c, self.count = c, count

    def run(self, rn):
        st = rn.client(self.c)
        todo = st.pending if self.count is None else st.pending[:self.count]
        st.pending = [] if self.count is None else st.pending[self.count:]
        for ptype, pid, hidden in todo:
            own = ptype == r.PUBREL  # our own QoS 2 PUBLISH: the id is ours
            label = str(pid) if own else rn.label_of(st, pid)
            if hidden:
                rn.note_raw(f"{self.c}> {TYPE_NAMES[ptype]} pid={pid}  [of a merged copy]")
            else:
                rn.note(f"{self.c}> {TYPE_NAMES[ptype]} pid={label}", f"{self.c}> {TYPE_NAMES[ptype]} pid={pid}")
            rn.send(st, r.ack(ptype, pid, version=st.version))


class AckAs:
    """Send `ptype` for the nth PUBLISH c received (a wrong-state ack if the type does not fit)."""

    def __init__(self, c, ptype, nth=-1):
        self.c, self.ptype, self.nth = c, ptype, nth

    def run(self, rn):
        st = rn.client(self.c)
        pid, _qos = st.received_pubs[self.nth]
        rn.note(f"{self.c}> {TYPE_NAMES[self.ptype]} pid={rn.label_of(st, pid)}",
                f"{self.c}> {TYPE_NAMES[self.ptype]} pid={pid}")
        rn.send(st, r.ack(self.ptype, pid, version=st.version))


class Drop:
    def __init__(self, c):
        self.c = c

    def run(self, rn):
        st = rn.client(self.c)
        rn.note(f"{self.c}> <drop: socket closed without DISCONNECT>")
        mark = rn.close_mark()
        try:
            st.sock.close()
        except OSError:
            pass
        st.eof = st.closed_recorded = True
        rn.settle(st, mark)


class MarkClose:
    """Before a DISCONNECT: where the broker's log stands (it may close before we do)."""

    def __init__(self, c):
        self.c = c

    def run(self, rn):
        rn.client(self.c).close_mark = rn.close_mark()


class CloseAfterDisconnect(Drop):
    def run(self, rn):
        st = rn.client(self.c)
        mark = st.close_mark
        try:
            st.sock.close()
        except OSError:
            pass
        st.eof = st.closed_recorded = True
        rn.settle(st, mark)


class Sleep:
    def __init__(self, seconds):
        self.c, self.seconds = "", seconds

    def run(self, rn):
        rn.note(f"-- sleep {self.seconds}s")
        time.sleep(self.seconds)


def flatten(steps):
    out = []
    for s in steps:
        if isinstance(s, (list, tuple)):
            out.extend(flatten(s))
        else:
            out.append(s)
    return out


# ---- builders ---------------------------------------------------------------------------

def _props_label(kw):
    if not kw:
        return ""
    return " {" + ", ".join(f"{k}={v!r}" for k, v in kw.items()) + "}"


def connect(c, cid, v=5, clean=True, keepalive=60, will=None, n=1, **props):
    """Open + CONNECT + Expect(CONNACK). props: v5 CONNECT properties by raw.PROPS name
    (SessionExpiryInterval=60, MaximumPacketSize=...). will: dict(topic, payload, qos,
    retain, props=dict(...))."""
    wl = ""
    w = None
    if will:
        w = dict(will)
        wprops = w.pop("props", {}) or {}
        if v == 5:
            w["properties"] = r.props(**wprops)
        wl = (f" will(topic={w['topic']!r}, payload={w.get('payload', b'')!r}, q={w.get('qos', 0)}, "
              f"r={int(bool(w.get('retain')))}{_props_label(wprops)})")
    data = r.connect(cid, version=v, clean=clean, keepalive=keepalive,
                     properties=r.props(**props) if v == 5 else None, will=w)
    label = f"CONNECT v{v} id={cid!r} clean={int(clean)}{_props_label(props)}{wl}"
    return [Open(c, v, maxpkt=props.get("MaximumPacketSize"), session=cid or None),
            Send(c, data, label), Expect(c, n)]


def sub(c, pid, filters, n=1, **props):
    """filters: [(filter, options byte)] or [filter] (QoS 0)."""
    fl = [(f, 0) if isinstance(f, str) else f for f in filters]
    pb = r.props(**props)
    label = f"SUBSCRIBE pid={pid} " + ", ".join(f"{f!r}/0x{o:02X}" for f, o in fl) + _props_label(props)
    return [Send(c, lambda st: r.subscribe(pid, fl, version=st.version,
                                           properties=pb if st.version == 5 else None), label),
            Expect(c, n)]


def unsub(c, pid, filters, n=1):
    label = f"UNSUBSCRIBE pid={pid} " + ", ".join(repr(f) for f in filters)
    return [Send(c, lambda st: r.unsubscribe(pid, filters, version=st.version), label), Expect(c, n)]


def pub(c, topic, payload=b"", qos=0, pid=None, retain=False, dup=False, **props):
    """PUBLISH without waiting (follow with Expect)."""
    if isinstance(payload, str):
        payload = payload.encode()
    if qos and pid is None:
        pid = 1
    pb = r.props(**props)
    label = (f"PUBLISH q={qos} r={int(retain)} d={int(dup)}" + (f" pid={pid}" if qos else "")
             + f" {topic!r} {fmt_payload(payload)}{_props_label(props)}")
    return Send(c, lambda st: r.publish(topic, payload, qos=qos, pid=pid, retain=retain, dup=dup,
                                        version=st.version,
                                        properties=pb if st.version == 5 else None), label)


def ack(c, ptype, pid, reason=None):
    """An ack with a client-chosen packet id (e.g. PUBREL for our own QoS 2 PUBLISH)."""
    return Send(c, lambda st: r.ack(ptype, pid, version=st.version, reason=reason),
                f"{TYPE_NAMES[ptype]} pid={pid}" + (f" rc=0x{reason:02X}" if reason is not None else ""))


def disc(c, reason=0, **props):
    """DISCONNECT, then close the socket as the client must (MQTT-3.14.4-2)."""
    pb = r.props(**props)
    label = "DISCONNECT" + (f" rc=0x{reason:02X}" if reason else "") + _props_label(props)
    return [MarkClose(c),
            Send(c, lambda st: r.disconnect(version=st.version, reason=reason,
                                            properties=pb if st.version == 5 else None), label),
            CloseAfterDisconnect(c)]


def ping(c):
    return [Send(c, r.pingreq(), "PINGREQ"), Expect(c, 1)]


# ---- running and comparing ----------------------------------------------------------------

EXPIRY_RE = re.compile(r"MessageExpiryInterval=(\d+)")


class CloseWaiter:
    """Sees in a broker's log that it has handled a client's close: `mark()` before the
    close, `wait(client_id, mark, timeout)` after it."""

    def __init__(self, read_from, pattern):
        self.read_from = read_from   # mark -> (text since mark)
        self.pattern = pattern       # client id -> compiled regex
        self.mark_fn = None

    def mark(self):
        return self.mark_fn()

    def wait(self, cid, mark, timeout):
        rx = self.pattern(cid)
        deadline = time.monotonic() + timeout
        while True:
            if rx.search(self.read_from(mark)):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)


def mosquitto_close_waiter(m):
    """Mosquitto (log_type all): 'Client ID disconnected.' / 'Client ID closed its connection.'"""
    def read_from(offset):
        with open(m.logpath, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    w = CloseWaiter(read_from, lambda cid: re.compile(
        rf"(Client {re.escape(cid)} (disconnected|closed its connection)|"
        rf"Socket error on client {re.escape(cid)},)"))
    w.mark_fn = lambda: os.path.getsize(m.logpath)
    return w


def parley_close_waiter(b):
    """Parley with log_level = debug: `event=client.closed client=ID `."""
    w = CloseWaiter(lambda n: "\n".join(b.log()[n:]),
                    lambda cid: re.compile(rf"event=client\.closed client={re.escape(cid)} "))
    w.mark_fn = lambda: len(b.log())
    return w


def run_both(steps, mosquitto_port, parley_port, timeout=40.0, waiters=None):
    """The conversation against both brokers at once (two threads): (mosquitto, parley),
    each (normalised lines, raw lines). waiters: {"mosquitto": CloseWaiter, "parley": ...}."""
    steps = flatten(steps)
    results = {}
    waiters = waiters or {}

    def go(key, port):
        rn = Runner(port, merge_copies=(key == "mosquitto"), close_waiter=waiters.get(key))
        try:
            results[key] = rn.run(steps)
        except Exception as e:  # pragma: no cover - a harness error, reported as such
            results[key] = ([f"!! harness error: {e!r}"], [f"!! harness error: {e!r}"])
        shortfalls[key] = rn.shortfalls, rn.overs

    shortfalls = {}
    threads = [threading.Thread(target=go, args=("mosquitto", mosquitto_port), daemon=True),
               threading.Thread(target=go, args=("parley", parley_port), daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    for key in ("mosquitto", "parley"):
        results.setdefault(key, ([f"!! {key} run did not finish in {timeout}s"],) * 2)
    run_both.shortfalls = shortfalls  # for tuning the Expect hints; not compared
    return results["mosquitto"], results["parley"]


class Fix:
    """A documented Mosquitto deviation from the spec, corrected in its transcript before
    the comparison: the contiguous lines `old` become `new`. If `old` is not found,
    Mosquitto no longer behaves as documented and the case says so."""

    def __init__(self, old, new, deviation):
        self.old, self.new, self.deviation = list(old), list(new), deviation


def apply_fixes(lines, fixes):
    out = list(lines)
    problems = []
    for fx in fixes:
        n = len(fx.old)
        at = next((i for i in range(len(out) - n + 1) if out[i:i + n] == fx.old), None)
        if at is None:
            problems.append(f"documented Mosquitto deviation not seen ({fx.deviation[0]}): "
                            f"expected lines {fx.old}")
            continue
        out[at:at + n] = fx.new
    return out, problems


def tolerate_timing(expected, actual):
    """Message Expiry Interval values that differ by at most 1 s count as equal."""
    out = list(actual)
    for i, (e, a) in enumerate(zip(expected, actual)):
        if e == a:
            continue
        ev, av = EXPIRY_RE.findall(e), EXPIRY_RE.findall(a)
        if ev and len(ev) == len(av) and EXPIRY_RE.sub("X", e) == EXPIRY_RE.sub("X", a) \
                and all(abs(int(x) - int(y)) <= 1 for x, y in zip(ev, av)):
            out[i] = e
    return out


def report(title, mosq, parley, expected, mosq_raw, parley_raw, problems):
    parts = [title]
    parts += problems
    parts.append("--- diff (- Mosquitto, spec-corrected where documented / + Parley), normalised:")
    parts += [l.rstrip("\n") for l in difflib.unified_diff(expected, parley, "mosquitto", "parley",
                                                             lineterm="", n=3)][2:]
    parts.append("--- Mosquitto, raw:")
    parts += ["    " + l for l in mosq_raw]
    parts.append("--- Parley, raw:")
    parts += ["    " + l for l in parley_raw]
    return "\n".join(parts)
