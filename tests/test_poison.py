"""Poison messages: MQTT messages a node cannot take (over its largest packet, firmware/main.py
MAX_PACKET) on the topics it subscribes to.  Real Mosquitto (the test broker has no size limit,
so the node's own defence is what is tested), a real gateway process, unix-port nodes.

Each one is read past, acknowledged (the broker drops it), reported once (an ERROR `oversize`
naming its topic, and the heartbeat's mqtt counter) and dropped: the node keeps its connection
(no last will, so no failover) and the next input is processed.  A retained one reaches a node
that subscribes later (here a migration target) and is refused there the same way."""
import os
import queue
import time

import paho.mqtt.client as paho

from netedge.shared import frame as FR
from netedge.shared import topics as T

from cluster import Cluster, check_chain, migrate_outcome
from gateways import deploy
from mosquitto import Mosquitto
from test_standby import create_group, group_of

POISON = 70 * 1000  # over 8 x the node's 8 KB packets: what used to loop the node through its will


def offline_statuses(obs):
    """STATUS frames saying `offline` (a node's last will) the observer saw, by node."""
    with obs.lock:
        return [t.split("/")[3] for t, f in obs.frames
                if not isinstance(f, Exception) and f.type == FR.STATUS and f.body().get("state") == "offline"]


def refusals(obs, node, topic):
    with obs.lock:
        return [b for n, b in obs.errors if n == node and b.get("at") == topic and b.get("code") == "oversize"]


def fresh_heartbeat(obs, node):
    obs.heartbeats.pop(node, None)
    obs.wait(lambda: node in obs.heartbeats, 5, "a heartbeat of " + node)
    return obs.heartbeats[node]


def test_oversize_messages_on_an_inbox_live_retained_and_on_a_control_topic(tmp_path, firmware):
    c = Cluster(tmp_path, firmware, ["n1", "n2", "n3", "n4"])  # n4: outside the group
    obs = c.obs
    try:
        a = create_group(c, "--nodes", "n1,n2,n3", "--sync-every", "5")  # a will would promote a standby
        assert group_of(c, a)["active"] == "n1"
        d = deploy(c.cfg, "counter", "n1")  # a daemon to migrate, for the retained case
        for v in (1, 2, 3):
            obs.send_input(a, b"%d" % v)
        obs.wait_seq(a, 3)
        assert fresh_heartbeat(obs, "n1")["mqtt"]["connects"] == 1

        # live, on an inbox: refused once, the next input processed
        inbox = T.daemon(a, "in")
        obs.publish_raw(inbox, b"\x00" * POISON)
        obs.send_input(a, b"4")
        obs.wait_seq(a, 4)
        obs.wait(lambda: refusals(obs, "n1", inbox), 5, "n1's refusal of the inbox poison")

        # on the node's control topic: the same
        ctl = T.node("n1", "ctl")
        obs.publish_raw(ctl, b"\x01" * POISON)
        obs.send_input(a, b"5")
        obs.wait_seq(a, 5)
        obs.wait(lambda: refusals(obs, "n1", ctl), 5, "n1's refusal of the control poison")

        # retained, on the inbox of a daemon that then migrates: its host gets it live (refused),
        # the migration target gets it when it subscribes (refused), and the daemon keeps going
        din = T.daemon(d, "in")
        obs.c.publish(din, b"\x02" * POISON, qos=1, retain=True).wait_for_publish(5)
        obs.wait(lambda: refusals(obs, "n1", din), 5, "n1's refusal of the retained poison")
        host, epoch = migrate_outcome(c.migrate(d, "n4", check=False), d, target="n4")
        assert (host, epoch) == ("n4", 2)
        obs.wait(lambda: refusals(obs, "n4", din), 10, "n4's refusal of the retained poison")
        obs.send_input(d, b"1")
        obs.wait_seq(d, 1)
        obs.c.publish(din, b"", qos=1, retain=True).wait_for_publish(5)  # (cleared)

        time.sleep(1.0)  # anything late (a second report, a will) would show by now
        assert [len(refusals(obs, "n1", t)) for t in (inbox, ctl, din)] == [1, 1, 1]
        assert [len(refusals(obs, "n4", t)) for t in (inbox, ctl, din)] == [0, 0, 1]
        assert offline_statuses(obs) == []  # zero last wills
        hb1, hb2 = fresh_heartbeat(obs, "n1"), fresh_heartbeat(obs, "n4")
        assert hb1["mqtt"]["oversize"] == 3 and hb1["mqtt"]["connects"] == 1, hb1["mqtt"]
        assert hb2["mqtt"]["oversize"] == 1 and hb2["mqtt"]["connects"] == 1, hb2["mqtt"]
        assert "malformed" not in hb1["mqtt"] and "dead" not in hb1["mqtt"]
        g = group_of(c, a)  # zero failovers: n1 still the active, at its first epoch
        assert g["active"] == "n1" and not g.get("promotions"), g
        check_chain(c, a, 5, 1, "n1")
        st = c.gw.store()
        try:
            assert {n.node_id: n.status for n in st.nodes()} == dict.fromkeys(("n1", "n2", "n3", "n4"), "online")
            assert list(st.records()) == []  # no discontinuity of any kind
        finally:
            st.close()
        print("refusals: n1 %s, n4 %s" % (hb1["mqtt"], hb2["mqtt"]))
    except Exception:
        print(c.gw.output()[-6000:])
        raise
    finally:
        c.close()


def test_shipped_broker_config_drops_what_a_node_would_refuse(tmp_path):
    """docs/examples/mosquitto.conf caps payloads at MAX_FRAME, below the node's largest packet:
    a whole frame on the longest topic still reaches a subscriber, one byte more does not."""
    from netedge.firmware import main as node_main
    conf = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "examples",
                        "mosquitto.conf")
    limit = [int(ln.split()[1]) for ln in open(conf) if ln.startswith("message_size_limit")]
    assert limit == [FR.MAX_FRAME]
    longest = T.node("n" * 32, "status")  # node ids are 1..32 bytes (the frame's sender)
    assert 2 + len(longest) + 2 + limit[0] <= node_main.MAX_PACKET
    b = Mosquitto(tmp_path / "b", extra_conf="message_size_limit %d" % limit[0]).start()
    got = queue.Queue()
    sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="sub")
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="pub")
    try:
        sub.on_message = lambda c, u, m: got.put(len(m.payload))
        sub.connect(b.host, b.port)
        sub.subscribe(longest, 1)
        sub.loop_start()
        pub.connect(b.host, b.port)
        pub.loop_start()
        time.sleep(0.3)
        for n in (FR.MAX_FRAME, FR.MAX_FRAME + 1, POISON, 3):
            info = pub.publish(longest, b"z" * n, qos=1)
            info.wait_for_publish(5)
            assert info.is_published() and pub.is_connected()  # the publisher is not cut off
        sizes = [got.get(timeout=5), got.get(timeout=5)]
        time.sleep(0.3)
        assert sizes == [FR.MAX_FRAME, 3] and got.empty()
    finally:
        for cl in (sub, pub):
            cl.loop_stop()
            cl.disconnect()
        b.kill()
