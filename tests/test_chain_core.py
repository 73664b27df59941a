"""CausalLink, ChainBuilder, EntityLog, ContinuityProof, assess_continuity on CPython.

Expectations are computed from first principles with hashlib/struct (DESIGN.md §4), not from
the code under test.
"""
import hashlib
import struct

import pytest
from hypothesis import given, settings, strategies as st

from netedge.shared.errors import DecodeError
from netedge.shared.chain import OriginMismatch, ParentHashMismatch, SequenceGap
from netedge.shared.link import CausalLink, ChainBuilder, LINK_SIZE, h8
from netedge.shared.log import ChainEvent, Duplicate, EntityLog
from netedge.shared.proof import (ContinuityProof, HashMismatch, InvalidRange, MAX_PROOF_VERIFY_SPAN,
                                  MissingEvent, PROOF_SIZE, ProofError, SpanTooLarge)
from netedge.shared import status as S


def H8(b):
    return int.from_bytes(hashlib.sha256(b).digest()[:8], "little")


def build(origin, payloads):
    b, log = ChainBuilder(origin), EntityLog(origin)
    for p in payloads:
        log.append(ChainEvent(b.append(p), p))
    return b, log


def test_wire_sizes_are_the_missions():
    assert LINK_SIZE == 24 and len(CausalLink.genesis(1).to_bytes()) == 24
    assert PROOF_SIZE == 36 and MAX_PROOF_VERIFY_SPAN == 100000


def test_first_event_parent_is_h8_of_genesis_bytes():
    b = ChainBuilder(0xAABBCCDD)
    link = b.append(b"hello")
    genesis = struct.pack("<IIQQ", 0xAABBCCDD, 0, 0, 0)
    assert link.parent_hash == H8(genesis)
    assert b.next_parent == H8(link.to_bytes() + b"hello")
    assert h8(b"abc") == H8(b"abc")


def test_builder_keeps_o1_state():
    b, _ = build(3, [b"x" * 100] * 50)
    assert set(vars(b)) == {"head", "next_parent"}


def test_link_next_matches_builder():
    b = ChainBuilder(9)
    l1 = b.append(b"a", horizon=5)
    assert l1.next(b"a", horizon=0) == b.append(b"b")


def test_sequence_overflow_is_typed():
    top = CausalLink(1, 0, 2 ** 64 - 1, 0)
    with pytest.raises(SequenceGap):
        top.next(b"")
    with pytest.raises(SequenceGap):
        ChainBuilder.resume(top, 0).append(b"")


def test_log_append_rules_and_no_change_on_error():
    b, log = build(5, [b"1", b"2", b"3"])
    with pytest.raises(Duplicate):
        log.append(log.events[1])
    with pytest.raises(OriginMismatch):
        log.append(ChainEvent(CausalLink(6, 0, 4, b.next_parent), b""))
    with pytest.raises(SequenceGap):
        log.append(ChainEvent(CausalLink(5, 0, 5, b.next_parent), b""))
    with pytest.raises(ParentHashMismatch):
        log.append(ChainEvent(CausalLink(5, 0, 4, b.next_parent ^ 1), b""))
    assert log.head_seq() == 3 and len(log) == 3


def test_prune_then_append_and_assess_with_snapshot():
    b, log = build(5, [bytes([i]) for i in range(10)])
    head = log.events[5]
    assert log.prune_through(6) == 6
    assert log.snapshot_seq == 6 and [e.sequence for e in log.events] == [7, 8, 9, 10]
    assert S.assess_log(log).kind == S.UNVERIFIABLE
    anchor = S.SnapshotAnchor(6, head.link, head.forward)
    st_ = S.assess_log(log, anchor)
    assert st_.kind == S.CONTINUOUS and st_.head_seq == 10
    assert log.prune_through(100) == 4 and log.is_empty()
    p = b"next"
    log.append(ChainEvent(b.append(p), p))
    assert log.head_seq() == 11


def test_proof_over_whole_chain_is_endpoint_forward_hashes():
    b, log = build(0x11, [b"a", b"b", b"c"])
    pr = ContinuityProof.from_log(log)
    raw = pr.to_bytes()
    assert len(raw) == 36
    e1, e3 = log.events[0], log.events[2]
    assert raw == struct.pack("<IQQQQ", 0x11, 1, 3, H8(e1.link.to_bytes() + b"a"), H8(e3.link.to_bytes() + b"c"))
    pr.verify_against(log)
    assert ContinuityProof.from_log(EntityLog(1)) is None


def test_forged_middle_is_rejected_even_with_true_endpoints():
    _, log = build(0x22, [b"%d" % i for i in range(20)])
    pr = ContinuityProof.from_log(log)
    forged = EntityLog(0x22)
    forged.events = list(log.events)
    forged.events[9] = ChainEvent(log.events[9].link, b"evil")
    with pytest.raises(HashMismatch) as exc:
        pr.verify_against(forged)
    assert exc.value.seq == 11
    # endpoints only: the walk needs every event
    sparse = EntityLog(0x22)
    sparse.events = [log.events[0], log.events[-1]]
    with pytest.raises(MissingEvent):
        pr.verify_against(sparse)


def test_proof_range_errors():
    _, log = build(1, [b"x"])
    with pytest.raises(InvalidRange):
        ContinuityProof(1, 5, 4, 0, 0).verify_against(log)
    with pytest.raises(SpanTooLarge):
        ContinuityProof(1, 0, MAX_PROOF_VERIFY_SPAN, 0, 0).verify_against(log)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=2, max_size=30), st.data())
def test_any_single_tamper_in_range_is_detected(payloads, data):
    _, log = build(0x33, payloads)
    n = len(payloads)
    lo = data.draw(st.integers(1, n))
    hi = data.draw(st.integers(lo, n))
    pr = ContinuityProof.from_log(log, lo, hi)
    pr.verify_against(log)
    victim = data.draw(st.integers(lo, hi))
    tampered = EntityLog(0x33)
    tampered.events = list(log.events)
    old = tampered.events[victim - 1]
    tampered.events[victim - 1] = ChainEvent(old.link, old.payload + b"!")
    with pytest.raises(ProofError):
        pr.verify_against(tampered)
    assert S.assess_log(tampered).kind in (S.FORKED, S.CONTINUOUS)  # tamper of the head is invisible to assess
    if victim < n:
        assert S.assess_log(tampered).kind == S.FORKED


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_link_decoder_only_raises_typed_errors(data):
    try:
        link = CausalLink.from_bytes(data)
    except DecodeError:
        assert len(data) != 24
    else:
        assert link.to_bytes() == data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_proof_decoder_only_raises_typed_errors(data):
    try:
        pr = ContinuityProof.from_bytes(data)
    except DecodeError:
        assert len(data) != 36
    else:
        assert pr.to_bytes() == data


@pytest.mark.parametrize("bad", [None, "x" * 24, 24, [0] * 24])
def test_decoders_reject_non_bytes(bad):
    with pytest.raises(DecodeError):
        CausalLink.from_bytes(bad)
    with pytest.raises(DecodeError):
        ContinuityProof.from_bytes(bad)


def test_status_round_trip_and_migrated():
    m = S.migrated(3, "n1", "n2")
    assert S.ContinuityStatus.from_obj(m.to_obj()) == m and m.target_node == "n2"
    with pytest.raises(ValueError):
        S.ContinuityStatus("Continuous", head_seq=1)
