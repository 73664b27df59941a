"""Fork sentinel, ForkRecord layout/verification, and the forked chain (upstream discontinuity.rs list)."""
import struct

import pytest
from hypothesis import given, strategies as st

from netedge.shared import fork as F
from netedge.shared.errors import DecodeError, NetedgeError
from netedge.shared.chain import ParentHashMismatch, validate_chain_link
from netedge.shared.link import CausalLink, h8
from netedge.shared.log import ChainEvent, EntityLog

u32 = st.integers(0, 2 ** 32 - 1)
u64 = st.integers(0, 2 ** 64 - 1)


def test_sentinel_deterministic_and_differs():
    assert F.fork_sentinel(7, 100) == F.fork_sentinel(7, 100)
    assert F.fork_sentinel(7, 100) == h8(struct.pack("<IQ", 7, 100) + b"fork")
    assert len({F.fork_sentinel(7, 100), F.fork_sentinel(8, 100), F.fork_sentinel(7, 101)}) == 3


@pytest.mark.parametrize("args", [(-1, 0), (2 ** 32, 0), (0, -1), (0, 2 ** 64)])
def test_sentinel_ranges(args):
    with pytest.raises(NetedgeError):
        F.fork_sentinel(*args)


def test_fork_genesis_and_chain():
    rec = F.ForkRecord.create(0xAAAA, 0xBBBB, 50, snapshot_seq=48)
    g = rec.fork_genesis
    assert rec.verify() and g.sequence == 0 and g.origin_hash == 0xBBBB
    assert g.parent_hash == F.fork_sentinel(0xAAAA, 50) and not g.is_genesis()
    b = rec.chain_builder()
    e1 = b.append(b"one")
    assert e1.sequence == 1 and e1.origin_hash == 0xBBBB and e1.parent_hash == g.forward_hash(b"")
    validate_chain_link(g, g.forward_hash(b""), e1)
    e2 = b.append(b"two")
    validate_chain_link(e1, e1.forward_hash(b"one"), e2)
    # the gateway's log of the fork, anchored at the fork genesis, accepts the forked chain
    log = EntityLog.from_snapshot(0xBBBB, 0, g, g.forward_hash(b""))
    log.append(ChainEvent(e1, b"one"))
    log.append(ChainEvent(e2, b"two"))
    assert log.head_seq() == 2


def test_fork_chain_is_not_the_parent_chain():
    """A fork genesis cannot pass as the parent's next link (different origin, sentinel parent)."""
    rec = F.ForkRecord.create(1, 2, 0)
    plain = CausalLink.genesis(2)
    with pytest.raises(ParentHashMismatch):
        validate_chain_link(plain, plain.forward_hash(b""), rec.chain_builder().append(b"x"))


@pytest.mark.parametrize("snap", [None, 0, 48, 2 ** 64 - 1])
def test_round_trip(snap):
    rec = F.ForkRecord.create(0x1A2B3C4D, 0x5E6F7081, 1000, snap)
    data = rec.to_bytes()
    assert len(data) == F.FORK_RECORD_SIZE == 49
    back = F.ForkRecord.from_bytes(data)
    assert back == rec and back.snapshot_seq == snap
    assert F.ForkRecord.from_bytes(bytearray(data)) == F.ForkRecord.from_bytes(memoryview(data)) == rec


def test_tampered_sentinel_fails_verify_and_from_bytes_runs_verify():
    rec = F.ForkRecord.create(1, 2, 10)
    bad = F.ForkRecord(1, 2, 10, CausalLink(2, 0, 0, rec.fork_genesis.parent_hash ^ 1))
    assert not bad.verify() and "sentinel" in bad.problem()
    with pytest.raises(F.ForkRecordInvalid):
        F.ForkRecord.from_bytes(bad.to_bytes())
    assert F.ForkRecord.from_bytes_unchecked(bad.to_bytes()) == bad


@pytest.mark.parametrize("mk", [
    lambda: F.ForkRecord(1, 1, 10, F.fork_genesis_link(1, 10, 1)),            # self-fork
    lambda: F.ForkRecord(1, 2, 10, F.fork_genesis_link(1, 10, 3)),            # genesis of another origin
    lambda: F.ForkRecord(1, 2, 10, CausalLink(2, 0, 1, F.fork_sentinel(1, 10))),  # seq != 0
    lambda: F.ForkRecord(1, 2, 11, F.fork_genesis_link(1, 10, 2)),            # other fork point
])
def test_verify_rules(mk):
    rec = mk()
    assert not rec.verify()
    with pytest.raises(F.ForkRecordInvalid):
        F.ForkRecord.from_bytes(rec.to_bytes())


def test_strict_flags():
    data = bytearray(F.ForkRecord.create(1, 2, 10).to_bytes())
    data[40] = 2
    with pytest.raises(F.ForkRecordFlag):
        F.ForkRecord.from_bytes_unchecked(bytes(data))
    data[40] = 0
    data[41] = 1
    with pytest.raises(F.ForkRecordFlag):
        F.ForkRecord.from_bytes(bytes(data))


@pytest.mark.parametrize("bad", [(-1, 2, 0), (1, 2 ** 32, 0), (1, 2, -1)])
def test_constructor_ranges(bad):
    o, f, s = bad
    with pytest.raises(NetedgeError):
        F.ForkRecord(o, f, s, CausalLink.genesis(0))
    with pytest.raises(NetedgeError):
        F.ForkRecord(1, 2, 0, b"not a link")


def test_errors_are_decode_errors():
    for cls in (F.ForkRecordLength, F.ForkRecordFlag, F.ForkRecordInvalid):
        assert issubclass(cls, F.ForkDecodeError) and issubclass(cls, DecodeError)


@given(st.binary(max_size=120))
def test_fuzz_random_bytes(data):
    for fn in (F.ForkRecord.from_bytes, F.ForkRecord.from_bytes_unchecked):
        try:
            rec = fn(data)
        except F.ForkDecodeError:
            continue
        assert rec.to_bytes() == data


@given(u32, u32, u64, st.one_of(st.none(), u64), st.integers(0, 48), st.binary(min_size=1, max_size=20))
def test_fuzz_truncation_and_oversize(p, f, s, snap, cut, extra):
    rec = F.ForkRecord.create(p, f, s, snap)
    data = rec.to_bytes()
    for bad in (data[:cut], data + extra):
        with pytest.raises(F.ForkRecordLength):
            F.ForkRecord.from_bytes(bad)
    if p != f:
        assert F.ForkRecord.from_bytes(data) == rec


@given(u32, u32, u64, st.integers(0, 48), st.integers(1, 255))
def test_fuzz_single_byte_flips_never_crash(p, f, s, pos, x):
    data = bytearray(F.ForkRecord.create(p, f, s, 5).to_bytes())
    data[pos] ^= x
    try:
        rec = F.ForkRecord.from_bytes(bytes(data))
    except F.ForkDecodeError:
        return
    assert rec.verify()  # a flip in snapshot_seq keeps a valid lineage
