"""What an acknowledged message survives: the shipped Mosquitto settings (docs/examples/
mosquitto.conf) keep every QoS 1 message the broker acknowledged across a kill -9 of the broker;
Mosquitto's default persistence (a save every 1,800 s) keeps none of them.  An input is in no
netedge store until the gateway logs it, so the broker's own durability is the only thing that
holds it meanwhile (a gateway away, restarting, or behind)."""
import os
import time

import paho.mqtt.client as paho

from conftest import REPO
from mosquitto import Mosquitto

SHIPPED = os.path.join(REPO, "docs", "examples", "mosquitto.conf")
N = 300


def shipped_persistence():
    """The persistence lines of the shipped configuration (without their comments)."""
    out = []
    for line in open(SHIPPED, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if line.startswith(("persistence ", "autosave_")):
            out.append(line)
    assert "persistence true" in out and "autosave_on_changes true" in out, out
    return out


def client(port, cid, clean):
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def survivors(tmp_path, settings):
    """N QoS 1 messages acknowledged by the broker for an offline persistent session, then the
    broker kill -9'd at once and started again: (acknowledged, delivered to the session)."""
    pdir = tmp_path / "persist"
    pdir.mkdir()
    conf = "\n".join(settings + ["persistence_location %s/" % pdir])
    broker = Mosquitto(tmp_path / "broker", extra_conf=conf).start()
    try:
        sub = client(broker.port, "gateway", False)
        sub.subscribe("ne/v1/d/+/in", qos=1)
        time.sleep(0.3)
        sub.disconnect()
        sub.loop_stop()
        acked = []
        pub = client(broker.port, "sensor", True)
        pub.on_publish = lambda c, u, mid, rc, props: acked.append(mid)
        for i in range(N):
            pub.publish("ne/v1/d/0a0b0c0d/in", b"%d" % i, qos=1)
        deadline = time.monotonic() + 10
        while len(acked) < N and time.monotonic() < deadline:
            time.sleep(0.005)
        broker.kill()  # SIGKILL right after the last acknowledgement
        pub.loop_stop()
        broker.start()
        got = set()
        sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="gateway", clean_session=False)
        sub.on_message = lambda c, u, m: got.add(bytes(m.payload))
        sub.connect("127.0.0.1", broker.port)
        sub.loop_start()
        deadline = time.monotonic() + 5
        while len(got) < len(acked) and time.monotonic() < deadline:
            time.sleep(0.02)
        sub.loop_stop()
        return len(acked), len(got)
    finally:
        broker.stop()


def test_the_shipped_settings_keep_what_the_broker_acknowledged(tmp_path):
    acked, delivered = survivors(tmp_path, shipped_persistence())
    assert acked == N and delivered == N, (acked, delivered)


def test_mosquittos_default_persistence_loses_it(tmp_path):
    """(The reason for the shipped settings: the same run with `persistence true` alone.)"""
    acked, delivered = survivors(tmp_path, ["persistence true"])
    assert acked == N and delivered == 0, (acked, delivered)
