"""The node's asyncio driver: MQTT + flash + timers around NodeCore.  Thin on purpose.

The driver owns every I/O: it hands NodeCore the flash records (a read-only view: the
RecordStore) at boot, performs every write a Ready lists (store.commit) before it publishes the
Ready's frames, and only then acknowledges the input.

Board entry point (copied to the board as /main.py by `netedge provision`):
    from netedge.firmware.main import start; start("netedge.json")
"""
import gc
import os
import sys
import time

from . import unload as _unload  # (the package's own: importing it loads nothing more)

try:
    import asyncio
except ImportError:  # older MicroPython
    import uasyncio as asyncio


try:
    from time import ticks_ms, ticks_diff
except ImportError:  # CPython (tests)
    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_STALLED = const(2)  # _process(): an input its host cannot take yet (not processed, not acked)
_STALL_WAIT_MS = const(1000)  # how long a stalled input waits for a mark before it is refused
_STALL_POLL_MS = const(20)

# Out of heap, as the node's tasks see it: a MemoryError, or a CancelledError from a wait_for
# whose helper task ran out of heap (MicroPython's asyncio then cancels the waiting task instead
# of reporting; nothing else cancels these tasks, and the MQTT client itself uses no wait_for)
_SHORT = (MemoryError, asyncio.CancelledError)

MAX_QUEUE_BYTES = const(8192)
# The largest MQTT packet the node takes: a whole frame (MAX_FRAME, 8 KB) plus its topic (at most
# 50 B: a 32-byte node id) and packet id.  The shipped broker config caps payloads at MAX_FRAME
# (docs/examples/mosquitto.conf), below this; a larger message is refused (reported, acked).
MAX_PACKET = const(8192 + 64)
# QoS 0 control frames (the gateway's `stored` marks and gap requests, PROTOCOL §11) waiting for
# the worker: taken even while deliveries are refused (a stalled host waits for exactly these);
# beyond this many the gateway sends the next one anyway
_MAX_URGENT = const(4)
# A queued input costs ~300 B of heap (frame, topic, tuples, its reader task), so on a small heap
# the free heap caps the queue before queue_max does: below this, an input is an overflow (the
# broker redelivers it) rather than a MemoryError in the MQTT reader
LOW_HEAP = const(3072)


def _free_heap():
    try:
        gc.collect()
        return gc.mem_free()
    except AttributeError:  # CPython
        return None


def _low_heap():
    try:
        return gc.mem_free() < LOW_HEAP  # (no collect: garbage is at most gc.threshold)
    except AttributeError:  # CPython
        return False


def _flash_free(path):
    try:
        st = os.statvfs(path)
        return st[0] * st[3]
    except (AttributeError, OSError):
        return None


class NodeDriver:
    def __init__(self, cfg, reg):
        # imported here, after the config was parsed and its parser unloaded (see start())
        from .mqtt import MQTTClient
        from .node import NodeCore
        from .store import RecordStore
        from .host import DaemonHost
        DaemonHost.max_state = cfg.max_state
        self.cfg = cfg
        self.store = RecordStore(cfg.state_dir)
        self.core = NodeCore(cfg, reg)
        self.core.key_loader = self._reload_keys
        self.queue = []
        self.front = []       # inputs a migration handed back (acked already): processed first
        self.urgent = []      # QoS 0 control frames (marks): processed before any queued input
        self.queue_bytes = 0
        self.wake = asyncio.Event()
        self.stall_t = None     # ticks_ms when the input at the head of the queue first stalled
        self.subscribed = set()
        self.t0 = ticks_ms()
        self.overflow = 0
        self.resync = False
        self.dropped_gen = 0   # connections up to this one are being dropped for a resync
        self.pending = []     # frames of a persisted input that a MemoryError kept from leaving
        self.dirty = False    # a MemoryError left hosts ahead of their records: reload first
        self.client = MQTTClient(
            cfg.node_id, cfg.broker_host, cfg.broker_port, cfg.username, cfg.password, keepalive=cfg.keepalive,
            clean_session=False, will=self.core.will() + (1,),
            on_message=self._on_message, on_connect=self._on_connect, manual_ack=True,
            backoff_min=0.2, backoff_max=5, max_packet=MAX_PACKET)

    def _reload_keys(self):
        try:
            from .config import load_keys
            for kind, pub, sec in load_keys(self.cfg.kinds):
                try:
                    self.core.registry.provision(kind, pub, sec)
                except MemoryError:
                    raise  # not the slot's fault: the message is retried (or redelivered), not refused
                except Exception as e:  # a colliding slot is reported, the others still load
                    self.core.errors["failed"] += 1
                    print("netedge: key slot refused:", e)
        finally:
            _unload("netedge.firmware.config")
            _unload("netedge.shared.identity")

    # MQTT reader context: never block here (see mqtt.manual_ack)
    def _on_message(self, topic, payload, retained, token):
        q = self.queue
        if type(payload) is int:  # a message the MQTT client refused (its size): report, then ack
            asyncio.create_task(self._refuse(topic, payload, token))
            return
        try:
            if topic.endswith("/mark"):  # a stored mark: never refused, never in the queue
                # (subscribed at QoS 0: a broker that delivered it at QoS 1 would want it acked)
                if token is not None:
                    asyncio.create_task(self.client.ack(token))
                if len(self.urgent) < _MAX_URGENT:
                    self.urgent.append((topic, payload))
                    self.wake.set()
                return
            if token is not None and q and q[0][2] is not None and q[0][2][0] != token[0]:
                # a new connection: what is still queued from the old one is being redelivered
                self.queue = q = [it for it in q if it[2] is None or it[2][0] == token[0]]
                self.queue_bytes = sum(len(it[1]) for it in q)
            if token is not None and token[0] <= self.dropped_gen:
                return  # from a connection being abandoned for a resync: it comes again, in order
            if not (self.resync or len(q) >= self.cfg.queue_max or self.queue_bytes + len(payload) > MAX_QUEUE_BYTES
                    or q and _low_heap()):
                q.append((topic, payload, token))
                self.queue_bytes += len(payload)
                self.wake.set()
                return
            err = "overflow"
        except MemoryError:
            err = "memory"
        # Not queued, not acked, so the broker keeps it — but MQTT 3.1.1 redelivers only on a
        # new connection, and not every broker caps in-flight messages.  So once the queue has
        # drained, the worker asks for a fresh connection and everything unacked comes again,
        # in order.  Until then every later message is refused too: inputs must be processed
        # in the order the broker accepted them (replay depends on it).
        self.overflow += 1
        if not self.resync:
            self.resync = True
            self.core.errors[err] += 1

    async def _refuse(self, topic, size, token):
        # An oversize or malformed MQTT message (the client read past it): one ERROR, then the
        # PUBACK, so the broker drops it instead of redelivering it on every connection (a
        # retained one comes again only with a new subscription).  Never queued: it is no input.
        try:
            from . import Ready
            r = Ready()
            self.core.error(r, "oversize" if size > MAX_PACKET else "malformed", topic,
                            "MQTT message of %d B refused (at most %d)" % (size, MAX_PACKET))
            await self._do(r)
            r = None
        except _SHORT:  # (counted by the client all the same: the heartbeat's mqtt counters)
            pass
        try:
            await self.client.ack(token)
        except _SHORT:  # not acked: it comes again on the next connection, and is refused again
            pass

    async def _on_connect(self, session_present):
        # (inputs still queued from an older connection are skipped by the worker: the broker
        # redelivers them on this one; clearing the queue here would race with new deliveries)
        await self._do(self.core.online())

    async def _publish(self, item):
        topic, data, qos, retain = item
        await self.client.publish(topic, data, qos, retain)

    async def _do(self, ready):
        self.store.commit(ready)         # flash first ...
        for item in ready.publish:
            await self._publish(item)    # ... then the network

    async def _sync_subscriptions(self):
        want = set(self.core.subscriptions())
        new = [t for t in want if t not in self.subscribed]
        if new:
            await self.client.subscribe([(t, 0 if t.endswith("/mark") else 1) for t in new])
            for t in new:
                self.subscribed.add(t)
        gone = [t for t in self.subscribed if t not in want]
        if gone:
            await self.client.unsubscribe(gone)
            for t in gone:
                self.subscribed.discard(t)

    async def _worker(self):
        while True:
            try:
                if self.pending or self.dirty:  # left by a MemoryError: fix this before any input
                    try:
                        gc.collect()
                        if self.dirty:  # hosts maybe ahead of their records
                            self.core.reload(self.store)
                            self.dirty = False
                        while self.pending:  # frames of an input already on flash
                            await self._publish(self.pending[0])
                            self.pending.pop(0)
                    except _SHORT:
                        await asyncio.sleep(0.2)  # (the heap frees as QoS 1 acks come in)
                        continue
                if self.urgent:  # (QoS 0: nothing to acknowledge; may end a stall)
                    topic, payload = self.urgent.pop(0)
                    await self._process(topic, payload)
                    continue
                if self.front:  # (outside the queue and its caps: the broker has forgotten them)
                    topic, payload = self.front[0]
                    if await self._process(topic, payload) is True:
                        self.front.pop(0)
                    else:  # out of memory (reported), or its host stalled until the next mark:
                        await asyncio.sleep(0.2)  # again later; the input window drops a repeat
                    continue
                if not self.queue:
                    if self.resync and not self.core.stalled:  # drained after an overflow or a stall
                        # (once the gateway's mark made room): fetch what was not acked
                        # (refuse the rest of this connection's deliveries until it is gone: taking
                        # later inputs before the refused ones come back would reorder them)
                        self.resync = False
                        self.dropped_gen = self.client.stats["connects"]
                        self.client.drop()
                    self.wake.clear()
                    topic = payload = token = None  # (an idle task keeps its locals: up to 8 KB)
                    await self.wake.wait()
                    continue
                topic, payload, token = self.queue.pop(0)
                self.queue_bytes -= len(payload)
                if token is not None and token[0] != self.client.stats["connects"]:
                    continue  # received on a closed connection: it comes again on this one
                done = await self._process(topic, payload)
                if done == _STALLED:
                    # its host keeps the most events the gateway has not stored.  First the input
                    # waits, unacked, at the head of the queue for a mark (marks come on their own
                    # topic and are taken first; one comes within a round trip of the gateway
                    # storing): a broker need not redeliver what a client did not ack (amqtt
                    # forgets it after 5 s or a reconnection).  Past _STALL_WAIT_MS it is refused:
                    # not acked, the rest of this connection refused too (order), and once a mark
                    # made room the broker redelivers it all on a fresh connection
                    now = ticks_ms()
                    if self.stall_t is None:
                        self.stall_t = now
                    if ticks_diff(now, self.stall_t) < _STALL_WAIT_MS:
                        self.queue.insert(0, (topic, payload, token))
                        self.queue_bytes += len(payload)
                        topic = payload = token = None
                        await asyncio.sleep(_STALL_POLL_MS / 1000)
                        continue
                    # (and what is queued behind it too, as after an overflow: a mark arriving
                    # meanwhile would let a later input of the same daemon overtake this one)
                    self.stall_t = None
                    self.queue = []
                    self.queue_bytes = 0
                    self.resync = True
                elif done:
                    self.stall_t = None
                    await self.client.ack(token)  # only now may the broker forget the input
                else:
                    # Out of memory twice: reported, NOT acked, and as after an overflow every input
                    # queued behind it is dropped unacked too (order): the broker redelivers them all
                    # on a fresh connection, once the state is consistent again.
                    self.queue = []
                    self.queue_bytes = 0
                    self.resync = True
            except _SHORT:
                # outside _process (an async call's frame, an ack): the input taken may be
                # unprocessed, and is unacked: fetch everything unacked again, in order (an
                # input already on flash comes back as a duplicate and is only acked)
                self.core.errors["memory"] += 1
                self.queue = []
                self.queue_bytes = 0
                self.resync = True
                gc.collect()
                await asyncio.sleep(0.2)

    async def _process(self, topic, payload):
        """One input: persist, publish, subscribe; False when it must not be acked.
        A MemoryError is collected and retried once.  Before the flash write nothing is left
        behind (the hosts are reloaded from their records, so the retry or the redelivery is
        processed exactly once); after it, the frames not yet sent stay in `pending`."""
        ready = None
        for _ in (0, 1):
            try:
                if ready is None:
                    ready = self.core.on_message(topic, payload, int(time.time()))  # (an int: no float per input)
                    if ready.requeue:  # taken at once: a retry of this message would not return them
                        self.front[0:0] = ready.requeue
                        ready.requeue = None
                    if ready.stall:
                        return _STALLED
                    self.store.commit(ready)  # flash first (then it lists none: never processed again) ...
                # subscriptions before the replies: a migration target's `restored` promises the
                # broker already routes the daemon's inbox to it (PROTOCOL §16)
                await self._sync_subscriptions()
                pub = ready.publish
                while pub:
                    await self._publish(pub[0])     # ... then the network
                    pub.pop(0)
                return True
            except _SHORT:
                gc.collect()
                if ready is None or ready.persist:
                    ready = None
                    try:
                        self.core.reload(self.store)
                    except MemoryError:
                        self.dirty = True
                        break
        if ready is not None:
            self.pending = ready.publish
        self.core.errors["memory"] += 1
        try:
            from . import Ready
            r = Ready()
            self.core.error(r, "out_of_memory", topic, "free %s" % _free_heap())
            self.store.commit(r)  # (a counter reserved for it)
            await self._publish(r.publish[0])
        except _SHORT:
            pass
        return False

    async def _heartbeat(self):
        period = self.cfg.heartbeat_ms
        while True:
            try:
                stats = {k: v for k, v in self.client.stats.items() if v}  # (zeros say nothing)
                stats["queue"] = len(self.queue)
                await self._do(self.core.heartbeat(_free_heap(), _flash_free(self.cfg.state_dir),
                                                   ticks_diff(ticks_ms(), self.t0), stats, self.store.sizes))
            except _SHORT:  # skipped (the next one says so, in errors.memory)
                self.core.errors["memory"] += 1
                gc.collect()
            stats = None  # (a suspended task keeps its locals: not held over the sleep)
            await asyncio.sleep_ms(period) if hasattr(asyncio, "sleep_ms") else await asyncio.sleep(period / 1000)

    async def run(self):
        from random import getrandbits  # (loaded by the MQTT client already: not before the parser goes)
        boot = self.core.boot(self.store, getrandbits(30))
        self.store.commit(boot)
        self.client.start()
        await self._sync_subscriptions()  # recorded now, sent on connect, restored on reconnect
        for item in boot.publish:
            await self._publish(item)     # QoS 1 waits in the window until connected
        # this frame lives as long as the node: drop the boot records and frames it still holds
        # (measured: ~1.5 KB of the unix port's heap with 4 daemons)
        boot = item = None
        asyncio.create_task(self._heartbeat())
        await self._worker()




def _boot(config_path, board):
    """The config and the key slots (origin hashes), with the parser and identity code still
    loaded: (cfg, registry).  (A function of its own: its frame, which holds the parser, is gone
    before the node runs; start()'s frame lives as long as the node.)"""
    from .config import ConfigError, load
    from .registry import DaemonFactoryRegistry
    try:
        cfg = load(config_path)
    except ConfigError as e:
        print("netedge: config error:", e)
        sys.exit(2)
    if board is not None:
        board.network_up(cfg.raw)
    reg = DaemonFactoryRegistry()
    for kind, path in cfg.kinds.items():
        reg.register_kind(kind, path)  # (imported when a daemon of that kind is created)
    for kind, pub, sec in cfg.keys:
        reg.provision(kind, pub, sec)
    cfg.raw = cfg.keys = None  # (boot only)
    return cfg, reg


def start(config_path="netedge.json", board=None):
    cfg, reg = _boot(config_path, board)
    # The boot peak decides the smallest heap a node boots in: drop the parser, the identity
    # code and their garbage BEFORE the runtime's modules load, which then fill the heap from
    # the bottom instead of around the parser's leftovers (fragmentation).
    _unload("netedge.firmware.config")
    _unload("netedge.shared.identity")
    gc.collect()
    driver = NodeDriver(cfg, reg)
    gc.collect()
    try:
        gc.threshold(4096)  # collect early: a fragmented small heap fails before it is full
    except AttributeError:
        pass
    asyncio.run(driver.run())


if __name__ == "__main__":
    start(sys.argv[1] if len(sys.argv) > 1 else "netedge.json")
