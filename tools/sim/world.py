"""One simulated installation and one seed's run: a plan of steps (workload and faults), the
fault-free settle phase, the checks.

The plan is drawn from its own random stream (`plan_for(seed, steps)`), before the run, and each
step carries the raw numbers it resolves at run time (which daemon, which node): a shorter plan
or a plan with a fault masked out is still a valid plan, which is what shrinking needs.  The
system's own randomness (latencies, backoffs, keys, boot ids) is another stream of the seed.
"""
import hashlib
import json
import os
import random
import shutil
import sqlite3
import tempfile
from collections import Counter

from ...shared import topics as T
from .broker import Broker
from .gateway import SimGateway
from .invariants import Checker
from .node import KEEPALIVE_S, SimNode
from .sched import Scheduler
from .workload import KINDS, Operator, Publisher

WORK = {"inputs": 40, "deploy": 5, "migrate": 8, "group": 4, "fork": 3, "stop": 1}
FAULTS = {"kill_node": 6, "freeze_node": 4, "kill_gateway": 4, "broker_restart": 3, "cut": 5,
          "slow_link": 3, "store_busy": 3}
# Kinds added later take the place of a drawn kind with this chance, from a stream of their own:
# the main draws stay as they were, so a seed recorded earlier (findings.py) keeps its plan
# except where a variant replaced a step.
VARIANTS = {"store_busy": ("disk_full", 0.3), "group": ("group_sync", 0.3)}
ALL_FAULTS = set(FAULTS) | {"disk_full"}
FAULT_RATE = 0.35           # share of steps that are faults
MAX_DAEMONS = 5
SETTLE_MAX_S = 150.0        # the longest a settle phase may take (migration retries: 6 x 10 s)
QUIET_CHECKS = 3            # quiescent at this many 1 s checks in a row
TRANSIENT = ("migrate:", "deploy:", "fork:", "recover:")
STEP_S = (0.02, 0.8)


class Step:
    __slots__ = ("kind", "r", "dt")

    def __init__(self, kind, r, dt):
        self.kind, self.r, self.dt = kind, r, dt

    def is_fault(self):
        return self.kind in ALL_FAULTS


def plan_for(seed, steps):
    """The seed's plan: (settings, [Step])."""
    rng = random.Random("plan:%d" % seed)
    alt = random.Random("variants:%d" % seed)
    settings = {"nodes": rng.choice((3, 3, 4)), "max_queued": rng.choice((40, 200, 1000)),
                "publishers": rng.choice((1, 2, 3))}
    plan = []
    work, faults = list(WORK), list(FAULTS)
    for _ in range(steps):
        if rng.random() < FAULT_RATE:
            kind = rng.choices(faults, [FAULTS[k] for k in faults])[0]
        else:
            kind = rng.choices(work, [WORK[k] for k in work])[0]
        if kind in VARIANTS and alt.random() < VARIANTS[kind][1]:
            kind = VARIANTS[kind][0]
        plan.append(Step(kind, tuple(rng.random() for _ in range(4)), rng.uniform(*STEP_S)))
    return settings, plan


def _pick(seq, r):
    return seq[min(int(r * len(seq)), len(seq) - 1)] if seq else None


class World:
    def __init__(self, seed, settings, trace=False):
        self.seed = seed
        self.settings = settings
        self.verbose = trace
        self.sched = Scheduler("system:%d" % seed)
        random.seed(self.sched.rng.getrandbits(64))  # NodeCore draws its boot ids from `random`
        self.broker = Broker(self.sched, max_queued=settings["max_queued"])
        self.dir = tempfile.mkdtemp(prefix="netedge-sim-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self.node_ids = ["n%d" % (i + 1) for i in range(settings["nodes"])]
        self.nodes = {n: SimNode(self.broker, n) for n in self.node_ids}
        self.gateway = SimGateway(self.broker, self.dir, self.nodes, random.Random(self.sched.rng.getrandbits(64)))
        self.operator = Operator(self.broker, self.gateway.cid, self._reply)
        self.publishers = [Publisher(self.broker, "sensor%d" % (i + 1)) for i in range(settings["publishers"])]
        self.checker = Checker(self.gateway.path, self.node_ids, [p.cid for p in self.publishers])
        self.broker.on_accept = self._accepted
        self.digest = hashlib.sha256()
        self.trace = []
        self.faults = Counter()
        self.daemons = {}      # origin -> {"kind", "group", "stopped"}: what the operator was told
        self.requests = Counter()
        self.replies = Counter()
        self.broker_down = False

    # -- plumbing -----------------------------------------------------------------------------

    def say(self, text):
        self.trace.append("t=%8.3f  %s" % (self.sched.now, text))

    def _accepted(self, cid, msg):
        self.digest.update(b"%s|%s|" % (cid.encode(), msg.topic.encode()) + msg.payload)
        if self.verbose:
            self.trace.append("t=%8.3f    %s -> %s (%d B%s)" % (self.sched.now, cid, msg.topic, len(msg.payload),
                                                               ", retained" if msg.retain else ""))
        self.checker.observe(cid, msg, self.sched.now)

    def _reply(self, cmd, args, body):
        self.replies["%s %s" % (cmd, "ok" if body.get("ok") else "refused")] += 1
        res = body.get("result")
        self.say("reply %s %s: %s" % (cmd, "ok" if body.get("ok") else "refused",
                                        _short(res if body.get("ok") else body.get("error"))))
        if not body.get("ok") or not isinstance(res, dict):
            return
        if cmd in ("deploy", "group_create", "fork") and isinstance(res.get("origin"), int):
            kind = res.get("kind") or args.get("kind") or self.daemons.get(res.get("parent"), {}).get("kind", "counter")
            self.daemons[res["origin"]] = {"kind": kind, "group": cmd == "group_create", "stopped": False}
        elif cmd == "stop" and res.get("origin") in self.daemons:
            self.daemons[res["origin"]]["stopped"] = True

    def _boot_gateway(self):
        if self.gateway.dead or self.gateway.core is None:
            self.gateway.boot()

    def run_for(self, dt):
        self.sched.run_until(self.sched.now + dt)

    def close(self):
        self.checker.close()
        if self.gateway.store is not None:
            self.gateway.crash()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- start ---------------------------------------------------------------------------------

    def start(self):
        for n in self.node_ids:
            self.nodes[n].boot()
        self.gateway.boot()
        self.operator.dial()
        for p in self.publishers:
            p.dial()
        self.run_for(1.5)
        self.operator.request("deploy", kind="counter", node=self.node_ids[0])
        self.requests["deploy"] += 1
        for _ in range(50):
            if self.daemons:
                break
            self.run_for(0.1)
        self.say("started: %d nodes, broker queue cap %d, %d publishers" % (
            len(self.node_ids), self.settings["max_queued"], len(self.publishers)))

    # -- steps -----------------------------------------------------------------------------------

    def live_daemons(self, grouped=None):
        return sorted(o for o, d in self.daemons.items() if not d["stopped"] and (grouped is None or d["group"] == grouped))

    def apply(self, step):
        getattr(self, "_" + step.kind)(*step.r)

    def _inputs(self, r0, r1, r2, r3):
        origin = _pick(self.live_daemons(), r0)
        if origin is None:
            return
        pub = _pick(self.publishers, r1)
        n = 1 + int(r2 * 8)
        kind = self.daemons[origin]["kind"]
        for i in range(n):
            v = int(r3 * 1000) + i
            if kind == "blob" and r3 > 0.9 and i == 0:
                payload = b"=%d" % int((r3 - 0.9) * 30000)  # a state up to 3 KB: chunked when it moves
            elif kind == "echo":
                payload = b"e%d" % v
            else:
                payload = b"%d" % v
            self.sched.after(i * 0.002, pub.send, origin, payload)
        self.say("%s sends %d inputs to %08x" % (pub.cid, n, origin))

    def _request(self, cmd, **args):
        self.requests[cmd] += 1
        self.say("operator: %s %s" % (cmd, _short(args)))
        self.operator.request(cmd, **args)

    def _deploy(self, r0, r1, r2, r3):
        if len(self.daemons) + self.requests["deploy"] - self.replies["deploy ok"] >= MAX_DAEMONS:
            return
        self._request("deploy", kind=_pick(KINDS, r0), node=_pick(self.node_ids, r1))

    def _migrate(self, r0, r1, r2, r3):
        origin = _pick(self.live_daemons(grouped=False), r0)
        if origin is not None:
            if r2 < 0.2:
                self._request("migrate", origin=origin, auto=True)
            else:
                self._request("migrate", origin=origin, to=_pick(self.node_ids, r1))

    def _group(self, r0, r1, r2, r3):
        if len(self.live_daemons(grouped=True)) >= 2 or len(self.daemons) >= MAX_DAEMONS:
            return
        members = 2 if len(self.node_ids) < 4 or r0 < 0.5 else 3
        self._request("group_create", kind="counter", members=members, sync_every=int(5 + r1 * 40))

    def _group_sync(self, r0, r1, r2, r3):
        origin = _pick(self.live_daemons(grouped=True), r0)
        if origin is not None:
            self._request("group_sync", origin=origin)

    def _fork(self, r0, r1, r2, r3):
        origin = _pick(self.live_daemons(grouped=False), r0)
        if origin is not None and len(self.daemons) < MAX_DAEMONS:
            self._request("fork", origin=origin, to=_pick(self.node_ids, r1))

    def _stop(self, r0, r1, r2, r3):
        origin = _pick(self.live_daemons(grouped=False), r0)
        if origin is not None and len(self.live_daemons()) > 1:
            self._request("stop", origin=origin)

    # -- faults --------------------------------------------------------------------------------

    def _fault(self, kind, text, node=None):
        self.faults[kind] += 1
        if node is not None:
            self.checker.fault(node, self.sched.now)
        self.say("FAULT %s" % text)

    def _kill_node(self, r0, r1, r2, r3):
        node = self.nodes[_pick(self.node_ids, r0)]
        if node.dead:
            return
        down = 0.1 + r1 * 4
        self._fault("kill_node", "kill -9 %s (back in %.2f s)" % (node.node_id, down), node.node_id)
        node.crash()
        self.sched.after(down, self._revive_node, node)

    def _revive_node(self, node):
        if node.dead:
            node.boot()

    def _freeze_node(self, r0, r1, r2, r3):
        node = self.nodes[_pick(self.node_ids, r0)]
        if node.dead or node.frozen:
            return
        dur = 0.2 + r1 * 6
        self._fault("freeze_node", "freeze %s for %.2f s" % (node.node_id, dur), node.node_id)
        node.freeze()
        self.sched.after(dur, self._thaw, node)
        # the broker notices a silent client after 1.5 x keepalive, checking every few seconds
        self.sched.after(1.5 * KEEPALIVE_S + r2 * 2, self._keepalive_check, node, node.conn)

    def _thaw(self, node):
        if node.frozen:
            node.thaw()

    def _keepalive_check(self, node, conn):
        if node.frozen and conn is not None and conn is node.conn and conn.open:
            self.say("broker drops frozen %s (keepalive)" % node.node_id)
            self.broker.close(conn, will=True)

    def _kill_gateway(self, r0, r1, r2, r3):
        if self.gateway.dead:
            return
        down = 0.1 + r0 * 4
        self._fault("kill_gateway", "kill -9 the gateway (back in %.2f s)" % down)
        self.gateway.crash()
        self.sched.after(down, self._boot_gateway)

    def _broker_restart(self, r0, r1, r2, r3):
        if self.broker_down:
            return
        down = 0.1 + r0 * 3
        self._fault("broker_restart", "broker restart (down %.2f s)" % down)
        self.broker_down = True
        self.broker.go_down()
        self.sched.after(down, self._broker_up)

    def _broker_up(self):
        self.broker_down = False
        self.broker.come_up()

    def _endpoints(self):
        return [self.nodes[n] for n in self.node_ids] + [self.gateway] + self.publishers

    def _cut(self, r0, r1, r2, r3):
        ep = _pick(self._endpoints(), r0)
        if ep.conn is None or not ep.conn.open or ep.conn.cut:
            return
        detect = 0.02 + r1 * 3
        self._fault("cut", "network drops %s's connection (noticed within %.2f s)" % (ep.cid, detect),
                    ep.cid if ep.cid in self.nodes else None)
        self.broker.cut(ep.conn, detect)

    def _slow_link(self, r0, r1, r2, r3):
        ep = _pick(self._endpoints(), r0)
        if ep.slow:
            return
        extra, dur = 0.005 + r1 * 0.2, 0.5 + r2 * 4
        self._fault("slow_link", "%s's link slows by %.0f ms for %.1f s" % (ep.cid, extra * 1000, dur))
        ep.slow = extra
        self.sched.after(dur, setattr, ep, "slow", 0.0)

    def _store_busy(self, r0, r1, r2, r3):
        if self.gateway.dead or self.gateway.fault is None:
            return
        n = 1 + int(r0 * 3)
        self._fault("store_busy", "the gateway's next %d store writes fail (busy / disk full)" % n)
        self.gateway.fault.failing += n

    def _disk_full(self, r0, r1, r2, r3):
        disk = self.gateway.disk
        if disk["full"]:
            return
        dur = 0.2 + r0 * 4
        self._fault("disk_full", "the gateway's disk is full for %.2f s (every store write fails)" % dur)
        disk["full"] = True
        self.sched.after(dur, disk.__setitem__, "full", False)

    # -- settle and quiescence -------------------------------------------------------------------

    def heal(self):
        """The end of the faults: everything back up, no more injected trouble."""
        if self.broker_down:
            self._broker_up()
        for n in self.node_ids:
            node = self.nodes[n]
            node.slow = 0.0
            if node.frozen:
                node.thaw()
            if node.dead:
                node.boot()
        self.gateway.slow = 0.0
        if self.gateway.fault is not None:
            self.gateway.fault.failing = 0
        self.gateway.disk["full"] = False
        if self.gateway.dead:
            self.gateway.boot()
        for p in self.publishers:
            p.slow = 0.0

    def busy(self):
        """What keeps the installation from being quiescent (None: nothing)."""
        for ep in self._endpoints() + [self.operator]:
            if ep.dead or not ep.connected or not ep.idle():
                return "%s is %s" % (ep.cid, "down" if ep.dead else "disconnected" if not ep.connected else "busy")
        for s in self.broker.sessions.values():
            if s.queue or s.inflight:
                return "the broker holds messages for %s" % s.cid
        db = sqlite3.connect("file:%s?mode=ro" % self.gateway.path, uri=True)
        try:
            for key, state in db.execute("SELECT kind || ':' || key, state FROM control_state ORDER BY kind, key"):
                if key.startswith(TRANSIENT):
                    return "%s is in step %s" % (key, json.loads(state).get("step"))
                if key.startswith("group:") and json.loads(state).get("promo") is not None:
                    return "%s is promoting" % key
        finally:
            db.close()
        return None

    def settle(self):
        self.say("settle: faults end")
        self.heal()
        quiet, waited, why = 0, 0.0, None
        while waited < SETTLE_MAX_S:
            self.run_for(1.0)
            waited += 1.0
            why = self.busy()
            quiet = quiet + 1 if why is None else 0
            if quiet >= QUIET_CHECKS:
                self.say("quiescent after %.0f s" % waited)
                return True
        self.checker.now = self.sched.now
        self.checker.violation("stuck", "not quiescent %.0f s after the faults ended: %s" % (SETTLE_MAX_S, why))
        return False

    def final_check(self):
        self.checker.check_final(self.sched.now, {n: self.nodes[n].hosts() for n in self.node_ids})
        for t, where, e in self.gateway.errors:
            if not _is_store_fault(e):
                self.checker.now = t
                self.checker.violation("internal_error", "gateway raised on %s: %s: %s" % (where, type(e).__name__, e))


def _is_store_fault(e):
    return isinstance(e, sqlite3.OperationalError)


def _short(obj, n=120):
    text = repr(obj)
    return text if len(text) <= n else text[:n] + "..."


def topic_origin(topic):
    parts = T.split(topic)
    return None if parts is None or parts[0] != "d" else parts[1]
