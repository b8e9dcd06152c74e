"""scripts/bench-canary's body: starts Roost, roost-canary and OpenCanary on
loopback, runs the same attacker loads (canary-load) on each, and prints
attempts per second beside losses and memory. Run through scripts/bench-canary."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(os.environ.get("BENCH_BIN_DIR", "target/release")).resolve()
SECS = float(os.environ.get("BENCH_CANARY_SECS", "10"))
CONC = int(os.environ.get("BENCH_CANARY_CONCURRENCY", "32"))
OC_VENV = Path(os.environ.get("BENCH_OPENCANARY_VENV", ".bench/opencanary-venv")).resolve()
NO_OC = os.environ.get("BENCH_NO_OPENCANARY", "0") == "1"
WINDOW = 5
# (name, canary-load kind, sources): one brute-forcing attacker, a thousand scanning ones.
LOADS = [("http, 1 source", "http", 1), ("http, 1,000 sources", "http", 1000), ("tcp, 1 source", "tcp", 1)]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(what)


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def load(target_port, kind, sources, pid, label, path="/login"):
    out = subprocess.run(
        [str(BIN / "canary-load"), "--target", f"127.0.0.1:{target_port}", "--kind", kind,
         "--concurrency", str(CONC), "--duration", str(SECS), "--sources", str(sources),
         "--pid", str(pid), "--label", label, "--path", path],
        capture_output=True, text=True, timeout=SECS + 120)
    if out.returncode != 0:
        raise RuntimeError(f"canary-load against {label} failed: {out.stderr}")
    return json.loads(out.stdout)


class Roost:
    def __init__(self, work):
        self.data = work / "roost-data"
        self.proc = subprocess.Popen(
            [str(BIN / "roost"), "serve", "--data-dir", str(self.data), "--api-listen", "127.0.0.1:0",
             "--mqtt-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0"],
            stdout=open(work / "roost.stdout", "w"), stderr=open(work / "roost.log", "w"))
        endpoints = wait_for(lambda: (self.data / "endpoints.json").exists() and (self.data / "endpoints.json").read_text(),
                             30, "roost did not start")
        self.mqtt_port = int(json.loads(endpoints)["mqtt"].rsplit(":", 1)[1])
        env = {**os.environ, "AWS_SHARED_CREDENTIALS_FILE": str(self.data / "credentials"),
               "AWS_CONFIG_FILE": str(self.data / "aws-config"), "AWS_PROFILE": "roost", "AWS_PAGER": ""}
        aws = str(Path(sys.executable).parent / "aws")
        subprocess.run([aws, "iot", "create-thing", "--thing-name", "bench-canary"], env=env, check=True, capture_output=True)
        subprocess.run([aws, "iot", "create-policy", "--policy-name", "bench-canary", "--policy-document",
                        json.dumps({"Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})],
                       env=env, check=True, capture_output=True)
        self.device = work / "device"
        out = subprocess.run([str(BIN / "roost"), "cert", "create", "--thing", "bench-canary", "--out", str(self.device),
                              "--data-dir", str(self.data)], check=True, capture_output=True, text=True).stdout
        arn = next(l.split(": ", 1)[1] for l in out.splitlines() if l.startswith("certificateArn: "))
        subprocess.run([aws, "iot", "attach-policy", "--policy-name", "bench-canary", "--target", arn],
                       env=env, check=True, capture_output=True)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


class RoostCanary:
    label = "roost-canary"
    path = "/login"

    def __init__(self, work, roost):
        self.state = work / "canary-state"
        config = work / "canary.toml"
        config.write_text(f"""
[reporting]
window_secs = {WINDOW}
max_publish_per_sec = 100

[[service]]
type = "http"
address = "127.0.0.1"
port = 0

[[service]]
type = "tcp"
address = "127.0.0.1"
port = 0
""")
        d = roost.device
        self.proc = subprocess.Popen(
            [str(BIN / "roost-canary"), "--config", str(config), "-e", "127.0.0.1", "-p", str(roost.mqtt_port),
             "-r", str(d / "root-ca.pem"), "-c", str(d / "certificate.pem.crt"), "-k", str(d / "private.pem.key"),
             "-id", "bench-canary", "-t", "bench/canary/audit", "--state-dir", str(self.state)],
            stderr=open(work / "canary.log", "w"))
        services = wait_for(lambda: (self.state / "services.json").exists() and (self.state / "services.json").read_text(),
                            30, "roost-canary did not start")
        self.ports = {k: int(v.rsplit(":", 1)[1]) for k, v in json.loads(services).items()}
        wait_for(lambda: self.status().get("connected"), 30, "roost-canary did not connect")

    def status(self):
        try:
            return json.loads((self.state / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def recorded(self):
        return sum(self.status().get("attempts", {}).values())

    def reported(self):
        return self.status().get("attemptsReported", 0)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


class OpenCanary:
    label = "OpenCanary"
    path = "/index.html"

    def __init__(self, work):
        self.dir = work / "opencanary"
        self.dir.mkdir()
        self.log = self.dir / "opencanary.log"
        import socket
        ports = []
        for _ in range(2):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
            s.close()
        settings = json.loads(subprocess.run(
            [str(OC_VENV / "bin/python"), "-c",
             "import json, opencanary, os; print(open(os.path.join(os.path.dirname(opencanary.__file__), 'data', 'settings.json')).read())"],
            capture_output=True, text=True, check=True).stdout)
        for k in list(settings):
            if k.endswith(".enabled"):
                settings[k] = False
        settings.update({"device.listen_addr": "127.0.0.1", "http.enabled": True, "http.port": ports[0],
                         "tcpbanner.enabled": True, "tcpbanner.maxnum": 1, "tcpbanner_1.enabled": True,
                         "tcpbanner_1.port": ports[1],
                         "logger": {"class": "PyLogger", "kwargs": {"formatters": {"plain": {"format": "%(message)s"}},
                                    "handlers": {"file": {"class": "logging.FileHandler", "filename": str(self.log)}}}}})
        (self.dir / "opencanary.conf").write_text(json.dumps(settings))
        self.proc = subprocess.Popen(
            [str(OC_VENV / "bin/twistd"), "-noy", str(OC_VENV / "bin/opencanary.tac"), "--pidfile", str(self.dir / "pid")],
            cwd=self.dir, stdout=open(self.dir / "twistd.out", "w"), stderr=subprocess.STDOUT)
        self.ports = {"http": ports[0], "tcp": ports[1]}
        wait_for(lambda: self.log.exists() and "Canary running" in self.log.read_text(), 60, "OpenCanary did not start")

    def recorded(self):
        # 3001: an http login attempt; 18001/18005: a tcpbanner connection
        # made / data received (OpenCanary logs the bytes only when they
        # hold a configured alert string).
        n = 0
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                n += json.loads(line).get("logtype") in (3001, 18001)
            except ValueError:
                pass
        return n

    def reported(self):
        return None  # OpenCanary writes a log; it reports to no gateway.

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def measure(honeypot, kind, sources):
    before_recorded = honeypot.recorded()
    before_reported = honeypot.reported()
    result = load(honeypot.ports[kind], kind, sources, honeypot.proc.pid, honeypot.label, honeypot.path)
    answered = result["attempts"]
    # Recorded: every answered attempt is in the honeypot's records.
    try:
        wait_for(lambda: honeypot.recorded() - before_recorded >= answered, 30, "recorded")
    except TimeoutError:
        pass
    recorded = honeypot.recorded() - before_recorded
    reported, report_secs = None, None
    if before_reported is not None:
        start = time.monotonic()
        try:
            wait_for(lambda: honeypot.reported() - before_reported >= recorded, WINDOW * 2 + 120, "reported")
        except TimeoutError:
            pass
        reported = honeypot.reported() - before_reported
        report_secs = time.monotonic() - start
    return {**result, "recorded": recorded, "lost": max(answered - recorded, 0) + (max(recorded - reported, 0) if reported is not None else 0),
            "reported": reported, "report_secs": report_secs}


def main():
    work = Path(tempfile.mkdtemp(prefix="roost-bench-canary."))
    started = []
    try:
        roost = Roost(work)
        started.append(roost)
        honeypots = [RoostCanary(work, roost)]
        started.append(honeypots[0])
        if not NO_OC:
            honeypots.append(OpenCanary(work))
            started.append(honeypots[1])
        time.sleep(3)
        idle = {h.label: rss_kib(h.proc.pid) for h in honeypots}
        rows = []
        for name, kind, sources in LOADS:
            for h in honeypots:
                r = measure(h, kind, sources)
                rows.append((name, h.label, r))
                print(json.dumps({"load": name, **r}), flush=True)
        print()
        print(f"canary benchmark: {SECS:.0f} s per load, {CONC} attacker connections in flight, "
              f"reporting window {WINDOW} s, on {os.cpu_count()} CPUs")
        print(f"idle resident memory: " + ", ".join(f"{k} {v / 1024:.1f} MiB" for k, v in idle.items()))
        print(f"{'load':<22} {'honeypot':<13} {'attempts/s':>10} {'answered':>9} {'recorded':>9} {'reported':>9} "
              f"{'lost':>5} {'peak RSS':>9} {'CPU s':>6}  all reported")
        for name, label, r in rows:
            reported = "-" if r["reported"] is None else str(r["reported"])
            after = "-" if r["report_secs"] is None else "%.1f s after the load" % r["report_secs"]
            print(f"{name:<22} {label:<13} {r['attempts_per_sec']:>10.0f} {r['attempts']:>9} {r['recorded']:>9} "
                  f"{reported:>9} {r['lost']:>5} {r['rss_peak_kib'] / 1024:>7.1f}Mi {r['cpu_seconds']:>6.2f}  {after}")
        if not NO_OC:
            print()
            for name, _, _ in LOADS:
                ours = next(r for n, l, r in rows if n == name and l == "roost-canary")
                theirs = next(r for n, l, r in rows if n == name and l == "OpenCanary")
                print(f"{name:<22} roost-canary / OpenCanary: attempts/s {ours['attempts_per_sec'] / theirs['attempts_per_sec']:.2f}x, "
                      f"peak RSS {ours['rss_peak_kib'] / theirs['rss_peak_kib']:.2f}x")
        print(f"reproduce: scripts/bench-canary  (git {subprocess.run(['git', 'describe', '--always', '--dirty'], capture_output=True, text=True).stdout.strip()})")
    finally:
        for p in reversed(started):
            try:
                p.stop()
            except Exception:
                p.proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
