"""Live migration end to end (PROTOCOL §16): real Mosquitto, a real gateway process, unix-port
nodes; inputs stream in while the daemon moves.  The gateway's log must stay one contiguous
chain, every input processed exactly once and in order."""
import os
import threading
import time

import pytest
from cluster import Cluster, Stream, check_chain, cli, deploy
from netedge.gateway.control.state import MigrationState


def stream_and_migrate(c, origin, hops, n=300, rate=200):
    s = Stream(c.obs, origin, 1, n, rate)
    s.start()
    outs = []
    for to in hops:
        time.sleep(0.3)
        outs.append(c.migrate_under_stream(origin, to)[0].stdout)
    s.join(60)
    assert s.error is None and not s.is_alive()
    c.wait_events(origin, n)
    print("".join(outs))
    return outs


def test_migrate_under_load(tmp_path, firmware):
    c = Cluster(tmp_path, firmware, ["n1", "n2"])
    try:
        a = deploy(c.cfg, "counter", "n1")
        outs = stream_and_migrate(c, a, ["n2"])
        assert "migrated %08x from n1 to n2" % a in outs[0], outs
        check_chain(c, a, 300, 2, "n2")
        c.obs.heartbeats.clear()
        c.obs.wait(lambda: "n1" in c.obs.heartbeats and "n2" in c.obs.heartbeats, 5, "heartbeats")
        assert a not in c.hosted("n1") and a in c.hosted("n2")
        out = cli(c.cfg, "status").stdout
        assert "Migrated{migration_seq=" in out and "source_node=n1, target_node=n2" in out
        c.gw.wait_for(lambda st: (st.daemon(a).continuity or {}).get("head_seq") == 300, 10, "status current")
    except Exception:
        print(c.gw.output()[-5000:])
        raise
    finally:
        c.close()


def test_three_migrations_under_load(tmp_path, firmware):
    c = Cluster(tmp_path, firmware, ["n1", "n2", "n3"])
    try:
        a = deploy(c.cfg, "counter", "n1")
        outs = stream_and_migrate(c, a, ["n2", "n3", "n1"], n=400)
        assert "from n3 to n1" in outs[2], outs
        check_chain(c, a, 400, 4, "n1")
        c.obs.heartbeats.clear()
        c.obs.wait(lambda: {"n1", "n2", "n3"} <= set(c.obs.heartbeats), 5, "heartbeats")
        assert a in c.hosted("n1") and a not in c.hosted("n2") and a not in c.hosted("n3")
    except Exception:
        print(c.gw.output()[-5000:])
        raise
    finally:
        c.close()


def test_migration_refused_keeps_daemon_on_source(tmp_path, firmware):
    # n2 cannot host counters; n3 is not in the gateway's [nodes]: it cannot be given the key slot
    c = Cluster(tmp_path, firmware, ["n1", "n2", "n3"], configured=["n1", "n2", "n3x"],
                extra={"n2": {"kinds": {"echo": "netedge.firmware.daemons.echo.Echo"}}})
    try:
        a = deploy(c.cfg, "counter", "n1")
        for i in range(1, 11):
            c.obs.send_input(a, b"%d" % i, counter=i)
        c.wait_events(a, 10)
        r = c.migrate(a, "n3", check=False)
        assert r.returncode != 0 and "key slot" in r.stderr and "keeps running on n1" in r.stderr, r.stderr
        r = c.migrate(a, "n2", check=False)
        assert r.returncode != 0 and "cannot host kind 'counter'" in r.stderr, r.stderr
        r = c.migrate(a, "nx", check=False)
        assert r.returncode != 0 and "unknown node" in r.stderr, r.stderr
        r = c.migrate(a, "n1", check=False)
        assert r.returncode != 0 and "runs on n1 already" in r.stderr, r.stderr
        for i in range(11, 21):
            c.obs.send_input(a, b"%d" % i, counter=i)
        c.wait_events(a, 20)
        check_chain(c, a, 20, 1, "n1")
        assert a in c.hosted("n1")
    except Exception:
        print(c.gw.output()[-5000:])
        raise
    finally:
        c.close()


# -- the node's side, sans-I/O (CPython): NodeCore fed frames directly --------------------------

def _core(tmp_path, name, key=True, kinds=("counter",), key_kind="counter"):
    from netedge.firmware.node import NodeCore
    from netedge.firmware.registry import DaemonFactoryRegistry
    from netedge.firmware.store import RecordStore
    from nodes import daemon_key

    class Cfg:
        node_id, board, hosted = name, "unix", []
    reg = DaemonFactoryRegistry()
    for k in kinds:
        reg.register_kind(k, "netedge.firmware.daemons.%s.%s" % (k, k.capitalize()))
    if key:
        reg.provision(key_kind, daemon_key("mig")[0])
    core = NodeCore(Cfg, reg)
    _apply(core, core.boot(RecordStore(str(tmp_path / name)), 1))
    return core


def _apply(core, ready):
    """What the driver does with a Ready: write it to flash, and process requeued inputs next;
    and what a gateway does with the chain events published: store them and mark them stored
    (the host keeps at most 16 unmarked events: PROTOCOL §11)."""
    from netedge.shared import frame as FR
    from netedge.shared import topics as T
    core.records.commit(ready)  # (the read-only view boot() took is the driver's RecordStore)
    for topic, frame, _, _ in list(ready.publish):
        if topic.endswith("/chain"):
            b = FR.decode(frame).body()
            seq = int.from_bytes(b["l"][8:16], "little")
            mark = {"cmd": "stored", "origin": b["o"], "epoch": b["e"], "seq": seq}
            core.on_message(T.node(core.node_id, "mark"), FR.encode(FR.CONTROL, "gw1", 1 << 20 | seq, mark))
    for topic, frame in ready.requeue or ():
        ready.publish += _apply(core, core.on_message(topic, frame)).publish
    return ready


class _Feed:
    def __init__(self):
        self.n = 0

    def ctl(self, core, **body):
        from netedge.shared import frame as FR
        from netedge.shared import topics as T
        self.n += 1
        r = _apply(core, core.on_message(T.node(core.node_id, "ctl"), FR.encode(FR.CONTROL, "gw1", self.n, body)))
        return _replies(r)

    def inp(self, core, origin, i):
        from netedge.shared import frame as FR
        from netedge.shared import topics as T
        r = _apply(core, core.on_message(T.daemon(origin, "in"), FR.encode(FR.INPUT, "client", i, {"p": b"%d" % i})))
        return _replies(r), [p for p in r.publish if p[0].endswith("/chain")]


def _replies(ready):
    from netedge.shared import frame as FR
    return [FR.decode(p[1]).body() for p in ready.publish if p[0].endswith("/mig")]


def test_node_migration_commands(tmp_path):
    from nodes import daemon_origin
    o = daemon_origin("mig")
    g = _Feed()
    s, t, nokey = _core(tmp_path, "s"), _core(tmp_path, "t"), _core(tmp_path, "k", key=False)
    g.ctl(s, cmd="activate", origin=o, kind="counter", epoch=1)
    for i in (1, 2, 3):
        assert len(g.inp(s, o, i)[1]) == 1
    [snap] = g.ctl(s, cmd="freeze", m=7, origin=o)
    assert snap["op"] == "snapshot" and isinstance(snap["rec"], bytes)
    assert g.ctl(s, cmd="freeze", m=8, origin=o)[0]["code"] == 5  # already migrating
    for i in (4, 5):
        assert g.inp(s, o, i) == ([], [])  # frozen: buffered, not processed
    [f] = g.ctl(nokey, cmd="restore", m=7, origin=o, kind="counter", epoch=2, rec=snap["rec"])
    assert (f["op"], f["code"]) == ("failed", 6)  # identity_missing
    [r] = g.ctl(t, cmd="restore", m=7, origin=o, kind="counter", epoch=2, rec=snap["rec"])
    assert (r["op"], r["seq"]) == ("restored", 3)
    assert T_in(t, o) and g.inp(t, o, 5) == ([], [])  # held
    [b] = g.ctl(s, cmd="release", m=7, origin=o)
    assert b["op"] == "buffered" and [x[1] for x in b["inputs"]] == [4, 5]
    assert not T_in(s, o) and o not in s.hosts
    [fw], _ = g.inp(s, o, 6)  # late: forwarded
    assert fw["op"] == "buffered" and fw["inputs"] == [["client", 6, b"6"]]
    g.inp(t, o, 6)
    assert g.ctl(t, cmd="replay", m=7, origin=o, inputs=b["inputs"]) == []
    assert g.ctl(t, cmd="replay", m=7, origin=o, inputs=fw["inputs"]) == []
    [ack] = g.ctl(t, cmd="replay", m=7, origin=o, inputs=[], b=[3, 0])  # an acknowledged batch
    assert (ack["op"], ack["b"]) == ("replayed", [3, 0])
    [a] = g.ctl(t, cmd="go", m=7, origin=o)
    assert (a["op"], a["seq"]) == ("active", 6)
    h = t.hosts[o]
    assert h.epoch == 2 and h.daemon.total == 21 and h.stats["duplicates"] == 2
    assert g.inp(t, o, 7)[1]  # normal processing again
    # abort: freeze, buffer, resume -> processed in order; a full buffer unfreezes by itself
    g.ctl(t, cmd="freeze", m=9, origin=o)
    g.inp(t, o, 8)
    assert g.ctl(t, cmd="resume", m=9, origin=o) == [] and t.hosts[o].daemon.total == 36
    g.ctl(t, cmd="freeze", m=10, origin=o)
    out = [g.inp(t, o, i)[0] for i in range(9, 9 + 65)]
    assert out[-1][0]["op"] == "failed" and out[-1][0]["detail"] == "buffer full"
    assert t.hosts[o].daemon.total == sum(range(1, 9 + 65)) and o not in t.mig


def test_a_short_heap_is_not_a_damaged_record(tmp_path, monkeypatch):
    """A MemoryError while reading a record or restoring a daemon is the heap's fault: reload()
    raises it (the driver retries) and keeps the host; it must never drop or quarantine it."""
    from netedge.firmware import store as ST
    from netedge.firmware.daemons.counter import Counter
    from nodes import daemon_origin
    o = daemon_origin("mig")
    g = _Feed()
    core = _core(tmp_path, "h")
    g.ctl(core, cmd="activate", origin=o, kind="counter", epoch=1)
    for i in (1, 2):
        g.inp(core, o, i)

    def boom(*a, **k):
        raise MemoryError("memory allocation failed")
    for target, name in ((ST.cbor, "loads"), (Counter, "restore")):
        with monkeypatch.context() as mp:
            mp.setattr(target, name, boom)
            with pytest.raises(MemoryError):
                core.reload(core.records)
        assert o in core.hosts and not core.corrupt, (name, core.corrupt)
        assert os.path.exists(os.path.join(core.records.root, "d%08x.rec" % o))
    core.reload(core.records)
    assert core.hosts[o].daemon.total == 3 and not core.corrupt


def test_node_chunked_snapshot(tmp_path):
    """A record larger than one chunk: the source sends §14 chunks, the target takes them one
    window at a time after `restore` announced them, acknowledges each and restores on the
    last; bad chunks are refused with state_failed and leave nothing half-restored."""
    from netedge.firmware.host import DaemonHost
    from netedge.shared import transfer as X
    from nodes import daemon_origin
    o = daemon_origin("mig")
    g = _Feed()
    s, t = (_core(tmp_path, n, kinds=("blob",), key_kind="blob") for n in "st")
    old, DaemonHost.max_state = DaemonHost.max_state, 12000
    try:
        g.ctl(s, cmd="activate", origin=o, kind="blob", epoch=1)
        g.inp(s, o, 1)
        from netedge.shared import frame as FR
        from netedge.shared import topics as T
        _apply(s, s.on_message(T.daemon(o, "in"), FR.encode(FR.INPUT, "client", 2, {"p": b"=10000"})))
        g.inp(s, o, 3)
        reps = g.ctl(s, cmd="freeze", m=5, origin=o)
        assert [r["op"] for r in reps] == ["chunk"] * 5  # 10 KB in 2 KB chunks
        rx = X.Reassembler(1 << 20, 100)
        rec = [rx.feed(r["c"]) for r in reps][-1]
        assert rec is not None and len(rec) > 10000
        # the gateway's way: restore announces t, then chunks of the target's size
        assert g.ctl(t, cmd="restore", m=5, origin=o, kind="blob", epoch=2, t=len(rec)) == []
        chunks = X.split(5, o, bytes(rec), 1024)
        bad = dict(chunks[1], d=b"x" * 1024)
        for c in chunks[:-1]:
            [got] = g.ctl(t, cmd="chunk", m=5, origin=o, c=c)
            assert (got["op"], got["i"]) == ("got", c["i"])
        assert g.ctl(t, cmd="chunk", m=5, origin=o, c=chunks[0]) == [{"op": "got", "m": 5, "o": o, "i": 0}]  # a redelivery
        [f] = g.ctl(t, cmd="chunk", m=5, origin=o, c=bad)  # same index, other bytes
        assert (f["op"], f["code"]) == ("failed", 4) and o not in t.mig and o not in t.hosts
        # again, from the start (a new migration id evicts the abandoned transfer)
        assert g.ctl(t, cmd="restore", m=6, origin=o, kind="blob", epoch=2, t=len(rec)) == []
        out = [g.ctl(t, cmd="chunk", m=6, origin=o, c=c) for c in X.split(6, o, bytes(rec), 1024)]
        [r] = out[-1]
        assert (r["op"], r["seq"]) == ("restored", 3)
        assert t.hosts[o].daemon.snapshot() == s.hosts[o].daemon.snapshot()
        # a chunk for a migration that announced nothing is refused
        [f] = g.ctl(t, cmd="chunk", m=9, origin=o, c=X.split(9, o, b"x" * 3000, 1024)[0])
        assert f["code"] == 4 and "no restore" in f["detail"]
        # a record above the target's cap is refused before any chunk travels
        u = _core(tmp_path, "u", kinds=("blob",), key_kind="blob")
        [f] = g.ctl(u, cmd="restore", m=7, origin=o, kind="blob", epoch=2, t=10 ** 6)
        assert (f["op"], f["code"]) == ("failed", 4) and "exceeds" in f["detail"] and o not in u.mig
    finally:
        DaemonHost.max_state = old


def T_in(core, origin):
    from netedge.shared import topics as T
    return T.daemon(origin, "in") in core.subscriptions()


def test_soak_twenty_migrations_under_a_steady_stream(tmp_path, firmware):
    """The soak: >= 5,000 inputs at >= 200/s from a separate publisher while the daemon
    migrates 20 times among 3 nodes: nothing lost, nothing doubled, order kept, exact state,
    one Continuous chain from genesis and a proof over the whole range that verifies."""
    c = Cluster(tmp_path, firmware, ["n1", "n2", "n3"])
    try:
        a = deploy(c.cfg, "counter", "n1")
        n = 5000
        s = Stream(c.obs, a, 1, n, rate=220)
        s.start()
        hops = ["n2", "n3", "n1"] * 7
        hops = hops[:20]
        t0 = time.monotonic()
        took, refused = [], 0
        for to in hops:
            time.sleep(0.6)
            t = time.monotonic()
            refused += c.migrate_under_stream(a, to)[1]
            took.append(time.monotonic() - t)
        s.join(120)
        assert s.error is None and not s.is_alive()
        c.wait_events(a, n, timeout=60)
        print("soak: %d inputs, %d migrations (%d refused and retried) in %.1f s; migrate command p50 %.2f s, "
              "max %.2f s" % (n, len(hops), refused, time.monotonic() - t0, sorted(took)[len(took) // 2], max(took)))
        check_chain(c, a, n, 1 + len(hops), hops[-1])
    except Exception:
        print(c.gw.output()[-5000:])
        raise
    finally:
        c.close()


BLOB_NODE = {"kinds": {"counter": "netedge.firmware.daemons.counter.Counter",
                       "blob": "netedge.firmware.daemons.blob.Blob"}, "max_state": 12000}


def test_migrate_large_state_in_chunks(tmp_path, firmware):
    """A 9 KB state moves in §14 chunks both ways (source -> gateway -> target) under load;
    the chain stays one Continuous chain and the state arrives byte for byte."""
    from netedge.shared import status as S
    from nodes import assert_in_order, event_outputs
    c = Cluster(tmp_path, firmware, ["n1", "n2"], extra={"n1": BLOB_NODE, "n2": BLOB_NODE}, heap="160K")
    try:
        a = deploy(c.cfg, "blob", "n1")
        c.obs.send_input(a, b"=9000", sender="setup", counter=1)
        c.wait_events(a, 1)
        outs = stream_and_migrate(c, a, ["n2", "n1"], n=200)
        assert "from n2 to n1" in outs[1], outs
        st = c.gw.store()
        try:
            evs = list(st.events(a))
            assert [e.sequence for e in evs] == list(range(1, 202))
            assert_in_order(evs)
            assert sorted(event_outputs(e.payload)[1] for e in evs[1:]) == list(range(1, 201))
            assert int(event_outputs(evs[-1].payload)[4][0]) == 200 * 201 // 2
            assert S.assess_continuity(evs, a).kind == S.CONTINUOUS
            from netedge.shared import cbor
            snap = st.latest_snapshot(a)  # the gateway reassembled the source's chunks
            assert len(snap.data) > 9000 and len(cbor.loads(snap.data)["state"]) > 9000
            d = st.daemon(a)
            assert (d.epoch, d.host_node) == (3, "n1")
        finally:
            st.close()
        c.obs.heartbeats.clear()
        c.obs.wait(lambda: "n1" in c.obs.heartbeats, 5, "heartbeat")
        [dd] = c.obs.heartbeats["n1"]["daemons"]
        assert dd["size"] > 9000
    except Exception:
        print(c.gw.output()[-5000:])
        raise
    finally:
        c.close()


def test_auto_placement_rules(tmp_path):
    """start_migration_auto's choice from the capability index (the nodes' last heartbeats):
    online, can host the kind, holds the key slot or can be provisioned, free heap for the
    record, not the source; ranked key slot first, then free heap; a clear reason otherwise."""
    import pytest
    from netedge.gateway.control.collaborators import Collaborators
    from netedge.gateway.control.migration import MigrationError, MigrationOrchestrator, heap_needed
    from netedge.gateway.store import Store

    st = Store(str(tmp_path / "gw.db"))
    # (pick_target reads the store and asks whether a node can be provisioned: nothing else)
    ctx = Collaborators(store=st, clock=None, keystore=None, frame=None, reply=None, new_op=None, push_tag=None,
                        slots=None, changed=None, count=None, can_provision=lambda n: n != "far")
    o = 0x1a2b3c4d
    need = heap_needed(5000)

    def node(name, status="online", kinds=("counter",), keys=(), heap=100000, daemons=()):
        st.upsert_node(name, status, info={"kinds": list(kinds), "keys": list(keys), "heap": heap,
                                           "daemons": list(daemons)})
    node("src", daemons=[{"origin": o, "kind": "counter", "size": 5000}])
    st.add_daemon(o, "counter", b"k" * 32, host_node="src", epoch=1, status="active")
    node("a-off", status="offline")
    node("b-echo", kinds=("echo",))
    node("c-small", heap=need - 1)
    node("far")  # no key slot and no provisioning path
    node("old", daemons=[{"origin": o}])
    orch = MigrationOrchestrator(ctx)
    with pytest.raises(MigrationError) as e:
        orch.pick_target(o)
    msg = str(e.value)
    for why in ("a-off: offline", "b-echo: cannot host kind 'counter'", "c-small: free heap %d < %d" % (need - 1, need),
                "far: no key slot", "old: still hosts it", "5000-byte record"):
        assert why in msg, msg
    assert "src" not in msg
    node("x-big", heap=200000)  # needs provisioning
    node("y-key", keys=[o], heap=need)  # holds the key slot: preferred
    assert orch.pick_target(o) == "y-key"
    node("y-key", keys=[o], heap=need, status="suspect")
    assert orch.pick_target(o) == "x-big"
    st.close()


def test_migrate_auto_end_to_end(tmp_path, firmware):
    c = Cluster(tmp_path, firmware, ["n1", "n2", "n3"], configured=["n1", "n2"],
                extra={"n3": {"kinds": {"echo": "netedge.firmware.daemons.echo.Echo"}}})
    try:
        a = deploy(c.cfg, "counter", "n1")
        s = Stream(c.obs, a, 1, 100, rate=200)
        s.start()
        out = cli(c.cfg, "migrate", "%08x" % a, "--auto").stdout
        assert "from n1 to n2" in out, out  # n3 cannot host counters
        c.nodes["n1"].kill()
        c.gw.wait_for(lambda st: st.node("n1").status != "online", 10, "n1 offline")
        r = cli(c.cfg, "migrate", "%08x" % a, "--auto", check=False)
        assert r.returncode != 0 and "no node can take" in r.stderr and "n1: offline" in r.stderr \
            and "n3: cannot host kind 'counter'" in r.stderr, r.stderr
        s.join(30)
        c.wait_events(a, 100)
        check_chain(c, a, 100, 2, "n2")
    except Exception:
        print(c.gw.output()[-5000:])
        raise
    finally:
        c.close()


def test_forged_and_stale_migration_frames_are_rejected(tmp_path, firmware):
    """While a migration is held at restore: replies forged by a third node (on its own topic,
    or on the target's topic under its own name), a failure for an older migration id, and after
    the move a chain event from the deposed source at the old epoch — all refused; the migration
    completes and the chain is untouched."""
    import signal
    from netedge.shared import frame as FR
    from netedge.shared import topics as T
    from netedge.shared.link import CausalLink
    c = Cluster(tmp_path, firmware, ["n1", "n2", "n3"])
    try:
        a = deploy(c.cfg, "counter", "n1")
        for i in range(1, 6):
            c.obs.send_input(a, b"%d" % i, counter=i)
        c.wait_events(a, 5)
        n2 = c.nodes["n2"]
        n2.signal(signal.SIGSTOP)
        res = {}
        t = threading.Thread(target=lambda: res.setdefault("r", c.migrate(a, "n2", check=False)))
        t.start()
        c.gw.wait_for(lambda st: getattr(st.load_state(MigrationState, a), "step", None) == "restore", 15, "held at restore")
        st = c.gw.store()
        m, seq = st.load_state(MigrationState, a).m, st.load_state(MigrationState, a).seq
        st.close()
        forged = [("n3", "n3", {"op": "restored", "m": m, "o": a, "seq": seq}),   # not a party
                  ("n3", "n3", {"op": "failed", "m": m, "o": a, "code": 4, "detail": "forged"}),
                  ("n2", "n3", {"op": "restored", "m": m, "o": a, "seq": seq}),   # n3 on n2's topic
                  ("n2", "n2", {"op": "failed", "m": m - 1, "o": a, "code": 4, "detail": "old"})]  # stale id
        for topic_node, sender, body in forged:
            c.obs.publish_raw(T.node(topic_node, "mig"), FR.encode(FR.MIGRATION, sender, 1 << 20, body))
        time.sleep(0.5)
        st = c.gw.store()
        assert st.load_state(MigrationState, a).step == "restore" and st.daemon(a).epoch == 1  # nothing moved
        st.close()
        n2.signal(signal.SIGCONT)
        t.join(30)
        assert res["r"].returncode == 0, res["r"].stderr
        for i in range(6, 11):
            c.obs.send_input(a, b"%d" % i, counter=i)
        c.wait_events(a, 10)
        # the deposed source (or anyone in its name) at the old epoch: fenced
        st = c.gw.store()
        head = st.head(a)
        st.close()
        fake = CausalLink(a, 0, head.sequence + 1, head.forward).to_bytes()
        c.obs.publish_raw(T.daemon(a, "chain"), FR.encode(FR.CHAIN_EVENT, "n1", 1 << 20,
                                                          {"o": a, "e": 1, "l": fake, "p": b"stale"}))
        time.sleep(0.5)
        check_chain(c, a, 10, 2, "n2")
        out = c.gw.output()
        assert out.count("not a party to migration") == 2 and "sender 'n3' on node 'n2'" in out, out[-3000:]
        assert "stale frame rejected origin=%08x from=n1 epoch=1" % a in out
    except Exception:
        print(c.gw.output()[-5000:])
        raise
    finally:
        for n in c.nodes.values():
            n.signal(signal.SIGCONT)
        c.close()
