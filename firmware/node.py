"""NodeCore: the node's protocol logic, sans-I/O.

The driver (firmware/main.py) reads the flash records and hands NodeCore a read-only view of
them at boot(), then feeds it MQTT messages and timer ticks; each call returns a Ready: records
to quarantine and persist (written to flash FIRST), then frames to publish, in order.  Only then
does the driver acknowledge the input to the broker, so a crash at any point loses nothing and
doubles nothing (see firmware/host.py).  NodeCore never writes flash, never touches a file, and
reads only through the view: a record when it needs it (at boot, at reload(), a standby copy at
its promotion), one at a time, as a daemon record may be as large as the heap allows.

Written for a node's heap (like the MQTT client): few methods, no throwaway objects per event.
"""
import gc
import sys

from ..shared import cbor
from ..shared import frame as FR
from ..shared import topics as T
from ..shared import failures as F
from ..shared.dedup import DUPLICATE, NEW
from . import MAX_HOSTED, MAX_REC, CorruptRecord, Ready, parse_input, unload
from .host import DaemonHost

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_RESEND_MAX = const(8)  # events resent per gap request (their frames wait in one Ready): the gateway asks again
_OVER_CAP = const(8)  # (host.OVER_CAP: a const, not a global imported into this module's heap)
_MAX_WITH_INPUT = const(6144)  # event + input bytes up to which a CHAIN_EVENT carries its input (a frame: 8 KB)
COUNTER_BLOCK = const(1024)  # frame counters reserved on flash per write: strictly increasing across reboots
NODE_RECORD = "node"
QUARANTINED = ".bad"  # a record view lists a record set aside as "<name>.bad"
PKG = __name__[:__name__.rfind(".")]  # (netedge.firmware, or whatever a board's layout makes it)


class NodeCore:
    def __init__(self, cfg, registry):
        self.cfg = cfg
        self.node_id = cfg.node_id
        self.registry = registry
        self.records = None    # the read-only view of the flash records, from boot()
        self.hosts = {}        # origin -> DaemonHost
        self.mig = {}          # origin -> [migration id, "f"rozen | "h"eld | "b"ooted held | "r"eleased |
        #                                "t"ransferring, frames, bytes] (firmware/migrate.py)
        self.ended = {}        # origin -> id of its last migration that ended here (a late freeze of it is refused)
        self.standby = {}      # origin -> seq of the standby copy held on flash (standby.py)
        self.corrupt = {}      # record name -> reason (reported in every heartbeat)
        self.counter = 0
        self.counter_reserved = 0
        self.errors = {"malformed": 0, "unknown_topic": 0, "stale_epoch": 0, "refused": 0, "failed": 0,
                       "overflow": 0, "memory": 0}
        self.key_loader = None  # driver hook: re-read key slots provisioned over USB since boot
        self.boot_id = 0
        self.now = 0            # the driver's clock (seconds) at the message being handled
        self.stalled = set()    # origins whose kept events are at their cap: their inputs wait at the
        #                         broker (the driver refuses them) until the gateway's mark moves

    # -- boot --

    def boot(self, records, boot_id):
        """Take the node and daemon records from `records`, a read-only view of the flash:
        names() -> every record's name, a set-aside one as "<name>.bad"; load(name) -> the
        record, None when there is none, CorruptRecord when it is damaged.  boot_id: a random
        id of this boot (the gateway tells a reboot from a reconnect).  Returns the Ready of
        boot-time reports and writes (damaged records to set aside among them)."""
        ready = Ready()
        self.records = records
        self.boot_id = boot_id
        try:
            rec = records.load(NODE_RECORD) or {}
        except CorruptRecord as e:
            # counters only: skip far ahead so no counter repeats, and report it
            rec = {"ctr": 1 << 30}
            self.corrupt[NODE_RECORD] = e.why
            ready.quarantine += (NODE_RECORD,)
        self.counter = self.counter_reserved = rec.get("ctr", 0)  # (reserved below, by frame())
        self.frame(ready, 0, None)
        for name in records.names():
            if name.endswith(QUARANTINED):  # set aside at an earlier boot: never reset at genesis
                if name[:1] == "d":
                    self.corrupt[name[:-len(QUARANTINED)]] = "quarantined record on flash"
                continue
            if name[:1] == "s":  # a standby copy: only its seq stays in RAM
                try:
                    self.standby[int(name[1:], 16)] = records.load(name)["seq"]
                except Exception as e:  # (CorruptRecord, or not a standby record)
                    self.corrupt[name] = str(e)
                    ready.quarantine += (name,)
                    self.error(ready, "corruption", name, e, 1)
                continue
            if name[:1] != "d":
                continue
            try:
                host = self.load(name)
            except CorruptRecord as e:
                self.corrupt[name] = e.why
                ready.quarantine += (name,)
                self.error(ready, "corruption", name, e.why, 1)
                continue
            except F.HostFailure as e:
                self.corrupt[name] = str(e)
                self.error(ready, "restore_failed", name, e, 1)
                continue
            if host and host.last:  # republish the newest event: it may not have left before the crash
                ready.publish.append(self.chain_frame(ready, host, host.last))
            if host and host.hold is not None:
                # mid-migration when it went down: held ("b"ooted) until the gateway replays its
                # logged inputs (what this node had buffered in RAM is gone) and says go
                self.mig[host.origin] = [host.hold, "b", [], 0]
        for origin in self.cfg.hosted:
            if origin not in self.hosts and "d%08x" % origin not in self.corrupt:
                slot = self.registry.slots.get(origin)
                self._activate(ready, slot.kind if slot else None, origin, 1)
        return ready

    def load(self, name):
        """Build a host from its flash record (None when there is none)."""
        rec = self.records.load(name)
        if rec is not None:
            host = DaemonHost.from_record(rec, self.registry)
            self.hosts[host.origin] = host
            return host

    def reload(self, records):
        """After a MemoryError: a host may be ahead of its record; take every host back to the
        flash records (`records`: the view boot() took, after the driver wrote every Ready).
        (A MemoryError here propagates: the driver tries again before the next input.)"""
        self.records = records
        for origin in list(self.hosts):
            name = "d%08x" % origin
            old = self.hosts[origin]
            try:
                if self.load(name) is None:
                    self.hosts.pop(origin)
                    continue
                host = self.hosts[origin]
                if origin not in self.mig:
                    host.hold = None  # (its hold was lifted: the record not yet written)
                # the events not yet marked stay kept (those the record does not reach are gone:
                # their inputs come again)
                head = host.chain.head.sequence
                host.sent = [k for k in old.sent if int.from_bytes(k[8:16], "little") <= head]
            except MemoryError:
                raise
            except Exception as e:  # (cannot happen to a record just written: never loop on it)
                self.hosts.pop(origin)
                self.corrupt[name] = str(e)

    # -- frames out --

    def frame(self, ready, ftype, body):
        """Frame bytes with the next counter (ftype 0: only reserve counters if needed)."""
        if self.counter + 1 >= self.counter_reserved:
            self.counter_reserved = self.counter + 1 + COUNTER_BLOCK
            ready.persist.append((NODE_RECORD, {"ctr": self.counter_reserved}))
        if ftype:
            self.counter += 1
            return FR.encode(ftype, self.node_id, self.counter, body)

    def chain_frame(self, ready, host, ev):
        """ev: (link, event payload[, input payload]).  The input rides along (`i`) so the
        gateway can log an input the broker dropped on its way there (PROTOCOL §11)."""
        body = {"o": host.origin, "e": host.epoch, "l": ev[0], "p": ev[1]}
        if len(ev) > 2 and ev[2] is not None and len(ev[1]) + len(ev[2]) <= _MAX_WITH_INPUT:
            body["i"] = ev[2]
        return (T.daemon(host.origin, "chain"), self.frame(ready, FR.CHAIN_EVENT, body), 1, False)

    def error(self, ready, code, where, detail, qos=0):
        """Report a problem on the node's error topic.  QoS 0 for bad input (reports must never
        block inputs); QoS 1 for damage found at boot, which must reach the gateway even
        though it is found before the connection is up."""
        body = {"code": code, "at": where, "detail": str(detail)[:160]}
        ready.publish.append((T.node(self.node_id, "err"), self.frame(ready, FR.ERROR, body), qos, False))

    def will(self):
        """(topic, payload) of the retained offline status: the MQTT last will."""
        return (T.node(self.node_id, "status"), FR.encode(FR.STATUS, self.node_id, 0,
                                                          {"state": "offline", "board": self.cfg.board}))

    def online(self):
        """The retained online status, published on every connection."""
        ready = Ready()
        # a new id per boot: the gateway tells a reboot (RAM lost) from a reconnect
        body = {"state": "online", "board": self.cfg.board, "boot": self.boot_id}
        ready.publish.append((T.node(self.node_id, "status"), self.frame(ready, FR.STATUS, body), 1, True))
        return ready

    def subscriptions(self):
        """The topics to subscribe to; the stored marks (`mark`) at QoS 0, the rest at QoS 1:
        a broker delivers at the lower of the two, and a mark must pass a node that takes no
        QoS 1 delivery until a mark comes (firmware/main.py)."""
        subs = [T.node(self.node_id, "ctl"), T.node(self.node_id, "mark")]
        for origin in self.hosts:
            mg = self.mig.get(origin)
            if mg is None or mg[1] != "p":  # (promoted, still fed by the gateway: not yet)
                subs.append(T.daemon(origin, "in"))
        return subs

    # -- inputs --

    def on_message(self, topic, payload, now=0):
        """One MQTT message, at `now` (the driver's clock, seconds).  Returns a Ready; never
        raises on bad input (counted + reported).  MemoryError propagates, maybe with a host
        ahead of its record: see reload()."""
        ready = Ready()
        self.now = now
        err = self.errors
        try:
            f = None
            if topic.startswith(T.ROOT + "/d/") and topic.endswith("/in"):
                try:
                    origin = T.parse_origin(topic[len(T.ROOT) + 3:-3])
                except ValueError:
                    origin = None
                host = self.hosts.get(origin)
                mg = self.mig.get(origin)
                if mg is not None:
                    if mg[1] in "pl":  # a promotion (standby.py)
                        from .standby import on_input
                    else:
                        from .migrate import on_input  # (loaded by the first migration only)
                    on_input(self, ready, origin, host, mg, payload)
                elif host is None:
                    err["unknown_topic"] += 1  # (or a late message for a daemon that left)
                elif self._feed(ready, host, parse_input(payload), topic):
                    ready.persist.append(("d%08x" % origin, host.record()))
            elif topic == T.node(self.node_id, "ctl"):
                self._on_control(ready, payload)
            elif topic == T.node(self.node_id, "mark"):
                f = FR.decode(payload)
                body = f.body() if f.type == FR.CONTROL else None
                if not isinstance(body, dict) or body.get("cmd") != "stored":
                    raise FR.MalformedFrame("a mark is a CONTROL frame with cmd 'stored'")
                self._stored(ready, body.get("origin"), body)
            else:
                err["unknown_topic"] += 1
        except FR.FrameError as e:
            err["malformed"] += 1
            self.error(ready, "malformed", topic, "%s: %s" % (type(e).__name__, e))
        except F.HostFailure as e:
            err["failed"] += 1
            self.error(ready, F.NAMES.get(e.code, "failed"), topic, e.detail)
        return ready

    def _feed(self, ready, host, inp, where):
        """Deliver one [sender, counter, payload]; 1 when it made a chain event (to publish).
        From an inbox, a host whose unmarked events are at their cap takes nothing: the input
        is not processed and not acknowledged (`ready.stall`), so it waits at the broker.
        (A replay the gateway feeds is paced by the gateway: never refused for that.)"""
        if where != "replay" and (host.full() or host.origin in self.stalled):
            self.stalled.add(host.origin)
            ready.stall = 1
            return 0
        verdict = host.deliver(inp[0], inp[1], inp[2])
        if verdict == NEW:
            ready.publish.append(self.chain_frame(ready, host, (host.last[0], host.last[1], inp[2])))
            return 1
        if verdict != DUPLICATE:
            self.errors["refused"] += 1
            self.error(ready, "input_refused", where, "%s for %s/%d" % (
                "state over its cap" if verdict == _OVER_CAP else "verdict %d" % verdict, inp[0], inp[1]))
        return 0

    def _stored(self, ready, origin, body):
        """The gateway's stored-through mark: it holds this chain through `seq` (forget those);
        with `resend`, it lacks what follows: publish every kept event after `seq`, and say
        which ones are gone (a reboot keeps only the newest event) so it records the gap.
        Only at the host's current epoch: a deposed host's gateway view is not this one's."""
        seq, epoch = body.get("seq"), body.get("epoch")
        if not (isinstance(origin, int) and type(seq) is int and type(epoch) is int):
            raise FR.MalformedFrame("stored needs origin, epoch, seq: int")
        host = self.hosts.get(origin)
        if host is None:
            return
        if epoch != host.epoch:
            self.errors["stale_epoch"] += 1
            return
        sent = host.sent  # (each kept event starts with its link: seq u64 LE at offset 8)
        n = 0
        while n < len(sent) and int.from_bytes(sent[n][8:16], "little") <= seq:
            n += 1
        if n:
            del sent[:n]
        if origin in self.stalled and not host.full():
            self.stalled.discard(origin)
        if body.get("resend") is True:
            head = host.chain.head.sequence
            last = host.last
            if not sent and last and int.from_bytes(last[0][8:16], "little") > seq:
                # after a reboot only the record's newest event is left (its input is not)
                ready.publish.append(self.chain_frame(ready, host, last))
                first = head
            else:
                first = int.from_bytes(sent[0][8:16], "little") if sent else head + 1
            for e in sent[:_RESEND_MAX]:  # link | len(payload) u16 LE (0x8000: input follows) | payload | input
                k = e[24] | (e[25] << 8)
                end = 26 + (k & 0x7FFF)
                ready.publish.append(self.chain_frame(ready, host, (e[:24], e[26:end], e[end:] if k & 0x8000 else None)))
            if first > seq + 1:  # (after the events: the gateway records the gap at the first of them)
                self.error(ready, "gap_lost", "d%08x" % origin, "seq %d..%d" % (seq + 1, first - 1), 1)

    # -- control (gateway -> node) --

    def _on_control(self, ready, payload):
        f = FR.decode(payload)
        if f.type != FR.CONTROL:
            raise FR.MalformedFrame("expected CONTROL, got %s" % f.type_name())
        body = f.body()
        if not isinstance(body, dict) or not isinstance(body.get("cmd"), str):
            raise FR.MalformedFrame("CONTROL body needs 'cmd'")
        cmd = body["cmd"]
        origin = body.get("origin")
        if cmd == "activate":
            kind, epoch = body.get("kind"), body.get("epoch")
            if not (isinstance(origin, int) and isinstance(kind, str) and isinstance(epoch, int) and epoch > 0):
                raise FR.MalformedFrame("activate needs origin:int, kind:text, epoch:int>0")
            self._activate(ready, kind, origin, epoch)
        elif cmd == "snap":  # a group's sync of its active: answered without loading migrate.py
            self._snap(ready, origin, body)
        elif cmd in ("freeze", "restore", "chunk", "release", "replay", "go", "resume", "keep", "promote", "feed",
                     "listen", "start", "demote"):
            if cmd in ("freeze", "restore", "chunk", "release", "replay", "go", "resume"):
                from .migrate import command  # (loaded by the first migration only)
            else:  # (a standby, a promotion, a fork: never migrate.py)
                from .standby import command
            self.command(ready, cmd, origin, body, command)
            self._unload()
        elif cmd == "stop":
            if not isinstance(origin, int):
                raise FR.MalformedFrame("stop needs origin:int")
            self.mig.pop(origin, None)
            self.stalled.discard(origin)
            if self.standby.pop(origin, None) is not None:  # (a standby copy leaves with it)
                ready.persist.append(("s%08x" % origin, None))
            if self.hosts.pop(origin, None) is not None:
                ready.persist.append(("d%08x" % origin, None))  # the driver deletes it
                if body.get("wipe") is True:
                    self.registry.wipe(origin)
            self._unload()
            gc.collect()
        else:
            raise FR.MalformedFrame("unknown command %r" % cmd)

    def _unload(self):
        """Done moving, keeping no standby copy: give migrate.py / standby.py back to the heap."""
        if not self.mig and not self.standby and (PKG + ".migrate" in sys.modules or PKG + ".standby" in sys.modules):
            unload(PKG + ".standby")
            unload(PKG + ".migrate")
            gc.collect()

    def command(self, ready, cmd, origin, body, fn):
        """A migration or group command: fn(self, ready, cmd, m, origin, body); a typed failure
        becomes the `failed` reply the gateway acts on."""
        m = body.get("m")
        if not (isinstance(origin, int) and type(m) is int):
            raise FR.MalformedFrame("%s needs m:int, origin:int" % cmd)
        try:
            fn(self, ready, cmd, m, origin, body)
        except F.HostFailure as e:
            self.reply(ready, "failed", m, origin, code=e.code, detail=str(e.detail)[:160])

    def reply(self, ready, op, m, origin, **kw):
        """A MIGRATION frame to the gateway: the answer to a migration or group command."""
        kw["op"] = op
        kw["m"] = m
        kw["o"] = origin
        ready.publish.append((T.node(self.node_id, "mig"), self.frame(ready, FR.MIGRATION, kw), 1, False))

    def _snap(self, ready, origin, body):
        m = body.get("m")
        if not (isinstance(origin, int) and type(m) is int):
            raise FR.MalformedFrame("snap needs m:int, origin:int")
        host = self.hosts.get(origin)
        try:
            if host is None:
                raise F.HostFailure(F.STATE_FAILED, "%08x is not hosted here" % origin)
            rec = cbor.dumps(host.record(), True)
            if len(rec) > MAX_REC:
                raise F.HostFailure(F.STATE_FAILED, "record of %d bytes exceeds %d" % (len(rec), MAX_REC))
            self.reply(ready, "snap", m, origin, rec=rec, seq=host.chain.head.sequence)
        except F.HostFailure as e:
            self.reply(ready, "failed", m, origin, code=e.code, detail=str(e.detail)[:160])

    def _activate(self, ready, kind, origin, epoch):
        host = self.hosts.get(origin)
        if host is None:
            if "d%08x" % origin in self.corrupt:
                raise F.HostFailure(F.STATE_FAILED, "origin %08x has a corrupt record; not reset" % origin)
            if len(self.hosts) >= MAX_HOSTED:
                raise F.HostFailure(F.STATE_FAILED, "node hosts its maximum of %d daemons" % MAX_HOSTED)
            if origin not in self.registry.slots and self.key_loader is not None:
                self.key_loader()
            daemon = self.registry.create(kind, origin)  # typed failure: factory / identity missing
            host = self.hosts[origin] = DaemonHost(kind, origin, daemon, epoch)
            self.mig.pop(origin, None)
        elif epoch > host.epoch:
            host.epoch = epoch  # re-activation at a newer epoch fences older frames
        else:
            return
        ready.persist.append(("d%08x" % origin, host.record()))

    # -- heartbeat --

    def heartbeat(self, free_heap=None, flash_free=None, uptime_ms=0, mqtt=None, sizes=None):
        """The node's heartbeat; the driver's measurements in: free heap and flash, uptime, its
        MQTT client's counters, and the size of each record it wrote (name -> bytes)."""
        ready = Ready()
        sizes = sizes or {}
        body = {
            "board": self.cfg.board, "up": uptime_ms, "heap": free_heap, "flash": flash_free,
            "kinds": self.registry.kinds(), "keys": sorted(self.registry.slots),
            "daemons": [h.summary(sizes.get("d%08x" % h.origin, 0)) for h in self.hosts.values()],
            "errors": self.errors, "corrupt": sorted(self.corrupt), "mqtt": mqtt or {},
        }
        if self.standby:
            body["standby"] = [[o, s] for o, s in self.standby.items()]
        ready.publish.append((T.node(self.node_id, "hb"), self.frame(ready, FR.HEARTBEAT, body), 0, False))
        return ready
