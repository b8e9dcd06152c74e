"""Small helpers shared by the gateway tests."""

import queue
import socket
import ssl
import subprocess
import threading
import time


class Inbox:
    """Collects messages from any client library's callback."""

    def __init__(self):
        self.q = queue.Queue()

    def put(self, topic, payload, qos=None, retain=None):
        self.q.put((topic, bytes(payload), qos, retain))

    def get(self, timeout=10.0):
        return self.q.get(timeout=timeout)

    def take(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                out.append(self.q.get(timeout=remaining))
            except queue.Empty:
                break
        return out

    def empty_for(self, seconds):
        try:
            item = self.q.get(timeout=seconds)
        except queue.Empty:
            return True
        self.q.put(item)
        return False


def paho_connect(client, port, timeout=30.0, **kwargs):
    """Connects a paho client and waits for CONNACK; returns the reason code."""
    done = threading.Event()
    result = {}

    def on_connect(client, userdata, flags, reason_code, properties):
        result["rc"] = reason_code
        result["flags"] = flags
        result["properties"] = properties
        done.set()

    def on_disconnect(client, userdata, flags, reason_code, properties):
        result.setdefault("rc", reason_code)
        result["disconnected"] = reason_code
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.connect("localhost", port, **kwargs)
    client.loop_start()
    if not done.wait(timeout):
        raise TimeoutError("no CONNACK")
    return result


def connect_with_inbox(device, port, client_id, protocol=None, clean=True, **connect_kwargs):
    """A paho client of `device`, connected, whose messages go to an Inbox:
    (client, inbox, the CONNACK result). `connect_kwargs` go to connect()
    (MQTT 5: clean_start, properties)."""
    client = device.paho(client_id, protocol=protocol, clean=clean)
    inbox = Inbox()
    client.on_message = lambda c, u, m: inbox.put(m.topic, m.payload, m.qos, m.retain)
    result = paho_connect(client, port, **connect_kwargs)
    return client, inbox, result


def mosquitto(device, port, *args, tool="mosquitto_pub", timeout=20):
    cmd = [
        tool, "-h", "localhost", "-p", str(port),
        "--cafile", device.ca, "--cert", device.certfile, "--key", device.keyfile, *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def wait_until(predicate, timeout=5.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def subscribe_wait(client, topic_filter, qos=1, **kwargs):
    """Subscribes a paho client and waits for the SUBACK; returns its reason codes as ints."""
    done = threading.Event()
    out = {}

    def on_subscribe(c, u, mid, reason_codes, properties):
        out["rcs"] = reason_codes
        done.set()

    client.on_subscribe = on_subscribe
    client.subscribe(topic_filter, qos=qos, **kwargs)
    if not done.wait(10):
        raise TimeoutError("no SUBACK")
    return [rc.value for rc in out["rcs"]]


def close(*clients):
    """Disconnects paho clients cleanly and stops their network threads."""
    for c in clients:
        c.disconnect()
        c.loop_stop()


def tls_context(device):
    """A client TLS context presenting `device`'s certificate and trusting Roost's CA."""
    ctx = ssl.create_default_context(cafile=device.ca)
    ctx.load_cert_chain(device.certfile, device.keyfile)
    return ctx


def tls_socket(device, port):
    """A TLS connection to Roost on `port` with `device`'s certificate, handshake done."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return tls_context(device).wrap_socket(raw, server_hostname="localhost")
