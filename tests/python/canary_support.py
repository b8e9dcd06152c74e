"""Runs the real `roost-canary` binary against a Roost started by the test:
the scenario's device (thing, Owner attribute, certificate, policy), its
audit rule into the local bucket, and the canary with its own state
directory and services on 127.0.0.1 port 0."""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from conftest import ACCOUNT, REGION, make_device, roost_binary, scenario_policy, stop_process
import mqtt_helpers

OWNER = "abcde-12345"
BUCKET = "iot-webinar-audits"


def canary_binary() -> str:
    if os.environ.get("ROOST_CANARY_BIN"):
        return os.environ["ROOST_CANARY_BIN"]
    return str(Path(roost_binary()).parent / "roost-canary")


def scenario_device(roost, tmp_path, thing="iot-webinar-device"):
    """The scenario's thing with its Owner attribute and policy (version 1)."""
    iot = roost.boto()
    try:
        iot.create_policy(policyName="iot-webinar-policy", policyDocument=scenario_policy(1))
    except iot.exceptions.ResourceAlreadyExistsException:
        pass
    dev = make_device(roost, tmp_path, thing, policy=None, attributes={"Owner": OWNER})
    iot.attach_policy(policyName="iot-webinar-policy", target=dev.cert_arn)
    return dev


def scenario_rule(roost, unique_keys=False):
    """The scenario's rule: every audit into the bucket. The scenario's key
    is `${topic()}/${timestamp()}`; tests that count many incidents add a
    uuid, as a key unique per millisecond only could overwrite."""
    key = "${topic()}/${timestamp()}" + ("-${newuuid()}" if unique_keys else "")
    roost.boto().create_topic_rule(ruleName="IotWebinarRule", topicRulePayload={
        "sql": f"SELECT * FROM '{OWNER}/+/audit'",
        "actions": [{"s3": {"bucketName": BUCKET, "key": key,
                            "roleArn": f"arn:aws:iam::{ACCOUNT}:role/iot-webinar-s3-role"}}],
    })


def audits(roost):
    """Every incident the rule stored, parsed."""
    root = roost.data_dir / "objects" / BUCKET
    if not root.exists():
        return []
    out = []
    for p in root.rglob("*"):
        if p.is_file() and not p.name.startswith("."):
            try:
                out.append(json.loads(p.read_text()))
            except (ValueError, OSError):
                pass  # being written
    return out


def wait_until(predicate, timeout, interval=0.1):
    """mqtt_helpers.wait_until, polling less often (predicates here read
    the bucket or run `roost-canary status`)."""
    return mqtt_helpers.wait_until(predicate, timeout, interval)


class Canary:
    """One roost-canary process for `device`, reporting to `roost`."""

    def __init__(self, roost, device, directory: Path, config: str, extra_args=(), env=None):
        self.roost = roost
        self.env = dict(env or {})
        self.device = device
        self.dir = directory
        self.state_dir = directory / "state"
        self.config_path = directory / "canary.toml"
        directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config)
        self.extra_args = list(extra_args)
        self.proc = None

    def start(self, timeout=30.0):
        services = self.state_dir / "services.json"
        if services.exists():
            services.unlink()
        self.log = open(self.dir / "canary.log", "ab")
        self.proc = subprocess.Popen(
            [
                canary_binary(), "--config", str(self.config_path),
                "-e", "127.0.0.1", "-p", str(self.roost.mqtt_port),
                "-r", self.device.ca, "-c", self.device.certfile, "-k", self.device.keyfile,
                "-id", self.device.thing, "-t", f"{OWNER}/{self.device.thing}/audit",
                "--state-dir", str(self.state_dir), *self.extra_args,
            ],
            stdout=self.log, stderr=self.log,
            env={**os.environ, "ROOST_CANARY_LOG": "info", **self.env},
        )
        deadline = time.monotonic() + timeout
        while not services.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"roost-canary exited with {self.proc.returncode}: {self.read_log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"roost-canary did not start: {self.read_log()}")
            time.sleep(0.02)
        self.ports = {name: int(addr.rsplit(":", 1)[1]) for name, addr in json.loads(services.read_text()).items()}
        return self

    def read_log(self) -> str:
        path = self.dir / "canary.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def status(self):
        proc = subprocess.run([canary_binary(), "status", "--state-dir", str(self.state_dir), "--json"],
                              capture_output=True, text=True, timeout=30)
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def stop(self):
        stop_process(self.proc, getattr(self, "log", None))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()


def scenario_canary(roost, tmp_path, config):
    """The scenario's rule (keys unique per incident), its device, and a
    canary for it with `config`, started."""
    scenario_rule(roost, unique_keys=True)
    dev = scenario_device(roost, tmp_path)
    return Canary(roost, dev, tmp_path / "canary", config).start()


def tcp_config(extra=""):
    """A canary with one `tcp` service on 127.0.0.1 port 0."""
    return f"""
[reporting]
window_secs = 2

[gateway]
max_backoff_secs = 2

[[service]]
type = "tcp"
address = "127.0.0.1"
port = 0
banner = "220 ready"
{extra}
"""


def probe_tcp(port, source_ip="127.0.0.1", payload=b"hello\r\n"):
    """One connection from `source_ip` (any 127.x.y.z is this host) that
    sends `payload` and closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source_ip, 0)) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        try:
            while s.recv(1024):
                pass
        except OSError:
            pass


__all__ = ["Canary", "scenario_canary", "scenario_device", "scenario_rule", "audits", "wait_until", "tcp_config", "probe_tcp",
           "canary_binary", "OWNER", "BUCKET", "REGION"]
