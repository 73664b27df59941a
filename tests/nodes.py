"""Test harness for real nodes: unix-port `micropython` processes running the compiled firmware
(.mpy, as on a board) against a real broker, observed by a paho-mqtt client.

Expectations are checked with the shared verifier (EntityLog, ContinuityProof), not by trusting
the node.
"""
import os
import socket
import threading
import time

import nacl.signing
import paho.mqtt.client as paho

from netedge.shared import frame as FR
from netedge.shared import topics as T
from netedge.shared.identity import origin_hash
from netedge.shared.link import CausalLink
from netedge.shared.log import ChainEvent, Duplicate, EntityLog
from netedge.shared.event_decode import decode as decode_event

from netedge.tools.fleet import NODE_HEAP, VirtualBoard, node_config, publish_input


def daemon_key(name):
    """A deterministic test keypair: (public key, seed)."""
    seed = (name.encode() * 32)[:32]
    return bytes(nacl.signing.SigningKey(seed).verify_key), seed


def daemon_origin(name):
    return origin_hash(daemon_key(name)[0])


class NodeProc(VirtualBoard):
    """A virtual board (netedge.tools.fleet) configured the tests' way: deterministic test keys
    for `daemons` [(kind, name)], `hosted` daemon names activated at first boot."""

    def __init__(self, fw_dir, root, node_id, broker, daemons=(), hosted=(), heap=NODE_HEAP, heartbeat_ms=300,
                 extra=None, romfs=None):
        keys = [{"kind": kind, "public": daemon_key(name)[0].hex()} for kind, name in daemons]
        cfg = node_config(node_id, broker.host, broker.port, heartbeat_ms=heartbeat_ms, keys=keys,
                          hosted=["%08x" % daemon_origin(n) for n in hosted], extra=extra)
        super().__init__(fw_dir, root, node_id, cfg, heap=heap, romfs=romfs)

    def record_path(self, name):
        return os.path.join(self.dir, "state", "d%08x.rec" % daemon_origin(name))


MARK_EVERY = 4  # as the gateway (gateway/control/acks.py)


class Observer:
    """A paho client that publishes inputs and records every netedge frame it sees."""

    def __init__(self, broker, client_id="observer", username=None, password=None, marks=False):
        """marks: for nodes that run without a gateway, this observer plays the gateway's part of
        the end-to-end acknowledgement (PROTOCOL §11): every MARK_EVERY contiguous chain events it has
        received, the `stored` mark to their host (else a host stops taking inputs once it keeps
        16 unmarked events).  Never beside a real gateway: that mark is the gateway's promise."""
        self.lock = threading.Condition()
        self.marks = {} if marks else None  # origin -> highest contiguous seq received
        self.chain = {}          # origin -> list of (epoch, CausalLink, payload) in arrival order
        self.heads = {}          # origin -> highest sequence seen (head_seq without a scan)
        self.frames = []         # (topic, Frame or exception)
        self.status = {}         # node -> body
        self.heartbeats = {}     # node -> last body
        self.errors = []         # (node, body)
        self.counter = 0
        # a persistent session: chain events published while a broker restarts reach us later
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="%s-%d" % (client_id, os.getpid()),
                             clean_session=False)
        self.c.on_message = self._on_message
        self.c.reconnect_delay_set(0.1, 1)  # (back soon after a broker restart)
        if username is not None:
            self.c.username_pw_set(username, password)
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(T.ALL, qos=1)
        self.c.connect(broker.host, broker.port, keepalive=10)
        self.c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c.loop_start()
        self.wait(lambda: self.c.is_connected(), 5, "observer connect")
        time.sleep(0.1)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()  # (the broker is per test: its session dies with it)

    def _on_message(self, c, u, msg):
        try:
            f = FR.decode(msg.payload)
        except FR.FrameError as e:
            with self.lock:
                self.frames.append((msg.topic, e))
            return
        with self.lock:
            self.frames.append((msg.topic, f))
            parts = msg.topic.split("/")
            if f.type == FR.CHAIN_EVENT:
                b = f.body()
                link = CausalLink.from_bytes(b["l"])
                self.chain.setdefault(b["o"], []).append((b["e"], link, b["p"]))
                self.heads[b["o"]] = max(self.heads.get(b["o"], 0), link.sequence)
                if self.marks is not None:
                    self._mark(f.sender, b["o"], b["e"], link.sequence)
            elif f.type == FR.STATUS:
                self.status[parts[3]] = f.body()
            elif f.type == FR.HEARTBEAT:
                self.heartbeats[parts[3]] = hb = f.body()
                if self.marks is not None:  # a mark the node missed (QoS 0): again
                    for d in hb.get("daemons", []):
                        have = self.marks.get(d["origin"], 0)
                        if d.get("kept") and d["seq"] <= have:
                            self._send_mark(parts[3], d["origin"], d["epoch"], have)
            elif f.type == FR.ERROR:
                self.errors.append((parts[3], f.body()))
            self.lock.notify_all()

    def _mark(self, node, origin, epoch, seq):
        have = self.marks.get(origin, 0)
        if seq <= have or seq > have + 1:
            if seq > have + 1 and have == 0:  # (a chain that started before we listened)
                self.marks[origin] = seq
            return
        self.marks[origin] = seq
        if seq % MARK_EVERY == 0:
            self._send_mark(node, origin, epoch, seq)

    def _send_mark(self, node, origin, epoch, seq):
        # (its own sender and counter: inputs count on self.counter in another thread)
        self.mark_counter = getattr(self, "mark_counter", 0) + 1
        body = {"cmd": "stored", "origin": origin, "epoch": epoch, "seq": seq}
        self.c.publish(T.node(node, "mark"), FR.encode(FR.CONTROL, "observer-gw", self.mark_counter, body), qos=0)

    def wait(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        with self.lock:
            while not cond():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for " + what)
                self.lock.wait(min(left, 0.05))

    def send_input(self, origin, payload, sender="client", counter=None):
        """Publish one INPUT at QoS 1 and wait until the broker accepted it; returns its id."""
        if counter is None:
            self.counter += 1
            counter = self.counter
        try:
            return publish_input(self.c, origin, payload, sender, counter)
        except RuntimeError as e:
            raise AssertionError(str(e))

    def send_inputs(self, origin, payloads, window=None, timeout=30):
        """Publish INPUTs at QoS 1 back to back (paho pipelines them: no wait per input), then
        wait until the broker accepted them all; returns the last id.  window: publish the
        next input only while fewer than `window` sent inputs have no chain event yet (a closed
        loop: a node flooded past its queue resyncs instead, see firmware/main.py)."""
        infos = []
        seq0 = self.head_seq(origin)
        for i, p in enumerate(payloads):
            if window:
                self.wait(lambda: self.head_seq(origin) > seq0 + i - window, timeout, "input %d's turn" % i)
            self.counter += 1
            infos.append(self.c.publish(T.daemon(origin, "in"), FR.encode(FR.INPUT, "client", self.counter, {"p": p}),
                                        qos=1))
        for info in infos:
            info.wait_for_publish(timeout)
        return self.counter

    def publish_raw(self, topic, data, qos=1):
        self.c.publish(topic, data, qos=qos).wait_for_publish(2)

    def head_seq(self, origin):
        return self.heads.get(origin, 0)

    def wait_seq(self, origin, seq, timeout=20):
        self.wait(lambda: self.head_seq(origin) >= seq, timeout, "origin %08x to reach seq %d (at %d)" % (
            origin, seq, self.head_seq(origin)))

    def log_of(self, origin):
        """Rebuild the chain through the shared EntityLog: identical redeliveries are dropped as
        Duplicate; anything else that does not chain raises (a gap, a fork, a conflicting event)."""
        log = EntityLog(origin)
        seen = {}
        with self.lock:
            evs = sorted(self.chain.get(origin, []), key=lambda e: e[1].sequence)
        for epoch, link, payload in evs:
            ev = ChainEvent(link, payload)
            if link.sequence in seen:
                assert seen[link.sequence] == ev, "two different events at seq %d" % link.sequence
                continue
            seen[link.sequence] = ev
            log.append(ev)
        return log


def event_outputs(payload):
    """Decode a chain event payload: (sender, counter, input digest, status, outputs)."""
    return decode_event(payload)


def total_of(log):
    """The counter daemon's state after the last event: its single output."""
    return int(event_outputs(log.events[-1].payload)[4][0])


def assert_in_order(events):
    """Inputs were processed in the order the broker accepted them: per sender, the input
    counters recorded in the chain strictly increase (publishers here send one at a time)."""
    last = {}
    for ev in events:
        sender, counter = event_outputs(ev.payload)[:2]
        assert counter > last.get(sender, -1), "input %s/%d processed after %s/%d" % (
            sender, counter, sender, last[sender])
        last[sender] = counter
