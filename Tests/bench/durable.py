#!/usr/bin/env python3
"""Durability benchmark (issue: durable storage).

1. Durable QoS 1 throughput: 50 pairs, persistent subscribers, QoS 1, against
   Parley with durability = full, Parley with durability = none, and Mosquitto
   without persistence, alternating, --rounds times; medians and ratios.
2. Restart time with N queued messages (default 1,000,000) for one offline
   persistent session: Parley is stopped with SIGKILL after the messages are
   acknowledged, then started again; the time to the listening socket is reported.

Loopback only; stops only the processes it started, by PID.
Usage: Tests/bench/durable.py [--rounds 3] [--seconds 5] [--queued 1000000] [--no-build]
"""
import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(REPO, ".build", "release", "parley")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.01)
    return False


def start_parley(port, data, durability):
    conf = os.path.join(data, "..", f"parley-{port}.conf")
    with open(conf, "w") as f:
        f.write(f"durability = {durability}\nsys_interval = 0\nmax_queued_messages = 0\n")
    p = subprocess.Popen([BIN, "serve", "--plugins", "", "--mqtt", f"127.0.0.1:{port}", "--data", data, "--config", conf],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert wait_port(port), "parley did not start"
    return p


def start_mosquitto(port, tmp):
    conf = os.path.join(tmp, f"mosquitto-{port}.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "set_tcp_nodelay true\nmax_queued_messages 1000\nmax_inflight_messages 100\n")
    p = subprocess.Popen(["mosquitto", "-c", conf], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    assert wait_port(port), "mosquitto did not start"
    return p


def stop(p, sig_kill=False):
    if p.poll() is None:
        p.kill() if sig_kill else p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def bench(port, pid, label, seconds, extra=()):
    out = subprocess.run([BIN, "bench", "pairs", "--broker", f"127.0.0.1:{port}", "--count", "50", "--qos", "1",
                          "--window", "16", "--persistent", "--seconds", str(seconds), "--pid", str(pid),
                          "--label", label, "--quiet", *extra], capture_output=True, text=True, timeout=seconds + 120)
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"bench failed for {label}: {out.stderr[-2000:]}")
    return dict(kv.split("=", 1) for kv in line[7:].split())


def throughput(args, tmp):
    results = {"parley-full": [], "parley-none": [], "mosquitto": []}
    for r in range(args.rounds):
        for name in results:
            port = free_port()
            data = os.path.join(tmp, f"data-{name}-{r}")
            os.makedirs(data, exist_ok=True)
            if name == "mosquitto":
                p = start_mosquitto(port, tmp)
            else:
                p = start_parley(port, data, name.split("-")[1])
            try:
                res = bench(port, p.pid, name, args.seconds)
            finally:
                stop(p)
            results[name].append(res)
            print(f"round {r + 1} {name:12} {float(res['delivered_per_s']):>10.0f} msg/s  "
                  f"p99 {float(res['p99_us']) / 1000:7.1f} ms  cpu {float(res.get('broker_cpu_us_per_msg', 0)):6.2f} us/msg  "
                  f"lost {res['lost']}", flush=True)
    med = {k: statistics.median(float(x["delivered_per_s"]) for x in v) for k, v in results.items()}
    spread = {k: (min(float(x["delivered_per_s"]) for x in v), max(float(x["delivered_per_s"]) for x in v))
              for k, v in results.items()}
    print("\n| broker | QoS 1 msg/s (median) | spread | ratio to Mosquitto |")
    print("| --- | --- | --- | --- |")
    for k in results:
        print(f"| {k} | {med[k]:.0f} | {spread[k][0]:.0f}-{spread[k][1]:.0f} | {med[k] / med['mosquitto']:.2f} |")
    return med


def restart_time(args, tmp):
    """Fill one offline persistent session with N messages, kill -9, time the restart."""
    port = free_port()
    data = os.path.join(tmp, "data-restart")
    os.makedirs(data, exist_ok=True)
    p = start_parley(port, data, "full")
    try:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="offline-keeper", clean_session=False,
                        protocol=mqtt.MQTTv311)
        c.connect("127.0.0.1", port)
        c.loop_start()
        c.subscribe("bench/#", qos=1)
        time.sleep(0.5)
        c.loop_stop()
        c.disconnect()
        queued = 0
        t0 = time.monotonic()
        while queued < args.queued and time.monotonic() - t0 < 900:
            res = subprocess.run([BIN, "bench", "pairs", "--broker", f"127.0.0.1:{port}", "--count", "10", "--qos", "1",
                                  "--window", "64", "--seconds", "10", "--quiet"], capture_output=True, text=True,
                                 timeout=200)
            line = next((l for l in res.stdout.splitlines() if l.startswith("RESULT ")), "")
            sent = int(re.search(r" sent=(\d+)", line).group(1)) if " sent=" in line else 0
            queued += sent
            print(f"queued so far: {queued}", flush=True)
    finally:
        stop(p, sig_kill=True)
    size = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data))
    port = free_port()
    t0 = time.monotonic()
    p = start_parley(port, data, "full")
    took = time.monotonic() - t0
    rss = 0
    with open(f"/proc/{p.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    stop(p)
    print(f"\nrestart with {queued} queued messages ({size / 1e6:.0f} MB on disk): "
          f"{took:.2f} s to listening, RSS after start {rss / 1024:.0f} MiB")
    return queued, took, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--queued", type=int, default=1_000_000)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--skip-restart", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["flock", "/tmp/parley-build.lock", "swift", "build", "-c", "release", "--product", "parley"],
                       cwd=REPO, check=True)
    tmp = tempfile.mkdtemp(prefix="parley-durable-")
    try:
        throughput(args, tmp)
        if not args.skip_restart:
            restart_time(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
