#!/usr/bin/env python3
"""The notification bridge's benchmarks (issue 13): outbox throughput, chat latency while
the bridge is busy, memory with 100,000 pending notifications.

    Tests/bench/notify.py                          # 3 rounds, everything (~10 min)
    Tests/bench/notify.py --smoke                  # CI: tiny parts 1 and 3 (seconds)
    Tests/bench/notify.py --rounds 5 --json /tmp/notify.json
    Tests/bench/notify.py --only throughput --no-build --parley /path/to/parley

Parts (--only throughput|chat|memory, comma-separated):
  throughput  Notifications/s through the outbox. One poster and MEMBERS offline members
              in a room, each member with one webhook device (an HTTPS URL on a local nginx
              that answers `return 204;`, certificate made here by openssl, Parley trusting
              its CA through notify_ca_file) or an e-mail address (notify = e-mail all, push
              off, digest_minutes 0) and a local SMTP sink (aiosmtpd, STARTTLS, and also
              smtp_tls = none). POSTS posts over REST; the clock runs from the first post
              until parley_notify_sent_total{channel} on /metrics has grown by POSTS x
              MEMBERS. Delivery latency: post (client clock, before the POST is written) to
              the row's sent_at in notify_outbox (Parley's clock, when the delivery
              answered), every row; the /metrics histogram's bucket for p50/p99 beside it.
              An e-mail job carries every pending e-mail notification of its user (the
              digest), so mails/s (the sink's count) is reported beside notifications/s.
              Settings: notify_workers / notify_per_destination = 4/2 (the defaults), 4/4
              and 16/16. Also: the unloaded latency of one webhook (one member, posts one
              after another).
  chat        p99 of a paced chat load (`parley bench rooms --chat`, ROOMS x 10 members
              online, QoS 1, each member posting RATE/s; durability none so fsync noise
              does not hide the bridge) with the notify plugin on but idle, against the
              same load while the outbox delivers a backlog (thousands of webhook
              notifications for the offline members of another room, sized from part 1's
              rate to outlast the run). Rounds alternate idle/busy.
  memory      100,000 pending notifications: devices point at a closed loopback port
              (connection refused: retried, notify_retry_base = 1h so the rows then rest);
              posts until parley_notify_pending (recounted every ~2 s) reads 100,000.
              VmRSS and VmHWM of Parley before the load and with 100k pending, and the
              database's size (parley.db + -wal).

Set-up is what a client does: users sign up over REST (POST /v1/users, POST /v1/tokens;
PARLEY_SCRYPT_LN=10 in Parley's environment so that scrypt does not dominate, and
http_auth_rate / chat_post_rate raised), rooms and members over REST, devices with
POST /v1/devices, preferences with PATCH /v1/me.

Figures are medians over rounds with the min-max spread. Every process is started here
and stopped by its PID (SIGTERM, then SIGKILL after a bound); temp dirs are removed
(--keep-temp keeps them). 127.0.0.1 only. Parley's log is scanned for warnings and errors
other than the expected retries of part 3.

Needs (Debian): nginx (nginx-light is enough), openssl; Python: aiosmtpd (pip). Python 3
standard library otherwise.
Exit status: 0 when every run succeeded; 1 on a problem (notifications not delivered, an
error in a log, ...); 2 on a usage or set-up error.
"""

import argparse
import concurrent.futures
import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (BUILD_LOCK, HOST, ROOT, free_port, machine, machine_busy_seconds, proc_cpu_seconds,  # noqa: E402
                     raise_nofile, start_process, stop_all, stop_process, tail, md_table, wait_listening)

ARGS = None
PROBLEMS = []
NOTES = []
RECORDS = []
PASSWORD = "bench-password-1"


def say(text):
    print(text, flush=True)


def problem(text):
    PROBLEMS.append(text)
    say("PROBLEM: " + text)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    return [min(xs), max(xs)] if xs else None


def quantile(sorted_xs, q):
    if not sorted_xs:
        return None
    i = min(len(sorted_xs) - 1, max(0, int(round(q * (len(sorted_xs) - 1)))))
    return sorted_xs[i]


# --------------------------------------------------------------------------- certificates

def make_certs(d):
    """A CA and a server certificate for 127.0.0.1 / localhost, made with openssl now."""
    d.mkdir()
    def run(*cmd):
        subprocess.run(["openssl", *cmd], cwd=d, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "2", "-subj", "/CN=parley notify bench CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key",
        "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n"
                               "keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return d / "ca.pem", d / "server.pem", d / "server.key"


# --------------------------------------------------------------------------- receivers

class Nginx:
    """nginx in the foreground, one worker, HTTPS on 127.0.0.1: POST /ok/... -> 204,
    /fail/... -> 503. Access log: one line per request (time, status, webhook-id)."""

    def __init__(self, workdir, cert, key):
        self.dir = workdir / "nginx"
        self.dir.mkdir()
        self.cert, self.key = cert, key
        self.proc = self.port = None
        self.log = self.dir / "stderr.log"
        self.access = self.dir / "access.log"

    def start(self):
        d = self.dir
        for _ in range(3):
            self.port = free_port()
            (d / "nginx.conf").write_text(f"""daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format bench '$msec $status $http_webhook_id';
    access_log {self.access} bench;
    server_tokens off;
    keepalive_timeout 60s;
    client_body_temp_path {d}/tmp-body;
    proxy_temp_path {d}/tmp-proxy;
    fastcgi_temp_path {d}/tmp-fastcgi;
    uwsgi_temp_path {d}/tmp-uwsgi;
    scgi_temp_path {d}/tmp-scgi;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {{
        listen {HOST}:{self.port} ssl;
        ssl_certificate {self.cert};
        ssl_certificate_key {self.key};
        location /ok/ {{ return 204; }}
        location /fail/ {{ return 503; }}
        location / {{ return 404; }}
    }}
}}
""")
            with open(self.log, "wb") as logf:
                self.proc = start_process([ARGS.nginx, "-p", str(d), "-c", str(d / "nginx.conf"),
                                           "-e", str(d / "error.log")], stdout=logf, stderr=subprocess.STDOUT)
            if wait_listening(self.port, self.proc):
                return self
            stop_process(self.proc, grace=3)
            self.proc = None
        raise RuntimeError(f"nginx did not start:\n{tail(self.log)}\n{tail(d / 'error.log')}")

    def url(self, path):
        return f"https://{HOST}:{self.port}{path}"

    def requests(self):
        """(count, statuses) of the access log so far."""
        n, statuses = 0, {}
        try:
            with open(self.access) as f:
                for line in f:
                    p = line.split()
                    if len(p) >= 2:
                        n += 1
                        statuses[p[1]] = statuses.get(p[1], 0) + 1
        except OSError:
            pass
        return n, statuses

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


SMTP_SINK = r'''
import asyncio, os, signal, ssl, sys, time
from aiosmtpd.controller import Controller
port, tls, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
count = [0, 0]  # mails, recipients
class Sink:
    async def handle_DATA(self, server, session, envelope):
        count[0] += 1
        count[1] += len(envelope.rcpt_tos)
        return "250 2.0.0 OK"
kw = {}
if tls == "starttls":
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    kw = {"tls_context": ctx, "require_starttls": True}
c = Controller(Sink(), hostname="127.0.0.1", port=port, server_hostname="localhost", ready_timeout=10,
               data_size_limit=10 << 20, **kw)
c.start()
print("ready", flush=True)
done = [False]
def stop(*_):
    done[0] = True
signal.signal(signal.SIGTERM, stop)
while not done[0]:
    with open(out + ".tmp", "w") as f:
        f.write(f"{count[0]} {count[1]}\n")
    os.replace(out + ".tmp", out)
    time.sleep(0.1)
c.stop()
with open(out, "w") as f:
    f.write(f"{count[0]} {count[1]}\n")
'''


class SMTPSink:
    """aiosmtpd in its own Python process: counts mails; STARTTLS required when tls = starttls."""

    def __init__(self, workdir, tls, cert, key):
        self.dir = workdir / f"smtp-{tls}"
        self.dir.mkdir(exist_ok=True)
        self.tls, self.cert, self.key = tls, cert, key
        self.proc = self.port = None
        self.log = self.dir / "sink.log"
        self.counts = self.dir / "counts"

    def start(self):
        script = self.dir / "sink.py"
        script.write_text(SMTP_SINK)
        for _ in range(3):
            self.port = free_port()
            with open(self.log, "wb") as logf:
                self.proc = start_process([sys.executable, str(script), str(self.port), self.tls, str(self.cert),
                                           str(self.key), str(self.counts)], stdout=logf, stderr=subprocess.STDOUT)
            if wait_listening(self.port, self.proc, timeout=15):
                return self
            stop_process(self.proc, grace=3)
            self.proc = None
        raise RuntimeError(f"SMTP sink did not start:\n{tail(self.log)}")

    def mails(self):
        try:
            return int(self.counts.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


# --------------------------------------------------------------------------- Parley

class Parley:
    """parley serve --plugins chat,gateway,notify on port-0 listeners (ports from its log)."""

    def __init__(self, workdir, tag, config_lines=(), log_level="warn"):
        self.workdir, self.tag, self.log_level = workdir, tag, log_level
        self.data = workdir / f"{tag}-data"
        self.data.mkdir()
        self.config_lines = list(config_lines)
        self.proc = self.mqtt = self.http = None
        self.log = workdir / f"{tag}.log"

    def write_config(self):
        conf = self.workdir / f"{self.tag}.conf"
        lines = [f"log_level = {self.log_level}", "sys_interval = 0", "max_inflight = 100",
                 "http_auth_rate = 100000/100000", "chat_post_rate = 1000000/1000000"] + self.config_lines
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def reload(self, config_lines):
        """New settings by SIGHUP (the notify plugin takes workers, per-destination and SMTP settings)."""
        self.config_lines = list(config_lines)
        self.write_config()
        if self.log_level != "info":
            os.kill(self.pid, signal.SIGHUP)
            time.sleep(1.0)
            return
        before = self.log.read_text(errors="replace").count("event=config.reloaded")
        os.kill(self.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            if "reload_failed" in text:
                raise RuntimeError(f"parley {self.tag}: reload failed: {tail(self.log, 3)}")
            if text.count("event=config.reloaded") > before:
                time.sleep(0.3)  # the plugin's reload runs with it; a turn of the dispatcher after
                return
            time.sleep(0.05)
        raise RuntimeError(f"parley {self.tag}: no config.reloaded within 10 s after SIGHUP")

    def start(self):
        conf = self.write_config()
        env = dict(os.environ, PARLEY_SCRYPT_LN="10")
        from compare import LIVE
        for _ in range(3):
            # log_level = warn hides the listener.open lines: free ports chosen here instead of port 0
            self.mqtt, self.http = free_port(), free_port()
            cmd = [str(ARGS.parley), "serve", "--config", str(conf), "--plugins", "chat,gateway,notify",
                   "--mqtt", f"{HOST}:{self.mqtt}", "--http", f"{HOST}:{self.http}", "--data", str(self.data)]
            with open(self.log, "ab") as logf:
                self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             env=env, start_new_session=True)
            LIVE[self.proc.pid] = self.proc
            if wait_listening(self.http, self.proc, timeout=20) and wait_listening(self.mqtt, self.proc, timeout=5):
                break
            stop_process(self.proc, grace=3)
        else:
            raise RuntimeError(f"parley {self.tag} did not start:\n{tail(self.log)}")
        return self

    @property
    def pid(self):
        return self.proc.pid

    def status(self):
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
        return out

    def db_bytes(self):
        return sum(p.stat().st_size for p in self.data.glob("parley.db*") if p.is_file())

    def metrics(self):
        return parse_metrics(get(self.http, "/metrics"))

    def stop(self):
        if self.proc is not None:
            rc = stop_process(self.proc)
            self.proc = None
            return rc
        return None

    def log_problems(self, expected=()):
        """Log lines at warning level or above, less the expected events."""
        bad = []
        for line in self.log.read_text(errors="replace").splitlines():
            if re.search(r"level=(warn|warning|error|fatal)\b", line) and not any(e in line for e in expected):
                bad.append(line)
        return bad


def get(port, path):
    c = http.client.HTTPConnection(HOST, port, timeout=15)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"GET {path}: {r.status}")
        return body.decode()
    finally:
        c.close()


def parse_metrics(text):
    m = {"pending": 0, "sent": {}, "failed": {}, "dead": {}, "buckets": {}, "count": 0, "sum": 0.0}
    names = {"parley_notify_sent_total": "sent", "parley_notify_failed_total": "failed",
             "parley_notify_dead_total": "dead"}
    m["store"] = {"buckets": {}, "count": 0, "sum": 0.0}
    for line in text.splitlines():
        if line.startswith("parley_store_commit_seconds"):
            key, _, value = line.rpartition(" ")
            if "_bucket" in key:
                le = re.search(r'le="([^"]*)"', key).group(1)
                m["store"]["buckets"][float("inf") if le == "+Inf" else float(le)] = int(float(value))
            elif key.endswith("_count"):
                m["store"]["count"] = int(float(value))
            elif key.endswith("_sum"):
                m["store"]["sum"] = float(value)
            continue
        if not line.startswith("parley_notify_"):
            continue
        key, _, value = line.rpartition(" ")
        v = float(value)
        name, labels = (key.split("{", 1) + [""])[:2]
        if name == "parley_notify_pending":
            m["pending"] = int(v)
        elif name in names:
            ch = re.search(r'channel="([^"]*)"', labels)
            m[names[name]][ch.group(1) if ch else ""] = int(v)
        elif name == "parley_notify_delivery_seconds_bucket":
            le = re.search(r'le="([^"]*)"', labels).group(1)
            m["buckets"][float("inf") if le == "+Inf" else float(le)] = int(v)
        elif name == "parley_notify_delivery_seconds_count":
            m["count"] = int(v)
        elif name == "parley_notify_delivery_seconds_sum":
            m["sum"] = v
    return m


def histogram_quantile(before, after, q):
    """The upper bound of the bucket holding quantile q of the observations between two scrapes."""
    bounds = sorted(after["buckets"])
    total = after["count"] - before["count"]
    if total <= 0:
        return None
    for b in bounds:
        if after["buckets"][b] - before["buckets"].get(b, 0) >= q * total:
            return b
    return None


class Rest:
    def __init__(self, port):
        self.port = port
        self.c = http.client.HTTPConnection(HOST, port, timeout=30)

    def call(self, method, path, body=None, token=None, expect=(200, 201, 204)):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body) if body is not None else None
        for attempt in range(2):
            try:
                self.c.request(method, path, body=data, headers=headers)
                r = self.c.getresponse()
                raw = r.read()
                break
            except (http.client.HTTPException, OSError):
                if attempt:
                    raise
                self.c.close()
                self.c = http.client.HTTPConnection(HOST, self.port, timeout=30)
        if r.status not in expect:
            raise RuntimeError(f"{method} {path}: {r.status} {raw[:300]!r}")
        return json.loads(raw) if raw and r.getheader("Content-Type", "").startswith("application/json") else raw

    def close(self):
        self.c.close()


def sign_up(port, names, email_of=None):
    """Signs up `names` (4 connections at once); returns name -> token."""
    def one(chunk):
        rest = Rest(port)
        out = {}
        try:
            for n in chunk:
                body = {"username": n, "password": PASSWORD}
                if email_of:
                    body["email"] = email_of(n)
                rest.call("POST", "/v1/users", body, expect=(201,))
                out[n] = rest.call("POST", "/v1/tokens", {"username": n, "password": PASSWORD}, expect=(201,))["token"]
        finally:
            rest.close()
        return out
    chunks = [names[i::4] for i in range(4)]
    tokens = {}
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        for part in ex.map(one, chunks):
            tokens.update(part)
    return tokens


def for_each(port, items, fn, threads=4):
    """fn(rest, item) for every item over `threads` keep-alive connections."""
    def run(chunk):
        rest = Rest(port)
        try:
            return [fn(rest, it) for it in chunk]
        finally:
            rest.close()
    out = []
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        for part in ex.map(run, [items[i::threads] for i in range(threads)]):
            out.extend(part)
    return out


def make_room(server, room, owner_token, members):
    rest = Rest(server.http)
    try:
        rest.call("POST", "/v1/rooms", {"name": room, "title": room}, token=owner_token, expect=(201,))
        for m in members:
            rest.call("POST", f"/v1/rooms/{room}/members", {"username": m}, token=owner_token, expect=(200, 201, 204))
    finally:
        rest.close()


def add_webhooks(server, tokens, url_of):
    for_each(server.http, list(tokens.items()),
             lambda rest, kv: rest.call("POST", "/v1/devices", {"kind": "webhook", "url": url_of(kv[0])},
                                        token=kv[1], expect=(201,)))


def email_only(server, tokens):
    for_each(server.http, list(tokens.values()),
             lambda rest, tok: rest.call("PATCH", "/v1/me", {"notify": {"email": "all", "push": "off",
                                                                        "digest_minutes": 0}},
                                         token=tok, expect=(200, 204)))


class RoomSet:
    """A room with one poster (online over REST only) and offline members."""

    def __init__(self, server, room, members, kind, nginx=None, path="/ok/"):
        self.server, self.room = server, room
        names = [f"{room}m{i}" for i in range(members)]
        poster = f"{room}p"
        email_of = (lambda n: f"{n}@bench.test") if kind == "email" else None
        tokens = sign_up(server.http, [poster] + names, email_of)
        self.poster_token = tokens.pop(poster)
        self.members = names
        make_room(server, room, self.poster_token, names)
        if kind == "webhook":
            add_webhooks(server, tokens, lambda n: nginx.url(f"{path}{n}") if nginx else path + n)
        elif kind == "email":
            email_only(server, tokens)

    def post(self, count, rest=None, times=None):
        own = rest is None
        rest = rest or Rest(self.server.http)
        try:
            for i in range(count):
                t = time.time()
                ans = rest.call("POST", f"/v1/rooms/{self.room}/messages", {"body": f"bench notification {i}"},
                                token=self.poster_token, expect=(201,))
                if times is not None:
                    times[int(ans["id"])] = t
        finally:
            if own:
                rest.close()


def wait_sent(server, channel, target, base, timeout, poll=0.05):
    """Polls /metrics until sent_total{channel} - base >= target; returns (time reached or None, last metrics)."""
    deadline = time.monotonic() + timeout
    m = None
    while time.monotonic() < deadline:
        m = server.metrics()
        if m["sent"].get(channel, 0) - base >= target:
            return time.monotonic(), m
        if server.proc.poll() is not None:
            break
        time.sleep(poll)
    return None, m


def sent_latencies(server, room, times):
    """Post (client clock) to sent_at (Parley's clock), in ms, for every sent row of the room."""
    db = sqlite3.connect(f"file:{server.data / 'parley.db'}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute("SELECT message_id, sent_at FROM notify_outbox WHERE room = ? AND state = 'sent'",
                          (room,)).fetchall()
    finally:
        db.close()
    lat = sorted(sent - times[mid] * 1000 for mid, sent in rows if mid in times and sent is not None)
    return lat


# --------------------------------------------------------------------------- part 1

RECEIVER_PID = {}  # channel -> pid of the receiver (for its CPU seconds)


def notify_lines(certs, workers, per_destination, smtp=None, extra=()):
    ca = certs[0]
    lines = [f"notify_ca_file = {ca}", f"notify_workers = {workers}", f"notify_per_destination = {per_destination}",
             "notify_retry_base = 1s", "notify_timeout = 10s", f"durability = {ARGS.durability}", "smtp_from = parley@bench.test"]
    if smtp:
        lines += [f"smtp_server = {HOST}:{smtp.port}", f"smtp_tls = {smtp.tls}"]
    return lines + list(extra)


def throughput_run(server, rs, channel, posts, sink=None, label=""):
    m0 = server.metrics()
    base = m0["sent"].get(channel, 0)
    failed0, dead0 = m0["failed"].get(channel, 0), m0["dead"].get(channel, 0)
    mails0 = sink.mails() if sink else 0
    target = posts * len(rs.members)
    times = {}
    cpu0, busy0 = proc_cpu_seconds(server.pid), machine_busy_seconds()
    rcpu0 = proc_cpu_seconds(RECEIVER_PID[channel]) if RECEIVER_PID.get(channel) else None
    t0 = time.monotonic()
    rs.post(posts, times=times)
    t_posted = time.monotonic()
    t1, m1 = wait_sent(server, channel, target, base, timeout=ARGS.timeout)
    rec = {"channel": channel, "label": label, "posts": posts, "members": len(rs.members), "expected": target,
           "post_s": round(t_posted - t0, 3), "ok": t1 is not None}
    if m1:
        rec["sent"] = m1["sent"].get(channel, 0) - base
        rec["failed_attempts"] = m1["failed"].get(channel, 0) - failed0
        rec["dead"] = m1["dead"].get(channel, 0) - dead0
    if t1 is None:
        problem(f"{label}: {rec.get('sent')} of {target} {channel} notifications sent within {ARGS.timeout:g} s "
                f"(failed attempts {rec.get('failed_attempts')}, dead {rec.get('dead')})")
        return rec
    rec["seconds"] = round(t1 - t0, 3)
    rec["per_s"] = round(target / (t1 - t0), 1)
    cpu = proc_cpu_seconds(server.pid) - cpu0
    rec["parley_cpu_s"] = round(cpu, 2)
    rec["per_parley_cpu_s"] = round(target / cpu, 1) if cpu > 0 else None
    if rcpu0 is not None:
        rec["receiver_cpu_s"] = round(proc_cpu_seconds(RECEIVER_PID[channel]) - rcpu0, 2)
    rec["machine_busy_s"] = round(machine_busy_seconds() - busy0, 2)
    # CPU of everything else on the machine (other users of a shared machine, this script's polling)
    rec["other_cpu_per_s"] = round((rec["machine_busy_s"] - cpu - rec.get("receiver_cpu_s", 0)) / (t1 - t0), 2)
    rec["loadavg"] = os.getloadavg()[0]
    if sink:
        time.sleep(0.25)
        rec["mails"] = sink.mails() - mails0
        rec["mails_per_s"] = round(rec["mails"] / (t1 - t0), 1)
    lat = sent_latencies(server, rs.room, times)
    rec["latency_rows"] = len(lat)
    rec["latency_ms"] = {"p50": quantile(lat, 0.5), "p99": quantile(lat, 0.99), "max": lat[-1] if lat else None}
    rec["histogram_bucket_s"] = {"p50": histogram_quantile(m0, m1, 0.5), "p99": histogram_quantile(m0, m1, 0.99)}
    if rec["failed_attempts"] or rec["dead"]:
        problem(f"{label}: {rec['failed_attempts']} failed attempts, {rec['dead']} dead")
    return rec


def part_throughput(rnd, certs, nginx, sinks):
    """One Parley per round; each setting (workers, per destination, SMTP sink) by SIGHUP reload."""
    configs = list(ARGS.configs)
    if rnd % 2 == 0:
        configs.reverse()
    out = []
    first = sinks[ARGS.smtp_modes[0]]
    server = Parley(ARGS.workdir, f"tp-r{rnd}", notify_lines(certs, *configs[0], first),
                    log_level="info").start()
    try:
        rs_web = RoomSet(server, "wh", ARGS.members, "webhook", nginx)
        rs_mail = RoomSet(server, "ml", ARGS.mail_members, "email")
        for workers, per_dest in configs:
            modes = ARGS.smtp_modes if (rnd + configs.index((workers, per_dest))) % 2 else ARGS.smtp_modes[::-1]
            for tls in modes:
                sink = sinks[tls]
                RECEIVER_PID["email"] = sink.proc.pid
                server.reload(notify_lines(certs, workers, per_dest, sink))
                runs = [("email", rs_mail, sink, ARGS.mail_posts)]
                if tls == modes[0]:
                    runs.insert(0, ("webhook", rs_web, None, ARGS.posts))
                for channel, rs, snk, posts in runs:
                    variant = channel + (f" smtp_tls={tls}" if channel == "email" else "")
                    label = f"round {rnd} {workers}/{per_dest} {variant}"
                    rec = throughput_run(server, rs, channel, posts, snk, label=label)
                    rec.update({"part": "throughput", "round": rnd, "workers": workers, "per_destination": per_dest,
                                "variant": variant})
                    RECORDS.append(rec)
                    out.append(rec)
                    lat = rec.get("latency_ms", {})
                    say(f"  {label}: {f(rec.get('per_s'))} notifications/s"
                        + (f" ({f(rec.get('mails_per_s'))} mails/s, {rec.get('mails')} mails)" if snk else "")
                        + f", {f(rec.get('per_parley_cpu_s'))} per Parley CPU s, latency p50/p99 "
                          f"{f(lat.get('p50'))}/{f(lat.get('p99'))} ms, posting {rec['post_s']} s")
                if rnd == 1 and (workers, per_dest) == (4, 2) and tls == modes[0] and ARGS.unloaded:
                    lat = unloaded(server, nginx, ARGS.unloaded)
                    rec = {"part": "unloaded", "round": rnd, "workers": workers, "per_destination": per_dest,
                           "count": len(lat), "latency_ms": {"p50": quantile(lat, 0.5), "p99": quantile(lat, 0.99),
                                                             "max": lat[-1] if lat else None}}
                    RECORDS.append(rec)
                    say(f"  unloaded webhook latency ({len(lat)} posts one at a time): p50 "
                        f"{f(rec['latency_ms']['p50'], 1)} ms, max {f(rec['latency_ms']['max'], 1)} ms")
        check_log(server, f"throughput round {rnd}")
    finally:
        server.stop()
    return out


def unloaded(server, nginx, count):
    rs = RoomSet(server, "solo", 1, "webhook", nginx)
    rest = Rest(server.http)
    times = {}
    try:
        for _ in range(count):
            base = server.metrics()["sent"].get("webhook", 0)
            rs.post(1, rest=rest, times=times)
            t, _ = wait_sent(server, "webhook", 1, base, timeout=20, poll=0.002)
            if t is None:
                problem("unloaded webhook: a notification was not sent within 20 s")
                break
    finally:
        rest.close()
    return sent_latencies(server, "solo", times)


def check_log(server, tag, expected=()):
    bad = server.log_problems(expected)
    if bad:
        problem(f"{tag}: {len(bad)} warning/error line(s) in Parley's log, first: {bad[0][:300]}")
        NOTES.append({"tag": tag, "log_lines": bad[:20]})


# --------------------------------------------------------------------------- part 2

def part_chat(certs, nginx, tp_rate):
    """One Parley; rounds alternate idle / busy."""
    w, d = ARGS.chat_config
    server = Parley(ARGS.workdir, "chat", notify_lines(certs, w, d), log_level="info").start()
    out = {"idle": [], "busy": [], "busy_sent_during": [], "busy_pending_after": [], "backlog": None, "ratios": []}
    try:
        names = [f"chat{i}" for i in range(ARGS.rooms * 10)]
        tokens = sign_up(server.http, names)
        for r in range(ARGS.rooms):
            members = names[r * 10:(r + 1) * 10]
            make_room(server, f"b{r}", tokens[members[0]], members[1:])
        users = ARGS.workdir / "chat.users"
        users.write_text("".join(f"{n} {tokens[n]}\n" for n in names))
        rs = RoomSet(server, "wh", ARGS.members, "webhook", nginx)
        # The backlog outlasts connect time + run: part 1's rate for this setting x (run + 8 s) x 1.3,
        # at least 5,000 (the chat load takes CPU from the bridge: it drains slower during the run).
        span = ARGS.seconds + 8
        posts = max(25, int((tp_rate or 500) * span * 1.3 / ARGS.members) + 1)
        out["backlog"] = posts * ARGS.members
        for rnd in range(1, ARGS.rounds + 1):
            for kind in (["idle", "busy"] if rnd % 2 else ["busy", "idle"]):
                m0 = server.metrics()
                base = m0["sent"].get("webhook", 0)
                if kind == "busy":
                    rs.post(posts)
                    time.sleep(0.5)
                m0 = server.metrics()
                cpu0, ncpu0, busy0 = proc_cpu_seconds(server.pid), proc_cpu_seconds(nginx.proc.pid), machine_busy_seconds()
                t0 = time.monotonic()
                res = bench_rooms(server, users, f"chat-{kind}-{rnd}")
                wall = time.monotonic() - t0
                m1 = server.metrics()
                cpu = {"parley": proc_cpu_seconds(server.pid) - cpu0, "nginx": proc_cpu_seconds(nginx.proc.pid) - ncpu0,
                       "machine": machine_busy_seconds() - busy0}
                cpu = {k: round(v / wall, 2) for k, v in cpu.items()}
                commits = m1["store"]["count"] - m0["store"]["count"]
                rec = {"part": "chat", "round": rnd, "variant": kind, "p50_us": res.get("p50_us"),
                       "p99_us": res.get("p99_us"), "delivered_per_s": res.get("delivered_per_s"),
                       "lost": res.get("lost"), "out_of_order": res.get("out_of_order"),
                       "id_errors": res.get("id_errors"), "webhooks_sent_during": m1["sent"].get("webhook", 0) - base,
                       "pending_after": m1["pending"], "cpu_per_s": cpu, "store_commits": commits,
                       "store_commit_mean_ms": round((m1["store"]["sum"] - m0["store"]["sum"]) * 1000 / commits, 2)
                       if commits else None,
                       "store_commit_p99_bucket_s": histogram_quantile(m0["store"], m1["store"], 0.99)}
                if kind == "busy":
                    t, m2 = wait_sent(server, "webhook", out["backlog"], base, timeout=ARGS.timeout)
                    rec["backlog_drained"] = t is not None
                    if t is None:
                        problem(f"chat busy round {rnd}: backlog of {out['backlog']} not drained within "
                                f"{ARGS.timeout:g} s")
                    if rec["pending_after"] == 0:
                        NOTES.append(f"chat busy round {rnd}: the backlog was drained before the chat load ended")
                RECORDS.append(rec)
                out[kind].append(rec["p99_us"])
                if len(out["idle"]) == rnd and len(out["busy"]) == rnd and out["idle"][-1]:
                    out["ratios"].append(round(out["busy"][-1] / out["idle"][-1], 2))
                if kind == "busy":
                    out["busy_sent_during"].append(rec["webhooks_sent_during"])
                    out["busy_pending_after"].append(rec["pending_after"])
                if rec["lost"] or rec["out_of_order"] or rec["id_errors"]:
                    problem(f"chat {kind} round {rnd}: lost {rec['lost']}, out of order {rec['out_of_order']}, "
                            f"id errors {rec['id_errors']}")
                say(f"  chat {kind} round {rnd}: p50 {rec['p50_us']} us, p99 {rec['p99_us']} us, "
                    f"{rec['delivered_per_s']:.0f} deliveries/s; webhooks sent during it {rec['webhooks_sent_during']}, "
                    f"pending after {rec['pending_after']}; CPU/s {cpu}; store commits {commits}, mean "
                    f"{rec['store_commit_mean_ms']} ms, p99 <= {rec['store_commit_p99_bucket_s']} s")
        check_log(server, "chat")
    finally:
        server.stop()
    return out


def bench_rooms(server, users, label):
    out = ARGS.workdir / f"bench-{label}.json"
    cmd = [str(ARGS.parley), "bench", "rooms", "--broker", f"{HOST}:{server.mqtt}", "--pid", str(server.pid),
           "--json", str(out), "--label", label, "--quiet", "--rooms", str(ARGS.rooms), "--members", "10",
           "--qos", "1", "--seconds", str(ARGS.seconds), "--size", "64", "--window", "8", "--rate", str(ARGS.rate),
           "--chat", "--users", str(users)]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    if r.returncode != 0 or not out.exists():
        raise RuntimeError(f"bench {label} failed ({r.returncode}): {r.stderr.decode()[-1500:]}")
    return json.loads(out.read_text())


# --------------------------------------------------------------------------- part 3

def part_memory(certs):
    dead_port = free_port()  # nothing listens there: connection refused
    extra = ["notify_retry_base = 1h"]
    w = ARGS.mem_workers
    server = Parley(ARGS.workdir, "mem", notify_lines(certs, w, w, extra=extra)).start()
    rec = {"part": "memory", "target": ARGS.pending, "workers": w, "per_destination": w}
    try:
        members = ARGS.mem_members
        posts = -(-ARGS.pending // members)
        rs = RoomSet(server, "mem", members, "webhook", None, path=f"https://{HOST}:{dead_port}/down/")
        time.sleep(2.5)
        c0 = proc_cpu_seconds(server.pid)
        time.sleep(2.0)
        rec["cpu_per_s_empty"] = round((proc_cpu_seconds(server.pid) - c0) / 2, 3)
        rec["before"] = server.status()
        rec["db_bytes_before"] = server.db_bytes()
        t0 = time.monotonic()
        rs.post(posts)
        rec["post_s"] = round(time.monotonic() - t0, 2)
        target = posts * members
        deadline = time.monotonic() + ARGS.timeout
        m = server.metrics()
        while time.monotonic() < deadline:
            m = server.metrics()
            # pending counted, and every row tried once (failed attempts = rows), so the outbox rests
            if m["pending"] >= target and m["failed"].get("webhook", 0) >= target:
                break
            time.sleep(0.25)
        rec["seconds_to_rest"] = round(time.monotonic() - t0, 2)
        rec["pending"] = m["pending"]
        rec["failed_attempts"] = m["failed"].get("webhook", 0)
        rec["dead"] = m["dead"].get("webhook", 0)
        rec["posts"], rec["members"], rec["expected"] = posts, members, target
        time.sleep(1.0)
        rec["with_pending"] = server.status()
        samples = []
        for _ in range(ARGS.idle_seconds):
            c0 = proc_cpu_seconds(server.pid)
            time.sleep(1.0)
            samples.append(round(proc_cpu_seconds(server.pid) - c0, 2))
        rec["cpu_per_s_after_rest"] = samples  # nothing is due: what the broker spends per second
        rec["after"] = server.status()
        rec["db_bytes_with_pending"] = server.db_bytes()
        rec["ok"] = rec["pending"] >= target
        if not rec["ok"]:
            problem(f"memory: parley_notify_pending {rec['pending']} of {target} within {ARGS.timeout:g} s "
                    f"(failed attempts {rec['failed_attempts']})")
        rec["rss_growth_kb"] = rec["with_pending"]["VmRSS"] - rec["before"]["VmRSS"]
        rec["bytes_per_pending"] = round(rec["rss_growth_kb"] * 1024 / max(1, rec["pending"]), 1)
        check_log(server, "memory", expected=("notify.retry",))
    finally:
        server.stop()
    RECORDS.append(rec)
    say(f"  memory: {rec.get('pending')} pending after {rec.get('seconds_to_rest')} s; RSS {rec['before']['VmRSS']} -> "
        f"{rec.get('with_pending', {}).get('VmRSS')} kB (HWM {rec.get('with_pending', {}).get('VmHWM')} kB); "
        f"db {rec['db_bytes_before']} -> {rec.get('db_bytes_with_pending')} bytes")
    return rec


# --------------------------------------------------------------------------- report

def f(x, digits=0):
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def fr(r, digits=0):
    return "-" if not r else f"{f(r[0], digits)}–{f(r[1], digits)}"


def summarize(tp, chat, mem):
    s = {"throughput": [], "chat": None, "memory": None}
    keys = []
    for r in tp:
        k = (r["variant"], r["workers"], r["per_destination"])
        if k not in keys:
            keys.append(k)
    keys.sort(key=lambda k: (k[0], k[1], k[2]))
    for k in keys:
        rs = [r for r in tp if (r["variant"], r["workers"], r["per_destination"]) == k]
        ok = [r for r in rs if r.get("ok")]
        row = {"variant": k[0], "workers": k[1], "per_destination": k[2], "runs": len(rs), "ok": len(ok),
               "notifications": rs[0]["expected"],
               "per_s": med([r.get("per_s") for r in ok]), "per_s_spread": spread([r.get("per_s") for r in ok]),
               "mails_per_s": med([r.get("mails_per_s") for r in ok]),
               "mails": med([r.get("mails") for r in ok]),
               "per_parley_cpu_s": med([r.get("per_parley_cpu_s") for r in ok]),
               "p50_ms": med([r["latency_ms"]["p50"] for r in ok]),
               "p99_ms": med([r["latency_ms"]["p99"] for r in ok]),
               "p99_ms_spread": spread([r["latency_ms"]["p99"] for r in ok]),
               "hist_p50_s": med([r["histogram_bucket_s"]["p50"] for r in ok]),
               "hist_p99_s": med([r["histogram_bucket_s"]["p99"] for r in ok])}
        s["throughput"].append(row)
    if chat:
        idle, busy = med(chat["idle"]), med(chat["busy"])
        s["chat"] = {"rooms": f"{ARGS.rooms} x 10 online, QoS 1, {ARGS.rate:g}/s per member, {ARGS.seconds:g} s, "
                              f"notify {ARGS.chat_config[0]}/{ARGS.chat_config[1]}",
                     "backlog": chat["backlog"], "p99_us_idle": idle, "p99_us_idle_spread": spread(chat["idle"]),
                     "p99_us_busy": busy, "p99_us_busy_spread": spread(chat["busy"]),
                     "ratio_busy_over_idle": round(busy / idle, 2) if idle and busy else None,
                     "ratio_per_round": chat["ratios"],
                     "webhooks_sent_during_busy": med(chat["busy_sent_during"]),
                     "pending_after_busy": med(chat["busy_pending_after"])}
    if mem:
        s["memory"] = mem
    return s


def cpu_mean(xs):
    return round(sum(xs) / len(xs), 3) if xs else "-"


def tables(s):
    lines = []
    if s["throughput"]:
        head = ["channel", "workers/per dest.", "notifications", "notifications/s (spread)", "mails/s",
                "per Parley CPU s",
                "latency p50 / p99 ms (spread of p99)", "histogram p50 / p99 bucket"]
        rows = [[r["variant"], f"{r['workers']}/{r['per_destination']}", f(r["notifications"]),
                 f"{f(r['per_s'])} ({fr(r['per_s_spread'])})", f(r["mails_per_s"]),
                 f(r["per_parley_cpu_s"]),
                 f"{f(r['p50_ms'])} / {f(r['p99_ms'])} ({fr(r['p99_ms_spread'])})",
                 f"≤{r['hist_p50_s']} s / ≤{r['hist_p99_s']} s"] for r in s["throughput"]]
        lines.append(("Outbox throughput", head, rows))
    un = [r for r in RECORDS if r.get("part") == "unloaded"]
    if un:
        u = un[0]
        lines.append(("Unloaded webhook latency", ["posts", "p50 ms", "p99 ms", "max ms"],
                      [[u["count"], f(u["latency_ms"]["p50"]), f(u["latency_ms"]["p99"]), f(u["latency_ms"]["max"])]]))
    if s["chat"]:
        c = s["chat"]
        lines.append(("Chat load p99 with the bridge idle / busy",
                      ["load", "backlog", "p99 idle us (spread)", "p99 busy us (spread)", "busy / idle (per round)",
                       "webhooks sent during busy run", "pending after"],
                      [[c["rooms"], f(c["backlog"]), f"{f(c['p99_us_idle'])} ({fr(c['p99_us_idle_spread'])})",
                        f"{f(c['p99_us_busy'])} ({fr(c['p99_us_busy_spread'])})",
                        f"{c['ratio_busy_over_idle']} ({', '.join(str(x) for x in c['ratio_per_round'])})",
                        f(c["webhooks_sent_during_busy"]), f(c["pending_after_busy"])]]))
    if s["memory"]:
        m = s["memory"]
        b, w = m.get("before", {}), m.get("with_pending", {})
        lines.append(("Memory with pending notifications",
                      ["pending", "posts x members", "VmRSS before / with kB", "VmHWM before / with kB",
                       "RSS growth per pending B", "db bytes before / with", "seconds to rest",
                       "Parley CPU s/s: empty / first 10 s resting / next 10 s"],
                      [[f(m.get("pending")), f"{m.get('posts')} x {m.get('members')}",
                        f"{f(b.get('VmRSS'))} / {f(w.get('VmRSS'))}", f"{f(b.get('VmHWM'))} / {f(w.get('VmHWM'))}",
                        f(m.get("bytes_per_pending")), f"{f(m.get('db_bytes_before'))} / {f(m.get('db_bytes_with_pending'))}",
                        m.get("seconds_to_rest"),
                        f"{m.get('cpu_per_s_empty')} / {cpu_mean(m.get('cpu_per_s_after_rest', [])[:10])} / "
                        f"{cpu_mean(m.get('cpu_per_s_after_rest', [])[10:])}"]]))
    return lines


# --------------------------------------------------------------------------- main

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parley", default=str(ROOT / ".build" / "release" / "parley"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny parts throughput and memory (seconds; CI)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="write the results as JSON")
    ap.add_argument("--only", default="throughput,chat,memory")
    ap.add_argument("--members", type=int, default=200, help="offline members of a throughput room")
    ap.add_argument("--posts", type=int, default=25, help="posts of a webhook throughput run")
    ap.add_argument("--mail-members", type=int, default=1000,
                    help="offline members with e-mail of the e-mail room (one post: one mail each)")
    ap.add_argument("--mail-posts", type=int, default=1, help="posts of an e-mail throughput run")
    ap.add_argument("--durability", default="full", help="durability of the throughput and memory runs")
    ap.add_argument("--configs", default="4/2,4/4,16/16", help="notify_workers/notify_per_destination pairs")
    ap.add_argument("--smtp-modes", default="starttls,none")
    ap.add_argument("--unloaded", type=int, default=30, help="posts of the unloaded-latency run (0: none)")
    ap.add_argument("--rooms", type=int, default=20, help="chat load rooms (10 members each)")
    ap.add_argument("--rate", type=float, default=2, help="chat posts/s per member")
    ap.add_argument("--seconds", type=float, default=10, help="chat load run")
    ap.add_argument("--chat-config", default="16/16", help="notify_workers/notify_per_destination of the chat part")
    ap.add_argument("--pending", type=int, default=100_000)
    ap.add_argument("--mem-members", type=int, default=200)
    ap.add_argument("--idle-seconds", type=int, default=20, help="CPU samples (1 s) after the outbox rests")
    ap.add_argument("--mem-workers", type=int, default=64,
                    help="notify_workers = notify_per_destination of the memory part (first attempts go faster)")
    ap.add_argument("--timeout", type=float, default=180, help="bound of every wait for the outbox")
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--keep-temp", action="store_true")
    a = ap.parse_args(argv)
    a.parts = [p.strip() for p in a.only.split(",") if p.strip()]
    a.configs = [tuple(int(x) for x in c.split("/")) for c in a.configs.split(",") if c.strip()]
    a.chat_config = tuple(int(x) for x in a.chat_config.split("/"))
    a.smtp_modes = [m.strip() for m in a.smtp_modes.split(",") if m.strip()]
    if a.smoke:
        a.rounds, a.members, a.posts, a.mail_members, a.mail_posts, a.unloaded = 1, 20, 5, 20, 2, 5
        a.pending, a.mem_members, a.timeout, a.smtp_modes, a.idle_seconds = 2000, 100, 60, ["starttls"], 2
        if a.only == "throughput,chat,memory":
            a.parts = ["throughput", "memory"]
    return a


def preflight():
    missing = []
    if "throughput" in ARGS.parts or "chat" in ARGS.parts:
        if not Path(ARGS.nginx).exists():
            missing.append("nginx (apt-get install nginx-light)")
    if not shutil.which("openssl"):
        missing.append("openssl")
    if "throughput" in ARGS.parts:
        try:
            import aiosmtpd  # noqa: F401
        except ImportError:
            missing.append("aiosmtpd (pip install aiosmtpd)")
    return missing


def main(argv):
    global ARGS
    ARGS = parse_args(argv)
    missing = preflight()
    if missing:
        print("notify: missing: " + "; ".join(missing), file=sys.stderr)
        return 2
    if not ARGS.no_build:
        say("build: flock /tmp/parley-build.lock swift build -c release --product parley")
        r = subprocess.run(["flock", "-w", "3600", BUILD_LOCK, "swift", "build", "-c", "release", "--product",
                            "parley"], cwd=ROOT, timeout=7200)
        if r.returncode != 0:
            print(f"notify: build failed ({r.returncode})", file=sys.stderr)
            return 2
    if not Path(ARGS.parley).exists():
        print(f"notify: no parley binary at {ARGS.parley}", file=sys.stderr)
        return 2
    ARGS.workdir = Path(tempfile.mkdtemp(prefix="parley-notify-bench-"))
    shutil.copy2(ARGS.parley, ARGS.workdir / "parley")  # another build may replace the binary mid-run
    ARGS.parley = ARGS.workdir / "parley"
    sha = hashlib.sha256(ARGS.parley.read_bytes()).hexdigest()
    nofile = raise_nofile()
    started = datetime.datetime.now(datetime.timezone.utc)
    meta = {"started": started.isoformat(timespec="seconds"), "machine": machine(), "parley_sha256": sha,
            "nginx": subprocess.run([ARGS.nginx, "-v"], capture_output=True, text=True).stderr.strip(),
            "settings": {k: (v if not isinstance(v, Path) else str(v)) for k, v in vars(ARGS).items()
                         if k not in ("workdir",)},
            "nofile": nofile, "loadavg_before": os.getloadavg()}
    say(f"notify: parts {', '.join(ARGS.parts)}; {ARGS.rounds} round(s); {meta['machine']['cpus']} CPUs "
        f"{meta['machine']['cpu_model']}")
    tp, chat, mem = [], None, None
    interrupted = False
    nginx = None
    sinks = {}
    try:
        certs = make_certs(ARGS.workdir / "certs")
        if "throughput" in ARGS.parts or "chat" in ARGS.parts:
            nginx = Nginx(ARGS.workdir, certs[1], certs[2]).start()
            RECEIVER_PID["webhook"] = nginx.proc.pid
        if "throughput" in ARGS.parts:
            for tls in ARGS.smtp_modes:
                sinks[tls] = SMTPSink(ARGS.workdir, tls, certs[1], certs[2]).start()
            for rnd in range(1, ARGS.rounds + 1):
                say(f"throughput round {rnd}/{ARGS.rounds}")
                tp += part_throughput(rnd, certs, nginx, sinks)
        if "chat" in ARGS.parts:
            say("chat load, bridge idle / busy")
            rates = [r.get("per_s") for r in tp if r["variant"] == "webhook"
                     and (r["workers"], r["per_destination"]) == ARGS.chat_config]
            chat = part_chat(certs, nginx, med(rates))
        if "memory" in ARGS.parts:
            say(f"memory with {ARGS.pending:,} pending notifications")
            mem = part_memory(certs)
        if nginx:
            n, statuses = nginx.requests()
            meta["nginx_requests"] = {"total": n, "by_status": statuses}
    except KeyboardInterrupt:
        interrupted = True
        say("notify: interrupted; reporting what ran")
    except Exception as e:  # a set-up failure: report what ran
        problem(f"{type(e).__name__}: {e}")
    finally:
        stop_all()
    finished = datetime.datetime.now(datetime.timezone.utc)
    meta["duration_s"] = round((finished - started).total_seconds(), 1)
    meta["loadavg_after"] = os.getloadavg()
    s = summarize(tp, chat, mem)
    say("")
    say(f"Parley notification bridge benchmarks, {meta['started']}, {meta['machine']['cpus']} CPUs, "
        f"{ARGS.rounds} round(s); medians (min–max over rounds)")
    md = []
    for title, head, rows in tables(s):
        say("")
        say(f"### {title}")
        say("")
        say(md_table(head, rows))
        md.append(f"### {title}\n\n{md_table(head, rows)}\n")
    say("")
    for n in NOTES:
        if isinstance(n, str):
            say("note: " + n)
    for p in PROBLEMS:
        say("PROBLEM: " + p.splitlines()[0])
    if ARGS.json:
        Path(ARGS.json).write_text(json.dumps({"meta": meta, "problems": PROBLEMS, "notes": NOTES, "summary": s,
                                               "markdown": "\n".join(md), "runs": RECORDS},
                                              indent=1, default=str) + "\n")
    say(f"notify: done in {meta['duration_s']:.0f} s; {len(PROBLEMS)} problem(s)")
    if ARGS.keep_temp:
        say(f"notify: temp files kept in {ARGS.workdir}")
    else:
        shutil.rmtree(ARGS.workdir, ignore_errors=True)
    return 1 if (PROBLEMS or interrupted) else 0


if __name__ == "__main__":
    def _term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, _term)
    try:
        sys.exit(main(sys.argv[1:]))
    finally:
        stop_all()
