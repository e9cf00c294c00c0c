"""Debian's mosquitto_pub / mosquitto_sub (libmosquitto 2.0) against the broker,
for 3.1.1 and 5.0. Every subprocess has -W / timeouts."""

import subprocess
import threading
import time

import pytest

from pahoclient import prop, publish_props

VERSIONS = {3: "mqttv31", 4: "mqttv311", 5: "mqttv5"}


class Sub:
    """mosquitto_sub in the background; waits until its SUBACK (-d output) before returning."""

    def __init__(self, port, args, version, count=1, wait=6):
        cmd = ["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", VERSIONS[version], "-d",
               "-C", str(count), "-W", str(wait)] + args
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines = []
        self.subscribed = threading.Event()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        if not self.subscribed.wait(5):
            self.p.kill()
            raise AssertionError(f"mosquitto_sub did not subscribe: {self.lines}")

    def _read(self):
        for raw in self.p.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if "received SUBACK" in line:
                self.subscribed.set()

    def output(self, timeout=8):
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(2)
            raise AssertionError(f"mosquitto_sub did not finish: {self.lines}")
        self.t.join(2)
        return [l for l in self.lines if not l.startswith("Client ") and not l.startswith("Subscribed")]

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(2)


def mpub(port, version, *args, timeout=8):
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", VERSIONS[version]] + list(args)
    out = subprocess.run(cmd, capture_output=True, timeout=timeout)
    assert out.returncode == 0, out
    return out


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mosquitto_pub_to_mosquitto_sub_qos(broker, topic, version, qos):
    s = Sub(broker.port, ["-t", topic, "-q", str(qos), "-F", "%q %t %p"], version)
    try:
        mpub(broker.port, version, "-t", topic, "-q", str(qos), "-m", f"hello q{qos}")
        out = s.output()
    finally:
        s.kill()
    assert out == [f"{qos} {topic} hello q{qos}"], s.lines


@pytest.mark.parametrize("version", [4, 5])
def test_mosquitto_pub_to_paho_subscriber(broker, paho, topic, version):
    sub = paho(broker.port, version=version)
    sub.connect()
    sub.subscribe(topic, 2)
    mpub(broker.port, version, "-t", topic, "-q", "2", "-m", "from mosquitto")
    m = sub.get()
    assert m.payload == b"from mosquitto" and m.qos == 2


@pytest.mark.parametrize("version", [4, 5])
def test_paho_publisher_to_mosquitto_sub_wildcard(broker, paho, topic, version):
    s = Sub(broker.port, ["-t", topic + "/+/x", "-q", "1", "-F", "%t %p"], version, count=2)
    try:
        pub = paho(broker.port, version=version)
        pub.connect()
        pub.publish(topic + "/a/x", b"1", 1)
        pub.publish(topic + "/a/y", b"no", 1)
        pub.publish(topic + "/b/x", b"2", 1)
        out = s.output()
    finally:
        s.kill()
    assert out == [f"{topic}/a/x 1", f"{topic}/b/x 2"], s.lines


def test_mosquitto_pub_v5_user_property_and_content_type_to_paho(broker, paho, topic):
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(topic, 1)
    mpub(broker.port, 5, "-t", topic, "-q", "1", "-m", "props",
         "-D", "publish", "user-property", "key", "value",
         "-D", "publish", "content-type", "text/x-test",
         "-D", "publish", "correlation-data", "c0rr",
         "-D", "publish", "response-topic", topic + "/r")
    m = sub.get()
    assert prop(m.properties, "UserProperty") == [("key", "value")]
    assert prop(m.properties, "ContentType") == "text/x-test"
    assert prop(m.properties, "CorrelationData") == b"c0rr"
    assert prop(m.properties, "ResponseTopic") == topic + "/r"


def test_mosquitto_sub_v5_sees_paho_properties(broker, paho, topic):
    """mosquitto_sub -F %P prints user properties, %C content type, %R response topic."""
    s = Sub(broker.port, ["-t", topic, "-q", "1", "-F", "%C|%R|%P|%p"], 5)
    try:
        pub = paho(broker.port)
        pub.connect()
        pub.publish(topic, b"body", 1, properties=publish_props(
            ContentType="ct", ResponseTopic="rt/x", UserProperty=[("u", "v")]))
        out = s.output()
    finally:
        s.kill()
    assert out == ["ct|rt/x|u:v|body"], s.lines


@pytest.mark.parametrize("version", [4, 5])
def test_mosquitto_pub_retained_then_mosquitto_sub_gets_it(broker, topic, version):
    mpub(broker.port, version, "-t", topic, "-q", "1", "-r", "-m", "kept")
    out = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", VERSIONS[version],
                          "-t", topic, "-C", "1", "-W", "4", "-F", "%r %p"], capture_output=True, timeout=8)
    assert out.stdout.decode().strip() == "1 kept", out
    # clear it with an empty retained message (mosquitto_pub -n)
    mpub(broker.port, version, "-t", topic, "-r", "-n")
    out = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", VERSIONS[version],
                          "-t", topic, "-C", "1", "-W", "1"], capture_output=True, timeout=6)
    assert out.stdout == b"", out


@pytest.mark.parametrize("version", [4, 5])
def test_mosquitto_sub_persistent_session_gets_offline_messages(broker, paho, topic, cid, version):
    """mosquitto_sub -c (clean session 0 / v5 session expiry) receives what was published while away."""
    client_id = cid("mosq")
    extra = ["-x", "60"] if version == 5 else []
    first = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", VERSIONS[version],
                            "-c", "-i", client_id, "-q", "1", "-t", topic, "-W", "1"] + extra,
                           capture_output=True, timeout=6)
    assert first.stdout == b""
    pub = paho(broker.port, version=version)
    pub.connect()
    for i in range(3):
        pub.publish(topic, f"off{i}".encode(), 1)
    out = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", VERSIONS[version],
                          "-c", "-i", client_id, "-q", "1", "-t", topic, "-C", "3", "-W", "4"] + extra,
                         capture_output=True, timeout=8)
    assert out.stdout.decode().split() == ["off0", "off1", "off2"], out


def test_mosquitto_sub_will_on_kill(broker, paho, topic):
    """mosquitto_sub --will-* killed with SIGKILL -> the will is published."""
    w = paho(broker.port)
    w.connect()
    w.subscribe(topic + "/will", 1)
    s = Sub(broker.port, ["-t", topic + "/none", "--will-topic", topic + "/will", "--will-payload", "bye",
                          "--will-qos", "1"], 5, count=1, wait=10)
    s.p.kill()
    s.p.wait(2)
    assert w.get().payload == b"bye"


def test_mosquitto_pub_large_message_file(broker, paho, topic, tmp_path):
    data = bytes(range(256)) * 400  # 100 KiB
    f = tmp_path / "blob"
    f.write_bytes(data)
    sub = paho(broker.port)
    sub.connect()
    sub.subscribe(topic, 1)
    mpub(broker.port, 5, "-t", topic, "-q", "1", "-f", str(f))
    assert sub.get().payload == data


def test_mosquitto_pub_to_acl_denied_topic_is_not_delivered(start_broker, paho):
    b = start_broker("acl = deny publish * secret/#\n")
    sub = paho(b.port)
    sub.connect()
    sub.subscribe("secret/#", 1)
    # mosquitto_pub exits after the PUBACK (v5 0x87) either way
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-V", "mqttv5", "-t", "secret/m",
                    "-q", "1", "-m", "no"], capture_output=True, timeout=8)
    sub.expect_no_message(0.5)
