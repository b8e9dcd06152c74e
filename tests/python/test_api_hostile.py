"""The API port under a hostile client: idle sockets, half-sent headers and
bodies announced large and trickled must neither stay open for ever nor take
the file descriptors the device listeners need."""

import resource
import socket
import threading
import time
import pytest

from conftest import make_device
from mqtt_helpers import close, connect_with_inbox, subscribe_wait

# As many hostile connections as the attacker opened, against a Roost
# whose whole descriptor table is 1,024 entries.
HOSTILE = 1000
NOFILE = 1024


def open_hostile(port):
    """HOSTILE connections: a third idle, a third with headers cut short, a
    third with a large body announced and a byte of it sent."""
    socks = []
    for i in range(HOSTILE):
        s = socket.socket()
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        kind = i % 3
        try:
            if kind == 1:
                s.sendall(b"GET /things HTTP/1.1\r\nHost: x\r\n")
            elif kind == 2:
                s.sendall(b"POST /things/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n{")
        except OSError:
            pass  # refused at the cap and closed already
        socks.append(s)
    return socks


def trickle(socks, stop):
    """Keeps sending a byte now and then on every connection, as a slowloris would."""
    while not stop.wait(2):
        for i, s in enumerate(socks):
            try:
                s.sendall(b"a" if i % 3 == 2 else b"X")
            except OSError:
                pass


def closed_by_server(s):
    s.setblocking(False)
    try:
        return s.recv(65536) == b"" or closed_by_server(s)
    except BlockingIOError:
        return False
    except OSError:
        return True


@pytest.mark.xdist_group("heavy")
def test_hostile_api_connections_do_not_starve_devices(roost_factory, tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    roost = roost_factory(nofile=NOFILE)
    api_port = int(roost.endpoints["api"].rsplit(":", 1)[1])
    sender = make_device(roost, tmp_path, "sender")
    receiver = make_device(roost, tmp_path, "receiver")

    socks = open_hostile(api_port)
    stop = threading.Event()
    feeder = threading.Thread(target=trickle, args=(socks, stop), daemon=True)
    feeder.start()
    started = time.monotonic()
    try:
        # Devices connect, publish and are served while the flood holds.
        sub, inbox, result = connect_with_inbox(receiver, roost.mqtt_port, "receiver")
        assert result["rc"] == 0
        assert subscribe_wait(sub, "flood/ok") == [1]
        pub, _, result = connect_with_inbox(sender, roost.mqtt_port, "sender")
        assert result["rc"] == 0
        pub.publish("flood/ok", b"still served", qos=1).wait_for_publish(10)
        assert inbox.get(timeout=10)[:2] == ("flood/ok", b"still served")
        close(pub, sub)

        # Every hostile connection is closed by the server within a minute,
        # trickling or not.
        deadline = started + 60
        open_ones = list(socks)
        while open_ones and time.monotonic() < deadline:
            time.sleep(1)
            open_ones = [s for s in open_ones if not closed_by_server(s)]
        assert not open_ones, f"{len(open_ones)} hostile connections still open after a minute"
    finally:
        stop.set()
        feeder.join()
        for s in socks:
            s.close()

    # The API answers again, and counted what it turned away.
    assert roost.boto().describe_thing(thingName="sender")["thingName"] == "sender"
    assert roost.metric("roost_listener_connections_refused_capacity_total", listener="api") > 0
