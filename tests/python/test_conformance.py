"""Differential conformance: the same scripted client sessions run against
Roost (plain listener, `--mqtt-profile full`) and against Debian's Mosquitto
in the same test, and what the clients observe must be equal, except for the
differences listed in KNOWN_DIFFERENCES (each with its reason; `BUG:` marks
the ones Roost should fix). A new difference fails, and so does a listed one
that went away, until the table is updated. docs/conformance.md explains the
suite and carries the same table.

A scenario is a function of a `Context` (an endpoint and a namespace unique
to the scenario) that returns plain data: CONNACK codes and flags, SUBACK
and PUBACK codes, messages received, disconnects seen, raw packets received.
What legitimately varies between brokers is normalised before it is
recorded (see conformance_support): topics are relative to the namespace,
assigned client ids are recorded as "assigned or not", configured limits in
CONNACK (Receive Maximum, Topic Alias Maximum, Maximum Packet Size, Server
Keep Alive) are left out, messages on different topics are sorted by topic
(MQTT orders messages per topic only), reason strings are dropped, and
timings are recorded as "within the expected window" booleans, or not at all
where Mosquitto's timers are too coarse (keep-alive).

Run: .venv/bin/pytest tests/python/test_conformance.py (after cargo build -p
roost); ROOST_CONFORMANCE_DUMP=<dir> writes every observation as JSON.
The scenarios live in the `conformance` package, one module per topic, and
the known differences in `conformance/known.py`; this module runs them all.
"""

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance import KNOWN_DIFFERENCES, SCENARIOS, Known
from conformance_support import Context, Mosquitto, diff, render, roost_endpoint, start_roost_plain

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Brokers:
    roost: object
    mosquitto: Mosquitto

    def endpoints(self):
        return [roost_endpoint(self.roost), self.mosquitto.endpoint()]


@pytest.fixture(scope="module")
def brokers(tmp_path_factory):
    roost = start_roost_plain(tmp_path_factory.mktemp("conformance-roost") / "data")
    mosquitto = None
    try:
        mosquitto = Mosquitto(tmp_path_factory.mktemp("conformance-mosquitto")).start()
        yield Brokers(roost, mosquitto)
    finally:
        roost.stop()
        if mosquitto:
            mosquitto.stop()


def observe(fn, endpoint):
    ctx = Context(endpoint, fn.__name__)
    try:
        return fn(ctx)
    finally:
        ctx.close_all()


def dump_observations(name, seen):
    """With ROOST_CONFORMANCE_DUMP=<dir>, writes both observations of every
    scenario there (one JSON file each): for reviewing what the suite sees."""
    directory = os.environ.get("ROOST_CONFORMANCE_DUMP")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / f"{name}.json").write_text(render(seen) + "\n")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_conformance(brokers, name):
    fn = SCENARIOS[name]
    # Both brokers at once: independent processes, and it halves the waiting.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {ep.name: pool.submit(observe, fn, ep) for ep in brokers.endpoints()}
        seen = {broker: f.result() for broker, f in futures.items()}
    dump_observations(name, seen)
    # A broker that died (a Roost panic) fails the scenario that killed it.
    assert brokers.roost.proc.poll() is None, f"roost exited: {brokers.roost.read_log()[-4000:]}"
    assert brokers.mosquitto.alive(), "mosquitto exited"
    differences = diff(seen["roost"], seen["mosquitto"])
    found = frozenset(path for path, _, _ in differences)
    expected = KNOWN_DIFFERENCES.get(name, Known(frozenset(), "")).paths
    report = "\n".join(f"  {path}: roost={render(r)} mosquitto={render(m)}" for path, r, m in differences)
    assert found == expected, (
        f"{name}: differences {sorted(found)} but the table lists {sorted(expected)}\n{report}\n"
        f"roost: {render(seen['roost'])}\nmosquitto: {render(seen['mosquitto'])}"
    )


def test_known_differences_name_real_scenarios_and_are_documented():
    doc = (ROOT / "docs" / "conformance.md").read_text()
    for name, entry in KNOWN_DIFFERENCES.items():
        assert name in SCENARIOS, f"KNOWN_DIFFERENCES names no scenario: {name}"
        assert entry.paths and entry.reason, name
        assert f"`{name}`" in doc, f"docs/conformance.md does not list {name}"


def test_the_mqtt5_feature_table_names_real_scenarios():
    """docs/mqtt.md's table of MQTT 5 features names the scenarios that show
    each; every name (or `prefix_*`) must be a scenario here."""
    doc = (ROOT / "docs" / "mqtt.md").read_text()
    section = doc.split("## MQTT 5 in the gateway, by profile", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| feature")]
    assert rows, "no feature table in docs/mqtt.md"
    for row in rows:
        names = re.findall(r"`([a-z0-9_*]+)`", row.rstrip(" |").rsplit("|", 1)[1])
        assert names, f"a feature without a scenario: {row}"
        for name in names:
            if name.endswith("*"):
                assert any(s.startswith(name[:-1]) for s in SCENARIOS), name
            else:
                assert name in SCENARIOS, f"docs/mqtt.md names no scenario: {name}"
