"""The gateway's durable store: one SQLite file in WAL mode.

The gateway may be killed at any instant (`kill -9`, power cut on a Pi) and must restart into
a consistent state, so every write is a short transaction and nothing lives only in memory.

Tables (schema version 2; `PRAGMA user_version` holds the version, MIGRATIONS the steps):

  nodes           node_id PK, status online|offline|suspect, info (JSON: board, heap, kinds,
                  hosted daemons), last_seen, updated
  daemons         origin PK (u32), kind, public_key (32 B), host_node -> nodes, epoch, status,
                  continuity (JSON ContinuityStatus, kept current by ingestion), created, updated
  chain_events    (origin -> daemons, seq) PK, link (24 B), payload, epoch, received.
                  Append-only: an identical row is a QoS 1 redelivery (no-op), a different row at
                  an existing (origin, seq) raises ConflictingEvent and is never written.  Forward
                  hashes are NOT stored: they are recomputed on read, so a tampered row shows.
                  The store does not check chain links: ingestion validates with EntityLog first.
  inputs          id (arrival order, AUTOINCREMENT), origin -> daemons, sender, counter, payload,
                  received; UNIQUE(origin, sender, counter) = the input id: redelivery is a no-op.
  snapshots       (origin -> daemons, seq) PK, data, head_link (24 B) + head_forward (8 B LE,
                  optional: the SnapshotAnchor), taken.  The latest `snapshot_keep` per origin kept.
  records         id AUTOINCREMENT, kind (RECORD_KINDS), origin, body, signature, signer, created:
                  signed discontinuity / fork records, append-only evidence.
  control_state   (kind, key) PK, state (JSON), updated: the control plane's typed records
                  (gateway/control/state.py KINDS: state machines that resume on restart, and
                  the facts they keep); version 1 kept them in `orchestration`, keyed
                  "<kind>:<key>", which step 2 moves over.
  keys            origin PK, kind, public_key UNIQUE, sealed (SecretBox nonce+ciphertext of the
                  ed25519 seed), created.  Only gateway/keystore.py reads or writes it.
  gateway_identity  single row (id = 1): the gateway's signing key, sealed like `keys`.

Durability: `synchronous=FULL`.  With WAL, NORMAL already survives a process kill (committed
pages are in the OS cache), but a power cut may lose the last commits.  The gateway PUBACKs a
QoS 1 message once it is stored; an event lost after its PUBACK is lost for good (invariant 1),
and power loss is the common failure of a Pi.  So each commit is fsynced; batch with
`transaction()` where throughput matters (one fsync per batch).

Threads: one connection (`check_same_thread=False`) behind an RLock.  The asyncio thread and
paho's network thread may both call any method; each call (or `transaction()` block) holds the
lock for its duration.  Generators (`events`, `inputs_after`) take the lock per chunk, never
across a `yield`, so an abandoned generator cannot block the other thread.  Other processes
(the `netedge` CLI) may open the same file: WAL lets them read while the gateway writes, and
`busy_timeout` makes writers wait instead of failing.
"""
import contextlib
import json
import os
import sqlite3
import threading
import time

from netedge.shared.errors import NetedgeError
from netedge.shared.link import CausalLink
from netedge.shared.log import ChainEvent, EntityLog

from .control import state as CS
from .rows import (ConflictingEvent, ConflictingInput, CorruptRow, Daemon, Input, Node, Record,  # noqa: F401
                   SchemaTooNew, Snapshot, StoreError, UnknownDaemon)

I64_MAX = (1 << 63) - 1  # SQLite INTEGER is signed 64-bit: the largest storable seq / counter
U32_MAX = 0xFFFFFFFF
NODE_STATUSES = ("online", "offline", "suspect")
RECORD_KINDS = ("discontinuity", "fork")  # checked in Python: extending it needs no table rebuild
CHUNK = 512  # rows fetched per lock hold by the streaming generators
BUSY_TIMEOUT_S = 5.0
# The gateway's store outages (gateway/service.py retries a message whose writes did not commit):
# the one going on is a JSON file beside the database (the database may be what fails), the last
# one that cleared a StoreOutage state record under this key; the status read model shows both.
STORE_FAULT_SUFFIX = ".fault"
STORE_OUTAGE_KEY = "store"

# Ordered migration steps; step i brings the schema from version i to i + 1, in one transaction.
# Never edit a released step: append a new one.
MIGRATIONS = (
    (  # 1: initial schema
        """CREATE TABLE nodes (
            node_id   TEXT PRIMARY KEY,
            status    TEXT NOT NULL CHECK (status IN ('online', 'offline', 'suspect')),
            info      TEXT NOT NULL DEFAULT '{}',
            last_seen REAL,
            updated   REAL NOT NULL)""",
        """CREATE TABLE daemons (
            origin     INTEGER PRIMARY KEY CHECK (origin BETWEEN 0 AND 4294967295),
            kind       TEXT NOT NULL,
            public_key BLOB NOT NULL UNIQUE CHECK (length(public_key) = 32),
            host_node  TEXT REFERENCES nodes (node_id),
            epoch      INTEGER NOT NULL DEFAULT 0 CHECK (epoch >= 0),
            status     TEXT NOT NULL,
            continuity TEXT,
            created    REAL NOT NULL,
            updated    REAL NOT NULL)""",
        "CREATE INDEX daemons_by_host ON daemons (host_node)",
        """CREATE TABLE chain_events (
            origin   INTEGER NOT NULL REFERENCES daemons (origin),
            seq      INTEGER NOT NULL CHECK (seq >= 0),
            link     BLOB NOT NULL CHECK (length(link) = 24),
            payload  BLOB NOT NULL,
            epoch    INTEGER NOT NULL DEFAULT 0,
            received REAL NOT NULL,
            PRIMARY KEY (origin, seq)) WITHOUT ROWID""",
        """CREATE TABLE inputs (
            id       INTEGER PRIMARY KEY AUTOINCREMENT,
            origin   INTEGER NOT NULL REFERENCES daemons (origin),
            sender   TEXT NOT NULL,
            counter  INTEGER NOT NULL CHECK (counter >= 0),
            payload  BLOB NOT NULL,
            received REAL NOT NULL,
            UNIQUE (origin, sender, counter))""",
        "CREATE INDEX inputs_by_origin ON inputs (origin, id)",
        """CREATE TABLE snapshots (
            origin       INTEGER NOT NULL REFERENCES daemons (origin),
            seq          INTEGER NOT NULL CHECK (seq >= 0),
            data         BLOB NOT NULL,
            head_link    BLOB CHECK (head_link IS NULL OR length(head_link) = 24),
            head_forward BLOB CHECK (head_forward IS NULL OR length(head_forward) = 8),
            taken        REAL NOT NULL,
            PRIMARY KEY (origin, seq))""",
        """CREATE TABLE records (
            id        INTEGER PRIMARY KEY AUTOINCREMENT,
            kind      TEXT NOT NULL,
            origin    INTEGER NOT NULL,
            body      BLOB NOT NULL,
            signature BLOB NOT NULL,
            signer    BLOB NOT NULL,
            created   REAL NOT NULL)""",
        "CREATE INDEX records_by_origin ON records (origin, id)",
        """CREATE TABLE orchestration (
            key     TEXT PRIMARY KEY,
            state   TEXT NOT NULL,
            updated REAL NOT NULL)""",
        """CREATE TABLE keys (
            origin     INTEGER PRIMARY KEY CHECK (origin BETWEEN 0 AND 4294967295),
            kind       TEXT NOT NULL,
            public_key BLOB NOT NULL UNIQUE CHECK (length(public_key) = 32),
            sealed     BLOB NOT NULL,
            created    REAL NOT NULL)""",
        """CREATE TABLE gateway_identity (
            id         INTEGER PRIMARY KEY CHECK (id = 1),
            public_key BLOB NOT NULL CHECK (length(public_key) = 32),
            sealed     BLOB NOT NULL,
            created    REAL NOT NULL)""",
    ),
    (  # 2: control state as typed records: (kind, key) instead of one key with a string prefix
        """CREATE TABLE control_state (
            kind    TEXT NOT NULL,
            key     TEXT NOT NULL,
            state   TEXT NOT NULL,
            updated REAL NOT NULL,
            PRIMARY KEY (kind, key)) WITHOUT ROWID""",
        # version 1's keys were "<kind>:<key>"; a record's branch tips were "record:<origin>:tips"
        """INSERT INTO control_state (kind, key, state, updated)
            SELECT CASE WHEN key LIKE 'record:%:tips' THEN 'record_tips'
                        ELSE substr(key, 1, instr(key, ':') - 1) END,
                   CASE WHEN key LIKE 'record:%:tips' THEN substr(key, 8, length(key) - 12)
                        ELSE substr(key, instr(key, ':') + 1) END,
                   state, updated
            FROM orchestration WHERE instr(key, ':') > 1""",
        "DROP TABLE orchestration",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def _check_u32(v, what="origin"):
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= U32_MAX:
        raise StoreError("%s must be a u32, got %r" % (what, v))


def _check_i64(v, what):
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= I64_MAX:
        raise StoreError("%s must be an int in 0..2^63-1, got %r" % (what, v))


def _json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _is_fk_error(e):
    return isinstance(e, sqlite3.IntegrityError) and "FOREIGN KEY" in str(e)


class Store:
    def __init__(self, path, snapshot_keep=3, synchronous="FULL", clock=time.time):
        self.path = os.fspath(path)
        self.snapshot_keep = snapshot_keep
        self._clock = clock
        self._lock = threading.RLock()
        self._depth = 0  # transaction nesting; only the lock holder touches it
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (the sqlite3 module's implicit
        # transactions would otherwise split or merge our units of work).
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        try:
            try:
                mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            except sqlite3.DatabaseError as e:
                raise StoreError("%s is not a usable SQLite database (%s)" % (self.path, e)) from e
            if mode.lower() != "wal":
                raise StoreError("%s: cannot enable WAL (journal_mode=%s)" % (self.path, mode))
            if synchronous not in ("FULL", "NORMAL", "EXTRA"):
                raise StoreError("synchronous must be FULL, NORMAL or EXTRA")
            self._db.execute("PRAGMA synchronous=" + synchronous)
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    # -- lifecycle -----------------------------------------------------------------------

    def _migrate(self):
        found = self._db.execute("PRAGMA user_version").fetchone()[0]
        if found > len(MIGRATIONS):
            raise SchemaTooNew(self.path, found, len(MIGRATIONS))
        if found == len(MIGRATIONS):
            return  # up to date: no write lock (a reader such as `netedge status` must open a locked store)
        while True:
            with self.transaction():
                # Re-read under the write lock: another process may have migrated meanwhile.
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                if version > len(MIGRATIONS):
                    raise SchemaTooNew(self.path, version, len(MIGRATIONS))
                if version == len(MIGRATIONS):
                    return
                for stmt in MIGRATIONS[version]:
                    self._db.execute(stmt)
                # user_version lives in the file header and is part of this transaction.
                self._db.execute("PRAGMA user_version=%d" % (version + 1))

    @property
    def schema_version(self):
        with self._lock:
            return self._db.execute("PRAGMA user_version").fetchone()[0]

    def close(self):
        with self._lock:
            self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def integrity_check(self):
        """'ok' or SQLite's list of problems as one string."""
        with self._lock:
            rows = self._db.execute("PRAGMA integrity_check").fetchall()
        return "\n".join(r[0] for r in rows)

    @contextlib.contextmanager
    def transaction(self):
        """One atomic unit.  Nests (inner blocks are savepoints); holds the lock throughout.

        BEGIN IMMEDIATE takes SQLite's write lock up front, so a read-then-write inside the
        block cannot fail half-way with SQLITE_BUSY against another process.
        """
        with self._lock:
            depth = self._depth
            self._db.execute("BEGIN IMMEDIATE" if depth == 0 else "SAVEPOINT sp%d" % depth)
            self._depth = depth + 1
            try:
                yield self
            except BaseException:
                self._depth = depth
                if depth == 0:
                    self._db.execute("ROLLBACK")
                else:
                    self._db.execute("ROLLBACK TO sp%d" % depth)
                    self._db.execute("RELEASE sp%d" % depth)
                raise
            self._depth = depth
            if depth:
                self._db.execute("RELEASE sp%d" % depth)
                return
            try:
                self._db.execute("COMMIT")
            except BaseException:
                # e.g. disk full: never leave a half-open transaction behind for the next caller
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def execute(self, sql, params=()):
        """A write statement in its own (or the enclosing) transaction; returns the cursor."""
        with self.transaction():
            return self._db.execute(sql, params)

    def query(self, sql, params=()):
        """A read statement; returns all rows (use only for small results)."""
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _one(self, sql, params=()):
        with self._lock:
            return self._db.execute(sql, params).fetchone()

    # -- nodes ---------------------------------------------------------------------------

    def upsert_node(self, node_id, status, info=None, last_seen=None):
        """Insert or update a node; `info` / `last_seen` left as they were when None."""
        if status not in NODE_STATUSES:
            raise StoreError("node status must be one of %s, got %r" % (NODE_STATUSES, status))
        now = self._clock()
        self.execute(
            "INSERT INTO nodes (node_id, status, info, last_seen, updated) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (node_id) DO UPDATE SET status = excluded.status,"
            " info = CASE WHEN ? THEN excluded.info ELSE info END,"
            " last_seen = COALESCE(excluded.last_seen, last_seen), updated = excluded.updated",
            (node_id, status, _json(info or {}), last_seen, now, info is not None))

    def node(self, node_id):
        r = self._one("SELECT node_id, status, info, last_seen, updated FROM nodes WHERE node_id = ?", (node_id,))
        return None if r is None else Node(r[0], r[1], json.loads(r[2]), r[3], r[4])

    def nodes(self, status=None):
        sql = "SELECT node_id, status, info, last_seen, updated FROM nodes"
        rows = self.query(sql + " ORDER BY node_id") if status is None else \
            self.query(sql + " WHERE status = ? ORDER BY node_id", (status,))
        return [Node(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    # -- daemons -------------------------------------------------------------------------

    _DAEMON_COLS = "origin, kind, public_key, host_node, epoch, status, continuity, created, updated"

    @staticmethod
    def _daemon(r):
        return Daemon(r[0], r[1], bytes(r[2]), r[3], r[4], r[5],
                      None if r[6] is None else json.loads(r[6]), r[7], r[8])

    def add_daemon(self, origin, kind, public_key, host_node=None, epoch=0, status="created"):
        """Register a daemon.  Its origin must be new (the keystore already refused collisions)."""
        _check_u32(origin)
        now = self._clock()
        try:
            self.execute("INSERT INTO daemons (origin, kind, public_key, host_node, epoch, status, created, updated)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (origin, kind, bytes(public_key), host_node, epoch, status, now, now))
        except sqlite3.IntegrityError as e:
            if _is_fk_error(e):
                raise StoreError("unknown host node %r" % host_node) from None
            raise StoreError("daemon %08x: %s" % (origin, e)) from None

    _UPDATABLE = ("kind", "host_node", "epoch", "status", "continuity")

    def update_daemon(self, origin, **fields):
        """Change some of kind, host_node, epoch, status, continuity (a ContinuityStatus map)."""
        bad = set(fields) - set(self._UPDATABLE)
        if bad or not fields:
            raise StoreError("update_daemon: fields must be among %s" % (self._UPDATABLE,))
        if "continuity" in fields and fields["continuity"] is not None:
            fields["continuity"] = _json(fields["continuity"])
        names = sorted(fields)
        sql = "UPDATE daemons SET %s, updated = ? WHERE origin = ?" % ", ".join("%s = ?" % n for n in names)
        try:
            cur = self.execute(sql, [fields[n] for n in names] + [self._clock(), origin])
        except sqlite3.IntegrityError as e:
            raise StoreError("daemon %08x: %s" % (origin, e)) from None
        if cur.rowcount == 0:
            raise UnknownDaemon(origin)

    def bump_epoch(self, origin):
        """Atomically increment the daemon's epoch (every activation does); returns the new epoch."""
        with self.transaction():
            r = self._db.execute("UPDATE daemons SET epoch = epoch + 1, updated = ? WHERE origin = ?"
                                 " RETURNING epoch", (self._clock(), origin)).fetchone()
        if r is None:
            raise UnknownDaemon(origin)
        return r[0]

    def daemon(self, origin):
        r = self._one("SELECT %s FROM daemons WHERE origin = ?" % self._DAEMON_COLS, (origin,))
        return None if r is None else self._daemon(r)

    def daemons(self, host_node=None, status=None):
        where, params = [], []
        if host_node is not None:
            where.append("host_node = ?")
            params.append(host_node)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        sql = "SELECT %s FROM daemons%s ORDER BY origin" % (
            self._DAEMON_COLS, " WHERE " + " AND ".join(where) if where else "")
        return [self._daemon(r) for r in self.query(sql, params)]

    # -- chain events --------------------------------------------------------------------

    def append_event(self, event, epoch=0, received=None):
        """Store one ChainEvent.  True if written, False if the identical row was already there
        (QoS 1 redelivery).  Raises ConflictingEvent (nothing written) or UnknownDaemon."""
        with self.transaction():
            return self._append(event, epoch, self._clock() if received is None else received)

    def append_events(self, events, epoch=0, received=None):
        """Append many in ONE transaction (one fsync); returns how many were new.  All or nothing:
        a ConflictingEvent or UnknownDaemon rolls the whole batch back."""
        received = self._clock() if received is None else received
        with self.transaction():
            return sum(self._append(ev, epoch, received) for ev in events)

    def _append(self, event, epoch, received):
        link = event.link
        _check_i64(link.sequence, "sequence")
        link_bytes = link.to_bytes()
        try:
            cur = self._db.execute(
                "INSERT INTO chain_events (origin, seq, link, payload, epoch, received)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (origin, seq) DO NOTHING",
                (link.origin_hash, link.sequence, link_bytes, event.payload, epoch, received))
        except sqlite3.IntegrityError as e:
            if _is_fk_error(e):
                raise UnknownDaemon(link.origin_hash) from None
            raise
        if cur.rowcount == 1:
            return True
        old_link, old_payload = self._db.execute(
            "SELECT link, payload FROM chain_events WHERE origin = ? AND seq = ?",
            (link.origin_hash, link.sequence)).fetchone()
        if bytes(old_link) == link_bytes and bytes(old_payload) == event.payload:
            return False
        old = self._event(link.origin_hash, link.sequence, old_link, old_payload)
        raise ConflictingEvent(link.origin_hash, link.sequence, old.link, link, old.forward, event.forward)

    @staticmethod
    def _event(origin, seq, link_bytes, payload):
        try:
            link = CausalLink.from_bytes(link_bytes)
        except NetedgeError:
            raise CorruptRow("chain_events (%08x, %d): link is not a CausalLink" % (origin, seq)) from None
        if link.origin_hash != origin or link.sequence != seq:
            raise CorruptRow("chain_events (%08x, %d): row holds %r" % (origin, seq, link))
        return ChainEvent(link, payload)

    def events(self, origin, from_seq=0, to_seq=I64_MAX):
        """ChainEvents of `origin` with from_seq <= seq <= to_seq, in seq order, streamed CHUNK
        rows at a time (memory stays flat over a 100 000-event proof).  Raises CorruptRow on a
        row whose link disagrees with its key."""
        _check_u32(origin)
        if not isinstance(from_seq, int) or not isinstance(to_seq, int) or from_seq < 0:
            raise StoreError("events: from_seq and to_seq must be non-negative ints")
        # u64 bounds from a proof: nothing is stored above I64_MAX, so clamp (an empty stream
        # then makes the proof fail with MissingEvent, its typed error, not an OverflowError).
        return self._stream_events(origin, from_seq, min(to_seq, I64_MAX))

    def _stream_events(self, origin, next_seq, to_seq):
        while next_seq <= to_seq:
            # Keyset pagination: each chunk is its own short read, so no lock or cursor is held
            # while the caller works on the events (rows are append-only: pages cannot shift).
            with self._lock:
                rows = self._db.execute(
                    "SELECT seq, link, payload FROM chain_events WHERE origin = ? AND seq >= ? AND seq <= ?"
                    " ORDER BY seq LIMIT ?", (origin, next_seq, to_seq, CHUNK)).fetchall()
            for seq, link, payload in rows:
                yield self._event(origin, seq, link, payload)
            if len(rows) < CHUNK:
                return
            next_seq = rows[-1][0] + 1

    def event(self, origin, seq):
        r = self._one("SELECT link, payload FROM chain_events WHERE origin = ? AND seq = ?", (origin, seq))
        return None if r is None else self._event(origin, seq, r[0], r[1])

    def head(self, origin):
        """The stored event with the highest seq, or None."""
        r = self._one("SELECT seq, link, payload FROM chain_events WHERE origin = ? ORDER BY seq DESC LIMIT 1",
                      (origin,))
        return None if r is None else self._event(origin, *r)

    def event_count(self, origin):
        return self._one("SELECT count(*) FROM chain_events WHERE origin = ?", (origin,))[0]

    def tail_log(self, origin):
        """An EntityLog anchored at the stored head (or genesis): validate the next incoming
        events with it before `append_event`, without loading the chain into memory."""
        h = self.head(origin)
        if h is None:
            return EntityLog(origin)
        return EntityLog.from_snapshot(origin, h.sequence, h.link, h.forward)

    # -- inputs --------------------------------------------------------------------------

    def log_input(self, origin, sender, counter, payload, received=None):
        """Log an input sent to a daemon's inbox.  Returns its arrival id if new, None if the
        identical input was already logged (redelivery).  Raises ConflictingInput / UnknownDaemon."""
        _check_u32(origin)
        _check_i64(counter, "counter")
        payload = bytes(payload)
        with self.transaction():
            # look first: an INSERT that conflicts would still consume an AUTOINCREMENT id
            old = self._db.execute("SELECT payload FROM inputs WHERE origin = ? AND sender = ? AND counter = ?",
                                   (origin, sender, counter)).fetchone()
            if old is None:
                try:
                    cur = self._db.execute(
                        "INSERT INTO inputs (origin, sender, counter, payload, received) VALUES (?, ?, ?, ?, ?)",
                        (origin, sender, counter, payload, self._clock() if received is None else received))
                except sqlite3.IntegrityError as e:
                    if _is_fk_error(e):
                        raise UnknownDaemon(origin) from None
                    raise
                return cur.lastrowid
        if bytes(old[0]) != payload:
            raise ConflictingInput(origin, sender, counter)
        return None

    def input_of(self, origin, sender, counter):
        """The logged input with this id (None when the log lacks it)."""
        r = self._one("SELECT id, origin, sender, counter, payload, received FROM inputs"
                      " WHERE origin = ? AND sender = ? AND counter = ?", (origin, sender, counter))
        return None if r is None else Input(r[0], r[1], r[2], r[3], bytes(r[4]), r[5])

    def last_input_id(self, origin):
        """The arrival id of the newest logged input of `origin` (0: none)."""
        _check_u32(origin)
        r = self._one("SELECT max(id) FROM inputs WHERE origin = ?", (origin,))
        return r[0] or 0

    def inputs_after(self, origin, after_id=0):
        """Inputs of `origin` logged after arrival id `after_id`, in arrival order (streamed):
        what a promoted standby or restarted host replays."""
        _check_u32(origin)
        return self._stream_inputs(origin, after_id)

    def _stream_inputs(self, origin, after_id):
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT id, origin, sender, counter, payload, received FROM inputs"
                    " WHERE origin = ? AND id > ? ORDER BY id LIMIT ?", (origin, after_id, CHUNK)).fetchall()
            for r in rows:
                yield Input(r[0], r[1], r[2], r[3], bytes(r[4]), r[5])
            if len(rows) < CHUNK:
                return
            after_id = rows[-1][0]

    def trim_inputs(self, origin, keep):
        """Keep only the newest `keep` inputs of `origin`; returns how many were dropped."""
        return self.execute("DELETE FROM inputs WHERE origin = ? AND id <= (SELECT id FROM inputs WHERE origin = ?"
                            " ORDER BY id DESC LIMIT 1 OFFSET ?)", (origin, origin, keep)).rowcount

    def prune_inputs(self, origin, through_id):
        """Forget inputs up to `through_id` once a durable snapshot covers them; returns the count."""
        return self.execute("DELETE FROM inputs WHERE origin = ? AND id <= ?", (origin, through_id)).rowcount

    # -- snapshots -----------------------------------------------------------------------

    def put_snapshot(self, origin, seq, data, head_link=None, head_forward=None, taken=None, keep=None):
        """Store a snapshot taken at chain seq `seq` (same seq again: the newer replaces it),
        then drop all but the latest `keep` (default `snapshot_keep`) of this origin."""
        _check_u32(origin)
        _check_i64(seq, "seq")
        keep = self.snapshot_keep if keep is None else keep
        if keep < 1:
            raise StoreError("keep must be >= 1")
        hl = None if head_link is None else head_link.to_bytes()
        hf = None if head_forward is None else head_forward.to_bytes(8, "little")
        with self.transaction():
            try:
                self._db.execute("INSERT OR REPLACE INTO snapshots (origin, seq, data, head_link, head_forward, taken)"
                                 " VALUES (?, ?, ?, ?, ?, ?)",
                                 (origin, seq, bytes(data), hl, hf, self._clock() if taken is None else taken))
            except sqlite3.IntegrityError as e:
                if _is_fk_error(e):
                    raise UnknownDaemon(origin) from None
                raise
            self._db.execute("DELETE FROM snapshots WHERE origin = ? AND seq NOT IN"
                             " (SELECT seq FROM snapshots WHERE origin = ? ORDER BY seq DESC LIMIT ?)",
                             (origin, origin, keep))

    @staticmethod
    def _snapshot(r):
        hl = None if r[3] is None else CausalLink.from_bytes(r[3])
        hf = None if r[4] is None else int.from_bytes(r[4], "little")
        return Snapshot(r[0], r[1], bytes(r[2]), hl, hf, r[5])

    def latest_snapshot(self, origin):
        r = self._one("SELECT origin, seq, data, head_link, head_forward, taken FROM snapshots"
                      " WHERE origin = ? ORDER BY seq DESC LIMIT 1", (origin,))
        return None if r is None else self._snapshot(r)

    def snapshots(self, origin):
        """All kept snapshots of `origin`, newest first."""
        return [self._snapshot(r) for r in self.query(
            "SELECT origin, seq, data, head_link, head_forward, taken FROM snapshots"
            " WHERE origin = ? ORDER BY seq DESC", (origin,))]

    # -- signed records ------------------------------------------------------------------

    def add_record(self, kind, origin, body, signature, signer, created=None):
        """Append a signed discontinuity / fork record; returns its id.  Records are evidence:
        there is no update or delete."""
        if kind not in RECORD_KINDS:
            raise StoreError("record kind must be one of %s, got %r" % (RECORD_KINDS, kind))
        _check_u32(origin)
        return self.execute(
            "INSERT INTO records (kind, origin, body, signature, signer, created) VALUES (?, ?, ?, ?, ?, ?)",
            (kind, origin, bytes(body), bytes(signature), bytes(signer),
             self._clock() if created is None else created)).lastrowid

    @staticmethod
    def _record(r):
        return Record(r[0], r[1], r[2], bytes(r[3]), bytes(r[4]), bytes(r[5]), r[6])

    def record(self, record_id):
        r = self._one("SELECT id, kind, origin, body, signature, signer, created FROM records WHERE id = ?",
                      (record_id,))
        return None if r is None else self._record(r)

    def records(self, origin=None, kind=None):
        """Records in creation order, optionally of one origin and/or kind."""
        where, params = [], []
        if origin is not None:
            where.append("origin = ?")
            params.append(origin)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        sql = "SELECT id, kind, origin, body, signature, signer, created FROM records%s ORDER BY id" % (
            " WHERE " + " AND ".join(where) if where else "")
        return [self._record(r) for r in self.query(sql, params)]

    # -- control state (typed records: gateway/control/state.py) ------------------------------

    def save_state(self, key, record):
        """Persist a typed control record (its type names its kind) under `key` (an origin or
        a name, as its Kind says), replacing the previous one."""
        kind = CS.kind_of(type(record))
        self.execute("INSERT INTO control_state (kind, key, state, updated) VALUES (?, ?, ?, ?)"
                     " ON CONFLICT (kind, key) DO UPDATE SET state = excluded.state, updated = excluded.updated",
                     (kind.name, kind.key.text(key), _json(record.to_obj()), self._clock()))

    def load_state(self, record_type, key):
        """The record of type `record_type` under `key`, or None; CorruptRow if it does not decode."""
        kind = CS.kind_of(record_type)
        r = self._one("SELECT state FROM control_state WHERE kind = ? AND key = ?", (kind.name, kind.key.text(key)))
        return None if r is None else self._state(kind, key, r[0])

    def drop_state(self, record_type, key):
        """True if something was deleted."""
        kind = CS.kind_of(record_type)
        return self.execute("DELETE FROM control_state WHERE kind = ? AND key = ?",
                            (kind.name, kind.key.text(key))).rowcount == 1

    def states(self, record_type):
        """[(key, record)] of every record of `record_type`, sorted by key (resume on restart)."""
        kind = CS.kind_of(record_type)
        rows = self.query("SELECT key, state FROM control_state WHERE kind = ? ORDER BY key", (kind.name,))
        return [(kind.key.parse(k), self._state(kind, k, s)) for k, s in rows]

    @staticmethod
    def _state(kind, key, text):
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise CorruptRow("control state %s/%s is not JSON: %s" % (kind.name, key, e)) from e
        return kind.record.from_obj(obj, "%s/%s" % (kind.name, key))
