"""Discontinuity: the honest record of where and why a daemon's chain stopped verifying.

Wire, 87 bytes LE, no padding (the exact bytes a signature will cover; a signature is appended
AFTER them, so this layout never changes):
  origin u32 | last_verified 24 B | has_failed u8 | failed_link 24 B | reason_code u8 | reason_sub u8
  | a u64 | b u64 | c u64 | detected_at u64 (ms)
Reasons (unused fields must be 0):  1 NodeCrash a=last_snapshot_seq
  2 ChainBreak sub=chain error code (chain.CHAIN_ERRORS), a=expected, b=got
  3 ConflictingChains a=seq, b=hash_a, c=hash_b (hash_a != hash_b)   4 Corruption
failed_link is all zeros iff has_failed is 0: a present all-zero link would be ambiguous on the wire.
"""
import struct

from .errors import DecodeError, NetedgeError
from .chain import CHAIN_ERRORS, ChainError
from .link import CausalLink, LINK_SIZE

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

DISCONTINUITY_SIZE = const(87)
NODE_CRASH = const(1)
CHAIN_BREAK = const(2)
CONFLICTING_CHAINS = const(3)
CORRUPTION = const(4)
U64_MAX = 0xFFFFFFFFFFFFFFFF  # bignum on MicroPython: not a const()
_ZERO_LINK = bytes(LINK_SIZE)
_TAIL = "<BBQQQQ"  # reason_code, reason_sub, a, b, c, detected_at


class DiscontinuityDecodeError(DecodeError):
    """Base of Discontinuity decode failures."""


class DiscontinuityLength(DiscontinuityDecodeError):
    """Not exactly 87 bytes."""


class UnknownReasonCode(DiscontinuityDecodeError):
    """reason_code not 1..4, or a ChainBreak sub-code that is not a known ChainError code."""


class NonZeroUnused(DiscontinuityDecodeError):
    """A field the reason does not use is not zero."""


class InvalidReason(DiscontinuityDecodeError):
    """Reason fields that are well-formed but meaningless (ConflictingChains with equal hashes)."""


class FailedLinkMismatch(DiscontinuityDecodeError):
    """has_failed not 0/1, or disagreeing with whether failed_link is all zeros."""


class LastVerifiedOriginMismatch(DiscontinuityDecodeError):
    """last_verified belongs to another origin."""


def _u64(v):
    return isinstance(v, int) and 0 <= v <= U64_MAX


class DiscontinuityReason:
    """Base: `code` plus the wire fields (sub, a, b, c)."""
    code = 0
    name = "?"

    def fields(self):
        return (0, 0, 0, 0)

    def to_obj(self):
        sub, a, b, c = self.fields()
        return {"code": self.code, "name": self.name, "sub": sub, "a": a, "b": b, "c": c}

    def __eq__(self, other):
        return type(self) is type(other) and self.fields() == other.fields()

    def __repr__(self):
        return "%s%r" % (self.name, self.fields())


class NodeCrash(DiscontinuityReason):
    code = NODE_CRASH
    name = "NodeCrash"

    def __init__(self, last_snapshot_seq):
        if not _u64(last_snapshot_seq):
            raise NetedgeError("NodeCrash: last_snapshot_seq must be u64")
        self.last_snapshot_seq = last_snapshot_seq

    def fields(self):
        return (0, self.last_snapshot_seq, 0, 0)


class ChainBreak(DiscontinuityReason):
    code = CHAIN_BREAK
    name = "ChainBreak"

    def __init__(self, chain_error):
        if not isinstance(chain_error, ChainError) or CHAIN_ERRORS.get(chain_error.code) is not type(chain_error):
            raise NetedgeError("ChainBreak: needs a chain.ChainError with a wire code")
        if not (_u64(chain_error.expected) and _u64(chain_error.got)):
            raise NetedgeError("ChainBreak: expected/got must be u64")
        self.chain_error = chain_error

    def fields(self):
        e = self.chain_error
        return (e.code, e.expected, e.got, 0)


class ConflictingChains(DiscontinuityReason):
    code = CONFLICTING_CHAINS
    name = "ConflictingChains"

    def __init__(self, seq, hash_a, hash_b):
        if not (_u64(seq) and _u64(hash_a) and _u64(hash_b)):
            raise NetedgeError("ConflictingChains: fields must be u64")
        if hash_a == hash_b:
            raise NetedgeError("ConflictingChains: equal hashes are not a conflict")
        self.seq = seq
        self.hash_a = hash_a
        self.hash_b = hash_b

    def fields(self):
        return (0, self.seq, self.hash_a, self.hash_b)


class Corruption(DiscontinuityReason):
    code = CORRUPTION
    name = "Corruption"


def _reason_from_wire(code, sub, a, b, c):
    """Rebuild a reason from its wire fields, checking that unused fields are zero."""
    if code == CHAIN_BREAK:
        cls = CHAIN_ERRORS.get(sub)
        if cls is None:
            raise UnknownReasonCode("ChainBreak: unknown chain error code %d" % sub)
        if c:
            raise NonZeroUnused("ChainBreak: field c must be 0")
        return ChainBreak(cls(a, b))
    if code == NODE_CRASH:
        used = (a,)
        unused = (sub, b, c)
    elif code == CONFLICTING_CHAINS:
        used = (a, b, c)
        unused = (sub,)
    elif code == CORRUPTION:
        used = ()
        unused = (sub, a, b, c)
    else:
        raise UnknownReasonCode("Discontinuity: unknown reason code %d" % code)
    for v in unused:
        if v:
            raise NonZeroUnused("Discontinuity: unused reason field is not 0")
    if code == NODE_CRASH:
        return NodeCrash(*used)
    if code == CORRUPTION:
        return Corruption()
    if b == c:
        raise InvalidReason("ConflictingChains: equal hashes")
    return ConflictingChains(*used)


class Discontinuity:
    def __init__(self, origin_hash, last_verified, failed_link, reason, detected_at):
        if not (isinstance(origin_hash, int) and 0 <= origin_hash <= 0xFFFFFFFF):
            raise NetedgeError("Discontinuity: origin must be u32")
        if not isinstance(last_verified, CausalLink) or last_verified.origin_hash != origin_hash:
            raise NetedgeError("Discontinuity: last_verified must be a link of this origin")
        if failed_link is not None and (not isinstance(failed_link, CausalLink)
                                        or failed_link.to_bytes() == _ZERO_LINK):
            raise NetedgeError("Discontinuity: failed_link must be a non-zero CausalLink or None")
        if not isinstance(reason, DiscontinuityReason) or not reason.code:
            raise NetedgeError("Discontinuity: reason must be a DiscontinuityReason")
        if not _u64(detected_at):
            raise NetedgeError("Discontinuity: detected_at must be u64 ms")
        self.origin_hash = origin_hash
        self.last_verified = last_verified
        self.failed_link = failed_link
        self.reason = reason
        self.detected_at = detected_at

    def to_bytes(self):
        sub, a, b, c = self.reason.fields()
        has = self.failed_link is not None
        return (struct.pack("<I", self.origin_hash) + self.last_verified.to_bytes()
                + (b"\x01" + self.failed_link.to_bytes() if has else b"\x00" + _ZERO_LINK)
                + struct.pack(_TAIL, self.reason.code, sub, a, b, c, self.detected_at))

    @classmethod
    def from_bytes(cls, data):
        """Exactly 87 bytes, every field checked; raises a DiscontinuityDecodeError subclass."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DiscontinuityLength("Discontinuity: expected bytes")
        if len(data) != DISCONTINUITY_SIZE:
            raise DiscontinuityLength("Discontinuity: expected %d bytes, got %d" % (DISCONTINUITY_SIZE, len(data)))
        data = bytes(data)
        origin = struct.unpack("<I", data[:4])[0]
        last = CausalLink.from_bytes(data[4:28])
        if last.origin_hash != origin:
            raise LastVerifiedOriginMismatch("Discontinuity: last_verified origin %08x != %08x" % (
                last.origin_hash, origin))
        has = data[28]
        fb = data[29:53]
        if has > 1 or (has == 1) == (fb == _ZERO_LINK):
            raise FailedLinkMismatch("Discontinuity: has_failed %d disagrees with failed_link" % has)
        code, sub, a, b, c, at = struct.unpack(_TAIL, data[53:])
        reason = _reason_from_wire(code, sub, a, b, c)
        return cls(origin, last, CausalLink.from_bytes(fb) if has else None, reason, at)

    def to_obj(self):
        """Plain data for status frames and logs (the signed form is to_bytes)."""
        return {"origin": self.origin_hash, "last_verified": self.last_verified.to_bytes(),
                "failed_link": self.failed_link.to_bytes() if self.failed_link else None,
                "reason": self.reason.to_obj(), "detected_at": self.detected_at}

    def __eq__(self, other):
        return isinstance(other, Discontinuity) and self.to_bytes() == other.to_bytes()

    def __repr__(self):
        return "Discontinuity(origin=%08x, last_verified_seq=%d, failed=%s, reason=%r, at=%d)" % (
            self.origin_hash, self.last_verified.sequence,
            "seq %d" % self.failed_link.sequence if self.failed_link else "none", self.reason, self.detected_at)
