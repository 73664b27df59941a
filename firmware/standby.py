"""Standby groups on the node (docs/PROTOCOL.md §17): keep a copy without running the daemon,
promote, demote (the active's `snap` is answered by node.py itself: an active loads none of this,
and a promotion does not load migrate.py: a standby's heap is small).  Loaded by the first group command,
like migrate.py: a node outside any group pays no heap for it.

A standby copy is the flash record `s<origin>` = {"rec": the active's record (§12) as
canonical CBOR, "seq": its head seq}; `core.standby` maps origin -> seq (heartbeats report it).

Promotion restores the copy at the new epoch but does NOT subscribe yet (state "p"): the
gateway feeds the logged backlog in small acknowledged batches (`feed` -> `fed`: a frozen active
may leave hundreds, more than a board can buffer), then `listen` subscribes and holds (state
"l"), the last few logged inputs follow as `feed`, and `start` processes what was held.
"""
from ..shared import cbor
from ..shared import frame as FR
from ..shared import failures as F
from ..shared import topics as T
from ..shared.link import CausalLink
from .host import DaemonHost
from . import MAX_HOSTED, MAX_REC, parse_input

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

HOLD_CAP = const(64)       # inputs a promoted node holds between `listen` and `start` (one round trip)
HOLD_BYTES = const(4096)   # ... and their frame bytes


def on_input(self, ready, origin, host, mg, payload):
    """An inbox message while promoted: held (state l) until `start`; a full hold fails the
    promotion (the gateway promotes another standby: this one is fenced by the next epoch)."""
    parse_input(payload)  # (refused here if malformed: counted and reported like any bad input)
    if mg[1] != "l":
        return  # (not subscribed yet: a stray delivery of an old session; the log has it)
    mg[2].append(payload)
    mg[3] += len(payload)
    if len(mg[2]) > HOLD_CAP or mg[3] > HOLD_BYTES:
        mg[1], mg[2], mg[3] = "p", [], 0
        self.reply(ready, "failed", mg[0], origin, code=F.STATE_FAILED, detail="hold buffer full")


def command(self, ready, cmd, m, origin, body):
    """One group command (NodeCore.command checks m and origin and turns a HostFailure into
    the `failed` reply)."""
    name = "s%08x" % origin
    host = self.hosts.get(origin)
    if cmd == "keep":
        rec = body.get("rec")
        if not isinstance(rec, bytes):
            raise FR.MalformedFrame("keep needs rec:bytes")
        if host is not None:
            raise F.HostFailure(F.ALREADY_MIGRATING, "%08x is active here" % origin)
        try:
            r = cbor.loads(rec)
            kind, seq = r["kind"], CausalLink.from_bytes(r["head"]).sequence
        except Exception as e:
            raise F.HostFailure(F.STATE_FAILED, "bad record: %s" % e)
        if r.get("origin") != origin:
            raise F.HostFailure(F.STATE_FAILED, "record of another origin")
        if origin not in self.registry.slots and self.key_loader is not None:
            self.key_loader()
        self.registry.check(kind, origin)  # promotion must not be the first to find a missing key
        ready.persist.append((name, {"rec": rec, "seq": seq}))
        self.standby[origin] = seq
        return self.reply(ready, "kept", m, origin, seq=seq)
    mg = self.mig.get(origin)
    if cmd == "promote":
        if host is not None and mg and mg[0] == m and mg[1] in "pl":  # a retry
            return self.reply(ready, "restored", m, origin, seq=host.chain.head.sequence)
        epoch = body.get("epoch")
        if host is not None and mg and mg[1] in "pl" and type(epoch) is int and epoch > host.epoch:
            # promoted again at a newer epoch before `start` (the gateway lost track of the first
            # promotion): this one replaces it, what it was fed so far stays (its window drops
            # the repeats), instead of a refusal that would make the gateway promote another
            host.epoch, host.hold, mg[0], mg[1] = epoch, m, m, "p"
            ready.persist.append(("d%08x" % origin, host.record()))
            return self.reply(ready, "restored", m, origin, seq=host.chain.head.sequence)
        if host is not None:
            raise F.HostFailure(F.ALREADY_MIGRATING, "%08x is hosted here already" % origin)
        epoch, kind, rec = body.get("epoch"), body.get("kind"), body.get("rec")
        if not (type(epoch) is int and epoch > 0 and isinstance(kind, str) and (rec is None or isinstance(rec, bytes))):
            raise FR.MalformedFrame("promote needs epoch:int>0, kind:text, rec:bytes?")
        if len(self.hosts) >= MAX_HOSTED:
            raise F.HostFailure(F.STATE_FAILED, "node hosts its maximum of %d daemons" % MAX_HOSTED)
        try:
            r = cbor.loads(rec if rec is not None else self.records.load(name)["rec"])  # (usually its own copy)
        except Exception as e:
            raise F.HostFailure(F.STATE_FAILED, "no usable copy of %08x: %s" % (origin, e))
        if not isinstance(r, dict) or r.get("origin") != origin or r.get("kind") != kind:
            raise F.HostFailure(F.STATE_FAILED, "copy of another daemon")
        if origin not in self.registry.slots and self.key_loader is not None:
            self.key_loader()
        host = DaemonHost.from_record(r, self.registry)  # typed failures: kind, key slot
        del r
        host.epoch = epoch
        host.hold = m  # (on flash: a reboot mid-promotion comes back held, then is demoted)
        self.hosts[origin] = host
        self.mig[origin] = [m, "p", [], 0]  # fed by the gateway, not subscribed yet
        ready.persist.append(("d%08x" % origin, host.record()))
        if self.standby.pop(origin, None) is not None:
            ready.persist.append((name, None))
        return self.reply(ready, "restored", m, origin, seq=host.chain.head.sequence)
    if cmd in ("feed", "listen", "start"):
        if host is None or not mg or mg[0] != m or mg[1] not in "pl":
            if cmd == "start" and host is not None and not mg:  # a redelivery: it started already
                return self.reply(ready, "active", m, origin, seq=host.chain.head.sequence)
            raise F.HostFailure(F.STATE_FAILED, "%08x is not being promoted here (%d)" % (origin, m))
        if cmd == "listen":
            mg[1] = "l"  # the driver subscribes before it publishes the reply
            return self.reply(ready, "listening", m, origin, seq=host.chain.head.sequence)
        if cmd == "start":  # what it held arrives next, one input at a time, as any input does
            del self.mig[origin]
            host.hold = None
            ready.persist.append(("d%08x" % origin, host.record()))
            if mg[2]:
                t = T.daemon(origin, "in")
                ready.requeue = [(t, p) for p in mg[2]]
            return self.reply(ready, "active", m, origin, seq=host.chain.head.sequence)
        items = body.get("inputs")
        if not isinstance(items, list):
            raise FR.MalformedFrame("feed needs inputs: list")
        n = 0
        for it in items:
            if isinstance(it, list) and len(it) == 3 and isinstance(it[0], str) and type(it[1]) is int \
                    and isinstance(it[2], bytes):
                n += self._feed(ready, host, it, "replay")
            else:
                self.errors["malformed"] += 1
        if n:
            ready.persist.append(("d%08x" % origin, host.record()))
        return self.reply(ready, "fed", m, origin, seq=host.chain.head.sequence, b=body.get("b"))
    if cmd == "demote":  # a deposed active (frozen or rebooted): fenced, it becomes a standby
        epoch = body.get("epoch")
        if type(epoch) is not int:
            raise FR.MalformedFrame("demote needs epoch:int")
        if host is not None and host.epoch < epoch:
            rec = cbor.dumps(host.record(), True)
            seq = host.chain.head.sequence
            del self.hosts[origin]
            self.mig.pop(origin, None)
            ready.persist.append(("d%08x" % origin, None))
            if len(rec) <= MAX_REC:
                ready.persist.append((name, {"rec": rec, "seq": seq}))
                self.standby[origin] = seq
        return self.reply(ready, "demoted", m, origin, seq=self.standby.get(origin, -1))
    raise FR.MalformedFrame("unknown command %r" % cmd)
