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
