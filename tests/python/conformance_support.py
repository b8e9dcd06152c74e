"""Support for the differential conformance suite (test_conformance.py).

Four parts:
- the two brokers under test: Roost on its plain listener with the full MQTT
  profile, and Debian's Mosquitto, each reachable as an `Endpoint`;
- `Client`, a paho-mqtt client that records what it observes as plain data;
- `Raw`, a socket that writes hand-made bytes (`packets.*`) and decodes what
  the server answers, for malformed and edge-case packets;
- `diff`, which lists the paths at which two observations differ.

Observations are plain dicts and lists (str, int, bool, None) so that they
compare with `==` and print readably in a failure message.
"""

import json
import os
import queue
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from conftest import ALLOW_ALL, Roost

V311 = 4
V5 = 5

# Both brokers are configured alike where a setting changes what clients
# observe: the longest keep alive a client gets (Roost's
# --mqtt-max-keep-alive-secs, Mosquitto's max_keepalive).
MAX_KEEP_ALIVE = 600

# Seconds a broker is given to process a connection's end before the
# scenario goes on (see Client.disconnect_cleanly).
SETTLE = 0.05


@dataclass(frozen=True)
class Endpoint:
    name: str
    host: str
    port: int


# ---- the brokers ------------------------------------------------------------


def start_roost_plain(data_dir: Path) -> Roost:
    """Roost with the plain listener (`--mqtt-profile full`) acting under an
    ACTIVE certificate with an allow-all policy. The principal must exist
    before `serve` starts with it, so Roost is started once to create it over
    the control plane and restarted with the listener flags."""
    server = Roost(data_dir)
    server.start()
    try:
        iot = server.boto()
        cert = iot.create_keys_and_certificate(setAsActive=True)
        iot.create_policy(policyName="conformance-allow-all", policyDocument=ALLOW_ALL)
        iot.attach_policy(policyName="conformance-allow-all", target=cert["certificateArn"])
        server.extra_args = [
            "--mqtt-plain-listen", "127.0.0.1:0",
            "--mqtt-plain-principal", cert["certificateId"],
            "--mqtt-profile", "full",
            "--mqtt-max-keep-alive-secs", str(MAX_KEEP_ALIVE),
        ]
        server.restart()
    except BaseException:
        server.stop()
        raise
    return server


def roost_endpoint(server: Roost) -> Endpoint:
    host, port = server.endpoints["mqtt_plain"].rsplit(":", 1)
    return Endpoint("roost", host, int(port))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """Debian's mosquitto on a free loopback port, in-memory only.

    Mosquitto cannot bind port 0, so a free port is picked and the start is
    retried if another process grabbed it in between."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = None
        self.port = None

    def start(self, attempts=5):
        for _ in range(attempts):
            port = free_port()
            conf = self.dir / "mosquitto.conf"
            lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false",
                     f"max_keepalive {MAX_KEEP_ALIVE}",
                     "log_dest stderr", "log_type error", "log_type warning"]
            if os.geteuid() == 0:
                # Debian's mosquitto drops privileges to user mosquitto unless told not to.
                lines.append("user root")
            conf.write_text("\n".join(lines) + "\n")
            log = open(self.dir / "mosquitto.log", "ab")
            self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=log)
            log.close()
            if self._wait_listening(port):
                self.port = port
                return self
            self.stop()
        raise RuntimeError(f"mosquitto did not start: {(self.dir / 'mosquitto.log').read_text()}")

    def _wait_listening(self, port, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                time.sleep(0.02)
        return False

    def endpoint(self) -> Endpoint:
        return Endpoint("mosquitto", "127.0.0.1", self.port)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---- paho clients that record what they observe ---------------------------

# MQTT 5 PUBLISH properties a subscriber may observe, by paho's name.
MESSAGE_PROPERTIES = {
    "PayloadFormatIndicator": "payload_format",
    "MessageExpiryInterval": "message_expiry",
    "ContentType": "content_type",
    "ResponseTopic": "response_topic",
    "CorrelationData": "correlation_data",
    "UserProperty": "user_properties",
    "SubscriptionIdentifier": "subscription_ids",
    "TopicAlias": "topic_alias",
}


def text(data: bytes) -> str:
    """Payloads as readable text; bytes that are not UTF-8 as \\x escapes."""
    return bytes(data).decode("utf-8", errors="backslashreplace")


def properties_view(props) -> dict:
    out = {}
    for paho_name, name in MESSAGE_PROPERTIES.items():
        if props is not None and hasattr(props, paho_name):
            value = getattr(props, paho_name)
            if isinstance(value, (bytes, bytearray)):
                value = text(value)
            elif isinstance(value, list):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            out[name] = value
    return out


def props(packet_type, **values) -> Properties:
    """paho Properties from keyword arguments (paho's property names)."""
    p = Properties(packet_type)
    for name, value in values.items():
        setattr(p, name, value)
    return p


class Client:
    """One paho client and everything it observed. Every wait is bounded.

    Topics are recorded relative to the scenario's namespace (`~` stands for
    it), so the same scenario run against two brokers yields comparable data.
    """

    def __init__(self, ctx, client_id, version=V5, clean=True, keepalive=60,
                 session_expiry=None, connect_properties=None, will=None,
                 manual_ack=False, username=None, password=None):
        self.ctx = ctx
        self.version = version
        self.clean = clean
        self.keepalive = keepalive
        self.connect_properties = dict(connect_properties or {})
        if session_expiry is not None:
            self.connect_properties["SessionExpiryInterval"] = session_expiry
        protocol = mqtt.MQTTv5 if version == V5 else mqtt.MQTTv311
        self.paho = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
            clean_session=clean if version == V311 else None,
            reconnect_on_failure=False, manual_ack=manual_ack,
        )
        if username is not None:
            self.paho.username_pw_set(username, password)
        if will is not None:
            self.paho.will_set(**will)
        self.messages = []
        self.arrivals = []  # time.monotonic() of each message, for timing checks
        self._unacked = []  # (mid, qos) received in manual-ack mode, not yet acknowledged
        self.acks = {}
        self.events = queue.Queue()
        self.connack = None
        self.connack_props = None
        self.disconnect = None
        self._lock = threading.Lock()
        self._new_message = threading.Condition(self._lock)
        self._disconnected = threading.Event()
        self.paho.on_connect = self._on_connect
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_message = self._on_message
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_unsubscribe = self._on_unsubscribe
        self.paho.on_publish = self._on_publish

    # callbacks (paho's network thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.events.put(("connack", flags, reason_code, properties))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        if self.disconnect is None:
            # Only the first report: paho may report a server DISCONNECT and then the close.
            self.disconnect = {
                "by_server_packet": flags.is_disconnect_packet_from_server,
                "reason": reason_code.value if flags.is_disconnect_packet_from_server else None,
            }
        self._disconnected.set()
        self.events.put(("closed", None, None, None))

    def _on_message(self, client, userdata, message):
        view = {
            "topic": self.ctx.relative(message.topic),
            "payload": text(message.payload),
            "qos": message.qos,
            "retain": bool(message.retain),
            "dup": bool(message.dup),
        }
        if self.version == V5:
            view.update(properties_view(getattr(message, "properties", None)))
        with self._lock:
            self.messages.append(view)
            self.arrivals.append(time.monotonic())
            self._unacked.append((message.mid, message.qos))
            self._new_message.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.acks[mid] = [rc.value for rc in reason_codes]

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        self.acks[mid] = [rc.value for rc in reason_codes] if self.version == V5 else "UNSUBACK"

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self.acks[mid] = reason_code.value if self.version == V5 else "ACK"

    # actions

    def connect(self, timeout=5.0):
        """Connects and waits for CONNACK: {"rc", "session_present"} and, for
        MQTT 5, the CONNACK properties as paho saw them (`self.connack_props`)."""
        kwargs = {}
        if self.version == V5:
            kwargs["clean_start"] = self.clean
            if self.connect_properties:
                kwargs["properties"] = props(PacketTypes.CONNECT, **self.connect_properties)
        self.paho.connect(self.ctx.endpoint.host, self.ctx.endpoint.port, self.keepalive, **kwargs)
        self.paho.loop_start()
        self.ctx.started.append(self)
        kind, flags, reason_code, properties = self._next_event(timeout, {"connack", "closed"})
        if kind != "connack":
            # Closed without a CONNACK, or no answer in time: recorded, not raised.
            self.connack = {"rc": None, "no_connack": kind}
            return self.connack
        self.connack_props = properties
        self.connack = {"rc": reason_code.value, "session_present": bool(flags.session_present)}
        return self.connack

    def _next_event(self, timeout, kinds):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return ("timeout", None, None, None)
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                return ("timeout", None, None, None)
            if event[0] in kinds:
                return event

    def _wait_ack(self, mid, timeout):
        deadline = time.monotonic() + timeout
        while mid not in self.acks and time.monotonic() < deadline:
            if self._disconnected.is_set():
                break
            time.sleep(0.005)
        return self.acks.get(mid, "no ack")

    def subscribe(self, *filters, properties=None, timeout=5.0):
        """Filters as (filter, qos) or (filter, SubscribeOptions); returns the
        SUBACK reason codes (granted QoS in 3.1.1)."""
        entries = []
        for topic_filter, options in filters:
            if self.version == V5 and isinstance(options, int):
                options = SubscribeOptions(qos=options)
            entries.append((topic_filter, options))
        kwargs = {}
        if properties:
            kwargs["properties"] = props(PacketTypes.SUBSCRIBE, **properties)
        _, mid = self.paho.subscribe(entries, **kwargs)
        return self._wait_ack(mid, timeout)

    def unsubscribe(self, *filters, timeout=5.0):
        _, mid = self.paho.unsubscribe(list(filters))
        return self._wait_ack(mid, timeout)

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, timeout=5.0):
        """Publishes; for QoS 1 and 2 waits for the acknowledgement and returns
        its reason code (MQTT 5; "ACK" in 3.1.1), else None."""
        kwargs = {}
        if properties:
            kwargs["properties"] = props(PacketTypes.PUBLISH, **properties)
        info = self.paho.publish(topic, payload, qos=qos, retain=retain, **kwargs)
        if qos == 0:
            return None
        return self._wait_ack(info.mid, timeout)

    def ack_all(self):
        """Manual-ack mode: acknowledges everything received so far."""
        with self._lock:
            pending, self._unacked = self._unacked, []
        for mid, qos in pending:
            if qos:
                self.paho.ack(mid, qos)

    def wait_messages(self, count, timeout=3.0, quiet=0.3):
        """Waits until `count` messages arrived (or `timeout`), then `quiet`
        seconds more to catch any extra ones; returns the messages."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._new_message.wait(remaining)
        if quiet:
            time.sleep(quiet)
        return self.received()

    def received(self, in_namespace=True):
        """Messages so far. Messages on different topics may legitimately
        arrive in any order relative to each other (MQTT orders per topic
        only), so they are sorted by topic; order within a topic is kept."""
        with self._lock:
            messages = list(self.messages)
        if in_namespace:
            messages = [m for m in messages if m["topic"].startswith(("~", "$~"))]
        return sorted(messages, key=lambda m: m["topic"])

    def disconnect_cleanly(self, reason=None, properties=None, timeout=5.0):
        """Sends DISCONNECT (MQTT 5 reason code optional) and waits for the close."""
        kwargs = {}
        if reason is not None:
            kwargs["reasoncode"] = ReasonCode(PacketTypes.DISCONNECT, identifier=reason)
        if properties:
            kwargs["properties"] = props(PacketTypes.DISCONNECT, **properties)
        self.paho.disconnect(**kwargs)
        self._disconnected.wait(timeout)
        self.paho.loop_stop()
        # paho closes its socket right after sending DISCONNECT, so the server's
        # side of the close cannot be awaited; give it a moment before the
        # scenario reconnects with this client id.
        time.sleep(SETTLE)

    def drop(self, timeout=5.0):
        """Closes the TCP connection without DISCONNECT (a crashed device)."""
        sock = self.paho.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._disconnected.wait(timeout)
        self.paho.loop_stop()
        time.sleep(SETTLE)

    def wait_closed(self, timeout=3.0):
        """Waits for the server to end the connection; returns what the
        client saw ({"by_server_packet", "reason"}) or None if still open."""
        if not self._disconnected.wait(timeout):
            return None
        return self.disconnect

    def close(self):
        """Cleanup after the scenario, whatever state the client is in. The
        DISCONNECT also wakes paho's network thread, which would otherwise
        sit in select() for up to a second before loop_stop() returns."""
        try:
            self.paho.disconnect()
            self.paho.loop_stop()
        finally:
            sock = self.paho.socket()
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass


def connack_capabilities(properties) -> dict:
    """What an MQTT 5 CONNACK tells a client it may do, with the spec's
    defaults for absent properties filled in (absent Maximum QoS means 2,
    absent availability flags mean available). Limits that are a matter of
    configuration (Receive Maximum, Topic Alias Maximum, Maximum Packet Size,
    Server Keep Alive) are left out: they legitimately differ."""
    def get(name, default):
        return getattr(properties, name, default) if properties is not None else default

    return {
        "maximum_qos": get("MaximumQoS", 2),
        "retain_available": get("RetainAvailable", 1),
        "wildcard_subscription_available": get("WildcardSubscriptionAvailable", 1),
        "subscription_identifiers_available": get("SubscriptionIdentifierAvailable", 1),
        "shared_subscription_available": get("SharedSubscriptionAvailable", 1),
        "assigned_client_identifier": hasattr(properties, "AssignedClientIdentifier"),
        "session_expiry_override": get("SessionExpiryInterval", None),
    }


# ---- raw packets -------------------------------------------------------------


class packets:
    """Hand-written MQTT packets (client to server). Each returns bytes and
    takes the knobs needed to break them on purpose."""

    @staticmethod
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n % 128, n // 128
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    @staticmethod
    def string(value) -> bytes:
        data = value.encode() if isinstance(value, str) else bytes(value)
        return struct.pack("!H", len(data)) + data

    @staticmethod
    def frame(first_byte: int, body: bytes) -> bytes:
        return bytes([first_byte]) + packets.varint(len(body)) + body

    @staticmethod
    def properties(raw: bytes = b"") -> bytes:
        return packets.varint(len(raw)) + raw

    @staticmethod
    def connect(client_id="", version=V311, clean=True, keepalive=60, will=None,
                username=None, password=None, extra_flags=0, protocol_name="MQTT",
                properties=b"", first_byte=0x10) -> bytes:
        """will: (topic, payload, qos, retain[, will_properties_bytes])."""
        flags = extra_flags | (0x02 if clean else 0)
        payload = packets.string(client_id)
        if will is not None:
            topic, message, qos, retain, *rest = will
            flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
            if version == V5:
                payload += packets.properties(rest[0] if rest else b"")
            payload += packets.string(topic) + packets.string(message)
        if username is not None:
            flags |= 0x80
            payload += packets.string(username)
        if password is not None:
            flags |= 0x40
            payload += packets.string(password)
        header = packets.string(protocol_name) + bytes([version, flags]) + struct.pack("!H", keepalive)
        if version == V5:
            header += packets.properties(properties)
        return packets.frame(first_byte, header + payload)

    @staticmethod
    def publish(topic, payload=b"", qos=0, packet_id=None, retain=False, dup=False,
                version=V311, properties=b"", first_byte=None) -> bytes:
        if first_byte is None:
            first_byte = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
        body = packets.string(topic)
        if packet_id is not None:
            body += struct.pack("!H", packet_id)
        if version == V5:
            body += packets.properties(properties)
        return packets.frame(first_byte, body + (payload.encode() if isinstance(payload, str) else payload))

    @staticmethod
    def subscribe(packet_id, filters, version=V311, first_byte=0x82, properties=b"") -> bytes:
        """filters: (filter, options byte)."""
        body = struct.pack("!H", packet_id)
        if version == V5:
            body += packets.properties(properties)
        for topic_filter, options in filters:
            body += packets.string(topic_filter) + bytes([options])
        return packets.frame(first_byte, body)

    @staticmethod
    def ack(kind, packet_id, version=V311, reason=None) -> bytes:
        """PUBACK, PUBREC, PUBREL or PUBCOMP."""
        first = {"PUBACK": 0x40, "PUBREC": 0x50, "PUBREL": 0x62, "PUBCOMP": 0x70}[kind]
        body = struct.pack("!H", packet_id)
        if version == V5 and reason is not None:
            body += bytes([reason])
        return packets.frame(first, body)

    @staticmethod
    def disconnect(version=V311, reason=None, properties=b"") -> bytes:
        if version == V5 and (reason is not None or properties):
            return packets.frame(0xE0, bytes([reason or 0]) + packets.properties(properties))
        return b"\xe0\x00"

    PINGREQ = b"\xc0\x00"

    @staticmethod
    def prop_u32(identifier, value) -> bytes:
        return bytes([identifier]) + struct.pack("!I", value)

    @staticmethod
    def prop_u16(identifier, value) -> bytes:
        return bytes([identifier]) + struct.pack("!H", value)


PACKET_NAMES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
    7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
    12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH",
}


def skip_properties(body: bytes, at: int) -> int:
    """Index just past an MQTT 5 property block starting at `at`."""
    length, shift = 0, 0
    while True:
        byte = body[at]
        at += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return at + length


def summarize(first_byte: int, body: bytes, version: int) -> dict:
    """A server packet as plain data: its type and what a client acts on
    (codes, ids, flags). Reason strings and other diagnostics are left out:
    they are free text."""
    kind = PACKET_NAMES.get(first_byte >> 4, f"type{first_byte >> 4}")
    out = {"type": kind}
    if kind == "CONNACK":
        out.update(session_present=bool(body[0] & 1), code=body[1])
    elif kind in ("PUBACK", "PUBREC", "PUBREL", "PUBCOMP"):
        out.update(id=struct.unpack("!H", body[:2])[0], code=body[2] if len(body) > 2 else 0)
    elif kind in ("SUBACK", "UNSUBACK"):
        at = 2 if version != V5 else skip_properties(body, 2)
        out.update(id=struct.unpack("!H", body[:2])[0], codes=list(body[at:]))
    elif kind == "DISCONNECT":
        out.update(code=body[0] if body else 0)
    elif kind == "PUBLISH":
        qos = (first_byte >> 1) & 3
        (topic_len,) = struct.unpack("!H", body[:2])
        at = 2 + topic_len
        topic = body[2:at].decode("utf-8", errors="backslashreplace")
        if qos:
            out["id"] = struct.unpack("!H", body[at:at + 2])[0]
            at += 2
        if version == V5:
            at = skip_properties(body, at)
        out.update(topic=topic, qos=qos, retain=bool(first_byte & 1), dup=bool(first_byte & 8),
                   payload=text(body[at:]))
    return out


class Raw:
    """A TCP connection driven byte by byte."""

    def __init__(self, ctx, version=V311):
        self.ctx = ctx
        self.version = version
        self.sock = socket.create_connection((ctx.endpoint.host, ctx.endpoint.port), timeout=5)
        self.buf = b""
        self.closed = False
        ctx.raws.append(self)

    @classmethod
    def over(cls, sock, version=V311):
        """A Raw on a socket opened elsewhere (e.g. mutual TLS to the
        gateway's MQTT listener), outside any scenario."""
        raw = cls.__new__(cls)
        raw.ctx, raw.version, raw.sock, raw.buf, raw.closed = None, version, sock, b"", False
        return raw

    def send(self, data: bytes):
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def _fill(self, deadline) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.closed:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def _take_packet(self):
        """One complete packet from the buffer, or None."""
        if len(self.buf) < 2:
            return None
        length, shift, at = 0, 0, 1
        while True:
            if at >= len(self.buf):
                return None
            byte = self.buf[at]
            at += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80 or at > 4:
                break
        if len(self.buf) < at + length:
            return None
        first, body = self.buf[0], self.buf[at:at + length]
        self.buf = self.buf[at + length:]
        return summarize(first, body, self.version)

    def read(self, timeout=2.0):
        """The next packet, or {"type": "CLOSED"} / {"type": "TIMEOUT"}."""
        deadline = time.monotonic() + timeout
        while True:
            packet = self._take_packet()
            if packet is not None:
                return packet
            if not self._fill(deadline):
                return {"type": "CLOSED" if self.closed else "TIMEOUT"}

    def connect(self, client_id, **kwargs):
        self.send(packets.connect(client_id, version=self.version, **kwargs))
        return self.read()

    def collect(self, timeout=1.5, stop_at=None):
        """Everything the server sends until it closes the connection,
        `timeout` passes, or a packet of type `stop_at` arrives (a PINGRESP
        to a probe PINGREQ shows the connection is alive without waiting out
        the timeout): {"packets": [...], "closed": bool}."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            packet = self.read(max(deadline - time.monotonic(), 0))
            if packet["type"] in ("CLOSED", "TIMEOUT"):
                return {"packets": seen, "closed": packet["type"] == "CLOSED"}
            seen.append(packet)
            if packet["type"] == stop_at:
                return {"packets": seen, "closed": False}

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---- one scenario run --------------------------------------------------------


class Context:
    """What a scenario gets: the endpoint, its namespace (topic prefix and
    client-id prefix, unique per scenario), and factories for clients that
    are all closed when the scenario ends."""

    def __init__(self, endpoint: Endpoint, namespace: str):
        self.endpoint = endpoint
        self.ns = namespace
        self.started = []
        self.raws = []

    def topic(self, suffix="") -> str:
        return f"{self.ns}/{suffix}" if suffix else self.ns

    def client_id(self, name) -> str:
        return f"{self.ns}-{name}"

    def relative(self, topic: str) -> str:
        if topic == self.ns or topic.startswith(self.ns + "/"):
            return "~" + topic[len(self.ns):]
        if topic.startswith("$" + self.ns):
            return "$~" + topic[len(self.ns) + 1:]
        return topic

    def client(self, name, **kwargs) -> Client:
        return Client(self, self.client_id(name) if name else "", **kwargs)

    def connected(self, name, **kwargs) -> Client:
        """A client that is connected (its CONNACK must be a success)."""
        c = self.client(name, **kwargs)
        connack = c.connect()
        if connack.get("rc") != 0:
            raise AssertionError(f"{self.endpoint.name}: {name} could not connect: {connack}")
        return c

    def raw(self, version=V311) -> Raw:
        return Raw(self, version)

    def raw_connected(self, name, version=V311, **kwargs) -> Raw:
        r = Raw(self, version)
        connack = r.connect(self.client_id(name), **kwargs)
        if connack.get("type") != "CONNACK" or connack["code"] != 0:
            raise AssertionError(f"{self.endpoint.name}: raw {name} could not connect: {connack}")
        return r

    def close_all(self):
        for c in self.started:
            c.close()
        for r in self.raws:
            r.close()


# ---- comparing observations -----------------------------------------------------


def diff(a, b, path="") -> list:
    """The paths at which two observations differ, as (path, a, b).
    Lists of different lengths differ as a whole."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                out.append((sub, a.get(key, "<absent>"), b.get(key, "<absent>")))
            else:
                out.extend(diff(a[key], b[key], sub))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out.extend(diff(x, y, f"{path}[{i}]"))
        return out
    return [] if a == b else [(path, a, b)]


def render(value) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)
