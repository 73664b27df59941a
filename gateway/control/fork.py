"""Forks (docs/PROTOCOL.md §17): a new daemon identity that continues another's state from a
snapshot, with a verifiable lineage.  Sans-I/O like the other orchestrators.

Two ways in: `netedge fork ORIGIN --to NODE` (the parent keeps running; its host snapshots it
without stopping), and a standby group whose events were truly lost (standby.py `_lost`): the
new entity continues from the last synced snapshot while the original is discontinued.

The child's chain starts at the fork genesis link {child, horizon 0, seq 0, parent:
H8(parent origin ‖ fork_seq ‖ "fork")} (§8), stored as the child's event 0, so every later
event validates against it; the ForkRecord, signed by the gateway, is stored, broadcast
retained on the child's `continuity` topic, and shown by `netedge record list`.  On the node
the child is restored as a promoted standby is (promote -> listen -> start: standby.py).
"""
import logging

from ...shared import cbor
from ...shared import frame as FR
from ...shared import records as R
from ...shared import topics as T
from ...shared.dedup import InputWindow
from ...shared.fork import ForkRecord
from ...shared.log import ChainEvent
from .records import sign
from .standby import check_snapshot
from .state import ForkLineage, ForkState

log = logging.getLogger("netedge.gateway")

PREFIX = "fork:"
STEP_TIMEOUT_S = 10.0
KEYS_TIMEOUT_S = 30.0


class Step:
    """One row of a fork's state table: what starts the step, what the gateway sends in it, the
    reply that ends it, its timeout (a timeout fails the fork: the parent is untouched)."""

    def __init__(self, name, starts, sends, ends, timeout_s):
        self.name, self.starts, self.sends, self.ends, self.timeout_s = name, starts, sends, ends, timeout_s


STEPS = (
    Step("snap", "`netedge fork` is accepted (state kept under the parent's origin)", "`snap` to the parent's host",
         "`snap` from the parent's host: the child is created (identity, ForkRecord, genesis)", STEP_TIMEOUT_S),
    Step("keys", "the child exists (a fork requested, or a group's loss)", "the child's key slot to the node",
         "the driver reports the push done", KEYS_TIMEOUT_S),
    Step("restore", "the node holds the child's key slot", "`promote` with the re-rooted record, epoch 1",
         "`restored` from the node", STEP_TIMEOUT_S),
    Step("listen", "the child is restored, held", "`listen`", "`listening` from the node", STEP_TIMEOUT_S),
    Step("start", "the node is subscribed to the child's inbox", "`start`",
         "`active` from the node: the lineage is recorded, the operator answered", STEP_TIMEOUT_S),
)
BY_NAME = {s.name: s for s in STEPS}

# (step, event) -> (who may send it, handler).  `failed` from the party of any step fails the fork.
TRANSITIONS = {
    ("snap", "snap"): ("host", "_on_snap"),
    ("keys", "keys pushed"): ("driver", "keys_pushed"),
    ("restore", "restored"): ("node", "_on_restored"),
    ("listen", "listening"): ("node", "_on_listening"),
    ("start", "active"): ("node", "_on_active"),
}
TRANSITIONS.update({(s.name, "failed"): ("host" if s.name == "snap" else "node", "_on_failed") for s in STEPS
                    if s.name != "keys"})


def key_of(origin):
    return "%s%08x" % (PREFIX, origin)


def lineage_of(store, origin):
    """The finished fork that created `origin` ({"parent", "fork_seq", ...}), or None."""
    return store.load_state(ForkLineage, origin)


class ForkOrchestrator:
    def __init__(self, ctx):
        self.ctx = ctx            # narrow collaborators (control/collaborators.py)
        self.store = ctx.store
        self.clock = ctx.clock    # monotonic `now` and persisted steps' ages (control/clock.py)

    def _send(self, acts, node, cmd, st, **extra):
        body = dict(extra, cmd=cmd, m=st.m, origin=st.origin)
        acts.publish.append((T.node(node, "ctl"), self.ctx.frame(FR.CONTROL, body), 1, False))

    def _next_id(self):
        return self.ctx.new_op(self)

    def open_op_ids(self):
        """The ids of the forks in progress (a restarted core routes their replies here)."""
        return [st.m for _, st in self.store.states(ForkState)]

    def owns(self, origin):
        return self.store.load_state(ForkState, origin) is not None

    # -- requests -------------------------------------------------------------------------

    def start(self, acts, client, rid, parent, to):
        """`netedge fork`: snapshot the running parent (it keeps running), then fork."""
        d = self.store.daemon(parent)
        if d is None:
            raise ValueError("unknown daemon %08x" % parent)
        if d.status != "active":
            raise ValueError("daemon %08x is %s: only an active daemon can be snapshotted for a fork" % (parent, d.status))
        n = self.store.node(to)
        if n is None or n.status != "online":
            raise ValueError("node %r is %s" % (to, "unknown" if n is None else n.status))
        if d.kind not in (n.info.get("kinds") or []):
            raise ValueError("node %r cannot host kind %r (it has %s)" % (to, d.kind, n.info.get("kinds")))
        if self.store.load_state(ForkState, parent) is not None:
            raise ValueError("a fork of %08x is being prepared already" % parent)
        st = ForkState(origin=parent, m=self._next_id(), step="snap", to=to, kind=d.kind, client=client, rid=rid,
                       at=self.clock.stamp(key_of(parent)), why="requested")
        self.store.save_state(parent, st)
        self._send(acts, d.host_node, "snap", st)

    def from_snapshot(self, acts, parent, fork_seq, rec, to, why, client=None, rid=None):
        """Create the child: identity, signed lineage, its genesis; then provision and restore it."""
        d = self.store.daemon(parent)
        info = self.ctx.keystore.generate(d.kind)
        child = info.origin
        fr = ForkRecord.create(parent, child, fork_seq, snapshot_seq=fork_seq)
        self.store.add_daemon(child, d.kind, info.public_key, host_node=to, epoch=1, status="provisioning")
        self.store.append_event(ChainEvent(fr.fork_genesis, b""), epoch=1)
        envelope = sign(self.ctx.keystore, R.KIND_FORK, fr)
        R.check_structure(envelope)
        self.store.add_record("fork", child, fr.to_bytes(), envelope[-R.SIGNATURE_SIZE:],
                              self.ctx.keystore.gateway_public_key)
        acts.publish.append((T.daemon(child, "continuity"), self.ctx.frame(FR.FORK_RECORD, {"r": envelope}), 1, True))
        self.ctx.count("records")
        r = cbor.loads(rec)  # the parent's record (§12), re-rooted at the fork genesis
        # (a fresh input window: the child has an inbox of its own, its senders start anew)
        r.update(origin=child, epoch=1, head=fr.fork_genesis.to_bytes(), next=fr.fork_genesis.forward_hash(b""),
                 last=None, window=InputWindow().to_obj())
        st = ForkState(origin=child, parent=parent, fork_seq=fork_seq, m=self._next_id(), step="keys", to=to,
                       kind=d.kind, rec=cbor.dumps(r, True).hex(), why=why, client=client, rid=rid,
                       at=self.clock.stamp(key_of(child)))
        self.store.save_state(child, st)
        log.warning("fork of %08x at seq %d: %08x on %s (%s)", parent, fork_seq, child, to, why)
        acts.push_keys.append((to, self.ctx.slots(to), self.ctx.push_tag(key_of(child), self)))
        return child

    # -- driver callbacks ------------------------------------------------------------------------

    def keys_pushed(self, acts, key, error):
        st = self.store.load_state(ForkState, int(key[len(PREFIX):], 16))
        if st is None or st.step != "keys":
            return
        if error:
            return self._fail(acts, st, "provisioning the key slot on %s failed: %s" % (st.to, error))
        st.step, st.at = "restore", self.clock.stamp(key)
        self.store.save_state(st.origin, st)
        # the node restores it as a promoted standby would (no migration code to load): promote,
        # listen (subscribe), start
        self._send(acts, st.to, "promote", st, kind=st.kind, epoch=1, rec=bytes.fromhex(st.rec))

    def on_reply(self, acts, node, body):
        """A MIGRATION frame; True when it belonged to a fork.  TRANSITIONS says which reply each
        step takes, and from whom."""
        op, m, origin = body.get("op"), body.get("m"), body.get("o")
        st = self.store.load_state(ForkState, origin) if type(origin) is int and 0 <= origin <= 0xFFFFFFFF else None
        if st is None or st.m != m:
            return False
        party, handler = TRANSITIONS.get((st.step, op), (None, None))
        if handler is None or node != self._party(st, party):
            log.info("fork of %08x: reply %s from %s in step %s ignored", origin, op, node, st.step)
            return True
        getattr(self, handler)(acts, st, node, body)
        return True

    def _party(self, st, party):
        if party == "host":  # (the parent's, while a requested fork copies it)
            d = self.store.daemon(st.origin)
            return d.host_node if d is not None else None
        return st.to

    # -- the transitions (TRANSITIONS) ---------------------------------------------------------

    def _on_failed(self, acts, st, node, body):
        self._fail(acts, st, "%s answered %s: %s" % (node, body.get("code"), body.get("detail")))

    def _on_snap(self, acts, st, node, body):
        origin = st.origin
        head, _ = check_snapshot(body, origin)
        rec, seq = body["rec"], head.sequence
        self.store.drop_state(ForkState, origin)
        self.from_snapshot(acts, origin, seq, rec, st.to, st.why, st.client, st.rid)

    def _next_step(self, acts, st, step, cmd):
        st.step, st.at = step, self.clock.stamp(key_of(st.origin))
        self.store.save_state(st.origin, st)
        self._send(acts, st.to, cmd, st)

    def _on_restored(self, acts, st, node, body):
        self._next_step(acts, st, "listen", "listen")

    def _on_listening(self, acts, st, node, body):
        self._next_step(acts, st, "start", "start")

    def _on_active(self, acts, st, node, body):
        origin = st.origin
        self.store.drop_state(ForkState, origin)
        self.store.save_state(origin, ForkLineage(parent=st.parent, fork_seq=st.fork_seq, node=node, why=st.why,
                                                  at=self.clock.wall()))
        self.store.update_daemon(origin, status="active")
        self.ctx.changed(origin, st.parent)
        log.warning("fork %08x of %08x at seq %d is active on %s", origin, st.parent, st.fork_seq, node)
        if st.client is not None:
            self.ctx.reply(acts, st.client, st.rid, True, result={
                "origin": origin, "parent": st.parent, "fork_seq": st.fork_seq, "node": node})

    def _fail(self, acts, st, why):
        self.store.drop_state(ForkState, st.origin)
        if st.parent is not None:
            self.store.update_daemon(st.origin, status="failed")
        log.error("fork of %08x failed: %s", st.parent if st.parent is not None else st.origin, why)
        if st.client is not None:
            self.ctx.reply(acts, st.client, st.rid, False, error="fork failed: %s" % why)

    def tick(self, acts):
        for origin, st in self.store.states(ForkState):
            key = key_of(origin)
            limit = BY_NAME[st.step].timeout_s
            if self.clock.age(key, st.at) > limit:
                self._fail(acts, st, "no answer in step %s for %ds" % (st.step, limit))
