"""Revocation, expiry and wills, tried as an attacker would: a certificate
revoked at any stage of a device connection (during the TLS handshake,
before CONNECT, after CONNECT, on an HTTPS keep-alive) loses it at once, and
no will is sent for it; a will is authorized when it is sent; expired and not
yet valid client certificates are refused, and a live connection whose
certificate expires is closed."""

import datetime
import http.client
import socket
import ssl
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import ALLOW_ALL, Device, make_device
from mqtt_helpers import close, connect_with_inbox, paho_connect, subscribe_wait, tls_context, tls_socket, wait_until


# ---- raw MQTT over TLS ---------------------------------------------------


def mqtt_string(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def connect_packet(client_id: str, will_topic: str = None, will_payload: bytes = b"") -> bytes:
    flags = 0x02  # clean session
    payload = mqtt_string(client_id.encode())
    if will_topic is not None:
        flags |= 0x04 | (1 << 3)  # will, QoS 1
        payload += mqtt_string(will_topic.encode()) + mqtt_string(will_payload)
    body = b"\x00\x04MQTT\x04" + bytes([flags]) + (60).to_bytes(2, "big") + payload
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


def read_until_closed(sock, seconds) -> (bytes, bool):
    """Everything the server sends within `seconds`, and whether it closed the connection."""
    sock.settimeout(0.2)
    got = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except (socket.timeout, TimeoutError):
            continue
        except (ssl.SSLError, OSError):
            return got, True
        if not chunk:
            return got, True
        got += chunk
    return got, False


CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


def connected_with_will(device, port, client_id):
    """A raw MQTT 3.1.1 connection of `device`, CONNACKed, with a QoS 1 will on wills/<client_id>."""
    sock = tls_socket(device, port)
    sock.sendall(connect_packet(client_id, will_topic=f"wills/{client_id}", will_payload=b"gone"))
    got, _ = read_until_closed(sock, 0.5)
    assert got == CONNACK_ACCEPTED
    return sock


def revoke(roost, device):
    roost.boto().update_certificate(certificateId=device.cert_id, newStatus="REVOKED")


@pytest.fixture
def watcher(roost, tmp_path):
    """A connected client subscribed to every will topic: (client, inbox)."""
    device = make_device(roost, tmp_path, "watcher")
    client, inbox, result = connect_with_inbox(device, roost.mqtt_port, "watcher")
    assert result["rc"] == 0
    assert subscribe_wait(client, "wills/#") == [1]
    yield inbox
    close(client)


# ---- revocation at every stage -------------------------------------------


def test_revoked_during_the_handshake_is_refused(roost, tmp_path):
    dev = make_device(roost, tmp_path, "mid-handshake")
    raw = socket.create_connection(("127.0.0.1", roost.mqtt_port), timeout=10)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = tls_context(dev).wrap_bio(incoming, outgoing, server_hostname="localhost")
    revoked = False
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            raw.sendall(outgoing.read())
            data = raw.recv(65536)
            assert data, "server closed during the handshake"
            incoming.write(data)
            if not revoked:
                # The server's first flight is here; the client's certificate
                # and Finished are not sent yet.
                revoke(roost, dev)
                revoked = True
    raw.sendall(outgoing.read())
    tls.write(connect_packet("mid-handshake"))
    raw.sendall(outgoing.read())
    raw.settimeout(5)
    got = b""
    try:
        while True:
            data = raw.recv(4096)
            if not data:
                break
            incoming.write(data)
            try:
                got += tls.read(4096)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                pass
    except (OSError, ssl.SSLError):
        pass
    assert not got.startswith(CONNACK_ACCEPTED)


def test_revoked_before_connect_is_closed_at_once(roost, tmp_path):
    dev = make_device(roost, tmp_path, "pre-connect")
    sock = tls_socket(dev, roost.mqtt_port)
    revoke(roost, dev)
    # Closed by the server long before its CONNECT timeout (10 s).
    got, closed = read_until_closed(sock, 3)
    assert closed, "a connection whose certificate was revoked before CONNECT stays open"
    assert got == b""


def test_connect_sees_the_certificate_as_it_is_now(roost, tmp_path):
    """CONNECT re-reads the certificate's status, whatever the handshake saw."""
    dev = make_device(roost, tmp_path, "late-connect")
    iot = roost.boto()
    sock = tls_socket(dev, roost.mqtt_port)
    iot.update_certificate(certificateId=dev.cert_id, newStatus="INACTIVE")
    try:
        sock.sendall(connect_packet("late-connect"))
    except OSError:
        pass
    got, _ = read_until_closed(sock, 3)
    assert not got.startswith(CONNACK_ACCEPTED)


def test_revoked_after_connect_is_closed_and_sends_no_will(roost, tmp_path, watcher):
    dev = make_device(roost, tmp_path, "connected")
    sock = connected_with_will(dev, roost.mqtt_port, "connected")
    revoke(roost, dev)
    got, closed = read_until_closed(sock, 3)
    assert closed
    assert watcher.empty_for(2), "a will was sent for a revoked certificate"
    assert roost.metric("roost_gateway_kicked_certificate_total") >= 1


def test_a_dropped_connection_sends_its_will(roost, tmp_path, watcher):
    """The control for the tests that expect no will: the same will, the
    connection dropped without DISCONNECT, arrives."""
    dev = make_device(roost, tmp_path, "dropped")
    sock = connected_with_will(dev, roost.mqtt_port, "dropped")
    sock.close()
    assert watcher.get(timeout=5)[:2] == ("wills/dropped", b"gone")


def test_a_will_the_policies_no_longer_allow_is_not_sent(roost, tmp_path, watcher):
    dev = make_device(roost, tmp_path, "detached")
    sock = connected_with_will(dev, roost.mqtt_port, "detached")
    roost.boto().detach_policy(policyName="policy-detached", target=dev.cert_arn)
    sock.close()
    assert watcher.empty_for(2), "a will was sent after its policy was detached"
    assert wait_until(lambda: roost.metric("roost_gateway_wills_refused_total") == 1)


def https_connection(device, port):
    conn = http.client.HTTPSConnection("localhost", port, context=tls_context(device), timeout=10)
    conn.connect()
    return conn


def https_post(conn, topic, body=b"x"):
    conn.request("POST", f"/topics/{topic}?qos=1", body=body)
    response = conn.getresponse()
    response.read()
    return response.status


def test_revoked_on_an_https_keep_alive_connection(roost, tmp_path):
    dev = make_device(roost, tmp_path, "https-device")
    iot = roost.boto()

    # Every request sees the status as it is now: the first request after
    # the revocation is refused, however soon it comes.
    conn = https_connection(dev, roost.https_port)
    assert https_post(conn, "https/a") == 200
    revoke(roost, dev)
    try:
        status = https_post(conn, "https/a")
    except (OSError, http.client.HTTPException):
        status = None
    assert status != 200

    # And the revocation closes idle kept-alive connections.
    dev2 = make_device(roost, tmp_path, "https-device-2")
    conn = https_connection(dev2, roost.https_port)
    assert https_post(conn, "https/b") == 200
    iot.update_certificate(certificateId=dev2.cert_id, newStatus="REVOKED")
    got, closed = read_until_closed(conn.sock, 3)
    assert closed, "a kept-alive HTTPS connection outlived its certificate"


# ---- validity ---------------------------------------------------------------


def self_signed_device(roost, tmp_path, name, not_before, not_after):
    """A thing whose certificate (registered without a CA, ACTIVE) has the given validity."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    iot = roost.boto()
    registered = iot.register_certificate_without_ca(certificatePem=pem, status="ACTIVE")
    iot.create_thing(thingName=name)
    iot.attach_thing_principal(thingName=name, principal=registered["certificateArn"])
    iot.create_policy(policyName=f"policy-{name}", policyDocument=ALLOW_ALL)
    iot.attach_policy(policyName=f"policy-{name}", target=registered["certificateArn"])
    directory = tmp_path / f"device-{name}"
    directory.mkdir()
    (directory / "certificate.pem.crt").write_text(pem)
    (directory / "private.pem.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / "root-ca.pem").write_text((roost.data_dir / "root-ca.pem").read_text())
    return Device(roost, directory, name, registered)


def assert_refused(device, port, client_id):
    """The handshake fails, or the connection closes without accepting CONNECT."""
    with pytest.raises((ssl.SSLError, OSError)):
        sock = tls_socket(device, port)
        sock.sendall(connect_packet(client_id))
        got, closed = read_until_closed(sock, 2)
        if closed and not got.startswith(CONNACK_ACCEPTED):
            raise OSError("closed")


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def test_expired_and_not_yet_valid_certificates(roost_factory, tmp_path):
    roost = roost_factory("--certificate-clock-skew-secs", "0")
    short = self_signed_device(
        roost, tmp_path, "short-lived", now() - datetime.timedelta(minutes=1), now() + datetime.timedelta(seconds=4)
    )
    future = self_signed_device(
        roost, tmp_path, "future", now() + datetime.timedelta(minutes=2), now() + datetime.timedelta(days=1)
    )
    refused_before = roost.metric("roost_gateway_certificates_refused_total")

    # Not yet valid: refused in the handshake.
    assert_refused(future, roost.mqtt_port, "future")

    # Valid now: connected, and closed when the validity ends.
    client = short.paho("short-lived")
    result = paho_connect(client, roost.mqtt_port)
    assert result["rc"] == 0
    assert wait_until(lambda: "disconnected" in result, timeout=15), "a connection outlived its certificate"
    client.loop_stop()
    assert roost.metric("roost_gateway_kicked_expired_total") == 1

    # Expired: refused in the handshake.
    assert_refused(short, roost.mqtt_port, "short-lived")
    assert roost.metric("roost_gateway_certificates_refused_total") >= refused_before + 2


def test_the_clock_skew_lets_a_slightly_early_certificate_in(roost, tmp_path):
    """With the default skew (5 minutes), a certificate valid from a minute
    from now is accepted, as a device whose clock runs ahead expects."""
    early = self_signed_device(
        roost, tmp_path, "early", now() + datetime.timedelta(minutes=1), now() + datetime.timedelta(days=1)
    )
    client = early.paho("early")
    assert paho_connect(client, roost.mqtt_port)["rc"] == 0
    close(client)
