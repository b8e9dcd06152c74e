"""The scenarios of the differential conformance suite, one module per topic
(connect, qos, topics, retained, wills, sessions, mqtt5, malformed), and the
known differences (known). test_conformance.py is the one collection point:
it runs every scenario registered here against both brokers.

A scenario is a function of a `Context` (an endpoint and a namespace unique
to the scenario) that returns plain data; `@scenario` registers it under its
function name, which must be unique across the modules.
"""

SCENARIOS = {}


def scenario(fn):
    assert fn.__name__ not in SCENARIOS, f"two scenarios named {fn.__name__}"
    SCENARIOS[fn.__name__] = fn
    return fn


def mqtt_match(topic_filter: str, topic: str) -> bool:
    """MQTT topic matching (spec 4.7), used only to know how many messages
    to wait for; the brokers' answers are what is compared."""
    if topic.startswith("$") and topic_filter[:1] in ("#", "+"):
        return False
    f, t = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)


# The scenario modules register themselves on import (after `scenario` exists).
from conformance import connect, qos, topics, retained, wills, sessions, mqtt5, malformed  # noqa: E402,F401
from conformance.known import KNOWN_DIFFERENCES, Known  # noqa: E402,F401
