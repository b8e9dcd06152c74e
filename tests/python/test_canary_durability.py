"""roost-canary never loses an incident: the gateway killed mid-burst and
back 30 s later, and a flood from one source reported as a few summaries
whose counts add up."""

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from canary_support import audits, probe_tcp, scenario_canary, tcp_config, wait_until

SOURCES = [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(1000)]


def attempts_by_source(roost):
    """{source address: incident ids} of the single-attempt incidents stored."""
    seen = {}
    for a in audits(roost):
        if a["kind"] == "attempt":
            seen.setdefault(a["message"]["clientAddress"], set()).add(a["incidentId"])
    return seen


@pytest.mark.xdist_group("heavy")
def test_gateway_killed_mid_burst_and_back_30s_later_loses_nothing(roost, tmp_path):
    canary = scenario_canary(roost, tmp_path, tcp_config().replace("window_secs = 2", "window_secs = 2\nmax_publish_per_sec = 100"))
    try:
        port = canary.ports["tcp"]
        killed = threading.Event()

        def generate():
            for i, source in enumerate(SOURCES):
                if i == 250:
                    # The gateway hangs first (incidents sent, no PUBACK:
                    # a full window in flight), then dies.
                    roost.proc.send_signal(signal.SIGSTOP)
                    time.sleep(1)
                    roost.kill()
                    killed.set()
                probe_tcp(port, source)

        worker = threading.Thread(target=generate)
        worker.start()
        worker.join(120)
        assert killed.is_set() and not worker.is_alive()
        # Everything the canary saw is on its disk while the gateway is away.
        assert wait_until(lambda: sum(canary.status()["attempts"].values()) == 1000, 30)
        time.sleep(30)
        roost.restart(same_ports=True)
        assert wait_until(lambda: len(attempts_by_source(roost)) == 1000, 120, interval=1), canary.read_log()[-3000:]
        assert set(attempts_by_source(roost)) == set(SOURCES)
        assert wait_until(lambda: canary.status()["outboxIncidents"] == 0, 30)
    finally:
        canary.stop()


@pytest.mark.xdist_group("heavy")
def test_a_flood_from_one_source_is_summarised_and_every_attempt_counted(roost, tmp_path):
    canary = scenario_canary(roost, tmp_path, tcp_config())
    try:
        port = canary.ports["tcp"]
        # 10,000 attempts in about ten seconds, sixteen at a time, as brute-force tools do.
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: probe_tcp(port, "127.0.0.1", b"attempt %d\r\n" % i), range(10_000)))

        def counted():
            return sum(a["attempts"] for a in audits(roost))

        assert wait_until(lambda: counted() == 10_000, 60, interval=0.5), (counted(), canary.read_log()[-2000:])
        stored = audits(roost)
        # The first at once, then one summary per 2 s window: a few, not thousands.
        assert len(stored) <= 300, len(stored)
        assert [a["kind"] for a in stored].count("attempt") == 1
        assert all(a["kind"] == "summary" for a in stored if a["kind"] != "attempt")
        summary = next(a for a in stored if a["kind"] == "summary")
        assert summary["message"]["clientAddress"] == "127.0.0.1"
        assert summary["details"]["lastAttempt"]["firstBytes"].startswith("attempt ")
        assert canary.status()["attempts"] == {"tcp": 10_000}
    finally:
        canary.stop()


@pytest.mark.xdist_group("heavy")
def test_a_full_outbox_folds_its_oldest_and_every_attempt_still_arrives(roost, tmp_path):
    config = tcp_config().replace("window_secs = 2", "window_secs = 2\nmax_publish_per_sec = 100") + "\n[outbox]\nmax_bytes = 65536\n"
    canary = scenario_canary(roost, tmp_path, config)
    try:
        assert wait_until(lambda: canary.status()["connected"], 20)
        roost.stop()
        sources = SOURCES[:600]
        for source in sources:
            probe_tcp(canary.ports["tcp"], source)
        assert wait_until(lambda: canary.status()["folded"] > 0, 20), canary.status()
        status = canary.status()
        assert status["outboxBytes"] <= 65536
        assert "the outbox is full" in canary.read_log()
        roost.restart(same_ports=True)

        def counted():
            return sum(a["attempts"] for a in audits(roost))

        assert wait_until(lambda: counted() >= len(sources), 60, interval=0.5), (counted(), canary.status())
        stored = audits(roost)
        # Each incident once (an incident may arrive twice, with its id).
        folds = list({a["incidentId"]: a for a in stored if a["kind"] == "folded"}.values())
        assert folds and all(a["service"] == "canary" for a in folds)
        assert folds[0]["details"]["attemptsByService"]["tcp"] >= 1
        # The folded attempts plus those reported one by one: every source once.
        assert sum(f["attempts"] for f in folds) + len(attempts_by_source(roost)) == len(sources)
    finally:
        canary.stop()


def http_login(port, source, password):
    """One login posted from `source`; True once the honeypot answered it
    (it answers only after the attempt is on its disk)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15, source_address=(source, 0))
    try:
        conn.request("POST", "/login", body=f"username=admin&password={password}",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        return conn.getresponse().status > 0
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@pytest.mark.xdist_group("heavy")
def test_canary_killed_mid_burst_and_restarted_loses_nothing(roost, tmp_path):
    config = ('[reporting]\nwindow_secs = 2\nmax_publish_per_sec = 100\n\n[gateway]\nmax_backoff_secs = 2\n\n'
              '[[service]]\ntype = "http"\naddress = "127.0.0.1"\nport = 0\n')
    canary = scenario_canary(roost, tmp_path, config)
    try:
        answered = []
        lock = threading.Lock()
        ports = {"http": canary.ports["http"]}

        def attacker(k):
            # Eight attackers at once, so that attempts are queued, being
            # written and in flight when the canary dies.
            for i in range(k, len(SOURCES), 8):
                deadline = time.monotonic() + 60
                # An attacker whose attempt was not answered tries again.
                while not http_login(ports["http"], SOURCES[i], f"pw{i}"):
                    if time.monotonic() > deadline:
                        return
                    time.sleep(0.05)
                with lock:
                    answered.append(i)

        with ThreadPoolExecutor(8) as pool:
            running = [pool.submit(attacker, k) for k in range(8)]
            assert wait_until(lambda: len(answered) >= 300, 60)
            canary.kill()
            canary.start()
            ports["http"] = canary.ports["http"]
            for r in running:
                r.result()
        assert len(answered) == len(SOURCES), canary.read_log()[-2000:]
        assert wait_until(lambda: len(attempts_by_source(roost)) == 1000, 120, interval=1), \
            (len(attempts_by_source(roost)), canary.read_log()[-3000:])
        assert set(attempts_by_source(roost)) == set(SOURCES)
    finally:
        canary.stop()
