"""gateway/store.py on real SQLite files: schema migrations, idempotent and conflict-reporting
appends, streamed events under proofs, tamper detection, kill -9 crash safety, inputs, snapshots,
records, orchestration state, and two-thread use."""
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tracemalloc
import types

import pytest

from netedge.gateway import store as store_mod
from netedge.gateway.control import state as CS
from netedge.gateway.store import (CHUNK, ConflictingEvent, ConflictingInput, CorruptRow, SCHEMA_VERSION,
                                   SchemaTooNew, Store, StoreError, UnknownDaemon)
from netedge.shared import status as S
from netedge.shared.link import CausalLink, ChainBuilder
from netedge.shared.log import ChainEvent, EntityLog
from netedge.shared.proof import ContinuityProof, HashMismatch

ORIGIN = 0xC0FFEE01


def pk_of(origin):
    return hashlib.sha256(b"pk%d" % origin).digest()


def chain(origin, n, start=None, tag=b"e"):
    """n ChainEvents following `start` (a ChainBuilder) or genesis."""
    b = start or ChainBuilder(origin)
    out = []
    for _ in range(n):
        p = tag + b"%d" % (b.sequence + 1)
        out.append(ChainEvent(b.append(p), p))
    return out


@pytest.fixture
def db(tmp_path):
    return tmp_path / "gateway.db"


@pytest.fixture
def store(db):
    s = Store(db)
    s.add_daemon(ORIGIN, "counter", pk_of(ORIGIN))
    yield s
    s.close()


def raw(db):
    return sqlite3.connect(db, isolation_level=None)


# -- schema and migrations -----------------------------------------------------------------

def test_fresh_database_is_migrated_wal_full_fk(db):
    with Store(db) as s:
        assert s.schema_version == SCHEMA_VERSION == len(store_mod.MIGRATIONS)
        assert s.query("PRAGMA journal_mode")[0][0] == "wal"
        assert s.query("PRAGMA synchronous")[0][0] == 2  # FULL
        assert s.query("PRAGMA foreign_keys")[0][0] == 1
        tables = {r[0] for r in s.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"nodes", "daemons", "chain_events", "inputs", "snapshots", "records", "control_state",
            "keys", "gateway_identity"} <= tables


def test_reopen_keeps_data_and_does_not_remigrate(db):
    with Store(db) as s:
        s.add_daemon(7, "echo", pk_of(7))
        s.append_events(chain(7, 5))
    with Store(db) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert s.event_count(7) == 5 and s.daemon(7).kind == "echo"


def test_newer_schema_is_refused_clearly(db):
    Store(db).close()
    c = raw(db)
    c.execute("PRAGMA user_version = %d" % (SCHEMA_VERSION + 1))
    c.close()
    with pytest.raises(SchemaTooNew, match="upgrade netedge") as e:
        Store(db)
    assert (e.value.found, e.value.known) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)


def test_migration_step_is_atomic_then_applies(db, monkeypatch):
    Store(db).close()
    bad = store_mod.MIGRATIONS + (("CREATE TABLE extra (x)", "CREATE TABLE nodes (y)"),)  # 2nd fails
    monkeypatch.setattr(store_mod, "MIGRATIONS", bad)
    with pytest.raises(sqlite3.OperationalError):
        Store(db)
    c = raw(db)
    assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert c.execute("SELECT count(*) FROM sqlite_master WHERE name = 'extra'").fetchone()[0] == 0
    c.close()
    good = store_mod.MIGRATIONS[:-1] + (("CREATE TABLE extra (x)", "INSERT INTO extra VALUES (1)"),)
    monkeypatch.setattr(store_mod, "MIGRATIONS", good)
    with Store(db) as s:
        assert s.schema_version == SCHEMA_VERSION + 1
        assert s.query("SELECT x FROM extra") == [(1,)]


# -- chain events ----------------------------------------------------------------------------

def test_append_is_idempotent_for_identical_rows(store):
    evs = chain(ORIGIN, 3)
    assert [store.append_event(e) for e in evs] == [True, True, True]
    assert [store.append_event(e) for e in evs] == [False, False, False]  # QoS 1 redelivery
    assert store.append_events(evs) == 0
    assert store.event_count(ORIGIN) == 3
    assert list(store.events(ORIGIN)) == evs
    assert store.head(ORIGIN) == evs[-1] and store.event(ORIGIN, 2) == evs[1]


def test_conflicting_event_is_reported_never_overwritten(store):
    evs = chain(ORIGIN, 3)
    store.append_events(evs)
    other_payload = ChainEvent(evs[1].link, b"another history")
    other_link = chain(ORIGIN, 2, tag=b"x")[1]
    for bad in (other_payload, other_link):
        with pytest.raises(ConflictingEvent) as e:
            store.append_event(bad)
        c = e.value
        assert (c.origin, c.seq) == (ORIGIN, 2)
        assert c.existing_link == evs[1].link and c.new_link == bad.link
        assert c.existing_forward == evs[1].forward and c.new_forward == bad.forward != c.existing_forward
    assert list(store.events(ORIGIN)) == evs


def test_batch_is_all_or_nothing(store):
    evs = chain(ORIGIN, 6)
    store.append_events(evs[:3])
    batch = evs[3:] + [ChainEvent(evs[0].link, b"forged")]
    with pytest.raises(ConflictingEvent):
        store.append_events(batch)
    assert store.event_count(ORIGIN) == 3


def test_unknown_daemon_writes_nothing(store):
    with pytest.raises(UnknownDaemon):
        store.append_event(chain(0x1234, 1)[0])
    with pytest.raises(UnknownDaemon):
        store.log_input(0x1234, "s", 1, b"x")
    with pytest.raises(UnknownDaemon):
        store.put_snapshot(0x1234, 1, b"x")
    assert store.query("SELECT count(*) FROM chain_events")[0][0] == 0


def test_sequence_beyond_sqlite_integer_is_a_clear_error(store):
    link = CausalLink(ORIGIN, 0, 2 ** 64 - 1, 0)
    with pytest.raises(StoreError, match="sequence"):
        store.append_event(ChainEvent(link, b""))


def test_100k_events_stream_under_a_proof(store):
    n = 100_000
    t0 = time.perf_counter()
    store.append_events(chain(ORIGIN, n))
    t_ingest = time.perf_counter() - t0
    stream = store.events(ORIGIN, 1, n)
    assert isinstance(stream, types.GeneratorType)
    first, last = store.event(ORIGIN, 1), store.head(ORIGIN)
    proof = ContinuityProof(ORIGIN, 1, n, first.forward, last.forward)
    tracemalloc.start()
    t0 = time.perf_counter()
    proof.verify_events(ORIGIN, stream)
    t_verify = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # A list of 100k ChainEvents would be tens of MB; streaming keeps about one chunk alive.
    assert peak < 4 * 1024 * 1024, peak
    assert t_ingest < 10 and t_verify < 10, (t_ingest, t_verify)
    assert store.event_count(ORIGIN) == n and last.sequence == n
    # a sub-range proof over the same store
    sub = list(store.events(ORIGIN, 500, 1500))
    assert [e.sequence for e in sub] == list(range(500, 1501))
    ContinuityProof.from_events(ORIGIN, sub).verify_events(ORIGIN, store.events(ORIGIN, 500, 1500))


def test_tampered_row_fails_proof_with_hash_mismatch(store, db):
    evs = chain(ORIGIN, 50)
    store.append_events(evs)
    proof = ContinuityProof.from_events(ORIGIN, evs)
    proof.verify_events(ORIGIN, store.events(ORIGIN, 1, 50))
    c = raw(db)
    c.execute("UPDATE chain_events SET payload = ? WHERE origin = ? AND seq = 20", (b"rewritten", ORIGIN))
    c.close()
    with pytest.raises(HashMismatch) as e:
        proof.verify_events(ORIGIN, store.events(ORIGIN, 1, 50))
    assert e.value.seq == 21  # event 21's parent no longer matches F(tampered event 20)
    assert e.value.expected == ChainEvent(evs[19].link, b"rewritten").forward


def test_row_disagreeing_with_its_key_is_corrupt(store, db):
    store.append_events(chain(ORIGIN, 3))
    c = raw(db)
    c.execute("UPDATE chain_events SET link = ? WHERE origin = ? AND seq = 2",
              (CausalLink(ORIGIN, 0, 9, 0).to_bytes(), ORIGIN))
    c.close()
    with pytest.raises(CorruptRow):
        list(store.events(ORIGIN))


def test_tail_log_validates_next_events_without_loading_the_chain(store):
    assert store.tail_log(ORIGIN).head_seq() == 0
    evs = chain(ORIGIN, 12)
    store.append_events(evs[:10])
    log = store.tail_log(ORIGIN)
    assert len(log) == 0 and log.head_seq() == 10
    log.append(evs[10])
    with pytest.raises(Exception):
        log.append(chain(ORIGIN, 12, tag=b"x")[11])


CHILD = r"""
import sys
from netedge.gateway.store import Store
from netedge.shared.link import ChainBuilder
from netedge.shared.log import ChainEvent
path, origin = sys.argv[1], int(sys.argv[2])
s = Store(path)
if s.daemon(origin) is None:
    s.add_daemon(origin, "counter", bytes(range(32)))
h = s.head(origin)
b = ChainBuilder(origin) if h is None else ChainBuilder.resume(h.link, h.forward)
i = 0
while True:
    # singles and batches of up to 5, so a kill can land inside a multi-row transaction
    evs = []
    for _ in range(1 + i % 5):
        p = b"payload %d" % (b.sequence + 1)
        evs.append(ChainEvent(b.append(p), p))
    s.append_events(evs)
    s.log_input(origin, "client", evs[-1].sequence, b"in")  # a second kind of write
    print(evs[-1].sequence, flush=True)
    i += 1
"""


def test_kill_9_mid_append_reopens_consistent(db):
    acked = 0
    for round_ in range(3):
        p = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(ORIGIN)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        target = acked + 150 + 37 * round_
        for line in p.stdout:
            if int(line) >= target:
                break
        os.kill(p.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=10)
        assert p.returncode == -signal.SIGKILL, err
        acked = max([acked] + [int(x) for x in out.split()] + [target])
        with Store(db) as s:
            assert s.integrity_check() == "ok"
            evs = list(s.events(ORIGIN))
            # every acknowledged commit is there, and what is there is a contiguous prefix
            assert len(evs) >= acked
            assert [e.sequence for e in evs] == list(range(1, len(evs) + 1))
            log = EntityLog(ORIGIN)
            for e in evs:
                log.append(e)
            st = S.assess_log(log)
            assert st.kind == S.CONTINUOUS and st.head_seq == len(evs)
            acked = len(evs)


# -- inputs ----------------------------------------------------------------------------------

def test_inputs_idempotent_conflicting_and_in_arrival_order(store):
    order = [("b", 1), ("a", 1), ("b", 2), ("a", 3), ("a", 2)]
    ids = [store.log_input(ORIGIN, s, c, b"%s%d" % (s.encode(), c)) for s, c in order]
    assert all(ids) and ids == sorted(ids)
    assert store.log_input(ORIGIN, "a", 3, b"a3") is None  # redelivery: no-op
    with pytest.raises(ConflictingInput):
        store.log_input(ORIGIN, "a", 3, b"different")
    got = list(store.inputs_after(ORIGIN))
    assert [(i.sender, i.counter) for i in got] == order
    assert [(i.sender, i.counter) for i in store.inputs_after(ORIGIN, ids[2])] == order[3:]
    assert store.prune_inputs(ORIGIN, ids[1]) == 2
    assert [(i.sender, i.counter) for i in store.inputs_after(ORIGIN)] == order[2:]


def test_inputs_stream_past_one_chunk_in_order(store):
    n = CHUNK * 2 + 7
    with store.transaction():
        for k in range(n):
            store.log_input(ORIGIN, "s%d" % (k % 3), k, b"")
    stream = store.inputs_after(ORIGIN)
    assert isinstance(stream, types.GeneratorType)
    assert [i.counter for i in stream] == list(range(n))


# -- snapshots, records, orchestration, nodes, daemons ----------------------------------------

def test_snapshots_keep_latest_n_per_origin_and_anchor(db):
    with Store(db, snapshot_keep=3) as s:
        s.add_daemon(1, "k", pk_of(1))
        s.add_daemon(2, "k", pk_of(2))
        evs = chain(1, 10)
        s.append_events(evs)
        for seq in (2, 4, 6, 8, 10):
            s.put_snapshot(1, seq, b"state@%d" % seq, evs[seq - 1].link, evs[seq - 1].forward)
        s.put_snapshot(2, 1, b"other")
        assert [x.seq for x in s.snapshots(1)] == [10, 8, 6]
        latest = s.latest_snapshot(1)
        assert (latest.seq, latest.data) == (10, b"state@10")
        assert s.latest_snapshot(2).anchor() is None and s.latest_snapshot(3) is None
        # the anchor lets a log pruned at the snapshot still assess Continuous
        more = chain(1, 5, start=ChainBuilder.resume(evs[-1].link, evs[-1].forward))
        st = S.assess_continuity(more, 1, latest.anchor())
        assert st.kind == S.CONTINUOUS and st.head_seq == 15
        s.put_snapshot(1, 12, b"x", keep=1)
        assert [x.seq for x in s.snapshots(1)] == [12]


def test_records_are_appended_and_filtered(store):
    a = store.add_record("discontinuity", ORIGIN, b"\x01" * 87, b"\x02" * 64, b"\x03" * 32)
    b = store.add_record("fork", 5, b"fork body", b"s" * 64, b"k" * 32, created=12.5)
    assert b > a
    r = store.record(b)
    assert (r.kind, r.origin, r.body, r.created) == ("fork", 5, b"fork body", 12.5)
    assert [x.id for x in store.records()] == [a, b]
    assert [x.id for x in store.records(origin=ORIGIN)] == [a]
    assert [x.id for x in store.records(kind="fork")] == [b]
    with pytest.raises(StoreError):
        store.add_record("gossip", 1, b"", b"", b"")


def test_control_state_persists_as_typed_records(db):
    boot = CS.NodeBoot(id=7)
    dep = CS.DeployState(origin=5, kind="counter", node="n1", epoch=1, step="push_keys", client="cli-1", rid=3,
                         started=10.5)
    with Store(db) as s:
        s.save_state("n1", boot)
        s.save_state(5, dep)
        s.save_state(4, CS.DeployState(**dict(dep.to_obj(), origin=4)))
        dep.step = "activate"
        s.save_state(5, dep)
    with Store(db) as s:
        assert s.load_state(CS.NodeBoot, "n1") == boot and s.load_state(CS.NodeBoot, "n2") is None
        assert s.load_state(CS.DeployState, 5).step == "activate"
        assert [k for k, _ in s.states(CS.DeployState)] == [4, 5]  # keys come back typed, in order
        assert s.load_state(CS.MigrationState, 5) is None         # one slot per kind: no prefix to collide
        assert s.drop_state(CS.DeployState, 5) is True and s.drop_state(CS.DeployState, 5) is False
        assert s.load_state(CS.DeployState, 5) is None


def test_control_state_refuses_a_record_of_the_wrong_shape(db):
    with Store(db) as s:
        with pytest.raises(CorruptRow):  # a bool is not an int (JSON would keep it, the type refuses it)
            s.save_state("n1", CS.NodeBoot(id=True))
        with pytest.raises(ValueError):
            s.save_state(-1, CS.RecoveryState(node="n1", m=1))  # an origin key is a u32
        with pytest.raises(KeyError):
            s.save_state(1, {"id": 1})  # only the typed kinds are stored
        assert s.states(CS.NodeBoot) == []
        s.execute("INSERT INTO control_state (kind, key, state, updated) VALUES ('boot', 'n1', '{\"id\": \"x\"}', 0)")
        s.execute("INSERT INTO control_state (kind, key, state, updated) VALUES ('boot', 'n2', '{\"id\": 1, \"x\": 2}', 0)")
        s.execute("INSERT INTO control_state (kind, key, state, updated) VALUES ('boot', 'n3', 'not json', 0)")
        for node in ("n1", "n2", "n3"):
            with pytest.raises(CorruptRow):
                s.load_state(CS.NodeBoot, node)


V1_DB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "gateway_v1.db")


def test_a_database_made_by_schema_1_code_keeps_working(tmp_path):
    """tests/fixtures/gateway_v1.db was written by the code before the typed kinds (schema 1:
    one `orchestration` table, "<kind>:<key>" keys): the simulator's gateway mid-run, with a
    row of every kind it persisted (groups, migrations, forks in several steps, deploys, boot
    ids, record dedup keys and branch tips, recoveries).  Opening it migrates the rows into
    their typed slots, and every one of them loads."""
    path = str(tmp_path / "old.db")
    with open(V1_DB, "rb") as f, open(path, "wb") as g:
        g.write(f.read())
    c = sqlite3.connect(path)
    old = dict(c.execute("SELECT key, state FROM orchestration"))
    c.close()
    with Store(path) as s:
        assert s.schema_version == SCHEMA_VERSION == 2
        got = {}
        for kind in CS.KINDS:
            for key, rec in s.states(kind.record):
                assert isinstance(rec, kind.record)
                name = ("record:%08x:tips" % key) if kind.name == "record_tips" else "%s:%s" % (
                    kind.name, kind.key.text(key))
                got[name] = rec
        assert sorted(got) == sorted(old)  # every row moved, under its kind, none lost
        for name, rec in got.items():     # ... with the same content (fields it lacked: their defaults)
            was, now = json.loads(old[name]), rec.to_obj()
            assert {k: now[k] for k in was} == was, name
        # (every kind schema 1 had; `outage`, the last store outage, came after it)
        assert {k.name for k in CS.KINDS} - {"outage"} == {
            n.split(":")[0] if not n.endswith(":tips") else "record_tips" for n in got}
        g = next(r for r in got.values() if isinstance(r, CS.GroupState))
        assert all(isinstance(m, CS.Member) for m in g.members.values())
        assert s.query("SELECT name FROM sqlite_master WHERE name = 'orchestration'") == []
        # the control plane resumes from it
        from netedge.gateway.control.status import daemon_status_body
        for d in s.daemons():
            daemon_status_body(s, d.origin)


def test_nodes_and_daemons(store):
    store.upsert_node("n1", "online", {"board": "esp32", "heap": 100000}, last_seen=1.0)
    store.upsert_node("n1", "suspect")  # info and last_seen kept
    n = store.node("n1")
    assert (n.status, n.info["board"], n.last_seen) == ("suspect", "esp32", 1.0)
    with pytest.raises(StoreError):
        store.upsert_node("n2", "sleepy")
    with pytest.raises(StoreError, match="unknown host"):
        store.add_daemon(9, "k", pk_of(9), host_node="ghost")
    with pytest.raises(StoreError):
        store.add_daemon(ORIGIN, "k", pk_of(1234))  # origin taken
    store.update_daemon(ORIGIN, host_node="n1", status="active",
                        continuity=S.continuous(1, 2, 3).to_obj())
    assert store.bump_epoch(ORIGIN) == 1 and store.bump_epoch(ORIGIN) == 2
    d = store.daemon(ORIGIN)
    assert (d.host_node, d.status, d.epoch) == ("n1", "active", 2)
    assert S.ContinuityStatus.from_obj(d.continuity) == S.continuous(1, 2, 3)
    assert [x.origin for x in store.daemons(host_node="n1")] == [ORIGIN]
    assert store.nodes(status="suspect")[0].node_id == "n1"
    with pytest.raises(UnknownDaemon):
        store.bump_epoch(42)


def test_transaction_rollback_and_savepoints(store):
    evs = chain(ORIGIN, 4)
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.append_events(evs[:2])
            raise RuntimeError("crash in the middle")
    assert store.event_count(ORIGIN) == 0
    with store.transaction():
        store.append_event(evs[0])
        with pytest.raises(ConflictingEvent):
            with store.transaction():
                store.append_event(evs[1])
                store.append_event(ChainEvent(evs[0].link, b"bad"))
        store.save_state("n1", CS.NodeBoot(id=1))
    assert store.event_count(ORIGIN) == 1 and store.load_state(CS.NodeBoot, "n1") == CS.NodeBoot(id=1)


def test_two_threads_share_one_store(store):
    store.add_daemon(2, "k", pk_of(2))
    errors = []

    def writer(origin, n):
        try:
            b = ChainBuilder(origin)
            for ev in chain(origin, n, start=b):
                store.append_event(ev)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def reader():
        try:
            for _ in range(50):
                list(store.events(ORIGIN))
                store.head(2)
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(ORIGIN, 300)),
               threading.Thread(target=writer, args=(2, 300)),
               threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.event_count(ORIGIN) == store.event_count(2) == 300


def test_u64_proof_bounds_give_the_typed_proof_error(store):
    from netedge.shared.proof import MissingEvent
    store.append_events(chain(ORIGIN, 3))
    proof = ContinuityProof(ORIGIN, 2 ** 64 - 3, 2 ** 64 - 1, 0, 0)
    with pytest.raises(MissingEvent):
        proof.verify_events(ORIGIN, store.events(ORIGIN, proof.from_seq, proof.to_seq))


def test_not_a_database_is_a_clear_error(tmp_path):
    p = tmp_path / "junk.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        Store(p)
