"""Standby groups on the node (docs/PROTOCOL.md §17): keep a copy without running the daemon,
promote, demote (the active's `snap` is answered by node.py itself: an active loads none of this).  Loaded by the first group command,
like migrate.py: a node outside any group pays no heap for it.

A standby copy is the flash record `s<origin>` = {"rec": the active's record (§12) as
canonical CBOR, "seq": its head seq}; `core.standby` maps origin -> seq (heartbeats report it).

Promotion restores the copy through the migration target's path (migrate.py) but does NOT
subscribe yet (state "p"): the gateway feeds the logged backlog in small acknowledged batches
(`feed` -> `fed`: a frozen active may leave hundreds, more than a board can buffer), then
`listen` subscribes and holds (state "h"), and the last few inputs plus `go` follow, exactly
as after a migration's cutover.
"""
from ..shared import cbor
from ..shared import frame as FR
from ..shared import failures as F
from ..shared.link import CausalLink
from .node import MAX_REC


def command(self, ready, cmd, origin, body):
    """One group command; a typed failure becomes a `failed` reply (as migrate.command does, which
    a standby does not load: its heap is better spent on the copy it keeps)."""
    m = body.get("m")
    if not (isinstance(origin, int) and type(m) is int):
        raise FR.MalformedFrame("%s needs m:int, origin:int" % cmd)
    try:
        _command(self, ready, cmd, m, origin, body)
    except F.HostFailure as e:
        self.reply(ready, "failed", m, origin, code=e.code, detail=str(e.detail)[:160])


def _command(self, ready, cmd, m, origin, body):
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
        if host is not None and mg and mg[0] == m and mg[1] == "p":  # a retry
            return self.reply(ready, "restored", m, origin, seq=host.chain.head.sequence)
        rec = body.get("rec")
        if rec is None:  # the usual case: the copy this standby keeps
            try:
                rec = self.store.load(name)["rec"]
            except Exception as e:
                raise F.HostFailure(F.STATE_FAILED, "no standby copy of %08x: %s" % (origin, e))
        from .migrate import _command as migration
        migration(self, ready, "restore", m, origin,
                  {"rec": rec, "epoch": body.get("epoch"), "kind": body.get("kind")})
        self.mig[origin][1] = "p"  # (set before the driver syncs subscriptions: not subscribed)
        if self.standby.pop(origin, None) is not None:
            ready.persist.append((name, None))
        return
    if cmd in ("feed", "listen"):
        if host is None or not mg or mg[0] != m:
            raise F.HostFailure(F.STATE_FAILED, "%08x is not being promoted here (%d)" % (origin, m))
        if cmd == "listen":
            mg[1] = "h"  # the driver subscribes before it publishes the reply
            return self.reply(ready, "listening", m, origin, seq=host.chain.head.sequence)
        if not isinstance(body.get("inputs"), list):
            raise FR.MalformedFrame("feed needs inputs: list")
        from .migrate import run  # (loaded by the promotion)
        run(self, ready, host, body["inputs"])
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
