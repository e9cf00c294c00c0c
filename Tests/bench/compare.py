#!/usr/bin/env python3
"""Parley against Mosquitto and the floor, with `parley bench` as the load generator.

    Tests/bench/compare.py                         # full comparison (~15 min)
    Tests/bench/compare.py --smoke                 # CI: one round, 1 s runs, < 1 min
    Tests/bench/compare.py --rounds 5 --seconds 10 \\
        --out Tests/bench/results.json --markdown Tests/bench/results.md --svg Tests/bench/results.svg
    Tests/bench/compare.py --list                  # the scenarios
    Tests/bench/compare.py --only pairs            # scenarios whose id contains "pairs"
    Tests/bench/compare.py --only rate-rooms-q0,rate-pairs-q0,sat-fanout-q0   # issue 14's table
    Tests/bench/compare.py --no-floor              # Mosquitto and Parley only

What it does:
  * builds parley (release, through /tmp/parley-build.lock) unless --no-build;
  * raises its open-file limit (soft up to hard; brokers and generator inherit it);
  * for every round, scenario and broker starts a FRESH broker on a free loopback
    port (127.0.0.1 only), runs `parley bench ... --pid BROKER --json FILE`, and
    stops the broker it started (SIGTERM, then SIGKILL after a bound). Brokers
    alternate within each scenario, A B in odd rounds and B A in even rounds;
  * while the generator runs it samples, from /proc, the CPU time of the broker,
    of the generator and of the whole machine between the generator's "clients
    ready" line and its last progress line (the measuring window), so the report
    shows which side was the limit and how much CPU other processes took;
  * in the QoS 0 scenarios with exact topics also runs "floor" (Tests/bench/floor/floor.c,
    built here with `cc -O2` into the run's temporary folder): a single-threaded epoll
    forwarder doing one read() per readable connection and one write() per delivery, no
    batching, the least a broker can do with one system call per delivery. Every report
    shows Parley / floor beside Parley / Mosquitto. --no-floor leaves it out;
    `--brokers ...,floor-ring` adds Tests/bench/floor/floor_ring.c, the same forwarder on
    io_uring alone (multishot accept and receive, a turn's sends with the wait for the next
    completions in one io_uring_enter): what a forwarder gains from every call io_uring saves;
  * prints a table (medians over rounds, min-max spread, ratios, targets) and
    writes --out JSON, --markdown and --svg (a hand-made bar chart, no matplotlib).

Equivalent broker settings: no persistence (Mosquitto `persistence false`, Parley
`durability = none`), anonymous clients allowed,
TCP_NODELAY, 1000 queued messages per session, 100 QoS 1/2 messages in flight
per client, 1 MiB maximum packet size, 16 MiB of queued bytes per session,
logging only warnings and errors. $SYS is kept at both brokers' default (every
10 s) unless --sys off turns it off on both.

Exit status: 0 when every run succeeded and no QoS 1/2 run lost or duplicated a
message; 1 otherwise; 2 on a usage or set-up error. Python 3 standard library only.
"""

import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_LOCK = "/tmp/parley-build.lock"
FLOOR_SOURCE = ROOT / "Tests/bench/floor/floor.c"
FLOOR_RING_SOURCE = ROOT / "Tests/bench/floor/floor_ring.c"
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"  # loopback only, on purpose

# Settings both brokers share (Parley's defaults, stated explicitly on both sides).
MAX_INFLIGHT = 100
MAX_QUEUED_MESSAGES = 1000
MAX_QUEUED_BYTES = 16 * 1024 * 1024
MAX_PACKET_SIZE = 1024 * 1024
SYS_DEFAULT_INTERVAL = 10


# --------------------------------------------------------------------------- scenarios

class Scenario:
    """One `parley bench` invocation, run against every variant in `variants`."""

    def __init__(self, sid, group, title, bench, variants=("mosquitto", "parley"), target_rate=None):
        self.id = sid
        self.group = group          # saturation | fixed | connections | scaling | sends | smoke
        self.title = title
        self.bench = bench          # arguments after `parley bench`
        self.variants = variants    # broker variants, see make_broker()
        self.target_rate = target_rate  # deliveries/s a fixed-rate scenario asks for

    @property
    def qos(self):
        b = self.bench
        return int(b[b.index("--qos") + 1]) if "--qos" in b else 0


def with_floor(q):
    """The floor speaks QoS 0 and exact topics only, without persistence."""
    return ("mosquitto", "parley", "floor", "floor-ring") if q == 0 else ("mosquitto", "parley")


def full_scenarios():
    s = []
    for q in (0, 1):
        s.append(Scenario(f"sat-fanout-q{q}", "saturation", f"fan-out 1 -> 100, QoS {q}",
                          ["fan-out", "--count", "100", "--window", "64", "--qos", str(q)], with_floor(q)))
    for q in (0, 1, 2):
        s.append(Scenario(f"sat-pairs-q{q}", "saturation", f"100 pairs, QoS {q}",
                          ["pairs", "--count", "100", "--window", "32", "--qos", str(q)], with_floor(q)))
    for q in (0, 1):
        s.append(Scenario(f"sat-rooms-q{q}", "saturation", f"50 rooms x 10, QoS {q}",
                          ["rooms", "--rooms", "50", "--members", "10", "--window", "8", "--qos", str(q)],
                          with_floor(q)))
    for q in (0, 1):
        s.append(Scenario(f"sat-fanin-q{q}", "saturation", f"fan-in 50 -> 1, QoS {q}",
                          ["fan-in", "--count", "50", "--window", "8", "--qos", str(q)], with_floor(q)))
    for q in (0, 1):
        s.append(Scenario(f"rate-rooms-q{q}", "fixed", f"100 rooms x 10 at 2 msg/s/member, QoS {q}",
                          ["rooms", "--rooms", "100", "--members", "10", "--rate", "2", "--window", "8",
                           "--qos", str(q)], with_floor(q), target_rate=100 * 10 * 2 * 10))
    for q in (0, 1):
        s.append(Scenario(f"rate-pairs-q{q}", "fixed", f"100 pairs at 100 msg/s, QoS {q}",
                          ["pairs", "--count", "100", "--rate", "100", "--window", "32", "--qos", str(q)],
                          with_floor(q), target_rate=100 * 100))
    s.append(Scenario("conn-idle-10k", "connections", "10000 idle connections, 8 sources",
                      ["connections", "--count", "10000", "--sources", "8"]))
    # One loop (the default on 2 cores) against two, alternating in one run.
    scaling = [("scale-pairs-q0", "100 pairs, QoS 0", ["pairs", "--count", "100", "--window", "32", "--qos", "0"]),
               ("scale-pairs-q1", "100 pairs, QoS 1", ["pairs", "--count", "100", "--window", "32", "--qos", "1"]),
               ("scale-fanout-q0", "fan-out 1 -> 100, QoS 0",
                ["fan-out", "--count", "100", "--window", "64", "--qos", "0"]),
               ("scale-fanout-q1", "fan-out 1 -> 100, QoS 1",
                ["fan-out", "--count", "100", "--window", "64", "--qos", "1"]),
               ("scale-rooms-q1", "50 rooms x 10, QoS 1",
                ["rooms", "--rooms", "50", "--members", "10", "--window", "8", "--qos", "1"])]
    for sid, title, bench in scaling:
        s.append(Scenario(sid, "scaling", f"{title}: Parley 1 vs 2 loops", bench,
                          variants=("parley-loops1", "parley-loops2")))
    # The send path: a turn's sends in one io_uring_enter (always), one write() each, and
    # the default (auto: each loop measures both and keeps the cheaper).
    sends = [("send-pairs-q0", "100 pairs at 100 msg/s, QoS 0",
              ["pairs", "--count", "100", "--rate", "100", "--window", "32", "--qos", "0"]),
             ("send-rooms-q0", "100 rooms x 10 at 2 msg/s/member, QoS 0",
              ["rooms", "--rooms", "100", "--members", "10", "--rate", "2", "--window", "8", "--qos", "0"]),
             ("send-fanout-q0", "fan-out 1 -> 100, QoS 0",
              ["fan-out", "--count", "100", "--window", "64", "--qos", "0"])]
    for sid, title, bench in sends:
        s.append(Scenario(sid, "sends", f"{title}: io_uring, write(), measured", bench,
                          variants=("parley-write", "parley-ring", "parley")))
    return s


def smoke_scenarios():
    return [
        Scenario("smoke-pairs-q1", "smoke", "10 pairs, QoS 1 (saturation)",
                 ["pairs", "--count", "10", "--window", "8", "--qos", "1"]),
        Scenario("smoke-rooms-q1", "smoke", "5 rooms x 4 at 50 msg/s/member, QoS 1",
                 ["rooms", "--rooms", "5", "--members", "4", "--rate", "50", "--window", "8", "--qos", "1"],
                 target_rate=5 * 4 * 50 * 4),
        Scenario("smoke-rooms-q0", "smoke", "5 rooms x 4 at 50 msg/s/member, QoS 0",
                 ["rooms", "--rooms", "5", "--members", "4", "--rate", "50", "--window", "8", "--qos", "0"],
                 with_floor(0), target_rate=5 * 4 * 50 * 4),
    ]


# --------------------------------------------------------------------------- processes

LIVE = {}  # pid -> Popen: every process this script started and has not reaped yet


def start_process(cmd, stdout, stderr, cwd=None):
    p = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, cwd=cwd,
                         start_new_session=True)  # our own session: a terminal ^C reaches only us
    LIVE[p.pid] = p
    return p


def stop_process(p, grace=10.0):
    """SIGTERM, wait up to `grace` s, then SIGKILL; only this one PID."""
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    LIVE.pop(p.pid, None)
    return p.returncode


def stop_all():
    for p in list(LIVE.values()):
        stop_process(p, grace=5.0)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_listening(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def proc_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds():
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    v = [int(x) for x in parts]
    # user nice system idle iowait irq softirq steal (guest is already in user)
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
    return busy / CLK_TCK


def tail(path, lines=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------- brokers

class Broker:
    def __init__(self, variant, kind, loops, args, workdir, settings=()):
        self.variant = variant  # mosquitto | parley | parley-loops1 | parley-write | floor | ...
        self.kind = kind        # mosquitto | parley | floor
        self.loops = loops
        self.settings = list(settings)  # extra Parley settings lines
        self.args = args
        self.workdir = workdir
        self.proc = None
        self.port = None
        self.log = None

    def _command(self, port, tag):
        a = self.args
        sys_interval = SYS_DEFAULT_INTERVAL if a.sys == "default" else 0
        conf = self.workdir / f"{tag}.conf"
        if self.kind == "floor":  # 127.0.0.1 only, no settings: see floor.c and floor_ring.c
            return [str(a.floor_ring_bin if self.variant == "floor-ring" else a.floor_bin), str(port)]
        if self.kind == "mosquitto":
            conf.write_text("\n".join([
                f"listener {port} {HOST}",
                "allow_anonymous true",
                "persistence false",
                "set_tcp_nodelay true",
                f"max_queued_messages {MAX_QUEUED_MESSAGES}",
                f"max_queued_bytes {MAX_QUEUED_BYTES}",
                f"max_inflight_messages {MAX_INFLIGHT}",
                f"max_packet_size {MAX_PACKET_SIZE}",
                f"sys_interval {sys_interval}",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "connection_messages false",
                "",
            ]))
            return [a.mosquitto, "-c", str(conf)]
        data = self.workdir / f"{tag}-data"
        data.mkdir(exist_ok=True)
        conf.write_text("\n".join([
            f"listen = {HOST}:{port}",
            f"loops = {self.loops}",
            "allow_anonymous = true",
            f"data_dir = {data}",
            "durability = none",  # Mosquitto: persistence false
            "log_level = warn",
            f"max_queued_messages = {MAX_QUEUED_MESSAGES}",
            f"max_queued_bytes = {MAX_QUEUED_BYTES}",
            f"max_inflight = {MAX_INFLIGHT}",
            f"max_packet_size = {MAX_PACKET_SIZE}",
            f"sys_interval = {sys_interval}",
            *self.settings,
            "",
        ]))
        return [str(a.parley), "serve", "--plugins", "", "--config", str(conf)]  # plain MQTT, as Mosquitto

    def start(self, tag):
        last = ""
        for _attempt in range(3):  # a free port can be taken between probe and bind
            port = free_port()
            self.log = self.workdir / f"{tag}.log"
            logf = open(self.log, "wb")
            try:
                proc = start_process(self._command(port, tag), stdout=logf, stderr=subprocess.STDOUT)
            finally:
                logf.close()
            if wait_listening(port, proc):
                self.proc, self.port = proc, port
                return
            stop_process(proc, grace=3)
            last = tail(self.log)
        raise RuntimeError(f"{self.variant} did not start:\n{last}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return None
        rc = stop_process(self.proc)
        self.proc = None
        return rc


def make_broker(variant, args, workdir):
    if variant == "mosquitto":
        return Broker(variant, "mosquitto", 1, args, workdir)
    if variant == "parley":
        return Broker(variant, "parley", args.loops, args, workdir)
    if variant in ("floor", "floor-ring"):  # floor-ring: only when --brokers names it
        return Broker(variant, "floor", 1, args, workdir)
    if variant.startswith("parley-loops"):
        return Broker(variant, "parley", int(variant[len("parley-loops"):]), args, workdir)
    if variant == "parley-write":  # the send path without io_uring: one write() per connection
        return Broker(variant, "parley", args.loops, args, workdir, settings=["io_uring = off"])
    if variant == "parley-ring":  # always the ring (the default, auto, measures which is cheaper)
        return Broker(variant, "parley", args.loops, args, workdir, settings=["io_uring = on"])
    raise ValueError(variant)


# --------------------------------------------------------------------------- one run

class Sampler:
    """CPU of broker, generator and machine at the generator's 'ready' line and at
    each progress line; the last progress line closes the measuring window."""

    def __init__(self, broker_pid, gen_pid):
        self.broker_pid = broker_pid
        self.gen_pid = gen_pid
        self.ready = None
        self.last = None
        self.lines = []

    def sample(self):
        return {"t": time.monotonic(), "broker": proc_cpu_seconds(self.broker_pid),
                "gen": proc_cpu_seconds(self.gen_pid), "machine": machine_busy_seconds()}

    def feed(self, stream):
        for line in stream:
            if "clients ready" in line:
                self.ready = self.sample()
            elif line.startswith("bench: t="):
                self.last = self.sample()
            if len(self.lines) < 200:
                self.lines.append(line.rstrip("\n"))

    def window(self):
        if not self.ready or not self.last:
            return None
        r, l = self.ready, self.last
        wall = l["t"] - r["t"]
        if wall <= 0 or r["broker"] is None or l["broker"] is None or r["gen"] is None or l["gen"] is None:
            return None
        broker = l["broker"] - r["broker"]
        gen = l["gen"] - r["gen"]
        machine = l["machine"] - r["machine"]
        return {"wall_s": wall, "broker_cpu_s": broker, "generator_cpu_s": gen,
                "broker_cores": broker / wall, "generator_cores": gen / wall,
                "other_cores": max(0.0, (machine - broker - gen) / wall)}


def run_one(args, scenario, variant, rnd, workdir):
    tag = f"r{rnd}-{scenario.id}-{variant}"
    broker = make_broker(variant, args, workdir)
    rec = {"round": rnd, "scenario": scenario.id, "variant": variant, "ok": False,
           "loadavg_before": os.getloadavg()[0]}
    t0 = time.monotonic()
    try:
        broker.start(tag)
    except Exception as e:  # noqa: BLE001 - reported, run counted as failed
        rec["error"] = str(e)
        return rec
    json_path = workdir / f"{tag}.json"
    seconds = args.seconds
    clients = bench_clients(scenario.bench)
    cmd = [str(args.parley), "bench", *scenario.bench, "--broker", f"{HOST}:{broker.port}",
           "--seconds", str(seconds), "--pid", str(broker.proc.pid), "--json", str(json_path),
           "--label", variant, "--loops", str(args.gen_loops)]
    # The generator's own bounds: 120 s batching + 30 s + clients/500 to connect, 10 s drain.
    timeout = seconds + 180 + clients / 500
    out_path = workdir / f"{tag}.out"
    try:
        with open(out_path, "wb") as out:
            gen = start_process(cmd, stdout=out, stderr=subprocess.PIPE)
        sampler = Sampler(broker.proc.pid, gen.pid)
        reader = threading.Thread(target=sampler.feed,
                                  args=(open(gen.stderr.fileno(), errors="replace", closefd=False),),
                                  daemon=True)
        reader.start()
        try:
            gen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rec["error"] = f"generator timed out after {timeout:.0f} s"
        stop_process(gen, grace=5)
        reader.join(timeout=5)
        gen.stderr.close()
        broker_alive = broker.alive()
        rc_broker = broker.stop()
        rec["generator_exit"] = gen.returncode
        rec["broker_exit"] = rc_broker
        rec["stderr"] = [l for l in sampler.lines if not l.startswith("bench: t=")][-20:]
        if "error" not in rec:
            if not broker_alive:
                rec["error"] = f"{variant} died during the run:\n{tail(broker.log)}"
            elif gen.returncode != 0:
                rec["error"] = f"generator exited {gen.returncode}: " + " | ".join(rec["stderr"][-5:])
            elif not json_path.exists():
                rec["error"] = "generator wrote no JSON"
        if "error" not in rec:
            rec["bench"] = json.loads(json_path.read_text())
            w = sampler.window()
            if w:
                rec["window"] = w
                d = rec["bench"].get("delivered_per_s", 0) * w["wall_s"]
                if d > 0:
                    rec["window"]["broker_cpu_us_per_msg"] = w["broker_cpu_s"] * 1e6 / d
            rec["ok"] = True
    finally:
        broker.stop()
        rec["wall_s"] = time.monotonic() - t0
    return rec


def bench_clients(bench):
    def opt(name, default):
        return int(bench[bench.index(name) + 1]) if name in bench else default
    kind = bench[0]
    if kind == "rooms":
        return opt("--rooms", 50) * opt("--members", 10)
    if kind == "pairs":
        return 2 * opt("--count", 100)
    return opt("--count", 100) + 1


def describe(rec):
    if not rec["ok"]:
        return "FAILED: " + rec.get("error", "?").splitlines()[0]
    b = rec["bench"]
    w = rec.get("window", {})
    if b["scenario"] == "connections":
        return (f"{b.get('connect_per_s', 0):>8.0f} conn/s  {b.get('broker_bytes_per_connection', 0):>6.0f} B/conn"
                f"  peak RSS {b.get('broker_peak_rss_kb', 0) / 1024:.1f} MiB")
    return (f"{b['delivered_per_s']:>9.0f} msg/s  p50 {b['p50_us']:>8.1f} us  p99 {b['p99_us']:>8.1f} us"
            f"  cpu {b.get('broker_cpu_us_per_msg', float('nan')):6.2f} us/msg"
            f"  cores b/g/o {w.get('broker_cores', 0):.2f}/{w.get('generator_cores', 0):.2f}"
            f"/{w.get('other_cores', 0):.2f}  lost {b['lost']} dup {b['duplicated']} ooo {b['out_of_order']}")


# --------------------------------------------------------------------------- summary

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    return (min(xs), max(xs)) if xs else None


def summarize(scenarios, records):
    out = []
    for sc in scenarios:
        entry = {"id": sc.id, "group": sc.group, "title": sc.title, "qos": sc.qos, "bench": sc.bench,
                 "target_rate": sc.target_rate, "variants": {}}
        for v in sc.variants:
            recs = [r for r in records if r["scenario"] == sc.id and r["variant"] == v]
            ok = [r for r in recs if r["ok"]]
            b = [r["bench"] for r in ok]
            w = [r.get("window", {}) for r in ok]

            def col(key, src=b):
                return [x.get(key) for x in src]
            s = {"runs": len(recs), "ok": len(ok), "failed": len(recs) - len(ok),
                 "errors": [r.get("error", "").splitlines()[0] for r in recs if not r["ok"]]}
            if b:
                if sc.group == "connections":
                    s.update({
                        "connect_per_s": med(col("connect_per_s")), "connect_per_s_spread": spread(col("connect_per_s")),
                        "bytes_per_connection": med(col("broker_bytes_per_connection")),
                        "bytes_per_connection_spread": spread(col("broker_bytes_per_connection")),
                        "peak_rss_kb": med(col("broker_peak_rss_kb")),
                        "generator_cpu_s": med(col("generator_cpu_s")),
                    })
                else:
                    s.update({
                        "delivered_per_s": med(col("delivered_per_s")),
                        "delivered_per_s_spread": spread(col("delivered_per_s")),
                        "p50_us": med(col("p50_us")), "p99_us": med(col("p99_us")),
                        "p99_us_spread": spread(col("p99_us")),
                        "p999_us": med(col("p999_us")),
                        "cpu_us_per_msg": med(col("broker_cpu_us_per_msg")),
                        "cpu_us_per_msg_spread": spread(col("broker_cpu_us_per_msg")),
                        "window_cpu_us_per_msg": med(col("broker_cpu_us_per_msg", w)),
                        "window_cpu_us_per_msg_spread": spread(col("broker_cpu_us_per_msg", w)),
                        "broker_cores": med(col("broker_cores", w)),
                        "generator_cores": med(col("generator_cores", w)),
                        "other_cores": med(col("other_cores", w)),
                        "peak_rss_kb": med(col("broker_peak_rss_kb")),
                        "lost": sum(col("lost")), "duplicated": sum(col("duplicated")),
                        "out_of_order": sum(col("out_of_order")),
                    })
            entry["variants"][v] = s
        entry["ratios"] = ratios(sc, entry["variants"])
        out.append(entry)
    return out


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def ratio_spread(num, den):
    """(min, max) of num/den given (min, max) spreads of both."""
    if not num or not den or den[0] in (0, None) or den[1] in (0, None):
        return None
    return (num[0] / den[1], num[1] / den[0])


# Groups that run two Parley variants against each other (the second over the first), no Mosquitto.
PAIRED = ("scaling", "sends")


def ratios(sc, v):
    if sc.group in PAIRED:
        vs = v
        a, b = v.get(sc.variants[1], {}), v.get(sc.variants[0], {})
        out = {"throughput": ratio(a.get("delivered_per_s"), b.get("delivered_per_s")),
               "throughput_spread": ratio_spread(a.get("delivered_per_s_spread"), b.get("delivered_per_s_spread"))}
        if sc.group == "sends":  # each variant over write(): parley-ring (always), parley (auto: measured)
            for v in sc.variants[1:]:
                a = vs.get(v, {})
                out[v] = {"cpu_per_msg": ratio(a.get("window_cpu_us_per_msg"), b.get("window_cpu_us_per_msg")),
                          "cpu_per_msg_spread": ratio_spread(a.get("window_cpu_us_per_msg_spread"),
                                                             b.get("window_cpu_us_per_msg_spread")),
                          "p50": ratio(a.get("p50_us"), b.get("p50_us")),
                          "p99": ratio(a.get("p99_us"), b.get("p99_us"))}
        return out
    p, m, f = v.get("parley", {}), v.get("mosquitto", {}), v.get("floor", {})
    if sc.group == "connections":
        if not p or not m:
            return {}
        return {"connect_rate": ratio(p.get("connect_per_s"), m.get("connect_per_s")),
                "bytes_per_connection": ratio(p.get("bytes_per_connection"), m.get("bytes_per_connection")),
                "bytes_per_connection_spread": ratio_spread(p.get("bytes_per_connection_spread"),
                                                            m.get("bytes_per_connection_spread"))}
    out = {}
    # Parley / Mosquitto under the plain keys (as before), Parley / floor under "floor_" keys,
    # Mosquitto / floor under "mosquitto_floor_" keys.
    for prefix, num, den in (("", p, m), ("floor_", p, f), ("mosquitto_floor_", m, f)):
        if not num or not den:
            continue
        out.update({
            prefix + "throughput": ratio(num.get("delivered_per_s"), den.get("delivered_per_s")),
            prefix + "throughput_spread": ratio_spread(num.get("delivered_per_s_spread"),
                                                       den.get("delivered_per_s_spread")),
            prefix + "cpu_per_msg": ratio(num.get("cpu_us_per_msg"), den.get("cpu_us_per_msg")),
            prefix + "cpu_per_msg_spread": ratio_spread(num.get("cpu_us_per_msg_spread"),
                                                        den.get("cpu_us_per_msg_spread")),
            prefix + "window_cpu_per_msg": ratio(num.get("window_cpu_us_per_msg"), den.get("window_cpu_us_per_msg")),
            prefix + "window_cpu_per_msg_spread": ratio_spread(num.get("window_cpu_us_per_msg_spread"),
                                                               den.get("window_cpu_us_per_msg_spread")),
            prefix + "p99": ratio(num.get("p99_us"), den.get("p99_us")),
            prefix + "p99_spread": ratio_spread(num.get("p99_us_spread"), den.get("p99_us_spread"))})
    return out


TARGETS = [
    # (description, scenario ids, ratio key, comparison, threshold)
    ("saturation throughput >= 1.5x Mosquitto (fan-out 100, 100 pairs, 50 rooms x 10; QoS 0 and 1)",
     ["sat-fanout-q0", "sat-fanout-q1", "sat-pairs-q0", "sat-pairs-q1", "sat-rooms-q0", "sat-rooms-q1"],
     "throughput", ">=", 1.5),
    ("broker CPU per message at fixed rate <= 1/3 of Mosquitto's (QoS 0 and 1), measuring window",
     ["rate-rooms-q0", "rate-rooms-q1", "rate-pairs-q0", "rate-pairs-q1"], "window_cpu_per_msg", "<=", 1 / 3),
    ("the same by parley bench's broker_cpu_us_per_msg (its own measuring window)",
     ["rate-rooms-q0", "rate-rooms-q1", "rate-pairs-q0", "rate-pairs-q1"], "cpu_per_msg", "<=", 1 / 3),
    ("p99 latency at fixed rate no worse than Mosquitto's",
     ["rate-rooms-q0", "rate-rooms-q1", "rate-pairs-q0", "rate-pairs-q1"], "p99", "<=", 1.0),
    # Issue 14, against the floor (QoS 0 only: the floor has no QoS 1/2).
    ("issue 14: broker CPU per message at fixed rate <= 1.0x the floor's (QoS 0), measuring window",
     ["rate-rooms-q0", "rate-pairs-q0"], "floor_window_cpu_per_msg", "<=", 1.0),
    ("issue 14: saturation throughput >= 2x the floor (fan-out 100, 100 pairs, 50 rooms x 10; QoS 0)",
     ["sat-fanout-q0", "sat-pairs-q0", "sat-rooms-q0"], "floor_throughput", ">=", 2.0),
]


def evaluate_targets(summary):
    by_id = {e["id"]: e for e in summary}
    res = []
    for desc, ids, key, op, thr in TARGETS:
        items = []
        for sid in ids:
            e = by_id.get(sid)
            r = e["ratios"].get(key) if e else None
            met = None if r is None else (r >= thr if op == ">=" else r <= thr)
            items.append({"scenario": sid, "ratio": r, "met": met})
        known = [i["met"] for i in items if i["met"] is not None]
        met = False if False in known else (True if known and len(known) == len(items) else None)
        res.append({"target": desc, "key": key, "op": op, "threshold": thr, "items": items, "met": met})
    e = by_id.get("conn-idle-10k")
    if e:
        p = e["variants"].get("parley", {}).get("bytes_per_connection")
        m = e["variants"].get("mosquitto", {}).get("bytes_per_connection")
        res.append({"target": "memory per idle connection <= 512 bytes (Mosquitto ~734)",
                    "items": [{"scenario": e["id"], "parley_bytes": p, "mosquitto_bytes": m,
                               "met": None if p is None else p <= 512}],
                    "met": None if p is None else p <= 512})
    e = by_id.get("scale-pairs-q0")
    if e:
        r = e["ratios"].get("throughput")
        res.append({"target": "Parley 2 loops vs 1 loop (100 pairs, QoS 0): reported, no threshold",
                    "items": [{"scenario": e["id"], "ratio": r, "met": None}], "met": None})
    return res


# --------------------------------------------------------------------------- formatting

VARIANT_NAMES = {"mosquitto": "Mosquitto", "parley": "Parley", "parley-loops1": "Parley 1 loop",
                 "parley-loops2": "Parley 2 loops", "parley-write": "Parley write()", "parley-ring": "Parley io_uring", "floor": "floor",
                 "floor-ring": "floor, io_uring"}


def vname(v):
    return VARIANT_NAMES.get(v, v)


def f_num(x, digits=0):
    if x is None:
        return "-"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def f_rng(r, digits=0):
    return "-" if not r else f"{f_num(r[0], digits)}–{f_num(r[1], digits)}"


def f_ratio(r):
    return "-" if r is None else f"{r:.2f}x"


def f_lat(us):
    if us is None:
        return "-"
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def table_rows(summary):
    """Rows of the main table: one per scenario and broker."""
    head = ["scenario", "broker", "delivered/s (median)", "spread min–max", "p50", "p99", "CPU µs/msg",
            "CPU µs/msg window", "cores broker/gen/other", "lost/dup/ooo", "runs ok"]
    rows = []
    for e in summary:
        if e["group"] == "connections":
            continue
        for v, s in e["variants"].items():
            if "delivered_per_s" not in s:
                rows.append([e["title"], vname(v), "failed", "", "", "", "", "", "", "", f"{s['ok']}/{s['runs']}"])
                continue
            rows.append([
                e["title"], vname(v), f_num(s["delivered_per_s"]), f_rng(s["delivered_per_s_spread"]),
                f_lat(s["p50_us"]), f_lat(s["p99_us"]), f_num(s["cpu_us_per_msg"], 2),
                f_num(s["window_cpu_us_per_msg"], 2),
                f"{f_num(s['broker_cores'], 2)}/{f_num(s['generator_cores'], 2)}/{f_num(s['other_cores'], 2)}",
                f"{s['lost']}/{s['duplicated']}/{s['out_of_order']}", f"{s['ok']}/{s['runs']}",
            ])
    return head, rows


def ratio_rows(summary):
    head = ["scenario", "throughput P/M", "(range)", "CPU/msg P/M", "(range)", "CPU/msg window P/M",
            "p99 P/M", "(range)", "note"]
    rows = []
    for e in summary:
        r = e["ratios"]
        if e["group"] in ("connections", *PAIRED) or "throughput" not in r:
            continue
        rows.append([e["title"], f_ratio(r.get("throughput")), f_rng(r.get("throughput_spread"), 2),
                     f_ratio(r.get("cpu_per_msg")), f_rng(r.get("cpu_per_msg_spread"), 2),
                     f_ratio(r.get("window_cpu_per_msg")), f_ratio(r.get("p99")), f_rng(r.get("p99_spread"), 2),
                     reference_loss(e) or ""])
    return head, rows


def floor_rows(summary):
    """Parley / floor (and Mosquitto / floor) where the floor ran: QoS 0, exact topics."""
    head = ["scenario", "throughput P/F", "(range)", "CPU/msg P/F", "(range)", "CPU/msg window P/F", "(range)",
            "p99 P/F", "throughput M/F", "CPU/msg window M/F"]
    rows = []
    for e in summary:
        r = e["ratios"]
        if e["group"] in ("connections", *PAIRED) or "floor_throughput" not in r:
            continue
        rows.append([e["title"], f_ratio(r.get("floor_throughput")), f_rng(r.get("floor_throughput_spread"), 2),
                     f_ratio(r.get("floor_cpu_per_msg")), f_rng(r.get("floor_cpu_per_msg_spread"), 2),
                     f_ratio(r.get("floor_window_cpu_per_msg")), f_rng(r.get("floor_window_cpu_per_msg_spread"), 2),
                     f_ratio(r.get("floor_p99")), f_ratio(r.get("mosquitto_floor_throughput")),
                     f_ratio(r.get("mosquitto_floor_window_cpu_per_msg"))])
    return head, rows


def reference_loss(e):
    """Text when the reference broker lost QoS 1/2 messages in this scenario (its figures then mislead)."""
    m = e["variants"].get("mosquitto", {})
    if e["qos"] >= 1 and (m.get("lost") or m.get("duplicated")):
        return f"Mosquitto lost {m.get('lost', 0)}, duplicated {m.get('duplicated', 0)}: not comparable"
    return None


def conn_rows(summary):
    head = ["scenario", "broker", "accepted conn/s (median)", "spread", "bytes/connection", "spread",
            "peak RSS MiB", "runs ok"]
    rows = []
    for e in summary:
        if e["group"] != "connections":
            continue
        for v, s in e["variants"].items():
            if "connect_per_s" not in s:
                rows.append([e["title"], vname(v), "failed", "", "", "", "", f"{s['ok']}/{s['runs']}"])
                continue
            rows.append([e["title"], vname(v), f_num(s["connect_per_s"]), f_rng(s["connect_per_s_spread"]),
                         f_num(s["bytes_per_connection"]), f_rng(s["bytes_per_connection_spread"]),
                         f_num(s["peak_rss_kb"] / 1024, 1), f"{s['ok']}/{s['runs']}"])
        r = e["ratios"]
        if r:
            rows.append([e["title"], "Parley/Mosquitto", f_ratio(r.get("connect_rate")), "",
                         f_ratio(r.get("bytes_per_connection")), f_rng(r.get("bytes_per_connection_spread"), 2),
                         "", ""])
    return head, rows


def text_table(head, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)] if rows else [len(h) for h in head]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def md_table(head, rows):
    esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(esc(h) for h in head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def target_lines(targets):
    lines = []
    for t in targets:
        if not any(i.get("ratio") is not None or i.get("parley_bytes") is not None for i in t["items"]):
            continue  # nothing measured for it (--only)
        mark = {True: "MET", False: "NOT MET", None: "incomplete" if any(
            i.get("met") is not None for i in t["items"]) else "n/a"}[t["met"]]
        detail = []
        for i in t["items"]:
            if "parley_bytes" in i:
                detail.append(f"Parley {f_num(i['parley_bytes'])} B, Mosquitto {f_num(i['mosquitto_bytes'])} B")
            else:
                ok = {True: "ok", False: "miss", None: ""}[i["met"]]
                detail.append(f"{i['scenario']} {f_ratio(i['ratio'])}{' ' + ok if ok else ''}")
        lines.append(f"[{mark}] {t['target']}: " + "; ".join(detail))
    return lines


def scaling_lines(summary):
    lines = []
    for e in summary:
        if e["group"] == "sends":
            for v, r in e["ratios"].items():
                if not isinstance(r, dict):
                    continue
                lines.append(f"{e['title']}: {vname(v)} / write(): CPU/msg window {f_ratio(r.get('cpu_per_msg'))} "
                             f"(range {f_rng(r.get('cpu_per_msg_spread'), 2)}), p50 {f_ratio(r.get('p50'))}, "
                             f"p99 {f_ratio(r.get('p99'))}")
        if e["group"] != "scaling":
            continue
        for v, s in e["variants"].items():
            lines.append(f"{e['title']}: {vname(v)} {f_num(s.get('delivered_per_s'))} msg/s "
                         f"({f_rng(s.get('delivered_per_s_spread'))}), broker cores {f_num(s.get('broker_cores'), 2)}, "
                         f"generator cores {f_num(s.get('generator_cores'), 2)}")
        lines.append(f"{e['title']}: 2 loops / 1 loop = {f_ratio(e['ratios'].get('throughput'))} "
                     f"(range {f_rng(e['ratios'].get('throughput_spread'), 2)})")
    return lines


def fixed_rate_notes(summary):
    notes = []
    for e in summary:
        if e["group"] != "fixed" or not e["target_rate"]:
            continue
        for v, s in e["variants"].items():
            d = s.get("delivered_per_s")
            if d is not None and d < 0.85 * e["target_rate"]:
                notes.append(f"{e['title']} on {vname(v)}: delivered {d:,.0f}/s of the {e['target_rate']:,}/s "
                             f"asked for: the generator or the broker could not keep the pace")
    return notes


# --------------------------------------------------------------------------- SVG

def svg_chart(summary, meta):
    """Horizontal bars on a log scale: Parley's advantage, higher is better."""
    sections = []

    def add(title, items):
        items = [i for i in items if i[1] is not None]
        if items:
            sections.append((title, items))

    sat = [e for e in summary if e["group"] == "saturation"]
    add("Throughput at saturation: Parley ÷ Mosquitto (target 1.5×)",
        [(e["title"] + (" *" if reference_loss(e) else ""), e["ratios"].get("throughput"),
          e["ratios"].get("throughput_spread"), 1.5 if e["id"] in TARGETS[0][1] else None) for e in sat])
    fixed = [e for e in summary if e["group"] == "fixed"]

    def inv(r):
        return None if r is None or r == 0 else 1 / r

    def inv_spread(s):
        return None if not s or not s[0] or not s[1] else (1 / s[1], 1 / s[0])
    add("Broker CPU per message at fixed rate (measuring window): Mosquitto ÷ Parley (target 3×)",
        [(e["title"], inv(e["ratios"].get("window_cpu_per_msg")),
          inv_spread(e["ratios"].get("window_cpu_per_msg_spread")), 3.0) for e in fixed])
    add("p99 latency at fixed rate: Mosquitto ÷ Parley (target 1×)",
        [(e["title"], inv(e["ratios"].get("p99")), inv_spread(e["ratios"].get("p99_spread")), 1.0) for e in fixed])
    withf = [e for e in summary if "floor_throughput" in e["ratios"]]
    add("Against the floor: saturation throughput Parley ÷ floor (issue 14 target 2×)",
        [(e["title"], e["ratios"].get("floor_throughput"), e["ratios"].get("floor_throughput_spread"),
          2.0 if e["id"] in next(t[1] for t in TARGETS if t[2] == "floor_throughput") else None) for e in withf if e["group"] == "saturation"])
    add("Against the floor: CPU per message at fixed rate, floor ÷ Parley (issue 14 target 1×)",
        [(e["title"], inv(e["ratios"].get("floor_window_cpu_per_msg")),
          inv_spread(e["ratios"].get("floor_window_cpu_per_msg_spread")), 1.0)
         for e in withf if e["group"] in ("fixed", "smoke")])
    conn = [e for e in summary if e["group"] == "connections"]
    # The accept rate stays in the tables: it mostly measures Mosquitto's listen backlog of 100.
    add("Memory per idle connection: Mosquitto ÷ Parley bytes (target 734/512 = 1.43×)",
        [("10000 idle connections", inv(e["ratios"].get("bytes_per_connection")),
          inv_spread(e["ratios"].get("bytes_per_connection_spread")), 734 / 512) for e in conn])
    scal = [e for e in summary if e["group"] == "scaling"]
    add("Parley 2 loops ÷ 1 loop (saturation)",
        [(e["title"].split(":")[0], e["ratios"].get("throughput"), e["ratios"].get("throughput_spread"), None)
         for e in scal])

    # The axis fits the bars and targets; whiskers beyond it are clipped (a noisy round can span 100x).
    values = [v for _, items in sections for _, r, sp, t in items for v in [r, t] if v]
    lo = min([0.5] + values)
    hi = max([4.0] + values)
    lo_e, hi_e = math.floor(math.log2(lo)), math.ceil(math.log2(hi))
    W, left, right, row, top = 1000, 330, 80, 24, 70
    plot_w = W - left - right
    n_rows = sum(len(items) + 1.6 for _, items in sections)
    H = int(top + n_rows * row + 80)

    def x(v):
        v = min(max(v, 2.0 ** lo_e), 2.0 ** hi_e)
        return left + (math.log2(v) - lo_e) / (hi_e - lo_e) * plot_w

    def esc(t):
        return str(t).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         f'font-family="Helvetica, Arial, sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
         f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">'
         f'Parley vs Mosquitto: Parley\'s advantage (higher is better, log scale)</text>',
         f'<text x="{W / 2}" y="44" text-anchor="middle" fill="#555">{esc(meta)}</text>']
    plot_top, plot_bottom = top - 8, H - 70
    for e in range(lo_e, hi_e + 1):
        v = 2 ** e
        xx = x(v)
        o.append(f'<line x1="{xx:.1f}" y1="{plot_top}" x2="{xx:.1f}" y2="{plot_bottom}" '
                 f'stroke="{"#888" if e == 0 else "#ddd"}" stroke-width="{1.5 if e == 0 else 1}"/>')
        label = f"{v:g}×" if v >= 1 else f"1/{2 ** -e}×"
        o.append(f'<text x="{xx:.1f}" y="{plot_bottom + 16}" text-anchor="middle" fill="#555">{label}</text>')
    y = top
    for title, items in sections:
        o.append(f'<rect x="4" y="{y}" width="{W - 8}" height="{row - 4}" fill="#ffffff"/>')
        o.append(f'<text x="10" y="{y + 14}" font-weight="bold">{esc(title)}</text>')
        y += row * 1.1
        for name, r, sp, target in items:
            x0, x1 = x(1.0), x(r)
            met = None if target is None else r >= target
            color = {True: "#2e8b57", False: "#e07b39", None: "#5b7db1"}[met]
            o.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{esc(name)}</text>')
            o.append(f'<rect x="{min(x0, x1):.1f}" y="{y + 4}" width="{max(1.0, abs(x1 - x0)):.1f}" '
                     f'height="{row - 8}" fill="{color}"/>')
            if sp and sp[0] and sp[1]:
                a, b = x(sp[0]), x(sp[1])
                cy = y + row / 2
                o.append(f'<line x1="{a:.1f}" y1="{cy}" x2="{b:.1f}" y2="{cy}" stroke="#222" stroke-width="1"/>')
                for xx, v in ((a, sp[0]), (b, sp[1])):
                    if 2.0 ** lo_e < v < 2.0 ** hi_e:  # a cap only where the whisker really ends
                        o.append(f'<line x1="{xx:.1f}" y1="{cy - 4}" x2="{xx:.1f}" y2="{cy + 4}" stroke="#222"/>')
            if target:
                tx = x(target)
                o.append(f'<line x1="{tx:.1f}" y1="{y + 1}" x2="{tx:.1f}" y2="{y + row - 1}" stroke="#c00" '
                         f'stroke-width="2" stroke-dasharray="3,2"/>')
            label_x = max(x1, x(sp[1]) if sp and sp[1] else x1, x(target) if target else x1) + 6
            o.append(f'<text x="{label_x:.1f}" y="{y + 15}">{r:.2f}×</text>')
            y += row
        y += row * 0.5
    o.append(f'<text x="10" y="{H - 38}" fill="#555">Bars: ratio of medians over rounds; whiskers: worst–best '
             f'ratio of per-round extremes (no end cap: it goes on beyond the axis).</text>')
    o.append(f'<text x="10" y="{H - 22}" fill="#555">Red dashes: target. Green: target met; orange: not met; '
             f'blue: no target.</text>')
    if any(reference_loss(e) for e in summary):
        o.append(f'<text x="10" y="{H - 6}" fill="#555">*: Mosquitto lost QoS 1 messages in this scenario '
                 f'(see the report); its rate is not comparable.</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


# --------------------------------------------------------------------------- main

def versions(args):
    v = {}
    try:
        v["parley"] = subprocess.run([str(args.parley), "version"], capture_output=True, text=True,
                                     timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        v["parley"] = "?"
    try:
        v["parley_commit"] = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                                            capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        v["parley_commit"] = "?"
    if getattr(args, "floor_bin", None):
        v["floor_source_sha256"] = hashlib.sha256(FLOOR_SOURCE.read_bytes()).hexdigest()
        try:
            r = subprocess.run([args.cc, "--version"], capture_output=True, text=True, timeout=10)
            v["floor_cc"] = f"{args.cc} -O2: " + r.stdout.strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            v["floor_cc"] = "?"
    if args.mosquitto:
        try:
            r = subprocess.run([args.mosquitto, "-h"], capture_output=True, text=True, timeout=10)
            v["mosquitto"] = (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            v["mosquitto"] = "?"
    return v


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version()}


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    elif hard == resource.RLIM_INFINITY and soft < 1_048_576:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1_048_576, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def build(args):
    print("build: flock /tmp/parley-build.lock swift build -c release --product parley", flush=True)
    r = subprocess.run(["flock", "-w", "3600", BUILD_LOCK, "swift", "build", "-c", "release", "--product", "parley"],
                       cwd=ROOT, timeout=7200)
    if r.returncode != 0:
        raise SystemExit(f"compare: build failed ({r.returncode})")


def busy_processes():
    """Other processes using a lot of CPU right now (one second of /proc sampling)."""
    def snap():
        d = {}
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                c = proc_cpu_seconds(pid)
                if c is not None:
                    d[pid] = c
        return d
    a = snap()
    time.sleep(1.0)
    b = snap()
    busy = []
    for pid, c in b.items():
        if pid in a and c - a[pid] > 0.2 and int(pid) != os.getpid():
            try:
                name = open(f"/proc/{pid}/comm").read().strip()
            except OSError:
                name = "?"
            busy.append(f"{name}[{pid}] {100 * (c - a[pid]):.0f}%")
    return busy


def wait_quiet(limit_s, threshold=0.3):
    """Wait (at most limit_s) until other processes use under `threshold` cores."""
    deadline = time.monotonic() + limit_s
    while True:
        a, t = machine_busy_seconds(), time.monotonic()
        time.sleep(2.0)
        cores = (machine_busy_seconds() - a) / (time.monotonic() - t)
        if cores < threshold:
            return
        if time.monotonic() >= deadline:
            print(f"compare: machine still busy ({cores:.2f} cores: {', '.join(busy_processes())}); going on",
                  flush=True)
            return
        print(f"compare: waiting for a quiet machine ({cores:.2f} cores busy)", flush=True)


def loops_text(loops):
    """How many event loops Parley ran: a number, or its default (0)."""
    if loops:
        return f"{loops} event loops"
    n = max(1, (os.cpu_count() or 1) - 1)
    return f"its default event loops (one per core but one: {n} here)"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--rounds", type=int, default=3, help="rounds, each running every scenario on every broker (min 3 unless --smoke)")
    p.add_argument("--seconds", type=float, default=5.0, help="measuring time per run (default 5)")
    p.add_argument("--loops", type=int, default=0,
                   help="Parley event loops (default 0: Parley's own default, one per core but one)")
    p.add_argument("--gen-loops", type=int, default=2, help="generator event loops (default 2)")
    p.add_argument("--sys", choices=("default", "off"), default="default",
                   help="$SYS: both brokers at their default interval (10 s) or both off")
    p.add_argument("--only", help="comma-separated substrings: run only scenarios whose id contains one")
    p.add_argument("--brokers", default="mosquitto,parley,floor",
                   help="variants to run (default mosquitto,parley,floor; the floor runs only where a scenario lists it)")
    p.add_argument("--no-floor", action="store_true", help="leave the floor (Tests/bench/floor/floor.c) out")
    p.add_argument("--cc", default=shutil.which("cc") or "/usr/bin/cc", help="C compiler for the floor (default cc)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                   help="before each round wait up to S seconds until other processes use < 0.3 cores")
    p.add_argument("--pause", type=float, default=1.0, help="seconds between runs (default 1)")
    p.add_argument("--smoke", action="store_true",
                   help="CI: 1 round, 1 s runs, 2 tiny QoS 1 scenarios and a tiny QoS 0 one (with the floor)")
    p.add_argument("--no-build", action="store_true", help="use the existing .build/release/parley")
    p.add_argument("--parley", default=str(ROOT / ".build/release/parley"))
    p.add_argument("--mosquitto", default=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    p.add_argument("--out", help="results JSON")
    p.add_argument("--markdown", help="markdown report")
    p.add_argument("--svg", help="SVG bar chart of the ratios")
    p.add_argument("--keep-temp", action="store_true", help="keep broker logs and configs")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--report-from", metavar="JSON", help="run nothing: re-render the report from a saved --out file")
    a = p.parse_args(argv)
    if a.smoke:
        a.rounds, a.seconds = 1, 1.0
        a.pause = min(a.pause, 0.2)
    elif a.rounds < 3:
        p.error("--rounds must be at least 3 (medians and a spread need it); --smoke runs one")
    if not (0.5 <= a.seconds <= 120):
        p.error("--seconds must be from 0.5 to 120")
    if not (0 <= a.loops <= 64 and 1 <= a.gen_loops <= 64):
        p.error("--loops must be from 0 (Parley's default) to 64, --gen-loops from 1 to 64")
    return a


def main(argv):
    args = parse_args(argv)
    scenarios = smoke_scenarios() if args.smoke else full_scenarios()
    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        scenarios = [s for s in scenarios if any(k in s.id for k in keys)]
    if args.list:
        for s in scenarios:
            print(f"{s.id:18} {s.group:12} {s.title:45} parley bench {' '.join(s.bench)}  [{', '.join(s.variants)}]")
        return 0
    if not scenarios:
        print("compare: no scenario matches --only", file=sys.stderr)
        return 2
    if args.report_from:
        return report_from(args)
    wanted = {b.strip() for b in args.brokers.split(",")}
    if args.no_floor:
        wanted.discard("floor")
        wanted.discard("floor-ring")
    if wanted & {"floor", "floor-ring"} and any("floor" in s.variants for s in scenarios) and \
            not (os.path.isfile(args.cc) and os.access(args.cc, os.X_OK)):
        if args.smoke:
            print(f"compare: no C compiler at {args.cc}; running without the floor", file=sys.stderr)
            wanted.discard("floor")
        else:
            print(f"compare: no C compiler at {args.cc} for the floor (--cc PATH, or --no-floor)", file=sys.stderr)
            return 2
    if not (os.path.isfile(args.mosquitto) and os.access(args.mosquitto, os.X_OK)):
        if args.smoke or "mosquitto" not in wanted:
            print(f"compare: no mosquitto at {args.mosquitto}; running Parley only", file=sys.stderr)
            wanted.discard("mosquitto")
            args.mosquitto = None
        else:
            print(f"compare: no mosquitto at {args.mosquitto} (apt-get install mosquitto, or --mosquitto PATH)",
                  file=sys.stderr)
            return 2
    for s in scenarios:
        if s.group not in PAIRED:
            s.variants = tuple(v for v in s.variants if v in wanted)

    if not args.no_build:
        build(args)
    if not Path(args.parley).exists():
        print(f"compare: no parley binary at {args.parley}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="parley-compare-"))
    # Run a private copy: another engineer's build may replace .build/release/parley mid-run.
    shutil.copy2(args.parley, workdir / "parley")
    args.parley = workdir / "parley"
    args.floor_bin = None
    args.floor_ring_bin = None
    for variant, source, attr in (("floor", FLOOR_SOURCE, "floor_bin"), ("floor-ring", FLOOR_RING_SOURCE, "floor_ring_bin")):
        if not any(variant in s.variants for s in scenarios):
            continue
        setattr(args, attr, workdir / variant)
        cmd = [args.cc, "-O2", "-o", str(getattr(args, attr)), str(source)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            print(f"compare: {' '.join(cmd)} failed:\n{r.stderr}", file=sys.stderr)
            shutil.rmtree(workdir, ignore_errors=True)
            return 2
    with open(args.parley, "rb") as f:
        parley_sha256 = hashlib.sha256(f.read()).hexdigest()
    nofile = raise_nofile()
    need = max(bench_clients(s.bench) for s in scenarios) + 200
    if nofile < need:
        print(f"compare: warning: open-file limit {nofile} < {need}: the biggest scenario may fail", file=sys.stderr)

    started = datetime.datetime.now(datetime.timezone.utc)
    meta = {"started": started.isoformat(timespec="seconds"), "machine": machine(),
            "versions": {**versions(args), "parley_sha256": parley_sha256},
            "settings": {"rounds": args.rounds, "seconds": args.seconds, "parley_loops": args.loops,
                         "generator_loops": args.gen_loops, "sys": args.sys,
                         "sys_interval_s": SYS_DEFAULT_INTERVAL if args.sys == "default" else 0,
                         "max_inflight": MAX_INFLIGHT, "max_queued_messages": MAX_QUEUED_MESSAGES,
                         "max_queued_bytes": MAX_QUEUED_BYTES, "max_packet_size": MAX_PACKET_SIZE,
                         "persistence": False, "allow_anonymous": True, "tcp_nodelay": True,
                         "nofile": nofile, "smoke": args.smoke},
            "busy_before": busy_processes(), "loadavg_before": os.getloadavg()}
    sys_text = ("$SYS: both brokers at their default, published every 10 s" if args.sys == "default"
                else "$SYS: off on both brokers (sys_interval 0)")
    print(f"compare: {len(scenarios)} scenarios x {args.rounds} rounds, {args.seconds:g} s each; "
          f"Parley {loops_text(args.loops)}, generator {args.gen_loops} loops; {sys_text}; open files {nofile}")
    print(f"compare: {meta['versions']}; {meta['machine']['cpus']} CPUs {meta['machine']['cpu_model']}")
    if meta["busy_before"]:
        print(f"compare: warning: other busy processes: {', '.join(meta['busy_before'])}")

    records = []
    interrupted = False
    try:
        total = sum(len(s.variants) for s in scenarios) * args.rounds
        n = 0
        for rnd in range(1, args.rounds + 1):
            if args.wait_quiet > 0:
                wait_quiet(args.wait_quiet)
            for sc in scenarios:
                order = list(sc.variants) if rnd % 2 == 1 else list(reversed(sc.variants))
                for v in order:
                    n += 1
                    rec = run_one(args, sc, v, rnd, workdir)
                    records.append(rec)
                    print(f"[{n:3}/{total}] round {rnd} {sc.id:15} {vname(v):15} {describe(rec)}", flush=True)
                    time.sleep(args.pause)
    except KeyboardInterrupt:
        interrupted = True
        print("compare: interrupted; reporting what ran", file=sys.stderr)
    finally:
        stop_all()

    finished = datetime.datetime.now(datetime.timezone.utc)
    meta["finished"] = finished.isoformat(timespec="seconds")
    meta["duration_s"] = round((finished - started).total_seconds(), 1)
    meta["busy_after"] = busy_processes()
    meta["interrupted"] = interrupted
    status = report(args, scenarios, records, meta)
    if args.keep_temp:
        print(f"compare: logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if interrupted else status


def classify(records, smoke):
    """Problems fail the run: a run that failed, or a Parley run (any broker in --smoke)
    that lost or duplicated QoS 1/2 messages. The reference broker's losses are findings."""
    problems, findings = [], []
    for r in records:
        where = f"round {r['round']} {r['scenario']} {r['variant']}"
        if not r["ok"]:
            problems.append(f"{where}: {r.get('error', '?')}")
            continue
        b = r["bench"]
        if b.get("scenario") != "connections" and int(b.get("qos", 0)) >= 1 and (b["lost"] or b["duplicated"]):
            text = f"{where}: QoS {b['qos']} lost {b['lost']}, duplicated {b['duplicated']}"
            (problems if smoke or r["variant"].startswith("parley") else findings).append(text)
    return problems, findings


def report(args, scenarios, records, meta):
    """Summary, targets, console tables and the --out/--markdown/--svg files; the exit status."""
    smoke = meta["settings"].get("smoke", False)
    summary = summarize(scenarios, records)
    targets = evaluate_targets(summary) if not smoke else []
    problems, findings = classify(records, smoke)
    notes = fixed_rate_notes(summary) + [f"reference broker lost messages: {f}" for f in findings]
    sys_text = ("$SYS: both brokers at their default, published every 10 s" if meta["settings"]["sys"] == "default"
                else "$SYS: off on both brokers (sys_interval 0)")

    print()
    head, rows = table_rows(summary)
    print(text_table(head, rows))
    rh, rr = ratio_rows(summary)
    if rr:
        print()
        print(text_table(rh, rr))
    fh, fr = floor_rows(summary)
    if fr:
        print()
        print(text_table(fh, fr))
    ch, cr = conn_rows(summary)
    if cr:
        print()
        print(text_table(ch, cr))
    for line in scaling_lines(summary):
        print(line)
    print()
    print(sys_text)
    for line in target_lines(targets):
        print(line)
    for line in notes:
        print("note: " + line)
    for line in problems:
        print("PROBLEM: " + line.splitlines()[0])

    if args.out:
        Path(args.out).write_text(json.dumps({"meta": meta, "summary": summary, "targets": targets,
                                              "problems": problems, "findings": findings, "runs": records},
                                             indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(meta, summary, targets, notes, problems, sys_text, args))
    if args.svg:
        st = meta["settings"]
        m = (f"{meta['machine']['cpus']} CPUs, {st['rounds']} rounds x {st['seconds']:g} s, "
             f"Parley {loops_text(st['parley_loops'])}, {meta['versions'].get('mosquitto', '')}, {meta['started'][:10]}")
        Path(args.svg).write_text(svg_chart(summary, m))
    print(f"compare: done in {meta.get('duration_s', 0):.0f} s; {len(problems)} problem(s)")
    return 1 if problems else 0


def report_from(args):
    """Re-render tables and files from a saved --out JSON, without running anything."""
    data = json.loads(Path(args.report_from).read_text())
    scenarios = []
    for e in data["summary"]:
        sc = Scenario(e["id"], e["group"], e["title"], e["bench"], tuple(e["variants"]), e.get("target_rate"))
        scenarios.append(sc)
    return report(args, scenarios, data["runs"], data["meta"])


CAVEATS = [
    "Generator and broker share the machine. The *cores* columns show who used the CPU during the measuring "
    "window; a broker near 1.00 core is Mosquitto's ceiling (one thread), Parley can use up to its loop count, "
    "and *other* is CPU taken by unrelated processes (noise).",
    "Saturation latencies follow from the window (Little's law: outstanding messages ÷ rate), so at saturation "
    "p50/p99 mostly restate the throughput; compare latencies at fixed rate.",
    "Fixed-rate runs: each paced publisher has its own phase within the period, so sends are spread evenly "
    "(20,000 deliveries/s for the rooms, 10,000/s for the pairs) and every message arrives on its own: "
    "nothing to batch. Both brokers then spend most of their CPU in the kernel (one read per PUBLISH, one "
    "write per delivery, loopback TCP processing charged to the writer): a profile of Parley at 100 pairs x "
    "100 msg/s shows 74 % kernel time. That floor is why the fixed-rate CPU ratio stays near 1 while the "
    "saturation ratios, where batching pays, are 8-23x.",
    "Fan-in at QoS 0 refills each publisher's window only on the generator's 1 ms timer (no acks to wait for), "
    "capping it at about window × publishers × 1000 = 400,000 msg/s: a fan-in QoS 0 broker that is well under "
    "one core per loop there is being held back by the generator.",
    "Accepted connections per second: the generator keeps up to ~600 connects outstanding; Mosquitto 2.0 listens "
    "with a backlog of 100, so SYNs are dropped and retried after 1 s: its accept rate here is mostly that timer.",
    "Bytes per idle connection is the broker's RSS growth over 10,000 connections divided by 10,000.",
]


def markdown(meta, summary, targets, notes, problems, sys_text, args):
    s = meta["settings"]
    v = meta["versions"]
    m = meta["machine"]
    out = [
        "# Parley vs Mosquitto" + (" and the floor" if any("floor" in e["variants"] for e in summary) else ""),
        "",
        f"Generated by `Tests/bench/compare.py` on {meta['started']} ({meta['duration_s']:.0f} s): "
        f"{s['rounds']} rounds x {s['seconds']:g} s per run, brokers alternating (A B, then B A), a fresh broker "
        f"process for every run. Load generator: `parley bench` with {s['generator_loops']} event loops, "
        "on the same machine.",
        "",
        f"- Machine: {m['cpus']} CPUs ({m['cpu_model']}), Linux {m['kernel']}; load average before "
        f"{meta['loadavg_before'][0]:.2f}. Other busy processes before: {', '.join(meta['busy_before']) or 'none'}; "
        f"after: {', '.join(meta['busy_after']) or 'none'}.",
        f"- {v.get('parley', '?')} ({v.get('parley_commit', '?')}), {loops_text(s['parley_loops'])}; "
        f"{v.get('mosquitto', '?')} (single-threaded)"
        + (f"; floor: `Tests/bench/floor/floor.c` built with {v['floor_cc']} (single-threaded, QoS 0 scenarios only)"
           if v.get("floor_cc") else "") + ".",
        f"- Both brokers: no persistence (Mosquitto `persistence false`, Parley `durability = none`), anonymous clients allowed, TCP_NODELAY, {s['max_queued_messages']} queued "
        f"messages and {s['max_queued_bytes'] // (1024 * 1024)} MiB per session, {s['max_inflight']} QoS 1/2 "
        f"messages in flight, {s['max_packet_size'] // 1024} KiB maximum packet size, only warnings and errors logged, "
        f"loopback (127.0.0.1). {sys_text}.",
        "- Payload 64 bytes, MQTT 3.1.1, clean sessions. Saturation runs let each publisher keep a window of "
        "undelivered messages (sized so no subscriber's queue nears 1000); fixed-rate runs publish at a set pace.",
        "- *CPU µs/msg* is `broker_cpu_us_per_msg` from `parley bench` (broker CPU from before the clients connect to "
        "the end of the measuring time, per delivery in the measuring time). *CPU µs/msg window* is the broker's CPU "
        "sampled by compare.py between the generator's 'clients ready' line and its last progress line only. "
        "*cores* are CPU seconds per second in that window for the broker, the generator and everything else on "
        "the machine: broker + generator near the CPU count means the machine, not one side, is the limit.",
        "- Medians over rounds; *spread* is the min–max over rounds; ratio ranges combine the per-round extremes.",
        "",
        "## Messages",
        "",
        md_table(*table_rows(summary)),
        "",
        "## Ratios (Parley / Mosquitto)",
        "",
        "Throughput: higher is better; CPU/msg and p99: lower is better.",
        "",
        md_table(*ratio_rows(summary)),
        "",
    ]
    fh, fr = floor_rows(summary)
    if fr:
        out += ["## Ratios to the floor (Parley / floor, Mosquitto / floor)", "",
                "The floor (`Tests/bench/floor/floor.c`, `cc -O2`): one thread, epoll, QoS 0 and exact topics "
                "only, one read() per readable connection and one write() per delivery, no batching: the least "
                "a broker can do with one system call per delivery. It runs in the QoS 0 scenarios only. "
                "Throughput: higher is better; CPU/msg and p99: lower is better.", "",
                md_table(fh, fr), ""]
    ch, cr = conn_rows(summary)
    if cr:
        out += ["## Idle connections", "",
                "10000 clients connect (keep alive 0) from 127.0.0.1 ... 127.0.0.8 and stay idle; bytes per "
                "connection is the broker's RSS growth divided by the connections.", "", md_table(ch, cr), ""]
    sl = scaling_lines(summary)
    if sl:
        out += ["## Scaling", ""] + [f"- {x}" for x in sl] + [""]
    if targets:
        out += ["## Targets", ""] + [f"- {x}" for x in target_lines(targets)] + [""]
    if notes or problems:
        out += ["## Notes and problems", ""] + [f"- {x}" for x in notes] + \
               [f"- PROBLEM: {x.splitlines()[0]}" for x in problems] + [""]
    out += ["## Reading these numbers", ""] + [f"- {x}" for x in CAVEATS] + [""]
    out += ["## Scenarios", "", "| id | group | `parley bench` arguments (plus `--seconds`, `--broker`, `--pid`, "
            "`--json`) | brokers |", "| --- | --- | --- | --- |"]
    out += [f"| {e['id']} | {e['group']} | `{' '.join(e['bench'])}` | {', '.join(vname(v) for v in e['variants'])} |"
            for e in summary] + [""]
    if args.svg:
        out += [f"![ratios]({os.path.basename(args.svg)})", ""]
    out += ["Reproduce: `Tests/bench/compare.py --out Tests/bench/results.json --markdown Tests/bench/results.md "
            "--svg Tests/bench/results.svg`", ""]
    return "\n".join(out)


if __name__ == "__main__":
    def _term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, _term)
    try:
        sys.exit(main(sys.argv[1:]))
    finally:
        stop_all()
