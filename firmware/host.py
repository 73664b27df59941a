"""DaemonHost: one hosted daemon's runtime state — chain head (O(1)), epoch, input window, stats.

Sans-I/O: `deliver()` turns one input into one chain event and says what to persist; the node
driver (firmware/node.py) writes the record to flash, THEN publishes the event, THEN acks the
input.  A crash between any two steps is safe: an input not yet persisted is redelivered by the
broker (QoS 1) and processed once; an event persisted but not published is republished at boot
from the record's `last` field (the gateway's log drops the duplicate).
"""
from ..shared import cbor
from ..shared import failures as F
from ..shared.dedup import DUPLICATE, NEW, InputWindow
from ..shared.link import CausalLink, ChainBuilder, h8
from .daemon import InputEvent

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

MAX_SNAPSHOT = const(4096)   # daemon state bytes: must fit a board's RAM and a few MQTT chunks
MAX_INPUT = const(2048)      # input payload bytes accepted into a daemon
EV_OK = const(0)
EV_ERROR = const(1)
RECORD_VERSION = const(1)


def event_payload(sender, counter, payload, status, outputs):
    """The chain event's payload: binds the input id and a digest of its bytes to the outputs.

    Deterministic (canonical CBOR), so replaying the same inputs on another board rebuilds
    byte-identical events — a replayed chain is the same chain.
    """
    return cbor.dumps([sender, counter, h8(payload), status, outputs], True)


class DaemonHost:
    def __init__(self, kind, origin, daemon, epoch=1, chain=None, window=None):
        self.kind = kind
        self.origin = origin
        self.daemon = daemon
        self.epoch = epoch
        self.chain = chain or ChainBuilder(origin)
        self.window = window or InputWindow()
        self.last = None  # (link bytes, payload) of the newest event, for republish after a crash
        self.stats = {"processed": 0, "errors": 0, "duplicates": 0, "refused": 0}

    @property
    def head(self):
        return self.chain.head

    def deliver(self, sender, counter, payload):
        """Process one input.  Returns (verdict, (link, payload) of the new event, or None).

        verdict is dedup.NEW (an event was emitted), DUPLICATE, TOO_OLD or FULL (nothing
        happened; the driver reports the latter two).  Oversize input is processed as an error
        event, so the sender sees it on the chain rather than a silent drop.
        """
        verdict = self.window.check(sender, counter)
        if verdict != NEW:
            self.stats["duplicates" if verdict == DUPLICATE else "refused"] += 1
            return verdict, None
        status, outputs = EV_OK, None
        if len(payload) > MAX_INPUT:
            status, outputs = EV_ERROR, [b"input too large"]
        else:
            try:
                outputs = self.daemon.process(InputEvent(payload, sender, counter, self.chain.sequence + 1))
                if not isinstance(outputs, list) or any(not isinstance(o, bytes) for o in outputs):
                    raise TypeError("process() must return a list of bytes")
            except Exception as e:  # the daemon's bug must not crash the node: it goes on the chain
                status, outputs = EV_ERROR, [("%s: %s" % (type(e).__name__, e)).encode()[:120]]
        if status == EV_ERROR:
            self.stats["errors"] += 1
        body = event_payload(sender, counter, payload, status, outputs)
        link = self.chain.append(body)
        self.window.admit(sender, counter)
        self.stats["processed"] += 1
        self.last = (link.to_bytes(), body)
        return NEW, (link, body)

    # -- persistence (flash records and, later, migration snapshots share this shape) --

    def record(self):
        """Everything needed to resume exactly here, as a plain map for canonical CBOR."""
        state = self.daemon.snapshot()
        if len(state) > MAX_SNAPSHOT:
            raise F.HostFailure(F.STATE_FAILED, "snapshot of %d bytes exceeds %d" % (len(state), MAX_SNAPSHOT))
        return {
            "v": RECORD_VERSION, "kind": self.kind, "origin": self.origin, "epoch": self.epoch,
            "head": self.chain.head.to_bytes(), "next": self.chain.next_parent,
            "state": state, "window": self.window.to_obj(),
            "last": list(self.last) if self.last else None, "stats": self.stats,
        }

    @classmethod
    def from_record(cls, rec, registry):
        """Rebuild from `record()` output through the registry (which must hold the key slot)."""
        try:
            if rec.get("v") != RECORD_VERSION:
                raise ValueError("record version %r" % rec.get("v"))
            kind, origin = rec["kind"], rec["origin"]
            head = CausalLink.from_bytes(rec["head"])
            if head.origin_hash != origin:
                raise ValueError("head link of another origin")
            window = InputWindow.from_obj(rec["window"])
        except F.HostFailure:
            raise
        except Exception as e:
            raise F.HostFailure(F.STATE_FAILED, "bad record: %s" % e)
        daemon = registry.create(kind, origin)
        try:
            daemon.restore(rec["state"])
        except Exception as e:
            raise F.HostFailure(F.STATE_FAILED, "restore failed: %s" % e)
        host = cls(kind, origin, daemon, rec["epoch"], ChainBuilder.resume(head, rec["next"]), window)
        if rec.get("last"):
            host.last = (rec["last"][0], rec["last"][1])
        st = rec.get("stats")
        if isinstance(st, dict):
            for k in host.stats:
                if isinstance(st.get(k), int):
                    host.stats[k] = st[k]
        return host

    def summary(self):
        """For heartbeats: where this daemon's chain stands."""
        return {"origin": self.origin, "kind": self.kind, "epoch": self.epoch,
                "seq": self.chain.sequence, "next": self.chain.next_parent}
