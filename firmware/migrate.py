"""Live migration on the node (docs/PROTOCOL.md §16): freeze, snapshot, restore, hold, release,
replay, go, resume.  A module of its own, imported by the first migration command: a node that
never migrates pays no heap for it.  Functions of NodeCore's state (`core.mig`: origin ->
[migration id, "f"rozen | "h"eld | "r"eleased | "t"ransferring, INPUT frames (for "t": the
restore's [kind, epoch]), their bytes]).

A record larger than one chunk travels as §14 chunks: the source sends them all to the gateway
(`chunk` replies); the gateway sends them to the target one window at a time after `restore`
announced them, the target acknowledges each (`got`) and restores on the last.
"""
import gc

from ..shared import cbor
from ..shared import transfer as X
from ..shared import frame as FR
from ..shared import topics as T
from ..shared import failures as F
from .host import DaemonHost
from . import MAX_HOSTED, parse_input

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

MIG_CAP = const(64)      # inputs a frozen or held daemon buffers during a migration
MIG_BYTES = const(4096)  # ... and their frame bytes
CHUNK = const(2048)      # source -> gateway chunk size (a chunk frame stays well inside a packet)
_rx = None               # the target's Reassembler (one transfer at a time), made by the first


def command(self, ready, cmd, m, origin, body):
    """One migration command (NodeCore.command checks m and origin and turns a HostFailure
    into the `failed` reply); a transfer fault fails it too, but a stale chunk is a redelivery."""
    try:
        _command(self, ready, cmd, m, origin, body)
    except X.TransferError as e:
        if e.args[0] == "stale":
            return
        mg = self.mig.get(origin)
        if mg and mg[1] == "t":
            del self.mig[origin]
        raise F.HostFailure(F.STATE_FAILED, "transfer: %s" % (e.args,))


def _restore(self, ready, m, origin, kind, epoch, rec):
    try:
        rec = cbor.loads(rec)
    except Exception as e:
        raise F.HostFailure(F.STATE_FAILED, "bad record: %s" % e)
    if not isinstance(rec, dict) or rec.get("origin") != origin or rec.get("kind") != kind:
        raise F.HostFailure(F.STATE_FAILED, "record of another daemon")
    host = DaemonHost.from_record(rec, self.registry)  # typed failures: kind, key slot
    del rec
    host.epoch = epoch
    host.hold = m  # (on flash: a reboot comes back held)
    self.hosts[origin] = host
    self.mig[origin] = [m, "h", [], 0]
    ready.persist.append(("d%08x" % origin, host.record()))
    reply(self, ready, "restored", m, origin, seq=host.chain.head.sequence)


def requeue(ready, origin, frames):
    """Hand a buffer of INPUT frames back to the driver, to be processed next, one at a time
    like any input (a whole buffer in one Ready could exhaust a small heap: its chain events
    would all wait in memory), already acknowledged."""
    t = T.daemon(origin, "in")
    ready.requeue = [(t, p) for p in frames]


def run(self, ready, host, items):
    """Deliver replayed inputs ([sender, counter, payload]) in order, persisting once."""
    n = 0
    for it in items:
        if not (isinstance(it, list) and len(it) == 3 and isinstance(it[0], str) and type(it[1]) is int
                and isinstance(it[2], bytes)):
            self.errors["malformed"] += 1
            continue
        n += self._feed(ready, host, it, "replay")
    if n:
        ready.persist.append(("d%08x" % host.origin, host.record()))


def reply(self, ready, op, m, origin, **kw):
    self.reply(ready, op, m, origin, **kw)  # (NodeCore.reply: the standby module shares it)


def on_input(self, ready, origin, host, mg, payload):
    inp = parse_input(payload)
    if mg[1] == "r":  # released here: forward it to the gateway
        reply(self, ready, "buffered", mg[0], origin, inputs=[inp])
        return
    if mg[1] == "t":  # (not subscribed yet: a late one of an older stay here, delivered elsewhere)
        return
    del inp
    buf = mg[2]
    buf.append(payload)
    mg[3] += len(payload)
    if len(buf) > MIG_CAP or mg[3] > MIG_BYTES:
        if mg[1] == "f":  # frozen: give up the migration, process the buffer in order
            host.hold = None
            ready.persist.append(("d%08x" % origin, host.record()))
            requeue(ready, origin, buf)
            self.ended[origin] = mg[0]
            del self.mig[origin]
            detail = "buffer full"
        else:  # held: the gateway's input log has them all; it must replay them before go
            mg[1], mg[2], mg[3] = "b", [], 0
            detail = "hold buffer full"
        reply(self, ready, "failed", mg[0], origin, code=F.STATE_FAILED, detail=detail)


def _command(self, ready, cmd, m, origin, body):
    host = self.hosts.get(origin)
    mg = self.mig.get(origin)
    name = "d%08x" % origin
    if cmd == "restore":
        if host is not None:
            if mg and mg[0] == m and mg[1] == "h":  # a retry
                return reply(self, ready, "restored", m, origin, seq=host.chain.head.sequence)
            raise F.HostFailure(F.ALREADY_MIGRATING, "%08x is hosted here already" % origin)
        if mg and mg[0] == m and mg[1] == "t":
            return  # a redelivery while its chunks arrive
        rec, epoch, kind, t = body.get("rec"), body.get("epoch"), body.get("kind"), body.get("t")
        if not ((isinstance(rec, bytes) or rec is None and type(t) is int) and type(epoch) is int and epoch > 0
                and isinstance(kind, str)):
            raise FR.MalformedFrame("restore needs kind:text, epoch:int>0 and rec:bytes or t:int")
        if len(self.hosts) >= MAX_HOSTED:
            raise F.HostFailure(F.STATE_FAILED, "node hosts its maximum of %d daemons" % MAX_HOSTED)
        if origin not in self.registry.slots and self.key_loader is not None:
            self.key_loader()
        self.registry.check(kind, origin)  # typed failures before any chunk travels
        if rec is not None:
            return _restore(self, ready, m, origin, kind, epoch, rec)
        global _rx
        if _rx is None:
            _rx = X.Reassembler(DaemonHost.max_state + 2048)  # state + the record's other fields
        if t > _rx.max_bytes:
            raise F.HostFailure(F.STATE_FAILED, "record of %d bytes exceeds %d" % (t, _rx.max_bytes))
        if _rx.buf is not None and (self.mig.get(_rx.origin) or "__")[1] != "t":
            _rx.cancel()  # abandoned (its migration was stopped)
        self.mig[origin] = [m, "t", [kind, epoch], 0]
        return
    if cmd == "chunk":
        if not (mg and mg[0] == m and mg[1] == "t"):
            if host is not None and mg and mg[0] == m:
                return  # a redelivery after the restore
            raise F.HostFailure(F.STATE_FAILED, "no restore of %08x in progress for migration %d" % (origin, m))
        c = X.chunk_from_obj(body.get("c"))
        if c["m"] != m or c["o"] != origin:
            raise X.TransferError("mismatch", "m/o")
        rec = _rx.feed(c, self.now)
        if rec is None:
            return reply(self, ready, "got", m, origin, i=c["i"])
        del c
        kind, epoch = mg[2]
        del self.mig[origin]
        gc.collect()
        return _restore(self, ready, m, origin, kind, epoch, rec)
    if cmd == "release":
        if mg and mg[0] == m and mg[1] == "r":  # a retry: the buffer left already
            return reply(self, ready, "buffered", m, origin, inputs=[])
        if host is not None and not mg and self.ended.get(origin) == m:
            mg = [m, "b", [], 0]  # given up (buffer full) after the gateway's cutover: let go
        if host is None or not mg or mg[0] != m or mg[1] not in "fb":  # ("b": rebooted while frozen)
            raise F.HostFailure(F.STATE_FAILED, "%08x is not frozen here for migration %d" % (origin, m))
        # the reply first, the state after: building it is what takes heap, and a MemoryError
        # here is retried (firmware/main.py) with the state as it was.  Released first, the retry
        # took the release for a redelivery and answered with an empty buffer: the inputs lost
        reply(self, ready, "buffered", m, origin, inputs=[parse_input(p) for p in mg[2]])
        self.hosts.pop(origin)
        self.mig[origin] = [m, "r", None, 0]
        ready.persist.append((name, None))
        gc.collect()
        return
    if host is None:
        raise F.HostFailure(F.STATE_FAILED, "%08x is not hosted here" % origin)
    if cmd == "freeze":
        if m <= self.ended.get(origin, -1):
            raise F.HostFailure(F.STATE_FAILED, "migration %d of %08x ended" % (m, origin))  # a redelivery
        if mg and (mg[0] != m or mg[1] != "f"):
            raise F.HostFailure(F.ALREADY_MIGRATING, "%08x is migrating (%d)" % (origin, mg[0]))
        host.hold = m
        rec = host.record()
        ready.persist.append((name, rec))  # frozen on flash too: a reboot comes back held
        rec = cbor.dumps(rec, True)
        if not mg:
            self.mig[origin] = [m, "f", [], 0]
        if len(rec) <= CHUNK:
            return reply(self, ready, "snapshot", m, origin, rec=rec)
        for c in X.pieces(m, origin, rec, CHUNK):  # the gateway reassembles them
            reply(self, ready, "chunk", m, origin, c=c)
        return
    if mg and mg[0] != m:
        raise F.HostFailure(F.ALREADY_MIGRATING, "%08x is migrating (%d)" % (origin, mg[0]))
    if cmd == "replay":  # (also after go: late forwarded inputs, the window drops repeats)
        if not isinstance(body.get("inputs"), list):
            raise FR.MalformedFrame("replay needs inputs: list")
        if mg and mg[1] == "b" and body.get("log") is True:
            mg[1] = "h"  # the gateway's log covers what the reboot (or a full buffer) lost
        run(self, ready, host, body["inputs"])
        if "b" in body:  # an acknowledged batch: the gateway sends the next ones on this
            reply(self, ready, "replayed", m, origin, b=body["b"])
        return
    if mg and mg[1] == "b":
        return  # go/resume wait for the gateway's log replay (a go sent before the reboot is stale)
    # go: leave HOLD; resume: abort, unfreeze.  A go of its own migration to a FROZEN node ends
    # the gateway's recovery of an aborted one (a freeze that came late, after the resume)
    if mg and (mg[1] == "f" or cmd == "go" and mg[1] == "h"):
        host.hold = None
        ready.persist.append((name, host.record()))  # (the hold mark off flash)
        requeue(ready, origin, mg[2])
        self.ended[origin] = m
        del self.mig[origin]  # (last: a MemoryError above leaves the command to retry whole)
    if cmd == "go":
        reply(self, ready, "active", m, origin, seq=host.chain.head.sequence)
