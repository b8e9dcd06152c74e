"""roost-canary's honeypot services against the clients attackers use
(paramiko, PyMySQL, redis-py, an HTTP login, a telnet session), each attempt
landing in the bucket through the scenario's rule with what was tried; and
`nmap -sV` naming every service as the product it imitates."""

import hashlib
import http.client
import shutil
import socket
import subprocess
import time
import xml.etree.ElementTree as ET

import paramiko
import pymysql
import pytest
import redis

from canary_support import Canary, audits, scenario_device, scenario_rule, wait_until


def services_config(kinds, window=2):
    blocks = "".join(f'\n[[service]]\ntype = "{k}"\naddress = "127.0.0.1"\nport = 0\n' for k in kinds)
    return f"[reporting]\nwindow_secs = {window}\n\n[gateway]\nmax_backoff_secs = 2\n{blocks}"


def credentials(stored, service):
    """Every credential the stored incidents of `service` list."""
    return [c for a in stored if a["service"] == service for c in a["details"].get("credentials", [])]


def read_until(sock, marker, limit=65536):
    seen = b""
    while marker not in seen and len(seen) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        seen += chunk
    return seen


def telnet_login(port, user, password):
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        # Refuse every option telnetd asks for (IAC DO x -> IAC WONT x), as
        # a plain telnet client does.
        opening = read_until(s, bytes([255, 253, 39]))
        s.sendall(b"".join(bytes([255, 252, opening[i + 2]]) for i in range(len(opening) - 2)
                           if opening[i] == 255 and opening[i + 1] == 253))
        assert b"login: " in read_until(s, b"login: ")
        s.sendall(user.encode() + b"\r\n")
        assert b"Password: " in read_until(s, b"Password: ")
        s.sendall(password.encode() + b"\r\n")
        assert b"Login incorrect" in read_until(s, b"Login incorrect")


def caching_sha2_scramble(password: bytes, salt: bytes) -> bytes:
    p1 = hashlib.sha256(password).digest()
    p3 = hashlib.sha256(hashlib.sha256(p1).digest() + salt).digest()
    return bytes(a ^ b for a, b in zip(p1, p3))


def native_scramble(password: bytes, salt: bytes) -> bytes:
    p1 = hashlib.sha1(password).digest()
    p3 = hashlib.sha1(salt + hashlib.sha1(p1).digest()).digest()
    return bytes(a ^ b for a, b in zip(p1, p3))


def test_real_clients_attempts_land_in_the_bucket_with_what_was_tried(roost, tmp_path):
    scenario_rule(roost, unique_keys=True)
    dev = scenario_device(roost, tmp_path)
    canary = Canary(roost, dev, tmp_path / "canary", services_config(["http", "ssh", "mysql", "redis", "telnet"])).start()
    try:
        ports = canary.ports
        # An HTTP login.
        conn = http.client.HTTPConnection("127.0.0.1", ports["http"], timeout=15)
        conn.request("POST", "/login", body="username=admin&password=hunter2",
                     headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Mozilla/5.0 (attacker)"})
        answer = conn.getresponse()
        assert answer.status in (200, 401, 403) and b"<html" in answer.read().lower()
        conn.close()
        # An SSH login with paramiko.
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        with pytest.raises(paramiko.AuthenticationException):
            client.connect("127.0.0.1", ports["ssh"], username="root", password="toor", look_for_keys=False,
                           allow_agent=False, timeout=15, banner_timeout=15, auth_timeout=15)
        client.close()
        # A MySQL login with PyMySQL.
        with pytest.raises(pymysql.err.OperationalError) as refused:
            pymysql.connect(host="127.0.0.1", port=ports["mysql"], user="dbadmin", password="s3cret",
                            database="prod", connect_timeout=15)
        assert refused.value.args[0] == 1045
        # A Redis AUTH with redis-py.
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=ports["redis"], password="letmein", socket_timeout=15).ping()
        # A telnet login.
        telnet_login(ports["telnet"], "admin", "1234")

        def stored_services():
            return {a["service"] for a in audits(roost)}

        assert wait_until(lambda: {"http", "ssh", "mysql", "redis", "telnet"} <= stored_services(), 30), canary.read_log()[-3000:]
        # Later attempts on the same connection come as a summary after the window.
        time.sleep(3)
        stored = audits(roost)
        for a in stored:
            assert a["message"]["clientAddress"] == "127.0.0.1"
            assert a["message"]["serverPort"] == ports[a["service"]]
            assert a["canary"] == "iot-webinar-device"

        http_attempt = next(a for a in stored if a["service"] == "http" and a["kind"] == "attempt")
        assert http_attempt["details"]["method"] == "POST" and http_attempt["details"]["path"] == "/login"
        assert http_attempt["details"]["userAgent"] == "Mozilla/5.0 (attacker)"
        assert {"username": "admin", "password": "hunter2"} in credentials(stored, "http")

        assert {"username": "root", "password": "toor"} in credentials(stored, "ssh")
        ssh_versions = [a["details"].get("clientVersion") or a["details"].get("lastAttempt", {}).get("clientVersion")
                        for a in stored if a["service"] == "ssh"]
        assert any(v and v.startswith("SSH-2.0-paramiko") for v in ssh_versions), ssh_versions

        mysql = next(a for a in stored if a["service"] == "mysql")
        details = mysql["details"] if mysql["kind"] == "attempt" else mysql["details"]["lastAttempt"]
        assert details["database"] == "prod"
        [cred] = credentials([mysql], "mysql")
        assert cred["username"] == "dbadmin"
        # The scrambled password is recorded with its challenge: it proves which password was tried.
        salt = bytes.fromhex(details["challenge"])
        scramble = caching_sha2_scramble if details.get("authPlugin", "caching_sha2_password") == "caching_sha2_password" else native_scramble
        assert cred["password"] == scramble(b"s3cret", salt).hex()

        assert {"username": "default", "password": "letmein"} in credentials(stored, "redis")
        assert {"username": "admin", "password": "1234"} in credentials(stored, "telnet")
    finally:
        canary.stop()


# What nmap 7.93 (Debian 12) must call each service: (service name, product).
NMAP_EXPECTED = {
    "http": ("http", "Apache httpd"),
    "https": ("http", "Apache httpd"),
    "ssh": ("ssh", "OpenSSH"),
    "telnet": ("telnet", "Linux telnetd"),
    "ftp": ("ftp", "vsftpd"),
    "mysql": ("mysql", "MySQL"),
    "mssql": ("ms-sql-s", "Microsoft SQL Server 2019"),
    "postgres": ("postgresql", "PostgreSQL DB"),
    "redis": ("redis", "Redis key-value store"),
    "rdp": ("ms-wbt-server", "Microsoft Terminal Services"),
    "vnc": ("vnc", "VNC"),
}


@pytest.mark.xdist_group("heavy")
def test_nmap_names_every_service_as_the_product_it_imitates(roost, tmp_path):
    nmap = shutil.which("nmap")
    if nmap is None:
        pytest.skip("nmap is not installed (scripts/setup-test-env installs it): fidelity NOT checked")
    dev = scenario_device(roost, tmp_path)
    canary = Canary(roost, dev, tmp_path / "canary", services_config(list(NMAP_EXPECTED))).start()
    try:
        ports = canary.ports
        out = tmp_path / "nmap.xml"
        subprocess.run([nmap, "-sV", "-Pn", "-n", "-oX", str(out), "-p", ",".join(str(p) for p in ports.values()),
                        "127.0.0.1"], check=True, capture_output=True, timeout=600)
        seen = {}
        for port in ET.parse(out).getroot().iter("port"):
            svc = port.find("service")
            seen[int(port.get("portid"))] = (svc.get("name"), svc.get("product") or "", svc.get("tunnel"))
        wrong = {}
        for kind, (name, product) in NMAP_EXPECTED.items():
            got = seen.get(ports[kind])
            if got is None or got[0] != name or not got[1].startswith(product):
                wrong[kind] = got
        assert not wrong, f"nmap saw: {wrong} (all: {seen})"
        assert seen[ports["https"]][2] == "ssl"
        # The scan itself was recorded: every service saw nmap's probes.
        assert wait_until(lambda: set(NMAP_EXPECTED) <= set(canary.status()["attempts"]), 30), canary.status()
    finally:
        canary.stop()
