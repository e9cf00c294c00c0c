#!/usr/bin/env python3
"""Chat rooms against plain MQTT rooms, with `parley bench rooms` as the load generator.

    Tests/bench/chat.py                 # 3 rounds, alternating (~5 min)
    Tests/bench/chat.py --smoke         # CI: one short round of each
    Tests/bench/chat.py --rounds 5 --seconds 10 --out Tests/bench/chat-results.json

Measured in one run, brokers alternating round by round:
  * rooms, QoS 1, saturation: Parley with the chat plugin (members log in with
    tokens, post to rooms/b<R>/messages, every post stamped, stored in history
    with durability = full, and delivered as an envelope whose id the generator
    checks: one order, no gap) against Parley's plain MQTT rooms and Mosquitto's
    plain rooms (no persistence, anonymous);
  * CONNECT rate with access tokens against anonymous CONNECTs, same broker;
  * p99 latency of a paced chat rooms load (durability none: no fsync noise)
    while 200 users log in with passwords (scrypt N = 2^14) against the same
    load without logins;
  * memory per registered user and per room member (RSS after start with 20,000
    users / memberships against an empty directory).
Targets (issue 11): chat deliveries/s >= 30 % of Parley's plain rooms and >= 3x
Mosquitto's; token CONNECT rate >= 80 % of anonymous; logins leave the p99 of
the running load about where it was.

Users, tokens and rooms are written into the data directory's database before
the broker starts (tables made by `parley user add`; the rows themselves by
this script with sqlite3, so 20,000 users take a second, not minutes; token
rows hold the SHA-256 of the token text, as the plugin stores them). Loopback
only; every broker is started and stopped here, by PID.
"""

import argparse
import base64
import hashlib
import json
import os
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
from compare import (BUILD_LOCK, HOST, ROOT, free_port, start_process, stop_all, stop_process,  # noqa: E402
                     wait_listening)


def chat_db(data, users, rooms, members, extra_users=0):
    """Creates the schema with the CLI, then the rows directly. Returns the token lines."""
    env = dict(os.environ, PARLEY_SCRYPT_LN="10")
    subprocess.run([ARGS.parley, "user", "add", "benchadmin", "--data", str(data)], input=b"benchadmin-pass\n",
                   check=True, env=env, stdout=subprocess.DEVNULL)
    db = sqlite3.connect(data / "parley.db")
    now = int(time.time() * 1000)
    lines = []
    hashed = db.execute("SELECT password FROM chat_users WHERE name = 'benchadmin'").fetchone()[0]
    for i in range(users + extra_users):
        name = f"u{i}"
        token = "pt_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        db.execute("INSERT INTO chat_users(name, display, email, password, notify, created_at) VALUES (?, ?, NULL, ?, NULL, ?)",
                   (name, name, hashed, now))
        db.execute("INSERT INTO chat_tokens(hash, user, expires_at) VALUES (?, ?, ?)",
                   (hashlib.sha256(token.encode()).digest(), name, now + 86_400_000))
        if i < users:
            lines.append(f"{name} {token}")
    for r in range(rooms):
        db.execute("INSERT INTO chat_rooms(name, title, owner, created_at) VALUES (?, NULL, 'u0', ?)", (f"b{r}", now))
        for m in range(members):
            db.execute("INSERT INTO chat_members(room, user, joined_at) VALUES (?, ?, ?)", (f"b{r}", f"u{r * members + m}", now))
    db.commit()
    db.close()
    return lines


def password_users(data, count):
    """`count` users p0.. with one real scrypt (N = 2^14) password, for the login test."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(b"bench-password-1", salt=salt, n=1 << 14, r=8, p=1, dklen=32, maxmem=64 << 20)
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")  # noqa: E731
    stored = f"$scrypt$ln=14,r=8,p=1${b64(salt)}${b64(digest)}"
    db = sqlite3.connect(data / "parley.db")
    now = int(time.time() * 1000)
    for i in range(count):
        db.execute("INSERT INTO chat_users(name, display, email, password, notify, created_at) VALUES (?, ?, NULL, ?, NULL, ?)",
                   (f"p{i}", f"p{i}", stored, now))
    db.commit()
    db.close()


class Server:
    def __init__(self, kind, workdir, tag, chat=False, durability="full"):
        self.kind, self.workdir, self.tag, self.chat = kind, workdir, tag, chat
        self.data = workdir / f"{tag}-data"
        self.data.mkdir(exist_ok=True)
        self.durability = durability
        self.proc = self.port = None

    def config(self, port):
        conf = self.workdir / f"{self.tag}.conf"
        if self.kind == "mosquitto":
            conf.write_text(f"listener {port} {HOST}\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"
                            "max_inflight_messages 100\nmax_queued_messages 1000\nlog_dest stderr\nlog_type error\n")
            return [ARGS.mosquitto, "-c", str(conf)]
        lines = [f"listen = {HOST}:{port}", f"data_dir = {self.data}", f"durability = {self.durability}",
                 "log_level = warn", "allow_anonymous = true", "sys_interval = 0", "max_inflight = 100"]
        lines += ["plugins = chat", "chat_post_rate = 1000000/1000000"] if self.chat else ["plugins ="]
        conf.write_text("\n".join(lines) + "\n")
        return [ARGS.parley, "serve", "--config", str(conf)]

    def start(self):
        port = free_port()
        log = open(self.workdir / f"{self.tag}.log", "wb")
        self.proc = start_process(self.config(port), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if not wait_listening(port, self.proc, timeout=20):
            raise RuntimeError(f"{self.tag} did not start: {(self.workdir / f'{self.tag}.log').read_text()[-2000:]}")
        self.port = port
        return self

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc:
            stop_process(self.proc)
            self.proc = None


def bench(server, scenario, *extra, label):
    out = server.workdir / f"bench-{label}-{time.monotonic_ns()}.json"
    cmd = [ARGS.parley, "bench", scenario, "--broker", f"{HOST}:{server.port}", "--pid", str(server.proc.pid),
           "--json", str(out), "--label", label, "--quiet", *extra]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    if r.returncode != 0 or not out.exists():
        raise RuntimeError(f"bench {label} failed ({r.returncode}): {r.stderr.decode()[-1500:]}")
    return json.loads(out.read_text())


def rooms_args(qos=1, rate=None):
    # The window of compare.py's rooms scenarios (8 unacknowledged / undelivered per member).
    a = ["--rooms", str(ARGS.rooms), "--members", str(ARGS.members), "--qos", str(qos), "--seconds", str(ARGS.seconds),
         "--size", "64", "--window", "8"]
    if rate is not None:
        a += ["--rate", str(rate)]
    return a


def run_throughput(workdir, rnd):
    """One round: the three brokers on the same rooms load, in alternating order."""
    variants = ["mosquitto", "parley-plain", "parley-chat"]
    if rnd % 2:
        variants.reverse()
    out = {}
    for v in variants:
        tag = f"{v}-{rnd}"
        if v == "mosquitto":
            s = Server("mosquitto", workdir, tag).start()
            res = bench(s, "rooms", *rooms_args(), label=v)
        elif v == "parley-plain":
            s = Server("parley", workdir, tag).start()
            res = bench(s, "rooms", *rooms_args(), label=v)
        else:
            s = Server("parley", workdir, tag, chat=True)
            users = chat_db(s.data, ARGS.rooms * ARGS.members, ARGS.rooms, ARGS.members)
            (workdir / f"{tag}.users").write_text("\n".join(users) + "\n")
            s.start()
            res = bench(s, "rooms", *rooms_args(), "--chat", "--users", str(workdir / f"{tag}.users"), label=v)
        s.stop()
        out[v] = res
        say(f"round {rnd} {v}: {res['delivered_per_s']:.0f} deliveries/s, p99 {res['p99_us']} us, lost {res['lost']}, "
            f"out of order {res['out_of_order']}, id errors {res.get('id_errors', '-')}")
    return out


def run_connect_rates(workdir):
    s = Server("parley", workdir, "connect", chat=True)
    users = chat_db(s.data, ARGS.connections, 0, 0)
    (workdir / "connect.users").write_text("\n".join(users) + "\n")
    s.start()
    rates = {"token": [], "anonymous": []}
    for rnd in range(ARGS.rounds):
        order = ["token", "anonymous"] if rnd % 2 == 0 else ["anonymous", "token"]
        for kind in order:
            extra = ["--count", str(ARGS.connections), "--sources", "4"]
            if kind == "token":
                extra += ["--users", str(workdir / "connect.users")]
            r = bench(s, "connections", *extra, label=f"connect-{kind}")
            rates[kind].append(r["connect_per_s"])
            say(f"connect {kind}: {r['connect_per_s']:.0f}/s")
    s.stop()
    return rates


def password_logins(port, count, errors):
    """`count` concurrent password CONNECTs (3.1.1, raw socket), each waiting for its CONNACK."""
    def one(i):
        name = f"p{i}".encode()
        password = b"bench-password-1"
        cid = f"login-{i}".encode()
        body = (b"\x00\x04MQTT\x04\xc2\x00\x3c" + len(cid).to_bytes(2, "big") + cid
                + len(name).to_bytes(2, "big") + name + len(password).to_bytes(2, "big") + password)
        pkt = b"\x10" + bytes([len(body)]) + body
        try:
            with socket.create_connection((HOST, port), timeout=30) as c:
                c.sendall(pkt)
                ack = c.recv(4)
                if len(ack) < 4 or ack[3] != 0:
                    errors.append(ack.hex())
        except OSError as e:
            errors.append(str(e))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


def run_logins(workdir):
    """p99 of a paced chat load, without and with 200 password logins during it. With
    durability = none, so that the disk's fsync times (which vary by hundreds of ms on
    this VM) do not hide what the logins' hashing costs the loops."""
    s = Server("parley", workdir, "logins", chat=True, durability="none")
    users = chat_db(s.data, ARGS.rooms * ARGS.members, ARGS.rooms, ARGS.members)
    password_users(s.data, ARGS.logins)
    (workdir / "logins.users").write_text("\n".join(users) + "\n")
    s.start()
    out = {"quiet": [], "logins": [], "login_errors": 0, "login_seconds": []}
    for rnd in range(ARGS.rounds):
        for kind in (["quiet", "logins"] if rnd % 2 == 0 else ["logins", "quiet"]):
            errors = []
            t = None
            if kind == "logins":
                def later():
                    time.sleep(min(2.0, ARGS.seconds / 3))
                    t0 = time.monotonic()
                    password_logins(s.port, ARGS.logins, errors)
                    out["login_seconds"].append(time.monotonic() - t0)
                t = threading.Thread(target=later)
                t.start()
            r = bench(s, "rooms", *rooms_args(rate=2), "--chat", "--users", str(workdir / "logins.users"),
                      label=f"paced-{kind}")
            if t:
                t.join(120)
                out["login_errors"] += len(errors)
            out[kind].append(r["p99_us"])
            say(f"paced chat rooms, {kind}: p99 {r['p99_us']} us, lost {r['lost']}")
    s.stop()
    return out


def run_memory(workdir):
    """RSS after start: an empty directory, then 20,000 users, then 20,000 memberships."""
    n = ARGS.memory_users
    sizes = {}
    for label, users, rooms, members in [("empty", 0, 0, 0), ("users", n, 0, 0), ("members", n, n // 10, 10)]:
        s = Server("parley", workdir, f"mem-{label}", chat=True)
        chat_db(s.data, users, rooms, members)
        s.start()
        time.sleep(1.0)
        sizes[label] = s.rss_kb()
        s.stop()
    per_user = (sizes["users"] - sizes["empty"]) * 1024 / max(1, n)
    per_member = (sizes["members"] - sizes["users"]) * 1024 / max(1, n)
    say(f"memory: {per_user:.0f} bytes per user, {per_member:.0f} bytes per room member (RSS {sizes})")
    return {"rss_kb": sizes, "bytes_per_user": per_user, "bytes_per_member": per_member}


def say(text):
    print(text, flush=True)


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--rooms", type=int, default=50)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--logins", type=int, default=200)
    ap.add_argument("--memory-users", type=int, default=20000)
    ap.add_argument("--smoke", action="store_true", help="one short round of each (CI)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--parley", default=str(ROOT / ".build" / "release" / "parley"))
    ap.add_argument("--mosquitto", default="/usr/sbin/mosquitto")
    ap.add_argument("--out", help="write the results as JSON")
    ap.add_argument("--only", choices=["throughput", "connect", "logins", "memory"],
                    help="run one part only (its figures; the others are left out of the summary)")
    ARGS = ap.parse_args()
    if ARGS.smoke:
        ARGS.rounds, ARGS.seconds, ARGS.rooms, ARGS.members = 1, 2, 10, 5
        ARGS.connections, ARGS.logins, ARGS.memory_users = 300, 20, 2000
    if not ARGS.no_build:
        subprocess.run(["flock", BUILD_LOCK, "swift", "build", "-c", "release", "--product", "parley"], cwd=ROOT,
                       check=True)
    workdir = Path(tempfile.mkdtemp(prefix="parley-chat-bench-"))
    try:
        if ARGS.only in (None, "throughput"):
            rounds = [run_throughput(workdir, r) for r in range(ARGS.rounds)]
        if ARGS.only in (None, "connect"):
            connects = run_connect_rates(workdir)
        if ARGS.only in (None, "logins"):
            logins = run_logins(workdir)
        if ARGS.only in (None, "memory"):
            memory = run_memory(workdir)
    finally:
        stop_all()
    if ARGS.only:
        part = {"throughput": lambda: rounds, "connect": lambda: connects, "logins": lambda: logins,
                "memory": lambda: memory}[ARGS.only]()
        say(json.dumps(part, indent=2, default=str))
        return 0
    med = lambda xs: statistics.median(xs) if xs else 0  # noqa: E731
    rate = {v: med([r[v]["delivered_per_s"] for r in rounds]) for v in rounds[0]}
    summary = {
        "machine": os.uname().nodename, "date": time.strftime("%Y-%m-%d"), "rounds": ARGS.rounds,
        "rooms": f"{ARGS.rooms} x {ARGS.members}, QoS 1, {ARGS.seconds} s",
        "deliveries_per_s": rate,
        "chat_over_parley_plain": rate["parley-chat"] / rate["parley-plain"] if rate["parley-plain"] else 0,
        "chat_over_mosquitto": rate["parley-chat"] / rate["mosquitto"] if rate["mosquitto"] else 0,
        "p99_us": {v: med([r[v]["p99_us"] for r in rounds]) for v in rounds[0]},
        "chat_lost": sum(r["parley-chat"]["lost"] for r in rounds),
        "chat_id_errors": sum(r["parley-chat"].get("id_errors", 0) for r in rounds),
        "chat_out_of_order": sum(r["parley-chat"]["out_of_order"] for r in rounds),
        "connect_per_s": {k: med(v) for k, v in connects.items()},
        "token_over_anonymous": med(connects["token"]) / med(connects["anonymous"]) if med(connects["anonymous"]) else 0,
        "paced_p99_us": {"quiet": med(logins["quiet"]), "during_logins": med(logins["logins"])},
        "login_errors": logins["login_errors"], "login_seconds": med(logins["login_seconds"]),
        "memory": memory,
    }
    say(json.dumps(summary, indent=2))
    if ARGS.out:
        Path(ARGS.out).write_text(json.dumps({"summary": summary, "rounds": rounds}, indent=2) + "\n")
    bad = summary["chat_lost"] or summary["chat_id_errors"] or summary["chat_out_of_order"] or summary["login_errors"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
