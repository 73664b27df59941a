"""NodeCore: the node's protocol logic, sans-I/O.

The driver (firmware/main.py) feeds it MQTT messages and timer ticks; each call returns a Ready:
records to persist (written to flash FIRST), then frames to publish, in order.  Only then does the
driver acknowledge the input to the broker — so a crash at any point loses nothing and doubles
nothing (see firmware/host.py).
"""
import gc

from ..shared import frame as FR
from ..shared import topics as T
from ..shared import failures as F
from ..shared.dedup import DUPLICATE, NEW
from .host import DaemonHost
from .store import CorruptRecord

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

COUNTER_BLOCK = const(1024)  # frame counters reserved on flash per write: strictly increasing across reboots
MAX_HOSTED = const(16)
NODE_RECORD = "node"


def _daemon_record_name(origin):
    return "d%08x" % origin


class Ready:
    """What the driver must do, in this order: persist, then publish (topic, bytes, qos, retain)."""

    def __init__(self):
        self.persist = []
        self.publish = []

    def __bool__(self):
        return bool(self.persist or self.publish)


class NodeCore:
    def __init__(self, cfg, registry, store, board_info=None):
        self.cfg = cfg
        self.node_id = cfg.node_id
        self.registry = registry
        self.store = store
        self.board_info = board_info or {}
        self.hosts = {}        # origin -> DaemonHost
        self.corrupt = {}      # origin or record name -> reason (reported in every heartbeat)
        self.counter = 0
        self.counter_reserved = 0
        self.errors = {"malformed": 0, "unknown_topic": 0, "stale_epoch": 0, "refused": 0, "failed": 0, "overflow": 0}
        self.hb_seq = 0
        self.key_loader = None  # driver hook: re-read key slots provisioned over USB since boot

    # -- boot --

    def boot(self):
        """Load node and daemon records from flash; returns the Ready of boot-time reports."""
        ready = Ready()
        try:
            rec = self.store.load(NODE_RECORD) or {}
        except CorruptRecord as e:
            # counters only: skip far ahead so no counter repeats, and report it
            rec = {"ctr": 1 << 30}
            self.corrupt[NODE_RECORD] = e.why
            self.store.quarantine(NODE_RECORD)
        self.counter = rec.get("ctr", 0)
        self._reserve(ready)
        for name in self.store.names():
            if name == NODE_RECORD or not name.startswith("d"):
                continue
            try:
                rec = self.store.load(name)
                if rec is None:
                    continue
                host = DaemonHost.from_record(rec, self.registry)
            except CorruptRecord as e:
                self.corrupt[name] = e.why
                self.store.quarantine(name)
                self._error(ready, "corruption", name, e.why, 1)
                continue
            except F.HostFailure as e:
                self.corrupt[name] = str(e)
                self._error(ready, "restore_failed", name, str(e), 1)
                continue
            self.hosts[host.origin] = host
            if host.last:  # republish the newest event: it may not have left before the crash
                ready.publish.append(self._chain_frame(ready, host, host.last[0], host.last[1]))
        for origin in self.cfg.hosted:
            if origin not in self.hosts and not self._quarantined(origin):
                self._activate(ready, self._kind_of(origin), origin, 1)
        return ready

    def _quarantined(self, origin):
        name = _daemon_record_name(origin)
        if name in self.corrupt:
            return True
        try:
            import os
            os.stat("%s/%s.rec.bad" % (self.store.root, name))
            self.corrupt[name] = "quarantined record on flash"
            return True
        except OSError:
            return False

    def _kind_of(self, origin):
        slot = self.registry.slots.get(origin)
        return slot.kind if slot else None

    # -- frames out --

    def _next_counter(self, ready):
        self.counter += 1
        if self.counter >= self.counter_reserved:
            self._reserve(ready)
        return self.counter

    def _reserve(self, ready):
        self.counter_reserved = self.counter + COUNTER_BLOCK
        ready.persist.append((NODE_RECORD, {"ctr": self.counter_reserved}))

    def _frame(self, ready, ftype, body):
        return FR.encode(ftype, self.node_id, self._next_counter(ready), body)

    def _chain_frame(self, ready, host, link_bytes, payload):
        data = self._frame(ready, FR.CHAIN_EVENT, {"o": host.origin, "e": host.epoch, "l": link_bytes, "p": payload})
        return (T.daemon(host.origin, "chain"), data, 1, False)

    def _error(self, ready, code, where, detail, qos=0):
        """Report a problem on the node's error topic.  QoS 0 for bad input (reports must never
        block inputs); QoS 1 for damage found at boot, which must reach the gateway even
        though it is found before the connection is up."""
        body = {"code": code, "at": where, "detail": str(detail)[:160]}
        ready.publish.append((T.node(self.node_id, "err"), self._frame(ready, FR.ERROR, body), qos, False))

    def status_frame(self, online):
        """Retained node status; the offline form is registered as the MQTT last will."""
        r = Ready()
        body = {"state": "online" if online else "offline", "board": self.cfg.board}
        data = self._frame(r, FR.STATUS, body) if online else FR.encode(FR.STATUS, self.node_id, 0, body)
        for p in r.persist:
            self.store.save(*p)
        return (T.node(self.node_id, "status"), data, 1, True)

    # -- subscriptions --

    def subscriptions(self):
        subs = [T.node(self.node_id, "ctl")]
        for origin in self.hosts:
            subs.append(T.daemon(origin, "in"))
        return subs

    # -- inputs --

    def on_message(self, topic, payload):
        """One MQTT message.  Returns a Ready; never raises on bad input (counted + reported)."""
        ready = Ready()
        try:
            if topic.startswith(T.ROOT + "/d/") and topic.endswith("/in"):
                self._on_input(ready, topic, payload)
            elif topic == T.node(self.node_id, "ctl"):
                self._on_control(ready, payload)
            else:
                self.errors["unknown_topic"] += 1
        except FR.FrameError as e:
            self.errors["malformed"] += 1
            self._error(ready, "malformed", topic, "%s: %s" % (type(e).__name__, e))
        except F.HostFailure as e:
            self.errors["failed"] += 1
            self._error(ready, F.NAMES.get(e.code, "failed"), topic, e.detail)
        return ready

    def _on_input(self, ready, topic, payload):
        try:
            origin = T.parse_origin(topic[len(T.ROOT) + 3:-3])
        except ValueError:
            self.errors["unknown_topic"] += 1
            return
        host = self.hosts.get(origin)
        if host is None:
            self.errors["unknown_topic"] += 1  # a late message for a daemon that left
            return
        f = FR.decode(payload)
        if f.type != FR.INPUT:
            raise FR.MalformedFrame("expected INPUT on an inbox, got %s" % f.type_name())
        body = f.body()
        data = body.get("p") if isinstance(body, dict) else None
        if not isinstance(data, bytes):
            raise FR.MalformedFrame("INPUT body needs 'p': bytes")
        verdict, ev = host.deliver(f.sender, f.counter, data)
        if verdict != NEW:
            if verdict != DUPLICATE:
                self.errors["refused"] += 1
                self._error(ready, "input_refused", topic, "verdict %d for %s/%d" % (verdict, f.sender, f.counter))
            return
        ready.persist.append((_daemon_record_name(origin), host.record()))
        ready.publish.append(self._chain_frame(ready, host, ev[0].to_bytes(), ev[1]))

    # -- control (gateway -> node) --

    def _on_control(self, ready, payload):
        f = FR.decode(payload)
        if f.type != FR.CONTROL:
            raise FR.MalformedFrame("expected CONTROL, got %s" % f.type_name())
        body = f.body()
        if not isinstance(body, dict) or not isinstance(body.get("cmd"), str):
            raise FR.MalformedFrame("CONTROL body needs 'cmd'")
        cmd = body["cmd"]
        if cmd == "activate":
            origin, kind, epoch = body.get("origin"), body.get("kind"), body.get("epoch")
            if not (isinstance(origin, int) and isinstance(kind, str) and isinstance(epoch, int) and epoch > 0):
                raise FR.MalformedFrame("activate needs origin:int, kind:text, epoch:int>0")
            self._activate(ready, kind, origin, epoch)
        elif cmd == "stop":
            origin = body.get("origin")
            if not isinstance(origin, int):
                raise FR.MalformedFrame("stop needs origin:int")
            self._stop(ready, origin, body.get("wipe") is True)
        else:
            raise FR.MalformedFrame("unknown command %r" % cmd)

    def _activate(self, ready, kind, origin, epoch):
        host = self.hosts.get(origin)
        if host is not None:
            if epoch > host.epoch:
                host.epoch = epoch  # re-activation at a newer epoch fences older frames
                ready.persist.append((_daemon_record_name(origin), host.record()))
            return
        if self._quarantined(origin):
            raise F.HostFailure(F.STATE_FAILED, "origin %08x has a corrupt record; not reset" % origin)
        if len(self.hosts) >= MAX_HOSTED:
            raise F.HostFailure(F.STATE_FAILED, "node hosts its maximum of %d daemons" % MAX_HOSTED)
        if origin not in self.registry.slots and self.key_loader is not None:
            self.key_loader()
        daemon = self.registry.create(kind, origin)  # typed failure: factory / identity missing
        host = DaemonHost(kind, origin, daemon, epoch)
        self.hosts[origin] = host
        ready.persist.append((_daemon_record_name(origin), host.record()))

    def _stop(self, ready, origin, wipe):
        host = self.hosts.pop(origin, None)
        if host is None:
            return
        self.store.delete(_daemon_record_name(origin))
        if wipe:
            self.registry.wipe(origin)
        gc.collect()

    # -- heartbeat --

    def heartbeat(self, free_heap=None, flash_free=None, uptime_ms=0, mqtt=None):
        ready = Ready()
        body = {
            "board": self.cfg.board, "up": uptime_ms, "heap": free_heap, "flash": flash_free,
            "kinds": self.registry.kinds(), "keys": sorted(self.registry.slots),
            "daemons": [h.summary() for h in self.hosts.values()],
            "errors": self.errors, "corrupt": sorted(self.corrupt), "mqtt": mqtt or {},
        }
        ready.publish.append((T.node(self.node_id, "hb"), self._frame(ready, FR.HEARTBEAT, body), 0, False))
        return ready
