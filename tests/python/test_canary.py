"""roost-canary end to end: the real binary, reporting to a Roost started by
the test, through the scenario's policy and rule into the local bucket."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from canary_support import (OWNER, Canary, audits, canary_binary, probe_tcp, scenario_device, scenario_rule,
                            tcp_config, wait_until)


@pytest.fixture
def canary_factory(roost, tmp_path):
    made = []

    def make(config, thing="iot-webinar-device", extra_args=()):
        dev = scenario_device(roost, tmp_path, thing)
        c = Canary(roost, dev, tmp_path / f"canary-{thing}", config, extra_args)
        made.append(c)
        return c.start()

    yield make
    for c in made:
        c.stop()


def test_a_probe_lands_in_the_bucket_in_the_scenarios_shape(roost, canary_factory):
    scenario_rule(roost)
    canary = canary_factory(tcp_config())
    probe_tcp(canary.ports["tcp"], payload=b"GET /admin HTTP/1.0\r\n\r\n")
    assert wait_until(lambda: len(audits(roost)) == 1, 20), canary.read_log()
    [audit] = audits(roost)
    assert audit["message"] == {"clientAddress": "127.0.0.1", "serverPort": canary.ports["tcp"]}
    assert audit["service"] == "tcp"
    assert audit["canary"] == "iot-webinar-device"
    assert audit["kind"] == "attempt" and audit["attempts"] == 1
    assert audit["details"]["firstBytes"].startswith("GET /admin HTTP/1.0")
    # The scenario's second rule reads it unchanged.
    out = roost.roost("sql", "eval", "--sql", f"SELECT message as msg FROM '{OWNER}/+/audit'",
                      "--topic", f"{OWNER}/iot-webinar-device/audit", "--payload", json.dumps(audit))
    assert json.loads(out.stdout) == {"msg": audit["message"]}
    # The status file is rewritten once a second.
    assert wait_until(lambda: canary.status()["acknowledged"] == 1, 10)
    status = canary.status()
    assert status["running"] is True and status["connected"] is True
    assert status["attempts"] == {"tcp": 1}
    assert status["published"] >= 1 and status["outboxIncidents"] == 0


def test_status_says_what_is_wrong_when_the_gateway_refuses(roost, canary_factory, tmp_path):
    canary = canary_factory(tcp_config())
    assert wait_until(lambda: canary.status()["connected"], 20)
    roost.boto().update_certificate(certificateId=canary.device.cert_id, newStatus="INACTIVE")
    probe_tcp(canary.ports["tcp"])
    assert wait_until(lambda: not canary.status()["connected"] and canary.status()["outboxIncidents"] >= 1, 20)
    status = canary.status()
    assert status["lastError"], status
    text = subprocess.run([canary_binary(), "status", "--state-dir", str(canary.state_dir)],
                          capture_output=True, text=True, timeout=30).stdout
    assert "not connected" in text and "last error:" in text and "outbox: 1 incidents" in text
    # Logged once per backoff step, not in a tight loop.
    time.sleep(3)
    failures = canary.read_log().count("the gateway connection failed")
    assert 1 <= failures <= 8, failures  # a tight loop would log hundreds
    # Reactivated: the incident kept on disk goes out.
    scenario_rule(roost)
    roost.boto().update_certificate(certificateId=canary.device.cert_id, newStatus="ACTIVE")
    assert wait_until(lambda: len(audits(roost)) == 1, 30), canary.read_log()


def test_check_config_names_file_line_and_field(tmp_path):
    bad = tmp_path / "canary.toml"
    bad.write_text('[gateway]\nendpoint = "x"\n\n[[service]]\ntype = "http"\nport = "eighty"\n')
    proc = subprocess.run([canary_binary(), "check-config", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{bad}:6: service[0].port: "), proc.stderr
    good = tmp_path / "good.toml"
    good.write_text('[[service]]\ntype = "tcp"\nport = 9200\n')
    proc = subprocess.run([canary_binary(), "check-config", str(good)], capture_output=True, text=True)
    assert proc.returncode == 0 and "tcp on 0.0.0.0:9200" in proc.stdout, proc.stderr


def test_missing_gateway_settings_say_which_flag(tmp_path):
    proc = subprocess.run([canary_binary(), "--state-dir", str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "pass -e/--endpoint" in proc.stderr, proc.stderr
    proc = subprocess.run([canary_binary(), "--state-dir", str(tmp_path / "s"), "-r", "nowhere.pem"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "nowhere.pem does not exist" in proc.stderr, proc.stderr
    assert not (tmp_path / "s").exists()


def test_the_example_config_and_systemd_unit_are_valid(tmp_path):
    root = Path(__file__).resolve().parents[2] / "deploy" / "canary"
    text = (root / "roost-canary.toml").read_text()
    for name in ("root-ca.pem", "certificate.pem.crt", "private.pem.key"):
        (tmp_path / name).write_text("placeholder\n")
    config = tmp_path / "roost-canary.toml"
    config.write_text(text.replace("/etc/roost-canary/", f"{tmp_path}/").replace("/var/lib/roost-canary/", f"{tmp_path}/"))
    proc = subprocess.run([canary_binary(), "check-config", str(config)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "12 services" in proc.stdout
    # Without the files it names, the example says which are missing.
    proc = subprocess.run([canary_binary(), "check-config", str(root / "roost-canary.toml")], capture_output=True, text=True)
    assert proc.returncode == 1 and "gateway.root_ca: /etc/roost-canary/root-ca.pem does not exist" in proc.stderr

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit was not verified")
    unit = tmp_path / "roost-canary.service"
    unit.write_text((root / "roost-canary.service").read_text().replace("/usr/local/bin/roost-canary", canary_binary()))
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
