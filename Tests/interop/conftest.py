"""Fixtures: the real `parley` binary on 127.0.0.1:0, and clients for it.

- `broker`: a fresh broker per test with built-in defaults (plus
  `sys_interval = 1`); a broker that dies during the test fails it.
- `start_broker(config_text="...")`: a broker of the test's own with a
  temporary config file; stopped when the test ends. `tls=True` also waits for
  the TLS listener (`listen_tls = 127.0.0.1:0` or `--mqtts` in `extra_args`)
  and sets `broker.tls_port`.
- `debug_broker`: like `broker`, with `log_level = debug` (client.connect / client.closed
  lines for every client), for tests that wait for the broker to notice something.
- `paho(...)` / `raw(...)`: client factories closed at the end of the test.
- `wait_until(cond, timeout, what)` / `Broker.wait_log(pattern)`: wait for a condition
  (polled, bounded) instead of sleeping a fixed time.

Skips: every skipped test is listed in the summary (`-rfEs` in pytest.ini) and fails the
run unless `PARLEY_ALLOW_SKIPS`, a regular expression (`re.search` against
"<test id>: <reason>"), allows it; unset or empty allows none. See README.md.

The broker binary is `.build/debug/parley` (override with PARLEY_BIN). It is not
built here: build it first with
`flock /tmp/parley-build.lock swift build --product parley`.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from pahoclient import PahoClient  # noqa: E402
from raw import RawClient  # noqa: E402
import raw as raw_mod  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("PARLEY_BIN", os.path.join(REPO, ".build", "debug", "parley"))
START_TIMEOUT = 10.0
LISTEN_RE = re.compile(r"event=listener\.open address=127\.0\.0\.1:(\d+) protocol=mqtt\b")
TLS_LISTEN_RE = re.compile(r"event=listener\.open address=127\.0\.0\.1:(\d+) protocol=mqtts\b")


class Broker:
    """One `parley serve` process. Killed by its own PID, never by name."""

    def __init__(self, config_text=None, loops=2, name="broker", on_listen=None, tls=False,
                 extra_args=()):
        self.on_listen = on_listen  # called on the stderr reader thread as soon as the port is logged
        self.config_text = config_text
        self.loops = loops
        self.name = name
        self.proc = None
        self.port = None
        self.tls = tls  # wait for the TLS listener too
        self.tls_port = None
        self.extra_args = list(extra_args)
        self.lines = []
        self._lines_lock = threading.Lock()
        self.tmp = tempfile.mkdtemp(prefix="parley-interop-")
        self.returncode = None
        self.stopped_by_test = False

    def start(self):
        if not os.access(BIN, os.X_OK):
            pytest.fail(f"broker binary {BIN} not found; build it with "
                        "`flock /tmp/parley-build.lock swift build --product parley`", pytrace=False)
        args = [BIN, "serve", "--mqtt", "127.0.0.1:0", "--data", os.path.join(self.tmp, "data"),
                "--loops", str(self.loops)]
        # The MQTT suites run the broker without plugins (plain MQTT, anonymous clients
        # allowed); a test that wants the chat plugin says `plugins = chat`.
        if "plugins" not in (self.config_text or "") and "--plugins" not in self.extra_args:
            args += ["--plugins", ""]
        if self.config_text is not None:
            cfg = os.path.join(self.tmp, "parley.conf")
            with open(cfg, "w") as f:
                f.write(self.config_text.strip() + "\n")
            args += ["--config", cfg]
        args += self.extra_args
        self.proc = subprocess.Popen(args, cwd=self.tmp, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_found = threading.Event()

        def reader():
            for raw_line in self.proc.stderr:
                line = raw_line.decode(errors="replace").rstrip("\n")
                with self._lines_lock:
                    self.lines.append(line)
                m = TLS_LISTEN_RE.search(line)
                if m and self.tls_port is None:
                    self.tls_port = int(m.group(1))
                m = LISTEN_RE.search(line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                if self.port is not None and (self.tls_port is not None or not self.tls) \
                        and not port_found.is_set():
                    if self.on_listen:
                        self.on_listen(self)
                    port_found.set()

        self._reader = threading.Thread(target=reader, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not port_found.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"parley did not start (exit={self.proc.returncode}); args={args}\n"
                            f"config:\n{self.config_text}\nstderr:\n" + "\n".join(self.log()),
                            pytrace=False)
        return self

    def log(self):
        with self._lines_lock:
            return list(self.lines)

    def wait_log(self, pattern, timeout=5.0, after=0):
        """The first log line (from line index `after` on) matching the regex `pattern`;
        fails with the log tail if none comes within `timeout` seconds."""
        rx = re.compile(pattern)
        found = []

        def seen():
            found[:] = [l for l in self.log()[after:] if rx.search(l)][:1]
            return bool(found)

        wait_until(seen, timeout, f"a log line matching {pattern!r}",
                   detail=lambda: "\n".join(self.log()[-15:]))
        return found[0]

    def terminate(self, timeout=5.0):
        """SIGTERM by PID and wait; returns the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        self.stopped_by_test = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL to this PID only
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def stop(self):
        try:
            self.terminate(3.0)
        finally:
            self.kill()
            if self.proc is not None and self.proc.stderr:
                self._reader.join(timeout=1)
                self.proc.stderr.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None


DEFAULT_CONFIG = "sys_interval = 1\n"


def wait_until(cond, timeout=5.0, what="the condition", step=0.02, detail=None):
    """Polls `cond()` until it is true; AssertionError naming `what` after `timeout` seconds.
    For waits on something observable, instead of a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if time.monotonic() >= deadline:
            extra = ("\n" + detail()) if detail else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(step)


def _probe(b):
    """Connect, CONNECT, CONNACK: lets any deferred work on the loops run, so a crash it
    causes is attributed to the test that caused it."""
    try:
        c = RawClient(b.port, version=4, timeout=2.0)
        try:
            c.send(raw_mod.connect("", version=4))
            c.read(2.0)
            c.send(raw_mod.disconnect(version=4))
        finally:
            c.close()
    except Exception:
        pass
    time.sleep(0.05)


def _check_alive(b):
    if b.proc is not None and b.proc.poll() is None:
        _probe(b)
    if b.proc is not None and b.proc.poll() is not None and not b.stopped_by_test:
        return ("broker process died during the test (exit %s):\n" % b.proc.returncode
                + "\n".join(l for l in b.log() if "Fatal error" in l or "Program crashed" in l
                            or " at /work/" in l or "level=error" in l)[-3000:])
    return None


@pytest.fixture
def broker(request):
    """A fresh broker per test (built-in defaults + sys_interval = 1). Starting one takes
    ~50 ms; a fresh one per test keeps a crash from spilling into later tests."""
    b = Broker(DEFAULT_CONFIG, name="broker").start()
    request.node.parley_brokers = [b]
    yield b
    problem = _check_alive(b)
    b.stop()
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.fixture
def debug_broker(request):
    """`broker` with `log_level = debug`: every client's connect and close is logged
    (`event=client.closed client=ID ... by=peer|broker`), so a test can wait for the broker
    to have noticed a dropped connection with `debug_broker.wait_log(...)`."""
    b = Broker(DEFAULT_CONFIG + "log_level = debug\n", name="debug_broker").start()
    request.node.parley_brokers = [b]
    yield b
    problem = _check_alive(b)
    b.stop()
    if problem:
        pytest.fail(problem, pytrace=False)


def closed_line(client_id):
    """The debug log pattern of the broker closing or noticing the close of `client_id`."""
    return rf"event=client\.closed client={re.escape(client_id)} "


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test shows the end of the log of each broker it started."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    n = int(os.environ.get("PARLEY_LOG_LINES", "60"))
    for b in getattr(item, "parley_brokers", []):
        pid = b.proc.pid if b.proc else "-"
        report.sections.append((f"parley log (pid {pid}, last {n} lines)", "\n".join(b.log()[-n:])))


@pytest.fixture
def start_broker(request):
    started = []
    request.node.parley_brokers = started

    def start(config_text=None, loops=2, on_listen=None, tls=False, extra_args=()):
        b = Broker(config_text, loops=loops, on_listen=on_listen, tls=tls, extra_args=extra_args).start()
        started.append(b)
        return b

    yield start
    problems = [p for p in (_check_alive(b) for b in started) if p]
    for b in started:
        b.stop()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def paho():
    """paho(port, client_id='', version=5, ...) -> PahoClient (not yet connected)."""
    made = []

    def make(port, client_id="", version=5, **kw):
        c = PahoClient(port, client_id=client_id, version=version, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def raw():
    """raw(port, version=5) -> RawClient (TCP connected, nothing sent)."""
    made = []

    def make(port, version=5, timeout=3.0):
        c = RawClient(port, version=version, timeout=timeout)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def topic(request):
    """A topic prefix unique to this test, so tests sharing a broker never see each other."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40]
    return f"interop/{name}/{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cid(request):
    """Unique client ids: cid('sub') -> 'sub-<test>-<random>'."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:30]
    suffix = uuid.uuid4().hex[:6]

    def make(role="c"):
        return f"{role}-{base}-{suffix}"

    return make


# --- skips ----------------------------------------------------------------------------
# A skipped test is a check that did not run, so a skip is never silent: each one is listed
# at the end (`-rfEs` in pytest.ini and the section below), and one whose "<test id>: <reason>"
# the regular expression PARLEY_ALLOW_SKIPS does not match (unset or empty: none is allowed)
# makes the session fail (exit status 1) with an "UNEXPECTED SKIP" line that Tests/run.sh
# counts. Example: PARLEY_ALLOW_SKIPS='cannot mount a tmpfs' on a machine without root.

ALLOW_SKIPS = os.environ.get("PARLEY_ALLOW_SKIPS", "")
_skips = []  # (nodeid, reason, allowed)


def skip_allowed(text, pattern=None):
    pattern = ALLOW_SKIPS if pattern is None else pattern
    return bool(pattern) and re.search(pattern, text) is not None


def _skip_reason(report):
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        reason = lr[2]
    else:
        reason = str(lr)
    return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason


def _note_skip(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        _skips.append((report.nodeid, reason, skip_allowed(f"{report.nodeid}: {reason}")))


def pytest_runtest_logreport(report):
    _note_skip(report)


def pytest_collectreport(report):
    _note_skip(report)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _skips:
        return
    tr = terminalreporter
    tr.write_sep("=", f"{len(_skips)} skipped (PARLEY_ALLOW_SKIPS={ALLOW_SKIPS!r})")
    for nodeid, reason, allowed in _skips:
        tr.write_line(f"{'ALLOWED SKIP' if allowed else 'UNEXPECTED SKIP'} {nodeid}: {reason}")
    if any(not allowed for _, _, allowed in _skips):
        tr.write_line("An unexpected skip fails the run: make the test run here, or allow its reason "
                      "with PARLEY_ALLOW_SKIPS (a regular expression; see Tests/interop/README.md).")


def pytest_sessionfinish(session, exitstatus):
    if any(not allowed for _, _, allowed in _skips) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
