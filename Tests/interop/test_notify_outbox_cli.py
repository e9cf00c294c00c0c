"""`parley outbox list|retry ID|drop ID` (SPEC 7) on a data directory: notifications not
yet sent are listed, a dead one is tried again (attempts reset), one is dropped; a sent
one is left alone; a refused command exits 1 with one line saying why."""

import os
import sqlite3
import subprocess
import tempfile

from conftest import BIN


def outbox(data, *args):
    return subprocess.run([BIN, "outbox", *args, "--data", data], capture_output=True, text=True, timeout=20,
                          stdin=subprocess.DEVNULL)


def test_outbox_list_retry_drop():
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        r = outbox(data, "list")  # creates and migrates the tables
        assert (r.returncode, r.stdout) == (0, ""), r
        db = sqlite3.connect(os.path.join(data, "parley.db"))
        rows = [("alice", "email", "alice@example.com", "dead", 10, "550 no such user"),
                ("bob", "webhook", "dev_x", "pending", 2, "HTTP 500"),
                ("carol", "ntfy", "dev_y", "sent", 1, None)]
        for user, channel, dest, state, attempts, err in rows:
            db.execute("INSERT INTO notify_outbox(user, channel, destination, body, state, attempts, next_at,"
                       " created_at, last_error) VALUES (?, ?, ?, 'b', ?, ?, 0, 0, ?)",
                       (user, channel, dest, state, attempts, err))
        db.commit()
        lines = outbox(data, "list").stdout.splitlines()
        assert lines == ["1\tdead\talice\temail\talice@example.com\t10\t550 no such user",
                         "2\tpending\tbob\twebhook\tdev_x\t2\tHTTP 500"], lines
        r = outbox(data, "retry", "1")
        assert r.returncode == 0 and "1" in r.stdout, r
        state, attempts = db.execute("SELECT state, attempts FROM notify_outbox WHERE id = 1").fetchone()
        assert (state, attempts) == ("pending", 0)
        r = outbox(data, "drop", "2")
        assert r.returncode == 0, r
        assert db.execute("SELECT count(*) FROM notify_outbox WHERE id = 2").fetchone() == (0,)
        # A sent notification is neither retried nor dropped; unknown ids and bad words refused.
        for args in (["retry", "3"], ["drop", "3"], ["retry", "99"], ["drop", "x"], ["retry"], ["nope"], []):
            r = outbox(data, *args)
            assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, (args, r)
        assert db.execute("SELECT state FROM notify_outbox WHERE id = 3").fetchone() == ("sent",)
        db.close()
