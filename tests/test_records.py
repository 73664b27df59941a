"""Signed records (honest discontinuity): the envelope, the gateway issuing one per fault
(ChainBreak, ConflictingChains, Corruption) through GatewayCore, deduplication, the retained
broadcast, and `netedge record list|verify` accepting them and refusing a flipped byte or a
wrong signer.  Invariant 2: where the chain is not one contiguous chain, a signed record says so.
"""
import json
import os
import subprocess

import nacl.signing
import pytest
from hypothesis import given, settings, strategies as st

from netedge.gateway import records as GR
from netedge.gateway.cli import main as cli_main
from netedge.gateway.control.core import GatewayCore
from netedge.gateway.service import core_sources
from netedge.shared import frame as FR
from netedge.shared import records as R
from netedge.shared import topics as T
from netedge.shared.chain import CHAIN_ERRORS, ParentHashMismatch, SequenceGap
from netedge.shared.discontinuity import (ChainBreak, ConflictingChains, Corruption, Discontinuity, NodeCrash,
                                          UnknownReasonCode)
from netedge.shared.errors import DecodeError, NetedgeError
from netedge.shared.fork import ForkRecord
from netedge.shared.link import CausalLink
from netedge.shared.log import ChainEvent

from conftest import REPO
from gateways import NETEDGE
from test_gateway_badinput import NODE, OTHER, Rig

O = 0x1A2B3C4D
KEY = nacl.signing.SigningKey(b"\x07" * 32)
OTHER_KEY = nacl.signing.SigningKey(b"\x08" * 32)


def signed(kind, body, key=KEY):
    b = body.to_bytes()
    return R.encode_signed(kind, b, bytes(key.verify_key), bytes(key.sign(R.signed_message(kind, b)).signature))


def a_discontinuity(reason=None, failed=True):
    last = CausalLink(O, 5, 41, 0x0123456789ABCDEF)
    fl = CausalLink(O, 0, 42, 0x1111) if failed else None
    return Discontinuity(O, last, fl, reason or ChainBreak(ParentHashMismatch(0x2222, 0x1111)), 1700000000456)


# -- the envelope (shared/records.py) -----------------------------------------------------------

def test_envelope_round_trip_both_kinds():
    for kind, body in [(R.KIND_DISCONTINUITY, a_discontinuity()),
                       (R.KIND_DISCONTINUITY, a_discontinuity(Corruption(), failed=False)),
                       (R.KIND_FORK, ForkRecord.create(O, 0x5E6F7081, 1000, 990))]:
        env = signed(kind, body)
        assert len(env) == R.envelope_size(kind) == 1 + len(body.to_bytes()) + 32 + 64
        assert env[0] == kind and env[1:1 + len(body.to_bytes())] == body.to_bytes()
        k, obj, who, sig, msg = R.decode_signed(env)
        assert (k, obj, who) == (kind, body, bytes(KEY.verify_key))
        assert msg == b"netedge/record/v1" + bytes([kind]) + body.to_bytes()
        assert GR.verify(env).body == body
        assert GR.verify(env, bytes(KEY.verify_key)).kind == kind
        assert R.check_structure(env) == (kind, body)
        assert R.decode_signed(bytearray(env))[1] == body and R.decode_signed(memoryview(env))[1] == body
    assert (R.envelope_size(1), R.envelope_size(2)) == (184, 146)


def test_encode_refuses_what_it_could_not_decode():
    d = a_discontinuity()
    pub, sig = bytes(32), bytes(64)
    for args in [(3, d, pub, sig), (R.KIND_FORK, d, pub, sig), (R.KIND_DISCONTINUITY, d.to_bytes()[:86], pub, sig),
                 (R.KIND_DISCONTINUITY, d, pub[:31], sig), (R.KIND_DISCONTINUITY, d, pub, sig + b"\0"),
                 (R.KIND_DISCONTINUITY, "text", pub, sig), (R.KIND_DISCONTINUITY, d, None, sig),
                 (R.KIND_FORK, ForkRecord(O, 9, 3, CausalLink(9, 0, 0, 1)).to_bytes(), pub, sig)]:  # bad lineage
        with pytest.raises(NetedgeError):
            R.encode_signed(*args)


def test_typed_decode_errors():
    env = signed(R.KIND_DISCONTINUITY, a_discontinuity())
    for data, err in [(b"", R.RecordLength), (env[:-1], R.RecordLength), (env + b"\0", R.RecordLength),
                      (b"\x02" + env[1:], R.RecordLength), (b"\x09" + env[1:], R.UnknownRecordKind),
                      ("01" * 184, R.RecordLength), (None, R.RecordLength),
                      (env[:54] + b"\x07" + env[55:], R.RecordBodyError)]:
        with pytest.raises(err) as e:
            R.decode_signed(data)
        assert isinstance(e.value, DecodeError)
    with pytest.raises(R.RecordBodyError) as e:
        R.decode_signed(env[:54] + b"\x07" + env[55:])
    assert isinstance(e.value.cause, UnknownReasonCode) and "UnknownReasonCode" in str(e.value)


def test_signature_checks():
    env = signed(R.KIND_DISCONTINUITY, a_discontinuity())
    gw = bytes(KEY.verify_key)
    other = signed(R.KIND_DISCONTINUITY, a_discontinuity(), OTHER_KEY)
    assert GR.verify(other).signer == bytes(OTHER_KEY.verify_key)        # any signer when none is required
    with pytest.raises(GR.RecordInvalid, match="not by the required signer"):
        GR.verify(other, gw)
    swapped = env[:88] + bytes(OTHER_KEY.verify_key) + env[120:]         # claims another signer
    for i in range(len(env)):
        bad = env[:i] + bytes([env[i] ^ 0x01]) + env[i + 1:]
        with pytest.raises((GR.RecordInvalid, R.RecordDecodeError)):
            GR.verify(bad)
    with pytest.raises(GR.RecordInvalid, match="bad signature"):
        GR.verify(swapped)


reasons = st.one_of(
    st.builds(NodeCrash, st.integers(0, 2 ** 64 - 1)),
    st.builds(lambda c, a, b: ChainBreak(CHAIN_ERRORS[c](a, b)), st.integers(1, 3), st.integers(0, 2 ** 64 - 1),
              st.integers(0, 2 ** 64 - 1)),
    st.builds(ConflictingChains, st.integers(0, 2 ** 64 - 1), st.integers(0, 2 ** 63), st.integers(2 ** 63 + 1, 2 ** 64 - 1)),
    st.just(Corruption()))


@st.composite
def envelopes(draw):
    if draw(st.booleans()):
        fl = draw(st.none() | st.builds(CausalLink, st.integers(0, 2 ** 32 - 1), st.integers(0, 2 ** 32 - 1),
                                        st.integers(1, 2 ** 64 - 1), st.integers(0, 2 ** 64 - 1)))
        body = Discontinuity(O, CausalLink(O, draw(st.integers(0, 2 ** 32 - 1)), draw(st.integers(0, 2 ** 64 - 1)),
                                           draw(st.integers(0, 2 ** 64 - 1))), fl, draw(reasons),
                             draw(st.integers(0, 2 ** 64 - 1)))
        kind = R.KIND_DISCONTINUITY
    else:
        snap = draw(st.none() | st.integers(0, 2 ** 64 - 1))
        body = ForkRecord.create(O, draw(st.integers(0, 2 ** 32 - 1).filter(lambda x: x != O)),
                                 draw(st.integers(0, 2 ** 64 - 1)), snap)
        kind = R.KIND_FORK
    sig = draw(st.binary(min_size=64, max_size=64))
    pub = draw(st.binary(min_size=32, max_size=32))
    return kind, body, pub, sig


@settings(max_examples=150, deadline=None)
@given(envelopes())
def test_round_trip_any_record(e):
    kind, body, pub, sig = e
    env = R.encode_signed(kind, body, pub, sig)
    k, obj, who, s, msg = R.decode_signed(env)
    assert (k, obj, who, s) == (kind, body, pub, sig) and msg == R.signed_message(kind, body.to_bytes())
    assert R.encode_signed(k, obj, who, s) == env


def _only_typed(fn, data):
    try:
        fn(data)
    except R.RecordDecodeError:
        pass  # the only failure allowed: never a struct / index / unicode error


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.builds(lambda k, b: bytes([k]) + b, st.integers(0, 4),
                                           st.binary(min_size=144, max_size=186)))
def test_fuzz_decode_signed_random(data):
    _only_typed(R.decode_signed, data)
    _only_typed(R.check_structure, data)


@settings(max_examples=300, deadline=None)
@given(envelopes(), st.integers(0, 183), st.integers(1, 255), st.binary(max_size=3), st.booleans())
def test_fuzz_decode_signed_mutated(e, pos, xor, junk, cut):
    env = R.encode_signed(*e)
    pos %= len(env)
    data = env[:pos] + bytes([env[pos] ^ xor]) + env[pos + 1:]
    data = data[:pos] if cut else data + junk
    _only_typed(R.decode_signed, data)
    _only_typed(R.check_structure, data)
    try:
        GR.verify(data)
    except (R.RecordDecodeError, GR.RecordInvalid):
        pass


# -- issued by the gateway ----------------------------------------------------------------------

@pytest.fixture
def rig(tmp_path):
    r = Rig(str(tmp_path))
    (tmp_path / "netedge.toml").write_text('[gateway]\nid = "gw1"\ndata_dir = "."\n')
    r.config = str(tmp_path / "netedge.toml")
    yield r
    r.close()


def cli(capsys, *argv):
    code = cli_main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def issued(rig, acts, origin=None):
    """The one retained continuity frame in `acts`: (envelope, Verified)."""
    origin = rig.origin if origin is None else origin
    frames = [(t, d, q, ret) for t, d, q, ret in acts.publish if t.endswith("/continuity")]
    assert len(frames) == 1, acts.publish
    topic, data, qos, retain = frames[0]
    assert topic == "ne/v1/d/%08x/continuity" % origin and qos == 1 and retain is True
    f = FR.decode(data)
    assert f.type == FR.DISCONTINUITY and f.sender == "gw1" and set(f.body()) == {"r"}
    env = f.body()["r"]
    return env, GR.verify(env, rig.keystore.gateway_public_key)


def check_cli(rig, capsys, env, want):
    """VALID by the store's gateway, INVALID with a flipped byte or another signer."""
    gw = rig.keystore.gateway_public_key.hex()
    rec = rig.store.records(origin=rig.origin)[-1]
    assert GR.envelope_of(rec) == env
    code, out = cli(capsys, "record", "verify", env.hex(), "--config", rig.config)
    assert code == 0 and out.startswith("VALID Discontinuity %08x %s" % (rig.origin, want)), out
    assert ("signed by %s" % gw[:16]) in out
    code, out = cli(capsys, "record", "verify", "--id", str(rec.id), "--config", rig.config)
    assert code == 0 and out.startswith("VALID Discontinuity"), out
    code, out = cli(capsys, "record", "verify", env.hex())                      # no required signer
    assert code == 0 and gw[:16] in out and "no required signer" in out
    for pos in (40, 86, 100, 150):                                               # body, signer, signature
        bad = env[:pos] + bytes([env[pos] ^ 0x10]) + env[pos + 1:]
        code, out = cli(capsys, "record", "verify", bad.hex(), "--config", rig.config)
        assert code == 1 and out.startswith("INVALID: "), (pos, out)
    body = env[1:88]
    forged = R.encode_signed(1, body, bytes(OTHER_KEY.verify_key),
                             bytes(OTHER_KEY.sign(R.signed_message(1, body)).signature))
    code, out = cli(capsys, "record", "verify", forged.hex(), "--config", rig.config)
    assert code == 1 and "INVALID: signed by %s, not by the required signer %s" % (
        bytes(OTHER_KEY.verify_key).hex()[:16], gw[:16]) in out, out
    code, out = cli(capsys, "record", "verify", forged.hex(), "--signer", bytes(OTHER_KEY.verify_key).hex())
    assert code == 0, out
    code, out = cli(capsys, "record", "verify", env.hex(), "--signer", bytes(OTHER_KEY.verify_key).hex())
    assert code == 1 and "INVALID" in out


def test_chain_break_record(rig, capsys):
    o, chain = rig.origin, T.daemon(rig.origin, "chain")
    ev = rig.next_event(b"next")
    bad = ChainEvent(CausalLink(o, 0, ev.link.sequence, ev.link.parent_hash ^ 1), b"next")
    acts = rig.send(chain, rig.chain_frame(bad))
    env, v = issued(rig, acts)
    d = v.body
    assert d.origin_hash == o and d.last_verified == rig.events[-1].link and d.failed_link == bad.link
    assert d.reason == ChainBreak(ParentHashMismatch(ev.link.parent_hash, ev.link.parent_hash ^ 1))
    assert rig.store.event_count(o) == 3                                      # the bad event is still not stored
    assert rig.core.counters["chain_errors"] == 1 and rig.core.counters["records"] == 1
    assert rig.store.daemon(o).status == "discontinued"
    status = [FR.decode(x[1]).body() for x in rig.core.tick(rig.now).publish if x[0].endswith("/status")]
    assert status and status[0]["status"] == "discontinued" and status[0]["continuity"]["kind"] == "Continuous"
    check_cli(rig, capsys, env, "ChainBreak(ParentHashMismatch")


def test_conflicting_chains_record(rig, capsys):
    o, chain = rig.origin, T.daemon(rig.origin, "chain")
    stored = rig.events[1]                                                    # seq 2
    other = ChainEvent(stored.link, b"another history")
    acts = rig.send(chain, rig.chain_frame(other))
    env, v = issued(rig, acts)
    d = v.body
    assert d.reason == ConflictingChains(2, stored.forward, other.forward)
    assert d.last_verified == rig.events[0].link and d.failed_link == other.link
    assert rig.store.event(o, 2) == stored and rig.core.counters["conflicts"] == 1
    check_cli(rig, capsys, env, "ConflictingChains(seq 2")
    # at seq 1 the last verified link is the genesis
    first = ChainEvent(rig.events[0].link, b"x")
    env, v = issued(rig, rig.send(chain, rig.chain_frame(first)))
    assert v.body.last_verified == CausalLink.genesis(o) and v.body.reason.seq == 1


def test_corruption_record(rig, capsys):
    o, err = rig.origin, T.node(NODE, "err")
    body = {"code": "corruption", "at": "d%08x" % o, "detail": "checksum mismatch"}
    acts = rig.send(err, rig.frame(FR.ERROR, body))
    env, v = issued(rig, acts)
    assert v.body.reason == Corruption() and v.body.failed_link is None
    assert v.body.last_verified == rig.events[-1].link
    check_cli(rig, capsys, env, "Corruption")
    # the same report again (QoS 1 at boot, redelivered): no second record
    assert rig.send(err, rig.frame(FR.ERROR, body)).publish == []
    # not a daemon record, another spelling, a node that does not host it, an unknown daemon: no record
    n = len(rig.store.records())
    for node, at in [(NODE, "node"), (NODE, "D%08x" % o), (NODE, "d%08X" % o), (NODE, None), (OTHER, "d%08x" % o),
                     (NODE, "d0badc0d"), (NODE, "dzzzzzzzz")]:
        b = dict(body, at=at) if at is not None else {"code": "corruption"}
        assert rig.send(T.node(node, "err"), rig.frame(FR.ERROR, b, node)).publish == []
    assert len(rig.store.records()) == n and rig.core.counters["malformed"] == 0


def test_same_fault_twice_is_one_record(rig):
    o, chain = rig.origin, T.daemon(rig.origin, "chain")
    ev = rig.next_event(b"next")
    bad = ChainEvent(CausalLink(o, 0, ev.link.sequence, ev.link.parent_hash ^ 1), b"next")
    frame = rig.chain_frame(bad)
    assert len(issued(rig, rig.send(chain, frame))[0]) == 184
    assert rig.send(chain, frame).publish == []                               # QoS 1 redelivery (same frame)
    assert rig.send(chain, rig.chain_frame(bad)).publish == []                # the node repeating itself
    # the node carries on from its bad event: every later link fails against the same head
    nxt = ChainEvent(CausalLink(o, 0, bad.link.sequence + 1, bad.forward), b"more")
    assert rig.send(chain, rig.chain_frame(nxt)).publish == []
    assert rig.core.counters["chain_errors"] == 4
    # a conflicting branch: one record at its first event, its continuation adds none
    other = ChainEvent(rig.events[1].link, b"fork")
    issued(rig, rig.send(chain, rig.chain_frame(other)))
    assert rig.send(chain, rig.chain_frame(other)).publish == []
    cont = ChainEvent(CausalLink(o, 0, 3, other.forward), b"fork 2")
    assert rig.send(chain, rig.chain_frame(cont)).publish == []
    # ... and across a gateway restart (dedup keys are in the store)
    rig.core = GatewayCore(rig.store, rig.keystore, "gw1", **core_sources())
    assert rig.send(chain, rig.chain_frame(bad)).publish == []
    assert rig.send(chain, rig.chain_frame(other)).publish == []
    recs = rig.store.records(origin=o)
    assert [R.decode_signed(GR.envelope_of(r))[1].reason.code for r in recs] == [2, 3]
    # the honest chain still continues: the stored head is untouched
    rig.accept(chain, rig.chain_frame(ev))
    assert rig.store.event_count(o) == 4


def test_a_new_fault_after_progress_is_a_new_record(rig):
    o, chain = rig.origin, T.daemon(rig.origin, "chain")
    ev = rig.next_event(b"next")
    gap = ChainEvent(CausalLink(o, 0, ev.link.sequence + 1, ev.link.parent_hash), b"gap")
    # a gap is first asked for (PROTOCOL §11): the record comes once the host says it is lost
    assert [t for t, _, _, _ in rig.send(chain, rig.chain_frame(gap)).publish if t.endswith("/continuity")] == []
    lost = rig.frame(FR.ERROR, {"code": "gap_lost", "at": "d%08x" % o, "detail": "seq 4..4"})
    _, v = issued(rig, rig.send(T.node(NODE, "err"), lost))
    assert v.body.reason == ChainBreak(SequenceGap(4, 5))
    rig.accept(chain, rig.chain_frame(ev))
    rig.commit(ev)
    gap2 = ChainEvent(CausalLink(o, 0, 6, rig.chain.next_parent), b"gap")
    _, v = issued(rig, rig.send(chain, rig.chain_frame(gap2)))
    assert v.body.last_verified.sequence == 4 and v.body.reason == ChainBreak(SequenceGap(5, 6))


def test_fenced_frames_issue_no_record(rig):
    o, chain = rig.origin, T.daemon(rig.origin, "chain")
    other = ChainEvent(rig.events[1].link, b"stale host's history")
    assert rig.send(chain, rig.chain_frame(other, epoch=1)).publish == []
    assert rig.send(chain, rig.chain_frame(other, sender=OTHER)).publish == []
    assert rig.store.records() == [] and rig.core.counters["stale_epoch"] == 2


def test_record_list_and_cli_errors(rig, capsys, tmp_path):
    chain = T.daemon(rig.origin, "chain")
    code, out = cli(capsys, "record", "list", "--config", rig.config)
    assert code == 0 and "(no records)" in out
    env, _ = issued(rig, rig.send(chain, rig.chain_frame(ChainEvent(rig.events[2].link, b"?"))))
    code, out = cli(capsys, "record", "list", "--config", rig.config, "--hex")
    assert code == 0 and "discontinuity" in out and "%08x ConflictingChains(seq 3" % rig.origin in out
    assert env.hex() in out
    code, out = cli(capsys, "record", "list", "--origin", "0badc0de", "--config", rig.config)
    assert code == 0 and "(no records for 0badc0de)" in out
    (tmp_path / "rec.bin").write_bytes(env)
    (tmp_path / "rec.hex").write_text(env.hex() + "\n")
    for f in ("rec.bin", "rec.hex"):
        code, out = cli(capsys, "record", "verify", "--file", str(tmp_path / f), "--config", rig.config)
        assert code == 0 and out.startswith("VALID"), out
    for argv, msg in [(["zz"], "not hexadecimal"), ([env.hex()[:-2]], "not a signed record"), ([""], "empty record"),
                      ([" "], "empty record"), (["00" * 184], "unknown kind 0"), ([], "exactly one"), ([env.hex(), "--id", "1"], "exactly one"),
                      (["--id", "99"], "no record 99"), (["--file", str(tmp_path / "missing")], "cannot read"),
                      ([env.hex(), "--signer", "abcd"], "--signer must be a 32-byte"),
                      ([env.hex(), "--signer", "xyz"], "not hexadecimal")]:
        code, out = cli(capsys, "record", "verify", *argv, "--config", rig.config)
        assert code == 2 and msg in out and "Traceback" not in out, (argv, out)


def test_cli_process(rig):
    """Once through a real `netedge` process (the console entry point, exit codes)."""
    env, _ = issued(rig, rig.send(T.daemon(rig.origin, "chain"), rig.chain_frame(ChainEvent(rig.events[0].link, b"?"))))
    r = subprocess.run(NETEDGE + ["record", "verify", env.hex(), "--config", rig.config], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("VALID Discontinuity"), r.stdout + r.stderr
    r = subprocess.run(NETEDGE + ["record", "verify", (env[:-1] + bytes([env[-1] ^ 1])).hex(), "--config", rig.config],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stdout.startswith("INVALID: bad signature"), r.stdout + r.stderr


# -- the doc section's worked example is a vector -----------------------------------------------
