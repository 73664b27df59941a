"""MigrationOrchestrator: live migration of a daemon between nodes (docs/PROTOCOL.md §16), sans-I/O.

GatewayCore feeds it the CLI request, the nodes' MIGRATION replies, finished key pushes and
timer ticks; it answers with Effects (CONTROL frames to the nodes, a reply to the CLI).  Its
state lives in the store (a MigrationState record), so `netedge status` shows the phase and a
restarted gateway carries on (or times out and aborts).

A migration is in one of the mission's six phases, in order: PHASES is the table (start and end
condition, timeout, what a timeout does, SuperpositionPhase) that PROTOCOL §16 prints, and
TRANSITIONS says which node reply, from which side, moves which phase on.  The epoch bump (host
= target, epoch + 1: fencing refuses the source from then on) ends `restore`.  Before it every
failure or timeout aborts back to the source (`resume`); after it the migration only rolls
forward (commands are re-sent).
"""
import logging

from ...shared import cbor
from ...shared import failures as F
from ...shared import frame as FR
from ...shared import phases as P
from ...shared import status as S
from ...shared import superposition as SP
from ...shared import topics as T
from ...shared import transfer as X
from ...shared.link import CausalLink
from . import replay as RP
from .state import MigratedRecord, MigrationState, RecoveryState

log = logging.getLogger("netedge.gateway")

PHASE_TIMEOUT_S = 10.0
KEYS_TIMEOUT_S = 30.0
MAX_RETRIES = 6          # after the bump: re-sent this many times, then reported stuck
REDRIVE_GAP_S = 2.0      # a target's failures within this of a re-drive belong to the replay it replaced
# Snapshot chunks to a target (§14): sized for its free heap, at most 2 KB (a node queues at most
# 8 KB of received frames, §11), WINDOW of them unacknowledged at a time
TX_CHUNK = 2048
WINDOW = 2
MAX_RECORD = 1 << 20  # the gateway's reassembly cap for a source's snapshot
ABORT, RESEND = "abort to the source", "re-send (%d times, then reported stuck)" % MAX_RETRIES


class Phase:
    """One row of the migration table: a phase of shared/phases.py, what starts and ends it, what
    the gateway sends in it, its timeout and what the timeout does."""

    def __init__(self, number, starts, sends, ends, timeout_s, on_timeout, retry=None):
        self.number = number
        self.name = P.MIGRATION_PHASE_NAMES[number].lower()  # (the persisted step)
        self.starts, self.sends, self.ends = starts, sends, ends
        self.timeout_s, self.on_timeout = timeout_s, on_timeout
        self.retry = retry  # (command, side) re-sent on a timeout after the bump

    @property
    def superposition(self):
        return SP.phase_name(SP.from_migration(self.number))


PHASES = (
    Phase(P.SNAPSHOT, "the request is accepted; T holds D's key slot (else it is provisioned first, within %d s)"
          % KEYS_TIMEOUT_S, "`freeze` to S", "S's whole record is stored as a snapshot", PHASE_TIMEOUT_S, ABORT),
    Phase(P.TRANSFER, "the record is larger than one chunk for T", "`restore` with `t` to T, then `chunk`s, "
          "%d unacknowledged" % WINDOW, "every chunk is sent and all but the last acknowledged (`got`)",
          PHASE_TIMEOUT_S, ABORT),
    Phase(P.RESTORE, "the record is on its way to T (inline in `restore`, or chunked)", "`restore` with `rec` to T",
          "T answers `restored` at the snapshot's seq and the gateway has stored S's chain through it "
          "(S resends what the bus lost): the epoch bump", PHASE_TIMEOUT_S, ABORT),
    Phase(P.REPLAY, "the epoch bump (host T, epoch e + 1)", "`release` to S; its `buffered` inputs as `replay` to T",
          "S's buffer is relayed to T (S lost: T is fed from the input log instead)", PHASE_TIMEOUT_S, RESEND,
          retry=("release", "source")),
    Phase(P.CUTOVER, "T has every input that preceded its hold", "`go` to T (after the log replay, when there is "
          "one)", "T answers `active`", PHASE_TIMEOUT_S, RESEND, retry=("go", "target")),
    Phase(P.COMPLETE, "T is active", "the reply to the operator", "`Migrated` is recorded", None, "-"),
)
BY_NAME = {ph.name: ph for ph in PHASES}
SNAPSHOT, TRANSFER, RESTORE, REPLAY, CUTOVER, COMPLETE = (ph.name for ph in PHASES)
PRE_BUMP = tuple(ph.name for ph in PHASES if ph.on_timeout == ABORT)

# (phase, reply op) -> (the side that may send it, handler): any other reply is ignored (logged).
# `failed` is taken in every phase from either side; `replayed` belongs to the log replay, which
# a recovery runs without a migration.
TRANSITIONS = {
    (SNAPSHOT, "snapshot"): ("source", "_on_snapshot"),
    (SNAPSHOT, "chunk"): ("source", "_on_chunk"),
    (TRANSFER, "got"): ("target", "_on_got"),
    (TRANSFER, "restored"): ("target", "_on_restored"),  # (the last chunk's answer)
    (RESTORE, "restored"): ("target", "_on_restored"),
    (REPLAY, "buffered"): ("source", "_on_buffered"),
    (CUTOVER, "buffered"): ("source", "_on_buffered"),  # inputs S forwards after its release
    (CUTOVER, "active"): ("target", "_on_active"),
}

def state_key(origin):
    return "migrate:%08x" % origin


def done_key(origin):
    return "migrated:%08x" % origin


def recover_key(origin):
    return "recover:%08x" % origin


class MigrationError(ValueError):
    """A migration request the gateway refuses (the daemon stays where it is)."""


# An input logged and unconsumed while the host is caught up, for this long (three idle
# heartbeats at least): the host never had it, and it is replayed from the log.
UNCONSUMED_REPAIR_S = 1.0
MAX_UNCONSUMED_WATCH = 4096  # daemons watched at once (bounded like everything else)


def heap_needed(size):
    """Free heap a target needs to take a record of `size` bytes: the reassembly buffer, the
    decoded record and the daemon's restored state (about three copies), plus room to run."""
    return 3 * size + 8192


class MigrationOrchestrator:
    def __init__(self, ctx):
        self.ctx = ctx            # narrow collaborators (control/collaborators.py)
        self.store = ctx.store
        self.clock = ctx.clock    # monotonic `now` and persisted steps' ages (control/clock.py)
        self.rx = {}              # origin -> Reassembler of the source's snapshot chunks
        self.tx = {}              # origin -> [chunk maps for the target, next index to send]
        self.replays = {}         # origin -> the input-log replay in progress ({"m", "id", "t0", "replay"})
        self.replay_no = 0
        self.waiting = set()      # origins whose bump waits for the stored chain (_on_restored)
        self.unconsumed = {}      # origin -> (id of its first logged input a caught-up host lacks, since)
        self.repaired = {}        # origin -> the last input id a repair replayed (never twice)

    # -- helpers ----------------------------------------------------------------------

    def _send(self, acts, node, cmd, st, **extra):
        self._command(acts, node, cmd, st.m, st.origin, **extra)

    def _command(self, acts, node, cmd, m, origin, **extra):
        body = dict(extra, cmd=cmd, m=m, origin=origin)
        acts.publish.append((T.node(node, "ctl"), self.ctx.frame(FR.CONTROL, body), 1, False))

    def _step(self, st, step):
        key = state_key(st.origin)
        st.phases.append([st.step, round(self.clock.age(key, st.at) * 1000)])
        st.step, st.at, st.tries = step, self.clock.stamp(key), 0
        self.store.save_state(st.origin, st)
        log.info("migration %d origin=%08x %s -> %s: %s", st.m, st.origin, st.source, st.target, step)

    def _finish(self, acts, st, ok, result=None, error=None):
        self.rx.pop(st.origin, None)
        self.tx.pop(st.origin, None)
        if self.replays.get(st.origin, {}).get("m") == st.m:
            del self.replays[st.origin]
        self.store.drop_state(MigrationState, st.origin)
        self.clock.forget(state_key(st.origin))
        self.clock.forget(state_key(st.origin) + ":started")
        if st.client is not None:
            self.ctx.reply(acts, st.client, st.rid, ok, result=result, error=error)

    def _replay_log(self, acts, node, m, origin, after_seq, inputs=None):
        """Re-drive `node` from the gateway's durable input log (control/replay.py): every logged
        input the stored chain does not reflect after `after_seq`, in order (`"log": true` lets a
        node that came back from a reboot leave its hold afterwards; its input window drops what
        it has), in acknowledged batches (`replayed`), then `go`.  This replaces inputs a crashed
        node had taken into RAM."""
        if inputs is None:
            inputs = RP.backlog(self.store, origin, after_seq, consumed=False)[0]
        self.replay_no += 1
        rid = self.replay_no
        # (RAM only: a restarted gateway re-drives from scratch when the node or tick() asks)
        self.replays[origin] = {"m": m, "id": rid, "t0": self.clock.now,
                                "replay": RP.Replay(node, RP.batches(inputs) or [[]], lambda i: [rid, i])}
        self._replay_next(acts, origin, None)
        log.info("migration %d origin=%08x: %d logged inputs after seq %d replayed to %s", m, origin,
                 len(inputs), after_seq, node)

    def _replay_next(self, acts, origin, b):
        """`replayed` b came back (None: start): the next batches of the window; `go` after the
        last one is acknowledged."""
        r = self.replays.get(origin)
        if r is None:
            return
        replay = r["replay"]
        out = replay.advance(b)
        if out is None:
            return  # (a repeated ack, or one of a replay this one replaced)
        for i, batch in out:
            self._command(acts, replay.node, "replay", r["m"], origin, inputs=batch, log=True, b=[r["id"], i])
        st = self.store.load_state(MigrationState, origin)
        if replay.done:
            del self.replays[origin]
            if r.get("again") and st is not None and st.m == r["m"]:
                self._replay_log(acts, replay.node, st.m, st.origin, st.seq)  # (its inputs now reach the end of the log)
                return
            self._command(acts, replay.node, "go", r["m"], origin)
        if st is not None and st.m == r["m"]:
            st.at = self.clock.stamp(state_key(origin))  # progress: not a stalled step for tick()
            self.store.save_state(origin, st)

    def _replay_resend(self, acts, origin):
        """tick(): no ack for a while: the unacknowledged batches again (the node's input window
        drops any it had processed)."""
        self.replays[origin]["replay"].rewind()
        self._replay_next(acts, origin, None)

    def _abort(self, acts, st, why):
        """Before the epoch bump: the daemon stays on the source, which processes its buffer
        (`resume`).  Once `freeze` was sent the source is recovered too: it may have rebooted
        unseen (its will came while this gateway was away, or was of unknown age: broker_back)
        and then boots held, without the inputs it had buffered, and ignores `resume` until a
        log replay; a source that did not reboot takes the replay as redeliveries (its input
        window drops them) and answers `go` at once."""
        self._send(acts, st.source, "resume", st)
        if st.step in (TRANSFER, RESTORE):
            acts.publish.append((T.node(st.target, "ctl"),
                                 self.ctx.frame(FR.CONTROL, {"cmd": "stop", "origin": st.origin}), 1, False))
        log.warning("migration %d origin=%08x aborted in %s: %s", st.m, st.origin, st.step, why)
        self._finish(acts, st, False, error="migration of %08x to %s failed (%s): %s; it keeps running on %s" % (
            st.origin, st.target, st.step, why, st.source))
        if st.keys != "pushing":  # (else `freeze` was never sent: nothing is held)
            self.store.save_state(st.origin, RecoveryState(node=st.source, m=st.m,
                                                           at=self.clock.stamp(recover_key(st.origin))))
            self._recover(acts, st.origin, st.source, st.m)

    def _recover(self, acts, origin, node, m):
        """Log-replay `node`, the daemon's host, from the stored chain head, then `go`: what ends
        a recovery (its RecoveryState, dropped when the node answers `active`)."""
        head = self.store.head(origin)
        log.warning("recovering %08x on %s after migration %d was aborted", origin, node, m)
        self._replay_log(acts, node, m, origin, head.link.sequence if head else 0)

    # -- the request --------------------------------------------------------------------

    def record_size(self, d):
        """Bytes a migration of daemon `d` moves: its host's last heartbeat says, else the
        latest stored snapshot, else 0 (unknown)."""
        n = self.store.node(d.host_node)
        for x in (n.info.get("daemons") or []) if n else []:
            if isinstance(x, dict) and x.get("origin") == d.origin and isinstance(x.get("size"), int):
                return x["size"]
        snap = self.store.latest_snapshot(d.origin)
        return len(snap.data) if snap else 0

    def unfit(self, n, d, need):
        """Why node `n` cannot take daemon `d` now (None: it can)."""
        if n.node_id == d.host_node:
            return "the source"
        if n.status != "online":
            return n.status
        if "kinds" not in n.info:
            return "no heartbeat yet"
        if d.kind not in (n.info.get("kinds") or []):
            return "cannot host kind %r" % d.kind
        if any(isinstance(x, dict) and x.get("origin") == d.origin for x in n.info.get("daemons") or []):
            return "still hosts it"
        if d.origin not in (n.info.get("keys") or []) and self.ctx.can_provision(n.node_id) is False:
            return "no key slot, and no provisioning path for it in the gateway's [nodes]"
        heap = n.info.get("heap")
        if isinstance(heap, int) and heap < need:
            return "free heap %d < %d needed" % (heap, need)
        return None

    def pick_target(self, origin):
        """start_migration_auto's placement: among the nodes that can take the daemon now, one
        that already holds its key slot, then the most free heap, then the lowest name."""
        d = self.store.daemon(origin)
        if d is None:
            raise MigrationError("unknown daemon %08x" % origin)
        size = self.record_size(d)
        need = heap_needed(size)
        fit, why = [], []
        for n in self.store.nodes():
            r = self.unfit(n, d, need)
            if r is None:
                fit.append(n)
            elif r != "the source":
                why.append("%s: %s" % (n.node_id, r))
        if not fit:
            raise MigrationError("no node can take %08x (kind %r, %d-byte record, needs %d bytes of free heap): %s" % (
                origin, d.kind, size, need, "; ".join(why) or "no other node known"))
        fit.sort(key=lambda n: (origin not in (n.info.get("keys") or []), -(n.info.get("heap") or 0), n.node_id))
        return fit[0].node_id

    def start(self, acts, client, rid, origin, target, now):
        store = self.store
        if target is None:  # --auto
            if store.load_state(MigrationState, origin) is not None:
                raise MigrationError("%08x is migrating already (see `netedge status`)" % origin)
            target = self.pick_target(origin)
        d = store.daemon(origin)
        if d is None:
            raise MigrationError("unknown daemon %08x" % origin)
        if store.load_state(MigrationState, origin) is not None:
            raise MigrationError("%08x is migrating already (see `netedge status`)" % origin)
        if d.status != "active":
            raise MigrationError("daemon %08x is %s, not active" % (origin, d.status))
        if store.load_state(RecoveryState, origin) is not None:
            raise MigrationError("%08x is recovering on %s after an aborted migration: retry once it is "
                                 "active there" % (origin, d.host_node))
        if d.host_node == target:
            raise MigrationError("daemon %08x runs on %s already" % (origin, target))
        src = store.node(d.host_node)
        if src is None or src.status != "online":
            raise MigrationError("source node %s is %s: a live migration needs it online" % (
                d.host_node, "unknown" if src is None else src.status))
        n = store.node(target)
        if n is None:
            raise MigrationError("unknown node %r: it has never sent a heartbeat" % target)
        if n.status != "online":
            raise MigrationError("node %r is %s" % (target, n.status))
        if d.kind not in (n.info.get("kinds") or []):
            raise MigrationError("node %r cannot host kind %r (it has %s)" % (target, d.kind, n.info.get("kinds")))
        if any(x.get("origin") == origin for x in n.info.get("daemons") or [] if isinstance(x, dict)):
            raise MigrationError("node %r still hosts %08x" % (target, origin))
        st = MigrationState(m=self.ctx.new_op(self), origin=origin, kind=d.kind,
                            source=d.host_node, target=target, epoch=d.epoch, step="request",
                            at=self.clock.stamp(state_key(origin)), tries=0, phases=[], client=client, rid=rid,
                            started=self.clock.stamp(state_key(origin) + ":started"))
        if origin in (n.info.get("keys") or []):
            self._step(st, SNAPSHOT)
            self._send(acts, st.source, "freeze", st)
        else:  # the target lacks the key slot: provision it first, as deploy does (`freeze` waits)
            st.keys = "pushing"
            self._step(st, SNAPSHOT)
            slots = self.ctx.slots(target) + [{"kind": d.kind, "public": d.public_key.hex()}]
            acts.push_keys.append((target, slots, self.ctx.push_tag(state_key(origin), self)))

    def busy(self, origin):
        """Why daemon `origin` cannot be stopped now (None: it can): a migration moves it (the
        `stop` would reach the source only, and the target would run it on), or a recovery
        still has to release its host from a migration's hold."""
        st = self.store.load_state(MigrationState, origin)
        if st is not None:
            return "it is migrating to %s (phase %s): stop it once the migration ends" % (st.target, st.step)
        rec = self.store.load_state(RecoveryState, origin)
        if rec is not None:
            return "it is recovering on %s after an aborted migration: retry in a moment" % rec.node
        return None

    def slots_for(self, node):
        """Key slots a push to `node` must keep besides its daemons' (core.key_slots adds
        them): the daemon of a migration to it in progress, and every daemon whose key its last
        heartbeat says it holds.  A push replaces the node's key file whole, while the node keeps
        the slots it loaded in RAM and advertises them; `start` then skips the push a target
        seems not to need, and the daemon migrated there would not restore after a reboot."""
        n = self.store.node(node)
        held = set(x for x in (n.info.get("keys") or []) if type(x) is int) if n is not None else set()
        held.update(st.origin for _, st in self.store.states(MigrationState) if st.target == node)
        out = []
        for origin in sorted(held):
            d = self.store.daemon(origin)
            if d is not None and d.status != "stopped":
                out.append({"kind": d.kind, "public": d.public_key.hex()})
        return out

    def open_op_ids(self):
        """The ids of the migrations and recoveries in progress (a restarted core routes their
        replies here)."""
        return [st.m for kind in (MigrationState, RecoveryState) for _, st in self.store.states(kind)]

    def keys_pushed(self, acts, key, error):
        st = self.store.load_state(MigrationState, int(key.partition(":")[2], 16))
        if st is None or st.step != SNAPSHOT or st.keys != "pushing":
            return
        if error:
            self._abort(acts, st, "node %s does not hold the key slot and provisioning it failed: %s" % (
                st.target, error))
            return
        st.keys = None
        st.at = self.clock.stamp(key)  # (the snapshot's own timeout starts with the freeze)
        self.store.save_state(st.origin, st)
        self._send(acts, st.source, "freeze", st)

    # -- node replies -----------------------------------------------------------------------

    def on_reply(self, acts, node, body):
        op, m, origin = body.get("op"), body.get("m"), body.get("o")
        if not (isinstance(op, str) and type(m) is int and type(origin) is int):
            raise FR.MalformedFrame("MIGRATION body needs op, m, o")
        if op == "replayed":  # (also for a recovery, which has no migration state)
            r = self.replays.get(origin)
            if r is not None and r["replay"].node == node and r["m"] == m:
                self._replay_next(acts, origin, body.get("b"))
            return
        st = self.store.load_state(MigrationState, origin)
        if st is None or st.m != m:
            if op == "active" and self._recovered(node, origin, m):
                return
            log.info("migration reply %s for %08x (migration %s) ignored: not current", op, origin, m)
            return
        step = st.step
        if node not in (st.source, st.target):
            # (a node's topic carries only that node's frames: core checks the sender)
            log.warning("migration reply %s for %08x from %s ignored: not a party to migration %d", op, origin, node, m)
            return
        if op == "failed":
            self._on_failed(acts, st, node, body)
            return
        party, handler = TRANSITIONS.get((step, op), (None, None))
        if handler is None or node != getattr(st, party):
            log.info("migration reply %s from %s in phase %s ignored", op, node, step)
            return
        getattr(self, handler)(acts, st, body)

    # -- the transitions (TRANSITIONS) ------------------------------------------------------

    def _on_failed(self, acts, st, node, body):
        origin, m = st.origin, st.m
        why = "%s from %s: %s" % (F.NAMES.get(body.get("code"), "code %r" % body.get("code")), node,
                                  body.get("detail"))
        if st.step in PRE_BUMP:
            self._abort(acts, st, why)
        elif node == st.target:  # e.g. its hold buffer filled: it waits for the log
            # One re-drive answers every failure of the replay it replaces: a replay is many
            # batches, each of which may fail, and re-driving on each one multiplies replays
            # until the target runs out of heap.  (tick() retries if this one fails too.)
            r = self.replays.get(origin)
            if r is not None and self.clock.now - r["t0"] < REDRIVE_GAP_S:
                # ...but what the target dropped after this replay's inputs were read from the
                # log is in no batch of it: one more re-drive once it is acknowledged
                r["again"] = True
                log.info("migration %d origin=%08x: %s after the cutover: re-drive already under way "
                         "(another follows it)", m, origin, why)
                return
            log.warning("migration %d origin=%08x: %s after the cutover: target re-driven", m, origin, why)
            self._replay_log(acts, node, st.m, st.origin, st.seq)
        else:  # the source gave up (its buffer filled) after the epoch bump: it processed what
            # it had buffered itself, at the old epoch (refused as stale), so its `buffered` reply
            # will be empty: the target needs the input log, as after a source reboot
            log.error("migration %d origin=%08x: %s after the cutover", m, origin, why)
            if node not in st.down:
                st.down = sorted(set(st.down) | {node})
                self.store.save_state(origin, st)
            if st.step == REPLAY:
                # its `release` failed (e.g. it no longer holds the daemon frozen: a reboot, or a
                # buffer given up): no `buffered` reply will come, the target takes the log instead
                self._step(st, CUTOVER)
                self._replay_log(acts, st.target, st.m, st.origin, st.seq)

    def _on_snapshot(self, acts, st, body):
        rec = body.get("rec")
        if not isinstance(rec, bytes):
            raise FR.MalformedFrame("snapshot needs rec: bytes")
        self._snapshot(acts, st, rec)

    def _on_chunk(self, acts, st, body):
        origin, m = st.origin, st.m
        rx = self.rx.get(origin)
        if rx is None:
            rx = self.rx[origin] = X.Reassembler(MAX_RECORD, X.MAX_COUNT, X.MAX_CHUNK, PHASE_TIMEOUT_S)
        c = X.chunk_from_obj(body.get("c"))
        if (c["m"], c["o"]) != (m, origin):
            raise FR.MalformedFrame("chunk of another migration")
        try:
            rec = rx.feed(c, self.clock.now)
        except X.TransferError as e:
            if e.args[0] != "stale":  # (a redelivery)
                self._abort(acts, st, "%s: snapshot transfer: %s" % (F.NAMES[F.STATE_FAILED], e.args))
            return
        if rec is not None:
            del self.rx[origin]
            self._snapshot(acts, st, bytes(rec))

    def _on_got(self, acts, st, body):
        """A chunk acknowledged: the next one; the transfer ends once every chunk is sent and all
        but the last acknowledged (T answers the last one with `restored`)."""
        tx = self.tx.get(st.origin)
        if tx is None:
            return  # (a restarted gateway: the chunks were in RAM; the phase timeout aborts)
        if tx[1] < len(tx[0]):
            self._send(acts, st.target, "chunk", st, c=tx[0][tx[1]])
            tx[1] += 1
        if body.get("i") == len(tx[0]) - 2:
            self._step(st, RESTORE)

    def _on_restored(self, acts, st, body):
        origin = st.origin
        if body.get("seq") != st.seq:
            self._abort(acts, st, "target restored seq %r, snapshot is at %d" % (body.get("seq"), st.seq))
            return
        if st.step == TRANSFER:
            self._step(st, RESTORE)
        st.restored = True
        self.store.save_state(origin, st)
        if self._stored_head(origin) < st.seq:
            # The gateway has not stored S's chain through the snapshot yet (the bus lost or
            # delays events): bumping now would leave the missing ones to T, which never had
            # them (a gap it answers `gap_lost`: a ChainBreak), and S, no longer the host, would
            # never be marked.  S is still the host: it is asked to resend (control/acks.py, on
            # its heartbeat), and stored() bumps once they are in; the phase timeout aborts.
            self.waiting.add(origin)
            log.info("migration %d origin=%08x: T restored seq %d; the bump waits for the stored chain (at %d)",
                     st.m, origin, st.seq, self._stored_head(origin))
            return
        self._bump(acts, st)

    def _stored_head(self, origin):
        head = self.store.head(origin)
        return head.sequence if head else 0

    def stored(self, acts, origin, seq):
        """Ingestion stored event `seq` of `origin`: a migration waiting for its chain bumps."""
        if origin not in self.waiting:
            return
        st = self.store.load_state(MigrationState, origin)
        if st is None or st.step != RESTORE or not st.restored:
            self.waiting.discard(origin)
        elif seq >= st.seq:
            self.waiting.discard(origin)
            self._bump(acts, st)

    def _bump(self, acts, st):
        """T restored the snapshot and the gateway holds the chain through it: T is the host."""
        origin = st.origin
        # the epoch bump: from now on only the target at the new epoch is merged (fencing)
        self.store.update_daemon(origin, host_node=st.target, epoch=st.epoch + 1)
        self.ctx.changed(origin)
        self._step(st, REPLAY)
        self._send(acts, st.source, "release", st)  # (a source that is down gets it when back)
        if st.source in st.down:  # its RAM buffer may be gone: the log instead
            self._step(st, CUTOVER)
            self._replay_log(acts, st.target, st.m, st.origin, st.seq)

    def _on_buffered(self, acts, st, body):
        origin, m = st.origin, st.m
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise FR.MalformedFrame("buffered needs inputs: list")
        for batch in RP.batches(inputs):
            self._send(acts, st.target, "replay", st, inputs=batch)
        log.info("migration %d origin=%08x: %d buffered inputs relayed to %s", m, origin, len(inputs), st.target)
        if st.step == REPLAY:  # (the release reply; later ones carry inputs S forwards)
            self._forget_hosted(st.source, origin)
            self._step(st, CUTOVER)
            if st.source in st.down:  # a rebooted source's buffer is not all of them
                self._replay_log(acts, st.target, st.m, st.origin, st.seq)
            else:
                self._send(acts, st.target, "go", st)

    def _on_active(self, acts, st, body):
        self._step(st, COMPLETE)
        self._complete(acts, st, body.get("seq"))

    def _snapshot(self, acts, st, rec):
        """The source's whole record arrived: store it, then send it to the target."""
        origin = st.origin
        r = cbor.loads(rec)
        head = CausalLink.from_bytes(r["head"])
        if head.origin_hash != origin or r.get("origin") != origin:
            self._abort(acts, st, "snapshot of another origin")
            return
        self.store.put_snapshot(origin, head.sequence, rec, head_link=head, head_forward=r["next"])
        st.seq = head.sequence
        t = self.store.node(st.target)
        heap = (t.info.get("heap") if t else None) or 0
        size = min(TX_CHUNK, X.chunk_size_for(heap) if isinstance(heap, int) else X.MIN_CHUNK)
        if len(rec) <= size:  # (no transfer phase: the record rides in `restore`)
            self._step(st, RESTORE)
            self._send(acts, st.target, "restore", st, kind=st.kind, epoch=st.epoch + 1, rec=rec)
            return
        self._step(st, TRANSFER)
        # announced first (the target checks kind, key slot and size before any chunk travels)
        chunks = X.split(st.m, origin, rec, size)
        self._send(acts, st.target, "restore", st, kind=st.kind, epoch=st.epoch + 1, t=len(rec))
        for c in chunks[:WINDOW]:
            self._send(acts, st.target, "chunk", st, c=c)
        self.tx[origin] = [chunks, WINDOW]

    def _forget_hosted(self, node, origin):
        """The source let go (its release reply): drop the daemon from its last heartbeat now, so a
        migration back to it need not wait for the next heartbeat (its node refuses a restore of
        a daemon it still hosts anyway)."""
        n = self.store.node(node)
        if n is not None and isinstance(n.info.get("daemons"), list):
            n.info["daemons"] = [x for x in n.info["daemons"] if not (isinstance(x, dict) and x.get("origin") == origin)]
            self.store.upsert_node(node, n.status, info=n.info)

    def _complete(self, acts, st, seq):
        origin = st.origin
        mig = S.migrated(st.seq, st.source, st.target).to_obj()
        self.store.save_state(origin, MigratedRecord(m=st.m, at=self.clock.wall(), **mig))
        self.store.update_daemon(origin, status="active")
        self.ctx.changed(origin)
        log.info("migrated origin=%08x %s -> %s at seq %d epoch %d", origin, st.source, st.target, st.seq,
                 st.epoch + 1)
        self._finish(acts, st, True, result={"origin": origin, "source": st.source, "target": st.target,
                                             "epoch": st.epoch + 1, "migration_seq": st.seq, "seq": seq,
                                             "phases": st.phases,
                                             "ms": round(self.clock.age(state_key(origin) + ":started",
                                                                          st.started) * 1000, 1)})

    # -- nodes going down and coming back (the crash matrix, docs/PROTOCOL.md §16) ---------

    def node_down(self, acts, node):
        """A node's last will: a crash, or a reconnect (a node that drops its connection to
        resync its input queue comes back with the same boot id and everything in RAM).
        Before the bump the migration waits for it (node_up tells which, the phase timeout
        covers a node that stays away).  After the bump a lost source is not waited for: the
        target replays the gateway's input log instead of the source's buffer (the log holds
        every input the broker accepted, and the source is fenced and frozen)."""
        for origin, st in self.store.states(MigrationState):
            if node not in (st.source, st.target):
                continue
            if st.step in PRE_BUMP:
                st.down = sorted(set(st.down) | {node})
                self.store.save_state(st.origin, st)
            elif node == st.source and st.step == REPLAY:
                st.down = sorted(set(st.down) | {node})
                log.warning("migration %d origin=%08x: source %s went offline after the cutover: the target "
                            "replays the input log instead", st.m, st.origin, node)
                self._step(st, CUTOVER)
                self._replay_log(acts, st.target, st.m, st.origin, st.seq)
            elif node == st.target:
                log.warning("migration %d origin=%08x: target %s went offline after the cutover: re-driven when "
                            "it is back", st.m, st.origin, node)

    def host_caught_up(self, acts, node, origin):
        """A heartbeat: `node`, the daemon's host at its epoch, stands at the stored head and
        keeps nothing unmarked.  An input in the log that no recent stored event consumed, still
        unconsumed at a heartbeat UNCONSUMED_REPAIR_S later, is one the host never had: its own
        broker session dropped it (a full queue drops QoS 1 silently), or a replay was read
        before it came.  Those inputs are replayed from the log as after an aborted migration
        (a RecoveryState: `replay` batches, then `go`, until `active`); the host's input window
        drops any it had after all.  An input is replayed at most once (`repaired`)."""
        now = self.clock.now
        if self.store.load_state(MigrationState, origin) is not None or origin in self.replays or \
                self.store.load_state(RecoveryState, origin) is not None:
            self.unconsumed.pop(origin, None)
            return
        head = self._stored_head(origin)
        lacking = RP.unconsumed(self.store, origin, head, self.repaired.get(origin, 0))
        if not lacking:
            self.unconsumed.pop(origin, None)
            return
        seen = self.unconsumed.get(origin)
        if seen is None or seen[0] != lacking[0].id:
            if len(self.unconsumed) < MAX_UNCONSUMED_WATCH or origin in self.unconsumed:
                self.unconsumed[origin] = (lacking[0].id, now)
            return
        if now - seen[1] < UNCONSUMED_REPAIR_S:
            return
        del self.unconsumed[origin]
        if len(self.repaired) >= MAX_UNCONSUMED_WATCH and origin not in self.repaired:
            self.repaired.clear()  # (forgetting only costs a replay the input window drops)
        self.repaired[origin] = lacking[-1].id
        m = self.ctx.new_op(self)
        log.warning("%08x: %d logged inputs (from %s/%d) never reached its host %s (at seq %d): replayed from the "
                    "log", origin, len(lacking), lacking[0].sender, lacking[0].counter, node, head)
        self.ctx.count("input_repairs")
        self.store.save_state(origin, RecoveryState(node=node, m=m, at=self.clock.stamp(recover_key(origin))))
        self._replay_log(acts, node, m, origin, head, [[i.sender, i.counter, i.payload] for i in lacking])

    def _recoveries(self, node=None):
        """(origin, RecoveryState) of the recoveries in progress (of `node`); a recovery whose
        daemon is gone, stopped or hosted elsewhere since is over (its record dropped)."""
        out = []
        for origin, rec in self.store.states(RecoveryState):
            if node is not None and rec.node != node:
                continue
            d = self.store.daemon(origin)
            if d is None or d.host_node != rec.node or d.status == "stopped":
                self.store.drop_state(RecoveryState, origin)
                self.clock.forget(recover_key(origin))
                r = self.replays.get(origin)
                if r is not None and r["m"] == rec.m:
                    del self.replays[origin]
                continue
            out.append((origin, rec))
        return out

    def _recovered(self, node, origin, m):
        """`active` from `node` for operation `m`: the end of a recovery, if it is one."""
        rec = self.store.load_state(RecoveryState, origin)
        if rec is None or rec.node != node or rec.m != m:
            return False
        self.store.drop_state(RecoveryState, origin)
        self.clock.forget(recover_key(origin))
        self.ctx.changed(origin)
        log.info("recovered %08x on %s (migration %d aborted)", origin, node, m)
        return True

    def node_up(self, acts, node, rebooted):
        """A node's status says online; `rebooted`: True (a new boot id), False (a reconnect),
        None (unknown).  A reboot loses what the node had buffered in RAM: before the bump that
        aborts the migration (a rebooted source then recovers from the input log), after it the
        target is re-driven from the input log."""
        for origin, rec in self._recoveries(node):
            r = self.replays.get(origin)
            if rebooted is False and r is not None and r["m"] == rec.m:
                continue  # (a reconnect: the replay in flight waits in its session)
            rec.at = self.clock.stamp(recover_key(origin))
            self.store.save_state(origin, rec)
            self._recover(acts, origin, node, rec.m)
        for origin, st in self.store.states(MigrationState):
            if node not in (st.source, st.target):
                continue
            if st.step in PRE_BUMP:
                if rebooted:
                    st.down = sorted(set(st.down) | {node})  # (even if its will was missed)
                    self._abort(acts, st, "%s %s restarted (what it held in RAM is gone)" % (
                        "source" if node == st.source else "target", node))
                elif node in st.down:
                    st.down.remove(node)
                    self.store.save_state(st.origin, st)
            elif node == st.target and st.step != COMPLETE and rebooted is not False:
                self._replay_log(acts, node, st.m, st.origin, st.seq)
            elif node == st.source and rebooted and node not in st.down:
                st.down = st.down + [node]  # (its buffered reply will be incomplete)
                self.store.save_state(st.origin, st)

    # -- timers ---------------------------------------------------------------------------

    def tick(self, acts):
        for origin, rec in self._recoveries():
            key = recover_key(origin)
            if self.clock.age(key, rec.at) <= PHASE_TIMEOUT_S:
                continue
            rec.at = self.clock.stamp(key)
            self.store.save_state(origin, rec)
            n = self.store.node(rec.node)
            if n is None or n.status != "online":
                continue  # (node_up re-drives it)
            r = self.replays.get(origin)
            if r is not None and r["m"] == rec.m and not r["replay"].done:
                self._replay_resend(acts, origin)
            else:  # (a restarted gateway, or `active` lost: go again, from the stored head)
                self._recover(acts, origin, rec.node, rec.m)
        for origin, st in self.store.states(MigrationState):
            key = state_key(origin)
            if st.step == RESTORE and st.restored and self._stored_head(origin) >= st.seq:
                self.waiting.discard(origin)  # (also after a restart: `waiting` is RAM)
                self._bump(acts, st)
                continue
            step = st.step
            phase = BY_NAME.get(step)
            if phase is None or phase.timeout_s is None:
                continue
            limit = KEYS_TIMEOUT_S if st.keys == "pushing" else phase.timeout_s
            if self.clock.age(key, st.at) <= limit:
                continue
            if step in PRE_BUMP:
                self._abort(acts, st, "%s: no answer in %ds" % (F.NAMES[F.TIMEOUT], limit))
                continue
            st.tries += 1
            st.at = self.clock.stamp(key)
            if st.tries > MAX_RETRIES:
                log.error("migration %d origin=%08x stuck in %s", st.m, st.origin, step)
                self.store.save_state(st.origin, st)
                if st.client is not None:
                    self.ctx.reply(acts, st.client, st.rid, False, error="migration of %08x stuck in %s "
                                     "after the cutover to %s (retrying)" % (st.origin, step, st.target))
                    st.client = None
                    self.store.save_state(st.origin, st)
                continue
            self.store.save_state(st.origin, st)
            if st.origin in self.replays:  # a replay stalled: its unacknowledged batches again
                self._replay_resend(acts, st.origin)
                continue
            cmd, side = phase.retry
            self._send(acts, getattr(st, side), cmd, st)


def status_of(store, origin):
    """For status bodies: the current phase, and the last completed migration."""
    cur = store.load_state(MigrationState, origin)
    last = store.load_state(MigratedRecord, origin)
    return (None if cur is None else cur.step), last
