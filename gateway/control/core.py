"""GatewayCore: the control plane's logic, driven by a thin I/O layer (gateway/service.py).

`on_message(topic, payload, now)` and `tick(now)` return Actions: frames to publish and
provisioning work (USB / board folder) for the driver.  The durable store is written directly
and synchronously — the driver acknowledges an MQTT message only after the call returns, so a
`kill -9` at any instant loses nothing the broker considered delivered.
"""
import logging

from ...shared import frame as FR
from ...shared import topics as T
from ...shared.errors import NetedgeError
from ...shared.chain import ChainError
from ...shared.errors import DecodeError
from ...shared.event_decode import decode as event_decode
from ...shared.link import CausalLink, h8
from ...shared.log import ChainEvent, Duplicate
from ..rows import ConflictingEvent, ConflictingInput, StoreError
from .acks import Acknowledger
from .records import RecordIssuer
from .clock import ControlClock, FrameCounter
from .state import NodeBoot
from .routes import Routes
from .status import continuity_of, daemon_status_body
from .migration import MigrationOrchestrator
from .fork import ForkOrchestrator
from .standby import StandbyOrchestrator
from .collaborators import Collaborators
from .deploy import Deployer, key_slots
from .requests import Requests

log = logging.getLogger("netedge.gateway")

NODE_ONLINE, NODE_OFFLINE, NODE_SUSPECT = "online", "offline", "suspect"
I64_MAX = (1 << 63) - 1   # epochs are stored as SQLite INTEGER
# A last will is acted on this much later: a broker shutting down publishes every client's will
# just before it drops our connection too, and those wills must not fail over the whole fleet
# (broker_lost drops them).  It adds this to a crashed node's failover.
WILL_HOLD_S = 0.1
# After our own reconnection the wills the broker queued for our session are as stale, and the
# nodes come back at their own pace (their MQTT backoff reaches 5 s: firmware/main.py): for the
# heartbeat deadline plus this, the deadline alone decides who is gone.
NODE_REDIAL_MAX_S = 5.0
# Nodes heartbeat three times per deadline (firmware 500 ms, gateway 1500 ms): when NOTHING came
# from the broker for this share of the deadline (two heartbeats of every node missed), our own
# link is down, whatever our socket says; it is noticed before any node's deadline passes.
DEAF_SHARE = 0.7


def _is_int(v):
    return type(v) is int  # not bool


def _check_body(ok, what):
    if not ok:
        raise FR.MalformedFrame(what)


class Actions:
    """What the driver must do: publish (topic, bytes, qos, retain), push_keys (node, slots, tag)."""

    def __init__(self):
        self.publish = []
        self.push_keys = []

    def extend(self, other):
        self.publish += other.publish
        self.push_keys += other.push_keys
        return self


class GatewayCore:
    """The driver supplies, besides store and keystore: `wall` (its wall clock: () -> seconds,
    for what is persisted with a time), `counter_start` (the first frame counter: larger than
    any a previous run used, e.g. from the wall clock in ms) and `rng` (a random.Random-like
    source of operation ids: random.SystemRandom() in service, seeded in a simulation)."""

    def __init__(self, store, keystore, gateway_id="gw1", deadline_ms=1500, input_log_max=100000, *, wall,
                 counter_start, rng):
        self.store = store
        self.keystore = keystore
        self.id = gateway_id
        self.deadline = deadline_ms / 1000.0
        self.input_log_max = input_log_max  # the input log is bounded too: a cut is recorded if it ever matters
        self.clock = ControlClock(wall)
        self.frame_counter = FrameCounter(counter_start, rng)  # (and operation ids)
        self.last_seen = {}       # node -> monotonic-ish `now` of the last heartbeat
        self.tails = {}           # origin -> EntityLog anchored at the stored head
        self.dirty = set()        # origins whose retained status must be republished
        self.counters = {"malformed": 0, "unknown_daemon": 0, "stale_epoch": 0, "duplicates": 0,
                         "chain_errors": 0, "conflicts": 0, "inputs": 0, "events": 0,
                         "records": 0, "inputs_pruned": 0, "internal_errors": 0,
                         "gap_requests": 0, "inputs_from_events": 0, "input_repairs": 0,
                         "store_faults": 0}  # (the driver counts the last one: see service.py)
        self.records = RecordIssuer(store, keystore, clock=wall)  # signed discontinuity records (gateway/records.py)
        self.acks = Acknowledger(self)  # stored-through marks to the hosts, gap repair (control/acks.py)
        self.recent_errors = []   # (node, body) reported by nodes, newest last, capped
        self.routes = Routes()    # operation id / key push tag -> the orchestrator that answers it
        self.provisionable = None  # node -> bool: the driver can push key slots to it (None: unknown)
        # what the orchestrators may use of the core: narrow collaborators, never the core itself
        ctx = Collaborators(
            store=store, clock=self.clock, keystore=keystore, frame=self._frame, reply=self._reply,
            new_op=lambda owner: self.routes.op(self.frame_counter.op_id(), owner), push_tag=self.routes.push,
            slots=self._slots, changed=lambda *origins: self.dirty.update(origins), count=self._count,
            can_provision=lambda node: None if self.provisionable is None else bool(self.provisionable(node)))
        self.deployer = Deployer(ctx)                  # deploy and stop (control/deploy.py)
        self.pending = self.deployer.pending           # deploy tag -> last activation sent
        self.migrations = MigrationOrchestrator(ctx)   # live migration (control/migration.py)
        self.forks = ForkOrchestrator(ctx)             # forks with a signed lineage (control/fork.py)
        self.standby = StandbyOrchestrator(ctx, self._record_loss, self.forks.from_snapshot)  # (control/standby.py)
        self.requests = Requests(ctx, gateway_id, self.deployer, self.migrations, self.forks, self.standby)
        for orch in (self.migrations, self.standby, self.forks):
            for m in orch.open_op_ids():
                self.routes.op(m, orch)
        self.held_wills = {}       # node -> when its last will came (see WILL_HOLD_S)
        self.blind = False         # our own broker connection is down (broker_lost)
        self.grace_until = 0.0     # until then after a reconnection, wills are stale (broker_back)
        self.heard = None          # `now` of the last message the broker delivered to us (any topic)
        self.deaf = False          # nothing came for a whole deadline: our own link, not the nodes
        for n in store.nodes():
            if n.status != NODE_OFFLINE:
                self.last_seen[n.node_id] = None  # unknown since restart: the deadline starts now

    # -- frames -----------------------------------------------------------------------

    def _frame(self, ftype, body):
        return FR.encode(ftype, self.id, self.frame_counter.next(), body)

    def status_frame(self, online):
        return T.gateway(self.id, "status"), self._frame(FR.STATUS, {"state": "online" if online else "offline"}), 1, True

    # -- input ------------------------------------------------------------------------

    def on_message(self, topic, payload, now):
        self.clock.advance(now)
        acts = Actions()
        self._heard(now)
        parts = T.split(topic)
        if parts is None:
            return acts
        try:
            if parts[0] == "node" and len(parts) == 3:
                self._on_node(acts, parts[1], parts[2], payload, now)
            elif parts[0] == "d" and len(parts) == 3:
                self._on_daemon(acts, parts[1], parts[2], payload, now)
            elif parts[0] == "gw" and len(parts) == 4 and parts[1] == self.id and parts[2] == "req":
                self._on_request(acts, parts[3], payload, now)
        except (FR.FrameError, NetedgeError, KeyError, TypeError, ValueError) as e:
            # Handlers validate before they write, so a refused frame changes nothing (invariant 5).
            self.counters["malformed"] += 1
            log.warning("bad frame topic=%s error=%s: %s", topic, type(e).__name__, e)
        return acts

    def _decode(self, payload, want):
        f = FR.decode(payload)
        if f.type != want:
            raise FR.MalformedFrame("expected %s, got %s" % (FR.TYPES[want], f.type_name()))
        body = f.body()
        if not isinstance(body, dict):
            raise FR.MalformedFrame("%s body must be a map" % FR.TYPES[want])
        return f, body

    # -- nodes ------------------------------------------------------------------------

    def _decode_node(self, node, payload, want):
        """A node's own frame: its sender must be the node the topic names."""
        f, body = self._decode(payload, want)
        if f.sender != node:
            raise FR.MalformedFrame("sender %r on node %r's topic" % (f.sender, node))
        return f, body

    def _on_node(self, acts, node, leaf, payload, now):
        if leaf == "status":
            if not payload:
                return  # a cleared retained message
            f, body = self._decode_node(node, payload, FR.STATUS)
            state = body.get("state")
            _check_body(state in ("online", "offline"), "STATUS state must be 'online' or 'offline'")
            if state == "offline":
                if now < self.grace_until:
                    log.info("last will of %s ignored: it came with the broker's restart or was queued for our "
                             "session, of unknown age (the heartbeat deadline decides)", node)
                else:
                    self.held_wills.setdefault(node, now)  # acted on in tick(), WILL_HOLD_S later
            else:
                boot = body.get("boot")
                prev = self.store.load_state(NodeBoot, node)
                rebooted = None if prev is None or not _is_int(boot) else prev.id != boot
                if node in self.held_wills:  # (a will, then the node back at once: in that order)
                    if rebooted is False:
                        # the same boot: a reconnect (a network cut, a broker restart, a takeover),
                        # its RAM and its daemons intact; the will says nothing about them
                        del self.held_wills[node]
                        log.info("last will of %s dropped: it is back with the same boot id (a reconnect)", node)
                    else:
                        self._will(acts, node)
                self.store.upsert_node(node, NODE_ONLINE, last_seen=self.clock.wall())
                if _is_int(boot) and rebooted is not False:
                    self.store.save_state(node, NodeBoot(id=boot))
                self.migrations.node_up(acts, node, rebooted)
                self.last_seen[node] = now
        elif leaf == "hb":
            f, body = self._decode_node(node, payload, FR.HEARTBEAT)
            kinds, daemons = body.get("kinds"), body.get("daemons", [])
            _check_body(isinstance(kinds, list) and all(isinstance(k, str) for k in kinds),
                        "HEARTBEAT needs 'kinds': a list of names")
            _check_body(isinstance(daemons, list) and all(
                isinstance(d, dict) and all(_is_int(d.get(k, 0)) for k in ("origin", "epoch")) for d in daemons),
                "HEARTBEAT 'daemons' must be a list of maps with integer origin and epoch")
            was = self.store.node(node)
            # the write first: a body JSON cannot hold (bytes) raises TypeError before anything changed
            self.store.upsert_node(node, NODE_ONLINE, info=body, last_seen=self.clock.wall())
            self.last_seen[node] = now
            if was is None or was.status != NODE_ONLINE:
                log.info("node online node=%s board=%s heap=%s", node, body.get("board"), body.get("heap"))
            self._check_deploys(acts, node, body, now)
            self.standby.on_heartbeat(acts, node, body, now)
            self.acks.heartbeat(acts, node, daemons)
        elif leaf == "err":
            f, body = self._decode_node(node, payload, FR.ERROR)
            _check_body(isinstance(body.get("code"), str), "ERROR needs 'code': a name")
            self.recent_errors.append((node, body))
            del self.recent_errors[:-100]
            log.warning("node error node=%s code=%s at=%s detail=%s", node, body.get("code"), body.get("at"),
                        body.get("detail"))
            if body["code"] == "corruption":
                self._on_corruption(acts, node, body.get("at"))
            elif body["code"] == "gap_lost":
                self._on_gap_lost(acts, node, body.get("at"))
        elif leaf == "mig":
            f, body = self._decode_node(node, payload, FR.MIGRATION)
            _check_body(isinstance(body.get("op"), str) and _is_int(body.get("m")) and _is_int(body.get("o")),
                        "MIGRATION body needs op (a name), m and o (integers)")
            self._reply_owner(body).on_reply(acts, node, body)

    def _reply_owner(self, body):
        """The orchestrator a node's MIGRATION reply belongs to: the one that issued its operation
        id; for an id this run does not know (control/routes.py), the one that owns its origin."""
        owner = self.routes.owner_of_op(body.get("m"))
        if owner is not None:
            return owner
        origin = body.get("o")
        if self.standby.owns(origin):
            return self.standby
        if type(origin) is int and self.forks.owns(origin):
            return self.forks
        return self.migrations  # (it logs a reply of no current migration and drops it)

    def _will(self, acts, node):
        self.held_wills.pop(node, None)
        self._node_down(acts, node, "last will")
        self.migrations.node_down(acts, node)

    def carry_over(self, old):
        """A core rebuilt from the store (its predecessor's memory went ahead of a transaction
        that did not commit: driver.py) keeps what only memory knows: the counters, and the
        state of our own broker connection (blind, its grace, when we last heard anything)."""
        self.counters.update(old.counters)
        self.blind, self.grace_until = old.blind, old.grace_until
        self.heard, self.deaf = old.heard, old.deaf
        return self

    def broker_lost(self):
        """The gateway's own broker connection dropped.  A broker that shuts down (a restart, an
        upgrade) first publishes every client's last will: the wills still held came with it
        and say nothing about the nodes.  Blind until broker_back(): no deadline blames a node
        for the gateway's own silence."""
        if self.held_wills:
            log.warning("last wills of %s dropped: they came with the broker going away",
                        ", ".join(sorted(self.held_wills)))
            self.held_wills.clear()
        self.blind = True

    def broker_back(self, now, resumed=False):
        """Connected again after broker_lost(), or `resumed`: the broker kept our persistent
        session (CONNACK's session present), so what it queued while we were away comes now.
        Either way the wills among it are of unknown age: a broker restart publishes every
        node's will while the nodes live on, and they reconnect at their own pace.  Every
        node's heartbeat deadline starts now (a dead one misses it), enforced once the nodes
        had time to come back (grace); until then a will alone fails nothing over."""
        self.clock.advance(now)
        if not (self.blind or resumed):
            return  # a first connection with a new session: no backlog, the wills that come are news
        self.blind = False
        self.grace_until = now + self.deadline + NODE_REDIAL_MAX_S
        for node in self.last_seen:
            self.last_seen[node] = None

    def _heard(self, now):
        """A message came: our link works.  After a silence of everyone (`deaf`), the time we
        could not hear counts against no node: each has the rest of a deadline from now (its
        heartbeats are on their way behind this message)."""
        if self.deaf:
            self.deaf = False
            floor = now - self.deadline * DEAF_SHARE
            for node, seen in self.last_seen.items():
                if seen is not None and seen < floor:
                    self.last_seen[node] = floor
        self.heard = now

    def _node_down(self, acts, node, why):
        self.last_seen.pop(node, None)
        n = self.store.node(node)
        if n is not None and n.status != NODE_OFFLINE:
            self.store.upsert_node(node, NODE_OFFLINE)
            log.warning("node offline node=%s reason=%s", node, why)
            self.standby.on_node_down(acts, node, why)

    def tick(self, now):
        """Timers: heartbeat deadlines, deploy retries, throttled status publishing."""
        self.clock.advance(now)
        acts = Actions()
        for node, t in list(self.held_wills.items()):
            if now - t >= WILL_HOLD_S:
                self._will(acts, node)
        silent = self.heard is None or now - self.heard > self.deadline * DEAF_SHARE
        if silent and len(self.last_seen) >= 2 and not self.deaf:
            # Every node heartbeats a few times per deadline (and we hear our own publications):
            # a silence of every node at once is our own link (cut without our socket noticing
            # yet: TCP learns of it at the keepalive), or a broker we never reached, not every
            # node failing together.  (One node alone: its silence is all we can go by.)
            self.deaf = True
            log.warning("nothing from the broker %s: our own link, presumably; no node is blamed while we "
                        "hear nothing", "yet" if self.heard is None else "for %.0f ms" % ((now - self.heard) * 1000))
        watching = not (self.blind or self.deaf) and now >= self.grace_until  # (see broker_lost, broker_back)
        for node, seen in list(self.last_seen.items()):
            if seen is None:
                self.last_seen[node] = now
            elif watching and now - seen > self.deadline:
                n = self.store.node(node)
                if n is not None and n.status == NODE_ONLINE:
                    self.store.upsert_node(node, NODE_SUSPECT)
                    log.warning("node suspect node=%s silent_for=%.0fms", node, (now - seen) * 1000)
                    self.standby.on_node_down(acts, node, "silent for %.0f ms" % ((now - seen) * 1000))
        self._retry_deploys(acts, now)
        self.acks.tick(acts)
        self.migrations.tick(acts)
        self.standby.tick(acts)
        self.forks.tick(acts)
        for origin in sorted(self.dirty):
            acts.publish.append(self._daemon_status(origin))
        self.dirty.clear()
        return acts

    # -- daemons: inputs and chain events ------------------------------------------------

    def _on_daemon(self, acts, origin_hex, leaf, payload, now):
        if leaf not in ("in", "chain"):
            return  # e.g. the retained status we publish ourselves
        origin = T.parse_origin(origin_hex)
        if "%08x" % origin != origin_hex:
            # int(x, 16) also takes "0x12345", " 1234567", "1_234567", upper case: a node never
            # subscribes to those spellings, so an input logged from one would be replayed later
            # without ever having reached the daemon.
            raise FR.MalformedFrame("origin %r is not 8 lowercase hex digits" % origin_hex)
        if leaf == "in":
            f, body = self._decode(payload, FR.INPUT)
            if not isinstance(body.get("p"), bytes):
                raise FR.MalformedFrame("INPUT body needs 'p': bytes")
            if self.store.daemon(origin) is None:
                self.counters["unknown_daemon"] += 1
                return
            try:
                iid = self.store.log_input(origin, f.sender, f.counter, body["p"])
                if iid is not None:
                    self.counters["inputs"] += 1
                    if iid % 64 == 0:  # (amortised: the cap is a bound, not an exact size)
                        n = self.store.trim_inputs(origin, self.input_log_max)
                        if n:
                            self.counters["inputs_pruned"] += n
                            log.warning("input log of %08x is at its cap of %d: the %d oldest inputs were dropped "
                                        "(a promotion that needs them records a NodeCrash)", origin,
                                        self.input_log_max, n)
            except ConflictingInput:
                self.counters["conflicts"] += 1
                log.warning("conflicting input origin=%08x sender=%s counter=%d", origin, f.sender, f.counter)
        elif leaf == "chain":
            self._on_chain(acts, origin, payload)

    def _on_chain(self, acts, origin, payload):
        f, body = self._decode(payload, FR.CHAIN_EVENT)
        link = CausalLink.from_bytes(body["l"])
        epoch, data = body["e"], body["p"]
        _check_body(_is_int(body["o"]) and body["o"] == origin and link.origin_hash == origin,
                    "CHAIN_EVENT origin differs between topic, body and link")
        _check_body(_is_int(epoch) and 0 <= epoch <= I64_MAX, "CHAIN_EVENT 'e' must be an epoch (int >= 0)")
        _check_body(isinstance(data, bytes), "CHAIN_EVENT 'p' must be bytes")
        inp = body.get("i")
        _check_body(inp is None or isinstance(inp, bytes), "CHAIN_EVENT 'i' must be bytes")
        d = self.store.daemon(origin)
        if d is None:
            self.counters["unknown_daemon"] += 1
            return
        if f.sender != d.host_node or epoch != d.epoch:
            # fencing (invariant 3): only the current host at the current epoch is merged.  The
            # gateway records every activation's epoch and host before it sends the activation,
            # so an older epoch is a deposed host and a newer one was never issued.
            self.counters["stale_epoch"] += 1
            log.warning("stale frame rejected origin=%08x from=%s epoch=%d current=%d host=%s",
                        origin, f.sender, epoch, d.epoch, d.host_node)
            return
        ev = ChainEvent(link, data)
        tail = self.tails.get(origin)
        if tail is None:
            tail = self.tails[origin] = self.store.tail_log(origin)
        try:
            tail.append(ev)
        except Duplicate:
            stored = self.store.event(origin, link.sequence)
            if stored is not None and stored == ev:
                self.counters["duplicates"] += 1
                return
            self.counters["conflicts"] += 1
            log.error("conflicting event origin=%08x seq=%d from=%s", origin, link.sequence, f.sender)
            self._publish_record(acts, origin, self.records.conflict(origin, stored, ev))
            return
        except ChainError as e:
            if d.status != "discontinued" and self.acks.gap(acts, origin, ev, e, tail.head_seq()):
                return  # the host resends what the bus lost; recorded only if it cannot (gap_lost)
            self.counters["chain_errors"] += 1
            log.error("chain break origin=%08x seq=%d from=%s: %s", origin, link.sequence, f.sender, e)
            self._publish_record(acts, origin, self.records.chain_break(origin, ev, e))
            return
        try:
            self.store.append_event(ev, epoch)
        except (ConflictingEvent, StoreError) as e:
            self.tails.pop(origin, None)  # resync from the store next time
            self.counters["conflicts"] += 1
            log.error("event not stored origin=%08x seq=%d: %s", origin, link.sequence, e)
            if isinstance(e, ConflictingEvent):
                self._publish_record(acts, origin, self.records.conflict(origin, self.store.event(origin, link.sequence), ev))
            return
        except BaseException:
            self.tails.pop(origin, None)  # never keep an unstored event as the head the next must follow
            raise
        tail.prune_through(link.sequence - 1)  # keep O(1): only the head anchors the next event
        if inp is not None:
            self._log_consumed_input(origin, data, inp)
        self.counters["events"] += 1
        self.acks.stored(acts, origin, link.sequence)
        self.migrations.stored(acts, origin, link.sequence)
        self.dirty.add(origin)
        self.standby.on_event(acts, origin, link.sequence)

    def _log_consumed_input(self, origin, payload, inp):
        """The input an event consumed rides in its CHAIN_EVENT (`i`): logged here when the bus
        lost it on its way from the inbox (a full session queue), so the input log has every
        input of every stored event (a promotion replays them).  Only the input the event
        hashed; a conflicting or undecodable one is counted and left out."""
        try:
            sender, counter, digest = event_decode(payload)[:3]
        except DecodeError:
            return  # (an error event of another shape: the link verified, the input is not ours to log)
        if h8(inp) != digest:
            self.counters["malformed"] += 1
            log.warning("CHAIN_EVENT of %08x carries an input that is not the one it hashed", origin)
            return
        if self.store.input_of(origin, sender, counter) is not None:
            return
        try:
            if self.store.log_input(origin, sender, counter, inp) is not None:
                self.counters["inputs_from_events"] += 1
        except ConflictingInput:
            self.counters["conflicts"] += 1

    def _on_gap_lost(self, acts, node, at):
        """The host of `d<origin>` no longer has the events after the stored head (a reboot): the
        gap it was asked to fill is for good, a ChainBreak record."""
        if not (isinstance(at, str) and len(at) == 9 and at[0] == "d"):
            return
        try:
            origin = T.parse_origin(at[1:])
        except ValueError:
            return
        lost = self.acks.lost(acts, node, origin)
        if lost is None:
            return  # no gap of ours open, or not the host: nothing to record
        ev, err = lost
        self.counters["chain_errors"] += 1
        log.error("gap in the chain of %08x cannot be repaired (its host %s no longer has it): %s", origin, node, err)
        self._publish_record(acts, origin, self.records.chain_break(origin, ev, err))

    # -- honest discontinuity: signed records ----------------------------------------

    def _on_corruption(self, acts, node, at):
        """A node's ERROR `corruption` naming a daemon record `d<origin>`: a Corruption record,
        when that node is the daemon's host (a former host's leftover file breaks nothing)."""
        if not (isinstance(at, str) and len(at) == 9 and at[0] == "d"):
            return  # e.g. the node's own record: no daemon chain involved
        try:
            origin = T.parse_origin(at[1:])
        except ValueError:
            return
        if "%08x" % origin != at[1:]:
            return
        d = self.store.daemon(origin)
        if d is None:
            self.counters["unknown_daemon"] += 1
            return
        if d.host_node != node:
            log.warning("corruption of %s reported by %s, which does not host it (host %s): no record",
                        at, node, d.host_node)
            return
        self._publish_record(acts, origin, self.records.corruption(origin))

    def _publish_record(self, acts, origin, issued):
        """Broadcast a record just issued: retained on the daemon's continuity topic, and the
        daemon's status (now `discontinued`) republished at the next tick."""
        if issued is None:
            return  # already recorded: a redelivery, a repeat, or the rest of a recorded branch
        self.counters["records"] += 1
        log.error("discontinuity record %d issued: %r", issued.id, issued.record)
        acts.publish.append((T.daemon(origin, "continuity"),
                             self._frame(FR.DISCONTINUITY, {"r": issued.envelope}), 1, True))
        self.dirty.add(origin)

    def _daemon_status(self, origin):
        """The retained status of a daemon (the read model: control/status.py); the assessed
        ContinuityStatus is kept on the daemon's row too."""
        cont = continuity_of(self.store, origin)
        self.store.update_daemon(origin, continuity=cont.to_obj())
        body = daemon_status_body(self.store, origin, cont, self.standby.groups.get(origin))
        return T.daemon(origin, "status"), self._frame(FR.STATUS, body), 1, True

    # -- operator requests (netedge CLI over MQTT) ----------------------------------------

    def _count(self, name):
        self.counters[name] += 1

    def _record_loss(self, acts, origin, last_snapshot_seq):
        """A standby group's events after its last snapshot are lost: a signed NodeCrash, published."""
        self._publish_record(acts, origin, self.records.node_crash(origin, last_snapshot_seq))

    def _reply(self, acts, client, rid, ok, result=None, error=None):
        if error is not None and len(error) > 300:
            error = error[:300] + "..."  # it may quote the request: the reply must still fit a frame
        body = {"id": rid, "ok": ok, "result": result, "error": error}
        acts.publish.append((T.gateway(self.id, "rep", client), self._frame(FR.STATUS, body), 1, False))

    def _on_request(self, acts, client, payload, now):
        """An operator request: its kinds and their validation are control/requests.py's table."""
        if not client:
            raise FR.MalformedFrame("request topic without a client id to reply to")
        f, body = self._decode(payload, FR.CONTROL)
        self.requests.handle(acts, client, body, now)

    def _slots(self, node):
        return key_slots(self.store, node, self.standby.slots_for(node) + self.migrations.slots_for(node))

    def keys_pushed(self, key, error, now):
        """The driver finished a push_keys action: its owner (by tag) carries on."""
        self.clock.advance(now)
        acts = Actions()
        owner = self.routes.take_push(key)
        if owner is None:  # a push an earlier core asked for (the driver rebuilt it): its tag says whose
            owner = {"migrate": self.migrations, "group": self.standby, "fork": self.forks,
                     "deploy": self.deployer}.get(key.partition(":")[0])
            if owner is None:
                return acts
        owner.keys_pushed(acts, key, error)
        return acts

    def _retry_deploys(self, acts, now):
        self.deployer.tick(acts, now)

    def _check_deploys(self, acts, node, hb, now):
        self.deployer.on_heartbeat(acts, node, hb)
