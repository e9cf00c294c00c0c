"""A thin, synchronous wrapper around paho-mqtt 2.x (CallbackAPIVersion.VERSION2).

The network loop runs in our own thread calling `Client.loop()`, so paho never
reconnects behind the test's back (a take-over test would otherwise ping-pong).
Every wait is bounded.

Every call into paho holds one lock, on the test thread as on the network thread.
Without a loop_start() thread of its own, paho writes a PUBLISH from the calling
thread at once; over TLS that thread and the network thread (reading, or sending
a PUBACK) would then use one OpenSSL connection at the same time, which is not
allowed: the records come out corrupted and the broker rightly closes the
connection ("decryption failed or bad record mac").
"""

import queue
import select
import socket
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

HOST = "127.0.0.1"


def props(packet_type, **kw):
    """paho Properties for a packet type: props(PacketTypes.PUBLISH, UserProperty=[...])."""
    p = Properties(packet_type)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def connect_props(**kw):
    return props(PacketTypes.CONNECT, **kw)


def publish_props(**kw):
    return props(PacketTypes.PUBLISH, **kw)


def subscribe_props(**kw):
    return props(PacketTypes.SUBSCRIBE, **kw)


def will_props(**kw):
    return props(PacketTypes.WILLMESSAGE, **kw)


def prop(properties, name, default=None):
    if properties is None:
        return default
    return getattr(properties, name, default)


@dataclass
class Msg:
    topic: str          # resolved topic (topic alias applied)
    wire_topic: str     # topic as it was on the wire ('' when an alias replaced it)
    payload: bytes
    qos: int
    retain: bool
    mid: int
    properties: object = None
    alias: int = None
    received_at: float = field(default_factory=time.monotonic)


@dataclass
class Connack:
    session_present: bool
    reason: int
    properties: object


class PahoClient:
    def __init__(self, port, client_id="", version=5, clean_session=True, keepalive=30,
                 manual_ack=False):
        self.port = port
        self.version = version
        self.keepalive = keepalive
        kw = {}
        if version != 5:
            kw["clean_session"] = clean_session
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311,
                             manual_ack=manual_ack, **kw)
        self.messages = queue.Queue()
        self.connacks = queue.Queue()
        self.disconnects = queue.Queue()
        self._cond = threading.Condition()
        self._subacks = {}
        self._unsubacks = {}
        self._pubacks = {}
        self._aliases = {}
        self._active = False
        self._stop = threading.Event()
        self._lock = threading.RLock()  # callbacks run under it and may call the API
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.c.on_publish = self._on_publish
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    # -- callbacks (loop thread) --
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connacks.put(Connack(bool(flags.session_present), reason_code.value, properties))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self._active = False
        self.disconnects.put((reason_code.value if reason_code is not None else None, properties))

    def _on_message(self, client, userdata, m):
        wire = m.topic
        alias = prop(m.properties, "TopicAlias")
        topic = wire
        if alias is not None:
            if wire:
                self._aliases[alias] = wire
            else:
                topic = self._aliases.get(alias, f"<unknown alias {alias}>")
        self.messages.put(Msg(topic, wire, bytes(m.payload), m.qos, bool(m.retain), m.mid,
                              m.properties, alias))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self._cond:
            self._subacks[mid] = [rc.value for rc in reason_codes]
            self._cond.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        with self._cond:
            self._unsubacks[mid] = reason_codes
            self._cond.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._cond:
            self._pubacks[mid] = (reason_code.value if reason_code is not None else 0, properties)
            self._cond.notify_all()

    def _run(self):
        while not self._stop.is_set():
            if not self._active:
                time.sleep(0.01)
                continue
            # Wait outside the lock (so that the test thread is never starved of it),
            # then let paho read, write and keep alive under it.
            sock = self.c.socket()
            if sock is not None and not (hasattr(sock, "pending") and sock.pending()):
                try:
                    select.select([sock], [sock] if self.c.want_write() else [], [], 0.02)
                except (OSError, ValueError, TypeError):
                    time.sleep(0.01)
            with self._lock:
                if self._active:
                    self.c.loop(0)

    def _wait(self, table, key, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cond:
            while key not in table:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
                self._cond.wait(remaining)
            return table.pop(key)

    # -- API (test thread) --
    def will_set(self, topic, payload=b"", qos=0, retain=False, properties=None):
        with self._lock:
            self.c.will_set(topic, payload, qos, retain, properties)

    def connect(self, clean_start=True, properties=None, timeout=5.0, expect_rc=0):
        with self._lock:
            if self.version == 5:
                self.c.connect(HOST, self.port, self.keepalive, clean_start=clean_start,
                               properties=properties)
            else:
                self.c.connect(HOST, self.port, self.keepalive)
            self._active = True
        try:
            ca = self.connacks.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no CONNACK within {timeout}s")
        if expect_rc is not None:
            assert ca.reason == expect_rc, f"CONNACK reason {ca.reason:#x}, expected {expect_rc:#x}"
        return ca

    def subscribe(self, topic, qos=0, options=None, properties=None, timeout=5.0):
        """topic: a filter or a list of (filter, qos|SubscribeOptions). Returns the SUBACK codes."""
        with self._lock:
            if options is not None:
                rc, mid = self.c.subscribe(topic, options=options, properties=properties)
            elif isinstance(topic, list):
                rc, mid = self.c.subscribe(topic, properties=properties)
            elif self.version == 5:
                rc, mid = self.c.subscribe(topic, options=SubscribeOptions(qos=qos), properties=properties)
            else:
                rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        return self._wait(self._subacks, mid, timeout, f"SUBACK for {topic}")

    def unsubscribe(self, topic, timeout=5.0):
        with self._lock:
            rc, mid = self.c.unsubscribe(topic)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        return self._wait(self._unsubacks, mid, timeout, f"UNSUBACK for {topic}")

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, wait=True,
                timeout=5.0):
        """Returns the PUBACK/PUBREC reason code (v5) for QoS>0 when wait, else the mid."""
        with self._lock:
            info = self.c.publish(topic, payload, qos, retain, properties)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, info.rc
        if not wait:
            return info.mid
        rc, _ = self._wait(self._pubacks, info.mid, timeout, f"completion of publish to {topic}")
        return rc

    def publish_full(self, topic, payload=b"", qos=1, retain=False, properties=None, timeout=5.0):
        """Like publish but returns (reason code, ack properties)."""
        with self._lock:
            info = self.c.publish(topic, payload, qos, retain, properties)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, info.rc
        return self._wait(self._pubacks, info.mid, timeout, f"completion of publish to {topic}")

    def wait_publish(self, mid, timeout=5.0):
        """(reason code, ack properties) of a publish made with wait=False."""
        return self._wait(self._pubacks, mid, timeout, f"completion of publish {mid}")

    def ack(self, mid, qos=1):
        with self._lock:
            self.c.ack(mid, qos)

    def get(self, timeout=3.0):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout}s")

    def collect(self, n, timeout=3.0):
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"got {len(out)} of {n} messages within {timeout}s: "
                                     f"{[(m.topic, m.payload) for m in out]}")
            try:
                out.append(self.messages.get(timeout=remaining))
            except queue.Empty:
                pass
        return out

    def drain(self, wait=0.5):
        """Everything that arrives within `wait` seconds."""
        deadline = time.monotonic() + wait
        out = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return out
            try:
                out.append(self.messages.get(timeout=remaining))
            except queue.Empty:
                return out

    def expect_no_message(self, wait=0.7):
        got = self.drain(wait)
        assert not got, f"unexpected messages: {[(m.topic, m.payload) for m in got]}"

    def wait_disconnect(self, timeout=3.0):
        """(reason code, properties) of the next disconnect (broker DISCONNECT or socket loss)."""
        try:
            return self.disconnects.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"client was not disconnected within {timeout}s")

    @property
    def connected(self):
        return self._active and self.c.is_connected()

    def disconnect(self, reason=None, properties=None, timeout=3.0):
        """A clean DISCONNECT (v5: with an optional reason code, e.g. 0x04)."""
        rc = None
        if reason is not None:
            rc = ReasonCode(PacketTypes.DISCONNECT, identifier=reason)
        with self._lock:
            self.c.disconnect(reasoncode=rc, properties=properties)
        try:
            self.disconnects.get(timeout=timeout)
        except queue.Empty:
            pass
        self._active = False

    def drop(self):
        """Simulate network loss: close the socket without sending DISCONNECT."""
        with self._lock:
            self._active = False
            sock = self.c.socket()
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self):
        if self._active:
            try:
                with self._lock:
                    self.c.disconnect()
                time.sleep(0.02)
            except Exception:
                pass
        self._active = False
        self._stop.set()
        self._thread.join(timeout=2)
        with self._lock:
            sock = self.c.socket()
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
