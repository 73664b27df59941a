"""Node firmware end to end: real Mosquitto, real `micropython -X heapsize=96K` node processes
running the compiled firmware, a paho observer, and the shared verifier."""
import os
import signal
import time

import pytest

from netedge.shared import frame as FR
from netedge.shared import topics as T
from netedge.shared.proof import ContinuityProof
from netedge.shared import status as S

from mosquitto import Mosquitto
from nodes import NodeProc, Observer, assert_in_order, daemon_origin, total_of


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path / "broker", persistence=True).start()
    yield b
    b.kill()


@pytest.fixture
def observer(broker):
    o = Observer(broker, marks=True)
    yield o
    o.close()


@pytest.fixture
def nodes(firmware, broker, tmp_path):
    made = []

    def make(node_id, daemons, hosted=None, **kw):
        n = NodeProc(firmware, tmp_path / "boards", node_id, broker,
                     daemons=[("counter", d) for d in daemons],
                     hosted=daemons if hosted is None else hosted, **kw)
        made.append(n)
        return n.start()
    yield make
    for n in made:
        n.kill()


def assert_continuous(log, n):
    assert log.head_seq() == n and len(log) == n
    assert_in_order(log.events)
    st = S.assess_log(log)
    assert st.kind == S.CONTINUOUS and st.head_seq == n, st
    proof = ContinuityProof.from_log(log)
    ContinuityProof.from_bytes(proof.to_bytes()).verify_against(log)


def test_chains_from_several_nodes_verify(nodes, observer):
    n1 = nodes("n1", ["a1", "a2"])
    n2 = nodes("n2", ["b1"])
    observer.wait(lambda: {"n1", "n2"} <= set(observer.heartbeats), 15, "heartbeats")
    origins = [daemon_origin(d) for d in ("a1", "a2", "b1")]
    sent = {o: 0 for o in origins}
    for i in range(1, 61):
        for k, o in enumerate(origins):
            v = i * (k + 1)
            observer.send_input(o, b"%d" % v)
            sent[o] += v
    for o in origins:
        observer.wait_seq(o, 60)
        log = observer.log_of(o)
        assert_continuous(log, 60)
        assert total_of(log) == sent[o]
    hb = observer.heartbeats["n1"]
    assert hb["board"] == "unix" and "counter" in hb["kinds"]
    assert sorted(d["origin"] for d in hb["daemons"]) == sorted(origins[:2])
    assert n1.alive() and n2.alive()


def _stream(observer, origin, values):
    for v in values:
        observer.send_input(origin, b"%d" % v)


def test_restart_continues_chain_from_flash(nodes, observer):
    o = daemon_origin("r1")
    n = nodes("n1", ["r1"])
    observer.wait(lambda: "n1" in observer.heartbeats, 15, "heartbeat")
    _stream(observer, o, range(1, 41))
    observer.wait_seq(o, 40)
    n.stop()                                  # clean stop
    _stream(observer, o, range(41, 61))       # queued by the broker for the node's session
    n.start()
    observer.wait_seq(o, 60)
    # kill -9 in the middle of a stream
    for v in range(61, 121):
        observer.send_input(o, b"%d" % v)
        if v == 90:
            n.signal(signal.SIGKILL)
            n.kill()
            n.start()
    observer.wait_seq(o, 120, timeout=30)
    time.sleep(0.5)  # let any duplicate redelivery arrive: it must not extend the chain
    log = observer.log_of(o)
    assert_continuous(log, 120)
    assert total_of(log) == sum(range(1, 121))


def test_corrupt_record_is_reported_not_reset(nodes, observer):
    o = daemon_origin("k1")
    n = nodes("n1", ["k1"])
    observer.wait(lambda: "n1" in observer.heartbeats, 15, "heartbeat")
    _stream(observer, o, range(1, 11))
    observer.wait_seq(o, 10)
    n.stop()
    path = n.record_path("k1")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))
    observer.heartbeats.pop("n1")
    n.start()
    observer.wait(lambda: any(b.get("code") == "corruption" for _, b in observer.errors), 15, "corruption report")
    observer.wait(lambda: "n1" in observer.heartbeats, 15, "heartbeat after reboot")
    assert observer.heartbeats["n1"]["corrupt"] == ["d%08x" % o]
    assert observer.heartbeats["n1"]["daemons"] == []       # not silently re-created at genesis
    observer.send_input(o, b"5")
    time.sleep(1.0)
    assert observer.head_seq(o) == 10 and len(observer.chain[o]) == 10
    assert os.path.exists(path + ".bad")


GARBAGE = [b"", b"\x00", b"\xff" * 40, b"garbage", FR.encode(FR.HEARTBEAT, "x", 1, {})[:-3],
           FR.encode(FR.HEARTBEAT, "x", 1, {}),                   # right envelope, wrong type here
           FR.encode(FR.INPUT, "x", 1, {"q": 1}),                  # INPUT without 'p'
           FR.encode(FR.INPUT, "x", 1, [1, 2]),
           b"\x85" + b"\x01" * 9000]                              # oversize


def test_garbage_on_every_subscribed_topic(nodes, observer):
    o = daemon_origin("g1")
    n = nodes("n1", ["g1"])
    observer.wait(lambda: "n1" in observer.heartbeats, 15, "heartbeat")
    _stream(observer, o, [1, 2, 3])
    observer.wait_seq(o, 3)
    errors_before = len(observer.errors)
    for topic in (T.daemon(o, "in"), T.node("n1", "ctl")):
        for g in GARBAGE:
            observer.publish_raw(topic, g)
    ctl_bad = [FR.encode(FR.CONTROL, "gw", 1, {"cmd": "explode"}),
               FR.encode(FR.CONTROL, "gw", 2, {"cmd": "activate", "origin": "x"}),
               FR.encode(FR.CONTROL, "gw", 3, {"cmd": "activate", "origin": 5, "kind": "nope", "epoch": 1}),
               FR.encode(FR.CONTROL, "gw", 4, {"cmd": "activate", "origin": 5, "kind": "counter", "epoch": 1})]
    # standby-group commands (§17) with missing, wrong or unmatched fields: refused, o untouched
    ctl_bad += [FR.encode(FR.CONTROL, "gw", 10 + i, b) for i, b in enumerate([
        {"cmd": "keep", "origin": 5, "m": 1}, {"cmd": "keep", "origin": 5, "m": 1, "rec": b"junk"},
        {"cmd": "keep", "origin": o, "m": 1, "rec": b"junk"}, {"cmd": "promote", "origin": 5, "m": 2},
        {"cmd": "feed", "origin": o, "m": 3, "inputs": 7}, {"cmd": "listen", "origin": o, "m": 3},
        {"cmd": "demote", "origin": o, "m": 4}, {"cmd": "demote", "origin": o, "m": 5, "epoch": 0},
        {"cmd": "snap", "origin": 5, "m": 6}, {"cmd": "promote", "origin": o, "m": "x"}])]
    for g in ctl_bad:
        observer.publish_raw(T.node("n1", "ctl"), g)
    observer.send_input(o, b"4")
    observer.wait_seq(o, 4)
    observer.wait(lambda: len(observer.errors) - errors_before >= 2 * len(GARBAGE) - 2, 10, "error reports")
    codes = {b["code"] for _, b in observer.errors[errors_before:]}
    assert "malformed" in codes and "factory_not_found" in codes and "identity_missing" in codes
    log = observer.log_of(o)
    assert_continuous(log, 4)
    assert total_of(log) == 10                    # state unchanged by the garbage
    observer.heartbeats.pop("n1", None)
    observer.wait(lambda: "n1" in observer.heartbeats, 5, "heartbeat")
    assert observer.heartbeats["n1"]["errors"]["malformed"] >= len(GARBAGE)
    assert n.alive()


def test_last_will_after_kill9(nodes, observer):
    n = nodes("n1", ["w1"])
    observer.wait(lambda: observer.status.get("n1", {}).get("state") == "online", 15, "online status")
    t0 = time.monotonic()
    n.signal(signal.SIGKILL)
    observer.wait(lambda: observer.status.get("n1", {}).get("state") == "offline", 10, "last will")
    print("last will delivered %.1f ms after kill -9" % ((time.monotonic() - t0) * 1000))


def test_broker_restart_mid_stream_loses_no_input(nodes, observer, broker):
    o = daemon_origin("m1")
    nodes("n1", ["m1"])
    observer.wait(lambda: "n1" in observer.heartbeats, 15, "heartbeat")
    _stream(observer, o, range(1, 51))
    broker.restart(down_for=0.3)
    _stream(observer, o, range(51, 101))     # send_input retries until the broker accepts
    observer.wait_seq(o, 100, timeout=40)
    log = observer.log_of(o)
    assert_continuous(log, 100)
    assert total_of(log) == sum(range(1, 101))


def test_tiny_queue_forces_resyncs_without_loss_reorder_or_duplicate(nodes, observer):
    """queue_max=4: the node overflows constantly and must resync (reconnect, redelivery) each
    time; every input is still processed exactly once and in the order the broker took it."""
    o = daemon_origin("q1")
    nodes("n1", ["q1"], extra={"queue_max": 4})
    observer.wait(lambda: "n1" in observer.heartbeats, 15, "heartbeat")
    _stream(observer, o, range(1, 151))
    observer.wait_seq(o, 150, timeout=60)
    time.sleep(0.3)
    log = observer.log_of(o)
    assert_continuous(log, 150)
    assert total_of(log) == sum(range(1, 151))
    observer.heartbeats.pop("n1", None)
    observer.wait(lambda: "n1" in observer.heartbeats, 5, "heartbeat")
    hb = observer.heartbeats["n1"]
    print("resyncs:", hb["errors"]["overflow"], "connects:", hb["mqtt"].get("connects"))


def test_romfs_node_runs_in_a_64k_heap(nodes, observer):
    """The firmware in the ROM partition (bytecode in flash, not the heap): a node with a 64 KB heap
    hosts two daemons, processes a paced stream (a sensor's; a burst of hundreds at once thrashes
    a heap this small: boards/README.md), is killed -9 and resumes its chains from flash."""
    names = ["m1", "m2"]
    n = nodes("r64", names, heap="64K", romfs=True)
    observer.wait(lambda: "r64" in observer.heartbeats, 15, "heartbeat")
    origins = [daemon_origin(x) for x in names]
    for v in range(1, 61):
        for o in origins:
            observer.send_input(o, b"%d" % v)
        for o in origins:
            observer.wait_seq(o, v, timeout=10)
        if v == 30:
            n.signal(signal.SIGKILL)
            n.kill()
            n.start()
    for o in origins:
        log = observer.log_of(o)
        assert_continuous(log, 60)
        assert total_of(log) == sum(range(1, 61))
    assert "firmware from the ROM partition" in open(n.log_path).read()
    assert observer.heartbeats["r64"]["heap"] > 8000  # (~10 KB free at 64K with two daemons)
