"""ObservedHorizon: bloom bits, exact bounded seq map, overflow, snapshot objects."""
import hashlib
import random
import struct

import pytest
from hypothesis import given, settings, strategies as st

from netedge.shared import horizon as H
from netedge.shared.errors import DecodeError, NetedgeError
from netedge.shared.link import CausalLink

u32 = st.integers(0, 2 ** 32 - 1)
u64 = st.integers(0, 2 ** 64 - 1)


def ref_positions(o):
    h = int.from_bytes(hashlib.sha256(struct.pack("<I", o)).digest()[:8], "little")
    h1, h2 = h & 0xFFFFFFFF, (h >> 32) | 1
    return {((h1 + i * h2) % 2 ** 32) % 32 for i in range(3)}


@given(u32)
def test_three_distinct_bits_per_origin(o):
    m = H.origin_bits(o)
    assert bin(m).count("1") == 3  # h2 odd -> positions never coincide
    assert {i for i in range(32) if m >> i & 1} == ref_positions(o)


@given(st.lists(st.tuples(u32, u64), max_size=40))
def test_no_false_negatives_and_exact_max_seq(obs):
    hz = H.ObservedHorizon()
    for o, s in obs:
        hz.observe(o, s)
    enc = hz.encode()
    assert 0 <= enc < 2 ** 32
    CausalLink(1, enc, 1, 0)  # fits the link's horizon field
    best = {}
    for o, s in obs:
        best[o] = max(best.get(o, 0), s)
        assert H.might_contain(enc, o) and hz.might_contain(o)
    assert len(hz) <= hz.cap
    assert hz.overflowed == (len(best) > hz.cap)
    for o, s in hz.seqs.items():
        assert best[o] == s


def test_overflow_keeps_bloom_superset_and_reports():
    hz = H.ObservedHorizon(cap=2)
    assert hz.observe(10, 1) and hz.observe(20, 5)
    assert not hz.observe(30, 7)  # beyond the cap: bloom only
    assert hz.overflowed and hz.seq_of(30) is None and hz.might_contain(30)
    assert hz.observe(20, 9) and hz.seq_of(20) == 9  # tracked origins keep updating
    assert hz.observe(20, 2) and hz.seq_of(20) == 9  # max, not last
    assert H.ObservedHorizon.from_obj(hz.to_obj()) == hz


def test_empty_encodes_zero():
    assert H.ObservedHorizon().encode() == 0 and not H.might_contain(0, 5)


@pytest.mark.parametrize("bad", [(-1, 0), (2 ** 32, 0), (1, -1), (1, 2 ** 64), ("1", 0)])
def test_observe_validates(bad):
    with pytest.raises(NetedgeError):
        H.ObservedHorizon().observe(*bad)


@pytest.mark.parametrize("cap", [0, -1, H.MAX_CAP + 1, "3"])
def test_cap_validated(cap):
    with pytest.raises(NetedgeError):
        H.ObservedHorizon(cap)


def test_fpr_is_in_the_documented_ballpark():
    """Quick version of bench/horizon_fpr.py: 8 origins -> roughly 15 % (docs table)."""
    rng = random.Random(7)
    hits = asked = 0
    for _ in range(150):
        hz = H.ObservedHorizon()
        seen = {rng.getrandbits(32) for _ in range(8)}
        for o in seen:
            hz.observe(o, 0)
        for _ in range(40):
            o = rng.getrandbits(32)
            if o not in seen:
                asked += 1
                hits += H.might_contain(hz.encode(), o)
    assert 0.08 < hits / asked < 0.25


@given(st.lists(st.tuples(u32, u64), max_size=12), st.integers(1, 6))
def test_obj_round_trip(obs, cap):
    hz = H.ObservedHorizon(cap)
    for o, s in obs:
        hz.observe(o, s)
    obj = hz.to_obj()
    assert [p[0] for p in obj["origins"]] == sorted(hz.seqs)
    assert H.ObservedHorizon.from_obj(obj) == hz


json_like = st.recursive(st.none() | st.booleans() | st.integers(-2, 2 ** 65) | st.text(max_size=3),
                         lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=5),
                         max_leaves=12)


@given(json_like)
def test_fuzz_from_obj_typed_errors_only(obj):
    try:
        H.ObservedHorizon.from_obj(obj)
    except H.HorizonDecodeError:
        pass


@settings(max_examples=60)
@given(st.dictionaries(st.sampled_from(["cap", "bloom", "overflowed", "origins"]), json_like, min_size=4))
def test_fuzz_from_obj_right_keys(obj):
    try:
        H.ObservedHorizon.from_obj(obj)
    except H.HorizonDecodeError:
        pass


def test_decode_error_is_decode_error():
    assert issubclass(H.HorizonDecodeError, DecodeError)
