"""DaemonHost: one hosted daemon's runtime state — chain head (O(1)), epoch, input window, stats.

Sans-I/O: `deliver()` turns one input into one chain event and says what to persist; the node
driver (firmware/node.py) writes the record to flash, THEN publishes the event, THEN acks the
input.  A crash between any two steps is safe: an input not yet persisted is redelivered by the
broker (QoS 1) and processed once; an event persisted but not published is republished at boot
from the record's `last` field (the gateway's log drops the duplicate).
"""
from ..shared import event as EV
from ..shared import failures as F
from ..shared.dedup import DUPLICATE, NEW, InputWindow
from ..shared.link import CausalLink, ChainBuilder
from .daemon import InputEvent

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

MAX_SNAPSHOT = const(4096)   # daemon state bytes: must fit a board's RAM and a few MQTT chunks
MAX_INPUT = const(2048)      # input payload bytes accepted into a daemon
RECORD_VERSION = const(1)
# Chain events the gateway has not yet said it stored (its `stored` mark, PROTOCOL §11), kept
# to resend on its gap request: a broker drops QoS 1 messages silently at a full session queue.
# At either cap the host takes no further input (they wait at the broker) until the mark moves.
# (underscored: a const() name without one is a module global too, and a board pays heap for it)
_MAX_UNMARKED = const(16)
_MAX_UNMARKED_BYTES = const(1536)  # link + event payload + input payload of the kept events
_HAS_INPUT = const(0x8000)  # in a kept event's 2-byte length of its payload: the input follows
OVER_CAP = const(8)  # deliver() verdict: the input would take the state over max_state: refused,
#                      nothing changed (no event, the window does not admit it, the state restored)


class DaemonHost:
    max_state = MAX_SNAPSHOT  # (the driver sets the node's config `max_state`)

    def __init__(self, kind, origin, daemon, epoch=1, chain=None, window=None):
        self.kind = kind
        self.origin = origin
        self.daemon = daemon
        self.epoch = epoch
        self.chain = chain or ChainBuilder(origin)
        self.window = window or InputWindow()
        self.last = None  # (link bytes, payload) of the newest event, for republish after a crash
        self.hold = None  # migration id while frozen (source) or held (target): on flash, so a
        #                   reboot comes back holding, never processing (PROTOCOL §16)
        self.stats = {"processed": 0, "errors": 0, "duplicates": 0, "refused": 0}
        self.sent = []     # events published, not yet marked stored: one bytes each (below)

    def deliver(self, sender, counter, payload):
        """Process one input.  Returns dedup.NEW (an event was emitted: `last` holds its link
        bytes and payload), DUPLICATE, TOO_OLD or FULL (nothing happened; the driver reports
        the latter two).  Oversize input is processed as an error event, so the sender sees it
        on the chain rather than a silent drop.  A MemoryError propagates (it is the board's
        state, not the input's: an error event for it would not replay the same elsewhere);
        the host may then be ahead of its record, and the driver reloads it from flash.
        """
        verdict = self.window.check(sender, counter)
        st = self.stats
        if verdict != NEW:
            st["duplicates" if verdict == DUPLICATE else "refused"] += 1
            return verdict
        status, outputs = EV.OK, None
        if len(payload) > MAX_INPUT:
            status, outputs = EV.FAILED, [b"input too large"]
        else:
            d = self.daemon
            # the cap is checked BEFORE anything moves: the state as it was, to put back if the
            # new one is over the cap (RAM must never be ahead of what flash can hold)
            before = d.snapshot()
            try:
                outputs = d.process(InputEvent(payload, sender, counter, self.chain.head.sequence + 1))
                if not isinstance(outputs, list) or any(not isinstance(o, bytes) for o in outputs):
                    raise TypeError("process() must return a list of bytes")
            except MemoryError:
                raise
            except Exception as e:  # the daemon's bug must not crash the node: it goes on the chain
                # only the type name: messages differ between ports' error-reporting levels, and
                # the event must be byte-identical when another board replays this input
                status, outputs = EV.FAILED, [type(e).__name__.encode()]
            if status == EV.OK and len(d.snapshot()) > self.max_state:
                d.restore(before)
                st["refused"] += 1
                return OVER_CAP
            before = None
        if status == EV.FAILED:
            st["errors"] += 1
        body = EV.encode(sender, counter, payload, status, outputs)  # (deterministic: replays rebuild it)
        link = self.chain.append(body).to_bytes()
        self.last = (link, body)
        # kept as ONE bytes (a tuple of three costs a board ~100 B more each): link (24) |
        # len(event payload) u16 LE, _HAS_INPUT set as the input follows | event payload | input
        n = len(body) | _HAS_INPUT
        self.sent.append(b"".join((link, bytes((n & 0xFF, n >> 8)), body, payload)))
        self.window.admit(sender, counter)
        st["processed"] += 1
        return NEW

    # -- end-to-end acknowledgement (PROTOCOL §11: the `stored` mark) --

    def full(self):
        """No room to keep one more event until the gateway's mark moves."""
        n = 0
        for e in self.sent:
            n += len(e)
        return len(self.sent) >= _MAX_UNMARKED or n >= _MAX_UNMARKED_BYTES

    # -- persistence (flash records and, later, migration snapshots share this shape) --

    def record(self):
        """Everything needed to resume exactly here, as a plain map for canonical CBOR."""
        state = self.daemon.snapshot()
        if len(state) > self.max_state:
            raise F.HostFailure(F.STATE_FAILED, "snapshot of %d bytes exceeds %d" % (len(state), self.max_state))
        rec = {
            "v": RECORD_VERSION, "kind": self.kind, "origin": self.origin, "epoch": self.epoch,
            "head": self.chain.head.to_bytes(), "next": self.chain.next_parent,
            "state": state, "window": self.window.senders,  # (== window.to_obj(): encoded, not kept)
            "last": self.last, "stats": self.stats,
        }
        if self.hold is not None:
            rec["hold"] = self.hold
        return rec

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
        except (F.HostFailure, MemoryError):
            raise  # (a short heap is not a bad record: the caller retries, it must not drop the host)
        except Exception as e:
            raise F.HostFailure(F.STATE_FAILED, "bad record: %s" % e)
        daemon = registry.create(kind, origin)
        try:
            daemon.restore(rec["state"])
        except MemoryError:
            raise
        except Exception as e:
            raise F.HostFailure(F.STATE_FAILED, "restore failed: %s" % e)
        host = cls(kind, origin, daemon, rec["epoch"], ChainBuilder.resume(head, rec["next"]), window)
        host.hold = rec.get("hold")
        last = rec.get("last")
        if last:
            host.last = (last[0], last[1])
        st = rec.get("stats")
        if isinstance(st, dict):
            for k in host.stats:
                if isinstance(st.get(k), int):
                    host.stats[k] = st[k]
        return host

    def summary(self, size=0):
        """For heartbeats: where this daemon's chain stands, and its record's size on flash
        (what a migration moves: the gateway picks targets with room for it)."""
        return {"origin": self.origin, "kind": self.kind, "epoch": self.epoch,
                "seq": self.chain.head.sequence, "next": self.chain.next_parent, "size": size,
                "kept": len(self.sent)}

