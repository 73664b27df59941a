"""The gateway's liveness and the migration's recovery paths, sans-I/O: GatewayCore over a real
Store and Keystore, fed frames and `now` by hand.  Each case is a bug the simulator found
(tools/sim/findings.py FIXED, replayed by tests/test_sim.py): here at the unit level."""
import os

import pytest

from netedge.gateway.control import migration as M
from netedge.gateway.control.core import GatewayCore, WILL_HOLD_S
from netedge.gateway.control.state import MigrationState, RecoveryState
from netedge.gateway.keystore import Keystore
from netedge.gateway.service import core_sources
from netedge.gateway.store import Store
from netedge.shared import frame as FR
from netedge.shared import topics as T

DEADLINE_S = 1.5


class Rig:
    """Nodes n1, n2, n3 online (boot ids 11, 12, 13), heartbeating; daemon `origin` (counter)
    hosted by n1 at epoch 1, its key on every node."""

    def __init__(self, d):
        self.store = Store(os.path.join(d, "netedge.db"), synchronous="NORMAL")
        self.keystore = Keystore(self.store, os.path.join(d, "kek"))
        self.core = GatewayCore(self.store, self.keystore, "gw1", int(DEADLINE_S * 1000), **core_sources())
        self.core.provisionable = lambda node: True
        self.now = 100.0
        self.counters = {}
        self.core.broker_back(self.now)  # a first connection, a new session
        info = self.keystore.generate("counter")
        self.origin = info.origin
        for i, n in enumerate(("n1", "n2", "n3")):
            self.online(n, 11 + i)
            self.beat(n)
        self.store.add_daemon(self.origin, "counter", info.public_key, host_node="n1", epoch=1, status="active")

    def close(self):
        self.store.close()

    def send(self, topic, ftype, body, sender):
        self.counters[sender] = self.counters.get(sender, 0) + 1
        return self.core.on_message(topic, FR.encode(ftype, sender, self.counters[sender], body), self.now)

    def online(self, node, boot):
        return self.send(T.node(node, "status"), FR.STATUS, {"state": "online", "board": "sim", "boot": boot}, node)

    def will(self, node):
        # (the last will: counter 0, no boot id, as NodeCore.will() sets it)
        return self.core.on_message(T.node(node, "status"), FR.encode(FR.STATUS, node, 0, {"state": "offline"}),
                                    self.now)

    def beat(self, node, daemons=()):
        return self.send(T.node(node, "hb"), FR.HEARTBEAT, {
            "board": "sim", "heap": 60000, "kinds": ["counter"], "keys": [self.origin],
            "daemons": [{"origin": o, "epoch": e} for o, e in daemons]}, node)

    def request(self, **body):
        return self.send(T.gateway("gw1", "req", "cli"), FR.CONTROL, dict(body, id=1), "cli")

    def reply(self, node, op, m, **kw):
        return self.send(T.node(node, "mig"), FR.MIGRATION, dict(kw, op=op, m=m, o=self.origin), node)

    def tick(self, dt):
        self.now += dt
        return self.core.tick(self.now)

    def status(self, node):
        return self.store.node(node).status


def commands(acts, node=None):
    """[(node, body)] of the CONTROL frames in `acts` (to `node`)."""
    out = []
    for topic, data, _, _ in acts.publish:
        parts = T.split(topic)
        if parts and parts[0] == "node" and parts[2] == "ctl" and (node is None or parts[1] == node):
            out.append((parts[1], FR.decode(data).body()))
    return out


@pytest.fixture
def rig(tmp_path):
    r = Rig(str(tmp_path))
    yield r
    r.close()


# -- wills ---------------------------------------------------------------------------------------

def test_a_will_then_the_same_boot_back_is_a_reconnect(rig, caplog):
    """A node's will with its online status of the same boot id right behind (a broker restart,
    a cut): its RAM and daemons are intact, nothing fails over."""
    caplog.set_level("INFO", "netedge")
    rig.will("n1")
    rig.online("n1", 11)
    rig.tick(WILL_HOLD_S * 2)
    assert rig.status("n1") == "online"
    assert "n1" not in rig.core.held_wills
    assert "node offline node=n1" not in caplog.text


def test_a_will_then_a_new_boot_is_acted_on(rig, caplog):
    caplog.set_level("INFO", "netedge")
    rig.will("n1")
    rig.online("n1", 99)  # rebooted: what it held in RAM is gone
    assert "node offline node=n1 reason=last will" in caplog.text
    assert rig.status("n1") == "online"  # (then back)
    assert "n1" not in rig.core.held_wills


def test_wills_of_a_resumed_session_are_of_unknown_age(tmp_path):
    """A restarted gateway whose broker kept its session: the wills queued there came with a
    broker restart, or long ago; the deadline decides, after the nodes had time to come back."""
    r = Rig(str(tmp_path))
    try:
        core = GatewayCore(r.store, r.keystore, "gw1", int(DEADLINE_S * 1000), **core_sources())
        r.core = core
        r.core.broker_back(r.now, True)  # session present
        r.will("n1")
        r.tick(WILL_HOLD_S * 2)
        assert r.status("n1") == "online"
        for _ in range(int((DEADLINE_S + 5.0) / 0.5) + 2):  # n2 and n3 heartbeat, n1 never comes back
            r.beat("n2")
            r.beat("n3")
            r.tick(0.5)
        assert (r.status("n1"), r.status("n2"), r.status("n3")) == ("suspect", "online", "online")
    finally:
        r.close()


# -- deadlines -----------------------------------------------------------------------------------

def test_silence_of_every_node_at_once_blames_none(rig):
    """Our own link cut (the socket has not noticed yet): no node is blamed; traffic back, each
    node has the rest of a deadline to be heard."""
    for _ in range(10):
        rig.tick(0.25)
    assert [rig.status(n) for n in ("n1", "n2", "n3")] == ["online"] * 3
    assert rig.core.deaf
    rig.beat("n2")
    rig.beat("n3")
    for _ in range(4):
        rig.tick(0.25)
        rig.beat("n2")
        rig.beat("n3")
    assert [rig.status(n) for n in ("n1", "n2", "n3")] == ["suspect", "online", "online"]


def test_a_core_that_never_heard_the_broker_blames_none(tmp_path):
    r = Rig(str(tmp_path))
    try:
        r.core = GatewayCore(r.store, r.keystore, "gw1", int(DEADLINE_S * 1000), **core_sources())
        for _ in range(20):  # (the broker is down: no connection yet)
            r.tick(0.25)
        assert [r.status(n) for n in ("n1", "n2", "n3")] == ["online"] * 3
    finally:
        r.close()


# -- migration: abort, recovery, keys, stop ----------------------------------------------------

def start_migration(rig, to="n2"):
    acts = rig.request(cmd="migrate", origin=rig.origin, to=to)
    st = rig.store.load_state(MigrationState, rig.origin)
    assert st is not None and st.step == M.SNAPSHOT, commands(acts)
    assert [b["cmd"] for _, b in commands(acts, "n1")] == ["freeze"]
    return st.m


def test_an_aborted_migration_recovers_its_source(rig):
    """The source may have rebooted unseen (held, ignoring `resume`): the abort log-replays it
    and sends `go` until it answers `active`, over a gateway restart too."""
    m = start_migration(rig)
    acts = rig.tick(M.PHASE_TIMEOUT_S + 0.5)  # the snapshot never comes
    cmds = [b["cmd"] for _, b in commands(acts, "n1")]
    assert cmds[0] == "resume" and "replay" in cmds
    replay = [b for _, b in commands(acts, "n1") if b["cmd"] == "replay"][0]
    assert replay["log"] is True and replay["m"] == m
    assert rig.store.load_state(RecoveryState, rig.origin).node == "n1"
    assert "recovering" in rig.request(cmd="stop", origin=rig.origin).publish[0][1].decode("latin-1")
    # the gateway restarts before the source answers: the recovery goes on from the store
    rig.core = GatewayCore(rig.store, rig.keystore, "gw1", int(DEADLINE_S * 1000), **core_sources())
    rig.core.broker_back(rig.now)
    rig.beat("n2")
    acts = rig.online("n1", 77)  # the source rebooted: it boots held
    replay = [b for _, b in commands(acts, "n1") if b["cmd"] == "replay"]
    assert replay and replay[0]["log"] is True
    acts = rig.reply("n1", "replayed", m, b=replay[0]["b"])
    assert [b["cmd"] for _, b in commands(acts, "n1")] == ["go"]
    rig.reply("n1", "active", m, seq=0)
    assert rig.store.load_state(RecoveryState, rig.origin) is None
    assert rig.store.daemon(rig.origin).host_node == "n1"


def test_a_recovery_without_an_answer_is_sent_again(rig):
    start_migration(rig)
    rig.tick(M.PHASE_TIMEOUT_S + 0.5)
    for n in ("n1", "n2", "n3"):
        rig.beat(n)
    acts = rig.tick(M.PHASE_TIMEOUT_S + 0.5)
    assert "replay" in [b["cmd"] for _, b in commands(acts, "n1")]


def test_stop_is_refused_while_migrating(rig):
    start_migration(rig)
    acts = rig.request(cmd="stop", origin=rig.origin)
    body = FR.decode(acts.publish[0][1]).body()
    assert body["ok"] is False and "migrating" in body["error"]
    assert rig.store.daemon(rig.origin).status == "active"
    assert not commands(acts)


def test_a_key_push_keeps_the_slots_a_node_advertises(rig):
    """A push replaces a node's key file whole: it must keep every slot the node says it holds
    (a migration there skips the push on the strength of that), or a daemon migrated there
    would not restore after a reboot."""
    slots = rig.core._slots("n2")
    assert {"kind": "counter", "public": rig.store.daemon(rig.origin).public_key.hex()} in slots
