"""Invariant 5 on the gateway: bad input is survivable.

Any malformed frame on any topic the gateway handles gets a clear error (the `malformed` counter,
a `bad frame` log line, an error reply to a CLI request), never an exception out of
`GatewayCore.on_message`, and never a state change: every table of the store, the retained
status queue (`dirty`), the heartbeat deadlines and the publish output are compared before and
after.  Then the same for the operator CLI (`netedge proof`) and, once, end to end against a real
`netedge gateway` process and Mosquitto.
"""
import os
import sqlite3
import subprocess
import tempfile
import time

import nacl.signing
import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netedge.gateway.control.core import GatewayCore
from netedge.gateway.service import core_sources
from netedge.gateway.keystore import Keystore
from netedge.gateway.store import STORE_OUTAGE_KEY, Store
from netedge.gateway.control.state import StoreOutage
from netedge.shared import cbor
from netedge.shared import frame as FR
from netedge.shared import topics as T
from netedge.shared.identity import origin_hash
from netedge.shared.link import CausalLink, ChainBuilder
from netedge.shared.log import ChainEvent
from netedge.shared.proof import ContinuityProof

from gateways import NETEDGE, GatewayProc, write_config

NODE, OTHER = "n1", "n2"
EPOCH = 2
SEED = bytes(range(32))
OTHER_ORIGIN = 0x0BADC0DE


# -- unit level: GatewayCore over a real Store + Keystore ---------------------------------------

class Rig:
    """A GatewayCore over a real Store + Keystore: nodes n1 and n2 online, daemon `origin` hosted
    by n1 at epoch 2 with events 1..3 already ingested through the core."""

    def __init__(self, d):
        self.store = Store(os.path.join(d, "netedge.db"), synchronous="NORMAL")
        self.keystore = Keystore(self.store, os.path.join(d, "kek"))
        self.core = GatewayCore(self.store, self.keystore, "gw1", **core_sources())
        self.now = 100.0
        self.counters = {}
        for n in (NODE, OTHER):
            self.accept(T.node(n, "hb"), self.frame(FR.HEARTBEAT, {"board": "unix", "heap": 1000,
                                                                   "kinds": ["counter"], "daemons": []}, n))
        info = self.keystore.import_keypair(SEED, "counter")
        self.origin = info.origin
        self.store.add_daemon(self.origin, "counter", info.public_key, host_node=NODE, epoch=EPOCH,
                              status="active")
        self.chain = ChainBuilder(self.origin)
        self.events = []
        for i in range(3):
            ev = self.next_event(b"event %d" % i)
            self.accept(T.daemon(self.origin, "chain"), self.chain_frame(ev))
            self.commit(ev)
        assert self.core.counters["events"] == 3 and self.store.event_count(self.origin) == 3
        self.core.tick(self.now)  # publish (and clear) the pending retained status

    def close(self):
        self.store.close()

    # frames

    def frame(self, ftype, body, sender=NODE):
        self.counters[sender] = self.counters.get(sender, 0) + 1
        return FR.encode(ftype, sender, self.counters[sender], body)

    def next_event(self, payload):
        """The event that would follow the current head (the builder is not advanced)."""
        return ChainEvent(CausalLink(self.origin, 0, self.chain.sequence + 1, self.chain.next_parent), payload)

    def commit(self, ev):
        assert self.chain.append(ev.payload) == ev.link
        self.events.append(ev)

    def chain_body(self, ev, epoch=EPOCH, o=None):
        return {"o": self.origin if o is None else o, "e": epoch, "l": ev.link.to_bytes(), "p": ev.payload}

    def chain_frame(self, ev, epoch=EPOCH, sender=NODE, o=None):
        return self.frame(FR.CHAIN_EVENT, self.chain_body(ev, epoch, o), sender)

    # observation

    def dump(self):
        """Every row of every table (including sqlite_sequence)."""
        tables = [r[0] for r in self.store.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(self.store.query("SELECT * FROM %s" % t), key=repr) for t in tables}

    def state(self):
        c = self.core
        return (self.dump(), set(c.dirty), dict(c.last_seen), list(c.recent_errors), dict(c.pending))

    def check_tails(self):
        """The ingestion cache never runs ahead of the store: each tail's head is the stored head."""
        for o, t in self.core.tails.items():
            h = self.store.head(o)
            assert (t.head_seq(), t.head_forward()) == ((h.sequence, h.forward) if h else (0, t.base_forward))

    def send(self, topic, payload):
        return self.core.on_message(topic, payload, self.now)

    def accept(self, topic, payload):
        before = dict(self.core.counters)
        acts = self.send(topic, payload)
        assert self.core.counters["malformed"] == before["malformed"], "valid frame refused on %s" % topic
        return acts

    def rejected(self, topic, payload, counter="malformed", replies=False):
        """Send; assert exactly `counter` grew by one, nothing else changed, nothing was published
        (but an error reply when `replies`).  Returns the error replies' bodies."""
        before_state, before_counters = self.state(), dict(self.core.counters)
        acts = self.send(topic, payload)  # must not raise
        want = dict(before_counters)
        if counter:
            want[counter] += 1
        assert self.core.counters == want, (topic, payload[:80], self.core.counters, want)
        assert self.state() == before_state, "state changed by %r on %s" % (payload[:80], topic)
        self.check_tails()
        assert acts.push_keys == []
        bodies = []
        for t, data, qos, retain in acts.publish:
            assert replies and t.startswith("ne/v1/gw/gw1/rep/") and not retain, (t, data)
            body = FR.decode(data).body()
            assert body["ok"] is False and isinstance(body["error"], str) and body["error"]
            bodies.append(body)
        if replies:
            assert len(bodies) == 1, "a refused request gets exactly one error reply"
        assert self.core.tick(self.now).publish == []  # nothing queued for the retained status either
        return bodies


@pytest.fixture
def rig(tmp_path):
    r = Rig(str(tmp_path))
    yield r
    r.close()


def rid_frame(rig, body):
    return rig.frame(FR.CONTROL, body, "cli-1")


def envelope(ftype, sender, counter, body_bytes):
    """A frame envelope around arbitrary body bytes (bypassing encode()'s checks)."""
    return b"\x85\x01" + cbor.dumps([ftype, sender, counter])[1:] + cbor.head(2, len(body_bytes)) + body_bytes


def garbage(ftype, valid):
    """Bytes that are not a valid frame of any kind, plus valid envelopes of the wrong shape."""
    g = [b"\x00", b"\xff" * 40, b"garbage", b"\x85", b"\x85\x01" + b"\x01" * 9000,  # oversize
         b"\xa0", cbor.dumps([1, 2, 3]), cbor.dumps({"state": "online"}),
         cbor.dumps([1, ftype, NODE, 1, b"\xa0", b"auth"]),   # 6 elements: auth not supported in v1
         cbor.dumps([2, ftype, NODE, 1, b"\xa0"]),             # version 2
         cbor.dumps([1, 99, NODE, 1, b"\xa0"]),                # unknown frame type
         cbor.dumps([1, ftype, "", 1, b"\xa0"]),               # empty sender
         cbor.dumps([1, ftype, "x" * 33, 1, b"\xa0"]),         # sender too long
         cbor.dumps([1, ftype, NODE, -1, b"\xa0"]),            # negative counter
         cbor.dumps([1, ftype, NODE, 1 << 32, b"\xa0"]),       # counter beyond u32
         b"\x85\x01" + bytes([ftype]) + b"\x62n1\x18\x01\x41\xa0",  # non-canonical counter
         envelope(ftype, NODE, 7, b"\xff\xff"),                # body bytes not CBOR
         envelope(ftype, NODE, 7, b"\xa0\x00"),                # trailing bytes after the body
         envelope(ftype, NODE, 7, b"\xbf\xff"),                # indefinite-length map
         FR.encode(ftype, NODE, 8, [1, 2]), FR.encode(ftype, NODE, 9, 5), FR.encode(ftype, NODE, 10, None),
         FR.encode(ftype, NODE, 11, b"\xa0"), FR.encode(ftype, NODE, 12, "state")]
    g += [valid[:k] for k in sorted({1, 2, 3, 5, len(valid) // 2, len(valid) - 1})]  # truncated
    wrong = FR.STATUS if ftype != FR.STATUS else FR.HEARTBEAT
    g.append(FR.encode(wrong, NODE, 13, {"state": "online"}))  # right envelope, wrong type for the topic
    return g


def valid_hb(**kw):
    body = {"board": "unix", "heap": 1000, "kinds": ["counter"], "daemons": []}
    body.update(kw)
    return body


def bad_bodies(rig):
    """(topic, frame) pairs: CBOR-valid, well-formed envelopes whose body is wrong for the topic."""
    o, ev = rig.origin, rig.next_event(b"next")
    good = rig.chain_body(ev)
    chain = T.daemon(o, "chain")
    link_other = CausalLink(OTHER_ORIGIN, 0, ev.link.sequence, ev.link.parent_hash).to_bytes()
    out = []

    def drop(k):
        return {key: v for key, v in good.items() if key != k}

    def put(**kw):
        b = dict(good)
        b.update(kw)
        return b
    for body in [drop("o"), drop("e"), drop("l"), drop("p"), {},
                 put(o=str(o)), put(o=-1), put(o=None), put(o=True), put(o=OTHER_ORIGIN),
                 put(e="2"), put(e=-1), put(e=-(1 << 64)), put(e=True), put(e=2.0), put(e=None),
                 put(e=(1 << 64) - 1), put(e=1 << 63),
                 put(l=ev.link.to_bytes()[:23]), put(l=ev.link.to_bytes() + b"\x00"), put(l=b""),
                 put(l=ev.link.to_bytes().hex()), put(l=None), put(l=link_other),
                 put(p="next"), put(p=None), put(p=5), put(p=[b"next"])]:
        out.append((chain, FR.encode(FR.CHAIN_EVENT, NODE, 500 + len(out), body)))
    # topic / body / link disagree about the origin
    out.append((T.daemon(OTHER_ORIGIN, "chain"), FR.encode(FR.CHAIN_EVENT, NODE, 600, good)))
    out.append((T.daemon(OTHER_ORIGIN, "chain"),
                FR.encode(FR.CHAIN_EVENT, NODE, 601, put(o=OTHER_ORIGIN))))  # link still says `o`
    # non-canonical spellings of the daemon's topic
    assert "%08X" % o != "%08x" % o
    for spelled in ("%08X" % o, "0x%06x" % (o & 0xFFFFFF), " %07x" % (o & 0xFFFFFFF), "+%07x" % (o & 0xFFFFFFF),
                    "%04x_%04x" % (o >> 16, o & 0xFFFF), "%07x" % (o & 0xFFFFFFF), "%09x" % o, "zzzzzzzz", ""):
        out.append(("ne/v1/d/%s/chain" % spelled, FR.encode(FR.CHAIN_EVENT, NODE, 700 + len(out), good)))
        out.append(("ne/v1/d/%s/in" % spelled, FR.encode(FR.INPUT, "client", 700 + len(out), {"p": b"1"})))
    inbox = T.daemon(o, "in")
    for body in [{}, {"p": "1"}, {"p": 1}, {"p": None}, {"p": [b"1"]}, {"q": b"1"}]:
        out.append((inbox, FR.encode(FR.INPUT, "client", 800 + len(out), body)))
    status = T.node(NODE, "status")
    for body in [{}, {"state": 5}, {"state": "banana"}, {"state": None}, {"state": b"online"}, {"state": ["online"]}]:
        out.append((status, FR.encode(FR.STATUS, NODE, 900 + len(out), body)))
    out.append((status, FR.encode(FR.STATUS, OTHER, 900 + len(out), {"state": "offline"})))  # sender != topic node
    hb = T.node(NODE, "hb")
    for body in [{}, valid_hb(kinds="counter"), valid_hb(kinds=[1]), valid_hb(kinds=None), valid_hb(kinds={"a": 1}),
                 valid_hb(daemons=5), valid_hb(daemons=[5]), valid_hb(daemons={"origin": 1}),
                 valid_hb(daemons=[{"origin": [1], "epoch": 1}]), valid_hb(daemons=[{"origin": 1, "epoch": {}}]),
                 valid_hb(board=b"\x00\x01"), valid_hb(errors={b"k": 1}), valid_hb(mqtt=[b"x"])]:
        out.append((hb, FR.encode(FR.HEARTBEAT, NODE, 1000 + len(out), body)))
    out.append((hb, FR.encode(FR.HEARTBEAT, OTHER, 1000 + len(out), valid_hb())))  # sender != topic node
    out.append(("ne/v1/node//hb", FR.encode(FR.HEARTBEAT, NODE, 1000 + len(out), valid_hb())))  # empty node id
    err = T.node(NODE, "err")
    for body in [{}, {"code": 5}, {"code": None}, {"code": b"malformed"}]:
        out.append((err, FR.encode(FR.ERROR, NODE, 1100 + len(out), body)))
    out.append((err, FR.encode(FR.ERROR, OTHER, 1100 + len(out), {"code": "malformed"})))  # sender != topic node
    return out


def bad_requests(rig):
    """Malformed operator requests: refused with an error reply, counted, nothing written."""
    o = rig.origin
    return [{}, {"id": 1}, {"cmd": 5, "id": 1}, {"cmd": None}, {"cmd": "nuke", "id": 2}, {"cmd": b"deploy", "id": 3},
            {"cmd": "deploy", "id": 4}, {"cmd": "deploy", "kind": "counter", "id": 5},
            {"cmd": "deploy", "node": NODE, "id": 6}, {"cmd": "deploy", "kind": 5, "node": NODE, "id": 7},
            {"cmd": "deploy", "kind": "counter", "node": [NODE], "id": 8},
            {"cmd": "deploy", "kind": "k" * 100, "node": NODE, "id": 9},
            {"cmd": "deploy", "kind": "counter", "node": NODE, "id": "r" * 200},
            {"cmd": "deploy", "kind": "counter", "node": NODE, "id": [1]},
            {"cmd": "stop", "id": 10}, {"cmd": "stop", "origin": "%08x" % o, "id": 11},
            {"cmd": "stop", "origin": True, "id": 12}, {"cmd": "stop", "origin": -1, "id": 13},
            {"cmd": "stop", "origin": (1 << 64) - 1, "id": 14}, {"cmd": "stop", "origin": 1 << 32, "id": 15},
            {"cmd": "stop", "origin": float(o), "id": 16}, {"cmd": "x" * 8000, "id": 17},
            {"cmd": "deploy", "kind": ["k" * 4000, "k" * 4000], "node": NODE, "id": 18}]


def test_garbage_bytes_on_every_topic(rig):
    o = rig.origin
    ev = rig.next_event(b"next")
    valid = {
        T.node(NODE, "status"): (FR.STATUS, rig.frame(FR.STATUS, {"state": "online"})),
        T.node(NODE, "hb"): (FR.HEARTBEAT, rig.frame(FR.HEARTBEAT, valid_hb())),
        T.node(NODE, "err"): (FR.ERROR, rig.frame(FR.ERROR, {"code": "malformed", "at": "x", "detail": "y"})),
        T.daemon(o, "in"): (FR.INPUT, rig.frame(FR.INPUT, {"p": b"1"}, "client")),
        T.daemon(o, "chain"): (FR.CHAIN_EVENT, rig.chain_frame(ev)),
        T.gateway("gw1", "req", "cli-1"): (FR.CONTROL, rid_frame(rig, {"cmd": "stop", "origin": o, "id": 1})),
    }
    n = 0
    for topic, (ftype, good) in valid.items():
        for g in garbage(ftype, good):
            rig.rejected(topic, g)
            n += 1
        if topic != T.node(NODE, "status"):  # there an empty payload is a cleared retained message
            rig.rejected(topic, b"")
            n += 1
    assert rig.core.counters["malformed"] == n
    rig.rejected(T.node(NODE, "status"), b"", counter=None)
    # and the same topics still work afterwards
    rig.accept(T.daemon(o, "chain"), rig.chain_frame(ev))
    assert rig.store.event_count(o) == 4


def test_wrong_bodies_on_every_topic(rig):
    cases = bad_bodies(rig)
    for topic, data in cases:
        rig.rejected(topic, data)
    assert rig.core.counters["malformed"] == len(cases)
    assert rig.core.recent_errors == []


def test_malformed_requests_get_an_error_reply(rig):
    req = T.gateway("gw1", "req", "cli-1")
    for body in bad_requests(rig):
        (reply,) = rig.rejected(req, rid_frame(rig, body), replies=True)
        rid = body.get("id")
        if isinstance(rid, (int, str)) and not isinstance(rid, bool) and len(str(rid)) <= 64:
            assert reply["id"] == rid
    # a request with no place to reply to: counted, no reply
    rig.rejected("ne/v1/gw/gw1/req/", rid_frame(rig, {"cmd": "stop", "origin": rig.origin, "id": 1}))


def test_refused_requests_write_nothing(rig):
    """Well-formed requests the gateway cannot honour: an error reply that says why, no state change."""
    req = T.gateway("gw1", "req", "cli-1")
    rig.store.upsert_node("n3", "suspect", info=valid_hb())
    for body, why in [({"cmd": "deploy", "kind": "counter", "node": "n9", "id": 1}, "unknown node"),
                      ({"cmd": "deploy", "kind": "thermostat", "node": NODE, "id": 2}, "cannot host"),
                      ({"cmd": "deploy", "kind": "counter", "node": "n3", "id": 3}, "suspect"),
                      ({"cmd": "stop", "origin": OTHER_ORIGIN, "id": 4}, "unknown daemon")]:
        (reply,) = rig.rejected(req, rid_frame(rig, body), counter=None, replies=True)
        assert why in reply["error"] and reply["id"] == body["id"]


UNKNOWN_TOPICS = ["", "ne", "ne/v1", "ne/v1/", "ne/v1/#", "foo/bar/baz/qux/quux", "ne/v2/node/n1/hb",
                  "ne/v1/node/n1", "ne/v1/node/n1/bogus", "ne/v1/node/n1/hb/extra", "ne/v1/node/n1/ctl",
                  "ne/v1/d/%08x", "ne/v1/d/%08x/status", "ne/v1/d/%08x/bogus", "ne/v1/d/%08x/chain/x",
                  "ne/v1/gw/gw1/status", "ne/v1/gw/gw1/rep/cli-1", "ne/v1/gw/gw2/req/cli-1", "ne/v1/gw/gw1/req/a/b",
                  "ne/v1/gw/gw1/bogus/x", "ne/v1/x/y/z"]


def test_unknown_topics_are_ignored(rig):
    """Topics the gateway does not handle (including its own publications, which its `ne/v1/#`
    subscription echoes back) change nothing and are not errors."""
    payloads = [b"", b"garbage", rig.frame(FR.HEARTBEAT, valid_hb()),
                rig.chain_frame(rig.next_event(b"x")), rid_frame(rig, {"cmd": "stop", "origin": rig.origin, "id": 1})]
    for t in UNKNOWN_TOPICS:
        for p in payloads:
            rig.rejected(t.replace("%08x", "%08x" % rig.origin), p, counter=None)


# -- semantic rejections ------------------------------------------------------------------------

def test_stale_epoch_and_foreign_host_are_fenced(rig):
    o, chain = rig.origin, T.daemon(rig.origin, "chain")
    ev = rig.next_event(b"late")
    rig.rejected(chain, rig.chain_frame(ev, epoch=EPOCH - 1), counter="stale_epoch")        # old epoch, the host
    rig.rejected(chain, rig.chain_frame(ev, epoch=0), counter="stale_epoch")
    rig.rejected(chain, rig.chain_frame(ev, sender=OTHER), counter="stale_epoch")           # not the host
    rig.rejected(chain, rig.chain_frame(ev, epoch=EPOCH - 1, sender=OTHER), counter="stale_epoch")
    # an epoch the gateway never issued: no activation bumped to it, so it is not merged either
    rig.rejected(chain, rig.chain_frame(ev, epoch=EPOCH + 1, sender=OTHER), counter="stale_epoch")
    rig.rejected(chain, rig.chain_frame(ev, epoch=EPOCH + 1), counter="stale_epoch")
    rig.rejected(chain, rig.chain_frame(ev, epoch=(1 << 63) - 1), counter="stale_epoch")
    assert rig.store.event_count(o) == 3
    rig.accept(chain, rig.chain_frame(ev))  # the real host at the current epoch still gets through
    assert rig.store.event_count(o) == 4 and rig.core.counters["stale_epoch"] == 7


def test_unknown_daemon_writes_nothing(rig):
    b = ChainBuilder(OTHER_ORIGIN)
    link = b.append(b"x")
    body = {"o": OTHER_ORIGIN, "e": 1, "l": link.to_bytes(), "p": b"x"}
    rig.rejected(T.daemon(OTHER_ORIGIN, "chain"), rig.frame(FR.CHAIN_EVENT, body), counter="unknown_daemon")
    rig.rejected(T.daemon(OTHER_ORIGIN, "in"), rig.frame(FR.INPUT, {"p": b"1"}, "client"), counter="unknown_daemon")


def refused_with_record(rig, topic, payload, counter):
    """A refused chain event that is evidence of a discontinuity: counted, not stored; the only
    writes are the signed record (issue 6, tests/test_records.py), its dedup key and the daemon's
    status.  Returns how many records it issued (0 for a repeat of a recorded fault)."""
    events = list(rig.store.query("SELECT * FROM chain_events ORDER BY origin, seq"))
    n = len(rig.store.records())
    before = dict(rig.core.counters)
    acts = rig.send(topic, payload)
    issued = len(rig.store.records()) - n
    want = dict(before, **{counter: before[counter] + 1, "records": before["records"] + issued})
    assert rig.core.counters == want
    assert list(rig.store.query("SELECT * FROM chain_events ORDER BY origin, seq")) == events
    assert [t for t, *_ in acts.publish] == ["ne/v1/d/%08x/continuity" % rig.origin] * issued
    rig.check_tails()
    return issued


def test_chain_break_is_counted_not_stored(rig):
    o, chain = rig.origin, T.daemon(rig.origin, "chain")
    ev = rig.next_event(b"next")
    gap = ChainEvent(CausalLink(o, 0, ev.link.sequence + 1, ev.link.parent_hash), b"gap")
    bad_parent = ChainEvent(CausalLink(o, 0, ev.link.sequence, ev.link.parent_hash ^ 1), b"next")
    # a gap is first asked for: the host resends what the bus lost (PROTOCOL §11), nothing stored
    events = rig.store.event_count(o)
    assert not rig.send(chain, rig.chain_frame(gap)).publish  # (asked a moment later: it may be overtaken)
    acts = rig.core.tick(rig.now + 0.3)
    assert rig.core.counters["gap_requests"] == 1 and rig.core.counters["chain_errors"] == 0
    [(topic, data, qos, _)] = [p for p in acts.publish if p[0].endswith("/mark")]
    assert (topic, qos) == ("ne/v1/node/%s/mark" % NODE, 0)
    assert FR.decode(data).body() == {"cmd": "stored", "origin": o, "epoch": EPOCH, "seq": 3, "resend": True}
    assert rig.store.event_count(o) == events and not rig.store.records()
    # a host that no longer has them says so: only then is it a ChainBreak record; one per break
    # point: the second bad link fails against the same head
    err = rig.frame(FR.ERROR, {"code": "gap_lost", "at": "d%08x" % o, "detail": "seq 4..4"})
    acts = rig.send("ne/v1/node/%s/err" % NODE, err)
    assert len(rig.store.records()) == 1 and rig.core.counters["chain_errors"] == 1
    assert [t for t, *_ in acts.publish] == ["ne/v1/d/%08x/continuity" % o]
    assert refused_with_record(rig, chain, rig.chain_frame(bad_parent), "chain_errors") == 0
    assert rig.store.event_count(o) == 3
    rig.accept(chain, rig.chain_frame(ev))
    rig.commit(ev)
    assert rig.store.event_count(o) == 4 and rig.store.head(o) == ev


def test_duplicate_is_idempotent_and_conflict_refused(rig):
    o, chain = rig.origin, T.daemon(rig.origin, "chain")
    for ev in rig.events:  # QoS 1 redeliveries of stored events (the head included)
        rig.rejected(chain, rig.chain_frame(ev), counter="duplicates")
    assert rig.core.counters["duplicates"] == 3
    for ev in rig.events:  # a different event at an existing seq: a second history (one record each)
        other = ChainEvent(ev.link, ev.payload + b"!")
        assert refused_with_record(rig, chain, rig.chain_frame(other), "conflicts") == 1
        horizon = ChainEvent(CausalLink(o, 7, ev.link.sequence, ev.link.parent_hash), ev.payload)
        assert refused_with_record(rig, chain, rig.chain_frame(horizon), "conflicts") == 1
    assert [e == s for e, s in zip(rig.events, rig.store.events(o, 1))] == [True] * 3
    # the same after a gateway restart (the tail is rebuilt from the store)
    rig.core = GatewayCore(rig.store, rig.keystore, "gw1", **core_sources())
    rig.rejected(chain, rig.chain_frame(rig.events[-1]), counter="duplicates")
    assert refused_with_record(rig, chain, rig.chain_frame(ChainEvent(rig.events[-1].link, b"?")), "conflicts") == 1
    ev = rig.next_event(b"after restart")
    rig.accept(chain, rig.chain_frame(ev))
    assert rig.store.event_count(o) == 4


def test_input_redelivery_and_conflict(rig, monkeypatch):
    o, inbox = rig.origin, T.daemon(rig.origin, "in")
    data = FR.encode(FR.INPUT, "client", 42, {"p": b"7"})
    rig.accept(inbox, data)
    assert rig.core.counters["inputs"] == 1
    # (sqlite_sequence left out here: see test_input_redelivery_burns_no_arrival_id)
    dump = rig.dump
    monkeypatch.setattr(rig, "dump", lambda: {t: v for t, v in dump().items() if t != "sqlite_sequence"})
    rig.rejected(inbox, data, counter=None)                                            # redelivery: a no-op
    rig.rejected(inbox, FR.encode(FR.INPUT, "client", 42, {"p": b"8"}), counter="conflicts")  # same id, other payload
    assert [i.payload for i in rig.store.inputs_after(o)] == [b"7"]


def test_input_redelivery_burns_no_arrival_id(rig):
    inbox = T.daemon(rig.origin, "in")
    data = FR.encode(FR.INPUT, "client", 42, {"p": b"7"})
    rig.accept(inbox, data)
    rig.rejected(inbox, data, counter=None)


# -- hypothesis: random bytes, random wrong bodies ----------------------------------------------

HANDLED = ["node/%s/status" % NODE, "node/%s/hb" % NODE, "node/%s/err" % NODE, "d/{o}/in", "d/{o}/chain",
           "gw/gw1/req/cli-1"]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 64), (1 << 64) - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@pytest.fixture(scope="module")
def fuzz_rig():
    with tempfile.TemporaryDirectory() as d:
        r = Rig(d)
        yield r
        r.close()


@FUZZ
@given(leaf=st.sampled_from(HANDLED), data=st.binary(max_size=300))
def test_fuzz_random_bytes(fuzz_rig, leaf, data):
    topic = "ne/v1/" + leaf.format(o="%08x" % fuzz_rig.origin)
    if data == b"" and leaf.endswith("status"):
        fuzz_rig.rejected(topic, data, counter=None)
    else:
        fuzz_rig.rejected(topic, data)


@FUZZ
@given(leaf=st.sampled_from(HANDLED), cut=st.integers(0, 10 ** 6), junk=st.binary(max_size=8))
def test_fuzz_truncated_or_extended_frames(fuzz_rig, leaf, cut, junk):
    r = fuzz_rig
    topic = "ne/v1/" + leaf.format(o="%08x" % r.origin)
    good = {"status": lambda: r.frame(FR.STATUS, {"state": "online"}),
            "hb": lambda: r.frame(FR.HEARTBEAT, valid_hb()),
            "err": lambda: r.frame(FR.ERROR, {"code": "malformed"}),
            "in": lambda: r.frame(FR.INPUT, {"p": b"1"}, "client"),
            "chain": lambda: r.chain_frame(r.next_event(b"n")),
            "cli-1": lambda: rid_frame(r, {"cmd": "stop", "origin": r.origin, "id": 1})}[leaf.rsplit("/", 1)[1]]()
    if junk:
        r.rejected(topic, good + junk)   # trailing bytes after a complete frame
    cut %= len(good)
    if cut or not leaf.endswith("status"):
        r.rejected(topic, good[:cut])


def _not(pred):
    return cbor_values.filter(lambda v: not pred(v))


def _is_int(v):
    return type(v) is int


@FUZZ
@given(data=st.data())
def test_fuzz_wrong_chain_bodies(fuzz_rig, data):
    r = fuzz_rig
    ev = r.next_event(data.draw(st.binary(max_size=40)))
    body = r.chain_body(ev)
    key = data.draw(st.sampled_from(["o", "e", "l", "p", "drop", "other_key_only"]))
    if key == "o":
        body["o"] = data.draw(_not(lambda v: _is_int(v) and v == r.origin))
    elif key == "e":
        body["e"] = data.draw(_not(lambda v: _is_int(v) and 0 <= v < 1 << 63) | st.integers(-(1 << 64), -1))
    elif key == "l":
        body["l"] = data.draw(_not(lambda v: isinstance(v, bytes) and len(v) == 24)
                              | st.binary(min_size=0, max_size=48).filter(lambda b: len(b) != 24))
    elif key == "p":
        body["p"] = data.draw(_not(lambda v: isinstance(v, bytes)))
    elif key == "drop":
        del body[data.draw(st.sampled_from(sorted(body)))]
    else:
        body = data.draw(st.dictionaries(st.text(max_size=3), cbor_values, max_size=3))
    r.rejected(T.daemon(r.origin, "chain"), r.frame(FR.CHAIN_EVENT, body))


@FUZZ
@given(data=st.data())
def test_fuzz_wrong_bodies_other_topics(fuzz_rig, data):
    r = fuzz_rig
    leaf = data.draw(st.sampled_from(["status", "hb", "err", "in", "req", "nonmap"]))
    if leaf == "status":
        topic, ftype = T.node(NODE, "status"), FR.STATUS
        body = {"state": data.draw(_not(lambda v: v in ("online", "offline")))}
    elif leaf == "hb":
        topic, ftype = T.node(NODE, "hb"), FR.HEARTBEAT
        body = valid_hb()
        if data.draw(st.booleans()):
            body["kinds"] = data.draw(_not(lambda v: isinstance(v, list) and all(isinstance(k, str) for k in v)))
        else:
            body["daemons"] = data.draw(_not(lambda v: isinstance(v, list) and all(
                isinstance(d, dict) and all(type(d.get(k, 0)) is int for k in ("origin", "epoch")) for d in v)))
    elif leaf == "err":
        topic, ftype = T.node(NODE, "err"), FR.ERROR
        body = {"code": data.draw(_not(lambda v: isinstance(v, str))), "detail": data.draw(cbor_values)}
    elif leaf == "in":
        topic, ftype = T.daemon(r.origin, "in"), FR.INPUT
        body = {"p": data.draw(_not(lambda v: isinstance(v, bytes)))}
    elif leaf == "req":
        topic, ftype = T.gateway("gw1", "req", "cli-1"), FR.CONTROL
        body = {"cmd": data.draw(_not(lambda v: v in ("deploy", "stop"))), "id": 1}
    else:
        topic, ftype = data.draw(st.sampled_from([
            (T.node(NODE, "status"), FR.STATUS), (T.node(NODE, "hb"), FR.HEARTBEAT), (T.node(NODE, "err"), FR.ERROR),
            (T.daemon(r.origin, "in"), FR.INPUT), (T.daemon(r.origin, "chain"), FR.CHAIN_EVENT),
            (T.gateway("gw1", "req", "cli-1"), FR.CONTROL)]))
        body = data.draw(_not(lambda v: isinstance(v, dict)))
    sender = "cli-1" if ftype == FR.CONTROL else "client" if ftype == FR.INPUT else NODE
    r.rejected(topic, r.frame(ftype, body, sender), replies=leaf == "req")  # a non-map body has no id to answer


class FakeClient:
    """paho's client as the service's message handler uses it."""

    def __init__(self):
        self.acked, self.published, self.disconnects = [], [], 0

    def ack(self, mid, qos):
        self.acked.append((mid, qos))

    def publish(self, topic, data, qos, retain):
        self.published.append(topic)

    def disconnect(self):
        self.disconnects += 1


def service_over_a_store(tmp_path):
    from netedge.gateway.config import GatewayConfig
    from netedge.gateway.service import GatewayService
    svc = GatewayService(GatewayConfig(base_dir=str(tmp_path)), pusher=object())
    svc.store = Store(str(tmp_path / "netedge.db"))
    svc.keystore = Keystore(svc.store, str(tmp_path / "kek"))
    svc.core = svc._new_core()
    svc.client = FakeClient()
    return svc


def message(mid, topic, payload):
    msg = paho.MQTTMessage(mid=mid, topic=topic)
    msg.payload, msg.qos = payload, 1
    return msg


def test_service_survives_a_core_bug(tmp_path, caplog):
    """The driver's last resort: an exception out of the core (a gateway bug) is logged with its
    traceback and counted; its writes are rolled back, the core is rebuilt from the store, the
    message is still acknowledged and the loop keeps running."""
    svc = service_over_a_store(tmp_path)
    try:
        real = svc.core

        def boom(topic, payload, now):
            svc.store.upsert_node("n7", "online")  # a write before the bug: rolled back with it
            raise RuntimeError("boom")
        real.on_message = boom
        svc._on_message(svc.client, None, message(7, b"ne/v1/node/n1/hb", b"x"))  # must not raise
        assert svc.core is not real and svc.store.node("n7") is None
        bad = message(8, b"ne/v1/node/\xff/hb", b"x")  # not UTF-8: msg.topic itself raises
        svc._on_message(svc.client, None, bad)
        assert svc.client.acked == [(7, 1), (8, 1)] and svc.client.disconnects == 0
        assert svc.core.counters["internal_errors"] == 1 and svc.core.counters["malformed"] == 1
        assert "internal error" in caplog.text and "RuntimeError: boom" in caplog.text
    finally:
        svc.pool.shutdown()
        svc.store.close()


class FailingWrites:
    """Between the Store and its SQLite connection: every write statement fails as a full disk does."""

    def __init__(self, db):
        self._db = db

    def execute(self, sql, params=()):
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "REPLACE")):
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, params)

    def __getattr__(self, name):
        return getattr(self._db, name)


def test_a_message_the_store_cannot_take_is_not_acknowledged(tmp_path, caplog):
    """The Ready rule: a message whose writes do not commit is neither acknowledged nor acted on
    (nothing published) and the core is rebuilt from the store; the same message is tried again
    with a backoff (no reconnection), the outage shown beside the database meanwhile, and once
    the store takes writes again it is stored, then acknowledged."""
    import threading
    svc = service_over_a_store(tmp_path)
    try:
        hb = FR.encode(FR.HEARTBEAT, "n1", 1, {"board": "unix", "heap": 1000, "kinds": ["counter"], "daemons": []})
        db, real = svc.store._db, svc.core
        svc.store._db = FailingWrites(db)
        seen = {}

        def clear():  # the outage, as `netedge status` sees it, then the store back
            seen["fault"] = os.path.exists(svc.store.path + ".fault")
            seen["acked"] = list(svc.client.acked)
            svc.store._db = db
        t = threading.Timer(0.4, clear)
        t.start()
        svc._on_message(svc.client, None, message(9, T.node("n1", "hb").encode(), hb))
        t.join()
        assert seen == {"fault": True, "acked": []}  # nothing acknowledged before it was stored
        assert svc.client.acked == [(9, 1)] and svc.client.disconnects == 0
        assert svc.store.node("n1").status == "online" and not os.path.exists(svc.store.path + ".fault")
        assert svc.core is not real and svc.core.counters["internal_errors"] == 0
        assert svc.core.counters["store_faults"] == 1 and svc.store.load_state(StoreOutage, STORE_OUTAGE_KEY).retries >= 2
        assert "store write failed" in caplog.text and "store writable again" in caplog.text
    finally:
        svc.pool.shutdown()
        svc.store.close()


# -- CLI: netedge proof --------------------------------------------------------------------------

def proof_cli(cfg, *args):
    return subprocess.run(NETEDGE + ["proof", *args, "--config", str(cfg)], capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def logged(tmp_path):
    """A gateway store holding one daemon with events 1..10, and a config pointing at it."""
    os.makedirs(tmp_path / "data")
    store = Store(str(tmp_path / "data" / "netedge.db"))
    pub = bytes(nacl.signing.SigningKey(SEED).verify_key)
    origin = origin_hash(pub)
    store.add_daemon(origin, "counter", pub, epoch=1, status="active")
    b = ChainBuilder(origin)
    events = [ChainEvent(b.append(b"payload %d" % i), b"payload %d" % i) for i in range(1, 11)]
    store.append_events(events, epoch=1)
    store.close()
    cfg = tmp_path / "netedge.toml"
    cfg.write_text('[gateway]\nid = "gw1"\ndata_dir = "data"\n')
    return cfg, origin, events


def tamper(cfg, sql, params):
    db = sqlite3.connect(str(cfg.parent / "data" / "netedge.db"))
    with db:
        assert db.execute(sql, params).rowcount == 1
    db.close()


def test_proof_verify_rejects_wrong_length_and_non_hex(logged):
    cfg, origin, events = logged
    proof = ContinuityProof.from_events(origin, events).to_bytes()
    r = proof_cli(cfg, "verify", proof.hex())
    assert r.returncode == 0 and r.stdout.startswith("VALID %08x 1..10" % origin), r
    for wrong, msg in [(proof[:35], "expected 36 bytes, got 35"), (proof + b"\x00", "expected 36 bytes, got 37"),
                       (b"", "usage")]:
        r = proof_cli(cfg, "verify", wrong.hex())
        assert r.returncode == 2, r
        assert msg in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert r.stdout == ""
    for text in ["zz" * 36, proof.hex()[:-1], "0x" + proof.hex(), proof.hex()[:-2] + "g0"]:
        r = proof_cli(cfg, "verify", text)
        assert r.returncode == 2 and "not hexadecimal" in r.stderr and "Traceback" not in r.stderr, r


def test_proof_over_tampered_log(logged):
    cfg, origin, events = logged
    good = ContinuityProof.from_events(origin, events).to_bytes().hex()
    inner = ContinuityProof.from_events(origin, events[1:4]).to_bytes().hex()  # 2..4, before the tampering
    r = proof_cli(cfg, "%08x" % origin)
    assert r.returncode == 0 and r.stdout.strip() == good, r
    tamper(cfg, "UPDATE chain_events SET payload = ? WHERE origin = ? AND seq = 5", (b"rewritten", origin))
    r = proof_cli(cfg, "verify", good)
    assert r.returncode == 1, r
    assert r.stdout.startswith("INVALID %08x 1..10: HashMismatch(seq=6" % origin), r.stdout
    assert proof_cli(cfg, "verify", inner).returncode == 0   # the range before the damage still verifies
    for args in (["%08x" % origin], ["%08x" % origin, "--from", "3", "--to", "8"]):
        r = proof_cli(cfg, *args)
        assert r.returncode == 2 and r.stdout == "", r
        assert "HashMismatch" in r.stderr and "refus" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = proof_cli(cfg, "%08x" % origin, "--from", "1", "--to", "4")
    assert r.returncode == 0 and r.stdout.strip() == ContinuityProof.from_events(origin, events[:4]).to_bytes().hex()


def test_proof_over_corrupt_row(logged):
    """A row whose link disagrees with its key (CorruptRow in the store): a clear error, no traceback."""
    cfg, origin, events = logged
    good = ContinuityProof.from_events(origin, events).to_bytes().hex()
    moved = CausalLink(origin, 0, 99, events[6].link.parent_hash).to_bytes()
    tamper(cfg, "UPDATE chain_events SET link = ? WHERE origin = ? AND seq = 7", (moved, origin))
    r = proof_cli(cfg, "verify", good)
    assert r.returncode == 1 and r.stdout.startswith("INVALID %08x 1..10" % origin), r
    assert "CorruptRow" in r.stdout and "Traceback" not in r.stderr, r
    r = proof_cli(cfg, "%08x" % origin)
    assert r.returncode == 2 and "CorruptRow" in r.stderr and "Traceback" not in r.stderr, r


# -- integration: a real gateway process and Mosquitto --------------------------------------------

def test_gateway_process_survives_garbage(tmp_path, mosquitto):
    cfg = write_config(tmp_path / "netedge.toml", mosquitto, [])
    gw = GatewayProc(cfg).start()
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="badinput-%d" % os.getpid(), clean_session=True)
    try:
        deadline = time.monotonic() + 15
        while "connected to broker" not in gw.output():
            assert gw.proc.poll() is None and time.monotonic() < deadline, gw.output()
            time.sleep(0.05)
        c.connect(mosquitto.host, mosquitto.port, keepalive=10)
        c.loop_start()
        o = "%08x" % OTHER_ORIGIN
        topics = [T.node("fake1", "status"), T.node("fake1", "hb"), T.node("fake1", "err"), "ne/v1/d/%s/in" % o,
                  "ne/v1/d/%s/chain" % o, T.gateway("gw1", "req", "cli-x"), "ne/v1/d/NOTHEX!!/chain", "ne/v1/zz/y/x"]
        junk = [b"\x00", b"\xff" * 64, b"garbage", FR.encode(FR.HEARTBEAT, "fake1", 1, {})[:-2],
                FR.encode(FR.STATUS, "fake1", 2, [1, 2]), b"\x85\x01" + b"\x01" * 9000]
        sent = 0
        for t in topics:
            for j in junk:
                c.publish(t, j, qos=1).wait_for_publish(5)
                sent += 1
        hb = FR.encode(FR.HEARTBEAT, "fake1", 100, {"board": "unix", "heap": 1, "kinds": ["counter"], "daemons": []})
        c.publish(T.node("fake1", "hb"), hb, qos=1).wait_for_publish(5)
        gw.wait_for(lambda s: (s.node("fake1") is not None and s.node("fake1").status == "online"
                               and s.node("fake1").info.get("kinds") == ["counter"]), 15, "fake1 online")
        assert gw.proc.poll() is None, gw.output()
        out = gw.output()
        # every junk payload on a handled topic (7 of the 8) logs a warning; nothing logs a traceback
        assert out.count("bad frame") >= 7 * len(junk), out[-3000:]
        assert "Traceback" not in out and "internal error" not in out, out[-3000:]
        st_ = gw.store()
        try:
            assert [n.node_id for n in st_.nodes()] == ["fake1"] and st_.daemons() == []
            assert st_.query("SELECT count(*) FROM chain_events")[0][0] == 0
            assert st_.query("SELECT count(*) FROM inputs")[0][0] == 0
        finally:
            st_.close()
    finally:
        c.loop_stop()
        c.disconnect()
        gw.terminate()


def test_heartbeat_deadline_marks_a_silent_node_suspect(tmp_path):
    """Brokers notice a frozen node late or never: the gateway's own deadline does (sans-I/O)."""
    from netedge.gateway.control.core import GatewayCore, WILL_HOLD_S
    from netedge.gateway.keystore import Keystore
    from netedge.gateway.store import Store
    store = Store(str(tmp_path / "db.sqlite"))
    core = GatewayCore(store, Keystore(store, str(tmp_path / "kek")), "gw1", deadline_ms=500, **core_sources())
    hb = FR.encode(FR.HEARTBEAT, "n9", 1, {"board": "unix", "kinds": ["counter"], "daemons": []})
    core.on_message(T.node("n9", "hb"), hb, 100.0)
    assert store.node("n9").status == "online"
    core.tick(100.4)
    assert store.node("n9").status == "online"
    core.tick(100.6)
    assert store.node("n9").status == "suspect"
    core.on_message(T.node("n9", "hb"), FR.encode(FR.HEARTBEAT, "n9", 2, {"board": "unix", "kinds": ["counter"],
                                                                         "daemons": []}), 101.0)
    assert store.node("n9").status == "online"
    # a last will counts WILL_HOLD_S later ...
    off = FR.encode(FR.STATUS, "n9", 0, {"state": "offline", "board": "unix"})
    core.on_message(T.node("n9", "status"), off, 101.1)
    assert store.node("n9").status == "online"
    core.tick(101.1 + WILL_HOLD_S / 2)
    assert store.node("n9").status == "online"
    core.tick(101.1 + WILL_HOLD_S * 1.5)  # (the next tick)
    assert store.node("n9").status == "offline"
    store.close()


def test_wills_a_broker_sends_as_it_goes_away_fail_nothing_over(tmp_path):
    """A broker that shuts down publishes every client's will, then drops the gateway too: those
    wills are dropped, and no deadline runs while the gateway itself is cut off; once back, the
    deadline starts again and catches a node that is really gone."""
    from netedge.gateway.control.core import GatewayCore, NODE_REDIAL_MAX_S, WILL_HOLD_S
    from netedge.gateway.keystore import Keystore
    from netedge.gateway.store import Store
    store = Store(str(tmp_path / "db.sqlite"))
    core = GatewayCore(store, Keystore(store, str(tmp_path / "kek")), "gw1", deadline_ms=500, **core_sources())
    core.broker_back(99.0)  # the first connection is no reconnection: wills count at once
    core.on_message(T.node("n0", "hb"), FR.encode(FR.HEARTBEAT, "n0", 1, {"board": "unix", "kinds": [],
                                                                         "daemons": []}), 99.1)
    core.on_message(T.node("n0", "status"), FR.encode(FR.STATUS, "n0", 2, {"state": "offline"}), 99.2)
    core.tick(99.2 + WILL_HOLD_S * 1.5)
    assert store.node("n0").status == "offline"
    for n in ("n1", "n2"):
        core.on_message(T.node(n, "hb"), FR.encode(FR.HEARTBEAT, n, 1, {"board": "unix", "kinds": ["counter"],
                                                                       "daemons": []}), 100.0)
        core.on_message(T.node(n, "status"), FR.encode(FR.STATUS, n, 2, {"state": "offline"}), 100.01)
    core.broker_lost()
    core.tick(100.01 + WILL_HOLD_S)
    core.tick(105.0)  # cut off for 5 s: nobody is blamed for the gateway's own silence
    assert [store.node(n).status for n in ("n1", "n2")] == ["online", "online"]
    core.broker_back(106.0)
    core.tick(106.0)
    # the wills the broker queued for the gateway's session come now: stale, ignored
    core.on_message(T.node("n2", "status"), FR.encode(FR.STATUS, "n2", 3, {"state": "offline"}), 106.1)
    core.tick(106.1 + WILL_HOLD_S * 1.5)
    assert store.node("n2").status == "online"
    # the nodes come back at their own pace: no deadline before they had the time to
    core.tick(106.0 + 0.5 + NODE_REDIAL_MAX_S - 0.1)
    assert [store.node(n).status for n in ("n1", "n2")] == ["online", "online"]
    core.on_message(T.node("n1", "hb"), FR.encode(FR.HEARTBEAT, "n1", 3, {"board": "unix", "kinds": ["counter"],
                                                                         "daemons": []}), 111.3)
    core.tick(111.6)  # the grace is over; n2 never came back: silent since the reconnection
    assert [store.node(n).status for n in ("n1", "n2")] == ["online", "suspect"]
    store.close()
