"""TLS listeners (`listen_tls` / `--mqtts`) with real peers: mosquitto_pub/sub,
paho-mqtt, `openssl s_client` and Python's `ssl` module.

Certificates are made at test time with the `openssl` CLI in a temporary
directory that is deleted afterwards (no key ever lands in the repository):
CA A with a server certificate (CN=localhost, SAN IP:127.0.0.1 + DNS:localhost),
alice's client certificate, an expired client certificate and a second server
certificate for the SIGHUP test; a rogue CA that signs another "alice"; CA B
with its own server certificate.
"""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

import raw as r
from conftest import BIN, wait_until
from pahoclient import PahoClient
from raw import Closed, RawClient
from test_mosquitto_clients import Sub, mpub

HOST = "127.0.0.1"


# --- certificates -------------------------------------------------------------------

class Certs:
    """Paths of the generated PEM files (attributes: ca_a, server_a_crt, ...)."""


def _openssl(cwd, *args):
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{out.stderr.decode(errors='replace')}")
    return out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")


def _key(d, name):
    _openssl(d, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name + ".key")
    return os.path.join(d, name + ".key")


def _ca(d, name, cn):
    _key(d, name)
    _openssl(d, "req", "-x509", "-new", "-key", name + ".key", "-out", name + ".crt", "-days", "30",
             "-subj", "/CN=" + cn)
    return os.path.join(d, name + ".crt")


SERVER_EXT = "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
CLIENT_EXT = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"


def _leaf(d, name, cn, ca, ext, serial):
    """A certificate signed by `ca` (a name made by _ca), valid from now for 30 days."""
    _key(d, name)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write(ext)
    _openssl(d, "req", "-new", "-key", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn)
    _openssl(d, "x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
             "-set_serial", str(serial), "-days", "30", "-out", name + ".crt", "-extfile", name + ".ext")
    return os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")


def _expired_leaf(d, name, cn, ca, serial):
    """Valid 2020-01-01 .. 2020-01-02: `openssl ca -startdate/-enddate` (OpenSSL 3.0's x509
    has no not-before/not-after options)."""
    _key(d, name)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write(CLIENT_EXT)
    _openssl(d, "req", "-new", "-key", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn)
    db = os.path.join(d, "cadb")
    os.makedirs(db, exist_ok=True)
    open(os.path.join(db, "index.txt"), "w").close()
    with open(os.path.join(db, "serial"), "w") as f:
        f.write("%04X\n" % serial)
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = testca\n[testca]\ndatabase = cadb/index.txt\nnew_certs_dir = cadb\n"
                "serial = cadb/serial\ndefault_md = sha256\npolicy = anything\nunique_subject = no\n"
                "[anything]\ncommonName = supplied\n")
    _openssl(d, "ca", "-batch", "-config", "ca.cnf", "-cert", ca + ".crt", "-keyfile", ca + ".key",
             "-in", name + ".csr", "-out", name + ".crt", "-notext", "-extfile", name + ".ext",
             "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")
    return os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="parley-tls-certs-")
    os.chmod(d, 0o700)
    try:
        c = Certs()
        c.dir = d
        c.ca_a = _ca(d, "ca_a", "Parley Test CA A")
        c.ca_b = _ca(d, "ca_b", "Parley Test CA B")
        c.ca_rogue = _ca(d, "ca_rogue", "Rogue CA")
        c.server_a_crt, c.server_a_key = _leaf(d, "server_a", "localhost", "ca_a", SERVER_EXT, 101)
        c.server_b_crt, c.server_b_key = _leaf(d, "server_b", "localhost", "ca_b", SERVER_EXT, 201)
        c.alice_crt, c.alice_key = _leaf(d, "alice", "alice", "ca_a", CLIENT_EXT, 102)
        c.bob_crt, c.bob_key = _leaf(d, "bob", "bob", "ca_a", CLIENT_EXT, 103)
        c.rogue_alice_crt, c.rogue_alice_key = _leaf(d, "rogue_alice", "alice", "ca_rogue", CLIENT_EXT, 301)
        c.expired_crt, c.expired_key = _expired_leaf(d, "expired_alice", "alice", "ca_a", 0x104)
        c.not_pem = os.path.join(d, "not_pem.crt")
        with open(c.not_pem, "w") as f:
            f.write("this is not a certificate\n")
        # The fixtures are what the tests think they are.
        assert "certificate has expired" in subprocess.run(
            ["openssl", "verify", "-CAfile", c.ca_a, c.expired_crt], capture_output=True, text=True).stdout \
            + subprocess.run(["openssl", "verify", "-CAfile", c.ca_a, c.expired_crt],
                             capture_output=True, text=True).stderr
        for ca, crt in [(c.ca_a, c.server_a_crt), (c.ca_a, c.alice_crt), (c.ca_b, c.server_b_crt),
                        (c.ca_rogue, c.rogue_alice_crt)]:
            _openssl(d, "verify", "-CAfile", ca, crt)
        out = subprocess.run(["openssl", "verify", "-CAfile", c.ca_a, c.rogue_alice_crt], capture_output=True)
        assert out.returncode != 0
        yield c
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --- helpers ------------------------------------------------------------------------

def tls_config(certs, extra="", cert=None, key=None):
    return (f"listen_tls = 127.0.0.1:0\n"
            f"tls_cert = {cert or certs.server_a_crt}\n"
            f"tls_key = {key or certs.server_a_key}\n" + extra)


MTLS = "tls_ca = {ca}\ntls_require_client_certificate = true\n"


def client_ctx(ca=None, cert=None, key=None, max_version=None, min_version=None):
    """A client context that verifies the server against `ca` (host name 127.0.0.1)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        ctx.load_verify_locations(ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    if max_version:
        ctx.maximum_version = max_version
    if min_version:
        ctx.minimum_version = min_version
    return ctx


class TLSRawClient(RawClient):
    """raw.py's client over TLS; a TLS error while reading counts as the connection closing
    (kept in `tls_error`)."""

    def __init__(self, port, ctx, version=5, timeout=3.0):
        self.version = version
        self.buf = bytearray()
        self.eof = False
        self.tls_error = None
        sock = socket.create_connection((HOST, port), timeout=timeout)
        try:
            self.sock = ctx.wrap_socket(sock, server_hostname=HOST)
        except BaseException:
            sock.close()
            raise

    def _fill(self, deadline):
        try:
            return super()._fill(deadline)
        except ssl.SSLError as e:
            self.tls_error = e
            self.eof = True
            return False

    def send(self, data):
        self.sock.sendall(data)


def try_mqtt_over_tls(port, ctx, version=4, client_id="", timeout=3.0):
    """('ok', CONNACK) | ('connack', CONNACK) for a refusing CONNACK |
    ('refused', why) when the TLS handshake fails or the broker closes without a CONNACK."""
    try:
        c = TLSRawClient(port, ctx, version=version, timeout=timeout)
    except (ssl.SSLError, ConnectionError, OSError) as e:
        return "refused", f"handshake: {e!r}"
    try:
        try:
            c.send(r.connect(client_id, version=version))
            p = c.read(timeout)
        except (ssl.SSLError, ConnectionError) as e:
            return "refused", f"after handshake: {e!r}"
        except Closed:
            return "refused", f"closed without CONNACK: {c.tls_error!r}"
        if p.type != r.CONNACK:
            return "refused", f"unexpected first packet {p}"
        return ("ok" if p.reason == 0 else "connack"), p
    finally:
        c.close()


def paho_tls(paho, port, ca, cert=None, key=None, version=5, client_id="", **kw):
    c = paho(port, client_id=client_id, version=version, **kw)
    c.c.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
    return c


def assert_serving(b, certs, topic, cert=None, key=None):
    """The broker still serves both a new TLS client and a new plain MQTT client."""
    assert b.alive, "broker died:\n" + "\n".join(b.log()[-20:])
    ctx = client_ctx(certs.ca_a, cert, key)
    state, p = try_mqtt_over_tls(b.tls_port, ctx)
    assert state == "ok", p
    plain = RawClient(b.port, version=4)
    try:
        assert plain.connect("", version=4).reason == 0
    finally:
        plain.close()


def wait_log(b, pattern, timeout=5.0, after=0):
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        lines = b.log()[after:]
        for line in lines:
            if rx.search(line):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line matching {pattern!r} within {timeout}s:\n" + "\n".join(b.log()[-15:]))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_until_eof(sock, timeout):
    """Bytes the peer sent until it closed; raises AssertionError if still open at `timeout`."""
    deadline = time.monotonic() + timeout
    got = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"connection still open after {timeout}s (got {got[:40]!r})")
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, ssl.SSLError):
            return got
        if not data:
            return got
        got += data


@pytest.fixture
def tls_broker(start_broker, certs):
    """A broker with a TLS listener on CA A's server certificate (plus the plain listener)."""
    return start_broker(tls_config(certs), tls=True)


# --- mosquitto_pub / mosquitto_sub ---------------------------------------------------

@pytest.mark.parametrize("version", [4, 5])
def test_mosquitto_pub_sub_over_tls_with_cafile(tls_broker, certs, topic, version):
    b = tls_broker
    sub = Sub(b.tls_port, ["--cafile", certs.ca_a, "-t", topic, "-q", "1"], version, count=2)
    try:
        mpub(b.tls_port, version, "--cafile", certs.ca_a, "-t", topic, "-m", "over-tls", "-q", "1")
        mpub(b.tls_port, version, "--cafile", certs.ca_a, "-t", topic, "-m", "x" * 40000, "-q", "0")
        out = sub.output()
    finally:
        sub.kill()
    assert out == ["over-tls", "x" * 40000]


def test_mosquitto_pub_refuses_server_from_other_ca(tls_broker, certs, topic):
    """The client really verifies: trusting only CA B, mosquitto_pub fails against CA A's certificate."""
    out = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(tls_broker.tls_port), "--cafile", certs.ca_b,
                          "-t", topic, "-m", "x"], capture_output=True, timeout=10)
    assert out.returncode != 0, out


# --- paho-mqtt ------------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5])
def test_paho_over_tls_pub_sub_all_qos(tls_broker, paho, certs, topic, cid, version):
    b = tls_broker
    sub = paho_tls(paho, b.tls_port, certs.ca_a, version=version, client_id=cid("sub"))
    sub.connect()
    sub.subscribe(topic + "/#", 2)
    pub = paho_tls(paho, b.tls_port, certs.ca_a, version=version, client_id=cid("pub"))
    pub.connect()
    for qos in (0, 1, 2):
        rc = pub.publish(f"{topic}/q{qos}", f"m{qos}".encode(), qos)
        if version == 5 and qos:
            assert rc == 0
    got = sub.collect(3)
    assert sorted((m.topic, m.payload, m.qos) for m in got) == [
        (f"{topic}/q{q}", f"m{q}".encode(), q) for q in (0, 1, 2)]
    # A plain-TCP publisher reaches the TLS subscriber too.
    plain = paho(b.port, version=version, client_id=cid("plain"))
    plain.connect()
    plain.publish(topic + "/plain", b"from-tcp", 1)
    assert sub.get().payload == b"from-tcp"


def test_paho_over_tls_large_payloads_and_bursts(start_broker, paho, certs, topic, cid):
    """Messages far larger than one TLS record (16 KiB), and a burst of many small ones, arrive intact."""
    b = start_broker(tls_config(certs, "max_packet_size = 4M\n"), tls=True)
    sub = paho_tls(paho, b.tls_port, certs.ca_a, client_id=cid("sub"))
    sub.connect()
    sub.subscribe(topic + "/#", 1)
    pub = paho_tls(paho, b.tls_port, certs.ca_a, client_id=cid("pub"))
    pub.connect()
    big = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB
    assert pub.publish(topic + "/big", big, 1, timeout=15) == 0
    m = sub.get(15)
    assert m.payload == big
    for i in range(300):
        pub.publish(f"{topic}/n", str(i).encode(), 1, wait=False)
    got = sub.collect(300, timeout=20)
    assert [int(m.payload) for m in got] == list(range(300))


def test_paho_over_tls_publishes_while_receiving(tls_broker, paho, certs, topic, cid):
    """Two TLS clients that publish QoS 1 while they receive and acknowledge each other's
    QoS 1 stream: every message arrives once, in order, and the broker logs no TLS error.
    (The test client once wrote from two threads on one TLS connection, which corrupts
    records; this keeps the harness honest as well as the broker.)"""
    b = tls_broker
    a = paho_tls(paho, b.tls_port, certs.ca_a, client_id=cid("a"))
    z = paho_tls(paho, b.tls_port, certs.ca_a, client_id=cid("z"))
    for c, other in ((a, "z"), (z, "a")):
        c.connect()
        c.subscribe(f"{topic}/{other}", 1)
    n = 400
    for i in range(n):
        a.publish(f"{topic}/a", b"a%d" % i, 1, wait=False)
        z.publish(f"{topic}/z", b"z%d" % i, 1, wait=False)
    got_z = z.collect(n, timeout=30)
    got_a = a.collect(n, timeout=30)
    assert [m.payload for m in got_z] == [b"a%d" % i for i in range(n)]
    assert [m.payload for m in got_a] == [b"z%d" % i for i in range(n)]
    assert a.connected and z.connected
    errors = [l for l in b.log() if "event=client.closed" in l and "tls" in l]
    assert not errors, errors


def test_several_plain_and_tls_listeners(start_broker, paho, certs, topic, cid):
    """Two plain and two TLS listeners at once (a second --mqtt, two listen_tls lines): one
    broker behind all four, a message published on one reaches subscribers on the others."""
    b = start_broker("listen_tls = 127.0.0.1:0\n" + tls_config(certs), tls=True,
                     extra_args=["--mqtt", "127.0.0.1:0"])
    wait_log(b, r"event=broker\.started")
    opened = [re.search(r"address=127\.0\.0\.1:(\d+) protocol=(mqtts?)\b", l) for l in b.log()
              if "event=listener.open" in l]
    plain = sorted({int(m.group(1)) for m in opened if m and m.group(2) == "mqtt"})
    tls = sorted({int(m.group(1)) for m in opened if m and m.group(2) == "mqtts"})
    assert len(plain) == 2 and len(tls) == 2, b.log()
    subs = []
    for i, port in enumerate(plain + tls):
        c = paho_tls(paho, port, certs.ca_a, client_id=cid(f"s{i}")) if port in tls else \
            paho(port, client_id=cid(f"s{i}"))
        c.connect()
        c.subscribe(topic, 1)
        subs.append(c)
    assert subs[0].publish(topic, b"one-broker", 1) == 0
    assert subs[3].publish(topic, b"from-tls", 1) == 0
    for c in subs:
        assert sorted(m.payload for m in c.collect(2)) == [b"from-tls", b"one-broker"]


def test_tls_clients_hashed_to_every_loop(start_broker, certs, topic):
    """CONNECT hands a TLS session to the loop its client id hashes to: clients whose ids
    live on each loop work, also when CONNECT and SUBSCRIBE arrive as two records in one burst."""
    b = start_broker(tls_config(certs), tls=True, loops=2)

    def home(cid):
        h = 0xcbf29ce484222325
        for ch in cid.encode():
            h ^= ch
            h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        return h % 2

    ids, n = [], 0
    while len(ids) < 8:
        cid = f"loop-{n}"
        n += 1
        if home(cid) == len(ids) % 2:
            ids.append(cid)
    clients = []
    try:
        for cid in ids:
            c = TLSRawClient(b.tls_port, client_ctx(certs.ca_a), version=4)
            clients.append(c)
            c.send(r.connect(cid, version=4))
            c.send(r.subscribe(1, [(f"{topic}/{cid}", 1)], version=4))  # a second TLS record, no wait
            p = c.read()
            assert p.type == r.CONNACK and p.reason == 0, (cid, p)
            p = c.read()
            assert p.type == r.SUBACK and p.reasons == [1], (cid, p)
        pub = TLSRawClient(b.tls_port, client_ctx(certs.ca_a), version=4)
        clients.append(pub)
        pub.connect("loop-pub", version=4)
        for cid in ids:
            pub.publish(f"{topic}/{cid}", cid.encode(), qos=0, version=4)
        for c, cid in zip(clients, ids):
            p = c.read_type(r.PUBLISH)
            assert p.payload == cid.encode()
    finally:
        for c in clients:
            c.close()


def test_tls_slow_reader_stream_stays_intact(start_broker, certs, topic):
    """A TLS subscriber that stops reading (partial SSL_write, retried writes) later reads a
    well-formed stream: every message decodes, none is corrupted, QoS 1 ones are all there."""
    b = start_broker(tls_config(certs, "slow_consumer_bytes = 256K\n"), tls=True)
    slow = TLSRawClient(b.tls_port, client_ctx(certs.ca_a), version=4, timeout=10)
    pub = TLSRawClient(b.tls_port, client_ctx(certs.ca_a), version=4, timeout=10)
    try:
        slow.connect("slow-reader", version=4)
        assert slow.subscribe([(topic, 1)], version=4).reasons == [1]
        pub.connect("fast-writer", version=4)
        payload = lambda i: (b"%06d" % i) * 5000  # 30 kB
        n = 120  # ~3.6 MB, more than loopback socket buffers hold
        for i in range(n):
            pub.send(r.publish(topic, payload(i), qos=1, pid=(i % 60000) + 1, version=4))
            pub.read_type(r.PUBACK, timeout=10)
        time.sleep(0.5)  # not a wait for a condition: lets the broker's writes to `slow` back up
        got = []
        deadline = time.monotonic() + 30
        while len(got) < n and time.monotonic() < deadline:
            p = slow.read(timeout=10)
            if p.type == r.PUBLISH:
                i = int(p.payload[:6])
                assert p.payload == payload(i), f"message {i} corrupted"
                got.append(i)
                slow.send(r.ack(r.PUBACK, p.pid, version=4))
        assert got == list(range(n)), f"{len(got)} messages, first gaps: {sorted(set(range(n)) - set(got))[:10]}"
    finally:
        slow.close()
        pub.close()


# --- client certificates --------------------------------------------------------------

TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3


@pytest.fixture
def mtls(start_broker, paho, certs, topic, cid):
    """tls_ca + tls_require_client_certificate; a connected, subscribed witness client (alice)."""
    b = start_broker(tls_config(certs, MTLS.format(ca=certs.ca_a)), tls=True)
    witness = paho_tls(paho, b.tls_port, certs.ca_a, certs.alice_crt, certs.alice_key, client_id=cid("witness"))
    witness.connect()
    witness.subscribe(topic, 1)
    return b, witness


def assert_witness_unaffected(b, paho, certs, witness, topic, cid):
    assert witness.connected
    pub = paho_tls(paho, b.tls_port, certs.ca_a, certs.alice_crt, certs.alice_key, client_id=cid("pub2"))
    pub.connect()
    assert pub.publish(topic, b"still-here", 1) == 0
    assert witness.get().payload == b"still-here"
    assert witness.publish(topic, b"witness-publishes", 1) == 0
    assert witness.get().payload == b"witness-publishes"


def test_required_client_certificate_alice_connects(mtls, paho, certs, topic, cid):
    b, witness = mtls
    for version in (4, 5):
        state, p = try_mqtt_over_tls(b.tls_port, client_ctx(certs.ca_a, certs.alice_crt, certs.alice_key),
                                     version=version)
        assert state == "ok", p
    # mosquitto_pub with --cert/--key too
    mpub(b.tls_port, 5, "--cafile", certs.ca_a, "--cert", certs.alice_crt, "--key", certs.alice_key,
         "-t", topic, "-m", "mosquitto-with-cert", "-q", "1")
    assert witness.get().payload == b"mosquitto-with-cert"
    assert_witness_unaffected(b, paho, certs, witness, topic, cid)


@pytest.mark.parametrize("tls_version", [TLS12, TLS13], ids=["TLSv1.2", "TLSv1.3"])
@pytest.mark.parametrize("case", ["no-certificate", "expired", "untrusted-ca"])
def test_required_client_certificate_refuses(mtls, paho, certs, topic, cid, case, tls_version):
    """Without a certificate, with an expired one, or with one from a CA that tls_ca does not
    hold, the TLS handshake fails (no CONNACK); the connected witness keeps working."""
    b, witness = mtls
    cert, key = {"no-certificate": (None, None), "expired": (certs.expired_crt, certs.expired_key),
                 "untrusted-ca": (certs.rogue_alice_crt, certs.rogue_alice_key)}[case]
    ctx = client_ctx(certs.ca_a, cert, key, max_version=tls_version)
    state, why = try_mqtt_over_tls(b.tls_port, ctx)
    assert state == "refused", f"{case}: expected a failed handshake, got {state} {why}"
    # The broker says why with the right alert (in TLS 1.3 it comes after the client's
    # Finished, so a client that already sent CONNECT may see a reset instead: ask s_client).
    alert = {"no-certificate": ("sslv3 alert handshake failure", "tlsv13 alert certificate required"),
             "expired": ("sslv3 alert certificate expired",) * 2,
             "untrusted-ca": ("tlsv1 alert unknown ca",) * 2}[case][tls_version == TLS13]
    args = ["-tls1_3" if tls_version == TLS13 else "-tls1_2"]
    if cert:
        args += ["-cert", cert, "-key", key]
    rc, text = s_client(b.tls_port, *args, ca=certs.ca_a, hold=0.5)
    assert alert in text, f"expected {alert!r}:\n{text}"
    # paho gets no CONNACK either
    c = PahoClient(b.tls_port, client_id=cid("paho-" + case), version=5)
    try:
        c.c.tls_set_context(client_ctx(certs.ca_a, cert, key, max_version=tls_version))
        try:
            ca = c.connect(timeout=2.0, expect_rc=None)
        except (ssl.SSLError, ConnectionError, AssertionError):
            pass
        else:
            pytest.fail(f"{case}: paho got CONNACK {ca}")
    finally:
        c.close()
    reason = {"no-certificate": "peer did not return a certificate",
              "expired": "certificate verify failed", "untrusted-ca": "certificate verify failed"}[case]
    wait_log(b, r"event=tls\.handshake_failed peer=127\.0\.0\.1:\d+ error=.*" + reason)
    assert_witness_unaffected(b, paho, certs, witness, topic, cid)


def test_optional_client_certificate_with_tls_ca(start_broker, certs):
    """tls_ca without tls_require_client_certificate: no certificate is fine, a presented
    certificate is verified (untrusted or expired is refused)."""
    b = start_broker(tls_config(certs, f"tls_ca = {certs.ca_a}\n"), tls=True)
    assert try_mqtt_over_tls(b.tls_port, client_ctx(certs.ca_a))[0] == "ok"
    assert try_mqtt_over_tls(b.tls_port, client_ctx(certs.ca_a, certs.alice_crt, certs.alice_key))[0] == "ok"
    for cert, key in [(certs.rogue_alice_crt, certs.rogue_alice_key), (certs.expired_crt, certs.expired_key)]:
        state, why = try_mqtt_over_tls(b.tls_port, client_ctx(certs.ca_a, cert, key))
        assert state == "refused", (cert, state, why)


# --- identity as user name + ACL ------------------------------------------------------

IDENTITY_ACL = ("tls_ca = {ca}\ntls_use_identity_as_username = true\n"
                "acl = allow readwrite alice users/alice/#\nacl_default = deny\n")


@pytest.mark.parametrize("claimed", [None, "bob"], ids=["no-username", "claims-bob"])
def test_identity_as_username_with_acl(start_broker, paho, certs, cid, claimed):
    """tls_use_identity_as_username: alice's certificate makes her 'alice' for the ACL (a user
    name in CONNECT does not change that): users/alice/x is delivered, users/bob/x gets 0x87."""
    b = start_broker(tls_config(certs, IDENTITY_ACL.format(ca=certs.ca_a)), tls=True)
    sub = paho_tls(paho, b.tls_port, certs.ca_a, certs.alice_crt, certs.alice_key, client_id=cid("sub"))
    sub.connect()
    assert sub.subscribe("users/alice/#", 1) == [1]
    pub = paho_tls(paho, b.tls_port, certs.ca_a, certs.alice_crt, certs.alice_key, client_id=cid("pub"))
    if claimed:
        pub.c.username_pw_set(claimed, "irrelevant")
    pub.connect()
    assert pub.publish("users/alice/x", b"mine", 1) == 0
    m = sub.get()
    assert (m.topic, m.payload) == ("users/alice/x", b"mine")
    assert pub.publish("users/bob/x", b"not mine", 1) == 0x87
    assert pub.publish("elsewhere", b"nope", 1) == 0x87
    sub.expect_no_message(0.3)
    # bob's certificate (same CA) gets no rights
    bob = paho_tls(paho, b.tls_port, certs.ca_a, certs.bob_crt, certs.bob_key, client_id=cid("bob"))
    bob.connect()
    assert bob.publish("users/alice/x", b"bob", 1) == 0x87
    assert bob.subscribe("users/alice/#", 1) == [0x87]


def test_identity_as_username_refuses_client_without_certificate(start_broker, certs):
    b = start_broker(tls_config(certs, IDENTITY_ACL.format(ca=certs.ca_a)), tls=True)
    state, why = try_mqtt_over_tls(b.tls_port, client_ctx(certs.ca_a), version=5)
    assert state in ("refused", "connack"), why
    if state == "connack":
        assert why.reason == 0x87


# --- protocol versions and ciphers (openssl s_client) ---------------------------------

def s_client(port, *args, ca=None, hold=0.0):
    """(exit code, output) of `openssl s_client`; `hold` keeps it connected that long (to see a
    TLS 1.3 alert that comes after the client's Finished)."""
    cmd = ["openssl", "s_client", "-connect", f"{HOST}:{port}", *args]
    if ca:
        cmd += ["-CAfile", ca, "-verify_return_error", "-verify_ip", HOST]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        if hold:
            time.sleep(hold)
        out, _ = p.communicate(b"", timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    return p.returncode, out.decode(errors="replace")


def negotiated(text):
    m = re.search(r"^New, (\S+), Cipher is (\S+)", text, re.M)
    return (m.group(1), m.group(2)) if m else (None, None)


def test_tls13_key_update_requested_by_client(tls_broker, paho, certs, topic, cid):
    """`openssl s_client`'s K command sends a TLS 1.3 KeyUpdate that asks the broker to update
    its keys too (a post-handshake message that SSL_read must answer): the broker answers with
    its own KeyUpdate and the MQTT session goes on with the new keys."""
    b = tls_broker
    cmd = ["openssl", "s_client", "-connect", f"{HOST}:{b.tls_port}", "-tls1_3", "-msg",
           "-CAfile", certs.ca_a, "-verify_return_error", "-verify_ip", HOST]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = bytearray()
    lock = threading.Lock()

    def reader():
        for chunk in iter(lambda: p.stdout.read1(65536), b""):
            with lock:
                out.extend(chunk)

    def wait_for(needle, timeout=10.0, start=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with lock:
                at = out.find(needle, start)
            if at >= 0:
                return at
            time.sleep(0.02)
        with lock:
            raise AssertionError(f"{needle!r} not seen:\n{bytes(out).decode(errors='replace')[-3000:]}")

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        wait_for(b"Verify return code: 0 (ok)")
        # One stdin read is one command or one block of data: each block is answered (its
        # CONNACK / SUBACK bytes on stdout) before the next is written.
        p.stdin.write(r.connect("keyupdate-" + cid("k"), version=4)); p.stdin.flush()
        at = wait_for(b"\x20\x02\x00\x00")  # CONNACK, accepted
        p.stdin.write(r.subscribe(1, [(topic, 0)], version=4)); p.stdin.flush()
        wait_for(b"\x90\x03\x00\x01\x00", start=at)  # SUBACK id 1, QoS 0
        with lock:
            mark = len(out)
        p.stdin.write(b"K\n"); p.stdin.flush()
        sent = wait_for(b">>> TLS 1.3, Handshake [length 0005], KeyUpdate", start=mark)
        pub = paho(b.port, client_id=cid("pub"))
        pub.connect()
        marker = b"after-key-update-" + os.urandom(4).hex().encode()
        pub.publish(topic, marker, 1)
        # RFC 8446 4.6.3: the broker's own KeyUpdate comes before its next application data.
        answered = wait_for(b"<<< TLS 1.3, Handshake [length 0005], KeyUpdate", start=sent)
        assert wait_for(marker, start=mark) > answered
        p.stdin.write(b"Q\n"); p.stdin.flush()  # close_notify, then exit
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        t.join(2)
    assert not [l for l in b.log() if "event=client.closed" in l and "tls" in l and "error" in l]


def test_tls12_renegotiation_refused(tls_broker, certs):
    """A TLS 1.2 client that asks to renegotiate (`s_client`'s R command) is refused with a
    no_renegotiation alert (renegotiation costs the server a handshake for free); the broker
    goes on serving everyone else."""
    b = tls_broker
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"{HOST}:{b.tls_port}", "-tls1_2", "-msg",
                          "-CAfile", certs.ca_a, "-verify_ip", HOST],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = bytearray()
    lock = threading.Lock()

    def reader():
        for chunk in iter(lambda: p.stdout.read1(65536), b""):
            with lock:
                out.extend(chunk)

    def wait_for(needle, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with lock:
                if needle in out:
                    return
            time.sleep(0.02)
        with lock:
            raise AssertionError(f"{needle!r} not seen:\n{bytes(out).decode(errors='replace')[-3000:]}")

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        wait_for(b"Verify return code: 0 (ok)")  # the handshake is done
        p.stdin.write(r.connect("renegotiate", version=4)); p.stdin.flush()
        wait_for(b"\x20\x02\x00\x00")  # CONNACK: the CONNECT was read on its own
        p.stdin.write(b"R\n"); p.stdin.flush()
        p.stdin.close()
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        t.join(2)
    with lock:
        text = bytes(out).decode(errors="replace")
    assert "RENEGOTIATING" in text, text
    # Alert level 1 (warning), description 100 (no_renegotiation), from the broker.
    assert re.search(r"<<< TLS 1.2, Alert \[length 0002\], warning no_renegotiation", text), text[-3000:]
    assert_serving(b, certs, "x")


@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
def test_openssl_s_client_old_protocols_refused(tls_broker, flag):
    """The client offers TLS 1.0 / 1.1 (security level 0 so OpenSSL 3 will); the broker answers
    with a protocol_version alert."""
    rc, text = s_client(tls_broker.tls_port, flag, "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc != 0, text
    assert "alert protocol version" in text, text
    assert negotiated(text) == ("(NONE)", "(NONE)"), text
    wait_log(tls_broker, r"event=tls\.handshake_failed peer=127\.0\.0\.1:\d+ error=.*unsupported protocol")


@pytest.mark.parametrize("flag,proto", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_openssl_s_client_tls12_and_tls13_negotiated(tls_broker, certs, flag, proto):
    rc, text = s_client(tls_broker.tls_port, flag, ca=certs.ca_a)
    assert rc == 0, text
    assert negotiated(text)[0] == proto, text
    assert "Verify return code: 0 (ok)" in text, text
    assert re.search(r"subject=CN ?= ?localhost", text), text


def test_tls_min_version_1_3_refuses_tls12(start_broker, certs):
    b = start_broker(tls_config(certs, "tls_min_version = 1.3\n"), tls=True)
    rc, text = s_client(b.tls_port, "-tls1_2", ca=certs.ca_a)
    assert rc != 0, text
    assert "alert protocol version" in text, text
    rc, text = s_client(b.tls_port, "-tls1_3", ca=certs.ca_a)
    assert rc == 0, text
    assert negotiated(text)[0] == "TLSv1.3", text
    # Python's ssl capped at 1.2: refused as well
    state, why = try_mqtt_over_tls(b.tls_port, client_ctx(certs.ca_a, max_version=TLS12))
    assert state == "refused", why


def test_tls_ciphers_limit_tls12_suites(start_broker, certs):
    b = start_broker(tls_config(certs, "tls_ciphers = ECDHE+CHACHA20\n"), tls=True)
    rc, text = s_client(b.tls_port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", ca=certs.ca_a)
    assert rc != 0, text
    rc, text = s_client(b.tls_port, "-tls1_2", ca=certs.ca_a)
    assert rc == 0, text
    assert negotiated(text) == ("TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305"), text


# --- misbehaving peers on the TLS port ------------------------------------------------

def test_plaintext_mqtt_client_on_tls_port_is_closed(tls_broker, certs, topic):
    b = tls_broker
    s = socket.create_connection((HOST, b.tls_port), timeout=3)
    try:
        s.sendall(r.connect("plain-on-tls", version=4))
        got = read_until_eof(s, 3.0)
    finally:
        s.close()
    assert not got.startswith(b"\x20"), f"a CONNACK in plain text: {got!r}"
    assert got == b"" or got[0] == 0x15, f"expected nothing or a TLS alert, got {got[:20]!r}"
    # mosquitto_pub without TLS options on the TLS port fails too
    out = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(b.tls_port), "-t", topic, "-m", "x", "-q", "1"],
                         capture_output=True, timeout=10)
    assert out.returncode != 0, out
    wait_log(b, r"event=tls\.handshake_failed peer=127\.0\.0\.1:\d+ error=.*(wrong version number|http request)")
    assert_serving(b, certs, topic)


GARBAGE = {
    "random-bytes": os.urandom(300).replace(b"\x16", b"\x17"),
    "http-request": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "bad-handshake-record": b"\x16\x03\x01\x00\x08" + b"\x01\x00\x00\x04\xff\xff\xff\xff",
    "nul-bytes": b"\x00" * 64,
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_garbage_tls_handshake_is_closed(tls_broker, certs, topic, kind):
    b = tls_broker
    s = socket.create_connection((HOST, b.tls_port), timeout=3)
    try:
        s.sendall(GARBAGE[kind])
        read_until_eof(s, 3.0)
    finally:
        s.close()
    wait_log(b, r"event=tls\.handshake_failed peer=127\.0\.0\.1:\d+ error=")
    assert_serving(b, certs, topic)


def test_client_vanishing_mid_handshake(tls_broker, certs, topic):
    """A ClientHello, then a reset (and a half-close in a second try): closed, no busy loop."""
    b = tls_broker
    mark = len(b.log())
    for how in ("reset", "half-close"):
        ctx = client_ctx(certs.ca_a)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_hostname=HOST)
        with pytest.raises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = outgoing.read()
        s = socket.create_connection((HOST, b.tls_port), timeout=3)
        s.sendall(hello)
        s.settimeout(3)
        assert s.recv(5)[:1] == b"\x16"  # the ServerHello is on its way
        if how == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        else:
            s.shutdown(socket.SHUT_WR)
            read_until_eof(s, 3.0)
            s.close()
    # Half-close before any byte: closed at once.
    s = socket.create_connection((HOST, b.tls_port), timeout=3)
    s.shutdown(socket.SHUT_WR)
    read_until_eof(s, 2.0)
    s.close()
    # The broker has dealt with all three (one tls.handshake_failed line each) before the
    # idle CPU is measured.
    wait_until(lambda: sum("event=tls.handshake_failed" in l for l in b.log()[mark:]) >= 3, 5,
               "three tls.handshake_failed lines")
    before = cpu_seconds(b.proc.pid)
    time.sleep(1.0)
    used = cpu_seconds(b.proc.pid) - before
    assert used < 0.5, f"broker used {used:.2f}s CPU in 1s while idle (busy loop?)"
    assert_serving(b, certs, topic)


@pytest.mark.parametrize("stage", ["tcp-only", "partial-record", "after-handshake"])
def test_silent_client_on_tls_port_closed_after_connect_timeout(start_broker, paho, certs, topic, cid, stage):
    """connect_timeout = 2: a client that connects and then says nothing (before the handshake,
    mid-record, or after a full handshake without CONNECT) is closed after ~2 s; the broker
    does not spin meanwhile and a connected client keeps working."""
    b = start_broker(tls_config(certs, "connect_timeout = 2\n"), tls=True)
    other = paho_tls(paho, b.tls_port, certs.ca_a, client_id=cid("other"))
    other.connect()
    other.subscribe(topic, 1)
    if stage == "after-handshake":
        s = client_ctx(certs.ca_a).wrap_socket(socket.create_connection((HOST, b.tls_port), timeout=3),
                                               server_hostname=HOST)
    else:
        s = socket.create_connection((HOST, b.tls_port), timeout=3)
        if stage == "partial-record":
            s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01")  # a 512-byte record, 3 bytes of it
    start = time.monotonic()
    cpu0 = cpu_seconds(b.proc.pid)
    try:
        s.settimeout(1.5)  # well inside connect_timeout: nothing, and still open
        try:
            data = s.recv(1)
            raise AssertionError(f"closed or answered before connect_timeout: {data!r}")
        except socket.timeout:
            pass
        read_until_eof(s, 6.0)
    finally:
        s.close()
    took = time.monotonic() - start
    cpu = cpu_seconds(b.proc.pid) - cpu0
    assert cpu < took * 0.5, f"broker used {cpu:.2f}s CPU while waiting {took:.2f}s (busy loop?)"
    wait_log(b, r"event=client\.connect_timeout")
    assert other.publish(topic, b"alive", 1) == 0
    assert other.get().payload == b"alive"


# --- errors at start ------------------------------------------------------------------

def run_parley(args, timeout=8.0, as_nobody=False):
    """(exit code, stderr, seconds); fails if the process is still running at `timeout`.
    `as_nobody`: run as the unprivileged user nobody (the test runs as root)."""
    start = time.monotonic()
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] if as_nobody else []
    p = subprocess.Popen([*prefix, BIN, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=5)
        pytest.fail(f"parley {' '.join(args)} still running after {timeout}s; stderr:\n{err.decode()}")
    return p.returncode, err.decode(errors="replace") + out.decode(errors="replace"), time.monotonic() - start


def start_error_cases(certs, d):
    """name -> (config text, [strings the error must contain]); CONFIG stands for the config path."""
    missing = os.path.join(d, "missing.crt")
    return {
        "missing-cert-file": (tls_config(certs, cert=missing), [missing, "certificate"]),
        "cert-not-pem": (tls_config(certs, cert=certs.not_pem), [certs.not_pem, "PEM"]),
        "key-not-matching-cert": (tls_config(certs, key=certs.alice_key),
                                  [certs.alice_key, certs.server_a_crt, "does not match"]),
        "listen_tls-without-tls_cert": ("listen_tls = 127.0.0.1:0\n", ["CONFIG", "tls_cert"]),
        "tls_cert-without-tls_key": (f"listen_tls = 127.0.0.1:0\ntls_cert = {certs.server_a_crt}\n",
                                     ["CONFIG", "tls_key"]),
        "require-client-certificate-without-tls_ca": (
            tls_config(certs, "tls_require_client_certificate = true\n"), ["CONFIG", "tls_ca"]),
        "missing-tls_ca-file": (tls_config(certs, MTLS.format(ca=os.path.join(d, "missing-ca.crt"))),
                                [os.path.join(d, "missing-ca.crt")]),
        "bad-tls_min_version": (tls_config(certs, "tls_min_version = 1.1\n"), ["CONFIG", "tls_min_version"]),
        "unreadable-key": (None, None),  # built in the test
    }


@pytest.mark.parametrize("command", ["serve", "check-config"])
@pytest.mark.parametrize("case", ["missing-cert-file", "cert-not-pem", "key-not-matching-cert",
                                  "listen_tls-without-tls_cert", "tls_cert-without-tls_key",
                                  "require-client-certificate-without-tls_ca", "missing-tls_ca-file",
                                  "bad-tls_min_version", "unreadable-key"])
def test_tls_start_error(certs, tmp_path, case, command):
    """Bad TLS settings: `serve` exits non-zero at once and `check-config` reports the same,
    naming the problem and the file."""
    d = str(tmp_path)
    config_text, expect = start_error_cases(certs, d)[case]
    as_nobody = False
    if case == "unreadable-key":
        # Root reads any file, so as root the broker runs as nobody: the certificate and
        # the config can be read, the key (mode 000) cannot.
        as_nobody = os.geteuid() == 0
        if as_nobody:
            d = tempfile.mkdtemp(prefix="parley-unreadable-")
            os.chmod(d, 0o755)
        cert = os.path.join(d, "server.crt")
        shutil.copy(certs.server_a_crt, cert)
        os.chmod(cert, 0o644)
        key = os.path.join(d, "locked.key")
        shutil.copy(certs.server_a_key, key)
        os.chmod(key, 0)
        config_text, expect = tls_config(certs, cert=cert, key=key), [key, "cannot read"]
    cfg = os.path.join(d, "parley.conf")
    with open(cfg, "w") as f:
        f.write(config_text)
    os.chmod(cfg, 0o644)
    if command == "serve":
        data = os.path.join(d, "data")
        if as_nobody:
            os.makedirs(data)
            os.chown(data, 65534, 65534)
        args = ["serve", "--plugins", "", "--mqtt", "127.0.0.1:0", "--data", data, "--loops", "1", "--config", cfg]
    else:
        args = ["check-config", "--config", cfg]
    try:
        rc, err, _ = run_parley(args, as_nobody=as_nobody)  # bounded: fails if still running
    finally:
        if as_nobody:
            shutil.rmtree(d, ignore_errors=True)
    assert rc != 0, f"exit 0; output:\n{err}"
    for want in expect:
        want = cfg if want == "CONFIG" else want
        assert want in err, f"{want!r} not in:\n{err}"
    assert "listener.open" not in err, err


@pytest.mark.parametrize("command", ["serve", "check-config"])
def test_tls_start_error_from_command_line(certs, tmp_path, command):
    """--mqtts without --cert/--key, and --cert naming a missing file."""
    d = str(tmp_path)
    base = ["serve", "--plugins", "", "--mqtt", "127.0.0.1:0", "--data", os.path.join(d, "data"), "--loops", "1"] \
        if command == "serve" else ["check-config"]
    rc, err, _ = run_parley(base + ["--mqtts", "127.0.0.1:0"])
    assert rc != 0 and "--cert" in err, err
    missing = os.path.join(d, "nope.crt")
    rc, err, _ = run_parley(base + ["--mqtts", "127.0.0.1:0", "--cert", missing, "--key", certs.server_a_key])
    assert rc != 0 and missing in err, err


def test_mqtts_command_line_listener(start_broker, paho, certs, topic, cid):
    """--mqtts 127.0.0.1:0 --cert --key without a config file."""
    b = start_broker(None, tls=True, extra_args=["--mqtts", "127.0.0.1:0", "--cert", certs.server_a_crt,
                                                 "--key", certs.server_a_key])
    c = paho_tls(paho, b.tls_port, certs.ca_a, client_id=cid("c"))
    c.connect()
    c.subscribe(topic, 1)
    assert c.publish(topic, b"cli", 1) == 0
    assert c.get().payload == b"cli"


# --- SIGHUP certificate reload --------------------------------------------------------

def _install(src_crt, src_key, dst_crt, dst_key):
    """Replace the files atomically (rename), as a certificate renewal tool would."""
    for src, dst in ((src_crt, dst_crt), (src_key, dst_key)):
        shutil.copy(src, dst + ".new")
        os.replace(dst + ".new", dst)


@pytest.mark.parametrize("source", ["config-file", "command-line"])
def test_sighup_reloads_certificate_for_new_connections(start_broker, paho, certs, tmp_path, topic, cid, source):
    live_crt, live_key = str(tmp_path / "live.crt"), str(tmp_path / "live.key")
    _install(certs.server_a_crt, certs.server_a_key, live_crt, live_key)
    if source == "config-file":
        b = start_broker(tls_config(certs, cert=live_crt, key=live_key), tls=True)
    else:
        b = start_broker(None, tls=True, extra_args=["--mqtts", "127.0.0.1:0", "--cert", live_crt,
                                                     "--key", live_key])
    old = paho_tls(paho, b.tls_port, certs.ca_a, client_id=cid("old"))
    old.connect()
    old.subscribe(topic, 1)
    _install(certs.server_b_crt, certs.server_b_key, live_crt, live_key)
    mark = len(b.log())
    b.proc.send_signal(signal.SIGHUP)
    wait_log(b, r"event=config\.reloaded", after=mark)
    # The connected client keeps its session and TLS connection.
    assert old.publish(topic, b"old-still-works", 1) == 0
    assert old.get().payload == b"old-still-works"
    # A new client trusting only CA B connects ...
    new = paho_tls(paho, b.tls_port, certs.ca_b, client_id=cid("new"))
    new.connect()
    assert new.publish(topic, b"from-new", 1) == 0
    assert old.get().payload == b"from-new"
    # ... and one trusting only CA A does not.
    state, why = try_mqtt_over_tls(b.tls_port, client_ctx(certs.ca_a))
    assert state == "refused" and "CERTIFICATE_VERIFY_FAILED" in why, (state, why)
    rc, text = s_client(b.tls_port, "-tls1_3", ca=certs.ca_b)
    assert rc == 0, text


def test_sighup_with_bad_new_key_keeps_old_certificate(start_broker, paho, certs, tmp_path, topic, cid):
    live_crt, live_key = str(tmp_path / "live.crt"), str(tmp_path / "live.key")
    _install(certs.server_a_crt, certs.server_a_key, live_crt, live_key)
    b = start_broker(tls_config(certs, cert=live_crt, key=live_key), tls=True)
    old = paho_tls(paho, b.tls_port, certs.ca_a, client_id=cid("old"))
    old.connect()
    old.subscribe(topic, 1)
    _install(certs.server_b_crt, certs.alice_key, live_crt, live_key)  # key does not match
    mark = len(b.log())
    b.proc.send_signal(signal.SIGHUP)
    line = wait_log(b, r"event=config\.reload_failed", after=mark)
    assert "does not match" in line, line
    assert b.alive
    state, why = try_mqtt_over_tls(b.tls_port, client_ctx(certs.ca_a))
    assert state == "ok", why
    assert old.publish(topic, b"fine", 1) == 0
    assert old.get().payload == b"fine"


# --- parley bench over TLS (the client side of the TLS layer) ---------------------------

@pytest.mark.parametrize("case", ["verified", "wrong-name", "other-ca"])
def test_bench_client_verifies_server_certificate(tls_broker, certs, case):
    """`parley bench --cafile` checks the chain and that the certificate names the --broker
    host (127.0.0.1, an IP SAN here) or --servername; a mismatch ends the run at once with
    the reason, instead of waiting out its set-up time."""
    b = tls_broker
    args = ["bench", "pairs", "--count", "2", "--seconds", "1", "--broker", f"{HOST}:{b.tls_port}", "--quiet",
            "--cafile", certs.ca_b if case == "other-ca" else certs.ca_a]
    if case == "wrong-name":
        args += ["--servername", "mqtt.example.com"]
    # A refused client ends the run at once: the bound (15 s) is below bench's set-up wait
    # (30 s), so a run that waited it out fails in run_parley instead of passing late.
    rc, out, _ = run_parley(args, timeout=20 if case == "verified" else 15)
    if case == "verified":
        assert rc == 0, out
        result = out.strip().splitlines()[-1]
        assert result.startswith("RESULT ") and " lost=0 " in result, out
    else:
        assert rc == 1, out
        assert "certificate verify failed" in out and "became ready" in out, out
