"""A simulated MQTT 3.1.1 broker, and the client side of a connection to it.

It keeps MQTT's promises and no more, as Mosquitto does:
- topic filters with `+` and `#`; QoS 0 and 1 (a subscription grants at most its QoS);
- clean and persistent sessions: a persistent session keeps its subscriptions, its queue and
  its unacknowledged messages while the client is away, and redelivers those (DUP) in order
  on the next connection;
- a per-session queue with a cap (`max_queued_messages`): once full, a QoS 1 message is dropped
  silently while its publisher still gets its PUBACK; QoS 0 is never queued for an absent client;
- at most `max_inflight` unacknowledged messages per session on the wire (QoS 0 to a connected
  client goes out at once, past them, as in Mosquitto 2.0);
- retained messages (an empty payload clears one), sent again on every SUBSCRIBE that matches;
- last wills on a connection that drops (a kill, a network cut, a missed keepalive, a takeover
  by a second CONNECT with the same client id), never on a clean DISCONNECT;
- ordering per connection only: each direction of a connection is a FIFO channel with its own
  latency, so one publisher's messages reach one subscriber in order, and nothing more is promised.

Every packet crossing a channel is a scheduler event.  A broker restart publishes every
connected client's will, drops every connection and keeps persistent sessions and retained
messages (Mosquitto with `persistence true`, shut down cleanly).
"""
from collections import OrderedDict, deque

MAX_QUEUED = 1000    # Mosquitto's max_queued_messages default
MAX_INFLIGHT = 20    # Mosquitto's max_inflight_messages default
LATENCY_S = 0.0002   # one-way latency on a LAN (FIELD_NOTES: 0.11-0.20 ms median) ...
JITTER_S = 0.0015    # ... plus up to this much, drawn per packet


def matches(flt, topic):
    """MQTT topic filter matching (`+` one level, `#` the rest, also the parent level)."""
    f, t = flt.split("/"), topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t):
            return False
        if part != "+" and part != t[i]:
            return False
    return len(f) == len(t)


class Msg:
    __slots__ = ("topic", "payload", "qos", "retain", "dup", "origin_client")

    def __init__(self, topic, payload, qos, retain=False, dup=False, origin_client=None):
        self.topic, self.payload, self.qos, self.retain, self.dup = topic, payload, qos, retain, dup
        self.origin_client = origin_client

    def copy(self, qos, retain=False, dup=False):
        return Msg(self.topic, self.payload, qos, retain, dup, self.origin_client)


class Conn:
    """One network connection: two FIFO channels and their state at both ends."""
    __slots__ = ("client", "cid", "gen", "clean", "will", "keepalive", "open", "cut", "session",
                 "up_t", "down_t")

    def __init__(self, client, cid, gen, clean, will, keepalive):
        self.client, self.cid, self.gen, self.clean, self.will = client, cid, gen, clean, will
        self.keepalive = keepalive
        self.open = False    # the broker accepted the CONNECT and has not closed it
        self.cut = False     # the network dropped it: nothing more crosses either way
        self.session = None
        self.up_t = self.down_t = 0.0  # arrival time of the last packet each way (FIFO)


class Session:
    __slots__ = ("cid", "clean", "subs", "queue", "inflight", "conn", "pid")

    def __init__(self, cid, clean):
        self.cid, self.clean = cid, clean
        self.subs = {}                 # filter -> granted qos
        self.queue = deque()           # messages not yet sent
        self.inflight = OrderedDict()  # packet id -> message sent, not acknowledged
        self.conn = None
        self.pid = 0


class Broker:
    def __init__(self, sched, max_queued=MAX_QUEUED, max_inflight=MAX_INFLIGHT):
        self.sched = sched
        self.rng = sched.rng
        self.max_queued = max_queued
        self.max_inflight = max_inflight
        self.up = True
        self.sessions = {}
        self.retained = {}
        self.gen = 0
        self.on_accept = None  # (client id, Msg) of every PUBLISH the broker accepts (and every will)
        self.stats = {"accepted": 0, "delivered": 0, "queue_drops": 0, "wills": 0, "takeovers": 0,
                      "redelivered": 0, "resent": 0}  # (QoS 1's duplicates: to and from clients)

    # -- channels ------------------------------------------------------------------------

    def _latency(self, conn):
        return LATENCY_S + self.rng.random() * JITTER_S + conn.client.slow

    def up_packet(self, conn, kind, *args):
        """Client -> broker, in order after the connection's earlier packets."""
        t = max(conn.up_t, self.sched.now + self._latency(conn))
        conn.up_t = t
        self.sched.at(t, self._arrive, conn, kind, args)

    def down_packet(self, conn, handler, *args):
        """Broker -> client: `handler` of the client's endpoint runs on arrival."""
        t = max(conn.down_t, self.sched.now + self._latency(conn))
        conn.down_t = t
        self.sched.at(t, conn.client.receive, conn, handler, args)

    # -- client packets -------------------------------------------------------------------

    def connect(self, client, cid, clean, will, keepalive):
        self.gen += 1
        conn = Conn(client, cid, self.gen, clean, will, keepalive)
        self.up_packet(conn, "connect")
        return conn

    def _arrive(self, conn, kind, args):
        if conn.cut:
            return
        if kind == "connect":
            return self._connect(conn)
        if not conn.open:
            return  # (the broker closed it: what was still on the wire is lost)
        if kind == "pub":
            pid, msg = args
            self.stats["resent"] += msg.dup
            self._accept(conn.cid, msg)
            if msg.qos:
                self.down_packet(conn, "on_puback", pid)
        elif kind == "ack":
            s = conn.session
            if s.inflight.pop(args[0], None) is not None:
                self._pump(s)
        elif kind == "sub":
            s = conn.session
            for flt, qos in args[0]:
                s.subs[flt] = qos
                for topic in sorted(self.retained):
                    if matches(flt, topic):
                        self._enqueue(s, self.retained[topic].copy(min(qos, self.retained[topic].qos), retain=True))
        elif kind == "unsub":
            for flt in args[0]:
                conn.session.subs.pop(flt, None)
        elif kind == "disc":
            self.close(conn, will=False)
        elif kind == "gone":  # the client's process died: its socket closes
            self.close(conn, will=True)

    def _connect(self, conn):
        if not self.up:
            self.down_packet(conn, "on_refused")
            return
        s = self.sessions.get(conn.cid)
        if s is not None and s.conn is not None:
            self.stats["takeovers"] += 1
            self.close(s.conn, will=True)  # takeover: the old connection's will fires
            s = self.sessions.get(conn.cid)
        present = s is not None and not conn.clean
        if s is None or conn.clean:
            s = self.sessions[conn.cid] = Session(conn.cid, conn.clean)
        s.clean = conn.clean
        s.conn, conn.session, conn.open = conn, s, True
        self.down_packet(conn, "on_connack", present)
        for pid, msg in s.inflight.items():  # unacknowledged: again, in order, marked DUP
            msg.dup = True
            self.stats["redelivered"] += 1
            self.down_packet(conn, "on_message", msg, pid)
        self._pump(s)

    def close(self, conn, will):
        """The broker closes a connection (publishing its will if `will`)."""
        if not conn.open:
            return
        conn.open = False
        s = conn.session
        if s.conn is conn:
            s.conn = None
            if s.clean:
                del self.sessions[s.cid]
        if will and conn.will is not None:
            self.stats["wills"] += 1
            topic, payload, qos = conn.will
            self._accept(conn.cid, Msg(topic, payload, qos, True, origin_client=conn.cid))
        self.down_packet(conn, "on_closed")

    # -- routing ------------------------------------------------------------------------

    def _accept(self, cid, msg):
        self.stats["accepted"] += 1
        if self.on_accept is not None:
            self.on_accept(cid, msg)
        if msg.retain:
            if msg.payload:
                self.retained[msg.topic] = msg.copy(msg.qos)
            else:
                self.retained.pop(msg.topic, None)
        for s in list(self.sessions.values()):
            granted = -1
            for flt, qos in s.subs.items():
                if qos > granted and matches(flt, msg.topic):
                    granted = qos
            if granted >= 0:
                self._enqueue(s, msg.copy(min(granted, msg.qos)))

    def _enqueue(self, s, msg):
        if s.conn is None and msg.qos == 0:
            return  # QoS 0 is not kept for an absent client
        if msg.qos == 0 and s.conn is not None:
            # Mosquitto 2.0 (db__ready_for_flight): a QoS 0 message to a connected client takes
            # no in-flight slot and goes out at once, past QoS 1 messages queued behind a full window
            self.stats["delivered"] += 1
            self.down_packet(s.conn, "on_message", msg, None)
            return
        if len(s.queue) >= self.max_queued:
            self.stats["queue_drops"] += 1  # silently, as Mosquitto does
            return
        s.queue.append(msg)
        self._pump(s)

    def _pump(self, s):
        conn = s.conn
        if conn is None:
            return
        while s.queue and (s.queue[0].qos == 0 or len(s.inflight) < self.max_inflight):
            msg = s.queue.popleft()
            self.stats["delivered"] += 1
            if msg.qos == 0:
                self.down_packet(conn, "on_message", msg, None)
                continue
            s.pid = s.pid % 65535 + 1
            s.inflight[s.pid] = msg
            self.down_packet(conn, "on_message", msg, s.pid)

    # -- faults ---------------------------------------------------------------------------

    def connections(self):
        return [s.conn for s in self.sessions.values() if s.conn is not None]

    def cut(self, conn, detect_s):
        """The network drops `conn`: nothing more crosses; each end notices after a while."""
        if conn.cut:
            return
        conn.cut = True
        self.sched.after(detect_s, self._cut_detected, conn)
        self.sched.after(detect_s * self.rng.random(), conn.client.receive, conn, "receive_cut", ())

    def _cut_detected(self, conn):
        if conn.open:
            conn.cut = False  # (let the will and the close notice through this method)
            self.close(conn, will=True)
            conn.cut = True

    def go_down(self):
        """A broker shutting down: every client's will, then every connection closes."""
        self.up = False
        conns = self.connections()
        for conn in conns:
            if conn.will is not None:
                self.stats["wills"] += 1
                topic, payload, qos = conn.will
                self._accept(conn.cid, Msg(topic, payload, qos, True, origin_client=conn.cid))
        self.sched.after(self.rng.random() * 0.003, self._drop_all, conns)

    def _drop_all(self, conns):
        for conn in conns:
            if conn.open:
                conn.will = None  # (published already)
                self.close(conn, will=False)
        for cid in [c for c, s in self.sessions.items() if s.clean]:
            del self.sessions[cid]

    def come_up(self):
        self.up = True


class Endpoint:
    """The client side of MQTT: dial with a capped exponential backoff, a QoS 1 outbox kept
    across reconnects (resent, DUP, on the next connection), manual acknowledgement by token
    (connection generation, packet id).  Subclasses implement connected(), lost(), message()."""

    def __init__(self, broker, cid, clean=False, keepalive=10, backoff=(0.2, 5.0)):
        self.broker = broker
        self.sched = broker.sched
        self.cid = cid
        self.clean = clean
        self.keepalive = keepalive
        self.backoff_min, self.backoff_max = backoff
        self.will = None
        self.conn = None
        self.connected = False
        self.dead = False
        self.frozen = False
        self.stalled = []          # packets that arrived while frozen, read on thaw
        self.outbox = OrderedDict()  # pid -> (topic, payload, qos, retain) awaiting PUBACK
        self.pid = 0
        self.wait = self.backoff_min
        self.redial_now = False
        self.slow = 0.0            # extra latency of a congested link (a fault)

    # -- lifecycle -------------------------------------------------------------------------

    def dial(self):
        if self.dead or self.conn is not None:
            return
        self.conn = self.broker.connect(self, self.cid, self.clean, self.will, self.keepalive)

    def _redial_later(self):
        if self.redial_now:
            self.redial_now = False
            delay = 0.0
        else:
            delay = self.wait * (0.5 + self.sched.rng.random() / 2)
            self.wait = min(self.wait * 2, self.backoff_max)
        self.sched.after(delay, self.dial)

    def kill(self):
        """The process dies: RAM (the outbox, unread packets) is gone, its socket closes."""
        self.dead = True
        self.frozen = False
        self.stalled = []
        self.outbox = OrderedDict()
        if self.conn is not None and not self.conn.cut:
            self.broker.up_packet(self.conn, "gone")
        self.conn = None
        self.connected = False

    def revive(self):
        self.dead = False
        self.wait = self.backoff_min
        self.dial()

    def freeze(self):
        self.frozen = True

    def thaw(self):
        self.frozen = False
        stalled, self.stalled = self.stalled, []
        for conn, handler, args in stalled:
            self.receive(conn, handler, args)

    def disconnect_and_redial(self):
        """A clean DISCONNECT (no will), then a new connection once the broker closed the old one."""
        if self.conn is not None and self.connected:
            self.redial_now = True
            self.broker.up_packet(self.conn, "disc")

    # -- packets in -------------------------------------------------------------------------

    def receive(self, conn, handler, args):
        if self.dead or conn.cut and handler != "receive_cut":
            return  # (a cut connection delivers nothing more, but its end is still noticed)
        if self.frozen:
            self.stalled.append((conn, handler, args))
            return
        if conn is not self.conn:
            return  # an older connection's
        getattr(self, handler)(conn, *args)

    def receive_cut(self, conn, *args):
        """The network dropped `conn`: this end notices (a frozen process, once it runs again)."""
        if self.frozen:
            self.stalled.append((conn, "receive_cut", ()))
        elif not self.dead and conn is self.conn:
            self.on_closed(conn)

    def on_refused(self, conn):
        self.conn = None
        self._redial_later()

    def on_connack(self, conn, present):
        self.connected = True
        self.wait = self.backoff_min
        for pid, (topic, payload, qos, retain) in self.outbox.items():
            self.broker.up_packet(conn, "pub", pid, _msg(self.cid, topic, payload, qos, retain, True))
        self.connected_hook(present)

    def on_closed(self, conn):
        self.conn = None
        was = self.connected
        self.connected = False
        self.lost_hook(was)
        self._redial_later()

    def on_puback(self, conn, pid):
        self.outbox.pop(pid, None)

    def on_message(self, conn, msg, pid):
        self.message(msg.topic, msg.payload, msg.retain, None if pid is None else (conn.gen, pid))

    # -- packets out ------------------------------------------------------------------------

    def publish(self, topic, payload, qos=1, retain=False):
        if qos:
            self.pid = self.pid % 65535 + 1
            self.outbox[self.pid] = (topic, payload, qos, retain)
            if self.connected:
                self.broker.up_packet(self.conn, "pub", self.pid, _msg(self.cid, topic, payload, qos, retain))
        elif self.connected:
            self.broker.up_packet(self.conn, "pub", 0, _msg(self.cid, topic, payload, 0, retain))

    def subscribe(self, filters):
        if self.connected:
            self.broker.up_packet(self.conn, "sub", list(filters))

    def unsubscribe(self, filters):
        if self.connected:
            self.broker.up_packet(self.conn, "unsub", list(filters))

    def ack(self, token):
        if token is not None and self.connected and self.conn.gen == token[0]:
            self.broker.up_packet(self.conn, "ack", token[1])

    def idle(self):
        return not self.outbox and not self.stalled

    # -- hooks ------------------------------------------------------------------------------

    def connected_hook(self, present):
        pass

    def lost_hook(self, was_connected):
        pass

    def message(self, topic, payload, retained, token):
        raise NotImplementedError


def _msg(cid, topic, payload, qos, retain, dup=False):
    return Msg(topic, payload, qos, retain, dup, origin_client=cid)
