# netedge node MQTT 3.1.1 client: MicroPython asyncio (also runs on CPython asyncio).
#
# Written for heap: a node imports it as .mpy, where every function, class, method, new name
# and constant object costs RAM (import cost measured by tests/test_node_mqtt.py). Hence one
# error class with a code, numeric packet types, internals named after names the firmware
# already holds, no docstrings (the compiler drops comments for free), one supervisor task.
#
# Layers
#  * sans-I/O helpers: encode(str) (MQTT string), pack(first_byte, body) (fixed header), and
#    decode(first_byte, body) -> packet tuple (a refused PUBLISH included), raising
#    MalformedPacket only.
#  * MQTTClient: start() runs one supervisor task: connect, the reader loop (which also does
#    the keepalive), and reconnect forever with capped, jittered exponential backoff.
#
# Errors: MalformedPacket(DecodeError) for bad input bytes (counted in stats["malformed"]);
# MQTTError for everything else, with .code (== args[0]):
#   1..5 (any non-zero)  CONNACK refused with that return code (1 protocol, 2 identifier,
#                        3 server unavailable, 4 bad user/password, 5 not authorized)
#   -1 (backpressure)    publish(..., qos=1, block=False) with the in-flight window full
#   -2 (dead)            nothing from the broker for 1.5 x keepalive, or a write failed or
#                        could not drain within 1.5 x keepalive (stats["dead"])
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
# Keepalive: the reader wakes every keepalive/4; it sends PINGREQ when nothing was sent or
# nothing received for a keepalive, and declares the connection dead (see -2) after 1.5 x
# keepalive without any packet from the broker. Do not call disconnect() from inside a hook
# (it cancels the task that runs the hook in normal mode).
import asyncio
from random import getrandbits
from netedge.shared.errors import DecodeError
try:
    from time import ticks_ms, ticks_diff
    U = 1000  # ticks per second
except ImportError:  # CPython: float seconds
    from time import monotonic as ticks_ms
    ticks_diff = float.__sub__
    U = 1


class MQTTError(Exception):
    pass  # .code (== args[0]) is set where it is raised: cheaper than a property or __init__


class MalformedPacket(DecodeError):
    pass


# Helper, method and attribute names: a new name costs ~20 B of heap, so the internals reuse
# names the firmware already holds (encode, pack, send, cb, lock, ...) or the API needs.
def encode(s):
    # an MQTT string: 2-byte big-endian length + UTF-8
    if isinstance(s, str):
        s = bytes(s, "utf-8")
    n = len(s)
    return bytes((n >> 8, n & 255)) + s


def pack(s, payload):
    # first byte s + remaining length + payload, as a bytearray
    n = len(payload)  # (< 2**28: callers cap their packets far below)
    h = bytearray((s,))
    while True:
        h.append(n & 127 | (n > 127) << 7)
        n >>= 7
        if not n:
            return h + payload


def decode(n, payload):
    # A server->client packet after the handshake, from its first byte n and body (bytes):
    #   (3, topic, payload, qos, retain, pid)   PUBLISH (pid 0 for QoS 0)
    #   (3, None, size, qos, retain, pid)       a PUBLISH the client cannot take (its topic empty,
    #                                           cut short or not UTF-8) but can acknowledge: refused
    #   (9, pid, codes)                         SUBACK
    #   (4|5|6|7|11, pid)                       PUBACK PUBREC PUBREL PUBCOMP UNSUBACK
    #   (13,)                                   PINGRESP
    # Anything else (CONNACK, unknown type, reserved flags, bad lengths, packet id 0 or missing,
    # QoS 3) raises MalformedPacket(first byte).
    b = payload
    t = n >> 4
    try:
        if t == 3:
            q = n >> 1 & 3
            i = 2 + (b[0] << 8 | b[1])
            p = 0
            if q:
                p = b[i] << 8 | b[i + 1]
            if q < 3 and (p or not q):
                if 2 < i <= len(b):
                    try:
                        return (3, str(b[2:i], "utf-8"), b[i + (q and 2):], q, n & 1, p)
                    except ValueError:  # (UnicodeError)
                        pass
                return (3, None, len(b), q, n & 1, p)
        elif n == 0xD0:
            if not b:
                return (13,)
        elif n in b"@Pbp\x90\xb0":  # the other server packets, with their fixed flags
            p = b[0] << 8 | b[1]
            if p and (len(b) > 2 if t == 9 else len(b) == 2):
                return (t, p, b[2:]) if t == 9 else (t, p)
    except IndexError:  # a short body
        pass
    raise MalformedPacket(n)


class MQTTClient:
    # State (see the note above encode()): connected, stats, inflight (QoS 1 not yet
    # PUBACKed: (pid, packet), resent on every reconnect), filters (filter -> qos, restored on
    # every reconnect), waiting (pid -> [Event, result] of a SUBSCRIBE/UNSUBSCRIBE awaiting
    # its ack), id (last packet id), data (the CONNECT packet), stream (writer), read (the
    # reader's readexactly), ticks ([last packet received, last packet sent]), lock (writes),
    # event (set when a PUBACK frees a window slot), task (the supervisor).
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
        self.stream = self.read = self.task = None
        self.lock = asyncio.Lock()
        self.event = asyncio.Event()

    # ------------------------------------------------------------------ public API
    def start(self):
        # the supervisor: connects and reconnects until disconnect(); returns its task
        if not self.task:
            self.task = asyncio.create_task(self.run())
        return self.task

    async def connect(self):
        # one attempt (MQTTError with the CONNACK code, MalformedPacket, OSError,
        # TimeoutError), then start()
        st = self.stats
        t = self.connect_timeout
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(self.server, self.port), t)
            self.stream = w
            try:  # TCP_NODELAY (IPPROTO_TCP 6, TCP_NODELAY 1): MicroPython stream .s
                (getattr(w, "s", 0) or w.get_extra_info("socket")).setsockopt(6, 1, 1)
            except Exception:
                pass
            w.write(self.data)
            await w.drain()
            p = await asyncio.wait_for(r.readexactly(4), t)  # CONNACK
            if p[0] != 0x20 or p[1] != 2 or p[2] > 1:
                raise MalformedPacket(p[0])
            if p[3]:
                e = MQTTError(p[3])
                e.code = p[3]
                raise e
            # accepted: resend the unacked QoS 1 publishes (the subscriptions follow, below)
            self.lock = asyncio.Lock()
            for e in self.inflight:  # (not a copy: also sends what publish() appends meanwhile)
                e = e[1]
                if e[0] & 8:
                    st["retransmits"] += 1
                w.write(e)
                e[0] |= 8
                await asyncio.wait_for(w.drain(), t)
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
        self.start()

    async def disconnect(self):
        # DISCONNECT (the broker discards the will), stop reconnecting, close
        up = self.connected
        await self.send(bytes((0xE0, 0)))
        t = self.task
        self.task = None
        if t:
            t.cancel()
            try:
                await t
            except BaseException:
                pass
        await self.close()
        if up:
            self.stats["disconnects"] += 1
            await self.cb(self.on_disconnect, None)

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
        # connect_timeout. qos None: UNSUBSCRIBE (forgotten at once; returns the pid or None).
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
        w = self.waiting[pid] = [asyncio.Event(), None]
        try:
            if await self.send(pack(0xA2 if q is None else 0x82, b)):
                await asyncio.wait_for(w[0].wait(), self.connect_timeout)
        except asyncio.TimeoutError:
            pass
        finally:  # (a MemoryError too: a waiting entry left behind would be held for good)
            self.waiting.pop(pid, None)
        return w[1]

    async def unsubscribe(self, filters):
        return await self.subscribe(filters, None)

    def drop(self):
        # ask for a fresh connection at once (the reader notices within 0.25 s, closes this
        # one and reconnects without backoff; the broker then redelivers every unacked QoS 1
        # message, in order)
        self.connected = False
        self.redial = True

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
        # (a failed or stuck write marks the connection dead: the reader then closes it)
        g = self.stats["connects"]
        async with self.lock:
            if self.connected and g == self.stats["connects"]:
                try:
                    self.stream.write(payload)
                    await asyncio.wait_for(self.stream.drain(), self.keepalive * 3 / 2 or None)
                    self.ticks[1] = ticks_ms()
                    return True
                except Exception:
                    self.connected = False
                except BaseException:  # (a CancelledError: see run()) the packet may be half sent
                    self.connected = False
                    raise
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
        self.connected = False
        w = self.stream
        self.stream = None
        if w:
            if self.redial:  # a drop we asked for is no crash: DISCONNECT, so no last will
                try:
                    w.write(b"\xe0\x00")
                    await asyncio.wait_for(w.drain(), 1)
                    # The broker closes the connection on DISCONNECT: wait for that.  A CONNECT
                    # on the new socket could overtake it, and a session taken over from a live
                    # connection sends the will (a false crash).  What still arrives is unacked
                    # and comes again on the new connection.
                    while await asyncio.wait_for(w.read(256), 1):
                        pass
                except Exception:
                    pass
            try:
                w.close()
                await asyncio.wait_for(w.wait_closed(), 1)
            except Exception:
                pass

    async def run(self):
        # the supervisor task
        st = self.stats
        d = self.backoff_min
        while self.task:
            up = e = None
            try:
                if not self.connected:
                    await self.connect()
                up = ticks_ms()
                # the reader, with keepalive and liveness checks; leaves only by raising
                m = self.max_packet
                ka = self.keepalive * U
                x = self.read
                tk = self.ticks
                while True:
                    if ka:
                        t = ticks_ms()
                        i = ticks_diff(t, tk[0])
                        if i > ka * 3 / 2 or not self.connected:
                            st["dead"] += 1
                            y = MQTTError(-2)
                            y.code = -2
                            raise y
                        if i >= ka or ticks_diff(t, tk[1]) >= ka:
                            st["pings"] += 1
                            await self.send(bytes((0xC0, 0)))
                    try:
                        b0 = (await asyncio.wait_for(x(1), min(self.keepalive / 4, 0.25) or 0.25))[0]
                    except asyncio.TimeoutError:
                        p = b = s = None  # idle: let the last packet (up to max_packet) go
                        continue
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
            except Exception as y:
                e = y
                if isinstance(y, MemoryError):  # the board is short of heap, not dead: reconnect
                    self.redial = True          # cleanly (no last will), the broker redelivers
            except asyncio.CancelledError as y:
                if not self.task:  # disconnect()
                    raise
                # Not cancelled: a wait_for whose helper task ran out of heap (MicroPython's
                # funcs._run) cancels its caller instead of reporting.  Short of heap, as above.
                e = MemoryError()
                self.redial = True
            try:  # (short of heap here too: the supervisor must outlive it, or the node goes deaf)
                if isinstance(e, MalformedPacket):
                    st["malformed"] += 1
                if up is None:
                    st["conn_fail"] += 1
                else:
                    await self.close()
                    st["disconnects"] += 1
                    asyncio.create_task(self.cb(self.on_disconnect, e))
                    if ticks_diff(ticks_ms(), up) > U or self.redial:
                        d = self.backoff_min
                if self.redial:  # a drop we asked for: reconnect now (after a breath when short of
                    self.redial = False  # heap: the other tasks must run to free it)
                    await asyncio.sleep(0.1 if isinstance(e, MemoryError) else 0)
                    continue
                await asyncio.sleep((d // 2 + (d * getrandbits(8) >> 9)) / 1000)
                d = min(d * 2, self.backoff_max)
            except MemoryError:
                self.redial = True
                await asyncio.sleep(0.05)
