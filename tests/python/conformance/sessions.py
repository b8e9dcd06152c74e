"""Session takeover and session expiry."""

from conformance_support import V5, V311
from conformance import scenario


def takeover(ctx, version):
    old = ctx.connected("c", version=version)
    new = ctx.client("c", version=version)
    out = {"new": new.connect()}
    out["old_closed"] = old.wait_closed(3.0)
    out["new_still_connected"] = new.wait_closed(0.3) is None
    return out


@scenario
def takeover_v311(ctx):
    return takeover(ctx, V311)


@scenario
def takeover_v5(ctx):
    return takeover(ctx, V5)


@scenario
def takeover_persistent_session(ctx):
    """A takeover with Clean Session 0 continues the session: session present
    and the old subscriptions."""
    old = ctx.connected("c", version=V311, clean=False)
    old.subscribe((ctx.topic("x"), 1))
    new = ctx.client("c", version=V311, clean=False)
    out = {"new": new.connect(), "old_closed": old.wait_closed(3.0)}
    ctx.connected("pub", version=V311).publish(ctx.topic("x"), "to the session", qos=1)
    out["messages"] = new.wait_messages(1)
    new.disconnect_cleanly()
    ctx.connected("c", version=V311, clean=True).disconnect_cleanly()
    return out


@scenario
def takeover_clean_then_persistent(ctx):
    """The old connection had Clean Session 1, so its session ended with it:
    the new Clean Session 0 connection finds no session (spec 3.1.2.4)."""
    old = ctx.connected("c", version=V311, clean=True)
    old.subscribe((ctx.topic("x"), 1))
    new = ctx.client("c", version=V311, clean=False)
    out = {"new": new.connect(), "old_closed": old.wait_closed(3.0)}
    ctx.connected("pub", version=V311).publish(ctx.topic("x"), "to the old session", qos=1)
    out["messages"] = new.wait_messages(0, timeout=0, quiet=0.4)
    new.disconnect_cleanly()
    ctx.connected("c", version=V311, clean=True).disconnect_cleanly()
    return out


@scenario
def takeover_expiry0_then_resume_v5(ctx):
    """MQTT 5 form of the above: the old connection's Session Expiry was 0,
    so its session ended with it; Clean Start 0 finds no session."""
    old = ctx.connected("c", version=V5, clean=True, session_expiry=0)
    old.subscribe((ctx.topic("x"), 1))
    new = ctx.client("c", version=V5, clean=False, session_expiry=0)
    out = {"new": new.connect(), "old_closed": old.wait_closed(3.0) is not None}
    ctx.connected("pub", version=V5).publish(ctx.topic("x"), "to the old session", qos=1)
    out["messages"] = new.wait_messages(0, timeout=0, quiet=0.4)
    return out


@scenario
def v5_session_expiry_set_by_disconnect(ctx):
    """DISCONNECT can shorten the session expiry to 0: the session ends."""
    c = ctx.connected("c", version=V5, clean=True, session_expiry=60)
    c.subscribe((ctx.topic("x"), 1))
    c.disconnect_cleanly(properties={"SessionExpiryInterval": 0})
    again = ctx.client("c", version=V5, clean=False, session_expiry=0)
    return {"reconnect": again.connect()}
