# netedge node MQTT 3.1.1 client, one connection at a time (micropython-lib's umqtt.simple is
# the model): MicroPython asyncio (also runs on CPython asyncio).  The packet codec is
# mqtt_codec.py.  This client has no clock of its own: every wait in it (the connection
# attempt, a write, a SUBACK, the reader) ends when the supervisor (mqtt.py: MQTTClient, this
# Client plus start()) says so; there the keepalive, the timeouts, reconnecting and backoff.
# (No asyncio.wait_for and no asyncio.Lock: each is a module of a few hundred bytes of heap,
# and wait_for a helper task per read.)
#
# Written for heap: a node imports it as .mpy, where every function, class, method, new name
# and constant object costs RAM (import cost measured by tests/test_node_mqtt.py). Hence one
# error class with a code, numeric packet types, internals named after names the firmware
# already holds, no docstrings (the compiler drops comments for free).
#
# Errors: MalformedPacket (mqtt_codec) for bad input bytes (counted in stats["malformed"]);
# MQTTError for everything else, with .code (== args[0]):
#   1..5 (any non-zero)  CONNACK refused with that return code (1 protocol, 2 identifier,
#                        3 server unavailable, 4 bad user/password, 5 not authorized)
#   -1 (backpressure)    publish(..., qos=1, block=False) with the in-flight window full
#   -2 (dead)            nothing from the broker for 1.5 x keepalive, or a write failed or
#                        could not drain within 1.5 x keepalive (stats["dead"]); raised
#                        by the supervisor
# A garbage CONNACK is a MalformedPacket.
#
# Caps (every buffer is bounded): an incoming packet is at most max_packet bytes. A larger
# PUBLISH, of any size MQTT can frame, is streamed off the socket in 256-byte pieces into
# nothing; a PUBLISH whose topic is empty, cut short or not UTF-8 is read past the same way.
# Either is a refused message (stats["oversize"] / stats["malformed"]): handed to on_message
# with its size (an int) as the payload and topic None when its topic is not readable, so the
# app reports it, then acknowledged (by the client, or the app's ack(token) with manual_ack)
# so the broker drops it; the connection stays up and no will fires. Only a packet that
# cannot be framed or acknowledged (a remaining length over 4 bytes, an unknown or oversize
# non-PUBLISH packet, QoS 3, a packet id 0 or missing) is malformed and closes the connection
# (counted). Outgoing PUBLISHes are capped by max_packet (ValueError); the QoS 1 window by
# max_inflight; remembered filters by 32.
#
# QoS: publish at 0 or 1; subscribe at 0 or 1 (else ValueError). A QoS 2 PUBLISH from the
# broker (it should never send one) is dropped, counted in stats["qos2_rejected"] and
# answered PUBREC, then its PUBREL -> PUBCOMP, so the broker does not redeliver it forever.
#
# Hooks: on_connect(session_present) and on_disconnect(error or None) run as tasks (they may
# be async); hook exceptions are counted in stats["hook_fail"]. on_message(topic, payload,
# retained) is awaited by the reader (if async), then the client PUBACKs a QoS 1 message; so
# in this mode a hook must not wait for a free QoS 1 window (the PUBACKs that free it are
# read by the same loop). With manual_ack=True, on_message(topic, payload, retained, token)
# runs as a task (the reader never waits for the app) and nothing is PUBACKed until
# `await ack(token)`; token = (connection generation, packet id) for QoS 1, None for QoS 0.
# Acks go out in the order ack() is called; a token of an older connection is ignored
# (False): the broker redelivers that message.
#
# Keepalive (the supervisor's watchdog, every keepalive/4, at most 0.25 s): PINGREQ when
# nothing was sent or nothing received for a keepalive; the connection is dead (see -2) after
# 1.5 x keepalive without any packet from the broker, or a write stuck that long.
import asyncio
from netedge.firmware.mqtt_codec import MalformedPacket, encode, pack, decode
try:
    from time import ticks_ms, ticks_diff
    U = 1000  # ticks per second
except ImportError:  # CPython: float seconds
    from time import monotonic as ticks_ms
    ticks_diff = float.__sub__
    U = 1


class MQTTError(Exception):
    pass  # .code (== args[0]) is set where it is raised: cheaper than a property or __init__


class Client:
    # State (a new name costs ~20 B of heap: the internals reuse names the firmware already
    # holds, or the API needs): connected, stats, inflight (QoS 1 not yet
    # PUBACKed: (pid, packet), resent on every reconnect), filters (filter -> qos, restored on
    # every reconnect), waiting (pid -> [Event, result] of a SUBSCRIBE/UNSUBSCRIBE awaiting
    # its ack, since [2]), id (last packet id), data (the CONNECT packet), stream (writer), read (the
    # reader's readexactly; None when not serving), ticks ([last packet received, last packet
    # sent]), busy (when the write in progress began, or None: one writer at a time), lock
    # (an Event, set when no write is in progress), event (set when a PUBACK frees a window
    # slot), task (the supervisor's), deadline ((start, limit) of a connection attempt or a
    # close, for the supervisor's watchdog), redial (a close we asked for: DISCONNECT first, so
    # no last will).
    # stats["connects"] doubles as the connection generation of manual_ack tokens.
    def __init__(self, client_id, server, port, user=None, password=None, keepalive=60,
                 clean_session=True, will=None, on_message=None, on_connect=None,
                 on_disconnect=None, max_packet=8192, max_inflight=8, backoff_min=0.5,
                 backoff_max=30, manual_ack=False, connect_timeout=5):
        self.server = server
        self.port = port
        self.keepalive = keepalive
        self.on_message = on_message
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.max_packet = max_packet
        self.max_inflight = max_inflight
        self.backoff_min = int(backoff_min * 1000)  # ms
        self.backoff_max = int(backoff_max * 1000)
        self.manual_ack = manual_ack
        self.connect_timeout = connect_timeout  # an attempt; also the SUBACK/UNSUBACK wait
        # the CONNECT packet; will = (topic, payload, qos), published retained
        f = 2 if clean_session else 0
        b = encode(client_id)
        if will:
            f |= 0x24 | will[2] << 3
            b += encode(will[0]) + encode(will[1])
        if user is not None:
            f |= 0x80
            b += encode(user)
        if password is not None:
            f |= 0x40
            b += encode(password)
        self.data = pack(0x10, b"\0\4MQTT\4" + bytes((f, keepalive >> 8, keepalive & 255)) + b)
        self.stats = {"connects": 0, "conn_fail": 0, "disconnects": 0, "malformed": 0,
                      "oversize": 0, "dead": 0, "dropped": 0, "retransmits": 0,
                      "backpressure": 0, "pings": 0, "qos2_rejected": 0, "hook_fail": 0}
        self.connected = False
        self.inflight = []
        self.filters = {}
        self.waiting = {}
        self.id = 0
        self.redial = False
        self.ticks = [0, 0]
        self.stream = self.read = self.task = self.busy = self.deadline = None
        self.lock = asyncio.Event()
        self.event = asyncio.Event()

    async def connect(self):
        # one attempt: MQTTError with the CONNACK code, MalformedPacket, OSError (bounded by the
        # supervisor's watchdog: connect_timeout)
        st = self.stats
        try:
            r, w = await asyncio.open_connection(self.server, self.port)
            self.stream = w
            try:  # TCP_NODELAY (IPPROTO_TCP 6, TCP_NODELAY 1): MicroPython stream .s
                (getattr(w, "s", 0) or w.get_extra_info("socket")).setsockopt(6, 1, 1)
            except Exception:
                pass
            w.write(self.data)
            await w.drain()
            p = await r.readexactly(4)  # CONNACK
            if p[0] != 0x20 or p[1] != 2 or p[2] > 1:
                raise MalformedPacket(p[0])
            if p[3]:
                e = MQTTError(p[3])
                e.code = p[3]
                raise e
            # accepted: resend the unacked QoS 1 publishes (the subscriptions follow, below)
            for e in self.inflight:  # (not a copy: also sends what publish() appends meanwhile)
                e = e[1]
                if e[0] & 8:
                    st["retransmits"] += 1
                w.write(e)
                e[0] |= 8
                await w.drain()
        except BaseException:
            await self.close()
            raise
        self.read = r.readexactly
        self.ticks = [ticks_ms(), ticks_ms()]
        self.connected = True
        st["connects"] += 1
        if self.filters:  # restore them (a task: the SUBACK comes through the reader)
            asyncio.create_task(self.subscribe(list(self.filters.items())))
        asyncio.create_task(self.cb(self.on_connect, p[2] > 0))

    async def publish(self, topic, payload, qos=0, retain=False, block=True):
        # QoS 0: sent now, or dropped (stats["dropped"]) when not connected. QoS 1: takes a
        # window slot until its PUBACK (kept across reconnects); a full window waits, or with
        # block=False raises MQTTError(-1). Returns the packet id (0 for QoS 0).
        pid = 0
        if qos:
            while len(self.inflight) >= self.max_inflight:
                if not block:
                    self.stats["backpressure"] += 1
                    e = MQTTError(-1)
                    e.code = -1
                    raise e
                self.event.clear()
                await self.event.wait()
            pid = self.id = self.id % 65535 + 1  # (no reuse check: the window is small)
        # topic: str; payload: bytes. DUP (bit 3 of byte 0) is set once the packet was handed
        # to a socket, so a resend carries it
        if qos > 1 or not topic or "+" in topic or "#" in topic:
            raise ValueError(topic)
        p = pack(0x30 | qos << 1 | retain,
                 encode(topic) + (bytes((pid >> 8, pid & 255)) if qos else b"") + payload)
        if len(p) > self.max_packet:
            raise ValueError(len(p))
        if qos:
            self.inflight.append((pid, p))
            if self.connected:  # else it goes out right after the next CONNACK
                await self.send(p)
                p[0] |= 8
        elif not await self.send(p):
            self.stats["dropped"] += 1
        return pid

    async def subscribe(self, filters, qos=0):
        # filters: one filter, or a list of filters and/or (filter, qos). Remembered (at most
        # 32) and restored on every reconnect. Returns the SUBACK codes (bytes, 0x80 =
        # refused), or None when not connected (sent on connect) or without a SUBACK in
        # connect_timeout (the watchdog's) or before the connection closed. qos None:
        # UNSUBSCRIBE (forgotten at once; returns the codes or None).
        if isinstance(filters, str):
            filters = [filters]
        fl = []
        for f in filters:
            t, q = (f, qos) if isinstance(f, str) else f
            if q is None:
                self.filters.pop(t, None)
            elif q > 1 or len(self.filters) > 31 and t not in self.filters:
                raise ValueError(t)
            else:
                self.filters[t] = q
            fl.append((t, q))
        if not self.connected:
            return None
        pid = self.id = self.id % 65535 + 1
        b = bytes((pid >> 8, pid & 255))
        for t, q in fl:
            b += encode(t) if q is None else encode(t) + bytes((q,))
        w = self.waiting[pid] = [asyncio.Event(), None, ticks_ms()]
        try:
            if await self.send(pack(0xA2 if q is None else 0x82, b)):
                await w[0].wait()
        finally:  # (a MemoryError too: a waiting entry left behind would be held for good)
            self.waiting.pop(pid, None)
        return w[1]

    async def unsubscribe(self, filters):
        return await self.subscribe(filters, None)

    async def ack(self, token):
        # manual_ack: PUBACK the message `token` came with (None: QoS 0, nothing to do)
        if token is None:
            return True
        if token[0] != self.stats["connects"]:
            return False
        t = token[1]
        return await self.send(bytes((0x40, 2, t >> 8, t & 255)))

    # ------------------------------------------------------------------ internals
    async def send(self, payload):
        # write one packet on the current connection; False if not connected or it failed
        # (a failed write marks the connection dead, a stuck one the watchdog does: the
        # supervisor then closes it, which ends the stuck drain)
        g = self.stats["connects"]
        while self.busy is not None:  # one writer at a time: a drain must not interleave
            await self.lock.wait()
        if not self.connected or g != self.stats["connects"]:
            return False
        self.busy = ticks_ms()
        self.lock.clear()
        try:
            self.stream.write(payload)
            await self.stream.drain()
            self.ticks[1] = ticks_ms()
            return True
        except Exception:
            self.connected = False
        except BaseException:  # (a CancelledError) the packet may be half sent
            self.connected = False
            raise
        finally:
            self.busy = None
            self.lock.set()
        return False

    async def cb(self, s, *a):
        # run a hook; await it if it is async
        try:
            r = s and s(*a)
            if hasattr(r, "send"):
                await r
        except Exception:
            self.stats["hook_fail"] += 1

    async def close(self):
        # (bounded by the supervisor's watchdog: a second)
        self.connected = False
        w = self.stream
        self.stream = self.read = None
        for e in self.waiting.values():  # no SUBACK will come on this connection
            e[0].set()
        if w:
            try:
                if self.redial:  # a drop we asked for is no crash: DISCONNECT, so no last will
                    w.write(b"\xe0\x00")
                    await w.drain()
                    # The broker closes the connection on DISCONNECT: wait for that.  A CONNECT
                    # on the new socket could overtake it, and a session taken over from a live
                    # connection sends the will (a false crash).  What still arrives is unacked
                    # and comes again on the new connection.
                    while await w.read(256):
                        pass
            except Exception:
                pass
            finally:  # (cut short by the watchdog too)
                try:
                    w.close()
                    await w.wait_closed()  # (MicroPython's Stream closes its socket only here)
                except Exception:
                    pass

    async def serve(self):
        # the reader of the current connection (run by the supervisor, which ends it); leaves
        # only by raising
        st = self.stats
        m = self.max_packet
        x = self.read
        tk = self.ticks
        while True:
            p = b = s = None  # (nothing held while idle: the last packet is up to max_packet)
            b0 = (await x(1))[0]
            n = k = 0
            while True:  # remaining length
                i = (await x(1))[0]
                n |= (i & 127) << k
                if i < 128:
                    break
                k += 7
                if k > 21:
                    raise MalformedPacket(b0)
            q = b0 >> 1 & 3
            if n <= m:
                p = decode(b0, await x(n))
            elif b0 >> 4 != 3 or q > 2:
                raise MalformedPacket(b0)
            else:
                # An oversize PUBLISH (any size MQTT can frame): streamed off the socket
                # into nothing in small pieces (a big buffer may not fit a small heap,
                # and a MemoryError here would loop on the redelivered message), then
                # refused like a malformed one: reported, acknowledged, dropped.
                b = await x(2)
                i = b[0] << 8 | b[1]  # the topic's length
                k = n - i - 2 - (q and 2)  # the payload's
                if k < 0:
                    raise MalformedPacket(b0)
                s = None
                if i <= 256:  # (one of ours is < 64 B: kept to report it; a longer one skipped)
                    try:
                        s = str(await x(i), "utf-8") or None
                    except ValueError:
                        pass
                    i = 0
                while i:
                    b = min(i, 256)
                    await x(b)
                    i -= b
                p = 0
                if q:
                    b = await x(2)
                    p = b[0] << 8 | b[1]
                    if not p:
                        raise MalformedPacket(b0)
                while k:
                    b = min(k, 256)
                    await x(b)
                    k -= b
                p = (3, s, n, q, b0 & 1, p)
            tk[0] = ticks_ms()
            t = p[0]
            if t == 3:
                _, s, b, q, k, i = p
                if type(b) is int:  # refused (b: its size): the app reports it, then it is acked
                    st["oversize" if b > m else "malformed"] += 1
                if q == 2:
                    st["qos2_rejected"] += 1
                elif self.manual_ack:
                    asyncio.create_task(self.cb(self.on_message, s, b, k > 0,
                                                (st["connects"], i) if q else None))
                    continue
                else:
                    await self.cb(self.on_message, s, b, k > 0)
                if q:  # PUBACK, or PUBREC for QoS 2
                    await self.send(bytes((0x30 + (q << 4), 2, i >> 8, i & 255)))
            elif t == 4:
                for w in self.inflight:
                    if w[0] == p[1]:
                        self.inflight.remove(w)
                        self.event.set()
                        break
            elif t == 6:
                i = p[1]
                await self.send(bytes((0x70, 2, i >> 8, i & 255)))
            elif t == 9 or t == 11:
                w = self.waiting.get(p[1])
                if w:
                    w[1] = p[-1]
                    w[0].set()
