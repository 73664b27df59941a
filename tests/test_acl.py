"""A fleet behind Mosquitto with passwords and the ACL the docs ship (docs/examples/mosquitto.acl):
everything works with one user per board, the gateway's and the clients', and what the ACL is for
is refused: a board or a client cannot command another board, nobody gets in without a password.
Real Mosquitto, a real gateway process, unix-port nodes."""
import os
import time

import paho.mqtt.client as paho
import pytest

from conftest import REPO
from gateways import GatewayProc, cli, deploy, write_config
from mosquitto import Mosquitto
from nodes import NodeProc, Observer, daemon_origin  # noqa: F401
from cluster import check_chain
from netedge.shared import frame as FR
from netedge.shared import topics as T

USERS = {"gateway": "gw-secret", "client": "client-secret", "n1": "n1-secret", "n2": "n2-secret"}


class Fleet:
    """Cluster's shape (check_chain takes it), with credentials everywhere."""

    def __init__(self, tmp_path, firmware):
        with open(os.path.join(REPO, "docs", "examples", "mosquitto.acl")) as f:
            acl = f.read()
        self.broker = Mosquitto(tmp_path / "broker", allow_anonymous=False, passwords=USERS, acl=acl).start()
        self.nodes = {}
        for n in ("n1", "n2"):
            broker = {"host": self.broker.host, "port": self.broker.port, "keepalive": 5,
                      "username": n, "password": USERS[n]}
            self.nodes[n] = NodeProc(firmware, tmp_path / "boards", n, self.broker, extra={"broker": broker})
        self.cfg = write_config(tmp_path / "netedge.toml", self.broker, list(self.nodes.values()),
                                username="gateway", password=USERS["gateway"])
        self.gw = GatewayProc(self.cfg).start()
        for n in self.nodes.values():
            n.start()
        self.gw.wait_for(lambda st: {n.node_id for n in st.nodes() if n.status == "online" and "kinds" in n.info}
                         >= set(self.nodes), 20, "nodes online")
        self.obs = Observer(self.broker, "client-app", username="client", password=USERS["client"])

    def close(self):
        self.obs.close()
        for p in [self.gw] + list(self.nodes.values()):
            p.kill()
        self.broker.kill()


def connect(broker, user, password, client_id):
    """A paho client as `user`; (client, CONNACK reason code) after the handshake."""
    got = []
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    if user is not None:
        c.username_pw_set(user, password)
    c.on_connect = lambda cl, u, f, rc, p=None: got.append(rc)
    c.connect(broker.host, broker.port, keepalive=10)
    c.loop_start()
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.02)
    return c, (got[0] if got else None)


def test_fleet_under_the_documented_acl(tmp_path, firmware):
    f = Fleet(tmp_path, firmware)
    try:
        a = deploy(f.cfg, "counter", "n1")
        for i in range(1, 21):
            f.obs.send_input(a, b"%d" % i)  # as the clients' user
        f.gw.wait_for(lambda st: st.event_count(a) >= 20, 20, "20 events")
        assert f.obs.heads.get(a) == 20  # the clients' user reads the chain

        # n2's credentials, then the clients', publish a valid `stop` for the daemon to n1: refused
        for user in ("n2", "client"):
            c, rc = connect(f.broker, user, USERS[user], "forger-" + user)
            assert rc == 0, rc
            stop = FR.encode(FR.CONTROL, user, 1, {"cmd": "stop", "origin": a})
            c.publish(T.node("n1", "ctl"), stop, qos=1).wait_for_publish(5)
            c.loop_stop()
            c.disconnect()
        for i in range(21, 31):
            f.obs.send_input(a, b"%d" % i)
        f.gw.wait_for(lambda st: st.event_count(a) >= 30, 20, "30 events: n1 still runs it")
        f.obs.heartbeats.clear()
        time.sleep(1.0)  # (300 ms heartbeats)
        assert f.obs.heartbeats == {}, "the clients' user must not read the boards' heartbeats"

        # nobody gets in without the right password
        for user, pw in ((None, None), ("n1", "wrong"), ("intruder", "x")):
            c, rc = connect(f.broker, user, pw, "nobody")
            c.loop_stop()
            assert rc is not None and rc != 0, (user, rc)

        # a live migration between two boards, each with its own user: every input once, in order
        r = cli(f.cfg, "migrate", "%08x" % a, "--to", "n2")
        assert "migrated %08x from n1 to n2" % a in r.stdout
        for i in range(31, 41):
            f.obs.send_input(a, b"%d" % i)
        f.gw.wait_for(lambda st: st.event_count(a) >= 40, 20, "40 events")
        check_chain(f, a, 40, 2, "n2")
    except Exception:
        print(f.gw.output()[-6000:])
        print(f.broker.log()[-3000:])
        raise
    finally:
        f.close()
