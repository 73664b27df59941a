"""A simulated board: the real NodeCore and daemons, driven as firmware/main.py drives them.

The driver semantics mirrored here (keep them in step with firmware/main.py):
- inputs wait in a queue capped by `queue_max` and MAX_QUEUE_BYTES; a message that does not
  fit is left unacknowledged, every later one too, and once the queue has drained the node
  disconnects cleanly and reconnects so that the broker redelivers them all, in order;
- one message at a time: the Ready's records go to flash FIRST, then the subscriptions are
  brought in line, then its frames are published, and only then is the message acknowledged;
  inputs a migration hands back (`requeue`) are processed before the queue;
- a message received on a connection that has since closed is skipped (it comes again);
- a heartbeat every `heartbeat_ms`; the retained online status on every connection, the
  offline status as the last will;
- a restart loses RAM and keeps flash (records, key slots): boot() rebuilds from flash.
Flash is an in-memory map of record name -> canonical CBOR bytes, kept across restarts.
"""
import sys

import importlib
import types

from ...firmware import config as node_config
from ...firmware import node as node_module
from ...firmware.host import DaemonHost
from ...firmware.node import NodeCore
from ...firmware.registry import DaemonFactoryRegistry
from ...firmware.main import MAX_QUEUE_BYTES
from ...shared import cbor
from .broker import Endpoint

KINDS = {
    "counter": "netedge.firmware.daemons.counter.Counter",
    "echo": "netedge.firmware.daemons.echo.Echo",
    "blob": "netedge.firmware.daemons.blob.Blob",
}
HEARTBEAT_MS = 500
KEEPALIVE_S = 2
QUEUE_MAX = 32
FREE_HEAP = 60000          # what a heartbeat reports (a 96K board with a few daemons)
PROCESS_S = (0.0005, 0.003)  # time a board takes for one message
STALL_WAIT_S, STALL_POLL_S = 1.0, 0.02  # firmware/main.py _STALL_WAIT_MS, _STALL_POLL_MS
_MIGRATE = "netedge.firmware.migrate"
# A board's gc.collect() frees its small heap before a big allocation; on CPython a full
# collection of the simulator's heap costs ~5 ms and decides nothing: the simulated boards skip it.
_NO_GC = types.SimpleNamespace(collect=lambda: None)
node_module.gc = _NO_GC  # (and migrate.py's, whenever a board loads it: _call)


class MemFlash:
    """A board's flash records over a dict (canonical CBOR bytes per record name): the read-only
    view NodeCore takes at boot (names, load) and the writes its Readys ask for."""

    def __init__(self):
        self.files = {}
        self.sizes = {}
        self.writes = 0

    def save(self, name, obj):
        if obj is None:
            self.files.pop(name, None)
            return
        body = cbor.dumps(obj, True)
        self.sizes[name] = len(body)
        self.files[name] = body
        self.writes += 1

    def load(self, name):
        body = self.files.get(name)
        return None if body is None else cbor.loads(body)

    def quarantine(self, name):
        body = self.files.pop(name, None)
        if body is not None:
            self.files[name + ".bad"] = body

    def names(self):
        return sorted(self.files)

    def apply(self, ready):
        """A Ready's writes, before anything it publishes: set aside, then persist."""
        for name in ready.quarantine:
            self.quarantine(name)
        for name, rec in ready.persist:
            self.save(name, rec)


class SimNode(Endpoint):
    def __init__(self, broker, node_id, trace=None):
        super().__init__(broker, node_id, clean=False, keepalive=KEEPALIVE_S, backoff=(0.2, 5.0))
        self.node_id = node_id
        self.flash = MemFlash()          # kept across restarts
        self.keys = []                   # keys.json: key slots the gateway pushed (kept too)
        self.trace = trace
        self.cfg = node_config.parse({
            "node_id": node_id, "broker": {"host": "sim", "port": 1883, "keepalive": KEEPALIVE_S},
            "board": "sim", "heartbeat_ms": HEARTBEAT_MS, "queue_max": QUEUE_MAX, "kinds": KINDS})
        self.core = None
        self.boots = 0

    # -- boot, death -----------------------------------------------------------------------

    def boot(self):
        reg = DaemonFactoryRegistry()
        for kind, path in KINDS.items():
            reg.register_kind(kind, path)
        self._load_keys(reg)
        DaemonHost.max_state = self.cfg.max_state
        self.core = NodeCore(self.cfg, reg)
        self.core.key_loader = lambda: self._load_keys(self.core.registry)
        self.rx = None                # this board's migrate._rx (a module global on a board)
        self.queue, self.front, self.queue_bytes = [], [], 0
        self.urgent = []              # QoS 0 control frames (the gateway's marks): never refused
        self.resync, self.dropped_gen = False, 0
        self.stall_t = None  # when the input at the head of the queue first stalled (main.py)
        self.subscribed = set()
        self.busy = False
        self.boots += 1
        self.will = self.core.will() + (1,)
        ready = self._call(self.core.boot, self.flash, self.sched.rng.getrandbits(30))
        self.flash.apply(ready)
        self.revive()
        for item in ready.publish:
            self.publish(*item)
        self._beat_epoch = self.boots
        self.sched.after(self.cfg.heartbeat_ms / 1000.0 * self.sched.rng.random(), self._heartbeat, self.boots)

    def crash(self):
        self.kill()
        self.core = None

    def _load_keys(self, reg):
        for slot in self.keys:
            reg.provision(slot["kind"], bytes.fromhex(slot["public"]), None)

    def _call(self, fn, *args):
        """Run NodeCore code as this board: migrate.py's module state is a board's own.  The
        module is shared by every simulated board, and a board that is done moving unloads it
        (NodeCore._unload): a board with a transfer under way gets it back, with its state."""
        mod = sys.modules.get(_MIGRATE)
        if mod is None and self.rx is not None:
            mod = importlib.import_module(_MIGRATE)
        if mod is not None:
            mod._rx = self.rx
            mod.gc = _NO_GC
        try:
            return fn(*args)
        finally:
            mod = sys.modules.get(_MIGRATE)
            if mod is not None:
                self.rx = mod._rx
                mod._rx = None

    # -- MQTT hooks --------------------------------------------------------------------------

    def connected_hook(self, present):
        # a persistent session keeps them, but the node's client subscribes again anyway
        if self.subscribed:
            self.subscribe([(t, 0 if t.endswith("/mark") else 1) for t in sorted(self.subscribed)])
        ready = self.core.online()
        self.flash.apply(ready)
        for item in ready.publish:
            self.publish(*item)
        self._sync_subscriptions()

    def message(self, topic, payload, retained, token):
        """firmware/main.py NodeDriver._on_message: queue it, or refuse it until a resync."""
        q = self.queue
        if topic.endswith("/mark"):  # a stored mark: never refused, never in the queue
            if token is not None:
                self.ack(token)
            if len(self.urgent) < 4:  # (main.py MAX_URGENT)
                self.urgent.append((topic, payload))
                self._wake()
            return
        if token is not None and q and q[0][2] is not None and q[0][2][0] != token[0]:
            self.queue = q = [it for it in q if it[2] is None or it[2][0] == token[0]]
            self.queue_bytes = sum(len(it[1]) for it in q)
        if token is not None and token[0] <= self.dropped_gen:
            return
        if not (self.resync or len(q) >= self.cfg.queue_max or self.queue_bytes + len(payload) > MAX_QUEUE_BYTES):
            q.append((topic, payload, token))
            self.queue_bytes += len(payload)
            self._wake()
            return
        if not self.resync:
            self.resync = True
            self.core.errors["overflow"] += 1

    # -- the worker ----------------------------------------------------------------------------

    def _wake(self):
        if not self.busy and not self.dead:
            self.busy = True
            self.sched.after(self.sched.rng.uniform(*PROCESS_S), self._work, self.boots)

    def _work(self, boot):
        if boot != self.boots or self.dead:
            return
        if self.frozen:
            self.sched.after(0.05, self._work, boot)
            return
        self.busy = False
        if self.urgent:
            topic, payload = self.urgent.pop(0)
            self._process(topic, payload)
            self._wake()
            return
        if self.front:
            topic, payload = self.front[0]
            if self._process(topic, payload):
                self.front.pop(0)
                self._wake()
            else:  # its host stalled (acked already: kept here until a mark makes room)
                self.sched.after(0.2, self._retry, self.boots)
            return
        if not self.queue:
            if self.resync and not self.core.stalled:
                self.resync = False
                self.dropped_gen = self.conn.gen if self.conn is not None else self.dropped_gen
                self.disconnect_and_redial()
            return
        topic, payload, token = self.queue.pop(0)
        self.queue_bytes -= len(payload)
        if token is not None and (self.conn is None or token[0] != self.conn.gen):
            self._wake()
            return  # received on a closed connection: it comes again on this one
        if self._process(topic, payload):
            self.stall_t = None
            self.ack(token)  # only now may the broker forget the input
        else:  # stalled (main.py): it waits at the head of the queue for a mark, then is refused
            if self.stall_t is None:
                self.stall_t = self.sched.now
            if self.sched.now - self.stall_t < STALL_WAIT_S:
                self.queue.insert(0, (topic, payload, token))
                self.queue_bytes += len(payload)
                self.sched.after(STALL_POLL_S, self._retry, self.boots)
                return
            self.stall_t = None
            self.queue, self.queue_bytes = [], 0  # (what is behind it too: order)
            self.resync = True  # not acked, the rest refused, all redelivered after a mark
        self._wake()

    def _retry(self, boot):
        if boot == self.boots and not self.dead:
            self._wake()

    def _process(self, topic, payload):
        ready = self._call(self.core.on_message, topic, payload, self.sched.now)
        if ready.requeue:
            self.front[0:0] = ready.requeue
            ready.requeue = None
        if ready.stall:
            return False                # its host keeps the most unmarked events: not taken
        self.flash.apply(ready)         # flash first ...
        self._sync_subscriptions()      # (a target's `restored` promises the inbox is routed)
        for item in ready.publish:
            self.publish(*item)         # ... then the network
        return True

    def _sync_subscriptions(self):
        want = set(self.core.subscriptions())
        new = sorted(t for t in want if t not in self.subscribed)
        if new:
            self.subscribe([(t, 0 if t.endswith("/mark") else 1) for t in new])
            self.subscribed.update(new)
        gone = sorted(t for t in self.subscribed if t not in want)
        if gone:
            self.unsubscribe(gone)
            self.subscribed.difference_update(gone)

    def _heartbeat(self, boot):
        if boot != self.boots or self.dead:
            return
        if not self.frozen:
            ready = self._call(self.core.heartbeat, FREE_HEAP, 1 << 20, int(self.sched.now * 1000),
                               {"queue": len(self.queue)}, self.flash.sizes)
            self.flash.apply(ready)
            for item in ready.publish:
                self.publish(*item)
        self.sched.after(self.cfg.heartbeat_ms / 1000.0, self._heartbeat, boot)

    # -- what the checker may look at --------------------------------------------------------

    def hosts(self):
        """{origin: (epoch, processing?, head seq, next parent hash)} of the daemons it holds."""
        if self.core is None:
            return {}
        return {origin: (h.epoch, h.hold is None and origin not in self.core.mig, h.chain.head.sequence,
                         h.chain.next_parent) for origin, h in self.core.hosts.items()}

    def idle(self):
        return self.dead or (not self.queue and not self.front and not self.urgent and not self.busy and not self.outbox
                             and not self.stalled)
