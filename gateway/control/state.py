"""The control plane's persisted state, as typed records: one dataclass per kind.

Every state machine the gateway resumes after a restart (a migration, a standby group, a fork,
a deploy, ...) and every fact it keeps for one (a node's boot id, a record's dedup key) is one
of the KINDS below.  The store keeps each in its own typed slot, `(kind, key)` -> JSON of
`to_obj()` (gateway/store.py, table `control_state`), and reads it back through `from_obj()`,
which refuses a row of the wrong shape (CorruptRow) instead of handing the orchestrator a map
it would trip over later.  The JSON shapes are the ones the gateway always wrote, so a database
made before the kinds were typed migrates by moving its rows (store.py MIGRATIONS step 2).

Field types are checked on read and on write: int (never bool), float (an int is taken), str,
bool, list, dict, an Optional of those, and for a group the members' map of Member records.
"""
import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..rows import CorruptRow

def _check(value, want, where):
    """`value` (a decoded JSON value) against the annotation `want`; the value, or CorruptRow."""
    if want is Any:
        return value
    origin = typing.get_origin(want)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(want) if a is not type(None)]
        return _check(value, inner, where)
    if origin in (list, List):
        if not isinstance(value, list):
            raise CorruptRow("%s must be a list, got %r" % (where, value))
        return value
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise CorruptRow("%s must be a map, got %r" % (where, value))
        _, vt = typing.get_args(want)
        if dataclasses.is_dataclass(vt):
            return {k: vt.from_obj(v, "%s[%r]" % (where, k)) for k, v in value.items()}
        return value
    if want is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif want is int:
        ok = type(value) is int
    else:
        ok = isinstance(value, want)
    if not ok:
        raise CorruptRow("%s must be %s, got %r" % (where, want.__name__, value))
    return value


_HINTS = {}  # record type -> its fields' annotations (resolved once)


class Typed:
    """Typed (de)serialisation of a dataclass to the JSON map the store keeps."""

    @classmethod
    def from_obj(cls, obj, where=None):
        where = where or cls.__name__
        if not isinstance(obj, dict):
            raise CorruptRow("%s must be a map, got %r" % (where, obj))
        hints = _HINTS.get(cls)
        if hints is None:
            hints = _HINTS[cls] = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        extra = set(obj) - names
        if extra:
            raise CorruptRow("%s has unknown fields %s" % (where, sorted(extra)))
        args = {}
        for f in dataclasses.fields(cls):
            if f.name in obj:
                args[f.name] = _check(obj[f.name], hints[f.name], "%s.%s" % (where, f.name))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise CorruptRow("%s lacks field %r" % (where, f.name))
        return cls(**args)

    def to_obj(self):
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, dict):
                v = {k: x.to_obj() if isinstance(x, Typed) else x for k, x in v.items()}
            out[f.name] = v
        self.from_obj(out)  # (the same checks as a read: nothing is stored that would not load)
        return out


# -- migration (control/migration.py) --------------------------------------------------------

@dataclass
class MigrationState(Typed):
    """A live migration in progress (kind `migrate`, key: the daemon's origin)."""
    m: int                 # the migration's operation id
    origin: int
    kind: str
    source: str
    target: str
    epoch: int             # the daemon's epoch at the request (the target runs at epoch + 1)
    step: str              # the phase (migration.PHASES)
    at: float              # wall stamp of the phase's start (control/clock.py)
    tries: int             # re-sends of the phase's command after the epoch bump
    phases: List[Any]      # [[phase, ms], ...] of the phases done
    client: Optional[str]  # who asked (None: nobody is waiting for the reply any more)
    rid: Any               # the request's id, echoed in the reply
    started: float
    seq: Optional[int] = None     # the snapshot's head seq, once stored
    keys: Optional[str] = None    # "pushing": the target's key slot is provisioned first
    down: List[str] = field(default_factory=list)  # parties seen down (their RAM may be gone)
    restored: bool = False        # T answered `restored`: the bump waits for the stored chain (seq)


@dataclass
class MigratedRecord(Typed):
    """The last completed migration of a daemon (kind `migrated`): ContinuityStatus Migrated."""
    kind: str
    migration_seq: int
    source_node: str
    target_node: str
    m: int
    at: float


@dataclass
class RecoveryState(Typed):
    """The host of a daemon whose migration was aborted after `freeze` (kind `recover`): it is
    log-replayed from the stored head and sent `go` until it answers `active`."""
    node: str
    m: int
    at: float = 0.0        # wall stamp of the last re-drive (control/clock.py)


# -- standby groups (control/standby.py) ------------------------------------------------------

@dataclass
class Member(Typed):
    role: str              # "active" | "standby"
    seq: Optional[int]     # the seq of the copy it keeps (None: unknown)
    up: bool


@dataclass
class GroupState(Typed):
    """A StandbyGroup (kind `group`, key: the origin of the daemon it runs)."""
    origin: int
    kind: str
    active: str
    step: str                      # standby.STEPS
    members: Dict[str, Member]
    sync_n: int
    sync_s: float
    sync: Optional[Dict[str, Any]]       # the sync in flight: {"m", "at"}
    last_sync: Optional[Dict[str, Any]]  # {"seq", "at"}
    keys: List[str]                # members whose key slot push is not done yet
    promo: Optional[Dict[str, Any]]      # the promotion in progress (standby._promote)
    promotions: List[Any]          # the last promotions, newest last
    client: Optional[str]
    rid: Any
    created: float
    at: float
    lost: Optional[Dict[str, Any]] = None  # the NodeCrash and the fork that continues it


# -- forks (control/fork.py) ------------------------------------------------------------------

@dataclass
class ForkState(Typed):
    """A fork in progress (kind `fork`): under the parent's origin while it is copied, then
    under the child's."""
    origin: int
    m: int
    step: str                  # fork.STEPS
    to: str
    kind: str
    client: Optional[str]
    rid: Any
    at: float
    why: str
    parent: Optional[int] = None     # (the child's state)
    fork_seq: Optional[int] = None
    rec: Optional[str] = None        # the re-rooted record, hex


@dataclass
class ForkLineage(Typed):
    """The finished fork that created a daemon (kind `forked`, key: the child's origin)."""
    parent: int
    fork_seq: int
    node: str
    why: str
    at: float


# -- deploys (control/core.py) ----------------------------------------------------------------

@dataclass
class DeployState(Typed):
    """A deploy in progress (kind `deploy`, key: the new daemon's origin)."""
    origin: int
    kind: str
    node: str
    epoch: int
    step: str              # "push_keys" | "activate"
    client: Optional[str]
    rid: Any
    started: float


# -- facts kept for the others -----------------------------------------------------------------

@dataclass
class NodeBoot(Typed):
    """A node's last boot id (kind `boot`, key: the node): tells a reboot from a reconnect."""
    id: int


@dataclass
class IssuedRecord(Typed):
    """A signed record's dedup key (kind `record`, key `<origin>:<fault>:...`: control/records.py)."""
    id: int
    at: int


@dataclass
class BranchTips(Typed):
    """Forward hashes of refused events per origin (kind `record_tips`): a diverging branch."""
    f: List[int]


@dataclass
class StoreOutage(Typed):
    """The gateway's last store outage that cleared (kind `outage`, key `store`: service.py)."""
    at: float              # wall time it began
    seconds: float         # how long it lasted
    retries: int           # the message retried this many times before it was stored
    faults: int            # store_faults counted so far
    error: Optional[str]   # the error the store gave


class OriginKey:
    """A daemon's origin (u32), stored as 8 hex digits (rows sort as the origins do)."""
    @staticmethod
    def text(origin):
        if type(origin) is not int or not 0 <= origin <= 0xFFFFFFFF:
            raise ValueError("an origin key must be a u32, got %r" % (origin,))
        return "%08x" % origin

    @staticmethod
    def parse(text):
        return int(text, 16)


class NameKey:
    """A node name, or a record's dedup key: text as is."""
    @staticmethod
    def text(name):
        if not isinstance(name, str) or not name:
            raise ValueError("a name key must be a non-empty str, got %r" % (name,))
        return name

    @staticmethod
    def parse(text):
        return text


class Kind:
    """A kind of persisted state: its name (the store's `kind` column), record type and key."""

    def __init__(self, name, record, key):
        self.name, self.record, self.key = name, record, key


KINDS = (
    Kind("migrate", MigrationState, OriginKey),
    Kind("migrated", MigratedRecord, OriginKey),
    Kind("recover", RecoveryState, OriginKey),
    Kind("group", GroupState, OriginKey),
    Kind("fork", ForkState, OriginKey),
    Kind("forked", ForkLineage, OriginKey),
    Kind("deploy", DeployState, OriginKey),
    Kind("boot", NodeBoot, NameKey),
    Kind("record", IssuedRecord, NameKey),
    Kind("record_tips", BranchTips, OriginKey),
    Kind("outage", StoreOutage, NameKey),
)
BY_NAME = {k.name: k for k in KINDS}
BY_RECORD = {k.record: k for k in KINDS}


def kind_of(record_type):
    """The Kind of a record type (KeyError: not a persisted kind)."""
    return BY_RECORD[record_type]
