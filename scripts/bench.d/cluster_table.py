"""The table scripts/bench-cluster prints: one row per measure, one column
per setup, and the ratios that answer the questions: what a second node
costs (across / one node alone), what JetStream costs (QoS 1 / QoS 0 across
nodes), and Roost's cluster beside single-node peers.

Usage: cluster_table.py RESULTS.jsonl LABEL... (one, same, cross, then
peers). Prints Markdown; medians over rounds, losses summed.
"""

import json
import statistics
import sys

NAMES = {
    "one": "Roost, one node",
    "same": "cluster, same node",
    "cross": "cluster, across nodes",
    "mosquitto": "Mosquitto",
    "rumqttd": "rumqttd",
}

records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
labels = sys.argv[2:]
peers = [label for label in labels if label not in ("one", "same", "cross")]


def good(metric, label):
    return [r for r in records if r.get("metric") == metric and r.get("label") == label and not r.get("failed")]


def median(metric, label, pick):
    values = [v for v in (pick(r) for r in good(metric, label)) if v is not None]
    return statistics.median(values) if values else None


def lost(metric, label):
    return sum(r.get("lost", 0) for r in good(metric, label))


def failed(metric, label):
    return any(r.get("failed") or r.get("errors") for r in records
               if r.get("metric") == metric and r.get("label") == label)


def number(x):
    return "—" if x is None else (f"{x:,.0f}" if x >= 100 else f"{x:,.2f}")


def ratio(a, b):
    return "—" if a is None or not b else f"{a / b:.2f}"


MEASURES = [
    ("QoS 0 pairs, msgs/s", "pairs-q0", lambda r: r.get("delivered_per_s"), True),
    ("QoS 1 pairs, msgs/s", "pairs-q1", lambda r: r.get("delivered_per_s"), True),
    ("QoS 0 pairs, msgs per CPU-second (all processes)", "pairs-q0", lambda r: r.get("delivered_per_broker_cpu_s"), False),
    ("QoS 1 pairs, msgs per CPU-second (all processes)", "pairs-q1", lambda r: r.get("delivered_per_broker_cpu_s"), False),
    ("QoS 1 latency p50, µs", "latency-q1", lambda r: (r.get("latency") or {}).get("p50_us"), True),
    ("QoS 1 latency p99, µs", "latency-q1", lambda r: (r.get("latency") or {}).get("p99_us"), True),
]

header = ["measure"] + [NAMES.get(label, label) for label in labels]
header += ["across / one node", "across / same node"] + [f"across / {NAMES[p]}" for p in peers]
print("| " + " | ".join(header) + " |")
print("|" + "---|" * len(header))
for name, metric, pick, show_losses in MEASURES:
    medians = {label: median(metric, label, pick) for label in labels}
    cells = []
    for label in labels:
        text = number(medians[label])
        if show_losses:
            text += f" (lost {lost(metric, label):,})"
        if failed(metric, label):
            text += " (errors)"
        cells.append(text)
    cross = medians.get("cross")
    cells += [ratio(cross, medians.get("one")), ratio(cross, medians.get("same"))]
    cells += [ratio(cross, medians.get(p)) for p in peers]
    print("| " + " | ".join([name] + cells) + " |")

q0, q1 = median("pairs-q0", "cross", lambda r: r.get("delivered_per_s")), median("pairs-q1", "cross", lambda r: r.get("delivered_per_s"))
print()
print(f"What JetStream costs across nodes: QoS 1 delivers {ratio(q1, q0)} of QoS 0's throughput "
      "(QoS 0 goes over core NATS; QoS 1 is stored in the stream before its PUBACK and read back by every node).")
