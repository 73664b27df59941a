"""Discontinuity records: reasons, the 87-byte layout, strict decoding, and producing one from a
real chain break detected by the gateway's EntityLog."""
import struct

import pytest
from hypothesis import given, strategies as st

from netedge.shared import discontinuity as D
from netedge.shared.errors import DecodeError, NetedgeError
from netedge.shared.chain import ChainError, OriginMismatch, ParentHashMismatch, SequenceGap
from netedge.shared.link import CausalLink, ChainBuilder
from netedge.shared.log import ChainEvent, EntityLog

u32 = st.integers(0, 2 ** 32 - 1)
u64 = st.integers(0, 2 ** 64 - 1)
O = 0x1A2B3C4D
LAST = CausalLink(O, 0, 41, 0x0123456789ABCDEF)


def reasons():
    return st.one_of(
        u64.map(D.NodeCrash),
        st.tuples(st.sampled_from([OriginMismatch, SequenceGap, ParentHashMismatch]), u64, u64)
          .map(lambda t: D.ChainBreak(t[0](t[1], t[2]))),
        st.tuples(u64, u64, u64).filter(lambda t: t[1] != t[2]).map(lambda t: D.ConflictingChains(*t)),
        st.just(D.Corruption()))


links = st.builds(CausalLink, u32, u32, u64, u64)


@st.composite
def records(draw):
    origin = draw(u32)
    last = CausalLink(origin, draw(u32), draw(u64), draw(u64))
    failed = draw(st.one_of(st.none(), links.filter(lambda lk: lk.to_bytes() != bytes(24))))
    return D.Discontinuity(origin, last, failed, draw(reasons()), draw(u64))


@given(records())
def test_round_trip(rec):
    data = rec.to_bytes()
    assert len(data) == D.DISCONTINUITY_SIZE == 87
    back = D.Discontinuity.from_bytes(data)
    assert back == rec and back.reason == rec.reason and back.failed_link == rec.failed_link
    assert back.to_obj() == rec.to_obj()
    repr(back)


def test_chain_break_carries_the_chain_error():
    """Gateway side: EntityLog refuses a link -> ChainBreak with the very error (code, expected, got)."""
    b = ChainBuilder(O)
    log = EntityLog(O)
    for i in range(3):
        log.append(ChainEvent(b.append(b"p%d" % i), b"p%d" % i))
    good = log.head_link()
    bad = CausalLink(O, 0, good.sequence + 2, b.next_parent)  # skipped a sequence
    with pytest.raises(ChainError) as ei:
        log.append(ChainEvent(bad, b"x"))
    rec = D.Discontinuity(O, good, bad, D.ChainBreak(ei.value), 1700000000000)
    back = D.Discontinuity.from_bytes(rec.to_bytes())
    err = back.reason.chain_error
    assert type(err) is SequenceGap and err == ei.value and err.code == 2
    assert (err.expected, err.got) == (4, 5) and back.failed_link == bad and back.last_verified == good


def test_node_crash_has_no_failed_link():
    rec = D.Discontinuity(O, LAST, None, D.NodeCrash(40), 5)
    back = D.Discontinuity.from_bytes(rec.to_bytes())
    assert back.failed_link is None and back.reason.last_snapshot_seq == 40
    assert rec.to_bytes()[29:53] == bytes(24)


def test_layout_offsets():
    rec = D.Discontinuity(O, LAST, CausalLink(O, 0, 43, 9), D.ConflictingChains(42, 1, 2), 77)
    b = rec.to_bytes()
    assert struct.unpack_from("<I", b, 0)[0] == O and b[4:28] == LAST.to_bytes() and b[28] == 1
    assert struct.unpack_from("<BBQQQQ", b, 53) == (3, 0, 42, 1, 2, 77)


@pytest.mark.parametrize("mk", [
    lambda: D.Discontinuity(O, CausalLink(O + 1, 0, 1, 0), None, D.Corruption(), 0),  # other origin
    lambda: D.Discontinuity(O, LAST, CausalLink(0, 0, 0, 0), D.Corruption(), 0),      # all-zero failed
    lambda: D.Discontinuity(O, LAST, None, D.DiscontinuityReason(), 0),               # no code
    lambda: D.Discontinuity(O, LAST, None, D.Corruption(), -1),
    lambda: D.Discontinuity(O, LAST, None, D.Corruption(), 2 ** 64),
    lambda: D.Discontinuity(2 ** 32, LAST, None, D.Corruption(), 0),
    lambda: D.ConflictingChains(1, 5, 5),
    lambda: D.NodeCrash(-1),
    lambda: D.ChainBreak(ValueError("not a chain error")),
    lambda: D.ChainBreak(SequenceGap(-1, 0)),
])
def test_constructor_refuses_unencodable(mk):
    with pytest.raises(NetedgeError):
        mk()


def test_signature_can_be_appended_later():
    """The record is a fixed prefix: a signed form is body || sig, and the body alone stays exact."""
    body = D.Discontinuity(O, LAST, None, D.NodeCrash(1), 2).to_bytes()
    signed = body + bytes(64)
    assert D.Discontinuity.from_bytes(signed[:87]).to_bytes() == body
    with pytest.raises(D.DiscontinuityLength):
        D.Discontinuity.from_bytes(signed)


def test_errors_are_decode_errors():
    for cls in (D.DiscontinuityLength, D.UnknownReasonCode, D.NonZeroUnused, D.InvalidReason,
                D.FailedLinkMismatch, D.LastVerifiedOriginMismatch):
        assert issubclass(cls, D.DiscontinuityDecodeError) and issubclass(cls, DecodeError)


@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data):
    try:
        rec = D.Discontinuity.from_bytes(data)
    except D.DiscontinuityDecodeError:
        return
    assert rec.to_bytes() == data


@given(records(), st.integers(0, 86), st.binary(min_size=1, max_size=70))
def test_fuzz_truncation_and_oversize(rec, cut, extra):
    data = rec.to_bytes()
    for bad in (data[:cut], data + extra):
        with pytest.raises(D.DiscontinuityLength):
            D.Discontinuity.from_bytes(bad)


@given(records(), st.integers(0, 86), st.integers(1, 255))
def test_fuzz_byte_flips(rec, pos, x):
    data = bytearray(rec.to_bytes())
    data[pos] ^= x
    try:
        back = D.Discontinuity.from_bytes(bytes(data))
    except D.DiscontinuityDecodeError:
        return
    assert back.to_bytes() == bytes(data)  # anything accepted is canonical


@given(u32, u32, u32, st.integers(0, 6), st.integers(0, 5), u64, u64, u64, u64, st.integers(0, 2))
def test_fuzz_structured_fields(origin, lv_origin, hz, code, sub, a, b, c, at, has):
    """Field-level fuzz that reaches the reason checks far more often than random bytes."""
    data = (struct.pack("<I", origin) + CausalLink(lv_origin, hz, 1, 2).to_bytes() + bytes([has])
            + (CausalLink(1, 0, 3, 4).to_bytes() if has else bytes(24))
            + struct.pack("<BBQQQQ", code, sub, a, b, c, at))
    try:
        back = D.Discontinuity.from_bytes(data)
    except D.DiscontinuityDecodeError:
        return
    assert back.to_bytes() == data and 1 <= back.reason.code <= 4
