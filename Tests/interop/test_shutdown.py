"""SIGTERM: v5 clients get DISCONNECT 0x8B (server shutting down), the process
exits 0 (SPEC 7: SIGTERM drains and shuts down cleanly)."""

import signal

import raw as r


def test_sigterm_v5_clients_get_disconnect_0x8b_and_process_exits_0(start_broker, paho, raw, topic):
    b = start_broker()
    clients = [paho(b.port) for _ in range(3)]
    for c in clients:
        c.connect()
        c.subscribe(topic, 1)
    wire = raw(b.port)
    wire.connect("sigterm-raw")
    old = raw(b.port, version=4)
    old.connect("sigterm-311", version=4)
    code = b.terminate(timeout=6)
    assert code == 0, f"exit code {code}; log tail:\n" + "\n".join(b.log()[-10:])
    for c in clients:
        reason, _ = c.wait_disconnect()
        assert reason == 0x8B, f"paho client got reason {reason:#x}, expected 0x8B"
    got = wire.expect_closed(timeout=2)
    assert len(got) == 1 and got[0].type == r.DISCONNECT and got[0].reason == 0x8B, got
    # 3.1.1 has no server DISCONNECT: the connection is just closed.
    assert old.expect_closed(timeout=2) == []


def test_sigterm_right_after_listener_open_exits_0(start_broker):
    """SPEC 7: SIGTERM drains and exits 0, also when it comes as soon as the port is open.
    A race by nature, so it is tried several times."""
    results = []
    for _ in range(8):
        b = start_broker(on_listen=lambda b: b.proc.send_signal(signal.SIGTERM))
        code = b.terminate(timeout=3)  # bounded: None if it had to be killed
        results.append(code if code is not None else "hung (no exit 3 s after SIGTERM)")
    assert results == [0] * 8, f"exit codes after an early SIGTERM: {results}"


def test_sigterm_with_connected_v311_client_holding_a_will_exits_0(start_broker, paho, topic):
    b = start_broker()
    c = paho(b.port, version=4)
    c.will_set(topic, b"w", 1)
    c.connect()
    assert b.terminate(timeout=6) == 0
