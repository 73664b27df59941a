"""NodeCore without its driver (CPython): it takes its flash records through a read-only view at
boot, and every write it wants comes back in a Ready; the flash store performs them.  Plus the
static rule that keeps it sans-I/O: NodeCore and every module it loads import no file, clock
or network module, and not the flash store."""
import ast
import os

import pytest

from netedge.firmware.node import NodeCore
from netedge.firmware import CorruptRecord
from netedge.firmware.registry import DaemonFactoryRegistry
from netedge.firmware.store import RecordStore
from netedge.shared import cbor
from netedge.shared import frame as FR
from netedge.shared import topics as T

from conftest import REPO
from nodes import daemon_key, daemon_origin

O = daemon_origin("core1")


class ReadOnly:
    """A record view with nothing but the two reads NodeCore may use: any write attempt fails."""

    def __init__(self, records, damaged=()):
        self.records = dict(records)
        self.damaged = set(damaged)
        self.reads = []

    def names(self):
        return sorted(self.records)

    def load(self, name):
        self.reads.append(name)
        if name in self.damaged:
            raise CorruptRecord(name + ".rec", "checksum mismatch")
        return self.records.get(name)


def _core(hosted=(O,)):
    class Cfg:
        node_id, board = "c1", "unix"
    Cfg.hosted = list(hosted)
    reg = DaemonFactoryRegistry()
    reg.register_kind("counter", "netedge.firmware.daemons.counter.Counter")
    reg.provision("counter", daemon_key("core1")[0])
    return NodeCore(Cfg, reg)


def _input(core, i, now=0):
    return core.on_message(T.daemon(O, "in"), FR.encode(FR.INPUT, "client", i, {"p": b"%d" % i}), now)


def _codes(ready):
    return [FR.decode(p[1]).body()["code"] for p in ready.publish if p[0].endswith("/err")]


def test_boot_on_empty_flash_returns_its_writes():
    core = _core()
    view = ReadOnly({})
    ready = core.boot(view, 77)
    assert ready.quarantine == ()
    names = [n for n, _ in ready.persist]
    assert names == ["node", "d%08x" % O]          # counters reserved, the hosted daemon at genesis
    assert ready.persist[0][1]["ctr"] > 0 and core.hosts[O].epoch == 1
    assert view.reads == ["node"]                  # nothing else to read
    online = core.online()
    [(topic, data, qos, retain)] = online.publish
    assert FR.decode(data).body() == {"state": "online", "board": "unix", "boot": 77} and (qos, retain) == (1, True)
    assert FR.decode(core.will()[1]).body() == {"state": "offline", "board": "unix"}


def test_damaged_records_are_listed_to_set_aside_never_reset():
    core = _core()
    view = ReadOnly({"node": None, "d%08x" % O: None, "s00000005": None},
                    damaged=("node", "d%08x" % O, "s00000005"))
    ready = core.boot(view, 1)
    assert ready.quarantine == ("node", "d%08x" % O, "s00000005")
    assert sorted(core.corrupt) == sorted(ready.quarantine)
    assert O not in core.hosts                         # not re-created at genesis
    assert [n for n, _ in ready.persist] == ["node"]   # only the counters, skipped far ahead
    assert ready.persist[0][1]["ctr"] > 1 << 30
    assert _codes(ready) == ["corruption", "corruption"]
    assert all(p[2] == 1 for p in ready.publish)      # reported at QoS 1: before the connection is up


def test_a_record_set_aside_at_an_earlier_boot_blocks_activation():
    core = _core()
    ready = core.boot(ReadOnly({"d%08x.bad" % O: None}), 1)
    assert core.corrupt == {"d%08x" % O: "quarantined record on flash"} and O not in core.hosts
    assert ready.quarantine == () and [n for n, _ in ready.persist] == ["node"]
    r = core.on_message(T.node("c1", "ctl"), FR.encode(FR.CONTROL, "gw", 1, {
        "cmd": "activate", "origin": O, "kind": "counter", "epoch": 2}))
    assert _codes(r) == ["state_failed"] and r.persist == [] and O not in core.hosts


def test_flash_round_trip_through_the_store(tmp_path):
    """The driver's part: RecordStore.commit performs a Ready's writes, and a reboot from the
    same folder resumes where the records stand (the newest event republished)."""
    store = RecordStore(str(tmp_path / "state"))
    core = _core()
    store.commit(core.boot(store, 1))
    for i in (1, 2, 3):
        r = _input(core, i)
        assert [n for n, _ in r.persist] == ["d%08x" % O]
        store.commit(r)
        assert r.persist == () and r.quarantine == ()
    again = _core()
    ready = again.boot(store, 2)
    assert again.hosts[O].daemon.total == 6 and again.hosts[O].chain.head.sequence == 3
    assert [p[0] for p in ready.publish] == [T.daemon(O, "chain")]
    # a damaged record: the store reads it as such, the Ready sets it aside, the store does it
    path = str(tmp_path / "state" / ("d%08x.rec" % O))
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))
    third = _core()
    ready = third.boot(store, 3)
    assert ready.quarantine == ("d%08x" % O,) and os.path.exists(path)
    store.commit(ready)
    assert not os.path.exists(path) and os.path.exists(path + ".bad")
    assert store.names() == ["d%08x.bad" % O, "node"]
    fourth = _core()
    store.commit(fourth.boot(store, 4))
    assert O not in fourth.hosts and "d%08x" % O in fourth.corrupt and os.path.exists(path + ".bad")


def test_reload_takes_hosts_back_to_their_records(tmp_path):
    store = RecordStore(str(tmp_path / "state"))
    core = _core()
    store.commit(core.boot(store, 1))
    store.commit(_input(core, 1))
    _input(core, 2)                    # processed, its record never written (a MemoryError after)
    assert core.hosts[O].daemon.total == 3
    core.reload(store)
    assert core.hosts[O].daemon.total == 1 and core.hosts[O].chain.head.sequence == 1


def test_a_promotion_reads_its_standby_copy_through_the_view():
    core = _core(hosted=())
    src = _core()
    src.boot(ReadOnly({}), 1)
    rec = cbor.dumps(src.hosts[O].record(), True)
    name = "s%08x" % O
    view = ReadOnly({name: {"rec": rec, "seq": 0}})
    core.boot(view, 1)
    assert core.standby == {O: 0}
    r = core.on_message(T.node("c1", "ctl"), FR.encode(FR.CONTROL, "gw", 1, {
        "cmd": "promote", "m": 9, "origin": O, "kind": "counter", "epoch": 2}))
    [reply] = [FR.decode(p[1]).body() for p in r.publish if p[0].endswith("/mig")]
    assert (reply["op"], reply["seq"]) == ("restored", 0)
    assert view.reads.count(name) == 2                 # at boot, and at the promotion
    assert ("d%08x" % O) in [n for n, _ in r.persist] and (name, None) in r.persist


def test_a_promotion_again_at_a_newer_epoch_replaces_the_unfinished_one():
    """The gateway lost track of a promotion it had sent (its commits failed, it timed out) and
    promotes the same standby again at a newer epoch before `start`: the node takes the new
    one (epoch, operation id) instead of refusing with already_migrating, which made the
    gateway promote another standby over it (the simulator's seed 20638).  An OLDER epoch, or a
    promotion of a daemon active here, is still refused."""
    core = _core(hosted=())
    src = _core()
    src.boot(ReadOnly({}), 1)
    rec = cbor.dumps(src.hosts[O].record(), True)
    core.boot(ReadOnly({"s%08x" % O: {"rec": rec, "seq": 0}}), 1)

    def promote(m, epoch):
        r = core.on_message(T.node("c1", "ctl"), FR.encode(FR.CONTROL, "gw", m, {
            "cmd": "promote", "m": m, "origin": O, "kind": "counter", "epoch": epoch}))
        return [FR.decode(p[1]).body() for p in r.publish if p[0].endswith("/mig")], r
    [first], _ = promote(9, 2)
    assert first["op"] == "restored" and core.hosts[O].epoch == 2
    [again], r = promote(11, 3)
    assert (again["op"], again["m"]) == ("restored", 11)
    assert core.hosts[O].epoch == 3 and core.mig[O][:2] == [11, "p"] and core.hosts[O].hold == 11
    assert ("d%08x" % O) in [n for n, _ in r.persist]
    [old], _ = promote(12, 2)  # an older epoch: refused
    assert old["op"] == "failed" and core.hosts[O].epoch == 3 and core.mig[O][0] == 11


def test_heartbeat_reports_the_record_sizes_the_driver_measured():
    core = _core()
    core.boot(ReadOnly({}), 1)
    r = core.heartbeat(1000, 2000, 5, {}, {"d%08x" % O: 123})
    [body] = [FR.decode(p[1]).body() for p in r.publish if p[0].endswith("/hb")]
    assert body["daemons"][0]["size"] == 123 and body["heap"] == 1000


# -- the static rule ------------------------------------------------------------------------------

CORE_MODULES = ("node", "__init__", "host", "migrate", "standby", "registry", "daemon")
NO_IO = {"os", "time", "socket", "select", "asyncio", "uasyncio", "network", "machine"}
NO_DRIVER = {"store", "main", "config", "mqtt_codec", "mqtt_client", "mqtt_supervisor", "mqtt"}


def _imports(path):
    """Every module a file imports, at the top or inside a function: (absolute name, or the
    relative one with its leading dots)."""
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            out.add(base)
            if not node.module:
                out.update("." * node.level + a.name for a in node.names)
    return out


@pytest.mark.parametrize("name", CORE_MODULES)
def test_the_core_and_what_it_loads_do_no_io(name):
    found = _imports(os.path.join(REPO, "firmware", name + ".py"))
    io = {m for m in found if m.split(".")[0] in NO_IO}
    driver = {m for m in found if m.startswith(".") and m.lstrip(".") in NO_DRIVER}
    assert not io and not driver, (name, io | driver)


def _send(core, i, payload, now=0):
    return core.on_message(T.daemon(O, "in"), FR.encode(FR.INPUT, "client", i, {"p": payload}), now)


def _mark(core, seq, resend=False, epoch=1):
    body = {"cmd": "stored", "origin": O, "epoch": epoch, "seq": seq}
    if resend:
        body["resend"] = True
    return core.on_message(T.node("c1", "mark"), FR.encode(FR.CONTROL, "gw1", seq + 1, body), 0)


def test_over_cap_state_is_refused_before_anything_changes(tmp_path):
    """Caps before effects: an input that would take the state over max_state is refused with the
    state restored, no event, nothing persisted, the window not admitting it; flash, RAM and a
    reboot agree."""
    from netedge.firmware.host import DaemonHost
    store = RecordStore(str(tmp_path / "state"))
    saved = DaemonHost.max_state
    DaemonHost.max_state = 5  # the counter's state is b"total,count": b"999,1" fits, b"1000,2" does not
    try:
        core = _core()
        store.commit(core.boot(store, 1))
        store.commit(_send(core, 1, b"999"))
        host = core.hosts[O]
        before = store.load("d%08x" % O)
        r = _send(core, 2, b"1")
        assert r.persist == [] and not r.stall and _codes(r) == ["input_refused"]
        assert "state over its cap" in FR.decode(r.publish[0][1]).body()["detail"]
        assert not [p for p in r.publish if p[0].endswith("/chain")]
        assert host.chain.head.sequence == 1 and host.daemon.snapshot() == b"999,1"
        assert host.window.check("client", 2) == 0  # (NEW: never admitted, a redelivery is refused again)
        store.commit(r)
        assert store.load("d%08x" % O) == before
        rebooted = _core()
        store.commit(rebooted.boot(store, 2))
        assert rebooted.hosts[O].chain.head.sequence == 1 and rebooted.hosts[O].daemon.snapshot() == b"999,1"
        store.commit(_send(core, 3, b"-9"))  # a smaller state still goes on the chain
        assert host.chain.head.sequence == 2 and host.daemon.snapshot() == b"990,2"
    finally:
        DaemonHost.max_state = saved


def test_unmarked_events_are_kept_resent_and_cap_the_inputs(tmp_path):
    """The host keeps what the gateway has not marked stored; at 16 it takes no input (stall, not
    acknowledged); a mark frees them; a gap request resends them with their inputs; after a
    reboot only the newest event is left, and the rest is reported gap_lost."""
    store = RecordStore(str(tmp_path / "state"))
    core = _core()
    store.commit(core.boot(store, 1))
    for i in range(1, 17):
        store.commit(_input(core, i))
    host = core.hosts[O]
    assert len(host.sent) == 16 and host.full()
    r = _input(core, 17)
    assert r.stall and r.persist == [] and r.publish == [] and host.chain.head.sequence == 16
    r = _mark(core, 10)
    assert len(host.sent) == 6 and O not in core.stalled and r.publish == []
    assert not _input(core, 17).stall and host.chain.head.sequence == 17
    r = _mark(core, 12, resend=True)  # the gateway lacks 13..17: at most 8 per request, with inputs
    chain = [FR.decode(p[1]).body() for p in r.publish if p[0].endswith("/chain")]
    assert [int.from_bytes(b["l"][8:16], "little") for b in chain] == [13, 14, 15, 16, 17]
    assert [b["i"] for b in chain] == [b"13", b"14", b"15", b"16", b"17"] and _codes(r) == []
    assert _mark(core, 1, epoch=2).publish == [] and core.errors["stale_epoch"] == 1 and len(host.sent) == 5
    store.commit(_input(core, 18))
    rebooted = _core()
    store.commit(rebooted.boot(store, 2))
    r = _mark(rebooted, 12, resend=True)
    chain = [FR.decode(p[1]).body() for p in r.publish if p[0].endswith("/chain")]
    assert [int.from_bytes(b["l"][8:16], "little") for b in chain] == [18] and "i" not in chain[0]
    assert _codes(r) == ["gap_lost"] and "seq 13..17" in FR.decode(r.publish[-1][1]).body()["detail"]


def test_the_mark_topic_takes_stored_marks_only(tmp_path):
    """`mark` is subscribed at QoS 0 and never refused (it must pass a stalled node): so it carries
    nothing but the stored mark.  Any other command there, or garbage, is refused as malformed
    and changes nothing; `stored` on the command topic is an unknown command."""
    store = RecordStore(str(tmp_path / "state"))
    core = _core()
    store.commit(core.boot(store, 1))
    store.commit(_input(core, 1))
    host = core.hosts[O]
    before = (host.chain.head.sequence, len(host.sent), dict(core.errors))
    stop = FR.encode(FR.CONTROL, "gw1", 50, {"cmd": "stop", "origin": O, "wipe": True})
    for payload in (stop, b"\x00garbage", FR.encode(FR.INPUT, "gw1", 51, {"p": b"1"})):
        r = core.on_message(T.node("c1", "mark"), payload, 0)
        assert r.persist == [] and O in core.hosts and _codes(r) == ["malformed"]
    mark = FR.encode(FR.CONTROL, "gw1", 52, {"cmd": "stored", "origin": O, "epoch": 1, "seq": 1})
    r = core.on_message(T.node("c1", "ctl"), mark, 0)
    assert _codes(r) == ["malformed"] and len(host.sent) == before[1]
    assert (host.chain.head.sequence, len(host.sent)) == before[:2]
    assert core.errors["malformed"] == before[2]["malformed"] + 4
    assert _mark(core, 1).publish == [] and host.sent == []
