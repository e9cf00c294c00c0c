"""The `io_uring` setting (conf/parley.conf): a loop turn's socket sends in one
io_uring system call, or a write() each. Both ways must deliver the same bytes in
the same order, including to a reader whose socket is full (a send that completes
with EAGAIN, then EPOLLOUT), and to many subscribers written in one turn.
"""

import os
import shutil
import re
import socket
import struct
import subprocess
import tempfile
import time

import pytest

import raw as r
from conftest import BIN


def started(b):
    return b.wait_log(r"event=reactor\.start ", timeout=5)


@pytest.mark.parametrize("setting,sends", [("on", "io_uring"), ("off", "write"), ("auto", "measured")])
def test_start_line_says_how_sends_go(start_broker, setting, sends):
    b = start_broker(f"io_uring = {setting}")
    line = started(b)
    assert f"sends={sends}" in line, line


def test_bad_io_uring_value_refused_with_the_setting_named():
    tmp = tempfile.mkdtemp(prefix="parley-interop-ring-")
    try:
        cfg = os.path.join(tmp, "parley.conf")
        with open(cfg, "w") as f:
            f.write("io_uring = sometimes\n")
        p = subprocess.run([BIN, "serve", "--plugins", "", "--mqtt", "127.0.0.1:0", "--data",
                            os.path.join(tmp, "data"), "--config", cfg],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10, cwd=tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    err = p.stderr.decode(errors="replace")
    assert p.returncode != 0, err
    assert "io_uring must be auto, on or off" in err and "sometimes" in err, err


def sequence(payload):
    return struct.unpack_from("!I", payload, 0)[0]


def fan_out_clients(port, name, topic, count=40):
    """`count` MQTT 3.1.1 subscribers to `topic` and one publisher, connected."""
    subs = []
    for i in range(count):
        c = r.RawClient(port, version=4, timeout=5)
        c.connect(f"{name}-sub-{i}", version=4)
        c.subscribe([(topic, 0)], version=4)
        subs.append(c)
    pub = r.RawClient(port, version=4, timeout=5)
    pub.connect(f"{name}-pub", version=4)
    return subs, pub


@pytest.mark.parametrize("setting", ["on", "off", "auto"])
def test_fan_out_in_one_turn_every_subscriber_gets_every_message_in_order(start_broker, setting):
    """40 subscribers on two loops, one publisher sending bursts: each turn writes to
    many sockets at once (one ring submission), and every subscriber sees 1..N."""
    b = start_broker(f"io_uring = {setting}")
    subs, pub = fan_out_clients(b.port, f"ring-{setting}", "ring/fan")
    n = 500
    burst = b"".join(r.publish("ring/fan", struct.pack("!I", k) + b"x" * 60, version=4) for k in range(1, n + 1))
    pub.send(burst)
    for c in subs:
        got = [sequence(c.read_type(r.PUBLISH, timeout=10).payload) for _ in range(n)]
        assert got == list(range(1, n + 1))
    for c in subs + [pub]:
        c.close()


def slow_reader(port, client_id):
    """A subscriber with a small receive buffer, not reading until told."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    c = r.RawClient.__new__(r.RawClient)
    c.version, c.sock, c.buf, c.eof = 4, sock, bytearray(), False
    c.connect(client_id, version=4)
    c.subscribe([("ring/slow", 0)], version=4)
    return c


@pytest.mark.parametrize("setting", ["on", "off"])
def test_readers_with_full_sockets_get_everything_after_they_read_again(start_broker, setting):
    """Two subscribers that stop reading (two sockets written in each turn: one ring
    submission): the sends hit full sockets (EAGAIN), the broker waits for EPOLLOUT,
    and once they read again every byte arrives, in order, none twice."""
    b = start_broker(f"io_uring = {setting}\nmax_queued_bytes = 64M\nmax_queued_messages = 0\n"
                     "slow_consumer_bytes = 1G", loops=1)
    subs = [slow_reader(b.port, f"ring-slow-{setting}-{i}") for i in range(2)]
    pub = r.RawClient(b.port, version=4, timeout=5)
    pub.connect(f"ring-slow-pub-{setting}", version=4)
    n, size = 1500, 8192  # 12 MB each: more than the kernel buffers of both sockets hold
    for k in range(1, n + 1):
        pub.send(r.publish("ring/slow", struct.pack("!I", k) + b"y" * (size - 4), version=4))
    # The publisher's packets are all in: a round trip on its own connection.
    pub.send(r.pingreq())
    assert pub.read_type(r.PINGRESP, timeout=10)
    time.sleep(0.3)  # the subscribers still read nothing: their sockets and the broker's buffers fill
    for sub in subs:
        got = [sequence(sub.read_type(r.PUBLISH, timeout=15).payload) for _ in range(n)]
        assert got == list(range(1, n + 1))
        sub.expect_nothing(0.3)
        sub.close()
    pub.close()


def test_auto_measures_both_ways_and_keeps_order_across_the_switches(start_broker):
    """io_uring = auto: the loop sends one epoch through the ring, the next with write(),
    and so on, then keeps the cheaper and says so (reactor.sends, with both costs).
    Messages paced to 40 subscribers, in rounds of 100 read back before the next,
    until the loop has chosen (bounded): every subscriber gets every message once, in
    order, across the switches."""
    b = start_broker("io_uring = auto", loops=1)
    started(b)
    subs, pub = fan_out_clients(b.port, "ring-auto", "ring/auto")
    rx = re.compile(r"event=reactor\.sends loop=0 sends=(io_uring|write) io_uring_ns=(\d+) write_ns=(\d+)")
    sent, chosen = 0, None
    for _round in range(60):  # a round of trials needs 6 x 2048 batched connections: 7+ rounds at most turns
        first = sent + 1
        for _ in range(100):
            sent += 1
            pub.send(r.publish("ring/auto", struct.pack("!I", sent) + b"z" * 60, version=4))
            time.sleep(0.001)
        for c in subs:
            got = [sequence(c.read_type(r.PUBLISH, timeout=10).payload) for _ in range(sent - first + 1)]
            assert got == list(range(first, sent + 1))
        chosen = next((m for m in map(rx.search, b.log()) if m), None)
        if chosen:
            break
    assert chosen, "no reactor.sends line after %d messages:\n%s" % (sent, "\n".join(b.log()[-10:]))
    assert int(chosen.group(2)) > 0 and int(chosen.group(3)) > 0, chosen.group(0)
    for c in subs:
        c.expect_nothing(0.05)
    for c in subs + [pub]:
        c.close()
