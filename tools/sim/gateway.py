"""The simulated gateway process: the real GatewayCore, Store and Keystore, driven as
gateway/service.py drives them, through the same gateway/driver.py `run` (keep the two in step):
- one message at a time: every entry point (on_message, tick, keys_pushed, broker_back) runs in
  ONE store transaction (driver.run); its frames are published and its key pushes done (a board
  folder: written at once, keys_pushed reported at once) only after the commit, and only then
  is the message acknowledged (the Ready rule);
- a commit that fails (store busy, disk full): nothing is published, the message is NOT
  acknowledged, the core is rebuilt from the store (service.py `_new_core`: what only memory
  knows carries over) and the same message runs again after a doubling backoff until it is
  stored, the next ones waiting behind it; deaf meanwhile (broker_lost), broker_back once
  stored (service.py `_store_retry`); any other exception out of the core is a gateway bug:
  rolled back, the core rebuilt, the message acknowledged;
- tick(now) every TICK_S; broker_lost() when the connection drops, broker_back(now) on connect;
- a persistent session (clean_session=False) subscribed to everything at QoS 1, the retained
  offline status as its last will, a redial backoff from 0.2 to 5 s.
A restart is a new GatewayCore over the same SQLite file (RAM lost, the store kept).
"""
import os
import random
import sqlite3

from ...gateway import driver
from ...gateway.control.core import GatewayCore
from ...gateway.keystore import Keystore
from ...gateway.store import Store
from ...shared import topics as T
from .broker import Endpoint

GATEWAY_ID = "gw1"
TICK_S = 0.05               # gateway/service.py TICK_S
DEADLINE_MS = 1500
HANDLE_S = (0.0002, 0.001)  # time the gateway takes for one message
LOST = object()             # in the inbox: the connection dropped (after what came before it)
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "COMMIT")


class StoreFault:
    """Sits between the Store and its SQLite connection: while armed, a write statement raises
    sqlite3.OperationalError as SQLite does (the transaction rolls back): `failing` more writes
    find the database locked (another process held it past the busy timeout), and every write
    finds the disk full while `full` (until space is freed)."""

    def __init__(self, db, disk):
        self._db = db
        self.disk = disk     # {"full": bool}: the machine's, kept across the gateway's restarts
        self.failing = 0     # how many more writes fail: busy
        self.raised = 0

    def execute(self, sql, params=()):
        full = self.disk["full"]
        if (self.failing or full) and sql.lstrip().upper().startswith(WRITES):
            self.raised += 1
            if full:
                raise sqlite3.OperationalError("database or disk is full")
            self.failing -= 1
            raise sqlite3.OperationalError("database is locked")
        return self._db.execute(sql, params)

    def __getattr__(self, name):
        return getattr(self._db, name)


class SimGateway(Endpoint):
    def __init__(self, broker, workdir, nodes, rng):
        super().__init__(broker, GATEWAY_ID, clean=False, keepalive=10, backoff=(0.2, 5.0))
        self.path = os.path.join(workdir, "gateway.db")
        self.kek = os.path.join(workdir, "kek")
        self.nodes = nodes      # node id -> SimNode (for key pushes: their board folders)
        self.rng = rng
        self.core = None
        self.store = None
        self.keystore = None
        self.fault = None
        self.inbox = []
        self.busy = False
        self.boots = 0
        self.disk = {"full": False}
        self.retry_s = None     # the backoff of a message whose writes did not commit (None: no outage)
        self.stats = {"internal_errors": 0, "store_failures": 0}
        self.errors = []        # (sim time, entry point, exception) of every exception out of the core

    # -- process life ----------------------------------------------------------------------

    def boot(self):
        self.boots += 1
        wall = self.sched.wall
        self.store = Store(self.path, synchronous="NORMAL", clock=wall)
        self.keystore = Keystore(self.store, self.kek, clock=wall, seed_source=lambda: self.rng.randbytes(32))
        self.fault = StoreFault(self.store._db, self.disk)  # (after the opening writes: a boot succeeds)
        self.store._db = self.fault
        self.core = self._new_core()
        self.will = self.core.status_frame(False)[:3]
        self.inbox, self.busy, self.retry_s = [], False, None
        self.revive()
        self.sched.after(TICK_S, self._tick, self.boots)

    def _new_core(self, old=None):
        """service.py GatewayService._new_core: at start, and to rebuild a core whose memory went
        ahead of a transaction that did not commit.  What only memory knows carries over (GatewayCore.carry_over)."""
        wall = self.sched.wall
        core = GatewayCore(self.store, self.keystore, GATEWAY_ID, DEADLINE_MS, wall=wall,
                           counter_start=int(wall() * 1000) & 0x3FFFFFFF,
                           rng=random.Random(self.rng.getrandbits(64)))
        core.provisionable = self.nodes.__contains__
        if old is not None:
            core.carry_over(old)
        return core

    def crash(self):
        self.kill()
        self.inbox = []
        self.core = None
        if self.store is not None:
            self.store._db = self.fault._db
            self.store.close()  # (an open transaction cannot exist between two events)
            self.store = None

    def _run(self, where, entry, *args):
        """service.py GatewayService._run: one entry point under the Ready rule (driver.run)."""
        out = driver.run(self.store, entry, *args, store_errors=(sqlite3.Error,))
        if out.error is not None:
            self.errors.append((self.sched.now, where, out.error))
            if out.store_failed:
                self.stats["store_failures"] += 1
            else:
                self.stats["internal_errors"] += 1
                self.core.counters["internal_errors"] += 1
            self.core = self._new_core(self.core)
        if out.effects is not None:
            self._do(out.effects)
        return out

    # -- MQTT hooks --------------------------------------------------------------------------

    def connected_hook(self, present):
        self.subscribe([(T.ALL, 1)])
        self.publish(*self.core.status_frame(True))
        self._run("broker_back", self.core.broker_back, self.sched.now, present)

    def lost_hook(self, was_connected):
        if was_connected:
            # paho reports the disconnect after the messages it read before it: in order here too
            self._queue((LOST, None, None))

    def message(self, topic, payload, retained, token):
        self._queue((topic, payload, token))

    def _queue(self, item):
        self.inbox.append(item)
        if not self.busy:
            self.busy = True
            self.sched.after(self.rng.uniform(*HANDLE_S), self._handle, self.boots)

    def _handle(self, boot):
        if boot != self.boots or self.dead:
            return
        if self.frozen:
            self.sched.after(0.05, self._handle, boot)
            return
        topic, payload, token = self.inbox.pop(0)
        if topic is LOST:
            self.core.broker_lost()
        else:
            out = self._run(topic, self.core.on_message, topic, payload, self.sched.now)
            if not out.ack:
                # not stored: not acknowledged (the broker keeps it), the same message again after
                # a doubling backoff, the rest waiting behind it (service.py _store_retry)
                if self.retry_s is None:
                    self.retry_s = driver.STORE_RETRY_MIN_S
                    self.core.counters["store_faults"] += 1
                    self.core.broker_lost()  # (deaf: no deadline blames a node for our outage)
                else:
                    self.retry_s = min(self.retry_s * 2, driver.STORE_RETRY_MAX_S)
                self.inbox.insert(0, (topic, payload, token))
                self.sched.after(self.retry_s, self._handle, boot)
                return
            if self.retry_s is not None:
                self.retry_s = None
                self._run("broker_back", self.core.broker_back, self.sched.now)
            self.ack(token)  # stored (or rejected) first: only now may the broker forget it
        if self.inbox:
            self.sched.after(self.rng.uniform(*HANDLE_S), self._handle, boot)
        else:
            self.busy = False

    def _do(self, acts):
        for item in acts.publish:
            self.publish(*item)
        for node, slots, key in acts.push_keys:
            err = None
            board = self.nodes.get(node)
            if board is None:
                err = "no provisioning path for node %s" % node
            else:
                board.keys = [dict(s) for s in slots]  # keys.json, written atomically
            self._run("keys_pushed", self.core.keys_pushed, key, err, self.sched.now)

    def _tick(self, boot):
        if boot != self.boots or self.dead:
            return
        if not self.frozen:
            self._run("tick", self.core.tick, self.sched.now)
        self.sched.after(TICK_S, self._tick, boot)

    def idle(self):
        return self.dead or (not self.inbox and not self.outbox and not self.stalled)
