"""ContinuityProof: 36 bytes that claim "origin O went from event A to event B".

Wire: origin_hash u32 | from_seq u64 | to_seq u64 | from_hash u64 | to_hash u64, where the hashes
are forward hashes H8(link || payload) of the events AT from_seq and to_seq.  A proof is checked
against the verifier's own copy of the chain by walking EVERY link in the range: an endpoint-only
check would accept a chain whose middle was rewritten.
"""
import struct

from .errors import DecodeError, NetedgeError

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

PROOF_SIZE = const(36)
MAX_PROOF_VERIFY_SPAN = const(100000)  # events walked per verify at most: bound the work a peer can ask
_FMT = "<IQQQQ"


class ProofError(NetedgeError):
    """Base of the typed verification failures (`code` is the wire code, docs/PROTOCOL.md)."""
    code = 0
    fields = ()

    def __init__(self, *values):
        self.values = values
        for k, v in zip(self.fields, values):
            setattr(self, k, v)
        super().__init__("%s(%s)" % (self.__class__.__name__, ", ".join(
            "%s=%d" % (k, v) for k, v in zip(self.fields, values))))

    def __eq__(self, other):
        return type(self) is type(other) and self.values == other.values


class ProofOriginMismatch(ProofError):
    code = 1
    fields = ("expected", "got")


class HashMismatch(ProofError):
    code = 2
    fields = ("seq", "expected", "got")


class MissingEvent(ProofError):
    code = 3
    fields = ("seq",)


class InvalidRange(ProofError):
    code = 4
    fields = ("from_seq", "to_seq")


class SpanTooLarge(ProofError):
    code = 5
    fields = ("from_seq", "to_seq", "cap")


class ContinuityProof:
    def __init__(self, origin_hash, from_seq, to_seq, from_hash, to_hash):
        self.origin_hash = origin_hash
        self.from_seq = from_seq
        self.to_seq = to_seq
        self.from_hash = from_hash
        self.to_hash = to_hash

    def to_bytes(self):
        return struct.pack(_FMT, self.origin_hash, self.from_seq, self.to_seq, self.from_hash, self.to_hash)

    @classmethod
    def from_bytes(cls, data):
        """Exactly 36 bytes; anything else (truncated, trailing bytes) is a DecodeError."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError("ContinuityProof: expected bytes")
        if len(data) != PROOF_SIZE:
            raise DecodeError("ContinuityProof: expected %d bytes, got %d" % (PROOF_SIZE, len(data)))
        return cls(*struct.unpack(_FMT, bytes(data)))

    @classmethod
    def from_events(cls, origin_hash, events):
        """Summarise a non-empty contiguous list of ChainEvents (None if empty)."""
        if not events:
            return None
        first, last = events[0], events[-1]
        return cls(origin_hash, first.link.sequence, last.link.sequence, first.forward, last.forward)

    @classmethod
    def from_log(cls, log, from_seq=None, to_seq=None):
        """Proof over the log's events (or the inclusive sub-range); None when nothing is there."""
        if from_seq is None and to_seq is None:
            events = log.events
        else:
            lo = log.events[0].link.sequence if (from_seq is None and log.events) else (from_seq or 0)
            hi = log.head_seq() if to_seq is None else to_seq
            events = log.range(lo, hi)
        return cls.from_events(log.origin_hash, events)

    def check_range(self, origin_hash, cap=MAX_PROOF_VERIFY_SPAN):
        """The cheap checks, before any event is fetched from storage."""
        if self.origin_hash != origin_hash:
            raise ProofOriginMismatch(origin_hash, self.origin_hash)
        if self.from_seq > self.to_seq:
            raise InvalidRange(self.from_seq, self.to_seq)
        if self.to_seq - self.from_seq >= cap:
            raise SpanTooLarge(self.from_seq, self.to_seq, cap)

    def verify_events(self, origin_hash, events, cap=MAX_PROOF_VERIFY_SPAN):
        """Verify against `events`, the verifier's own events for [from_seq, to_seq] in order
        (any iterable: the gateway streams them from SQLite).  Raises a ProofError subclass."""
        self.check_range(origin_hash, cap)
        prev = None
        for ev in events:
            seq = ev.link.sequence
            if prev is None:
                if seq != self.from_seq:
                    raise MissingEvent(self.from_seq)
                if ev.forward != self.from_hash:
                    raise HashMismatch(self.from_seq, self.from_hash, ev.forward)
            else:
                if seq != prev.link.sequence + 1:
                    raise MissingEvent(prev.link.sequence + 1)
                if ev.link.origin_hash != origin_hash:
                    raise ProofOriginMismatch(origin_hash, ev.link.origin_hash)
                if ev.link.parent_hash != prev.forward:
                    raise HashMismatch(seq, prev.forward, ev.link.parent_hash)
            prev = ev
            if seq >= self.to_seq:
                break
        if prev is None:
            raise MissingEvent(self.from_seq)
        if prev.link.sequence != self.to_seq:
            raise MissingEvent(self.to_seq if prev.link.sequence < self.to_seq else prev.link.sequence)
        if prev.forward != self.to_hash:
            raise HashMismatch(self.to_seq, self.to_hash, prev.forward)

    def verify_against(self, log, cap=MAX_PROOF_VERIFY_SPAN):
        self.check_range(log.origin_hash, cap)
        self.verify_events(log.origin_hash, log.range(self.from_seq, self.to_seq), cap)

    def __eq__(self, other):
        return isinstance(other, ContinuityProof) and self.to_bytes() == other.to_bytes()

    def __repr__(self):
        return "ContinuityProof(origin=%08x, %d..%d)" % (self.origin_hash, self.from_seq, self.to_seq)
