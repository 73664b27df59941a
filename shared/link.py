"""CausalLink (24 bytes) and the chain builder.  Validation (validate_chain_link) lives in
shared/chain.py, which a node never imports (heap); the errors in shared/chain_errors.py.

Wire: origin_hash u32 | horizon u32 | sequence u64 | parent_hash u64, little-endian, no padding.
next.parent_hash = H8(prev_link_bytes || prev_payload): the "forward hash" of the previous event.
"""
import hashlib
import struct

from .errors import DecodeError, NetedgeError

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

LINK_SIZE = const(24)
U32_MAX = const(0xFFFFFFFF)
U64_MAX = 0xFFFFFFFFFFFFFFFF  # a bignum on MicroPython: not a const()
_FMT = "<IIQQ"


def h8(data):
    """First 8 bytes of SHA-256(data) as u64 little-endian."""
    return struct.unpack("<Q", hashlib.sha256(data).digest()[:8])[0]


def forward_hash(link_bytes, payload):
    """H8(link_bytes || payload) without concatenating (payloads can be large on a node)."""
    h = hashlib.sha256(link_bytes)
    if payload:
        h.update(payload)
    return struct.unpack("<Q", h.digest()[:8])[0]


class CausalLink:
    """One event's position in its daemon's chain.  Immutable by convention."""

    def __init__(self, origin_hash, horizon, sequence, parent_hash):
        if not (0 <= origin_hash <= U32_MAX and 0 <= horizon <= U32_MAX
                and 0 <= sequence <= U64_MAX and 0 <= parent_hash <= U64_MAX):
            raise NetedgeError("CausalLink field out of range")
        self.origin_hash = origin_hash
        self.horizon = horizon
        self.sequence = sequence
        self.parent_hash = parent_hash

    @classmethod
    def genesis(cls, origin_hash, horizon=0):
        return cls(origin_hash, horizon, 0, 0)

    def is_genesis(self):
        return self.sequence == 0 and self.parent_hash == 0

    def to_bytes(self):
        return struct.pack(_FMT, self.origin_hash, self.horizon, self.sequence, self.parent_hash)

    @classmethod
    def from_bytes(cls, data):
        """Strict: exactly 24 bytes (a longer buffer is a framing bug, not a link)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError("CausalLink: expected bytes")
        if len(data) != LINK_SIZE:
            raise DecodeError("CausalLink: expected %d bytes, got %d" % (LINK_SIZE, len(data)))
        return cls(*struct.unpack(_FMT, bytes(data)))

    def forward_hash(self, payload=b""):
        """H8(this link || payload): the parent_hash the next link must carry."""
        return forward_hash(self.to_bytes(), payload)

    def next(self, payload, horizon=0):
        """The link that follows this one when this link's event carried `payload`."""
        if self.sequence >= U64_MAX:
            from .chain_errors import SequenceGap  # (lazily: a node loads it only here)
            raise SequenceGap(U64_MAX, self.sequence)
        return CausalLink(self.origin_hash, horizon, self.sequence + 1, self.forward_hash(payload))

    def __eq__(self, other):
        return (isinstance(other, CausalLink) and self.origin_hash == other.origin_hash
                and self.horizon == other.horizon and self.sequence == other.sequence
                and self.parent_hash == other.parent_hash)

    def __hash__(self):
        return hash((self.origin_hash, self.sequence, self.parent_hash))

    def __repr__(self):
        return "CausalLink(origin=%08x, horizon=%08x, seq=%d, parent=%016x)" % (
            self.origin_hash, self.horizon, self.sequence, self.parent_hash)


class ChainBuilder:
    """A daemon's chain head in O(1): the head link and the precomputed next parent hash.

    This is all a node keeps per chain (and writes to flash); the payloads are not retained.
    """

    def __init__(self, origin_hash, head=None, next_parent=None):
        if head is None:
            head = CausalLink.genesis(origin_hash)
            next_parent = head.forward_hash(b"")
        self.head = head
        self.next_parent = next_parent

    @classmethod
    def resume(cls, head, next_parent):
        """Continue after a restore, a reboot or a fork: origin comes from the head link."""
        return cls(head.origin_hash, head, next_parent)

    @property
    def origin_hash(self):
        return self.head.origin_hash

    @property
    def sequence(self):
        return self.head.sequence

    def append(self, payload, horizon=0):
        """Emit the next link for an event carrying `payload`; return the new link."""
        if self.head.sequence >= U64_MAX:
            from .chain_errors import SequenceGap  # (lazily: a node loads it only here)
            raise SequenceGap(U64_MAX, self.head.sequence)
        link = CausalLink(self.head.origin_hash, horizon, self.head.sequence + 1, self.next_parent)
        self.head = link
        self.next_parent = forward_hash(link.to_bytes(), payload)
        return link
