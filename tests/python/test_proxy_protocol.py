"""Roost behind a real HAProxy (Debian's) in TCP mode with send-proxy-v2:
mutual TLS still ends at Roost, and the device's own address survives the
proxy (lifecycle events' ipAddress), for MQTT and device HTTPS.

On one machine the addresses are told apart by loopback aliases: HAProxy
reaches Roost from 127.0.0.1 (the only address Roost trusts for PROXY
headers), devices reach HAProxy from 127.0.0.2, and a watcher connects to
Roost directly from 127.0.0.3."""

import http.client
import json
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from conftest import free_port, make_device, stop_process
from mqtt_helpers import close, connect_with_inbox, subscribe_wait, tls_context, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster")]

DEVICE_IP = "127.0.0.2"
WATCHER_IP = "127.0.0.3"


class HAProxy:
    def __init__(self, tmp_path, roost):
        self.mqtt_port = free_port("127.0.0.1")
        self.https_port = free_port("127.0.0.1")
        api_port = int(roost.endpoints["api"].rsplit(":", 1)[1])
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            f"""
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout check 2s
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host roost
    http-check expect status 200
    default-server check port {api_port} inter 500ms rise 1 fall 2 send-proxy-v2

frontend mqtt
    bind 127.0.0.1:{self.mqtt_port}
    default_backend roost_mqtt
frontend https
    bind 127.0.0.1:{self.https_port}
    default_backend roost_https
backend roost_mqtt
    server roost 127.0.0.1:{roost.mqtt_port}
backend roost_https
    server roost 127.0.0.1:{roost.https_port}
"""
        )
        self.log = open(tmp_path / "haproxy.log", "wb")
        self.proc = subprocess.Popen(
            [shutil.which("haproxy") or "haproxy", "-db", "-f", str(config)],
            stdout=self.log, stderr=self.log,
        )
        deadline = time.monotonic() + 10
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                stop_process(self.proc, self.log)
                raise RuntimeError(f"haproxy did not start: {(tmp_path / 'haproxy.log').read_text()}")
            time.sleep(0.05)

    def _listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.https_port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self):
        stop_process(self.proc, self.log)


@pytest.fixture
def behind_haproxy(roost_factory, tmp_path):
    roost = roost_factory("--proxy-protocol-from", "127.0.0.1")
    proxy = HAProxy(tmp_path, roost)
    yield roost, proxy
    proxy.stop()


def connected_ip(inbox, client_id):
    for topic, payload, _qos, _retain in inbox.take(1):
        assert topic == f"$aws/events/presence/connected/{client_id}"
        return json.loads(payload)["ipAddress"]


def test_devices_through_haproxy_keep_their_address(behind_haproxy, tmp_path):
    roost, proxy = behind_haproxy
    device = make_device(roost, tmp_path, "sensor")
    # Direct, from an address Roost does not trust for headers.
    reader, readings, result = connect_with_inbox(
        device, roost.mqtt_port, "reader", bind_address=WATCHER_IP
    )
    assert result["rc"] == 0
    assert subscribe_wait(reader, "readings/#") == [1]
    watcher, events, result = connect_with_inbox(
        device, roost.mqtt_port, "watcher", bind_address=WATCHER_IP
    )
    assert result["rc"] == 0
    assert subscribe_wait(watcher, "$aws/events/presence/connected/+") == [1]

    # MQTT through HAProxy: mutual TLS with Roost, the device's address.
    client, _, result = connect_with_inbox(device, proxy.mqtt_port, "through", bind_address=DEVICE_IP)
    assert result["rc"] == 0
    assert connected_ip(events, "through") == DEVICE_IP

    # Device HTTPS through HAProxy.
    conn = http.client.HTTPSConnection(
        "localhost", proxy.https_port, context=tls_context(device),
        source_address=(DEVICE_IP, 0), timeout=10,
    )
    conn.request("POST", "/topics/readings/1?qos=1", body=b"21.5")
    assert conn.getresponse().status == 200
    conn.close()
    assert [(t, p) for t, p, *_ in readings.take(1)] == [("readings/1", b"21.5")]

    # HAProxy's health checks went to the API port, not through the
    # PROXY-reading listeners: nothing was refused.
    assert roost.metric("roost_listener_connections_refused_proxy_header_total", listener="mqtt") == 0
    assert roost.metric("roost_listener_connections_refused_proxy_header_total", listener="https") == 0
    close(client, watcher, reader)


def test_a_trusted_address_without_a_header_is_refused_and_counted(behind_haproxy, tmp_path):
    roost, _proxy = behind_haproxy
    device = make_device(roost, tmp_path, "direct")
    # From 127.0.0.1, the proxy's address, but straight to Roost: no header.
    raw = socket.create_connection(("127.0.0.1", roost.mqtt_port), timeout=10, source_address=("127.0.0.1", 0))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_context(device).wrap_socket(raw, server_hostname="localhost")
    raw.close()
    assert wait_until(
        lambda: roost.metric("roost_listener_connections_refused_proxy_header_total", listener="mqtt") == 1
    )
