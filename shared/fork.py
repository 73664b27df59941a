"""Forks: a new identity whose chain provably branches from a parent at fork_seq.

sentinel = H8(parent_origin u32 LE || fork_seq u64 LE || b"fork"); the fork's genesis link is
{origin: forked origin, horizon 0, seq 0, parent: sentinel}.  Anyone can recompute the sentinel, so a
ForkRecord is checkable without trusting its sender.  It is not a genesis-shaped link (parent != 0):
a fork is told apart from a fresh daemon by that.

ForkRecord wire, 49 bytes LE, no padding:
  original u32 | forked u32 | fork_seq u64 | fork_genesis 24 B | has_snapshot u8 (0/1) | snapshot_seq u64
snapshot_seq is 0 when has_snapshot is 0.  Keypair generation is the gateway's job, not shared code.
"""
import struct

from .errors import DecodeError, NetedgeError
from .link import CausalLink, ChainBuilder, LINK_SIZE, h8

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

FORK_RECORD_SIZE = const(49)
U64_MAX = 0xFFFFFFFFFFFFFFFF  # bignum on MicroPython: not a const()


class ForkDecodeError(DecodeError):
    """Base of ForkRecord decode failures."""


class ForkRecordLength(ForkDecodeError):
    """Not exactly 49 bytes."""


class ForkRecordFlag(ForkDecodeError):
    """has_snapshot not 0/1, or snapshot_seq non-zero while has_snapshot is 0."""


class ForkRecordInvalid(ForkDecodeError):
    """Well-formed bytes whose lineage does not verify (sentinel, origin, seq or self-fork)."""


def _u32(v):
    return isinstance(v, int) and 0 <= v <= 0xFFFFFFFF


def _u64(v):
    return isinstance(v, int) and 0 <= v <= U64_MAX


def fork_sentinel(parent_origin, fork_seq):
    if not (_u32(parent_origin) and _u64(fork_seq)):
        raise NetedgeError("fork_sentinel: origin must be u32, fork_seq u64")
    return h8(struct.pack("<IQ", parent_origin, fork_seq) + b"fork")


def fork_genesis_link(parent_origin, fork_seq, forked_origin):
    return CausalLink(forked_origin, 0, 0, fork_sentinel(parent_origin, fork_seq))


class ForkRecord:
    def __init__(self, original_origin, forked_origin, fork_seq, fork_genesis, snapshot_seq=None):
        if not (_u32(original_origin) and _u32(forked_origin) and _u64(fork_seq)
                and isinstance(fork_genesis, CausalLink) and (snapshot_seq is None or _u64(snapshot_seq))):
            raise NetedgeError("ForkRecord: field out of range")
        self.original_origin = original_origin
        self.forked_origin = forked_origin
        self.fork_seq = fork_seq
        self.fork_genesis = fork_genesis
        self.snapshot_seq = snapshot_seq

    @classmethod
    def create(cls, original_origin, forked_origin, fork_seq, snapshot_seq=None):
        """The record of a fork of `original_origin` at `fork_seq` into `forked_origin` (same
        argument order as the constructor; the genesis link is derived)."""
        return cls(original_origin, forked_origin, fork_seq,
                   fork_genesis_link(original_origin, fork_seq, forked_origin), snapshot_seq)

    def problem(self):
        """None when the lineage verifies, else a short reason (for logs and error frames)."""
        g = self.fork_genesis
        if self.original_origin == self.forked_origin:
            return "fork has its parent's origin"
        if g.origin_hash != self.forked_origin:
            return "genesis origin is not the forked origin"
        if g.sequence != 0:
            return "genesis sequence is not 0"
        if g.parent_hash != fork_sentinel(self.original_origin, self.fork_seq):
            return "genesis parent is not the fork sentinel"
        return None

    def verify(self):
        return self.problem() is None

    def chain_builder(self):
        return fork_chain_builder(self.fork_genesis)

    def to_bytes(self):
        has = self.snapshot_seq is not None
        return (struct.pack("<IIQ", self.original_origin, self.forked_origin, self.fork_seq)
                + self.fork_genesis.to_bytes()
                + struct.pack("<BQ", 1 if has else 0, self.snapshot_seq if has else 0))

    @classmethod
    def from_bytes_unchecked(cls, data):
        """Strict layout decode WITHOUT the lineage check (for diagnosing a bad record)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ForkRecordLength("ForkRecord: expected bytes")
        if len(data) != FORK_RECORD_SIZE:
            raise ForkRecordLength("ForkRecord: expected %d bytes, got %d" % (FORK_RECORD_SIZE, len(data)))
        data = bytes(data)
        orig, forked, seq = struct.unpack("<IIQ", data[:16])
        genesis = CausalLink.from_bytes(data[16:16 + LINK_SIZE])
        has, snap = struct.unpack("<BQ", data[16 + LINK_SIZE:])
        if has > 1:
            raise ForkRecordFlag("ForkRecord: has_snapshot must be 0 or 1, got %d" % has)
        if not has and snap:
            raise ForkRecordFlag("ForkRecord: snapshot_seq must be 0 when absent")
        return cls(orig, forked, seq, genesis, snap if has else None)

    @classmethod
    def from_bytes(cls, data):
        """Exact length, strict flags, AND a verified lineage (ForkRecordInvalid otherwise)."""
        rec = cls.from_bytes_unchecked(data)
        why = rec.problem()
        if why:
            raise ForkRecordInvalid("ForkRecord: " + why)
        return rec

    def __eq__(self, other):
        return isinstance(other, ForkRecord) and self.to_bytes() == other.to_bytes()

    def __repr__(self):
        return "ForkRecord(%08x -> %08x at seq %d, snapshot=%r)" % (
            self.original_origin, self.forked_origin, self.fork_seq, self.snapshot_seq)


def fork_chain_builder(fork_genesis):
    """The forked daemon's chain: event 1 has parent H8(fork_genesis || b"") (genesis payload is empty)."""
    return ChainBuilder.resume(fork_genesis, fork_genesis.forward_hash(b""))
