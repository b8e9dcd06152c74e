"""Hostile input: garbage, absurd lengths, stalled handshakes and silent
connections are all cut, and other clients keep being served."""

import asyncio
import socket
import ssl
import time

import pytest

from conftest import make_device
from mqtt_helpers import Inbox, paho_connect, tls_context, tls_socket, wait_until


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def closed_within(sock, seconds):
    """True when the peer closes the connection within `seconds`."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            data = sock.recv(4096)
            if not data:
                return True
    except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def pubsub_works(dev, port, name):
    inbox = Inbox()
    sub = dev.paho(f"{name}-sub")
    sub.on_message = lambda c, u, m: inbox.put(m.topic, m.payload)
    assert paho_connect(sub, port)["rc"] == 0
    sub.subscribe(f"{name}/t", qos=1)
    time.sleep(0.2)
    pub = dev.paho(f"{name}-pub")
    assert paho_connect(pub, port)["rc"] == 0
    pub.publish(f"{name}/t", b"still served", qos=1).wait_for_publish(10)
    ok = [p for _, p, _, _ in inbox.take(1)] == [b"still served"]
    for c in (sub, pub):
        c.disconnect()
        c.loop_stop()
    return ok


def pubsub_works_in_subprocesses(dev, port, name):
    """Like pubsub_works, with mosquitto_sub/pub in their own processes: a
    test holding a thousand sockets has file descriptors past select()'s
    limit, which paho's network loop cannot use."""
    import subprocess

    base = ["-h", "localhost", "-p", str(port), "--cafile", dev.ca, "--cert", dev.certfile, "--key", dev.keyfile]
    sub = subprocess.Popen(["mosquitto_sub", *base, "-i", f"{name}-sub", "-t", f"{name}/t", "-q", "1", "-C", "1", "-W", "20"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    pub = subprocess.run(["mosquitto_pub", *base, "-i", f"{name}-pub", "-t", f"{name}/t", "-m", "still served", "-q", "1"],
                         capture_output=True, text=True, timeout=30)
    out, _ = sub.communicate(timeout=30)
    return pub.returncode == 0 and out.strip() == "still served"


@pytest.fixture
def fast(roost_factory):
    return roost_factory("--mqtt-handshake-timeout-secs", "2", "--mqtt-connect-timeout-secs", "2")


def test_garbage_after_the_handshake_is_cut(fast, tmp_path):
    dev = make_device(fast, tmp_path, "garbage")
    s = tls_socket(dev, fast.mqtt_port)
    s.sendall(b"\xff\x00GET / HTTP/1.1\r\n\r\n" * 10)
    assert closed_within(s, 3)
    assert pubsub_works(dev, fast.mqtt_port, "after-garbage")


def test_connect_announcing_a_gigabyte_is_cut_without_waiting_for_it(fast, tmp_path):
    dev = make_device(fast, tmp_path, "huge")
    s = tls_socket(dev, fast.mqtt_port)
    # CONNECT, remaining length 1,000,000,000 (variable byte integer), no body.
    s.sendall(bytes([0x10, 0x80, 0x94, 0xEB, 0xDC, 0x03]))
    start = time.monotonic()
    assert closed_within(s, 3)
    assert time.monotonic() - start < 1.5
    assert pubsub_works(dev, fast.mqtt_port, "after-huge")


def test_publish_announcing_more_than_the_limit_is_cut(fast, tmp_path):
    dev = make_device(fast, tmp_path, "bigpub")
    client = dev.paho("bigpub", protocol=5)
    assert paho_connect(client, fast.mqtt_port)["rc"] == 0
    dropped = []
    client.on_disconnect = lambda c, u, f, rc, p: dropped.append(rc)
    client.reconnect_delay_set(60, 60)
    client.publish("big/payload", b"x" * (129 * 1024), qos=1)
    assert wait_until(lambda: dropped, 5)
    client.loop_stop()
    assert pubsub_works(dev, fast.mqtt_port, "after-bigpub")


def test_stalled_tls_handshakes_are_cut(fast, tmp_path):
    dev = make_device(fast, tmp_path, "stall")
    silent = [socket.create_connection(("127.0.0.1", fast.mqtt_port)) for _ in range(50)]
    partial = []
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", fast.mqtt_port))
        s.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))  # the start of a ClientHello, then nothing
        partial.append(s)
    # Others are served while the stalled handshakes wait.
    assert pubsub_works(dev, fast.mqtt_port, "during-stall")
    # And the stalled ones are cut after the handshake timeout (2 s here).
    start = time.monotonic()
    for s in silent + partial:
        assert closed_within(s, 6), "a stalled handshake must be cut"
        s.close()
    assert time.monotonic() - start < 8


@pytest.mark.xdist_group("heavy")
def test_a_thousand_connections_that_never_send_connect(fast, tmp_path):
    dev = make_device(fast, tmp_path, "idle")
    pid = fast.proc.pid
    before = rss_kib(pid)
    ctx = tls_context(dev)

    async def hold_many(n):
        conns = []

        async def one():
            reader, writer = await asyncio.open_connection("127.0.0.1", fast.mqtt_port, ssl=ctx, server_hostname="localhost")
            conns.append((reader, writer))

        results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, Exception)]
        return conns, failures

    loop = asyncio.new_event_loop()
    try:
        conns, failures = loop.run_until_complete(hold_many(1000))
        assert not failures, failures[:3]
        peak = rss_kib(pid)
        # Others are still served.
        assert pubsub_works_in_subprocesses(dev, fast.mqtt_port, "during-idle")

        async def all_closed():
            closed = 0
            for reader, writer in conns:
                try:
                    data = await asyncio.wait_for(reader.read(1), timeout=8)
                    closed += data == b""
                except (ConnectionError, ssl.SSLError):
                    closed += 1
                writer.close()
            return closed

        assert loop.run_until_complete(all_closed()) == 1000
    finally:
        loop.close()
    # Memory stays bounded: a thousand TLS connections cost well under 64 MiB.
    assert peak - before < 64 * 1024, f"RSS grew by {peak - before} KiB"
    assert pubsub_works(dev, fast.mqtt_port, "after-idle")
