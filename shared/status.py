"""ContinuityStatus and the assessment of a daemon's log.

Continuous   every stored event follows its predecessor from an anchor (genesis or a snapshot)
Forked       some event does not follow its predecessor: a second history starts at fork_point
Unverifiable a gap (or no anchor) means nobody can say
Migrated     the daemon moved hosts (recorded by the orchestrator; the chain itself stays Continuous)
"""
from .link import CausalLink

CONTINUOUS = "Continuous"
FORKED = "Forked"
UNVERIFIABLE = "Unverifiable"
MIGRATED = "Migrated"

_FIELDS = {
    CONTINUOUS: ("genesis_hash", "head_seq", "head_hash"),
    FORKED: ("fork_point", "original_hash", "fork_hash"),
    UNVERIFIABLE: ("last_verified_seq", "gap_start"),
    MIGRATED: ("migration_seq", "source_node", "target_node"),
}


class ContinuityStatus:
    """A tagged value: `kind` plus that kind's fields (see _FIELDS)."""

    def __init__(self, kind, **fields):
        names = _FIELDS.get(kind)
        if names is None or sorted(fields) != sorted(names):
            raise ValueError("ContinuityStatus %r needs fields %r" % (kind, names))
        self.kind = kind
        self.fields = fields

    def __getattr__(self, name):
        fields = self.__dict__.get("fields") or {}
        if name in fields:
            return fields[name]
        raise AttributeError(name)

    def to_obj(self):
        """Plain map for CBOR/JSON status frames."""
        d = {"kind": self.kind}
        d.update(self.fields)
        return d

    @classmethod
    def from_obj(cls, d):
        d = dict(d)
        kind = d.pop("kind", None)
        return cls(kind, **d)

    def __eq__(self, other):
        return isinstance(other, ContinuityStatus) and self.kind == other.kind and self.fields == other.fields

    def __repr__(self):
        return "%s{%s}" % (self.kind, ", ".join("%s: %s" % (k, self.fields[k]) for k in _FIELDS[self.kind]))


def continuous(genesis_hash, head_seq, head_hash):
    return ContinuityStatus(CONTINUOUS, genesis_hash=genesis_hash, head_seq=head_seq, head_hash=head_hash)


def forked(fork_point, original_hash, fork_hash):
    return ContinuityStatus(FORKED, fork_point=fork_point, original_hash=original_hash, fork_hash=fork_hash)


def unverifiable(last_verified_seq, gap_start):
    return ContinuityStatus(UNVERIFIABLE, last_verified_seq=last_verified_seq, gap_start=gap_start)


def migrated(migration_seq, source_node, target_node):
    return ContinuityStatus(MIGRATED, migration_seq=migration_seq, source_node=source_node, target_node=target_node)


class SnapshotAnchor:
    """What a snapshot proves about the chain: its head link and the head event's forward hash.

    `head_forward` replaces the reference runtime's head *payload*: the next link's parent is
    H8(head link || head payload), which is all an anchor needs, and it is 8 bytes on a node.
    """

    def __init__(self, through_seq, head_link, head_forward):
        self.through_seq = through_seq
        self.head_link = head_link
        self.head_forward = head_forward


def _anchor(origin_hash, first_seq, snapshot):
    if first_seq == 1:
        # genesis anchors seq 1, whatever snapshot is offered
        return CausalLink.genesis(origin_hash).forward_hash(b"")
    if snapshot is None or snapshot.through_seq + 1 != first_seq:
        return None
    if snapshot.head_link.origin_hash != origin_hash or snapshot.head_link.sequence != snapshot.through_seq:
        return None  # a snapshot of another chain or another point anchors nothing
    return snapshot.head_forward


def assess_continuity(events, origin_hash, snapshot=None):
    """ContinuityStatus of `events` (a log's stored events, sequence order) of `origin_hash`.

    Anchors: the canonical genesis for an event at seq 1 (or a stored genesis event, seq 0,
    which the reference runtime leaves Unverifiable), else a SnapshotAnchor whose through_seq
    is the sequence just before the first event.
    """
    if not events:
        return continuous(0, 0, 0)
    first = events[0]
    f = first.link.sequence
    if f == 0:
        if not (first.link.is_genesis() and not first.payload):
            return forked(0, 0, first.link.parent_hash)
    else:
        expected = _anchor(origin_hash, f, snapshot)
        if expected is None:
            return unverifiable(0, 0)
        if first.link.parent_hash != expected:
            return forked(f, expected, first.link.parent_hash)
    prev = first
    for ev in events[1:]:
        seq = ev.link.sequence
        if seq != prev.link.sequence + 1:
            return unverifiable(prev.link.sequence, prev.link.sequence + 1)
        if ev.link.parent_hash != prev.forward:
            return forked(seq, prev.forward, ev.link.parent_hash)
        prev = ev
    return continuous(first.forward, prev.link.sequence, prev.forward)


def assess_log(log, snapshot=None):
    return assess_continuity(log.events, log.origin_hash, snapshot)
