"""Wills: when they are sent, their properties, Will Delay."""

import time

from paho.mqtt.packettypes import PacketTypes

from conformance_support import V5, V311, packets, props
from conformance import scenario


def will_args(ctx, name="will", qos=1, retain=False, properties=None):
    args = {"topic": ctx.topic(name), "payload": f"{name} payload", "qos": qos, "retain": retain}
    if properties:
        args["properties"] = props(PacketTypes.WILLMESSAGE, **properties)
    return args


def will_watcher(ctx, filter_suffix="#"):
    watcher = ctx.connected("watcher", version=V5)
    watcher.subscribe((ctx.topic(filter_suffix), 1))
    return watcher


def will_on_drop(ctx, version):
    """The will of a connection that just ends; in MQTT 5 with every will
    property a subscriber sees (spec 3.1.3.2), passed through unchanged
    (the expiry as the time left, compared as "within the window")."""
    watcher = will_watcher(ctx)
    extra = {}
    if version == V5:
        extra = {"properties": {
            "ContentType": "text/plain", "PayloadFormatIndicator": 1, "MessageExpiryInterval": 3600,
            "UserProperty": [("why", "gone"), ("a", "1"), ("why", "again")],
            "ResponseTopic": ctx.topic("reply"), "CorrelationData": b"42",
        }}
    device = ctx.connected("device", version=version, will=will_args(ctx, **extra))
    device.drop()
    will = watcher.wait_messages(1)
    for message in will:
        if "message_expiry" in message:
            message["message_expiry"] = 3590 <= message["message_expiry"] <= 3600
    return {"will": will}


@scenario
def will_abrupt_close_v311(ctx):
    return will_on_drop(ctx, V311)


@scenario
def will_abrupt_close_v5(ctx):
    return will_on_drop(ctx, V5)


@scenario
def will_clean_disconnect(ctx):
    """No will after a clean DISCONNECT (3.1.1 and MQTT 5 reason 0x00)."""
    watcher = will_watcher(ctx)
    for version in (V311, V5):
        ctx.connected(f"device{version}", version=version, will=will_args(ctx)).disconnect_cleanly()
    return {"will": watcher.wait_messages(0, timeout=0, quiet=0.5)}


@scenario
def will_v5_disconnect_with_will(ctx):
    """MQTT 5 DISCONNECT with reason 0x04 asks for the will."""
    watcher = will_watcher(ctx)
    ctx.connected("device", version=V5, will=will_args(ctx)).disconnect_cleanly(reason=0x04)
    return {"will": watcher.wait_messages(1)}


@scenario
def will_retain(ctx):
    """A retained will is stored: a later subscriber gets it with RETAIN=1."""
    watcher = will_watcher(ctx)
    ctx.connected("device", version=V311, will=will_args(ctx, retain=True)).drop()
    # Once the watcher has it, the will is stored.
    watcher.wait_messages(1, quiet=0)
    later = ctx.connected("later", version=V311)
    later.subscribe((ctx.topic("will"), 1))
    return {"stored_will": later.wait_messages(1)}


@scenario
def will_on_takeover(ctx):
    """The will of a connection closed by a takeover (same client id)."""
    watcher = will_watcher(ctx)
    out = {}
    for version in (V311, V5):
        ctx.connected(f"device{version}", version=version, will=will_args(ctx, f"will{version}"))
        ctx.connected(f"device{version}", version=version)
    out["wills"] = watcher.wait_messages(2, timeout=2)
    return out


@scenario
def will_on_protocol_error(ctx):
    """A connection closed for a malformed packet sends its will."""
    watcher = will_watcher(ctx)
    raw = ctx.raw_connected("device", version=V311, will=(ctx.topic("will"), b"broken", 1, False))
    raw.send(packets.publish(ctx.topic("x"), "qos 3", first_byte=0x36, packet_id=1))
    return {"after": raw.collect(1.0), "will": watcher.wait_messages(1)}


@scenario
def will_delay_session_ends(ctx):
    """Will Delay 2 s but Session Expiry 0: the session ends with the
    connection, so the will goes out at once (spec 3.1.3.2.2: at the delay
    or when the session ends, whichever is first)."""
    watcher = will_watcher(ctx)
    device = ctx.connected("device", version=V5, session_expiry=0,
                           will=will_args(ctx, properties={"WillDelayInterval": 2}))
    device.drop()
    started = time.monotonic()
    # Mosquitto runs will delays on a ~1 s timer (a 2 s delay fires after 2.6-2.9 s): wait long enough.
    received = watcher.wait_messages(1, timeout=6.0, quiet=0)
    return {"will": received, "within_1_s": bool(received) and time.monotonic() - started < 1.0}


@scenario
def will_delay_reconnect(ctx):
    """Will Delay with a persistent session: the will is published after the
    delay (1 s for "gone"), unless the client reconnects first (2 s for
    "back", which reconnects at once)."""
    watcher = will_watcher(ctx)
    gone = ctx.connected("gone", version=V5, session_expiry=60,
                         will=will_args(ctx, "gone", properties={"WillDelayInterval": 1}))
    back = ctx.connected("back", version=V5, session_expiry=60,
                         will=will_args(ctx, "back", properties={"WillDelayInterval": 2}))
    gone.drop()
    dropped_at = time.monotonic()
    back.drop()
    again = ctx.client("back", version=V5, clean=False, session_expiry=60)
    out = {"reconnect": again.connect()}
    watcher.wait_messages(1, timeout=5.0, quiet=0)
    # Long enough past back's delay for Mosquitto's ~1 s will-delay timer.
    time.sleep(max(0.0, dropped_at + 3.2 - time.monotonic()))
    out["wills"] = watcher.received()
    out["gone_not_before_its_delay"] = bool(watcher.arrivals) and watcher.arrivals[0] - dropped_at >= 0.9
    again.disconnect_cleanly()
    for name in ("gone", "back"):
        ctx.connected(name, version=V5).disconnect_cleanly()
    return out


@scenario
def will_delay_takeover(ctx):
    """Will Delay 1 s and a takeover that continues the session (Clean Start
    0): the will is not sent (spec 3.1.3.2.2)."""
    watcher = will_watcher(ctx)
    ctx.connected("device", version=V5, session_expiry=60, will=will_args(ctx, properties={"WillDelayInterval": 1}))
    new = ctx.client("device", version=V5, clean=False, session_expiry=60)
    out = {"takeover": new.connect(), "will": watcher.wait_messages(0, timeout=0, quiet=1.6)}
    new.disconnect_cleanly(properties={"SessionExpiryInterval": 0})
    return out
