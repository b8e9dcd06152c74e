"""`roost quickstart`, as a newcomer runs it in an empty folder: the whole
scenario comes up; a request to the honeypot page and an SSH login attempt
each put an audit in the bucket and a notification in the log; Ctrl-C stops
it with exit 0; a second run reuses what the first made."""

import json
import signal
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import paramiko

from conftest import roost_binary
from mqtt_helpers import wait_until

PORTS = ["--api-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0",
         "--http-listen", "127.0.0.1:0", "--ssh-listen", "127.0.0.1:0"]


def start(folder: Path, log_name: str):
    services = folder / "roost-data" / "quickstart" / "services.json"
    services.unlink(missing_ok=True)
    out = open(folder / f"{log_name}.out", "w")
    err = open(folder / f"{log_name}.err", "w")
    proc = subprocess.Popen([roost_binary(), "quickstart", *PORTS], cwd=folder, stdout=out, stderr=err)
    assert wait_until(lambda: services.exists() or proc.poll() is not None, 60), (folder / f"{log_name}.err").read_text()
    assert proc.poll() is None, (folder / f"{log_name}.err").read_text()
    ports = {k: int(v.rsplit(":", 1)[1]) for k, v in json.loads(services.read_text()).items()}
    return proc, ports


def stop(proc):
    proc.send_signal(signal.SIGINT)
    return proc.wait(30)


def audits(folder: Path):
    bucket = folder / "roost-data" / "objects" / "iot-webinar-audits"
    return [json.loads(p.read_text()) for p in bucket.rglob("*") if p.is_file()] if bucket.exists() else []


def notifications(folder: Path):
    log = folder / "roost-data" / "quickstart" / "notifications.log"
    return [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []


def test_quickstart_runs_the_scenario_stops_cleanly_and_reuses_its_data(tmp_path):
    proc, ports = start(tmp_path, "first")
    try:
        form = urllib.parse.urlencode({"username": "admin", "password": "hunter2"}).encode()
        urllib.request.urlopen(f"http://127.0.0.1:{ports['http']}/login", data=form, timeout=10).read()
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect("127.0.0.1", port=ports["ssh"], username="root", password="toor", timeout=10,
                           allow_agent=False, look_for_keys=False)
            raise AssertionError("the honeypot let an ssh login in")
        except paramiko.AuthenticationException:
            pass
        finally:
            client.close()
        assert wait_until(lambda: {a["service"] for a in audits(tmp_path)} >= {"http", "ssh"}, 30), \
            (tmp_path / "first.err").read_text()
        assert wait_until(lambda: {json.loads(n["Message"])["service"] for n in notifications(tmp_path)}
                          >= {"http", "ssh"}, 30)
        out = (tmp_path / "first.out").read_text()
        assert "applied 11 changes" in out and f"http://127.0.0.1:{ports['http']}/" in out
        assert "notification: " in out
    finally:
        assert stop(proc) == 0, (tmp_path / "first.err").read_text()
    cert = (tmp_path / "roost-data" / "quickstart" / "certificates" / "iot-webinar-device" / "certificate.pem.crt").read_text()

    # Again: the same thing, certificate and audits; nothing to apply.
    proc, ports = start(tmp_path, "second")
    try:
        out = (tmp_path / "second.out").read_text()
        assert "no changes" in out, out
        assert (tmp_path / "roost-data" / "quickstart" / "certificates" / "iot-webinar-device"
                / "certificate.pem.crt").read_text() == cert
        assert len(audits(tmp_path)) >= 2
    finally:
        assert stop(proc) == 0, (tmp_path / "second.err").read_text()
