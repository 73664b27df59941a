"""End-to-end acknowledgement of chain events: the gateway's stored-through marks and gap repair.

An event is durable when the gateway has stored it (DESIGN §5.8).  A broker drops QoS 1 messages
silently at a full session queue, so the gateway never trusts the bus to have brought every
event; it tells each daemon's host how far it has stored (the `stored` mark, PROTOCOL §11), the
host keeps every event past the mark (firmware/host.py, a bounded buffer: at its cap the host
takes no more inputs, they wait at the broker), and a hole is repaired by asking the host:

- after storing events of a daemon, a mark to its host: at once every MARK_EVERY events, else
  at the next tick (QoS 0: it passes a node whose in-flight window is full of inputs it cannot
  take yet; a lost mark is repeated when a heartbeat shows the host behind);
- a chain event past the stored head + 1 (a SequenceGap), or a heartbeat whose host is further
  along than the store, is a gap: the mark goes with `resend`, and the host publishes again
  every event it kept past it.  Repeated after RESEND_RETRY_S while the gap stays open;
- only a host that no longer has the missing events (a reboot keeps just the newest one on
  flash) answers `gap_lost`: then, and only then, the gap is a ChainBreak record;
- a daemon recorded as discontinued, or stopped, is stored no further: its host's heartbeat
  showing kept events gets a mark at the host's own seq with `release` (not a claim of
  storage), so the host never reaches its cap and stops taking deliveries.

Fencing: marks and gap requests go to the daemon's current host at its current epoch (and a
plain mark, never a gap request, to a former host whose heartbeat shows it keeping events of an
older epoch: the stored head, at that epoch, so it takes deliveries again);
ingestion takes the resent events only from that host at that epoch (control/core.py), and a
`gap_lost` only from that host.  After a migration or a promotion the new host's buffer starts
at what it took over, so a gap left by the old host is not the new host's to fill: such a gap
(the new host's first event past the stored head) is asked for, answered `gap_lost` by the new
host, and recorded.
"""
import logging

from ...shared import frame as FR
from ...shared import topics as T
from ...shared.chain import SequenceGap

log = logging.getLogger("netedge.gateway")

MARK_EVERY = 4          # stored events of a daemon between two immediate marks (else: at the tick)
RESEND_RETRY_S = 0.5    # a gap request not yet filled is asked again after this
# A gap is first asked for this long after it showed: an event overtaken by a later one (a node's
# retransmission after a reconnect) usually arrives meanwhile, and a resend costs a board's heap
GAP_WAIT_S = 0.2
MAX_GAPS = 1024         # open gaps remembered (one per daemon; bounded like everything else)
NOT_STORED = ("discontinued", "stopped")  # daemon statuses whose chain the gateway stores no more


class Acknowledger:
    def __init__(self, core):
        self.core = core
        self.marked = {}   # origin -> the seq of the last mark sent (this run)
        self.due = set()   # origins stored past their last mark: marked at the next tick
        self.gaps = {}     # origin -> [first refused event past the gap or None, its error, asked at]

    # -- called by ingestion --------------------------------------------------------------

    def stored(self, acts, origin, seq):
        """Event `seq` of `origin` was just stored (in the entry point's transaction: the mark
        leaves only once it committed, driver.py)."""
        gap = self.gaps.get(origin)
        if gap is not None and gap[0] is not None and seq + 1 >= gap[0].link.sequence:
            self.gaps.pop(origin)  # filled up to the event that showed it
        if seq - self.marked.get(origin, 0) >= MARK_EVERY:
            self.mark(acts, origin, seq)
        else:
            self.due.add(origin)

    def gap(self, acts, origin, event, error, head):
        """`event` came from the current host past the stored head `head`: ask for the rest
        (or, once asked and refused, let ingestion record it).  True: being repaired."""
        if not isinstance(error, SequenceGap) or event.link.sequence <= head + 1:
            return False
        g = self.gaps.get(origin)
        if g is None:
            if len(self.gaps) >= MAX_GAPS:
                return False
            # (asked at the tick, GAP_WAIT_S from now)
            g = self.gaps[origin] = [event, error, self.core.clock.now - RESEND_RETRY_S + GAP_WAIT_S]
        elif g[0] is None or event.link.sequence < g[0].link.sequence:
            g[0], g[1] = event, error
        self._ask(acts, origin, head, g)
        return True

    def lost(self, acts, node, origin):
        """The host says it no longer has events after the stored head: the gap is for good.
        Returns (event, error) to record, or None (no gap known, or not the host)."""
        d = self.core.store.daemon(origin)
        g = self.gaps.get(origin)
        if d is None or d.host_node != node or g is None or g[0] is None:
            return None
        self.gaps.pop(origin)
        return g[0], g[1]

    # -- timers and heartbeats --------------------------------------------------------------

    def heartbeat(self, acts, node, daemons):
        """A host's heartbeat lists where each of its daemons stands (`seq`) and how many
        events it keeps (`kept`): a host ahead of the store has events the bus lost; one that
        keeps events the store holds missed a mark (QoS 0)."""
        store = self.core.store
        for rep in daemons:
            origin, seq, kept = rep.get("origin"), rep.get("seq"), rep.get("kept")
            if not (type(origin) is int and type(seq) is int and type(kept) is int):
                continue  # (a node without acknowledgement: nothing to do)
            d = store.daemon(origin)
            if d is None:
                continue
            epoch = rep.get("epoch")
            if (d.host_node != node or d.epoch != epoch) and kept > 0 and type(epoch) is int and epoch < d.epoch:
                # A former host (a migration's source, a deposed active) still keeps events of an
                # epoch the chain has left: no mark to the current host reaches it, and at its cap
                # it takes no more deliveries, the command that would release it among them.  It
                # is told what the store holds, at its own epoch (what is past the stored head
                # stays kept: never acknowledged, since never stored).
                self._send_mark(acts, node, origin, epoch, self._head(origin))
                continue
            if d.host_node != node or d.epoch != epoch:
                continue
            if d.status in NOT_STORED and kept > 0:
                # A break the gateway recorded (§15), or a daemon stopped (its `stop` may wait
                # behind the input its host stalled on): the gateway stores no more of this
                # chain, so the host would keep its events until its cap and then take no
                # delivery at all, every other daemon's and every command included.  Released,
                # not acknowledged: a signed record, or the operator's stop, accounts for them.
                self._send_mark(acts, node, origin, epoch, seq, release=True)
                continue
            if d.status != "active":
                continue
            head = self._head(origin)
            if seq > head:
                g = self.gaps.get(origin)
                if g is None:
                    if len(self.gaps) >= MAX_GAPS:
                        continue
                    g = self.gaps[origin] = [None, None, None]
                self._ask(acts, origin, head, g)
            elif kept > 0 and seq <= head:
                self.mark(acts, origin, head)
            elif seq == head:  # caught up: does the log hold an input it never had?
                self.core.migrations.host_caught_up(acts, node, origin)

    def tick(self, acts):
        for origin, g in sorted(self.gaps.items()):
            if g[0] is not None:
                self._ask(acts, origin, self._head(origin), g)
        for origin in sorted(self.due):
            self.mark(acts, origin, self._head(origin))
        self.due.clear()

    # -- frames -----------------------------------------------------------------------------

    def _head(self, origin):
        tail = self.core.tails.get(origin)
        if tail is not None:
            return tail.head_seq()
        h = self.core.store.head(origin)
        return 0 if h is None else h.sequence

    def _ask(self, acts, origin, head, g):
        now = self.core.clock.now
        if g[2] is not None and now - g[2] < RESEND_RETRY_S:
            return
        g[2] = now
        self.core.counters["gap_requests"] += 1
        log.warning("gap in the chain of %08x after seq %d: asking its host to resend", origin, head)
        self.mark(acts, origin, head, resend=True)

    def mark(self, acts, origin, seq, resend=False):
        """The `stored` mark to the daemon's current host at its current epoch (QoS 0)."""
        d = self.core.store.daemon(origin)
        if d is None or not d.host_node or d.epoch <= 0:
            return
        self.marked[origin] = seq
        self.due.discard(origin)
        self._send_mark(acts, d.host_node, origin, d.epoch, seq, resend)

    def _send_mark(self, acts, node, origin, epoch, seq, resend=False, release=False):
        body = {"cmd": "stored", "origin": origin, "epoch": epoch, "seq": seq}
        if resend:
            body["resend"] = True
        if release:
            body["release"] = True
        acts.publish.append((T.node(node, "mark"), self.core._frame(FR.CONTROL, body), 0, False))
