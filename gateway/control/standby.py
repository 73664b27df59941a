"""StandbyGroup: one active, standbys holding its latest snapshot, promotion on failure
(docs/PROTOCOL.md §17).  Sans-I/O like the migration orchestrator: GatewayCore feeds it
requests, node replies, heartbeats, node failures, chain events and ticks; it answers with
Actions and persists each group as a GroupState record (a restarted gateway carries on).

A group hosts ONE daemon identity (origin): every member holds its key slot, so a promoted
standby continues the same chain at a new epoch.  What makes that exact is the gateway's
durable log: the latest synced snapshot (table `snapshots`) plus every input it logged from
the daemon's inbox (table `inputs`).  Promotion replays, in chain order, the inputs of the
events the dead active emitted after that snapshot (the replay rebuilds byte-identical
events: daemons are deterministic), then the logged inputs it never processed.  When the log
cannot supply one of those inputs, the events are lost for real: the gateway says so with a
signed NodeCrash record instead of pretending (see `recover_lost`).
"""
import logging

from ...shared import cbor
from ...shared import failures as F
from ...shared import frame as FR
from ...shared import topics as T
from ...shared.link import CausalLink

from . import replay as RP
from .state import GroupState, Member

log = logging.getLogger("netedge.gateway")

PREFIX = "group:"
SYNC_EVERY_N = 50         # default policy: a sync after this many events ...
SYNC_EVERY_S = 5.0        # ... or this many seconds with new events
REPLY_TIMEOUT_S = 3.0     # a sync or promotion step without an answer is retried elsewhere
ACTIVATE_RETRY_S = 1.0
CREATE_TIMEOUT_S = 30     # a group's activation and first sync, from its creation
MAX_PROMOTIONS_KEPT = 8


class Step:
    """One row of a group's state table: a step of the StandbyGroup, what starts it, its timeout
    and what the timeout does."""

    def __init__(self, name, starts, timeout_s, on_timeout):
        self.name, self.starts, self.timeout_s, self.on_timeout = name, starts, timeout_s, on_timeout


STEPS = (
    Step("keys", "the request is accepted: the daemon's key slot is pushed to every member", CREATE_TIMEOUT_S,
         "the group fails (counted from its creation)"),
    Step("activate", "every member holds the key slot: `activate` (epoch 1) to the first active", ACTIVATE_RETRY_S,
         "`activate` again; %d s after the creation the group fails" % CREATE_TIMEOUT_S),
    Step("sync0", "the active's heartbeat lists it at epoch 1: the first sync (`snap`)", REPLY_TIMEOUT_S,
         "the sync is asked again; %d s after the creation the group fails" % CREATE_TIMEOUT_S),
    Step("running", "every standby that is up kept the first sync (the operator's reply)", REPLY_TIMEOUT_S,
         "an unanswered sync is dropped; the policy (N events / S seconds) asks again"),
    Step("promoting", "the active is lost: the epoch bump (host: the best standby), then `promote`",
         REPLY_TIMEOUT_S, "the next candidate is promoted at a further epoch (none left: `orphaned`)"),
    Step("orphaned", "no healthy standby to promote", None, "- (a member's heartbeat promotes it)"),
    Step("lost", "the log cannot rebuild the events after the snapshot: NodeCrash and a fork", None, "-"),
)
BY_NAME = {s.name: s for s in STEPS}
SYNCING = ("sync0", "running")  # the steps a sync runs in
SETTLED = ("sync0", "running", "promoting", "orphaned", "lost")  # every member holds the key and a role


class Transition:
    """One row of a group's transition table: in these steps, this event from this party runs
    this handler, which leads to `then`."""

    def __init__(self, steps, event, party, handler, then):
        self.steps, self.event, self.party, self.handler, self.then = steps, event, party, handler, then


# Node replies (op of a MIGRATION frame) and the orchestrator's other inputs, per step.  A reply
# to a step the group is not in (e.g. a late `kept` of a finished sync) is dropped (logged).
TRANSITION_ROWS = (
    Transition(("keys",), "keys pushed", "driver", "keys_pushed",
               "`activate` once every member has the slot; a push error fails the group"),
    Transition(("activate",), "hosted", "active", "on_heartbeat", "`sync0` (the first sync)"),
    Transition(SYNCING, "snap", "active", "_on_snap",
               "snapshot stored, `keep` to the standbys up (none up: synced)"),
    Transition(SETTLED, "kept", "member", "_on_kept", "synced once every standby up kept its seq: `running`"),
    Transition(SETTLED, "demoted", "member", "_on_demoted", "a standby again, given the latest synced copy"),
    Transition(SYNCING, "failed", "member", "_on_sync_failed", "the sync is dropped (the policy asks again)"),
    Transition(SYNCING, "active lost", "driver", "on_node_down", "`promoting` (no candidate: `orphaned`)"),
    Transition(("promoting",), "restored", "promoted", "_on_restored",
               "the log's backlog is fed (the log lacks an input: `lost`)"),
    Transition(("promoting",), "fed", "promoted", "_on_fed", "the next batches, then `listen`"),
    Transition(("promoting",), "listening", "promoted", "_on_listening", "what was logged since, then `start`"),
    Transition(("promoting",), "active", "promoted", "_on_active", "`running` (the promotion recorded, a sync)"),
    Transition(("promoting",), "failed", "promoted", "_on_promote_failed", "the next candidate is promoted"),
    Transition(("orphaned",), "member back", "member", "on_heartbeat", "`promoting`"),
)
TRANSITIONS = {(step, t.event): t for t in TRANSITION_ROWS for step in t.steps}


class GroupError(ValueError):
    """A group request the gateway refuses (nothing was changed)."""


def key_of(origin):
    return "%s%08x" % (PREFIX, origin)


class StandbyOrchestrator:
    def __init__(self, ctx, record_loss, fork):
        self.ctx = ctx            # narrow collaborators (control/collaborators.py)
        self.frame = ctx.frame    # (ftype, body) -> frame bytes
        self.store = ctx.store
        self.clock = ctx.clock    # monotonic `now` and persisted steps' ages (control/clock.py)
        self.record_loss = record_loss  # (acts, origin, last snapshot seq): a signed NodeCrash, published
        self.fork = fork          # ForkOrchestrator.from_snapshot: a new entity continues the state
        # every group in RAM: chain events consult it per event, without a query
        self.groups = {st.origin: st for _, st in self.store.states(GroupState)}
        self.backlog = {}  # origin -> [input batches for the promoted node, last input id read]

    # -- helpers ------------------------------------------------------------------------

    def _save(self, st):
        self.store.save_state(st.origin, st)
        self.ctx.changed(st.origin)

    def _next_id(self):
        return self.ctx.new_op(self)

    def open_op_ids(self):
        """The ids of the syncs and promotions in progress (a restarted core routes their replies here)."""
        return [x["m"] for st in self.groups.values() for x in (st.sync, st.promo) if x]

    def owns(self, origin):
        return origin in self.groups

    def _stamp(self, st, what):
        return self.clock.stamp("%s:%s" % (key_of(st.origin), what))

    def _age(self, st, what, at):
        return self.clock.age("%s:%s" % (key_of(st.origin), what), at)

    def _send(self, acts, node, cmd, st, m, **extra):
        body = dict(extra, cmd=cmd, m=m, origin=st.origin)
        acts.publish.append((T.node(node, "ctl"), self.frame(FR.CONTROL, body), 1, False))

    def _online(self, node):
        n = self.store.node(node)
        return n is not None and n.status == "online"

    def _reply(self, acts, st, ok, result=None, error=None):
        if st.client is not None:
            self.ctx.reply(acts, st.client, st.rid, ok, result=result, error=error)
            st.client = None

    def slots_for(self, node):
        """Key slots a member node must keep (GatewayCore._slots adds them to every push)."""
        out = []
        for st in self.groups.values():
            if node in st.members:
                d = self.store.daemon(st.origin)
                out.append({"kind": d.kind, "public": d.public_key.hex()})
        return out

    def is_grouped(self, origin):
        return origin in self.groups

    # -- create -----------------------------------------------------------------------------

    def create(self, acts, client, rid, kind, members, nodes, sync_n, sync_s):
        online = [n for n in self.store.nodes(status="online") if kind in (n.info.get("kinds") or [])]
        if nodes:
            known = {n.node_id for n in online}
            bad = [x for x in nodes if x not in known]
            if bad:
                raise GroupError("node(s) %s are not online or cannot host kind %r" % (", ".join(bad), kind))
            if len(set(nodes)) != len(nodes):
                raise GroupError("members must be on distinct nodes")
            chosen = list(nodes)
        else:
            # least loaded first: fewest hosted daemons, then most free heap
            online.sort(key=lambda n: (len(n.info.get("daemons") or []), -(n.info.get("heap") or 0), n.node_id))
            chosen = [n.node_id for n in online[:members]]
        if len(chosen) < members:
            raise GroupError("a standby group of %d needs %d distinct online nodes that can host kind %r; "
                             "there are %d (%s)" % (members, members, kind, len(online),
                                                    ", ".join(n.node_id for n in online) or "none"))
        info = self.ctx.keystore.generate(kind)
        origin = info.origin
        self.store.add_daemon(origin, kind, info.public_key, host_node=chosen[0], epoch=1, status="provisioning")
        created = self.clock.stamp("%s:created" % key_of(origin))
        st = GroupState(origin=origin, kind=kind, active=chosen[0], step="keys",
                        members={n: Member(role="active" if i == 0 else "standby", seq=None, up=True)
                                 for i, n in enumerate(chosen)},
                        sync_n=sync_n, sync_s=sync_s, sync=None, last_sync=None, keys=list(chosen), promo=None,
                        promotions=[], client=client, rid=rid, created=created,
                        at=self.clock.stamp("%s:at" % key_of(origin)))
        self.groups[origin] = st
        self._save(st)
        log.info("standby group %08x kind=%s members=%s", origin, kind, chosen)
        for n in chosen:
            acts.push_keys.append((n, self.ctx.slots(n), self.ctx.push_tag("%s%08x:%s" % (PREFIX, origin, n), self)))

    def keys_pushed(self, acts, key, error):
        origin_hex, _, node = key[len(PREFIX):].partition(":")
        st = self.groups.get(int(origin_hex, 16))
        if st is None or node not in st.members:
            return
        if error:
            if st.step == "keys":
                self._fail(acts, st, "provisioning the key slot on %s failed: %s" % (node, error))
            else:  # a recruit: forget it, the group keeps its other members
                log.warning("group %08x: recruit %s not provisioned: %s", st.origin, node, error)
                del st.members[node]
                self._save(st)
            return
        if st.step == "keys":
            st.keys = [n for n in st.keys if n != node]
            if not st.keys:
                st.step, st.at = "activate", 0
            self._save(st)
        elif st.last_sync is not None:  # a recruit: give it the latest copy now
            self._keep(acts, st, [node])

    def _fail(self, acts, st, why):
        del self.groups[st.origin]
        self.store.drop_state(GroupState, st.origin)
        self.store.update_daemon(st.origin, status="failed")
        self._reply(acts, st, False, error="standby group %08x not created: %s" % (st.origin, why))

    # -- sync -------------------------------------------------------------------------------

    def sync(self, acts, st):
        """sync_standbys(): ask the active for a copy (it keeps processing)."""
        if st.sync is not None or st.step not in ("sync0", "running"):
            return False
        st.sync = {"m": self._next_id(), "at": self._stamp(st, "sync")}
        self._save(st)
        self._send(acts, st.active, "snap", st, st.sync["m"])
        return True

    def _keep(self, acts, st, nodes):
        snap = self.store.latest_snapshot(st.origin)
        for n in nodes:
            if st.members[n].up:
                self._send(acts, n, "keep", st, st.sync["m"] if st.sync else self._next_id(), rec=snap.data)

    def on_event(self, acts, origin, seq):
        """Each chain event merged: the every-N policy."""
        st = self.groups.get(origin)
        if st is not None and st.step == "running" and st.sync is None:
            done = st.last_sync["seq"] if st.last_sync else 0
            if seq - done >= st.sync_n:
                self.sync(acts, st)

    # -- node replies -------------------------------------------------------------------------

    def on_reply(self, acts, node, body):
        """A MIGRATION frame from a node; True when it belonged to a group.  TRANSITIONS says
        which reply each step takes and from whom; the handler checks the operation id."""
        op, m, origin = body.get("op"), body.get("m"), body.get("o")
        st = self.groups.get(origin)
        if st is None or type(m) is not int:
            return False
        seq = body.get("seq")
        if op in ("kept", "demoted", "active", "fed") and not (type(seq) is int and seq >= -1):
            raise FR.MalformedFrame("%s needs seq: int" % op)
        t = TRANSITIONS.get((st.step, op))
        if t is None or not self._is_party(st, t.party, node):
            # (a late answer to a finished step: a group's daemon never migrates)
            log.info("group %08x: reply %s from %s in step %s ignored", origin, op, node, st.step)
            return True
        getattr(self, t.handler)(acts, st, node, m, body)
        return True

    def _is_party(self, st, party, node):
        if party == "active":
            return node == st.active
        if party == "promoted":
            return st.promo is not None and node == st.promo["to"]
        return node in st.members

    # -- the transitions (TRANSITIONS) ----------------------------------------------------------

    def _on_snap(self, acts, st, node, m, body):
        if st.sync is None or m != st.sync["m"]:
            return
        origin = st.origin
        head, r = check_snapshot(body, origin)
        self.store.put_snapshot(origin, head.sequence, body["rec"], head_link=head, head_forward=r["next"])
        st.last_sync = {"seq": head.sequence, "at": self._stamp(st, "last_sync")}
        st.sync["at"] = self._stamp(st, "sync")
        self._save(st)
        standbys = [n for n, mb in st.members.items() if mb.role == "standby"]
        self._keep(acts, st, standbys)
        if not [n for n in standbys if st.members[n].up]:
            self._synced(acts, st)

    def _on_kept(self, acts, st, node, m, body):
        st.members[node].seq = body["seq"]
        if st.sync is not None and all(mb.seq == st.last_sync["seq"] for n, mb in st.members.items()
                                          if mb.role == "standby" and mb.up):
            self._synced(acts, st)
        else:
            self._save(st)

    def _on_demoted(self, acts, st, node, m, body):
        # a deposed active rejoined as a standby: its copy may hold events the group never
        # accepted, so it gets the latest synced copy before it can be promoted
        st.members[node] = Member(role="standby", seq=None, up=True)
        self._save(st)
        if st.last_sync is not None:
            self._keep(acts, st, [node])

    def _on_sync_failed(self, acts, st, node, m, body):
        if st.sync is None or m != st.sync["m"]:
            return
        log.warning("group %08x: sync step failed on %s: %s", st.origin, node, body.get("detail"))
        if node != st.active:
            st.members[node].seq = None
        st.sync = None
        self._save(st)

    def _promotion_reply(self, st, m):
        return st.promo is not None and m == st.promo["m"]

    def _on_restored(self, acts, st, node, m, body):
        if self._promotion_reply(st, m):
            self._replay(acts, st)

    def _on_fed(self, acts, st, node, m, body):
        if self._promotion_reply(st, m):
            if self._backlog_lost(acts, st):
                return
            self._feed(acts, st, body.get("b"))

    def _on_listening(self, acts, st, node, m, body):
        if self._promotion_reply(st, m):
            if self._backlog_lost(acts, st):
                return
            self._catch_up(acts, st)

    def _backlog_lost(self, acts, st):
        """The feed of a promotion is RAM (self.backlog): a core rebuilt after a failed commit,
        or a restarted gateway, gets the node's answers to feeds it no longer knows.  Before
        `start` those answers mean the promoted node waits for more: it is fed again from the
        log, from the start (its input window drops what it has; it takes `feed` and `listen`
        again while it holds), instead of a timeout promoting another standby over it.  True:
        re-driven (or nothing left to do)."""
        if st.origin in self.backlog:
            return False
        if not st.promo.get("start"):
            log.warning("group %08x: the feed of %s's promotion was lost with this core's memory: fed again from "
                        "the log", st.origin, st.promo["to"])
            self._replay(acts, st)
        return True

    def _on_active(self, acts, st, node, m, body):
        if self._promotion_reply(st, m):
            self._promoted(acts, st, body["seq"])

    def _on_promote_failed(self, acts, st, node, m, body):
        if self._promotion_reply(st, m):
            self._promote(acts, st, "%s failed: %s" % (node, F.NAMES.get(body.get("code"), body.get("code"))))

    def _synced(self, acts, st):
        st.sync = None
        if st.step == "sync0":
            st.step = "running"
            self.store.update_daemon(st.origin, status="active")
            self._reply(acts, st, True, result=summary(st))
        self._save(st)

    # -- heartbeats and failures -----------------------------------------------------------------

    def on_heartbeat(self, acts, node, hb, now):
        for st in self.groups.values():
            mb = st.members.get(node)
            if mb is not None and not mb.up:
                mb.up = True
                log.info("group %08x: member %s is back", st.origin, node)
                self._save(st)
                if (st.step, "member back") in TRANSITIONS:
                    self._promote(acts, st, "member %s is back" % node)
                elif (mb.role == "standby" and st.last_sync is not None and st.sync is None
                      and not any(isinstance(d, dict) and d.get("origin") == st.origin
                                  for d in hb.get("daemons") or [])):  # (a deposed active: demoted first)
                    self._keep(acts, st, [node])
            if (st.step, "hosted") in TRANSITIONS and node == st.active:
                if any(isinstance(d, dict) and d.get("origin") == st.origin and d.get("epoch") == 1
                       for d in hb.get("daemons") or []):
                    st.step = "sync0"
                    self.sync(acts, st)
        # fencing made visible: a node that still runs a group daemon it no longer hosts (frozen,
        # rebooted, cut off) is told to step down; its stale frames were rejected meanwhile
        for d in hb.get("daemons") or []:
            st = self.groups.get(d.get("origin")) if isinstance(d, dict) else None
            if st is None or st.step == "activate":
                continue
            cur = self.store.daemon(st.origin)
            if node != cur.host_node or d.get("epoch", 0) < cur.epoch:
                log.warning("group %08x: %s still runs it at epoch %s (host %s, epoch %d): demote",
                            st.origin, node, d.get("epoch"), cur.host_node, cur.epoch)
                st.members.setdefault(node, Member(role="standby", seq=None, up=True))
                self._send(acts, node, "demote", st, self._next_id(), epoch=cur.epoch)

    def on_node_down(self, acts, node, why):
        for st in list(self.groups.values()):
            mb = st.members.get(node)
            if mb is None or not mb.up:
                continue
            mb.up = False
            self._save(st)
            if node == st.active and (st.step, "active lost") in TRANSITIONS:
                st.sync = None
                self._promote(acts, st, "%s: %s" % (node, why), failed=node)
            elif node != st.active:
                log.warning("group %08x: standby %s lost (%s)", st.origin, node, why)
            self._recruit(acts, st)

    def _recruit(self, acts, st):
        """Keep the group at its size: a capable online node outside it becomes a standby."""
        healthy = [n for n, mb in st.members.items() if mb.up]
        want = len(st.members) - len(healthy)
        if want <= 0:
            return
        for n in self.store.nodes(status="online"):
            if want <= 0:
                break
            if n.node_id in st.members or st.kind not in (n.info.get("kinds") or []):
                continue
            st.members[n.node_id] = Member(role="standby", seq=None, up=True)
            want -= 1
            log.info("group %08x: recruiting %s as a standby", st.origin, n.node_id)
            acts.push_keys.append((n.node_id, self.ctx.slots(n.node_id),
                                   self.ctx.push_tag("%s%08x:%s" % (PREFIX, st.origin, n.node_id), self)))
        self._save(st)

    # -- promotion ------------------------------------------------------------------------------

    def _promote(self, acts, st, why, failed=None):
        """Promote the healthy standby that is furthest along, at a new epoch."""
        promo = st.promo or {}
        tried = promo.get("tried", []) if st.step == "promoting" else []
        cands = [n for n, mb in st.members.items()
                 if mb.up and n != failed and n not in tried and self._online(n)
                 and (mb.role == "standby" or st.step == "orphaned")]
        if not cands:
            st.step, st.promo = "orphaned", None
            self._save(st)
            log.error("group %08x: no healthy standby to promote (%s); waiting for a member", st.origin, why)
            return
        snap = self.store.latest_snapshot(st.origin)
        to = max(cands, key=lambda n: (st.members[n].seq if st.members[n].seq is not None else -1, n))
        d = self.store.daemon(st.origin)
        old = st.active
        epoch = d.epoch + 1
        # the epoch bump first: from here on only `to` at `epoch` is merged (fencing)
        self.store.update_daemon(st.origin, host_node=to, epoch=epoch)
        held = st.members[to].seq
        extra = {"epoch": epoch, "kind": d.kind}
        if snap is not None and held != snap.seq:
            extra["rec"] = snap.data  # its own copy is older or unknown: ship the gateway's
        st.promo = {"m": self._next_id(), "to": to, "from": old, "epoch": epoch, "why": why,
                       "seq": snap.seq if snap is not None else 0, "at": self._stamp(st, "promo"),
                       "started": promo["started"] if "started" in promo else self._stamp(st, "promo_started"),
                       "tried": tried + [to]}
        st.members[old].role = "standby"
        st.members[to].role = "active"
        st.active, st.step = to, "promoting"
        self._save(st)
        log.warning("group %08x: promoting %s at epoch %d (%s)", st.origin, to, epoch, why)
        self._send(acts, to, "promote", st, st.promo["m"], **extra)

    def _replay(self, acts, st):
        """The promoted node restored its copy (not yet subscribed): feed it the backlog
        (control/replay.py: the inputs after its copy's seq, in acknowledged batches)."""
        promo = st.promo
        items, last_id, missing = RP.backlog(self.store, st.origin, promo["seq"])
        if missing is not None:
            log.error("group %08x: the input of event %d is not in the log: events after the snapshot at %d "
                      "are lost", st.origin, missing, promo["seq"])
            self._lost(acts, st, missing)
            return
        # (RAM only: a restarted gateway times the promotion out and promotes again)
        self.backlog[st.origin] = [RP.Replay(promo["to"], RP.batches(items), lambda i: i), last_id]
        promo["replayed"] = len(items)
        self._feed(acts, st, None)

    def _feed(self, acts, st, fed):
        """`fed` came back (None: the start): the next batches of the window; then `listen`."""
        promo = st.promo
        backlog = self.backlog.get(st.origin)
        out = None if backlog is None else backlog[0].advance(fed)
        if out is None:
            return  # (a repeated or unexpected `fed`)
        promo["at"] = self._stamp(st, "promo")
        for b, batch in out:
            self._send(acts, promo["to"], "feed", st, promo["m"], inputs=batch, b=b)
        if backlog[0].done:
            self._send(acts, promo["to"], "listen", st, promo["m"])

    def _catch_up(self, acts, st):
        """Subscribed and holding: what was logged since the backlog was read, then `start`."""
        promo = st.promo
        backlog = self.backlog.pop(st.origin, None)
        if backlog is None:
            return
        tail = [[i.sender, i.counter, i.payload] for i in self.store.inputs_after(st.origin, backlog[1])]
        for batch in RP.batches(tail):  # (no "b": these `fed` need no answer)
            self._send(acts, promo["to"], "feed", st, promo["m"], inputs=batch)
        self._send(acts, promo["to"], "start", st, promo["m"])
        promo["start"] = True  # (an answer to a feed after this is a redelivery: nothing to re-drive)
        promo["replayed"] += len(tail)
        promo["at"] = self._stamp(st, "promo")
        self._save(st)

    def _lost(self, acts, st, missing):
        """The log cannot rebuild the events after the snapshot: they are lost.  A signed
        NodeCrash record discontinues the original chain, and a new entity (a fork at the
        snapshot, with its signed ForkRecord) continues the state on the chosen standby."""
        promo = st.promo
        origin = st.origin
        self._send(acts, promo["to"], "stop", st, promo["m"])
        self.record_loss(acts, origin, promo["seq"])
        snap = self.store.latest_snapshot(origin)
        child = self.fork(acts, origin, snap.seq, snap.data, promo["to"],
                                              "NodeCrash: events %d.. lost" % missing)
        st.step, st.promo = "lost", None
        st.lost = {"snapshot_seq": promo["seq"], "missing": missing, "child": child, "at": self.clock.wall()}
        self._save(st)

    def _promoted(self, acts, st, seq):
        promo, st.promo = st.promo, None
        st.step = "running"
        done = {"from": promo["from"], "to": promo["to"], "epoch": promo["epoch"], "why": promo["why"],
                "snapshot_seq": promo["seq"], "replayed": promo.get("replayed", 0), "seq": seq,
                "ms": round(self._age(st, "promo_started", promo["started"]) * 1000), "at": self.clock.wall()}
        st.promotions = (st.promotions + [done])[-MAX_PROMOTIONS_KEPT:]
        st.members[promo["to"]].seq = None
        self.store.update_daemon(st.origin, status="active")
        self._save(st)
        log.warning("group %08x: %s promoted at epoch %d in %d ms (replayed %d)", st.origin, promo["to"],
                    promo["epoch"], done["ms"], done["replayed"])
        self.sync(acts, st)  # fresh copies for the standbys (and any recruit)

    # -- timers ---------------------------------------------------------------------------------

    def tick(self, acts):
        """Each step's timeout (STEPS), and the sync policy of a running group."""
        for st in list(self.groups.values()):
            step = st.step
            limit = BY_NAME[step].timeout_s
            if step == "keys" and self._age(st, "created", st.created) > limit:
                self._fail(acts, st, "the key slots were not provisioned in %d s" % limit)
            elif step == "activate" and self._age(st, "at", st.at) >= limit:
                st.at = self._stamp(st, "at")
                body = {"cmd": "activate", "origin": st.origin, "kind": st.kind, "epoch": 1}
                acts.publish.append((T.node(st.active, "ctl"), self.frame(FR.CONTROL, body), 1, False))
                if self._age(st, "created", st.created) > CREATE_TIMEOUT_S:
                    self._fail(acts, st, "node %s did not activate it in %d s" % (st.active, CREATE_TIMEOUT_S))
            elif step == "promoting" and self._age(st, "promo", st.promo["at"]) > limit:
                self._promote(acts, st, "%s did not answer the promotion" % st.promo["to"], failed=st.promo["to"])
            elif st.sync is not None and self._age(st, "sync", st.sync["at"]) > limit:
                st.sync = None  # retried by the policy below
                self._save(st)
            elif step == "sync0" and self._age(st, "created", st.created) > CREATE_TIMEOUT_S:
                self._fail(acts, st, "the first sync of the standbys did not complete in %d s" % CREATE_TIMEOUT_S)
            elif step == "sync0" and st.sync is None:
                self.sync(acts, st)
            elif step == "running" and st.sync is None:
                last = st.last_sync
                head = self.store.head(st.origin)
                if last and head and head.sequence > last["seq"] and \
                        self._age(st, "last_sync", last["at"]) >= st.sync_s:
                    self.sync(acts, st)


def check_snapshot(body, origin):
    """(head link, record map) of a `snap` reply's record; MalformedFrame when it is not one of `origin`."""
    rec = body.get("rec")
    if not isinstance(rec, bytes):
        raise FR.MalformedFrame("snap needs rec: bytes")
    r = cbor.loads(rec)
    if not isinstance(r, dict) or not isinstance(r.get("head"), bytes) or type(r.get("next")) is not int \
            or not 0 <= r["next"] < 1 << 64:
        raise FR.MalformedFrame("snap rec must be a daemon record (head link, next hash)")
    head = CausalLink.from_bytes(r["head"])
    if head.origin_hash != origin or r.get("origin") != origin:
        raise FR.MalformedFrame("snap of another origin")
    return head, r


def summary(st):
    """A group as `netedge status` and the status topic show it."""
    return {"origin": st.origin, "kind": st.kind, "active": st.active, "step": st.step,
            "members": {n: {"role": mb.role, "seq": mb.seq, "up": mb.up} for n, mb in st.members.items()},
            "last_sync": st.last_sync, "sync_every": [st.sync_n, st.sync_s],
            "last_promotion": st.promotions[-1] if st.promotions else None,
            "promotions": len(st.promotions)}


def groups_of(store):
    """Every group's summary, from the store (works while the gateway is down)."""
    return [summary(st) for _, st in store.states(GroupState)]
