"""End-to-end acknowledgement where a host changes: a migration's epoch bump waits for the stored
chain, a former host is marked at its own epoch, and a discontinued daemon's host is released
(gateway/control/acks.py, migration.py; PROTOCOL §11, §16).  Each test fails when its check is
removed: the deterministic simulator found the deadlocks these prevent (a source stalled at its
cap could never take its `release`; a node hosting a discontinued daemon took no delivery at all)."""
from netedge.gateway.control import migration as M
from netedge.shared import cbor
from netedge.shared import frame as FR
from netedge.shared import topics as T

from test_gateway_badinput import EPOCH, NODE, OTHER, rig  # noqa: F401 (the fixture: GatewayCore over a real store)


def marks(acts, node):
    """The `stored` marks in `acts` to `node` (their bodies), each checked to be QoS 0."""
    out = []
    for topic, data, qos, _ in acts.publish:
        if topic == T.node(node, "mark"):
            body = FR.decode(data).body()
            if body["cmd"] == "stored":
                assert qos == 0
                out.append(body)
    return out


def heartbeat(rig, node, epoch=None, seq=0, kept=0):
    """`node`'s heartbeat: it holds the daemon's key slot, and hosts it at `epoch` (None: not)."""
    daemons = [] if epoch is None else [{"origin": rig.origin, "kind": "counter", "epoch": epoch, "seq": seq,
                                         "next": 0, "size": 0, "kept": kept}]
    return rig.accept(T.node(node, "hb"), rig.frame(FR.HEARTBEAT, {
        "board": "unix", "heap": 60000, "kinds": ["counter"], "keys": [rig.origin], "daemons": daemons}, node))


def test_a_former_host_is_marked_at_its_own_epoch(rig):
    """After the bump the old host still keeps events of its epoch: it gets the stored head at
    that epoch (nothing else would mark it, and at its cap it takes no delivery at all)."""
    rig.store.update_daemon(rig.origin, host_node=OTHER, epoch=EPOCH + 1)
    acts = heartbeat(rig, NODE, EPOCH, 3, 2)
    assert marks(acts, NODE) == [{"cmd": "stored", "origin": rig.origin, "epoch": EPOCH, "seq": 3}]
    # the current host is not told about the former one's epoch, and nothing claims more than is stored
    acts = heartbeat(rig, NODE, EPOCH, 5, 4)
    assert marks(acts, NODE) == [{"cmd": "stored", "origin": rig.origin, "epoch": EPOCH, "seq": 3}]
    assert marks(acts, OTHER) == []
    # a node claiming a NEWER epoch than the store's is no former host: nothing
    assert marks(heartbeat(rig, NODE, EPOCH + 5, 3, 2), NODE) == []


def test_a_discontinued_or_stopped_daemons_host_is_released_not_acknowledged(rig):
    rig.store.update_daemon(rig.origin, status="discontinued")
    acts = heartbeat(rig, NODE, EPOCH, 9, 6)
    assert marks(acts, NODE) == [{"cmd": "stored", "origin": rig.origin, "epoch": EPOCH, "seq": 9,
                                  "release": True}]
    assert rig.store.head(rig.origin).sequence == 3  # (nothing stored by it)
    # an active daemon's host ahead of the store is asked to resend instead: never released
    rig.store.update_daemon(rig.origin, status="active")
    rig.now += 1
    acts = heartbeat(rig, NODE, EPOCH, 9, 6)
    assert [m.get("resend") for m in marks(acts, NODE)] == [True]
    assert all("release" not in m for m in marks(acts, NODE))
    # a stopped daemon (its `stop` may wait behind the input its host stalled on): released too
    rig.store.update_daemon(rig.origin, status="stopped")
    acts = heartbeat(rig, NODE, EPOCH, 9, 3)
    assert marks(acts, NODE) == [{"cmd": "stored", "origin": rig.origin, "epoch": EPOCH, "seq": 9, "release": True}]


def test_the_epoch_bump_waits_for_the_stored_chain(rig):
    """T restored a snapshot at seq 5 while the gateway stored only through 3 (the bus lost 4
    and 5): bumping now would leave the gap to T, which never had those events.  The source
    stays the host until they are stored, then the bump and `release` follow."""
    heartbeat(rig, OTHER)  # (n2 holds the key slot: no key push)
    acts = rig.accept(T.gateway("gw1", "req", "cli-1"), rig.frame(FR.CONTROL, {
        "cmd": "migrate", "origin": rig.origin, "to": OTHER, "id": 1}, "cli-1"))
    st = rig.store.load_state(M.MigrationState, rig.origin)
    assert st is not None and st.step == M.SNAPSHOT
    late = []
    for i in (4, 5):
        ev = rig.next_event(b"event %d" % i)
        rig.commit(ev)
        late.append(ev)
    rec = cbor.dumps({"origin": rig.origin, "head": late[-1].link.to_bytes(), "next": rig.chain.next_parent})
    rig.accept(T.node(NODE, "mig"), rig.frame(FR.MIGRATION, {"op": "snapshot", "m": st.m, "o": rig.origin, "rec": rec}))
    assert rig.store.load_state(M.MigrationState, rig.origin).step == M.RESTORE
    acts = rig.accept(T.node(OTHER, "mig"), rig.frame(FR.MIGRATION, {"op": "restored", "m": st.m, "o": rig.origin,
                                                                      "seq": 5}, OTHER))
    d = rig.store.daemon(rig.origin)
    assert (d.host_node, d.epoch) == (NODE, EPOCH)  # not yet: 4 and 5 are not stored
    assert not [b for t, data, _, _ in acts.publish if t == T.node(NODE, "ctl")
                for b in [FR.decode(data).body()] if b["cmd"] == "release"]
    # the source, still the host, shows it is ahead: asked to resend (it keeps them)
    rig.now += 1
    assert [m.get("resend") for m in marks(heartbeat(rig, NODE, EPOCH, 5, 2), NODE)] == [True]
    rig.accept(T.daemon(rig.origin, "chain"), rig.chain_frame(late[0]))
    assert rig.store.daemon(rig.origin).host_node == NODE
    acts = rig.accept(T.daemon(rig.origin, "chain"), rig.chain_frame(late[1]))
    d = rig.store.daemon(rig.origin)
    assert (d.host_node, d.epoch) == (OTHER, EPOCH + 1)
    assert "release" in [FR.decode(data).body()["cmd"] for t, data, _, _ in acts.publish if t == T.node(NODE, "ctl")]
    assert rig.store.load_state(M.MigrationState, rig.origin).step == M.REPLAY


def test_a_bump_still_waiting_at_the_timeout_aborts_to_the_source(rig):
    heartbeat(rig, OTHER)
    rig.accept(T.gateway("gw1", "req", "cli-1"), rig.frame(FR.CONTROL, {
        "cmd": "migrate", "origin": rig.origin, "to": OTHER, "id": 1}, "cli-1"))
    st = rig.store.load_state(M.MigrationState, rig.origin)
    ev = rig.next_event(b"lost")
    rig.commit(ev)
    rec = cbor.dumps({"origin": rig.origin, "head": ev.link.to_bytes(), "next": rig.chain.next_parent})
    rig.accept(T.node(NODE, "mig"), rig.frame(FR.MIGRATION, {"op": "snapshot", "m": st.m, "o": rig.origin, "rec": rec}))
    rig.accept(T.node(OTHER, "mig"), rig.frame(FR.MIGRATION, {"op": "restored", "m": st.m, "o": rig.origin,
                                                              "seq": 4}, OTHER))
    rig.now += M.PHASE_TIMEOUT_S + 1
    rig.core.tick(rig.now)
    d = rig.store.daemon(rig.origin)
    assert (d.host_node, d.epoch) == (NODE, EPOCH)
    assert rig.store.load_state(M.MigrationState, rig.origin) is None


def test_a_caught_up_host_gets_the_logged_inputs_it_never_had(rig):
    """The gateway logged inputs its host never processed (the host's own broker session dropped
    them: a full queue drops QoS 1 silently).  With the host caught up with the stored head,
    an input no recent event consumed, still there a second later, is replayed from the log
    (then `go`, until `active`), once; consumed ones are not."""
    from netedge.shared import event as EV
    from netedge.gateway.control.state import RecoveryState
    inbox, chain = T.daemon(rig.origin, "in"), T.daemon(rig.origin, "chain")
    for i in (1, 2, 3):
        rig.accept(inbox, rig.frame(FR.INPUT, {"p": b"%d" % i}, "client"))
    for i in (1, 2):  # the host processed 1 and 2; 3 never reached it
        ev = rig.next_event(EV.encode("client", i, b"%d" % i, EV.OK, [b"%d" % i]))
        rig.accept(chain, rig.chain_frame(ev))
        rig.commit(ev)

    def replays(acts):
        return [b for t, data, _, _ in acts.publish if t == T.node(NODE, "ctl")
                for b in [FR.decode(data).body()] if b["cmd"] == "replay"]
    assert replays(heartbeat(rig, NODE, EPOCH, 5, 0)) == []  # (seen once: it may be on its way)
    rig.now += 0.5
    assert replays(heartbeat(rig, NODE, EPOCH, 5, 0)) == []
    rig.now += 0.6
    [rep] = replays(heartbeat(rig, NODE, EPOCH, 5, 0))
    assert rep["inputs"] == [["client", 3, b"3"]] and rep["log"] is True
    assert rig.core.counters["input_repairs"] == 1
    rec = rig.store.load_state(RecoveryState, rig.origin)
    assert rec is not None and rec.node == NODE
    acts = rig.accept(T.node(NODE, "mig"), rig.frame(FR.MIGRATION, {"op": "replayed", "m": rec.m, "o": rig.origin,
                                                                      "b": rep["b"]}))
    assert [FR.decode(d).body()["cmd"] for t, d, _, _ in acts.publish if t == T.node(NODE, "ctl")] == ["go"]
    rig.accept(T.node(NODE, "mig"), rig.frame(FR.MIGRATION, {"op": "active", "m": rec.m, "o": rig.origin, "seq": 5}))
    assert rig.store.load_state(RecoveryState, rig.origin) is None
    # the window dropped it as a duplicate (say): no second replay of the same input
    for _ in range(4):
        rig.now += 0.6
        assert replays(heartbeat(rig, NODE, EPOCH, 5, 0)) == []
    # a host that is behind the store (seq < head) or keeps events is not caught up: no repair
    rig.accept(inbox, rig.frame(FR.INPUT, {"p": b"4"}, "client"))
    for _ in range(4):
        rig.now += 0.6
        assert replays(heartbeat(rig, NODE, EPOCH, 4, 0)) == [] and replays(heartbeat(rig, NODE, EPOCH, 5, 1)) == []
