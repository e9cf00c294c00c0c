#!/usr/bin/env python3
"""Where a broker's time goes at a fixed rate (issue 14, step 2): per delivered message.

    Tests/bench/profile.py                                   # rate-rooms-q0 and rate-pairs-q0, 3 rounds
    Tests/bench/profile.py --only rate-pairs-q0 --rounds 1 --brokers parley,floor
    Tests/bench/profile.py --strace                          # also a strace pass: system calls by name and fd kind

For each round, scenario and broker (mosquitto, parley = its defaults, parley-loops2, floor, floor-ring; the
brokers and settings of compare.py, which this imports) it starts a fresh broker on 127.0.0.1,
runs `parley bench` at the scenario's fixed rate, waits for "clients ready" plus --warm seconds,
then over --window seconds counts, for the broker process (all its threads):
  * system calls (perf stat -e raw_syscalls:sys_enter) and context switches (perf);
  * times a thread was put on a CPU (/proc/PID/task/*/schedstat, 3rd field) and voluntary
    context switches (/proc/PID/task/*/status): the wake-ups;
  * user and system CPU (/proc/PID/stat utime, stime) and on-CPU time (schedstat, ns);
and divides by the deliveries in the window (the generator's delivered/s times the window).
perf also counts, per kind: epoll waits, socket reads (read of other than 8 bytes, recvmsg), socket
writes (write of other than 8 bytes, writev, sendmsg), eventfd writes (write of 8 bytes: a
cross-loop hand-off or wake-up in Parley), futex calls and io_uring_enter calls (Parley's
batched sends: one carries every socket send of a loop turn, which then are not socket writes).
--strace adds, once per scenario and broker, a pass under `strace -f`: calls by name and by fd
kind. strace slows the broker so much that messages pile up and batch: its per-message counts
are far below the real ones; it is only a check of which calls there are.
Needs perf (apt-get install linux-perf) for the perf columns; without it they read "-".
Every run is bounded (generator --seconds, timeouts); only processes it started are stopped.
"""

import argparse
import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare as C  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def threads(pid):
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def snapshot(pid):
    s = {"t": time.monotonic(), "oncpu_ns": 0, "slices": 0, "vcsw": 0, "ivcsw": 0, "threads": {}}
    for tid in threads(pid):
        try:
            run_ns, _wait_ns, slices = (int(x) for x in open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[:3])
            st = open(f"/proc/{pid}/task/{tid}/status").read()
            comm = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
        except (OSError, ValueError):
            continue
        v = int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", st, re.M).group(1))
        iv = int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", st, re.M).group(1))
        s["threads"][tid] = (comm, run_ns, slices, v)
        s["oncpu_ns"] += run_ns
        s["slices"] += slices
        s["vcsw"] += v
        s["ivcsw"] += iv
    stat = open(f"/proc/{pid}/stat").read()
    f = stat[stat.rindex(")") + 2:].split()
    s["utime"], s["stime"] = int(f[11]) / CLK_TCK, int(f[12]) / CLK_TCK
    return s


# (column, perf event, filter): counted together over the window, in this order.
EVENTS = [
    ("syscalls", "raw_syscalls:sys_enter", None),
    ("ctx_switches", "context-switches", None),
    ("epoll_wait", "syscalls:sys_enter_epoll_wait", None),
    ("epoll_pwait", "syscalls:sys_enter_epoll_pwait", None),
    ("epoll_pwait2", "syscalls:sys_enter_epoll_pwait2", None),
    ("read", "syscalls:sys_enter_read", None),
    ("read8", "syscalls:sys_enter_read", "count == 8"),     # an eventfd read (socket reads ask for more)
    ("write", "syscalls:sys_enter_write", None),
    ("write8", "syscalls:sys_enter_write", "count == 8"),   # an eventfd write: a cross-loop wake-up
    ("writev", "syscalls:sys_enter_writev", None),
    ("sendmsg", "syscalls:sys_enter_sendmsg", None),
    ("recvmsg", "syscalls:sys_enter_recvmsg", None),
    ("futex", "syscalls:sys_enter_futex", None),
    ("io_uring_enter", "syscalls:sys_enter_io_uring_enter", None),
]


def perf_stat(pid, seconds):
    """{column: count per second} for the whole process: counted while perf's `sleep seconds` runs
    (after perf has attached), divided by `seconds`; {} without perf."""
    perf = shutil.which("perf")
    if not perf:
        return {}
    cmd = [perf, "stat", "-x", ",", "--no-big-num"]
    for _, ev, flt in EVENTS:
        cmd += ["-e", ev] + (["--filter", flt] if flt else [])
    cmd += ["-p", str(pid), "--", "sleep", str(seconds)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    lines = [l.split(",") for l in r.stderr.splitlines() if l.count(",") >= 3]
    out = {}
    for (col, ev, _), parts in zip(EVENTS, [l for l in lines if len(l) > 2 and l[2] in {e[1] for e in EVENTS}]):
        if parts[2] == ev:
            out[col] = int(parts[0]) / seconds if parts[0].strip().isdigit() else 0.0
    return out


def strace_pass(pid, seconds, out):
    """Calls by name and by (name, fd kind) over `seconds` under strace -f (slows the broker)."""
    strace = shutil.which("strace")
    if not strace:
        return None
    kinds = fd_kinds(pid)
    try:
        subprocess.run(["timeout", "-s", "INT", str(seconds), strace, "-f", "-qq", "-e", "signal=none",
                        "-o", str(out), "-p", str(pid)], capture_output=True, timeout=seconds + 30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    by_name, by_kind = collections.Counter(), collections.Counter()
    for line in open(out, errors="replace"):
        if "resumed>" in line:
            continue  # counted at its "unfinished" start
        m = re.match(r"^\d+\s+(\w+)\((\d+)?", line)
        if not m:
            continue
        name = m.group(1)
        by_name[name] += 1
        if m.group(2) is not None and name in ("read", "write", "readv", "writev", "recvfrom", "sendto",
                                               "recvmsg", "sendmsg", "send", "recv"):
            by_kind[f"{name} {kinds.get(int(m.group(2)), '?')}"] += 1
    return {"by_name": dict(by_name.most_common()), "by_fd_kind": dict(by_kind.most_common())}


def run(args, sc, variant, rnd, workdir, use_strace):
    tag = f"p{rnd}-{sc.id}-{variant}{'-strace' if use_strace else ''}"
    broker = C.make_broker(variant, args, workdir)
    rec = {"round": rnd, "scenario": sc.id, "variant": variant, "strace": use_strace, "ok": False}
    broker.start(tag)
    json_path = workdir / f"{tag}.json"
    total = args.warm + args.window + 2.0
    cmd = [str(args.parley), "bench", *sc.bench, "--broker", f"{C.HOST}:{broker.port}", "--seconds", f"{total:g}",
           "--pid", str(broker.proc.pid), "--json", str(json_path), "--label", variant, "--loops", "2"]
    ready = threading.Event()
    try:
        with open(workdir / f"{tag}.out", "wb") as out:
            gen = C.start_process(cmd, stdout=out, stderr=subprocess.PIPE)

        def feed():
            for line in open(gen.stderr.fileno(), errors="replace", closefd=False):
                if "clients ready" in line:
                    ready.set()
        t = threading.Thread(target=feed, daemon=True)
        t.start()
        if not ready.wait(timeout=120):
            rec["error"] = "clients not ready in 120 s"
            return rec
        time.sleep(args.warm)
        pid = broker.proc.pid
        a = snapshot(pid)
        if use_strace:
            rec["strace_counts"] = strace_pass(pid, args.window, workdir / f"{tag}.strace")
            counts = {}
        else:
            counts = perf_stat(pid, args.window)
        b = snapshot(pid)
        try:
            gen.wait(timeout=total + 120)
        except subprocess.TimeoutExpired:
            rec["error"] = "generator timed out"
        C.stop_process(gen, grace=5)
        t.join(timeout=5)
        gen.stderr.close()
        if "error" in rec or not json_path.exists():
            rec.setdefault("error", f"generator exited {gen.returncode} without JSON")
            return rec
        res = json.loads(json_path.read_text())
        wall = b["t"] - a["t"]
        d = res["delivered_per_s"] * wall
        dps = res["delivered_per_s"]  # perf counts are per second of counting
        rec.update({
            "ok": True, "delivered_per_s": res["delivered_per_s"], "p99_us": res["p99_us"], "window_s": wall,
            "deliveries": d,
            "perf_counts": counts,
            "syscalls_per_msg": counts["syscalls"] / dps if "syscalls" in counts else None,
            "perf_cs_per_msg": counts["ctx_switches"] / dps if "ctx_switches" in counts else None,
            "epoll_waits_per_msg": (sum(counts.get(k, 0) for k in ("epoll_wait", "epoll_pwait", "epoll_pwait2")) / dps
                                    if counts else None),
            "socket_reads_per_msg": ((counts.get("read", 0) - counts.get("read8", 0) + counts.get("recvmsg", 0)) / dps
                                     if counts else None),
            "socket_writes_per_msg": ((counts.get("write", 0) - counts.get("write8", 0) + counts.get("writev", 0)
                                       + counts.get("sendmsg", 0)) / dps if counts else None),
            "eventfd_writes_per_msg": counts["write8"] / dps if "write8" in counts else None,
            "eventfd_reads_per_msg": counts["read8"] / dps if "read8" in counts else None,
            "futex_per_msg": counts["futex"] / dps if "futex" in counts else None,
            "io_uring_enters_per_msg": counts["io_uring_enter"] / dps if "io_uring_enter" in counts else None,
            "oncpu_slices_per_msg": (b["slices"] - a["slices"]) / d,
            "voluntary_cs_per_msg": (b["vcsw"] - a["vcsw"]) / d,
            "involuntary_cs_per_msg": (b["ivcsw"] - a["ivcsw"]) / d,
            "user_us_per_msg": (b["utime"] - a["utime"]) * 1e6 / d,
            "sys_us_per_msg": (b["stime"] - a["stime"]) * 1e6 / d,
            "oncpu_us_per_msg": (b["oncpu_ns"] - a["oncpu_ns"]) / 1e3 / d,
            "busy_threads": sorted({b["threads"][k][0] for k in b["threads"]
                                    if k in a["threads"] and b["threads"][k][1] - a["threads"][k][1] > 1e6}),
        })
        if use_strace and rec.get("strace_counts"):
            rec["strace_per_msg"] = {k: v / d for k, v in rec["strace_counts"]["by_name"].items()}
            rec["strace_fd_per_msg"] = {k: v / d for k, v in rec["strace_counts"]["by_fd_kind"].items()}
        return rec
    finally:
        broker.stop()


COLS = [("syscalls_per_msg", "syscalls", 2), ("epoll_waits_per_msg", "epoll waits", 3),
        ("socket_reads_per_msg", "socket reads", 3), ("socket_writes_per_msg", "socket writes", 3),
        ("eventfd_writes_per_msg", "eventfd writes", 3), ("eventfd_reads_per_msg", "eventfd reads", 3),
        ("futex_per_msg", "futex", 3), ("io_uring_enters_per_msg", "io_uring enters", 3),
        ("perf_cs_per_msg", "ctx sw (perf)", 2),
        ("oncpu_slices_per_msg", "on-CPU slices", 2), ("voluntary_cs_per_msg", "vol. ctx sw", 2),
        ("user_us_per_msg", "user µs", 2), ("sys_us_per_msg", "sys µs", 2), ("oncpu_us_per_msg", "on-CPU µs", 2),
        ("p99_us", "p99 µs", 0)]


def table(records, scenarios, variants):
    head = ["scenario", "broker", "delivered/s"] + [c[1] + "/msg" if c[0] != "p99_us" else c[1] for c in COLS] + ["runs"]
    rows = []
    for sc in scenarios:
        for v in variants:
            rs = [r for r in records if r["scenario"] == sc.id and r["variant"] == v and r["ok"] and not r["strace"]]
            if not rs:
                continue
            row = [sc.id, C.vname(v), f"{statistics.median(r['delivered_per_s'] for r in rs):,.0f}"]
            for key, _, dg in COLS:
                xs = [r[key] for r in rs if r.get(key) is not None]
                if not xs:
                    row.append("-")
                    continue
                m = statistics.median(xs)
                row.append(f"{m:.{dg}f}" + (f" ({min(xs):.{dg}f}–{max(xs):.{dg}f})" if len(xs) > 1 else ""))
            row.append(str(len(rs)))
            rows.append(row)
    return head, rows


def strace_table(records):
    names = ["epoll_wait", "epoll_pwait", "read socket", "write socket", "writev socket", "sendmsg socket",
             "recvmsg socket", "read eventfd", "write eventfd", "futex", "clock_gettime", "io_uring_enter"]
    head = ["scenario", "broker", "delivered/s"] + [n + "/msg" for n in names] + ["other/msg"]
    rows = []
    for r in records:
        if not (r["ok"] and r["strace"] and r.get("strace_per_msg")):
            continue
        per = dict(r["strace_per_msg"])
        per.update(r["strace_fd_per_msg"])
        shown = 0.0
        row = [r["scenario"], C.vname(r["variant"]), f"{r['delivered_per_s']:,.0f}"]
        for n in names:
            x = per.get(n)
            row.append("-" if x is None else f"{x:.3f}")
        for n, x in r["strace_per_msg"].items():
            if n not in ("epoll_wait", "epoll_pwait", "futex", "clock_gettime", "io_uring_enter",
                         "read", "write", "writev", "sendmsg", "recvmsg"):
                shown += x
        row.append(f"{shown:.3f}")
        rows.append(row)
    return head, rows


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="rate-rooms-q0,rate-pairs-q0")
    p.add_argument("--brokers", default="mosquitto,parley,parley-loops2,floor")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warm", type=float, default=1.0)
    p.add_argument("--window", type=float, default=4.0)
    p.add_argument("--strace", action="store_true")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--parley", default=str(C.ROOT / ".build/release/parley"))
    p.add_argument("--mosquitto", default=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    p.add_argument("--cc", default=shutil.which("cc") or "/usr/bin/cc")
    p.add_argument("--out", help="JSON of every run")
    p.add_argument("--markdown", help="the tables as markdown")
    args = p.parse_args(argv)
    if not (1 <= args.rounds <= 10 and 0.5 <= args.window <= 30 and 0 <= args.warm <= 10):
        p.error("--rounds 1-10, --window 0.5-30, --warm 0-10")
    args.sys, args.loops = "default", 0  # "parley": its default settings
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    scenarios = [s for s in C.full_scenarios() if s.group == "fixed" and any(k in s.id for k in keys)]
    variants = [v.strip() for v in args.brokers.split(",") if v.strip()]
    if not scenarios or not variants:
        p.error("no scenario or broker selected")
    if not args.no_build:
        C.build(args)
    workdir = Path(tempfile.mkdtemp(prefix="parley-profile-"))
    shutil.copy2(args.parley, workdir / "parley")
    args.parley = workdir / "parley"
    args.floor_bin = workdir / "floor"
    subprocess.run([args.cc, "-O2", "-o", str(args.floor_bin), str(C.FLOOR_SOURCE)], check=True, timeout=120)
    args.floor_ring_bin = None
    if "floor-ring" in variants:  # the floor on io_uring alone (Tests/bench/floor/floor_ring.c)
        args.floor_ring_bin = workdir / "floor-ring"
        subprocess.run([args.cc, "-O2", "-o", str(args.floor_ring_bin), str(C.FLOOR_RING_SOURCE)], check=True,
                       timeout=120)
    C.raise_nofile()
    records = []
    try:
        for rnd in range(1, args.rounds + 1):
            for sc in scenarios:
                # The floors speak QoS 0 only.
                order = [v for v in variants if sc.qos == 0 or v not in ("floor", "floor-ring")]
                order = order if rnd % 2 else list(reversed(order))
                for v in order:
                    rec = run(args, sc, v, rnd, workdir, False)
                    records.append(rec)
                    print(f"round {rnd} {sc.id} {C.vname(v):14} " + (
                        f"{rec['delivered_per_s']:,.0f}/s syscalls/msg {rec['syscalls_per_msg'] or 0:.2f} "
                        f"slices/msg {rec['oncpu_slices_per_msg']:.2f} user {rec['user_us_per_msg']:.2f} µs "
                        f"sys {rec['sys_us_per_msg']:.2f} µs" if rec["ok"] else "FAILED " + rec.get("error", "?")),
                        flush=True)
                    time.sleep(0.5)
        if args.strace:
            for sc in scenarios:
                for v in variants:
                    rec = run(args, sc, v, 0, workdir, True)
                    records.append(rec)
                    print(f"strace {sc.id} {C.vname(v):14} " + (f"{rec['delivered_per_s']:,.0f}/s" if rec["ok"]
                                                                else "FAILED " + rec.get("error", "?")), flush=True)
    finally:
        C.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    head, rows = table(records, scenarios, variants)
    print()
    print(C.text_table(head, rows))
    sh, sr = strace_table(records)
    if sr:
        print()
        print(C.text_table(sh, sr))
    if args.out:
        Path(args.out).write_text(json.dumps({"argv": argv, "records": records}, indent=1) + "\n")
    if args.markdown:
        md = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
        md += ["| " + " | ".join(r) + " |" for r in rows]
        if sr:
            md += ["", "| " + " | ".join(sh) + " |", "|" + "|".join(" --- " for _ in sh) + "|"]
            md += ["| " + " | ".join(r) + " |" for r in sr]
        Path(args.markdown).write_text("\n".join(md) + "\n")
    return 0 if all(r["ok"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
