"""The table scripts/bench prints: one row per metric, one column per broker,
the ratios of Roost to each peer, the target and whether it was met.

Usage: table.py RESULTS.jsonl ELAPSED_SECONDS BROKER... (roost first when it
ran). Reads the JSON lines roost-bench printed, each with "metric", "label"
(the broker) and "round" added by the script; prints Markdown.
"""

import json
import statistics
import sys

NAMES = {"roost": "Roost", "mosquitto": "Mosquitto", "rumqttd": "rumqttd"}

# What each broker checks on every connection and message, beside the table.
NOTES = {
    "roost": "Roost evaluates the certificate's attached IoT policy on every CONNECT, "
    "SUBSCRIBE and PUBLISH (an allow-all policy here, still evaluated).",
    "mosquitto": "Mosquitto runs without an ACL file: it authorizes nothing.",
    "rumqttd": "rumqttd has no authorization at all (no policy, no ACL): it checks "
    "nothing after the TLS handshake. It keeps every published message in a "
    "per-filter log in memory, never freed while it runs; its TLS handshakes are "
    "done one at a time in its accept loop; it does not turn Nagle off.",
}

records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
elapsed = sys.argv[2]
brokers = sys.argv[3:]
peers = [b for b in brokers if b != "roost"] if "roost" in brokers else []


def runs(metric, label):
    return [r for r in records if r.get("metric") == metric and r.get("label") == label]


def good(metric, label):
    return [r for r in runs(metric, label) if not r.get("failed")]


def values(metric, label, pick):
    return [v for v in (pick(r) for r in good(metric, label)) if v is not None]


def median(metric, label, pick):
    v = values(metric, label, pick)
    return statistics.median(v) if v else None


def lost(metric, label):
    return sum(r.get("lost", 0) for r in good(metric, label))


def has_errors(metric, label):
    return any(r.get("failed") or r.get("errors") or r.get("first_error")
               for r in runs(metric, label))


def number(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


rows = []
spreads = []


def row(name, metric, pick, unit, target, losses=False):
    """target: (kind, detail). kind "ahead": higher is better, Roost must be
    above every peer; "below": lower is better, Roost must be under every
    peer; "info": reported only. detail: for "ahead"/"below", a dict with
    optional "lossless" (Roost must lose nothing) and "floor" (an absolute
    minimum for Roost)."""
    medians = {b: median(metric, b, pick) for b in brokers}
    if all(not runs(metric, b) for b in brokers):
        return
    ranges = []
    for b in brokers:
        v = values(metric, b, pick)
        if len(v) > 1:
            ranges.append(f"{NAMES[b]} {number(min(v))}–{number(max(v))}")
    if ranges:
        spreads.append(f"- {name} ({unit}): " + ", ".join(ranges))

    def cell(b):
        if not runs(metric, b):
            return "not run"
        v = medians[b]
        text = "failed" if v is None else number(v)
        if losses:
            text += f" (lost {lost(metric, b):,})"
        if has_errors(metric, b):
            text += " (errors)"
        return text

    ratios = {}
    for p in peers:
        r, m = medians.get("roost"), medians[p]
        ratios[p] = r / m if r is not None and m not in (None, 0) else None
    kind, detail = target
    detail = detail or {}
    if kind == "info" or "roost" not in brokers:
        goal, met = "(reported)", "—"
    else:
        higher = kind == "ahead"
        goals, checks = [], []
        if peers:
            goals.append(("above " if higher else "below ") + " and ".join(NAMES[p] for p in peers))
            checks += [None if ratios[p] is None else (ratios[p] > 1 if higher else ratios[p] < 1)
                       for p in peers]
        if "floor" in detail:
            goals.append(f"≥ {detail['floor']:,}{unit}")
            checks.append(None if medians["roost"] is None else medians["roost"] >= detail["floor"])
        if detail.get("lossless"):
            goals.append("nothing lost")
            checks.append(lost(metric, "roost") == 0 and not has_errors(metric, "roost"))
        goal = ", ".join(goals) or "(no peer in this run)"
        if not checks:
            met = "—"
        elif None in checks:
            met = "no result"
        else:
            met = "yes" if all(checks) else "**no**"
    rows.append([f"{name} ({unit})"] + [cell(b) for b in brokers]
                + ["—" if ratios[p] is None else f"{ratios[p]:.2f}" for p in peers]
                + [goal, met])


tp = lambda r: r.get("delivered_per_s")
per_cpu = lambda r: r.get("delivered_per_broker_cpu_s")
lossless = {"lossless": True}
for shape in ("pairs", "fan-in", "fan-out"):
    for q in (0, 1):
        row(f"throughput, {shape}, QoS {q}", f"{shape}-q{q}", tp, "msgs/s",
            ("ahead", lossless), losses=True)
for q in (0, 1):
    row(f"pairs, QoS {q}, per broker CPU-second", f"pairs-q{q}", per_cpu, "msgs/CPU-s",
        ("ahead", None))
for shape in ("pairs", "fan-in"):
    for q in (0, 1):
        # QoS 0 may be dropped under overload; the drops are shown.
        row(f"throughput, {shape}, QoS {q}, unpaced publishers", f"{shape}-unpaced-q{q}", tp,
            "msgs/s", ("ahead", lossless if q == 1 else None), losses=True)
for q in (0, 1):
    row(f"pairs, QoS {q}, unpaced, per broker CPU-second", f"pairs-unpaced-q{q}", per_cpu,
        "msgs/CPU-s", ("ahead", None))
row("throughput, pairs, QoS 1, persistent subscribers", "pairs-q1-persistent", tp, "msgs/s",
    ("info", None), losses=True)
for q in (0, 1):
    lat = lambda r, k: (r.get("latency") or {}).get(k)
    row(f"latency p50, QoS {q}", f"latency-q{q}", lambda r: lat(r, "p50_us"), "µs", ("info", None))
    row(f"latency p99, QoS {q}", f"latency-q{q}", lambda r: lat(r, "p99_us"), "µs",
        ("below", None))
row("mTLS connects per second", "connects", lambda r: r.get("connects_per_s"), "/s",
    ("ahead", {"floor": 1000}))
row("mTLS connects per broker CPU-second", "connects",
    lambda r: r.get("connects_per_broker_cpu_s"), "/CPU-s", ("info", None))
row("RSS per idle TLS connection", "idle", lambda r: r.get("rss_per_connection_kib"), "KiB",
    ("below", None))

header = (["metric"] + [NAMES[b] for b in brokers] + [f"Roost/{NAMES[p]}" for p in peers]
          + ["target", "met"])
print("| " + " | ".join(header) + " |")
print("|" + "---|" * len(header))
for r in rows:
    print("| " + " | ".join(r) + " |")
print()
ratio_note = " Roost/peer is the ratio of the medians." if peers else ""
print(f"Medians over the rounds.{ratio_note} Loads took {elapsed} s.")
print("Losses (lost: what was published times the subscribers of its topic, less what was "
      "delivered) are summed over the rounds.")
print()
for b in brokers:
    print(f"- {NAMES[b]}: {NOTES[b]}")
if spreads:
    print()
    print("Range over the rounds (min–max):")
    print()
    for line in spreads:
        print(line)
bad = [r for r in records if r.get("failed") or r.get("errors") or r.get("first_error")
       or r.get("lost") or r.get("out_of_order") or r.get("failed_by_stage")]
if bad:
    print()
for r in bad:
    print(f"- note: {r.get('label')} {r.get('metric')} round {r.get('round')}: "
          + ("run failed" if r.get("failed") else
             f"lost {r.get('lost', 0)}, out of order {r.get('out_of_order', 0)}, "
             f"failed {r.get('failed_by_stage') or 0}, "
             f"errors {r.get('errors') or r.get('first_error')}"))
