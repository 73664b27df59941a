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
from .routes import Routes
from .status import continuity_of, daemon_status_body
from .migration import MigrationOrchestrator
from .fork import ForkOrchestrator
from .standby import GroupError, StandbyOrchestrator, SYNC_EVERY_N, SYNC_EVERY_S

log = logging.getLogger("netedge.gateway")

NODE_ONLINE, NODE_OFFLINE, NODE_SUSPECT = "online", "offline", "suspect"
I64_MAX = (1 << 63) - 1   # epochs are stored as SQLite INTEGER
MAX_NAME = 64             # daemon kinds and request ids: short names, so every reply fits a frame
DEPLOY_RETRY_S = 1.0
DEPLOY_TIMEOUT_S = 30.0
# A last will is acted on this much later: a broker shutting down publishes every client's will
# just before it drops our connection too, and those wills must not fail over the whole fleet
# (broker_lost drops them).  It adds this to a crashed node's failover.
WILL_HOLD_S = 0.1
# After our own reconnection the wills the broker queued for our session are as stale, and the
# nodes come back at their own pace (their MQTT backoff reaches 5 s: firmware/main.py): for the
# heartbeat deadline plus this, the deadline alone decides who is gone.
NODE_REDIAL_MAX_S = 5.0


class BadRequest(ValueError):
    """An operator request of the wrong shape: refused with an error reply and counted as malformed
    (a well-formed request the gateway cannot honour is only refused)."""


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
                         "gap_requests": 0, "inputs_from_events": 0, "store_faults": 0}  # (the driver counts the last one: see service.py)
        self.records = RecordIssuer(store, keystore, clock=wall)  # signed discontinuity records (gateway/records.py)
        self.acks = Acknowledger(self)  # stored-through marks to the hosts, gap repair (control/acks.py)
        self.recent_errors = []   # (node, body) reported by nodes, newest last, capped
        self.pending = {}         # request key -> (client, request id) awaiting completion
        self.routes = Routes()    # operation id / key push tag -> the orchestrator that answers it
        self.migrations = MigrationOrchestrator(self)  # live migration (gateway/migration.py)
        self.standby = StandbyOrchestrator(self)       # standby groups, promotion (gateway/standby.py)
        self.forks = ForkOrchestrator(self)            # forks with a signed lineage (gateway/fork.py)
        for orch in (self.migrations, self.standby, self.forks):
            for m in orch.open_op_ids():
                self.routes.op(m, orch)
        self.provisionable = None  # node -> bool: the driver can push key slots to it (None: unknown)
        self.held_wills = {}       # node -> when its last will came (see WILL_HOLD_S)
        self.blind = False         # our own broker connection is down (broker_lost)
        self.grace_until = 0.0     # until then after a reconnection, wills are stale (broker_back)
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
                    log.info("last will of %s ignored: it came with the broker's restart (the heartbeat "
                             "deadline decides)", node)
                else:
                    self.held_wills.setdefault(node, now)  # acted on in tick(), WILL_HOLD_S later
            else:
                if node in self.held_wills:  # (a will, then the node back at once: in that order)
                    self._will(acts, node)
                self.store.upsert_node(node, NODE_ONLINE, last_seen=self.clock.wall())
                boot, key = body.get("boot"), "boot:" + node
                prev = self.store.get_state(key)
                rebooted = None if prev is None or not _is_int(boot) else prev.get("id") != boot
                if _is_int(boot) and rebooted is not False:
                    self.store.put_state(key, {"id": boot})
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

    def broker_back(self, now):
        """Connected again after broker_lost(): every node's heartbeat deadline starts now (a
        dead one misses it), enforced once the nodes had time to come back (grace)."""
        self.clock.advance(now)
        if not self.blind:
            return  # the first connection: the wills queued for us are news (the deadline runs)
        self.blind = False
        self.grace_until = now + self.deadline + NODE_REDIAL_MAX_S
        for node in self.last_seen:
            self.last_seen[node] = None

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
        watching = not self.blind and now >= self.grace_until  # (see broker_lost, broker_back)
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

    def _reply(self, acts, client, rid, ok, result=None, error=None):
        if error is not None and len(error) > 300:
            error = error[:300] + "..."  # it may quote the request: the reply must still fit a frame
        body = {"id": rid, "ok": ok, "result": result, "error": error}
        acts.publish.append((T.gateway(self.id, "rep", client), self._frame(FR.STATUS, body), 1, False))

    def _on_request(self, acts, client, payload, now):
        if not client:
            raise FR.MalformedFrame("request topic without a client id to reply to")
        f, body = self._decode(payload, FR.CONTROL)
        op, rid = body.get("cmd"), body.get("id")
        try:
            if not (rid is None or _is_int(rid) or (isinstance(rid, str) and len(rid) <= MAX_NAME)):
                rid = None
                raise BadRequest("request 'id' must be an int or a name of at most %d characters" % MAX_NAME)
            if op == "deploy":
                self._deploy(acts, client, rid, body.get("kind"), body.get("node"), now)
            elif op == "stop":
                self._stop(acts, client, rid, body.get("origin"))
            elif op == "migrate":
                origin, to = body.get("origin"), body.get("to")
                if body.get("auto") is True and to is None:
                    pass  # start_migration_auto: the gateway picks the target
                elif not (_is_int(origin) and isinstance(to, str) and 0 < len(to) <= MAX_NAME):
                    raise BadRequest("migrate needs 'origin' (u32) and 'to': a node name of at most %d characters"
                                     " (or 'auto': true)" % MAX_NAME)
                if not (_is_int(origin) and 0 <= origin <= 0xFFFFFFFF):
                    raise BadRequest("migrate needs 'origin' (u32)")
                if self.standby.is_grouped(origin):
                    raise ValueError("%08x is a standby group's daemon: its group moves it (promotion), not "
                                     "`netedge migrate`" % origin)
                self.migrations.start(acts, client, rid, origin, to, now)
            elif op == "fork":
                origin, to = body.get("origin"), body.get("to")
                if not (_is_int(origin) and 0 <= origin <= 0xFFFFFFFF and isinstance(to, str) and 0 < len(to) <= MAX_NAME):
                    raise BadRequest("fork needs 'origin' (u32) and 'to': a node name of at most %d characters"
                                     % MAX_NAME)
                self.forks.start(acts, client, rid, origin, to)
            elif op == "group_create":
                self._group_create(acts, client, rid, body)
            elif op == "group_sync":
                origin = body.get("origin")
                st = self.standby.groups.get(origin) if _is_int(origin) else None
                if st is None:
                    raise ValueError("%r is not the origin of a standby group (see `netedge status`)" % (origin,))
                if not self.standby.sync(acts, st):
                    raise ValueError("group %08x cannot sync now: it is %s%s" % (
                        origin, st["step"], " (a sync is in flight)" if st["sync"] else ""))
                self._reply(acts, client, rid, True, result={"origin": origin, "active": st["active"]})
            else:
                raise BadRequest("unknown request %r: expected 'deploy', 'stop', 'migrate', 'group_create' or "
                                 "'group_sync'" % (op,))
        except BadRequest as e:
            self.counters["malformed"] += 1
            log.warning("bad frame topic=%s error=BadRequest: %s", T.gateway(self.id, "req", client), e)
            self._reply(acts, client, rid, False, error=str(e))
        except (NetedgeError, ValueError) as e:
            self._reply(acts, client, rid, False, error=str(e))

    def _group_create(self, acts, client, rid, body):
        kind, members, nodes = body.get("kind"), body.get("members"), body.get("nodes")
        sync_n, sync_s = body.get("sync_every", SYNC_EVERY_N), body.get("sync_seconds", SYNC_EVERY_S)
        if not (isinstance(kind, str) and 0 < len(kind) <= MAX_NAME and _is_int(members) and 2 <= members <= 16):
            raise BadRequest("group_create needs 'kind' (a name) and 'members' (2..16)")
        if nodes is not None and not (isinstance(nodes, list) and len(nodes) == members and all(
                isinstance(n, str) and 0 < len(n) <= MAX_NAME for n in nodes)):
            raise BadRequest("group_create 'nodes' must list exactly 'members' node names")
        if not (_is_int(sync_n) and sync_n >= 1 and isinstance(sync_s, (int, float)) and not isinstance(sync_s, bool)
                and sync_s > 0):
            raise BadRequest("group_create 'sync_every' must be an int >= 1 and 'sync_seconds' a number > 0")
        try:
            self.standby.create(acts, client, rid, kind, members, nodes, sync_n, float(sync_s))
        except GroupError as e:
            raise ValueError(str(e))

    def _deploy(self, acts, client, rid, kind, node, now):
        if not (isinstance(kind, str) and 0 < len(kind) <= MAX_NAME and isinstance(node, str) and 0 < len(node) <= MAX_NAME):
            raise BadRequest("deploy needs 'kind' and 'node': names of at most %d characters" % MAX_NAME)
        n = self.store.node(node)
        if n is None:
            raise ValueError("unknown node %r: it has never sent a heartbeat" % node)
        if n.status != NODE_ONLINE:
            raise ValueError("node %r is %s" % (node, n.status))
        if "kinds" not in n.info:
            raise ValueError("node %r has not sent a heartbeat yet: retry in a moment" % node)
        if kind not in (n.info.get("kinds") or []):
            raise ValueError("node %r cannot host kind %r (it has %s)" % (node, kind, n.info.get("kinds")))
        info = self.keystore.generate(kind)
        self.store.add_daemon(info.origin, kind, info.public_key, host_node=node, epoch=1, status="provisioning")
        key = "deploy:%08x" % info.origin
        self.store.put_state(key, {"origin": info.origin, "kind": kind, "node": node, "epoch": 1,
                                   "step": "push_keys", "client": client, "rid": rid,
                                   "started": self.clock.stamp(key + ":started")})
        self.pending[key] = now
        log.info("deploy origin=%08x kind=%s node=%s", info.origin, kind, node)
        acts.push_keys.append((node, self._slots(node), self.routes.push(key, self)))

    def _slots(self, node):
        """Every key slot the node should hold: its daemons' public keys (never the secrets:
        nodes verify nothing with them and a stolen board then leaks no signing key)."""
        slots = [{"kind": d.kind, "public": d.public_key.hex()}
                 for d in self.store.daemons(host_node=node) if d.status != "stopped"] + self.standby.slots_for(node)
        return [s for i, s in enumerate(slots) if s not in slots[:i]]

    def keys_pushed(self, key, error, now):
        """The driver finished a push_keys action."""
        self.clock.advance(now)
        acts = Actions()
        owner = self.routes.take_push(key)
        if owner is None:  # a push an earlier core asked for (the driver rebuilt it): its tag says whose
            owner = {"migrate": self.migrations, "group": self.standby, "fork": self.forks,
                     "deploy": self}.get(key.partition(":")[0])
            if owner is None:
                return acts
        if owner is not self:
            owner.keys_pushed(acts, key, error)
            return acts
        st = self.store.get_state(key)
        if st is None:
            return acts
        if error:
            self.store.delete_state(key)
            self.store.update_daemon(st["origin"], status="failed")
            self._reply(acts, st["client"], st["rid"], False, error="provisioning failed: %s" % error)
            return acts
        st["step"] = "activate"
        self.store.put_state(key, st)
        self.pending[key] = None  # send the activation at the next tick
        return acts

    def _retry_deploys(self, acts, now):
        for key, st in self.store.list_states("deploy:"):
            if st["step"] != "activate":
                continue
            last = self.pending.get(key)
            if self.clock.age(key + ":started", st["started"]) > DEPLOY_TIMEOUT_S:
                self.clock.forget(key + ":started")
                self.store.delete_state(key)
                self.store.update_daemon(st["origin"], status="failed")
                self.pending.pop(key, None)
                self._reply(acts, st["client"], st["rid"], False,
                            error="node %s did not activate %08x in %ds" % (st["node"], st["origin"], DEPLOY_TIMEOUT_S))
                continue
            if last is None or now - last >= DEPLOY_RETRY_S:
                self.pending[key] = now
                body = {"cmd": "activate", "origin": st["origin"], "kind": st["kind"], "epoch": st["epoch"]}
                acts.publish.append((T.node(st["node"], "ctl"), self._frame(FR.CONTROL, body), 1, False))

    def _check_deploys(self, acts, node, hb, now):
        hosted = {d.get("origin"): d.get("epoch") for d in hb.get("daemons") or [] if isinstance(d, dict)}
        for key, st in self.store.list_states("deploy:"):
            if st["node"] == node and hosted.get(st["origin"]) == st["epoch"]:
                self.store.delete_state(key)
                self.pending.pop(key, None)
                self.clock.forget(key + ":started")
                self.store.update_daemon(st["origin"], status="active")
                self.dirty.add(st["origin"])
                log.info("deployed origin=%08x node=%s epoch=%d", st["origin"], node, st["epoch"])
                self._reply(acts, st["client"], st["rid"], True,
                            result={"origin": st["origin"], "node": node, "epoch": st["epoch"], "kind": st["kind"]})

    def _stop(self, acts, client, rid, origin):
        if not (_is_int(origin) and 0 <= origin <= 0xFFFFFFFF):
            raise BadRequest("stop needs 'origin': the daemon's origin hash as an integer (u32)")
        d = self.store.daemon(origin)
        if d is None:
            raise ValueError("unknown daemon %08x" % origin)
        body = {"cmd": "stop", "origin": origin}
        acts.publish.append((T.node(d.host_node, "ctl"), self._frame(FR.CONTROL, body), 1, False))
        self.store.update_daemon(origin, status="stopped")
        self.dirty.add(origin)
        self._reply(acts, client, rid, True, result={"origin": origin, "node": d.host_node})
