#!/usr/bin/env python3
"""The HTTP gateway's benchmarks (issue 12 section 6), side by side in one run.

    Tests/bench/gateway.py                       # 3 rounds, everything (~10 min)
    Tests/bench/gateway.py --smoke               # CI: 1 round, 2 s runs, RabbitMQ skipped (< 1 min)
    Tests/bench/gateway.py --smoke --with-rabbit # the same with RabbitMQ (~ +30 s)
    Tests/bench/gateway.py --only ws,http --rounds 5 --seconds 8 --json /tmp/gateway.json

Parts (--only ws|rabbit|http, comma-separated):
  ws      MQTT over WebSocket against MQTT over TCP on ONE Parley process
          (`parley serve --plugins gateway --mqtt 127.0.0.1:0 --http 127.0.0.1:0`, no chat
          plugin, so anonymous clients): `parley bench pairs --count 100` at QoS 1 and 0,
          over `--broker MQTT-PORT` and over `--broker HTTP-PORT --websocket /mqtt`.
          Target: WebSocket >= 80 % of TCP for 100 pairs QoS 1.
  rabbit  Parley's WebSocket against RabbitMQ's rabbitmq_web_mqtt (`--websocket /ws`), MQTT
          3.1.1, 100 pairs QoS 1, a fresh broker for every run. RabbitMQ runs from a temp
          directory, configured by environment variables only (nothing under /etc is read
          or written): its own epmd on a free loopback port, every listener on 127.0.0.1.
          Both brokers' CPU seconds and peak RSS (`parley bench --pid`: Parley's process,
          RabbitMQ's beam.smp). Target: Parley >= 5x RabbitMQ.
  http    wrk (-t2 -c50, keep-alive, --latency): GET /healthz on Parley against nginx
          serving a static file with the same body (`{"status":"ok"}`, 15 bytes), nginx in
          the foreground with one process (`master_process off`). Target: >= 0.8x nginx.
          Then with the chat plugin (`--plugins chat,gateway`), durability full and none:
          a user signed up over REST, a token, a room with 200 seeded posts; wrk on
          `GET /v1/rooms/bench/messages?limit=50` and on token-authenticated
          `POST /v1/rooms/bench/messages` (a Lua script). Any non-2xx/3xx answer or socket
          error fails the run; after the POST run the room's last_id must account for
          every answered post.

Every round runs the variants of a comparison in alternating order (A B, then B A).
Figures are medians over rounds with the min-max spread; ratios are ratios of the
medians, their range combines the per-round extremes (as compare.py).

Processes: every one this script starts is stopped by its PID in a finally block
(SIGTERM, then SIGKILL after a bound; RabbitMQ first through `rabbitmqctl shutdown`).
Network: 127.0.0.1 only; a watcher checks with `ss -ltnp`/`ss -lunp` every second that
no process started here listens anywhere else (a listener elsewhere is a PROBLEM).

Needs (Debian): wrk, nginx (nginx-light is enough), rabbitmq-server (for `rabbit`;
brings erlang and epmd), iproute2 (ss). Python 3 standard library only.
Exit status: 0 when every run succeeded; 1 otherwise; 2 on a usage or set-up error.
"""

import argparse
import ctypes
import datetime
import hashlib
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (BUILD_LOCK, HOST, LIVE, ROOT, busy_processes, f_lat, f_num, f_ratio, f_rng,  # noqa: E402
                     free_port, machine, machine_busy_seconds, med, proc_cpu_seconds, raise_nofile, ratio, ratio_spread, spread,
                     start_process, stop_all, stop_process, tail, text_table, wait_listening)

RABBIT_SBIN = Path("/usr/lib/rabbitmq/bin")  # the real scripts, not /usr/sbin's su-to-rabbitmq wrapper
HEALTH_BODY = b'{"status":"ok"}'
SEED_POSTS = 200
PAIRS = 100
WRK_THREADS, WRK_CONNECTIONS = 2, 50

ARGS = None
PROBLEMS = []       # lines that make the exit status 1
NOTES = []
RABBITS = []        # Rabbit objects still running (stopped before stop_all())


def say(text):
    print(text, flush=True)


def problem(text):
    PROBLEMS.append(text)
    say("PROBLEM: " + text)


# --------------------------------------------------------------------------- processes

def set_subreaper():
    """Orphans of our children (beam.smp's erl_child_setup, inet_gethost) are re-parented
    to us instead of init, so that we can reap them (see reap_orphans())."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


ERLANG_HELPERS = {"erl_child_setup", "inet_gethost", "epmd", "beam.smp", "erlexec"}


def reap_orphans():
    """Reaps the Erlang helpers (of RabbitMQ and of each rabbitmqctl) that outlived their
    parents and were re-parented to us: zombies of ours that no Popen object waits for."""
    me = os.getpid()
    for pid, (ppid, comm, state) in process_table().items():
        if ppid == me and state == "Z" and pid not in LIVE and comm in ERLANG_HELPERS:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def process_table():
    """pid -> (ppid, comm, state) for every process."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(d)] = (int(fields[1]), comm, fields[0])
    return table


def descendants(roots, table=None):
    table = table if table is not None else process_table()
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def start_env(cmd, env, out):
    """compare.start_process with an environment of its own."""
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                         start_new_session=True)
    LIVE[p.pid] = p
    return p


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def kill_pid(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


LOOPBACK = ("127.", "[::1]", "[::ffff:127.")
NAME_RE = re.compile(r'[(]"([^"]+)",pid=')


class LoopbackWatch(threading.Thread):
    """Every second: do processes started here (and their descendants) listen only on loopback?"""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop_event = threading.Event()
        self.seen = {}   # "proto addr names pids" -> first seen
        self.lock = threading.Lock()
        self.checks = 0

    def check(self):
        roots = set(LIVE)
        if not roots:
            return
        mine = roots | descendants(roots)
        for proto in ("-ltnpH", "-lunpH"):
            try:
                out = subprocess.run(["ss", proto], capture_output=True, text=True, timeout=10).stdout
            except (OSError, subprocess.TimeoutExpired):
                return
            for line in out.splitlines():
                f = line.split()
                if len(f) < 5:
                    continue
                pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
                if not pids & mine:
                    continue
                local = f[3]
                if not local.startswith(LOOPBACK):
                    names = ",".join(re.findall(NAME_RE, line))
                    key = f"{proto[2]} {local} {names} pids {sorted(pids & mine)}"
                    with self.lock:
                        new = key not in self.seen
                        self.seen.setdefault(key, time.strftime("%H:%M:%S"))
                    if new:
                        problem(f"a process started here listens beyond loopback: {key}")
        self.checks += 1

    def run(self):
        while not self.stop_event.wait(1.0):
            try:
                self.check()
            except Exception as e:  # noqa: BLE001 - the watch must not kill the run
                say(f"gateway: loopback watch: {e}")


# --------------------------------------------------------------------------- servers

class Parley:
    """parley serve on port 0 listeners; the ports come from its listener.open log lines."""

    def __init__(self, workdir, tag, plugins, config_lines=()):
        self.workdir, self.tag, self.plugins = workdir, tag, plugins
        self.data = workdir / f"{tag}-data"
        self.data.mkdir()
        self.config_lines = list(config_lines)
        self.proc = self.mqtt = self.http = None
        self.log = workdir / f"{tag}.log"

    def start(self):
        cmd = [str(ARGS.parley), "serve", "--plugins", self.plugins, "--mqtt", f"{HOST}:0", "--http", f"{HOST}:0",
               "--data", str(self.data)]
        if self.config_lines:
            conf = self.workdir / f"{self.tag}.conf"
            conf.write_text("\n".join(self.config_lines) + "\n")
            cmd += ["--config", str(conf)]
        with open(self.log, "wb") as logf:
            self.proc = start_process(cmd, stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        pat = re.compile(r"event=listener\.open address=127\.0\.0\.1:(\d+) protocol=(mqtt|http)\b")
        while time.monotonic() < deadline and (self.mqtt is None or self.http is None):
            if self.proc.poll() is not None:
                break
            for m in pat.finditer(self.log.read_text(errors="replace")):
                if m.group(2) == "mqtt":
                    self.mqtt = int(m.group(1))
                else:
                    self.http = int(m.group(1))
            time.sleep(0.05)
        if self.mqtt is None or self.http is None or not wait_listening(self.http, self.proc) \
                or not wait_listening(self.mqtt, self.proc):
            raise RuntimeError(f"parley {self.tag} did not start:\n{tail(self.log)}")
        WATCH.check()
        return self

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is not None:
            rc = stop_process(self.proc)
            self.proc = None
            return rc
        return None


class Nginx:
    """nginx in the foreground, one process, serving /healthz as a static file."""

    def __init__(self, workdir, tag):
        self.dir = workdir / tag
        self.dir.mkdir()
        self.proc = self.port = None
        self.log = self.dir / "stderr.log"

    def start(self):
        d = self.dir
        (d / "html").mkdir()
        (d / "html" / "healthz").write_bytes(HEALTH_BODY)
        for last in range(3):
            self.port = free_port()
            (d / "nginx.conf").write_text(f"""daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    server_tokens off;
    etag off;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    client_body_temp_path {d}/tmp-body;
    proxy_temp_path {d}/tmp-proxy;
    fastcgi_temp_path {d}/tmp-fastcgi;
    uwsgi_temp_path {d}/tmp-uwsgi;
    scgi_temp_path {d}/tmp-scgi;
    types {{ }}
    default_type application/json;
    server {{
        listen {HOST}:{self.port};
        root {d}/html;
        location = /healthz {{ }}
    }}
}}
""")
            with open(self.log, "wb") as logf:
                self.proc = start_process([ARGS.nginx, "-p", str(d), "-c", str(d / "nginx.conf"),
                                           "-e", str(d / "error.log")], stdout=logf, stderr=subprocess.STDOUT)
            if wait_listening(self.port, self.proc):
                WATCH.check()
                return self
            stop_process(self.proc, grace=3)
            self.proc = None
        raise RuntimeError(f"nginx did not start:\n{tail(self.log)}\n{tail(d / 'error.log')}")

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


class Rabbit:
    """RabbitMQ with rabbitmq_mqtt and rabbitmq_web_mqtt, from a temp directory, loopback only."""

    NODE = "parleybench@localhost"

    def __init__(self, workdir, tag):
        self.dir = workdir / tag
        self.dir.mkdir()
        self.tag = tag
        self.epmd = self.proc = None
        self.beam = None
        self.mqtt = self.ws = None
        self.helpers = set()  # beam.smp's descendants (reaped by PID after the stop)

    def env(self):
        d = self.dir
        e = dict(os.environ)
        e.update({
            "HOME": str(d / "home"),  # the Erlang cookie lives here, for server and CLI alike
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),  # not created: none
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_NODENAME": self.NODE,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_DIST_PORT": str(self.dist),
            "ERL_EPMD_ADDRESS": HOST,
            "ERL_EPMD_PORT": str(self.epmd_port),
            # The syslog library (started during boot, stopped once logging is set up) opens a UDP
            # socket on 0.0.0.0 unless told otherwise: its protocol's third element is the socket's
            # options. No spaces: the script splits these arguments on them.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1} -start_epmd false "
                                                   "-syslog protocol {rfc3164,udp,[{ip,{127,0,0,1}}]}",
            "RABBITMQ_CTL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1} -start_epmd false",
        })
        return e

    def ctl(self, *args, timeout=60):
        """rabbitmqctl as a child of ours; its CLI node listens on a free loopback port."""
        port = free_port()
        env = self.env()
        env["RABBITMQ_CTL_DIST_PORT_MIN"] = env["RABBITMQ_CTL_DIST_PORT_MAX"] = str(port)
        with open(self.dir / "ctl.log", "ab") as f:
            p = start_env([str(RABBIT_SBIN / "rabbitmqctl"), "-n", self.NODE, *args], env, f)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        rc = stop_process(p, grace=3)
        reap_orphans()
        return rc

    def start(self):
        d = self.dir
        for sub in ("home", "mnesia", "log"):
            (d / sub).mkdir(exist_ok=True)
        self.epmd_port, self.dist, self.mqtt, self.ws = free_port(), free_port(), free_port(), free_port()
        (d / "rabbitmq-env.conf").write_text("")  # instead of /etc/rabbitmq/rabbitmq-env.conf
        (d / "enabled_plugins").write_text("[rabbitmq_mqtt,rabbitmq_web_mqtt].\n")
        (d / "rabbitmq.conf").write_text("\n".join([
            "listeners.tcp = none",                          # no AMQP listener
            f"mqtt.listeners.tcp.default = {HOST}:{self.mqtt}",
            "mqtt.allow_anonymous = true",
            "mqtt.prefetch = 100",                           # Parley's max_inflight (RabbitMQ's default: 10)
            f"web_mqtt.tcp.ip = {HOST}",
            f"web_mqtt.tcp.port = {self.ws}",
            "log.console = true",
            "log.console.level = warning",
            "log.file = false",
            "",
        ]))
        env = self.env()
        RABBITS.append(self)
        with open(d / "epmd.log", "wb") as f:
            self.epmd = start_process(["epmd", "-address", HOST, "-port", str(self.epmd_port)], stdout=f,
                                      stderr=subprocess.STDOUT)
        if not wait_listening(self.epmd_port, self.epmd, timeout=10):
            raise RuntimeError(f"epmd did not start: {tail(d / 'epmd.log')}")
        t0 = time.monotonic()
        with open(d / "server.log", "wb") as f:
            self.proc = start_env([str(RABBIT_SBIN / "rabbitmq-server")], env, f)  # foreground, our child
        deadline = time.monotonic() + 30
        while self.beam is None and time.monotonic() < deadline and self.proc.poll() is None:
            t = process_table()
            self.beam = next((p for p, (pp, c, _) in t.items() if pp == self.proc.pid and c == "beam.smp"), None)
            time.sleep(0.1)
        if self.beam is None:
            raise RuntimeError(f"rabbitmq-server started no beam.smp:\n{tail(d / 'server.log')}")
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited {self.proc.returncode}:\n{tail(d / 'server.log')}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"RabbitMQ not up in 90 s:\n{tail(d / 'server.log')}\n{tail(d / 'ctl.log')}")
            # Fails at once (69) while the node is not registered in epmd yet; then waits.
            if self.ctl("await_startup", "--timeout", str(int(max(5, left))), timeout=left + 5) == 0:
                break
            time.sleep(1.0)
        for port in (self.mqtt, self.ws):
            if not wait_listening(port, self.proc, timeout=20):
                raise RuntimeError(f"RabbitMQ does not listen on {port}:\n{tail(d / 'server.log')}")
        self.start_s = time.monotonic() - t0
        WATCH.check()
        return self

    @property
    def pid(self):
        return self.beam

    def stop(self):
        if self.proc is not None:
            self.helpers |= descendants([self.proc.pid])
            if self.proc.poll() is None and self.beam and alive(self.beam):
                self.ctl("shutdown", timeout=40)
            stop_process(self.proc)  # the script's trap: kill -TERM beam, wait
            if self.beam and alive(self.beam):
                kill_pid(self.beam, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while alive(self.beam) and time.monotonic() < deadline:
                    time.sleep(0.1)
            self.proc = None
        if self.epmd is not None:
            stop_process(self.epmd, grace=3)
            self.epmd = None
        for pid in self.helpers:  # erl_child_setup, inet_gethost: they go with beam.smp
            if alive(pid):
                kill_pid(pid, signal.SIGKILL)
        time.sleep(0.1)
        reap_orphans()
        if self in RABBITS:
            RABBITS.remove(self)


# --------------------------------------------------------------------------- load generators

class Noise:
    """CPU taken by everything else on the machine while a load runs: machine busy time
    minus the server's and our children's (the generator's) CPU, per second of wall time."""

    def __init__(self, server_pid):
        self.pid = server_pid
        self.t = time.monotonic()
        self.machine = machine_busy_seconds()
        self.server = proc_cpu_seconds(server_pid) or 0.0
        self.children = self._children()

    @staticmethod
    def _children():
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    def done(self, server_cpu=None):
        wall = time.monotonic() - self.t
        if server_cpu is None:
            server_cpu = (proc_cpu_seconds(self.pid) or self.server) - self.server
        other = machine_busy_seconds() - self.machine - server_cpu - (self._children() - self.children)
        return {"other_cores": round(max(0.0, other / wall), 2) if wall > 0 else None, "wall_s": round(wall, 2)}


def wait_quiet(limit_s, threshold=0.3):
    """Waits (at most limit_s) until the machine's other processes use under `threshold` cores."""
    if limit_s <= 0:
        return None
    deadline = time.monotonic() + limit_s
    while True:
        a, t = machine_busy_seconds(), time.monotonic()
        time.sleep(1.0)
        cores = (machine_busy_seconds() - a) / (time.monotonic() - t)
        if cores < threshold or time.monotonic() >= deadline:
            return round(cores, 2)

def parse_result(text):
    for line in text.splitlines():
        if line.startswith("RESULT "):
            out = {}
            for kv in line[7:].split():
                k, _, v = kv.partition("=")
                try:
                    out[k] = float(v) if any(c in v for c in ".e") else int(v)
                except ValueError:
                    out[k] = v
            return out
    return None


def run_bench(label, port, pid, qos, websocket=None, version="3.1.1"):
    """parley bench pairs --count 100; returns the RESULT fields."""
    out = ARGS.workdir / f"bench-{label}-{time.monotonic_ns()}"
    cmd = [str(ARGS.parley), "bench", "pairs", "--count", str(PAIRS), "--qos", str(qos), "--mqtt", version,
           "--broker", f"{HOST}:{port}", "--seconds", f"{ARGS.seconds:g}", "--pid", str(pid), "--label", label,
           "--quiet"]
    if websocket:
        cmd += ["--websocket", websocket]
    timeout = ARGS.seconds + 180  # the generator's own bounds: connect, drain 10 s
    quiet = wait_quiet(ARGS.wait_quiet)
    noise = Noise(pid)
    with open(f"{out}.out", "wb") as so, open(f"{out}.err", "wb") as se:
        p = start_process(cmd, stdout=so, stderr=se)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(p, grace=5)
        raise RuntimeError(f"parley bench timed out after {timeout:.0f} s")
    rc = stop_process(p)
    res = parse_result(Path(f"{out}.out").read_text(errors="replace"))
    if rc != 0 or res is None:
        raise RuntimeError(f"parley bench exited {rc}: {tail(f'{out}.err', 5).strip()}")
    res.update(noise.done(), busy_before=quiet)
    if qos >= 1 and (res.get("lost") or res.get("duplicated")):
        raise RuntimeError(f"QoS {qos}: lost {res.get('lost')}, duplicated {res.get('duplicated')}")
    if res.get("out_of_order"):
        raise RuntimeError(f"out of order {res['out_of_order']}")
    return res


UNIT = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def to_us(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    return float(m.group(1)) * UNIT[m.group(2)] if m else None


def parse_wrk(text):
    r = {"non_2xx": 0, "socket_errors": {}}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read", text)
    if m:
        r["requests"] = int(m.group(1))
        r["duration_us"] = to_us(m.group(2))
        r["read"] = m.group(3)
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)\s*$", text, re.M)
        r[f"p{pct}_us"] = to_us(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        r["non_2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        r["socket_errors"] = {k: int(v) for k, v in zip(("connect", "read", "write", "timeout"), m.groups())}
    return r


def run_wrk(label, url, pid, headers=(), script=None):
    cmd = [ARGS.wrk, f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", "-d", f"{ARGS.seconds:g}s", "--latency",
           "--timeout", "5s"]
    for h in headers:
        cmd += ["-H", h]
    if script:
        cmd += ["-s", str(script)]
    cmd.append(url)
    out = ARGS.workdir / f"wrk-{label}-{time.monotonic_ns()}.out"
    quiet = wait_quiet(ARGS.wait_quiet)
    noise = Noise(pid)
    cpu0 = proc_cpu_seconds(pid)
    with open(out, "wb") as f:
        p = start_process(cmd, stdout=f, stderr=subprocess.STDOUT)
    try:
        p.wait(timeout=ARGS.seconds + 30)
    except subprocess.TimeoutExpired:
        stop_process(p, grace=3)
        raise RuntimeError("wrk timed out")
    rc = stop_process(p)
    cpu1 = proc_cpu_seconds(pid)
    text = out.read_text(errors="replace")
    r = parse_wrk(text)
    r["server_cpu_s"] = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
    r.update(noise.done(r["server_cpu_s"]), busy_before=quiet)
    if r["server_cpu_s"] and r.get("requests"):
        r["requests_per_cpu_s"] = r["requests"] / r["server_cpu_s"]
    errs = sum(r["socket_errors"].values())
    if rc != 0 or r["rps"] is None or not r.get("requests"):
        raise RuntimeError(f"wrk exited {rc}: {text[-600:]}")
    if r["non_2xx"] or errs:
        raise RuntimeError(f"wrk saw {r['non_2xx']} non-2xx/3xx answers and socket errors {r['socket_errors']} "
                           f"in {r['requests']} requests")
    return r


# --------------------------------------------------------------------------- REST set-up

class Rest:
    def __init__(self, port):
        self.c = http.client.HTTPConnection(HOST, port, timeout=15)

    def call(self, method, path, body=None, token=None, expect=(200, 201)):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = self.c.getresponse()
        data = r.read()
        if r.status not in expect:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
        return r.status, (json.loads(data) if data and r.getheader("Content-Type", "").startswith("application/json")
                          else data)

    def close(self):
        self.c.close()


def get_body(port, path):
    c = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read(), len(str(r.headers).encode())
    finally:
        c.close()


def chat_setup(server):
    """Sign-up, token, room, 200 posts: the REST calls a client makes."""
    rest = Rest(server.http)
    try:
        rest.call("POST", "/v1/users", {"username": "bench", "password": "bench-password-1"}, expect=(201,))
        _, tok = rest.call("POST", "/v1/tokens", {"username": "bench", "password": "bench-password-1"}, expect=(201,))
        token = tok["token"]
        rest.call("POST", "/v1/rooms", {"name": "bench", "title": "bench"}, token=token, expect=(201,))
        for i in range(SEED_POSTS):
            rest.call("POST", "/v1/rooms/bench/messages", {"body": f"seed {i}"}, token=token, expect=(201,))
        _, page = rest.call("GET", "/v1/rooms/bench/messages?limit=50", token=token, expect=(200,))
        if len(page.get("messages", [])) != 50 or not page.get("has_more"):
            raise RuntimeError(f"history page after seeding: {len(page.get('messages', []))} messages, "
                               f"has_more {page.get('has_more')}")
        return token
    finally:
        rest.close()


def room_last_id(server, token):
    rest = Rest(server.http)
    try:
        return rest.call("GET", "/v1/rooms/bench", token=token, expect=(200,))[1]["last_id"]
    finally:
        rest.close()


# --------------------------------------------------------------------------- the parts

RECORDS = []


def record(part, scenario, variant, rnd, fn):
    rec = {"part": part, "scenario": scenario, "variant": variant, "round": rnd, "ok": False}
    t0 = time.monotonic()
    try:
        rec["result"] = fn()
        rec["ok"] = True
    except Exception as e:  # noqa: BLE001 - reported; the run counts as failed
        rec["error"] = str(e)
        problem(f"round {rnd} {scenario} {variant}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    rec["wall_s"] = round(time.monotonic() - t0, 2)
    RECORDS.append(rec)
    if rec["ok"]:
        say(f"  round {rnd} {scenario:22} {variant:22} {describe(rec['result'])}")
    return rec


def describe(r):
    if "delivered_per_s" in r:
        return (f"{r['delivered_per_s']:>9,.0f} msg/s  p99 {f_lat(r.get('p99_us'))}  broker cpu "
                f"{r.get('broker_cpu_s', 0):.2f} s  peak RSS {r.get('broker_peak_rss_kb', 0) / 1024:.0f} MiB  "
                f"other {r.get('other_cores', 0):.2f} cores")
    if "rps" in r:
        return (f"{r['rps']:>9,.0f} req/s  p50 {f_lat(r.get('p50_us'))}  p99 {f_lat(r.get('p99_us'))}  "
                f"server cpu {r.get('server_cpu_s') or 0:.2f} s  other {r.get('other_cores', 0):.2f} cores")
    return json.dumps(r)[:120]


def part_ws(rnd):
    """One Parley, both transports, QoS 1 and 0, alternating."""
    p = Parley(ARGS.workdir, f"ws-r{rnd}", "gateway")
    try:
        p.start()
        for qos in (1, 0):
            order = [("tcp", p.mqtt, None), ("websocket", p.http, "/mqtt")]
            if rnd % 2 == 0:
                order.reverse()
            for name, port, ws in order:
                record("ws", f"pairs-q{qos}", f"parley-{name}", rnd,
                       lambda: run_bench(f"parley-{name}", port, p.pid, qos, ws))
                if p.proc.poll() is not None:
                    raise RuntimeError(f"parley died:\n{tail(p.log)}")
    except Exception as e:  # noqa: BLE001
        problem(f"round {rnd} ws: {e}")
    finally:
        p.stop()


def part_rabbit(rnd):
    order = ["parley-websocket", "rabbitmq-web-mqtt"]
    if rnd % 2 == 0:
        order.reverse()
    for v in order:
        if v == "parley-websocket":
            server = Parley(ARGS.workdir, f"rabbitcmp-parley-r{rnd}", "gateway")
            port, path = None, "/mqtt"
        else:
            server = Rabbit(ARGS.workdir, f"rabbit-r{rnd}")
            port, path = None, "/ws"

        def go():
            try:
                server.start()
                if isinstance(server, Rabbit):
                    say(f"  round {rnd} RabbitMQ up in {server.start_s:.1f} s (beam.smp {server.beam})")
                r = run_bench(v, server.http if isinstance(server, Parley) else server.ws, server.pid, 1, path,
                              version="3.1.1")
                if isinstance(server, Rabbit):
                    r["start_s"] = round(server.start_s, 1)
                return r
            finally:
                server.stop()
        record("rabbit", "pairs-q1-3.1.1", v, rnd, go)


def part_http(rnd):
    # /healthz: Parley (gateway only) against nginx's static file.
    order = ["parley", "nginx"] if rnd % 2 == 1 else ["nginx", "parley"]
    for v in order:
        server = Parley(ARGS.workdir, f"health-r{rnd}", "gateway") if v == "parley" else Nginx(ARGS.workdir,
                                                                                             f"nginx-r{rnd}")

        def go():
            try:
                server.start()
                port = server.http if v == "parley" else server.port
                status, body, head_bytes = get_body(port, "/healthz")
                if status != 200 or body != HEALTH_BODY:
                    raise RuntimeError(f"GET /healthz: {status} {body!r}, want 200 {HEALTH_BODY!r}")
                r = run_wrk(f"health-{v}", f"http://{HOST}:{port}/healthz", server.pid)
                r["header_bytes"] = head_bytes
                return r
            finally:
                server.stop()
        record("http", "GET /healthz", v, rnd, go)

    # The chat REST routes, durability full and none.
    order = ["full", "none"] if rnd % 2 == 1 else ["none", "full"]
    for dur in order:
        p = Parley(ARGS.workdir, f"chat-{dur}-r{rnd}", "chat,gateway",
                   ["http_auth_rate = 1000/1000", "chat_post_rate = 1000000/1000000", f"durability = {dur}"])
        try:
            p.start()
            t0 = time.monotonic()
            token = chat_setup(p)
            say(f"  round {rnd} chat durability {dur}: signed up, token, room, {SEED_POSTS} posts in "
                f"{time.monotonic() - t0:.1f} s")
            auth = f"Authorization: Bearer {token}"
            record("http", "GET messages?limit=50", f"parley-chat-{dur}", rnd,
                   lambda: run_wrk(f"get-{dur}", f"http://{HOST}:{p.http}/v1/rooms/bench/messages?limit=50", p.pid,
                                   headers=[auth]))
            script = ARGS.workdir / "post.lua"
            script.write_text('wrk.method = "POST"\n'
                              'wrk.body = \'{"body":"bench"}\'\n'
                              'wrk.headers["Content-Type"] = "application/json"\n'
                              f'wrk.headers["Authorization"] = "Bearer {token}"\n')

            def post():
                before = room_last_id(p, token)
                r = run_wrk(f"post-{dur}", f"http://{HOST}:{p.http}/v1/rooms/bench/messages", p.pid, script=script)
                after = room_last_id(p, token)
                r["posts_stored"] = after - before
                # wrk counts answered requests; up to one per connection may be in flight at its end.
                if not (r["requests"] <= after - before <= r["requests"] + WRK_CONNECTIONS):
                    raise RuntimeError(f"{r['requests']} answered posts but last_id went {before} -> {after}")
                return r
            record("http", "POST messages", f"parley-chat-{dur}", rnd, post)
        except Exception as e:  # noqa: BLE001
            problem(f"round {rnd} chat durability {dur}: {e}")
        finally:
            p.stop()


# --------------------------------------------------------------------------- report

MQTT_ROWS = [("ws", "pairs-q1", "parley-tcp"), ("ws", "pairs-q1", "parley-websocket"),
             ("ws", "pairs-q0", "parley-tcp"), ("ws", "pairs-q0", "parley-websocket"),
             ("rabbit", "pairs-q1-3.1.1", "parley-websocket"), ("rabbit", "pairs-q1-3.1.1", "rabbitmq-web-mqtt")]
HTTP_ROWS = [("http", "GET /healthz", "parley"), ("http", "GET /healthz", "nginx"),
             ("http", "GET messages?limit=50", "parley-chat-full"), ("http", "GET messages?limit=50", "parley-chat-none"),
             ("http", "POST messages", "parley-chat-full"), ("http", "POST messages", "parley-chat-none")]
TITLES = {"pairs-q1": "100 pairs QoS 1", "pairs-q0": "100 pairs QoS 0",
          "pairs-q1-3.1.1": "100 pairs QoS 1, MQTT 3.1.1, WS"}
RATIOS = [
    # (title, (part, scenario, variant) numerator, denominator, key, target)
    ("WebSocket / TCP, 100 pairs QoS 1", ("ws", "pairs-q1", "parley-websocket"), ("ws", "pairs-q1", "parley-tcp"),
     "delivered_per_s", 0.8),
    ("WebSocket / TCP, 100 pairs QoS 0", ("ws", "pairs-q0", "parley-websocket"), ("ws", "pairs-q0", "parley-tcp"),
     "delivered_per_s", None),
    ("Parley WS / RabbitMQ web_mqtt, throughput", ("rabbit", "pairs-q1-3.1.1", "parley-websocket"),
     ("rabbit", "pairs-q1-3.1.1", "rabbitmq-web-mqtt"), "delivered_per_s", 5.0),
    ("RabbitMQ / Parley, broker CPU µs per message", ("rabbit", "pairs-q1-3.1.1", "rabbitmq-web-mqtt"),
     ("rabbit", "pairs-q1-3.1.1", "parley-websocket"), "broker_cpu_us_per_msg", None),
    ("RabbitMQ / Parley, peak RSS", ("rabbit", "pairs-q1-3.1.1", "rabbitmq-web-mqtt"),
     ("rabbit", "pairs-q1-3.1.1", "parley-websocket"), "broker_peak_rss_kb", None),
    ("Parley / nginx, GET /healthz req/s", ("http", "GET /healthz", "parley"), ("http", "GET /healthz", "nginx"),
     "rps", 0.8),
    ("Parley / nginx, GET /healthz requests per server CPU s", ("http", "GET /healthz", "parley"),
     ("http", "GET /healthz", "nginx"), "requests_per_cpu_s", None),
]


def summarize():
    out = {}
    for r in RECORDS:
        key = (r["part"], r["scenario"], r["variant"])
        e = out.setdefault(key, {"runs": 0, "ok": 0, "results": []})
        e["runs"] += 1
        if r["ok"]:
            e["ok"] += 1
            e["results"].append(r["result"])
    for e in out.values():
        keys = {k for res in e["results"] for k, v in res.items() if isinstance(v, (int, float))}
        e["median"] = {k: med([res.get(k) for res in e["results"]]) for k in sorted(keys)}
        e["spread"] = {k: spread([res.get(k) for res in e["results"]]) for k in sorted(keys)}
    return out


def tables(summary):
    mqtt_head = ["scenario", "broker / transport", "delivered/s (median)", "spread min–max", "p50", "p99",
                 "broker CPU s", "CPU µs/msg", "peak RSS MiB", "lost/dup", "other cores", "runs ok"]
    mqtt = []
    for key in MQTT_ROWS:
        e = summary.get(key)
        if not e:
            continue
        m, s = e["median"], e["spread"]
        if not e["ok"]:
            mqtt.append([TITLES[key[1]], key[2], "failed", "", "", "", "", "", "", "", "", f"0/{e['runs']}"])
            continue
        lost = sum(int(x.get("lost", 0)) for x in e["results"])
        dup = sum(int(x.get("duplicated", 0)) for x in e["results"])
        mqtt.append([TITLES[key[1]], key[2], f_num(m.get("delivered_per_s")), f_rng(s.get("delivered_per_s")),
                     f_lat(m.get("p50_us")), f_lat(m.get("p99_us")), f_num(m.get("broker_cpu_s"), 2),
                     f_num(m.get("broker_cpu_us_per_msg"), 2),
                     f_num((m.get("broker_peak_rss_kb") or 0) / 1024, 1), f"{lost}/{dup}", f_num(m.get("other_cores"), 2),
                     f"{e['ok']}/{e['runs']}"])
    http_head = ["request", "server", "req/s (median)", "spread min–max", "p50", "p99", "p99 spread",
                 "server CPU s", "req per CPU s", "other cores", "runs ok"]
    rows = []
    for key in HTTP_ROWS:
        e = summary.get(key)
        if not e:
            continue
        m, s = e["median"], e["spread"]
        if not e["ok"]:
            rows.append([key[1], key[2], "failed", "", "", "", "", "", "", "", f"0/{e['runs']}"])
            continue
        p99s = s.get("p99_us")
        rows.append([key[1], key[2], f_num(m.get("rps")), f_rng(s.get("rps")), f_lat(m.get("p50_us")),
                     f_lat(m.get("p99_us")), f"{f_lat(p99s[0])}–{f_lat(p99s[1])}" if p99s else "-",
                     f_num(m.get("server_cpu_s"), 2), f_num(m.get("requests_per_cpu_s")), f_num(m.get("other_cores"), 2),
                     f"{e['ok']}/{e['runs']}"])
    ratio_head = ["comparison", "ratio (medians)", "range", "target", ""]
    rr, verdicts = [], []
    for title, num, den, key, target in RATIOS:
        a, b = summary.get(num), summary.get(den)
        if not a or not b or not a["ok"] or not b["ok"]:
            continue
        r = ratio(a["median"].get(key), b["median"].get(key))
        rng = ratio_spread(a["spread"].get(key), b["spread"].get(key))
        verdict = ""
        if target is not None and r is not None:
            verdict = "MET" if r >= target else "NOT MET"
            if ARGS.smoke:
                verdict += " (smoke: not judged)"
            verdicts.append({"comparison": title, "ratio": r, "target": target, "met": r >= target})
        rr.append([title, f_ratio(r), f_rng(rng, 2), f">= {target:g}x" if target else "", verdict])
    return (mqtt_head, mqtt), (http_head, rows), (ratio_head, rr), verdicts


def versions():
    v = {}

    def run(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            return "?"
    v["parley"] = run([str(ARGS.parley), "version"])
    v["parley_commit"] = run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    v["nginx"] = run([ARGS.nginx, "-v"])
    v["wrk"] = run([ARGS.wrk, "-v"]).split(" Copyright")[0]
    v["rabbitmq-server"] = run(["dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"])
    return v


# --------------------------------------------------------------------------- main

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--seconds", type=float, default=10, help="measuring time of each bench and wrk run (default 10)")
    ap.add_argument("--smoke", action="store_true",
                    help="CI: 1 round, 2 s runs, RabbitMQ skipped unless --with-rabbit")
    ap.add_argument("--with-rabbit", action="store_true", help="with --smoke: run the RabbitMQ part too")
    ap.add_argument("--only", help="comma list of parts: ws, rabbit, http (default all)")
    ap.add_argument("--no-build", action="store_true", help="use the existing release binary")
    ap.add_argument("--json", metavar="FILE", help="write settings, runs, medians and ratios as JSON")
    ap.add_argument("--parley", default=str(ROOT / ".build" / "release" / "parley"))
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    ap.add_argument("--wait-quiet", type=float, default=15, metavar="S",
                    help="before each run wait up to S s for other processes to use < 0.3 cores (default 15; "
                         "0 in --smoke)")
    ap.add_argument("--keep-temp", action="store_true", help="keep logs, configs and data directories")
    a = ap.parse_args(argv)
    parts = ["ws", "rabbit", "http"]
    if a.only:
        want = [x.strip() for x in a.only.split(",") if x.strip()]
        bad = [x for x in want if x not in parts]
        if bad:
            ap.error(f"--only: unknown part(s) {', '.join(bad)}; choose from ws, rabbit, http")
        parts = [x for x in parts if x in want]
    if a.smoke:
        a.rounds = 1
        a.seconds = min(a.seconds, 2.0)
        a.wait_quiet = 0
        if "rabbit" in parts and not a.with_rabbit:
            parts.remove("rabbit")
    if not (1 <= a.rounds <= 20):
        ap.error("--rounds must be from 1 to 20")
    if not (1 <= a.seconds <= 120):
        ap.error("--seconds must be from 1 to 120")
    a.parts = parts
    return a


def preflight():
    missing = []
    if "http" in ARGS.parts:
        for name, path in (("wrk", ARGS.wrk), ("nginx", ARGS.nginx)):
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                missing.append(f"{name} (apt-get install {name})")
    if "rabbit" in ARGS.parts:
        if not (RABBIT_SBIN / "rabbitmq-server").exists():
            missing.append("rabbitmq-server (apt-get install --no-install-recommends rabbitmq-server)")
        if not shutil.which("epmd"):
            missing.append("epmd (erlang-base, with rabbitmq-server)")
    if not shutil.which("ss"):
        missing.append("ss (iproute2)")
    return missing


def main(argv):
    global ARGS, WATCH
    ARGS = parse_args(argv)
    missing = preflight()
    if missing:
        print("gateway: missing: " + "; ".join(missing), file=sys.stderr)
        return 2
    if not ARGS.no_build:
        say("build: flock /tmp/parley-build.lock swift build -c release --product parley")
        r = subprocess.run(["flock", "-w", "3600", BUILD_LOCK, "swift", "build", "-c", "release", "--product",
                            "parley"], cwd=ROOT, timeout=7200)
        if r.returncode != 0:
            print(f"gateway: build failed ({r.returncode})", file=sys.stderr)
            return 2
    if not Path(ARGS.parley).exists():
        print(f"gateway: no parley binary at {ARGS.parley}", file=sys.stderr)
        return 2
    ARGS.workdir = Path(tempfile.mkdtemp(prefix="parley-gateway-bench-"))
    shutil.copy2(ARGS.parley, ARGS.workdir / "parley")  # another build may replace the binary mid-run
    ARGS.parley = ARGS.workdir / "parley"
    with open(ARGS.parley, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    set_subreaper()
    nofile = raise_nofile()
    WATCH = LoopbackWatch()
    WATCH.start()

    started = datetime.datetime.now(datetime.timezone.utc)
    meta = {"started": started.isoformat(timespec="seconds"), "machine": machine(),
            "versions": {**versions(), "parley_sha256": sha},
            "settings": {"rounds": ARGS.rounds, "seconds": ARGS.seconds, "parts": ARGS.parts, "smoke": ARGS.smoke,
                         "pairs": PAIRS, "wrk": f"-t{WRK_THREADS} -c{WRK_CONNECTIONS} --latency",
                         "seed_posts": SEED_POSTS, "nofile": nofile},
            "busy_before": busy_processes(), "loadavg_before": os.getloadavg()}
    say(f"gateway: parts {', '.join(ARGS.parts)}; {ARGS.rounds} round(s) x {ARGS.seconds:g} s runs; "
        f"{meta['machine']['cpus']} CPUs {meta['machine']['cpu_model']}")
    say(f"gateway: {meta['versions']}")
    if meta["busy_before"]:
        say(f"gateway: warning: other busy processes: {', '.join(meta['busy_before'])}")
    interrupted = False
    try:
        for rnd in range(1, ARGS.rounds + 1):
            say(f"round {rnd}/{ARGS.rounds}")
            if "ws" in ARGS.parts:
                part_ws(rnd)
            if "rabbit" in ARGS.parts:
                part_rabbit(rnd)
            if "http" in ARGS.parts:
                part_http(rnd)
    except KeyboardInterrupt:
        interrupted = True
        say("gateway: interrupted; reporting what ran")
    finally:
        for rb in list(RABBITS):
            rb.stop()
        stop_all()
        WATCH.stop_event.set()
        WATCH.join(timeout=15)

    finished = datetime.datetime.now(datetime.timezone.utc)
    meta["duration_s"] = round((finished - started).total_seconds(), 1)
    meta["busy_after"] = busy_processes()
    meta["loopback_checks"] = WATCH.checks
    summary = summarize()
    (mh, mr), (hh, hr), (rh, rr), verdicts = tables(summary)
    say("")
    say(f"Parley gateway benchmarks: {ARGS.rounds} round(s) x {ARGS.seconds:g} s, medians (spread min–max), "
        f"{meta['started']}, {meta['machine']['cpus']} CPUs")
    if mr:
        say("")
        say(text_table(mh, mr))
    if hr:
        say("")
        say(text_table(hh, hr))
    if rr:
        say("")
        say(text_table(rh, rr))
    say("")
    if "http" in ARGS.parts:
        hp = summary.get(("http", "GET /healthz", "parley"), {}).get("median", {}).get("header_bytes")
        hn = summary.get(("http", "GET /healthz", "nginx"), {}).get("median", {}).get("header_bytes")
        say(f"note: nginx 1 process (master_process off), Parley {meta['machine']['cpus']} loops (default: one per "
            f"core); wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} on the same machine. Both /healthz bodies are the "
            f"{len(HEALTH_BODY)} bytes {HEALTH_BODY.decode()}; header bytes after the status line: Parley "
            f"{f_num(hp)}, nginx {f_num(hn)} (Server, Date, Last-Modified, Connection, Accept-Ranges).")
    say("note: other cores = CPU used by processes not started here during each run (the machine is shared); "
        f"before each run the script waited up to {ARGS.wait_quiet:g} s for it to fall under 0.3.")
    if "rabbit" in ARGS.parts:
        say("note: RabbitMQ mqtt.prefetch = 100 (= Parley's max_inflight; its default is 10); broker CPU and "
            "peak RSS are beam.smp's; a fresh broker for every run.")
    say(f"loopback: {WATCH.checks} ss checks of the processes started here, "
        f"{len(WATCH.seen)} listener(s) beyond 127.0.0.1/::1")
    for line in PROBLEMS:
        say("PROBLEM: " + line.splitlines()[0])
    if ARGS.json:
        Path(ARGS.json).write_text(json.dumps({
            "meta": meta, "problems": PROBLEMS, "targets": verdicts,
            "summary": [{"part": k[0], "scenario": k[1], "variant": k[2], "runs": v["runs"], "ok": v["ok"],
                         "median": v["median"], "spread": v["spread"]} for k, v in summary.items()],
            "runs": RECORDS}, indent=1, default=str) + "\n")
    say(f"gateway: done in {meta['duration_s']:.0f} s; {len(PROBLEMS)} problem(s)")
    if ARGS.keep_temp:
        say(f"gateway: logs kept in {ARGS.workdir}")
    else:
        shutil.rmtree(ARGS.workdir, ignore_errors=True)
    return 1 if (PROBLEMS or interrupted) else 0


WATCH = None

if __name__ == "__main__":
    def _term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, _term)
    try:
        sys.exit(main(sys.argv[1:]))
    finally:
        for _rb in list(RABBITS):
            _rb.stop()
        stop_all()
