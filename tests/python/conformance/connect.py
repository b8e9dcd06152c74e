"""CONNECT variants, client identifiers, protocol levels and keep-alive."""

import time
from concurrent.futures import ThreadPoolExecutor

from conformance_support import MAX_KEEP_ALIVE, V5, V311, Client, connack_capabilities, packets
from conformance import scenario


@scenario
def connect_v311_clean(ctx):
    out = {}
    for step in ("first", "second"):
        c = ctx.client("c", version=V311, clean=True)
        out[step] = c.connect()
        c.disconnect_cleanly()
    return out


@scenario
def connect_v311_persistent(ctx):
    """Session present follows the stored session: resumed, then discarded by
    a clean connect, then absent."""
    out = {}
    for step, clean in (("new", False), ("resume", False), ("clean", True), ("after_clean", False)):
        c = ctx.client("c", version=V311, clean=clean)
        out[step] = c.connect()
        if step == "new":
            out["suback"] = c.subscribe((ctx.topic("x"), 1))
        c.disconnect_cleanly()
    # The clean connect discarded the subscription too.
    c = ctx.connected("c", version=V311, clean=False)
    ctx.connected("pub", version=V311).publish(ctx.topic("x"), "after clean", qos=1)
    out["messages_after_clean"] = c.wait_messages(0, timeout=0, quiet=0.4)
    return out


@scenario
def connect_v311_empty_client_id(ctx):
    """3.1.1 allows an empty client id only with Clean Session = 1 (the server
    assigns one); with Clean Session = 0 the answer is CONNACK 0x02."""
    c = ctx.client(None, version=V311, clean=True)
    out = {"clean": c.connect()}
    out["usable"] = c.subscribe((ctx.topic("x"), 1))
    c.publish(ctx.topic("x"), "to myself", qos=1)
    out["messages"] = c.wait_messages(1)
    raw = ctx.raw(V311)
    out["persistent"] = raw.connect("", clean=False)
    out["persistent_after"] = raw.collect(1.0)
    return out


@scenario
def connect_v5_empty_client_id(ctx):
    """MQTT 5: the server assigns a client id and returns it in CONNACK."""
    c = ctx.client(None, version=V5)
    out = {"clean_start": c.connect()}
    out["clean_start_assigned"] = connack_capabilities(c.connack_props)["assigned_client_identifier"]
    raw = ctx.raw(V5)
    out["no_clean_start"] = raw.connect("", clean=False)
    out["no_clean_start_after"] = raw.collect(1.0)
    return out


@scenario
def v5_assigned_client_id_resumes(ctx):
    """The Assigned Client Identifier is the session's: a client that
    connected with an empty id and a Session Expiry comes back under the id
    it was given, finds its session (subscription and the message queued
    while it was away), and the id is its own (no other client has it)."""
    c = ctx.client(None, version=V5, session_expiry=60)
    out = {"connack": c.connect()}
    assigned = getattr(c.connack_props, "AssignedClientIdentifier", "")
    out["assigned"] = bool(assigned)
    out["suback"] = c.subscribe((ctx.topic("x"), 1))
    c.disconnect_cleanly()
    ctx.connected("pub", version=V5).publish(ctx.topic("x"), "while away", qos=1)
    back = Client(ctx, assigned, version=V5, clean=False, session_expiry=0)
    out["back"] = back.connect()
    out["queued"] = back.wait_messages(1)
    other = ctx.client(None, version=V5)
    other.connect()
    out["another_id"] = getattr(other.connack_props, "AssignedClientIdentifier", "") not in ("", assigned)
    return out


@scenario
def connect_v5_capabilities(ctx):
    """What the MQTT 5 CONNACK says the server supports (defaults filled
    in), to a client that also asks for Response Information."""
    c = ctx.client("c", version=V5, connect_properties={"RequestResponseInformation": 1})
    out = {"connack": c.connect(), "capabilities": connack_capabilities(c.connack_props),
           "response_information": hasattr(c.connack_props, "ResponseInformation")}
    c.disconnect_cleanly()
    return out


@scenario
def connect_v5_session_expiry(ctx):
    out = {}
    steps = (("new", True, 60), ("resume", False, 60), ("resume_expiry0", False, 0), ("after_expiry0", False, 60))
    for step, clean, expiry in steps:
        c = ctx.client("c", version=V5, clean=clean, session_expiry=expiry)
        out[step] = c.connect()
        c.disconnect_cleanly()
    return out


@scenario
def v5_session_expiry_elapsed(ctx):
    """A session whose expiry has passed is gone. Mosquitto removes expired
    sessions on a timer (about every second; Roost checks at reconnect), so
    the check waits long enough for both."""
    c = ctx.client("c", version=V5, clean=True, session_expiry=1)
    out = {"new": c.connect()}
    c.disconnect_cleanly()
    time.sleep(6.5)
    c = ctx.client("c", version=V5, clean=False, session_expiry=0)
    out["after_expiry"] = c.connect()
    c.disconnect_cleanly()
    return out


@scenario
def connect_username_password(ctx):
    """A username and password are accepted (and, here, ignored) by both."""
    out = {}
    for version in (V311, V5):
        c = ctx.client(f"u{version}", version=version, username="someone", password="secret")
        out[f"v{version}"] = c.connect()
        c.disconnect_cleanly()
    return out


@scenario
def connect_mqtt31(ctx):
    """MQTT 3.1 (protocol name MQIsdp, level 3)."""
    raw = ctx.raw(V311)
    raw.send(packets.connect(ctx.client_id("c"), version=3, protocol_name="MQIsdp"))
    return {"connack": raw.read(), "after": raw.collect(0.5)}


@scenario
def connect_unsupported_protocol_level(ctx):
    raw = ctx.raw(V311)
    raw.send(packets.connect(ctx.client_id("c"), version=6))
    return {"connack": raw.read(), "after": raw.collect(1.0)}


@scenario
def connect_unusual_client_ids(ctx):
    """A 200-byte client id (above AWS's 128; the full profile allows more)
    and one with MQTT's special characters."""
    out = {}
    for name, client_id in (("long", "x" * 200), ("special", "a/b+c#d $e")):
        c = ctx.client(client_id, version=V311)
        out[name] = c.connect()
        c.disconnect_cleanly()
    return out


def silent_client(ctx, version):
    """Connects with keep-alive 1 s and a will, then says nothing; returns
    what it saw until the server closed the connection (or 8 s passed).

    When the close comes is not compared: the spec says 1.5 x keep-alive,
    Roost closes at 1.5 s, but Mosquitto 2.0.11 checks keep-alives on a
    coarse timer and closes anywhere between 1.5 and about 6.5 s."""
    raw = ctx.raw(version)
    connack = raw.connect(ctx.client_id(f"silent{version}"), keepalive=1,
                          will=(ctx.topic(f"will{version}"), b"timed out", 1, False))
    return {"connack": connack, "after": raw.collect(8.0)}


@scenario
def keepalive_timeout(ctx):
    """A client that goes silent is cut after 1.5 x keep-alive, and its will
    goes out. Both protocol versions at once, to keep the wait short."""
    watcher = ctx.connected("watcher", version=V5)
    watcher.subscribe((ctx.topic("#"), 1))
    with ThreadPoolExecutor(max_workers=2) as pool:
        v311, v5 = pool.map(lambda v: silent_client(ctx, v), (V311, V5))
    return {"v311": v311, "v5": v5, "wills": watcher.wait_messages(2, timeout=2.0)}


@scenario
def server_keep_alive(ctx):
    """Both brokers are configured with the same longest keep alive
    (MAX_KEEP_ALIVE): an MQTT 5 client asking for more, or for none, is
    given that one in CONNACK's Server Keep Alive; one asking for less keeps
    its own; a 3.1.1 client cannot be told and is accepted as it asks."""
    out = {}
    for version in (V5, V311):
        for asked in (MAX_KEEP_ALIVE + 400, 0, 30, MAX_KEEP_ALIVE):
            c = ctx.client(f"c{version}-{asked}", version=version, keepalive=asked)
            connack = c.connect()
            server = getattr(c.connack_props, "ServerKeepAlive", None) if c.connack_props else None
            out[f"v{version}_asked_{asked}"] = {"connack": connack, "server_keep_alive": server}
            c.disconnect_cleanly()
    return out


@scenario
def keepalive_zero(ctx):
    """Keep-alive 0 turns the mechanism off: still connected after 1.6 s."""
    raw = ctx.raw(V311)
    connack = raw.connect(ctx.client_id("c"), keepalive=0)
    time.sleep(1.6)
    raw.send(packets.PINGREQ)
    return {"connack": connack, "ping": raw.read()}


def pipelined_connect(ctx, version):
    """CONNECT, SUBSCRIBE, a QoS 1 PUBLISH to that subscription and a PINGREQ
    in one TCP write, as a client that does not wait for CONNACK may send
    them: every packet after CONNECT is handled. CONNACK comes first; the
    order of the others (the delivery, the acknowledgements, the PINGRESP)
    is the broker's, so they are compared sorted by type."""
    raw = ctx.raw(version)
    raw.send(packets.connect(ctx.client_id("c"), version=version)
             + packets.subscribe(1, [(ctx.topic("x"), 1)], version=version)
             + packets.publish(ctx.topic("x"), "pipelined", qos=1, packet_id=2, version=version)
             + packets.PINGREQ)
    seen = []
    while len(seen) < 5:
        packet = raw.read(3.0)
        if packet["type"] in ("CLOSED", "TIMEOUT"):
            break
        seen.append(packet)
    for packet in seen:
        if packet.get("topic"):
            packet["topic"] = ctx.relative(packet["topic"])
    return {"first": seen[:1], "then": sorted(seen[1:], key=lambda p: p["type"]),
            "still_open": raw.collect(0.2)["closed"] is False}


@scenario
def pipelined_connect_v311(ctx):
    return pipelined_connect(ctx, V311)


@scenario
def pipelined_connect_v5(ctx):
    return pipelined_connect(ctx, V5)
