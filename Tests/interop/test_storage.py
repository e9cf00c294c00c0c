"""Durable storage (SPEC section 6): what survives a restart and a kill -9, and
the bad cases with a clear outcome: a second broker on the same data directory,
a corrupt, foreign or newer database, an unusable data directory, a full store.
"""
import os
import sqlite3
import subprocess
import time

import pytest

from conftest import BIN, Broker
from pahoclient import connect_props, publish_props

QUOTA_EXCEEDED = 0x97


def run_parley(data_dir, timeout=10):
    """Starts `parley serve` on a free port with this data dir; returns (exit code, stderr)."""
    p = subprocess.run([BIN, "serve", "--mqtt", "127.0.0.1:0", "--data", data_dir],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return p.returncode, p.stderr.decode(errors="replace")


def restart(b, pause=0.0):
    """SIGKILL, then start again on the same data directory (a new port)."""
    b.kill()
    time.sleep(pause)
    b.port = None
    b.start()
    return b


def test_second_parley_on_the_same_data_directory_is_refused(start_broker):
    b = start_broker()
    rc, err = run_parley(os.path.join(b.tmp, "data"))
    assert rc != 0
    assert "in use by another running Parley" in err, err
    assert b.alive


@pytest.mark.parametrize("case", ["garbage", "newer-schema", "foreign-tables"])
def test_unusable_database_is_refused_and_left_untouched(tmp_path, case):
    data = tmp_path / "data"
    data.mkdir()
    db = data / "parley.db"
    if case == "garbage":
        db.write_bytes(b"this is not a database\n" * 100)
        want = "not a usable SQLite database"
    else:
        con = sqlite3.connect(db)
        if case == "newer-schema":
            con.execute("CREATE TABLE messages(x)")
            con.execute("PRAGMA user_version = 99")
            want = "newer than this Parley"
        else:
            con.execute("CREATE TABLE someone_elses(x)")
            con.execute("INSERT INTO someone_elses VALUES (1)")
            want = "no Parley schema version"
        con.commit()
        con.close()
    before = db.read_bytes()
    rc, err = run_parley(str(data))
    assert rc != 0
    assert want in err, err
    assert db.read_bytes() == before, "the database was modified"


def test_data_directory_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "data"
    f.write_text("a file")
    rc, err = run_parley(str(f))
    assert rc != 0
    assert "is a file, not a directory" in err, err


def test_restart_after_kill_restores_session_subscriptions_queue_and_retained(start_broker, paho, topic, cid):
    cid = cid()
    b = start_broker()
    sub = paho(b.port, client_id=cid, version=5)
    sub.connect(clean_start=True, properties=connect_props(SessionExpiryInterval=3600))
    sub.subscribe(f"{topic}/q/#", qos=1)
    sub.close()
    pub = paho(b.port, version=5)
    pub.connect()
    for i in range(50):
        rc, _ = pub.publish_full(f"{topic}/q/x", f"m{i}".encode(), qos=1)
        assert rc == 0
    rc, _ = pub.publish_full(f"{topic}/retained", b"kept", qos=1, retain=True)
    assert rc == 0
    pub.close()
    restart(b)  # SIGKILL, then start on the same data directory
    again = paho(b.port, client_id=cid, version=5)
    ca = again.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=3600))
    assert ca.session_present
    got = [m.payload.decode() for m in again.collect(50, timeout=10)]
    assert got == [f"m{i}" for i in range(50)]
    fresh = paho(b.port, version=5)
    fresh.connect()
    fresh.subscribe(f"{topic}/retained", qos=1)
    m = fresh.get(timeout=5)
    assert m.payload == b"kept" and m.retain


def test_session_that_expired_while_the_broker_was_down_is_gone(start_broker, paho, topic, cid):
    cid = cid()
    b = start_broker()
    sub = paho(b.port, client_id=cid, version=5)
    sub.connect(properties=connect_props(SessionExpiryInterval=1))
    sub.subscribe(f"{topic}/#", qos=1)
    sub.close()
    restart(b, pause=1.5)
    again = paho(b.port, client_id=cid, version=5)
    ca = again.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=1))
    assert not ca.session_present


def test_message_that_expired_while_the_broker_was_down_is_not_delivered(start_broker, paho, topic, cid):
    cid = cid()
    b = start_broker()
    sub = paho(b.port, client_id=cid, version=5)
    sub.connect(properties=connect_props(SessionExpiryInterval=3600))
    sub.subscribe(f"{topic}/#", qos=1)
    sub.close()
    pub = paho(b.port, version=5)
    pub.connect()
    pub.publish_full(f"{topic}/short", b"expires", qos=1, properties=publish_props(MessageExpiryInterval=1))
    pub.publish_full(f"{topic}/long", b"stays", qos=1)
    pub.close()
    restart(b, pause=1.5)
    again = paho(b.port, client_id=cid, version=5)
    again.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=3600))
    assert again.get(timeout=5).payload == b"stays"
    again.expect_no_message(wait=0.7)


def test_durability_none_keeps_nothing_across_a_restart(start_broker, paho, topic, cid):
    cid = cid()
    b = start_broker("durability = none")
    sub = paho(b.port, client_id=cid, version=5)
    sub.connect(properties=connect_props(SessionExpiryInterval=3600))
    sub.subscribe(f"{topic}/#", qos=1)
    sub.close()
    restart(b)
    again = paho(b.port, client_id=cid, version=5)
    ca = again.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=3600))
    assert not ca.session_present
    assert not os.path.exists(os.path.join(b.tmp, "data", "parley.db"))


def test_full_store_refuses_qos1_with_0x97_keeps_qos0_and_recovers(start_broker, paho, topic, cid):
    cid = cid()
    b = start_broker("store_max_size = 192K")
    # An offline stored session fills the store with its queue.
    keeper = paho(b.port, client_id=cid, version=5)
    keeper.connect(properties=connect_props(SessionExpiryInterval=3600))
    keeper.subscribe(f"{topic}/fill/#", qos=1)
    keeper.close()
    live = paho(b.port, version=5)
    live.connect()
    live.subscribe(f"{topic}/live", qos=0)
    pub = paho(b.port, version=5)
    pub.connect()
    payload = b"x" * 2048
    refused = False
    for i in range(400):
        rc, _ = pub.publish_full(f"{topic}/fill/{i}", payload, qos=1)
        if rc == QUOTA_EXCEEDED:
            refused = True
            break
        assert rc == 0, hex(rc)
    assert refused, "the store never reported full"
    # QoS 0 keeps flowing while QoS 1/2 work is refused.
    pub.publish(f"{topic}/live", b"still here", qos=0)
    assert live.get(timeout=5).payload == b"still here"
    # The stored session drains its queue; the space it frees is used again.
    drain = paho(b.port, client_id=cid, version=5)
    drain.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=3600))
    drained = drain.collect(i, timeout=20)
    assert len(drained) == i
    deadline = time.monotonic() + 15
    while True:
        rc, _ = pub.publish_full(f"{topic}/after", b"ok", qos=1)
        if rc == 0:
            break
        assert time.monotonic() < deadline, "the store did not recover after space was freed"
        time.sleep(0.5)
    assert b.alive
