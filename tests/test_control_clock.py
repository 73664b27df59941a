"""The control plane takes time and randomness from its driver: deadlines on the monotonic `now`
it is given, wall stamps from the wall clock it is given, operation ids and keys from seeded
sources.  Two gateways fed the same sources and the same frames publish the same bytes."""
import random

from netedge.gateway.control.clock import MAX_RESTORED_AGE_S, OP_ID_STEP_BITS, ControlClock, FrameCounter
from netedge.gateway.control.core import GatewayCore
from netedge.gateway.control.deploy import DEPLOY_TIMEOUT_S
from netedge.gateway.keystore import Keystore
from netedge.gateway.store import Store
from netedge.shared import frame as FR
from netedge.shared import topics as T


class Wall:
    """A wall clock the test steps by hand (NTP on a board without an RTC)."""

    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


def test_a_step_ages_on_the_monotonic_clock_even_when_the_wall_clock_steps():
    wall = Wall(1000.0)
    c = ControlClock(wall)
    c.advance(5.0)
    at = c.stamp("migrate:00000001")
    assert at == 1000.0
    wall.t = 1000.0 + 7200  # NTP: two hours forward
    c.advance(6.5)
    assert c.age("migrate:00000001", at) == 1.5
    wall.t = 10.0  # and back before the epoch of the stamp
    c.advance(8.0)
    assert c.age("migrate:00000001", at) == 3.0


def test_a_stamp_read_back_after_a_restart_is_dated_once_from_the_wall_clock():
    wall = Wall(2000.0)
    c = ControlClock(wall)  # a restarted gateway: its monotonic clock started anew
    c.advance(1.0)
    assert c.age("fork:00000002", 1990.0) == 10.0
    wall.t = 9000.0  # then the wall clock steps: the age goes on monotonically
    c.advance(2.0)
    assert c.age("fork:00000002", 1990.0) == 11.0
    # clamped: a stamp from the future is new, one from long ago is MAX_RESTORED_AGE_S old
    assert c.age("a", 9500.0) == 0.0
    assert c.age("b", 0.0) == MAX_RESTORED_AGE_S
    c.forget("b")
    wall.t = 100.0
    assert c.age("b", 0.0) == 100.0


def test_operation_ids_grow_by_steps_from_the_injected_source():
    a, b = FrameCounter(1000, random.Random(5)), FrameCounter(1000, random.Random(5))
    ids = [a.op_id() for _ in range(200)]
    assert ids == [b.op_id() for _ in range(200)]
    steps = [y - x for x, y in zip([1000] + ids, ids)]
    assert all(1 <= s <= 1 << OP_ID_STEP_BITS for s in steps) and len(set(steps)) > 50
    assert a.next() == ids[-1] + 1  # frames and operation ids share the strictly increasing counter


def seeded_gateway(tmp_path, name, seed):
    rng = random.Random(seed)
    store = Store(str(tmp_path / ("%s.db" % name)), synchronous="NORMAL", clock=Wall(1e9))
    keystore = Keystore(store, str(tmp_path / ("%s.kek" % name)), clock=Wall(1e9),
                        seed_source=lambda: rng.getrandbits(256).to_bytes(32, "big"))
    core = GatewayCore(store, keystore, "gw1", wall=Wall(1e9), counter_start=7, rng=random.Random(seed + 1))
    return store, core


def run_deploy(store, core):
    """A node's heartbeat, a deploy request, the key push, the activation: what was published."""
    out = []
    hb = {"board": "unix", "heap": 50000, "kinds": ["counter"], "daemons": []}
    out += core.on_message(T.node("n1", "hb"), FR.encode(FR.HEARTBEAT, "n1", 1, hb), 10.0).publish
    req = FR.encode(FR.CONTROL, "c1", 1, {"cmd": "deploy", "kind": "counter", "node": "n1", "id": 1})
    acts = core.on_message(T.gateway("gw1", "req", "c1"), req, 10.1)
    ((node, slots, key),) = acts.push_keys
    out += core.keys_pushed(key, None, 10.2).publish
    out += core.tick(10.3).publish
    (d,) = store.daemons()
    hb["daemons"] = [{"origin": d.origin, "epoch": 1}]
    out += core.on_message(T.node("n1", "hb"), FR.encode(FR.HEARTBEAT, "n1", 2, hb), 10.4).publish
    out += core.tick(10.5).publish
    return d.origin, out


def test_same_sources_same_frames(tmp_path):
    (s1, c1), (s2, c2) = seeded_gateway(tmp_path, "a", 3), seeded_gateway(tmp_path, "b", 3)
    o1, out1 = run_deploy(s1, c1)
    o2, out2 = run_deploy(s2, c2)
    assert o1 == o2 and out1 == out2 and len(out1) >= 3
    assert s1.daemon(o1).status == "active"
    s3, c3 = seeded_gateway(tmp_path, "c", 4)
    assert run_deploy(s3, c3)[0] != o1  # another seed, another identity


def test_a_deploy_times_out_on_the_monotonic_clock(tmp_path):
    store, core = seeded_gateway(tmp_path, "a", 1)
    hb = {"board": "unix", "heap": 50000, "kinds": ["counter"], "daemons": []}
    core.on_message(T.node("n1", "hb"), FR.encode(FR.HEARTBEAT, "n1", 1, hb), 10.0)
    req = FR.encode(FR.CONTROL, "c1", 1, {"cmd": "deploy", "kind": "counter", "node": "n1", "id": 1})
    ((_, _, key),) = core.on_message(T.gateway("gw1", "req", "c1"), req, 10.0).push_keys
    core.keys_pushed(key, None, 10.0)
    for t in range(11, 10 + int(DEPLOY_TIMEOUT_S)):  # (heartbeats keep n1 online, wall time never moves)
        core.on_message(T.node("n1", "hb"), FR.encode(FR.HEARTBEAT, "n1", t, hb), float(t))
        core.tick(float(t))
    (d,) = store.daemons()
    assert d.status == "provisioning"
    core.on_message(T.node("n1", "hb"), FR.encode(FR.HEARTBEAT, "n1", 99, hb), 10.0 + DEPLOY_TIMEOUT_S + 0.5)
    acts = core.tick(10.0 + DEPLOY_TIMEOUT_S + 0.5)
    assert store.daemon(d.origin).status == "failed"
    (reply,) = [FR.decode(p).body() for t, p, _, _ in acts.publish if "/rep/" in t]
    assert reply["ok"] is False and "did not activate" in reply["error"]


def test_the_retained_status_is_the_read_model(tmp_path):
    """The body the core publishes retained is daemon_status_body over the store (the read model
    the CLI and the status page can share), here after a deploy."""
    from netedge.gateway.control.status import daemon_status_body
    store, core = seeded_gateway(tmp_path, "a", 2)
    origin, out = run_deploy(store, core)
    (status,) = [FR.decode(p).body() for t, p, _, _ in out if t == T.daemon(origin, "status")]
    assert status == daemon_status_body(store, origin)
    assert status["status"] == "active" and status["host"] == "n1" and status["continuity"]["kind"] == "Continuous"
