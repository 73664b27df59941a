"""origin_hash / replica_seed: derivations, validation, and the replica -> keypair -> origin chain."""
import hashlib
import struct

import pytest
from hypothesis import given, strategies as st
from nacl.signing import SigningKey

from netedge.shared import identity as I
from netedge.shared.errors import DecodeError, NetedgeError


def test_origin_is_first_4_bytes_le_of_tagged_sha256():
    pk = bytes(range(32))
    d = hashlib.sha256(b"netedge/origin/v1" + pk).digest()
    assert I.origin_hash(pk) == struct.unpack("<I", d[:4])[0]
    assert I.origin_hash(bytearray(pk)) == I.origin_hash(memoryview(pk)) == I.origin_hash(pk)


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33), bytes(64), "x" * 32, None, 32])
def test_origin_rejects_non_32_byte_keys(bad):
    with pytest.raises(I.InvalidPublicKey):
        I.origin_hash(bad)


def test_replica_seed_gives_same_keypair_and_origin_anywhere():
    group = bytes(range(32))
    seeds = [I.replica_seed(group, i) for i in range(4)]
    assert len(set(seeds)) == 4  # distinct members
    for i, seed in enumerate(seeds):
        assert seed == hashlib.sha256(b"netedge/replica/v1" + group + struct.pack("<H", i)).digest()
        # "another node" re-derives: same seed -> same keypair -> same origin
        a, b = SigningKey(seed), SigningKey(I.replica_seed(bytes(group), i))
        assert bytes(a.verify_key) == bytes(b.verify_key)
        assert I.origin_hash(bytes(a.verify_key)) == I.origin_hash(bytes(b.verify_key))
    assert I.replica_seed(b"\x01" + group[1:], 0) != seeds[0]


@pytest.mark.parametrize("index", [-1, 65536, 2 ** 64, 1.0, "1", None, True])
def test_replica_index_range(index):
    with pytest.raises(I.InvalidReplicaIndex):
        I.replica_seed(bytes(32), index)


def test_replica_index_bounds_accepted():
    assert len(I.replica_seed(bytes(32), 0)) == len(I.replica_seed(bytes(32), 65535)) == 32


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33), None, "a" * 32])
def test_group_seed_length(seed):
    with pytest.raises(I.InvalidGroupSeed):
        I.replica_seed(seed, 0)


def test_error_classes():
    assert issubclass(I.InvalidPublicKey, DecodeError) and issubclass(I.InvalidGroupSeed, DecodeError)
    assert issubclass(I.InvalidReplicaIndex, NetedgeError)


@given(st.binary(max_size=80))
def test_fuzz_origin(data):
    try:
        o = I.origin_hash(data)
    except I.InvalidPublicKey:
        assert len(data) != 32
    else:
        assert len(data) == 32 and 0 <= o < 2 ** 32
