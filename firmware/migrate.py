"""Live migration on the node (docs/PROTOCOL.md §16): freeze, snapshot, restore, hold, release,
replay, go, resume.  A module of its own, imported by the first migration command: a node that
never migrates pays no heap for it.  Functions of NodeCore's state (`core.mig`: origin ->
[migration id, "f"rozen | "h"eld | "r"eleased, INPUT frames, their bytes]).
"""
import gc

from ..shared import cbor
from ..shared import frame as FR
from ..shared import topics as T
from ..shared import failures as F
from .host import DaemonHost
from .node import MAX_HOSTED, MAX_REC, _parse

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

MIG_CAP = const(64)      # inputs a frozen or held daemon buffers during a migration
MIG_BYTES = const(4096)  # ... and their frame bytes


def command(self, ready, cmd, origin, body, handler=None):
    """Run a migration (or, with `handler`, a standby-group) command; a typed failure becomes a
    `failed` reply the gateway acts on."""
    m = body.get("m")
    if not (isinstance(origin, int) and type(m) is int):
        raise FR.MalformedFrame("%s needs m:int, origin:int" % cmd)
    try:
        (handler or _command)(self, ready, cmd, m, origin, body)
    except F.HostFailure as e:
        reply(self, ready, "failed", m, origin, code=e.code, detail=str(e.detail)[:160])


def run(self, ready, host, items, raw):
    """Deliver inputs in order (INPUT frames when raw, else triples), persisting once."""
    n = 0
    for it in items:
        if raw:
            it = _parse(it)  # (checked when buffered)
        elif not (isinstance(it, list) and len(it) == 3 and isinstance(it[0], str) and type(it[1]) is int
                  and isinstance(it[2], bytes)):
            self.errors["malformed"] += 1
            continue
        n += self._feed(ready, host, it, "replay")
    if n:
        ready.persist.append(("d%08x" % host.origin, host.record()))


def reply(self, ready, op, m, origin, **kw):
    kw["op"] = op
    kw["m"] = m
    kw["o"] = origin
    ready.publish.append((T.node(self.node_id, "mig"), self.frame(ready, FR.MIGRATION, kw), 1, False))


def on_input(self, ready, origin, host, mg, payload):
    inp = _parse(payload)
    if mg[1] == "r":  # released here: forward it to the gateway
        reply(self, ready, "buffered", mg[0], origin, inputs=[inp])
        return
    del inp
    buf = mg[2]
    buf.append(payload)
    mg[3] += len(payload)
    if len(buf) > MIG_CAP or mg[3] > MIG_BYTES:
        del self.mig[origin]
        if mg[1] == "f":  # frozen: give up the migration, process the buffer in order
            run(self, ready, host, buf, 1)
        else:  # held: this node lets go of it
            self.hosts.pop(origin, None)
            ready.persist.append(("d%08x" % origin, None))
        reply(self, ready, "failed", mg[0], origin, code=F.STATE_FAILED, detail="buffer full")


def _command(self, ready, cmd, m, origin, body):
    host = self.hosts.get(origin)
    mg = self.mig.get(origin)
    name = "d%08x" % origin
    if cmd == "restore":
        if host is not None:
            if mg and mg[0] == m and mg[1] == "h":  # a retry
                return reply(self, ready, "restored", m, origin, seq=host.chain.head.sequence)
            raise F.HostFailure(F.ALREADY_MIGRATING, "%08x is hosted here already" % origin)
        rec, epoch = body.get("rec"), body.get("epoch")
        if not (isinstance(rec, bytes) and type(epoch) is int and epoch > 0):
            raise FR.MalformedFrame("restore needs rec:bytes, epoch:int>0")
        if len(self.hosts) >= MAX_HOSTED:
            raise F.HostFailure(F.STATE_FAILED, "node hosts its maximum of %d daemons" % MAX_HOSTED)
        if origin not in self.registry.slots and self.key_loader is not None:
            self.key_loader()
        try:
            rec = cbor.loads(rec)
        except Exception as e:
            raise F.HostFailure(F.STATE_FAILED, "bad record: %s" % e)
        if not isinstance(rec, dict) or rec.get("origin") != origin:
            raise F.HostFailure(F.STATE_FAILED, "record of another origin")
        host = DaemonHost.from_record(rec, self.registry)  # typed failures: kind, key slot
        host.epoch = epoch
        self.hosts[origin] = host
        self.mig[origin] = [m, "h", [], 0]
        ready.persist.append((name, host.record()))
        return reply(self, ready, "restored", m, origin, seq=host.chain.head.sequence)
    if cmd == "release":
        if mg and mg[0] == m and mg[1] == "r":  # a retry: the buffer left already
            return reply(self, ready, "buffered", m, origin, inputs=[])
        if host is None or not mg or mg[0] != m or mg[1] != "f":
            raise F.HostFailure(F.STATE_FAILED, "%08x is not frozen here for migration %d" % (origin, m))
        self.hosts.pop(origin)
        self.mig[origin] = [m, "r", None, 0]
        ready.persist.append((name, None))
        reply(self, ready, "buffered", m, origin, inputs=[_parse(p) for p in mg[2]])
        gc.collect()
        return
    if host is None:
        raise F.HostFailure(F.STATE_FAILED, "%08x is not hosted here" % origin)
    if cmd == "freeze":
        if mg and (mg[0] != m or mg[1] != "f"):
            raise F.HostFailure(F.ALREADY_MIGRATING, "%08x is migrating (%d)" % (origin, mg[0]))
        rec = cbor.dumps(host.record(), True)
        if len(rec) > MAX_REC:
            raise F.HostFailure(F.STATE_FAILED, "record of %d bytes exceeds %d" % (len(rec), MAX_REC))
        if not mg:
            self.mig[origin] = [m, "f", [], 0]
        return reply(self, ready, "snapshot", m, origin, rec=rec)
    if mg and mg[0] != m:
        raise F.HostFailure(F.ALREADY_MIGRATING, "%08x is migrating (%d)" % (origin, mg[0]))
    if cmd == "replay":  # (also after go: late forwarded inputs, the window drops repeats)
        if not isinstance(body.get("inputs"), list):
            raise FR.MalformedFrame("replay needs inputs: list")
        run(self, ready, host, body["inputs"], 0)
    elif mg and mg[1] == ("h" if cmd == "go" else "f"):  # go: leave HOLD; resume: abort, unfreeze
        del self.mig[origin]
        run(self, ready, host, mg[2], 1)
    if cmd == "go":
        reply(self, ready, "active", m, origin, seq=host.chain.head.sequence)
