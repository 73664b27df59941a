"""Invariant 5 for standby groups and forks (PROTOCOL §17): bad requests get an error reply and
change nothing; garbage node replies for a group are counted as malformed and change nothing.
GatewayCore over a real Store + Keystore (the Rig of test_gateway_badinput)."""
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netedge.shared import cbor
from netedge.shared import frame as FR
from netedge.shared import topics as T

from test_gateway_badinput import NODE, OTHER, Rig, cbor_values, rid_frame, valid_hb

REQ = T.gateway("gw1", "req", "cli-1")


@pytest.fixture
def rig(tmp_path):
    r = Rig(str(tmp_path))
    yield r
    r.close()


def syncing_group(r):
    """A group of 2 (n1 active, n2 standby) whose first sync is in flight: (origin, sync id)."""
    r.accept(REQ, rid_frame(r, {"cmd": "group_create", "kind": "counter", "members": 2, "nodes": [NODE, OTHER],
                                "id": 7}))
    (origin,) = [o for o in r.core.standby.groups]
    for n in (NODE, OTHER):
        r.core.keys_pushed("group:%08x:%s" % (origin, n), None, r.now)
    r.core.tick(r.now)  # the activation
    r.accept(T.node(NODE, "hb"), r.frame(FR.HEARTBEAT, valid_hb(daemons=[{"origin": origin, "epoch": 1}])))
    g = r.core.standby.groups[origin]
    assert g.step == "sync0" and g.sync is not None
    r.core.tick(r.now)
    return origin, g.sync["m"]


def test_malformed_group_and_fork_requests_get_an_error_reply(rig):
    for body in [{"cmd": "group_create", "kind": "counter", "members": 1},
                 {"cmd": "group_create", "kind": "counter", "members": 17},
                 {"cmd": "group_create", "kind": 5, "members": 2},
                 {"cmd": "group_create", "kind": "counter", "members": True},
                 {"cmd": "group_create", "kind": "counter", "members": 2, "nodes": "n1,n2"},
                 {"cmd": "group_create", "kind": "counter", "members": 2, "nodes": [NODE]},
                 {"cmd": "group_create", "kind": "counter", "members": 2, "sync_every": 0},
                 {"cmd": "group_create", "kind": "counter", "members": 2, "sync_seconds": "5"},
                 {"cmd": "group_create", "kind": "counter", "members": 2, "sync_seconds": True},
                 {"cmd": "fork", "origin": "1a2b3c4d", "to": OTHER},
                 {"cmd": "fork", "origin": rig.origin, "to": 5},
                 {"cmd": "fork", "origin": 1 << 32, "to": OTHER}]:
        (reply,) = rig.rejected(REQ, rid_frame(rig, dict(body, id=3)), replies=True)
        assert reply["ok"] is False and reply["id"] == 3 and reply["error"]


def test_refused_group_and_fork_requests_write_nothing(rig):
    for body, why in [
            ({"cmd": "group_create", "kind": "counter", "members": 3}, "needs 3 distinct online nodes"),
            ({"cmd": "group_create", "kind": "counter", "members": 2, "nodes": [NODE, "n9"]}, "not online"),
            ({"cmd": "group_create", "kind": "counter", "members": 2, "nodes": [NODE, NODE]}, "distinct"),
            ({"cmd": "group_create", "kind": "thermostat", "members": 2}, "can host kind 'thermostat'"),
            ({"cmd": "group_sync", "origin": rig.origin}, "not the origin of a standby group"),
            ({"cmd": "fork", "origin": 0x0BADC0DE, "to": OTHER}, "unknown daemon"),
            ({"cmd": "fork", "origin": rig.origin, "to": "n9"}, "unknown")]:
        (reply,) = rig.rejected(REQ, rid_frame(rig, dict(body, id=4)), counter=None, replies=True)
        assert why in reply["error"], (body, reply)


def test_a_group_daemon_is_not_migrated(rig):
    origin, _ = syncing_group(rig)
    (reply,) = rig.rejected(REQ, rid_frame(rig, {"cmd": "migrate", "origin": origin, "to": OTHER, "id": 5}),
                            counter=None, replies=True)
    assert "standby group" in reply["error"]


def test_garbage_group_replies_change_nothing(rig):
    origin, m = syncing_group(rig)
    mig = T.node(NODE, "mig")
    good_head = rig.events[0].link.to_bytes()  # (a link of another origin)
    for body in [{"op": "snap", "m": m, "o": origin},
                 {"op": "snap", "m": m, "o": origin, "rec": b"\xff\x00garbage"},
                 {"op": "snap", "m": m, "o": origin, "rec": cbor.dumps([1, 2], True)},
                 {"op": "snap", "m": m, "o": origin, "rec": cbor.dumps({"head": b"short", "next": 1}, True)},
                 {"op": "snap", "m": m, "o": origin, "rec": cbor.dumps({"head": good_head, "next": "x"}, True)},
                 {"op": "snap", "m": m, "o": origin, "rec": cbor.dumps({"head": good_head, "next": 1,
                                                                        "origin": origin}, True)},
                 {"op": "kept", "m": m, "o": origin, "seq": "0"},
                 {"op": "kept", "m": m, "o": origin},
                 {"op": "demoted", "m": m, "o": origin, "seq": None},
                 {"op": "active", "m": m, "o": origin, "seq": b"1"},
                 {"op": "snap", "m": "x", "o": origin},
                 {"op": "snap", "m": m, "o": [origin]}]:
        rig.rejected(mig, rig.frame(FR.MIGRATION, body))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_group_replies(data):
    with tempfile.TemporaryDirectory() as d:
        r = Rig(d)
        try:
            origin, m = syncing_group(r)
            op = data.draw(st.sampled_from(["snap", "kept", "demoted", "active", "fed", "listening", "restored"]))
            body = {"op": op, "m": data.draw(st.sampled_from([m, m + 1])), "o": origin}
            for k in data.draw(st.lists(st.sampled_from(["rec", "seq", "b", "code", "detail"]), max_size=3)):
                body[k] = data.draw(cbor_values)
            if op == "snap" and "rec" in body and data.draw(st.booleans()):
                body["rec"] = data.draw(st.binary(max_size=64))
            before = r.state()
            r.send(T.node(data.draw(st.sampled_from([NODE, OTHER])), "mig"), r.frame(FR.MIGRATION, body))
            # well-typed late or foreign answers may be absorbed, but never leave a half-written group
            g = r.core.standby.groups[origin]
            assert g.members[NODE].seq is None or type(g.members[NODE].seq) is int
            assert g.members[OTHER].seq is None or type(g.members[OTHER].seq) is int
            if r.core.counters["malformed"]:
                assert r.state() == before
        finally:
            r.close()
