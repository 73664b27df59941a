"""The simulated gateway process: the real GatewayCore, Store and Keystore, driven as
gateway/service.py drives them (keep the two in step):
- one message at a time: on_message(topic, payload, now), then publish what it returned and do
  its key pushes (a board folder: written at once, keys_pushed reported at once), and only
  then acknowledge the message, whatever happened (service.py acks in `finally`);
- tick(now) every TICK_S; broker_lost() when the connection drops, broker_back(now) on connect;
- a persistent session (clean_session=False) subscribed to everything at QoS 1, the retained
  offline status as its last will, a redial backoff from 0.2 to 5 s.
A restart is a new GatewayCore over the same SQLite file (RAM lost, the store kept).
"""
import os
import random
import sqlite3

from importlib.util import find_spec

if find_spec("netedge.gateway.control.core") is not None:
    from ...gateway.control.core import GatewayCore
else:  # (before the control plane moved to gateway/control/)
    from ...gateway.core import GatewayCore
from ...gateway.keystore import Keystore
from ...gateway.store import Store
from ...shared import topics as T
from .broker import Endpoint

GATEWAY_ID = "gw1"
TICK_S = 0.05               # gateway/service.py TICK_S
DEADLINE_MS = 1500
HANDLE_S = (0.0002, 0.001)  # time the gateway takes for one message
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "COMMIT")


class StoreFault:
    """Sits between the Store and its SQLite connection: while armed, a write statement raises
    sqlite3.OperationalError as a busy or full disk does (the transaction rolls back)."""

    def __init__(self, db):
        self._db = db
        self.failing = 0     # how many more writes fail
        self.raised = 0

    def execute(self, sql, params=()):
        if self.failing and sql.lstrip().upper().startswith(WRITES):
            self.failing -= 1
            self.raised += 1
            raise sqlite3.OperationalError("database or disk is full" if self.raised % 2 else "database is locked")
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
        self.fault = None
        self.inbox = []
        self.busy = False
        self.boots = 0
        self.stats = {"internal_errors": 0, "acked_after_error": 0}
        self.errors = []        # (sim time, topic, exception) of every message the core raised on
        self.on_fatal = lambda e: None  # the process died of `e` (the world restarts it)

    # -- process life ----------------------------------------------------------------------

    def boot(self):
        self.boots += 1
        wall = self.sched.wall
        self.store = Store(self.path, synchronous="NORMAL", clock=wall)
        self.fault = StoreFault(self.store._db)
        self.store._db = self.fault
        keystore = Keystore(self.store, self.kek, clock=wall, seed_source=lambda: self.rng.randbytes(32))
        self.core = GatewayCore(self.store, keystore, GATEWAY_ID, DEADLINE_MS, wall=wall,
                                counter_start=int(wall() * 1000) & 0x3FFFFFFF,
                                rng=random.Random(self.rng.getrandbits(64)))
        self.core.provisionable = self.nodes.__contains__
        self.will = self.core.status_frame(False)[:3]
        self.inbox, self.busy = [], False
        self.revive()
        self.sched.after(TICK_S, self._tick, self.boots)

    def crash(self):
        self.kill()
        self.inbox = []
        self.core = None
        if self.store is not None:
            self.store._db = self.fault._db
            self.store.close()  # (an open transaction cannot exist between two events)
            self.store = None

    # -- MQTT hooks --------------------------------------------------------------------------

    def connected_hook(self, present):
        self.subscribe([(T.ALL, 1)])
        self.publish(*self.core.status_frame(True))
        self.core.broker_back(self.sched.now)

    def lost_hook(self, was_connected):
        if was_connected:
            self.core.broker_lost()

    def message(self, topic, payload, retained, token):
        self.inbox.append((topic, payload, token))
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
        try:
            self._do(self.core.on_message(topic, payload, self.sched.now))
        except Exception as e:
            # service.py: counted and logged as a gateway bug, and the message is acked all the same
            self.stats["internal_errors"] += 1
            self.errors.append((self.sched.now, topic, e))
            if token is not None:
                self.stats["acked_after_error"] += 1
        finally:
            self.ack(token)
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
            self._do(self.core.keys_pushed(key, err, self.sched.now))

    def _tick(self, boot):
        if boot != self.boots or self.dead:
            return
        if not self.frozen:
            try:
                self._do(self.core.tick(self.sched.now))
            except Exception as e:  # out of service.py's loop: the process exits
                self.stats["internal_errors"] += 1
                self.errors.append((self.sched.now, "tick", e))
                self.on_fatal(e)
                return
        self.sched.after(TICK_S, self._tick, boot)

    def idle(self):
        return self.dead or (not self.inbox and not self.outbox and not self.stalled)
