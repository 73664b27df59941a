"""EntityLog: the gateway's copy of one daemon's chain (links + payloads), append-validated.

A node never holds this (it keeps only ChainBuilder's O(1) head); the gateway's durable store
feeds it.  Append rules follow the reference runtime: origin first, then duplicate, then the
chain link check against the current head.
"""
from .errors import NetedgeError
from .chain import OriginMismatch, ParentHashMismatch, validate_chain_link
from .link import CausalLink, forward_hash


class ChainEvent:
    """One emitted event: its link and payload.  `forward` = H8(link || payload)."""

    def __init__(self, link, payload=b""):
        self.link = link
        self.payload = bytes(payload)
        self.forward = forward_hash(link.to_bytes(), self.payload)

    @property
    def sequence(self):
        return self.link.sequence

    def __eq__(self, other):
        return isinstance(other, ChainEvent) and self.link == other.link and self.payload == other.payload

    def __repr__(self):
        return "ChainEvent(%r, %d bytes)" % (self.link, len(self.payload))


class Duplicate(NetedgeError):
    """An event at or below the head sequence: already in the log (QoS 1 redelivery)."""

    def __init__(self, seq):
        self.seq = seq
        super().__init__("Duplicate: seq %d is already in the log" % seq)

    def __eq__(self, other):
        return isinstance(other, Duplicate) and self.seq == other.seq


class EntityLog:
    """Events of one origin in sequence order, anchored at a base link.

    `base_link` / `base_forward` is the anchor the first stored event must follow: genesis for a
    fresh log, or a snapshot head after `from_snapshot` / `prune_through`.
    """

    def __init__(self, origin_hash):
        self.origin_hash = origin_hash
        self.base_link = CausalLink.genesis(origin_hash)
        self.base_forward = self.base_link.forward_hash(b"")
        self.snapshot_seq = 0
        self.events = []

    @classmethod
    def from_snapshot(cls, origin_hash, snapshot_seq, head_link, head_forward):
        """An empty log anchored at a snapshot head (head_forward = H8(head link || head payload))."""
        if head_link.origin_hash != origin_hash:
            raise OriginMismatch(origin_hash, head_link.origin_hash)
        log = cls(origin_hash)
        log.snapshot_seq = snapshot_seq
        log.base_link = head_link
        log.base_forward = head_forward
        return log

    def __len__(self):
        return len(self.events)

    def is_empty(self):
        return not self.events

    def head_link(self):
        return self.events[-1].link if self.events else self.base_link

    def head_forward(self):
        return self.events[-1].forward if self.events else self.base_forward

    def head_seq(self):
        return self.head_link().sequence

    def append(self, event):
        """Validate and append; raises OriginMismatch, Duplicate or a ChainError.  No change on error."""
        link = event.link
        if link.origin_hash != self.origin_hash:
            raise OriginMismatch(self.origin_hash, link.origin_hash)
        if self.events and link.sequence <= self.head_seq():
            raise Duplicate(link.sequence)
        if not self.events and self.base_link.is_genesis() and link.is_genesis():
            # The genesis event itself: only the canonical empty-payload genesis is accepted.
            if event.payload:
                raise ParentHashMismatch(0, 0)
            self.events.append(event)
            return
        if not self.events and link.sequence <= self.base_link.sequence:
            raise Duplicate(link.sequence)
        validate_chain_link(self.head_link(), self.head_forward(), link)
        self.events.append(event)

    def _index(self, seq):
        """Index of the first event with sequence >= seq (events are contiguous and sorted)."""
        if not self.events:
            return 0
        i = seq - self.events[0].link.sequence
        return 0 if i < 0 else min(i, len(self.events))

    def range(self, from_seq, to_seq):
        """Events with from_seq <= sequence <= to_seq (inclusive)."""
        if to_seq < from_seq:
            return []
        return self.events[self._index(from_seq):self._index(to_seq + 1)]

    def after(self, seq):
        return self.events[self._index(seq + 1):]

    def prune_through(self, seq):
        """Drop events with sequence <= seq; the last dropped one becomes the anchor.  A no-op
        prune changes nothing (snapshot_seq only moves when something was removed)."""
        n = self._index(seq + 1)
        if n == 0:
            return 0
        last = self.events[n - 1]
        self.base_link = last.link
        self.base_forward = last.forward
        if seq > self.snapshot_seq:
            self.snapshot_seq = seq
        del self.events[:n]
        return n
