"""The store's row types and deliberate errors, apart from gateway/store.py: the control plane
(gateway/control/) reads and handles them without importing sqlite3."""
from dataclasses import dataclass

from netedge.shared.errors import NetedgeError
from netedge.shared.link import CausalLink
from netedge.shared.status import SnapshotAnchor


class StoreError(NetedgeError):
    """Base of the store's deliberate errors."""


class SchemaTooNew(StoreError):
    def __init__(self, path, found, known):
        self.found, self.known = found, known
        super().__init__("%s has schema version %d but this netedge knows only up to %d: "
                         "upgrade netedge (never open a newer database with older code)" % (path, found, known))


class ConflictingEvent(StoreError):
    """A different event at an (origin, seq) already stored: two histories.  Nothing was written.

    `existing_forward` / `new_forward` are the forward hashes, ready for a ConflictingChains record.
    """

    def __init__(self, origin, seq, existing_link, new_link, existing_forward=None, new_forward=None):
        self.origin, self.seq = origin, seq
        self.existing_link, self.new_link = existing_link, new_link
        self.existing_forward, self.new_forward = existing_forward, new_forward
        super().__init__("ConflictingEvent: origin %08x seq %d already holds %r, refused %r" % (
            origin, seq, existing_link, new_link))


class ConflictingInput(StoreError):
    """The same input id (origin, sender, counter) with a different payload: a sender bug."""

    def __init__(self, origin, sender, counter):
        self.origin, self.sender, self.counter = origin, sender, counter
        super().__init__("ConflictingInput: origin %08x input (%r, %d) already logged with another payload"
                         % (origin, sender, counter))


class UnknownDaemon(StoreError):
    """A row for an origin with no `daemons` row (foreign key).  Nothing was written."""

    def __init__(self, origin):
        self.origin = origin
        super().__init__("UnknownDaemon: origin %08x is not a registered daemon" % origin)


class CorruptRow(StoreError):
    """A stored row that does not decode or disagrees with its own key columns."""


@dataclass(frozen=True)
class Node:
    node_id: str
    status: str
    info: dict
    last_seen: float
    updated: float


@dataclass(frozen=True)
class Daemon:
    origin: int
    kind: str
    public_key: bytes
    host_node: str
    epoch: int
    status: str
    continuity: dict  # ContinuityStatus.to_obj() or None
    created: float
    updated: float


@dataclass(frozen=True)
class Input:
    id: int  # arrival order; pass the last one replayed to inputs_after()
    origin: int
    sender: str
    counter: int
    payload: bytes
    received: float


@dataclass(frozen=True)
class Snapshot:
    origin: int
    seq: int
    data: bytes
    head_link: CausalLink  # None when not given
    head_forward: int
    taken: float

    def anchor(self):
        """The SnapshotAnchor for assess_continuity, or None if the head was not recorded."""
        if self.head_link is None or self.head_forward is None:
            return None
        return SnapshotAnchor(self.seq, self.head_link, self.head_forward)


@dataclass(frozen=True)
class Record:
    id: int
    kind: str
    origin: int
    body: bytes
    signature: bytes
    signer: bytes
    created: float
