# netedge node MQTT 3.1.1 client (MicroPython asyncio; also runs on CPython asyncio).
#
# Two layers:
#  * pure packet helpers (sans-I/O): *_packet() encoders, decode_remaining_length(),
#    check_header(), decode_body(), decode(). They raise only the typed errors below.
#  * MQTTClient: a thin asyncio driver (one socket, a reader task, a keepalive task and a
#    supervisor that reconnects with capped, jittered exponential backoff).
#
# Every buffer is capped: incoming packets (max_packet; larger PUBLISHes up to discard_max are
# read-and-dropped, anything else oversize closes the connection), outgoing packets (max_out),
# QoS 1 in-flight window (max_inflight -> Backpressure), subscriptions (max_subs).
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

try:
    from time import ticks_ms, ticks_diff
except ImportError:  # CPython
    import time as _time

    def ticks_ms():
        return int(_time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

try:
    import asyncio
except ImportError:  # older MicroPython
    import uasyncio as asyncio

try:
    from random import getrandbits
except ImportError:
    def getrandbits(n):
        return 0

try:
    from netedge.shared.errors import DecodeError
except ImportError:  # module deployed on its own
    DecodeError = ValueError

if hasattr(asyncio, "sleep_ms"):
    _sleep_ms = asyncio.sleep_ms
else:
    def _sleep_ms(ms):
        return asyncio.sleep(ms / 1000)

# packet types (high nibble of the first byte)
CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
PUBREC = const(5)
PUBREL = const(6)
PUBCOMP = const(7)
SUBSCRIBE = const(8)
SUBACK = const(9)
UNSUBSCRIBE = const(10)
UNSUBACK = const(11)
PINGREQ = const(12)
PINGRESP = const(13)
DISCONNECT = const(14)

MAX_REMAINING = const(268435455)
_PINGREQ = b"\xc0\x00"
_DISCONNECT = b"\xe0\x00"


# ---------------------------------------------------------------- typed errors
class MQTTError(Exception):
    """Base of the client's non-decoding errors."""


class MalformedPacket(DecodeError):
    """Bytes from the network that are not a valid server->client MQTT 3.1.1 packet."""


class PacketTooLarge(MalformedPacket):
    """Remaining length above the configured cap."""


class UnknownPacket(MalformedPacket):
    """Reserved packet type, or one a server never sends."""


class ConnectRefused(MQTTError):
    """CONNACK with a non-zero return code; `.code` is the code."""
    code = -1

    def __init__(self, code=None):
        if code is not None:
            self.code = code
        MQTTError.__init__(self, "connection refused, code %d" % self.code)


class UnacceptableProtocol(ConnectRefused):
    code = 1


class IdentifierRejected(ConnectRefused):
    code = 2


class ServerUnavailable(ConnectRefused):
    code = 3


class BadCredentials(ConnectRefused):
    code = 4


class NotAuthorized(ConnectRefused):
    code = 5


class Backpressure(MQTTError):
    """The QoS 1 in-flight window is full (non-blocking publish)."""


class DeadConnection(MQTTError):
    """No traffic from the broker within 1.5 x keepalive."""


_REFUSED = (ConnectRefused, UnacceptableProtocol, IdentifierRejected, ServerUnavailable,
            BadCredentials, NotAuthorized)


def connack_error(rc):
    """The typed error for CONNACK return code `rc` (None for 0 = accepted)."""
    if rc == 0:
        return None
    if 0 < rc < 6:
        return _REFUSED[rc]()
    return ConnectRefused(rc)


# ---------------------------------------------------------------- encoders
def encode_remaining_length(n):
    if n < 0 or n > MAX_REMAINING:
        raise ValueError("remaining length")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return out


def _b(s):
    if isinstance(s, str):
        return s.encode()
    return bytes(s)


def _u16s(b):
    n = len(b)
    if n > 65535:
        raise ValueError("string too long")
    return bytes((n >> 8, n & 0xFF)) + b


def _check_topic(t, wild):
    if not t:
        raise ValueError("empty topic")
    if not wild and (b"+" in t or b"#" in t):
        raise ValueError("wildcard in topic name")


def connect_packet(client_id, clean_session=True, keepalive=60, user=None, password=None,
                   will_topic=None, will_payload=b"", will_qos=0, will_retain=True):
    if keepalive < 0 or keepalive > 65535:
        raise ValueError("keepalive")
    flags = 2 if clean_session else 0
    body = bytearray(b"\x00\x04MQTT\x04\x00")
    body += bytes((keepalive >> 8, keepalive & 0xFF))
    body += _u16s(_b(client_id))
    if will_topic:
        if will_qos not in (0, 1, 2):
            raise ValueError("will qos")
        wt = _b(will_topic)
        _check_topic(wt, False)
        flags |= 4 | (will_qos << 3) | (0x20 if will_retain else 0)
        body += _u16s(wt)
        body += _u16s(_b(will_payload))
    if user is not None:
        flags |= 0x80
        body += _u16s(_b(user))
    if password is not None:
        if user is None:
            raise ValueError("password needs a user name")
        flags |= 0x40
        body += _u16s(_b(password))
    body[7] = flags
    return bytes((0x10,)) + encode_remaining_length(len(body)) + body


def publish_packet(topic, payload, qos=0, retain=False, pid=0, dup=False):
    """A PUBLISH packet as a bytearray (the DUP bit is byte 0, mask 0x08)."""
    t = _b(topic)
    _check_topic(t, False)
    p = _b(payload)
    if qos not in (0, 1, 2):
        raise ValueError("qos")
    if qos and not 0 < pid < 65536:
        raise ValueError("packet id")
    n = 2 + len(t) + (2 if qos else 0) + len(p)
    rl = encode_remaining_length(n)
    out = bytearray(1 + len(rl) + n)
    out[0] = 0x30 | (8 if dup else 0) | (qos << 1) | (1 if retain else 0)
    i = 1 + len(rl)
    out[1:i] = rl
    out[i] = len(t) >> 8
    out[i + 1] = len(t) & 0xFF
    i += 2
    out[i:i + len(t)] = t
    i += len(t)
    if qos:
        out[i] = pid >> 8
        out[i + 1] = pid & 0xFF
        i += 2
    out[i:] = p
    return out


def _ack(b0, pid):
    return bytes((b0, 2, pid >> 8, pid & 0xFF))


def puback_packet(pid):
    return _ack(0x40, pid)


def pubrec_packet(pid):
    return _ack(0x50, pid)


def pubcomp_packet(pid):
    return _ack(0x70, pid)


def pingreq_packet():
    return _PINGREQ


def disconnect_packet():
    return _DISCONNECT


def subscribe_packet(pid, filters):
    """filters: sequence of (topic_filter, qos)."""
    if not filters:
        raise ValueError("no filters")
    body = bytearray((pid >> 8, pid & 0xFF))
    for t, q in filters:
        if q not in (0, 1, 2):
            raise ValueError("qos")
        t = _b(t)
        _check_topic(t, True)
        body += _u16s(t)
        body.append(q)
    return bytes((0x82,)) + encode_remaining_length(len(body)) + body


def unsubscribe_packet(pid, topics):
    if not topics:
        raise ValueError("no filters")
    body = bytearray((pid >> 8, pid & 0xFF))
    for t in topics:
        t = _b(t)
        _check_topic(t, True)
        body += _u16s(t)
    return bytes((0xA2,)) + encode_remaining_length(len(body)) + body


# ---------------------------------------------------------------- decoders
def decode_remaining_length(buf, off=1):
    """(value, offset after it), or None if buf ends first. Raises MalformedPacket."""
    n = 0
    shift = 0
    for i in range(4):
        if off + i >= len(buf):
            return None
        c = buf[off + i]
        n |= (c & 0x7F) << shift
        if not c & 0x80:
            return n, off + i + 1
        shift += 7
    raise MalformedPacket("remaining length longer than 4 bytes")


def check_header(b0, n, max_packet=8192):
    """Validate a fixed header (first byte, remaining length) of a server->client packet."""
    t = b0 >> 4
    f = b0 & 0x0F
    if t == PUBLISH:
        if (f >> 1) & 3 == 3:
            raise MalformedPacket("PUBLISH qos 3")
    elif t in (CONNACK, PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK, PINGRESP):
        if f:
            raise MalformedPacket("bad flags")
    elif t == PUBREL:
        if f != 2:
            raise MalformedPacket("bad flags")
    else:
        raise UnknownPacket("packet type %d" % t)
    if n > max_packet:
        raise PacketTooLarge("remaining length %d > %d" % (n, max_packet))


def _pid(body, i):
    p = (body[i] << 8) | body[i + 1]
    if not p:
        raise MalformedPacket("packet id 0")
    return p


def decode_body(b0, body):
    """Decode one packet (fixed header already checked) into a tuple:
    (CONNACK, session_present, rc) | (PUBLISH, topic, payload, qos, retain, dup, pid) |
    (PUBACK|PUBREC|PUBREL|PUBCOMP|UNSUBACK, pid) | (SUBACK, pid, codes) | (PINGRESP,)."""
    t = b0 >> 4
    n = len(body)
    if t == PUBLISH:
        qos = (b0 >> 1) & 3
        if n < 2:
            raise MalformedPacket("truncated PUBLISH")
        tl = (body[0] << 8) | body[1]
        i = 2 + tl
        if tl == 0 or i + (2 if qos else 0) > n:
            raise MalformedPacket("bad PUBLISH topic")
        try:
            topic = str(bytes(body[2:i]), "utf-8")
        except Exception:
            raise MalformedPacket("topic not UTF-8")
        if "+" in topic or "#" in topic or "\x00" in topic:
            raise MalformedPacket("wildcard in topic name")
        pid = 0
        if qos:
            pid = _pid(body, i)
            i += 2
        return (PUBLISH, topic, bytes(body[i:]), qos, b0 & 1, (b0 >> 3) & 1, pid)
    if t == CONNACK:
        if n != 2 or body[0] & 0xFE:
            raise MalformedPacket("bad CONNACK")
        return (CONNACK, body[0] & 1, body[1])
    if t == PINGRESP:
        if n:
            raise MalformedPacket("bad PINGRESP")
        return (PINGRESP,)
    if t == SUBACK:
        if n < 3:
            raise MalformedPacket("bad SUBACK")
        codes = bytes(body[2:])
        for c in codes:
            if c > 2 and c != 0x80:
                raise MalformedPacket("bad SUBACK code")
        return (SUBACK, _pid(body, 0), codes)
    if t in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK):
        if n != 2:
            raise MalformedPacket("bad ack length")
        return (t, _pid(body, 0))
    raise UnknownPacket("packet type %d" % t)


def decode(buf, max_packet=8192):
    """Decode the first packet in `buf`: (packet tuple, bytes consumed), or None if incomplete."""
    if not buf:
        return None
    r = decode_remaining_length(buf, 1)
    if r is None:
        return None
    n, i = r
    check_header(buf[0], n, max_packet)
    if len(buf) < i + n:
        return None
    return decode_body(buf[0], memoryview(buf)[i:i + n]), i + n


# ---------------------------------------------------------------- asyncio driver
def _call(fn, *args):
    """Call a hook; returns an awaitable if the hook is async, else None."""
    r = fn(*args)
    if r is not None and hasattr(r, "send"):
        return r
    return None


def _set_nodelay(w):
    s = getattr(w, "s", None)  # MicroPython Stream
    try:
        if s is None:
            s = w.get_extra_info("socket")  # CPython
        s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY (constants missing on some ports)
        return True
    except Exception:
        return False


_STATS = ("connects", "conn_fail", "refused", "disconnects", "malformed", "oversize", "dead",
          "rx", "tx", "pub_rx", "pub_tx", "retransmits", "backpressure", "dropped",
          "pings", "qos2_rejected", "suback_fail", "unexpected", "hook_errors")


class MQTTClient:
    """Node MQTT client. See connect()/start(), publish(), subscribe(), unsubscribe(),
    flush(), wait_connected(), disconnect(); hooks on_message(topic, payload, retained),
    on_connect(session_present), on_disconnect(error_or_None); counters in .stats."""

    def __init__(self, client_id, server="127.0.0.1", port=1883, user=None, password=None,
                 keepalive=60, clean_session=True, will=None, on_message=None,
                 on_connect=None, on_disconnect=None, max_packet=8192, max_out=8192,
                 discard_max=65536, max_inflight=8, max_subs=16, rx_buf=256,
                 backoff_min=0.5, backoff_max=30, connect_timeout=5, ack_timeout=5,
                 retry=0, nodelay=True):
        self.server = server
        self.port = port
        self.keepalive = keepalive
        self.clean_session = clean_session
        self.on_message = on_message
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.max_packet = max_packet
        self.max_out = max_out
        self.discard_max = discard_max
        self.max_inflight = max_inflight
        self.max_subs = max_subs
        self.backoff_min = int(backoff_min * 1000)
        self.backoff_max = int(backoff_max * 1000)
        self.connect_timeout = connect_timeout
        self.ack_timeout = ack_timeout
        self.retry = int(retry * 1000)
        self.nodelay = nodelay
        wt, wp, wq = will if will else (None, b"", 0)
        self._cpkt = connect_packet(client_id, clean_session, keepalive, user, password,
                                    wt, wp, wq, True)
        self.stats = {k: 0 for k in _STATS}
        self.last_error = None
        self.session_present = False
        self._rx = bytearray(max(rx_buf, 8))
        self._rxmv = memoryview(self._rx)
        self._b1 = self._rxmv[:1]
        self._mp = hasattr(asyncio.StreamReader, "readinto")
        # [pid, packet bytearray, connection gen it was sent on (0 not yet, -1 acked), ms sent]
        self._inflight = []
        self._subs = {}      # filter -> qos, restored on every reconnect
        self._pending = {}   # pid -> [Event or None, result]
        self._pid = 0
        self._gen = 0
        self._r = self._w = None
        self._lock = asyncio.Lock()
        self._slot = asyncio.Event()
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._tasks = ()
        self._task = None
        self._closing = False
        self._since = self._last_rx = self._last_tx = 0
        self._ping_out = False
        self._err = None

    # -------------------------------------------------------------- public API
    @property
    def connected(self):
        return self._w is not None

    @property
    def inflight(self):
        return len(self._inflight)

    async def connect(self, timeout=None):
        """One connection attempt (raises ConnectRefused subclasses, OSError, MalformedPacket,
        asyncio.TimeoutError); on success the supervisor keeps the session alive."""
        self._closing = False
        await self._open(timeout)
        self.start()

    def start(self):
        """Run the supervisor (connects/reconnects forever); returns its task."""
        self._closing = False
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        return self._task

    async def wait_connected(self, timeout=None):
        if timeout is None:
            await self._up.wait()
        else:
            await asyncio.wait_for(self._up.wait(), timeout)

    async def disconnect(self):
        """Clean DISCONNECT (the broker discards the will) and stop reconnecting."""
        self._closing = True
        if self._w is not None:
            await self._send(_DISCONNECT)
        self._fail(None)
        t = self._task
        self._task = None
        if t is not None:
            try:
                await asyncio.wait_for(t, 2)
            except Exception:
                pass
        else:
            await self._teardown()

    async def publish(self, topic, payload, qos=0, retain=False, block=True):
        """Send a PUBLISH. QoS 1 takes a slot in the in-flight window until PUBACK (kept and
        retransmitted with DUP across reconnects); a full window waits (block=True) or raises
        Backpressure. QoS 0 while disconnected is dropped (stats['dropped']). Returns the pid
        (0 for QoS 0)."""
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1")
        if qos == 0:
            pkt = publish_packet(topic, payload, 0, retain)
            self._check_out(pkt)
            if not await self._send(pkt):
                self.stats["dropped"] += 1
            else:
                self.stats["pub_tx"] += 1
            return 0
        if len(_b(topic)) + len(_b(payload)) + 9 > self.max_out:
            raise ValueError("packet too large")
        while len(self._inflight) >= self.max_inflight:
            if not block:
                self.stats["backpressure"] += 1
                raise Backpressure("in-flight window full")
            self._slot.clear()
            await self._slot.wait()
        pid = self._new_pid()
        e = [pid, publish_packet(topic, payload, 1, retain, pid), 0, None]
        self._inflight.append(e)
        await self._send_inflight(e)
        return pid

    async def flush(self, timeout=None):
        """Wait until every QoS 1 publish is acknowledged."""
        async def _w():
            while self._inflight:
                self._slot.clear()
                await self._slot.wait()
        if timeout is None:
            await _w()
        else:
            await asyncio.wait_for(_w(), timeout)

    async def subscribe(self, filters, qos=0):
        """Subscribe one filter (str) or several (list of str or (str, qos)). The filters are
        restored on every reconnect. Returns the SUBACK codes (0x80 = refused, such filters are
        forgotten), or None when not connected (sent on connect)."""
        fl = self._norm(filters, qos)
        new = [t for t, q in fl if t not in self._subs]
        if len(self._subs) + len(new) > self.max_subs:
            raise ValueError("too many subscriptions")
        for t, q in fl:
            self._subs[t] = q
        if self._w is None:
            return None
        codes = await self._request(subscribe_packet, fl)
        if codes is None:
            return None
        for (t, q), c in zip(fl, codes):
            if c == 0x80:
                self.stats["suback_fail"] += 1
                self._subs.pop(t, None)
        return list(codes)

    async def unsubscribe(self, filters):
        fl = [t for t, q in self._norm(filters, 0)]
        for t in fl:
            self._subs.pop(t, None)
        if self._w is None:
            return False
        return await self._request(unsubscribe_packet, fl) is not None

    # -------------------------------------------------------------- internals
    def _norm(self, filters, qos):
        if isinstance(filters, (str, bytes)):
            filters = [filters]
        out = []
        for f in filters:
            if isinstance(f, (tuple, list)):
                t, q = f
            else:
                t, q = f, qos
            if isinstance(t, bytes):
                t = t.decode()
            if q not in (0, 1):
                raise ValueError("subscribe qos must be 0 or 1")
            out.append((t, q))
        if not out:
            raise ValueError("no filters")
        return out

    def _check_out(self, pkt):
        if len(pkt) > self.max_out:
            raise ValueError("packet too large")

    def _new_pid(self):
        while True:
            self._pid = self._pid % 65535 + 1
            p = self._pid
            if p in self._pending:
                continue
            for e in self._inflight:
                if e[0] == p:
                    break
            else:
                return p

    async def _request(self, enc, arg):
        pid = self._new_pid()
        pkt = enc(pid, arg)
        self._check_out(pkt)
        ev = asyncio.Event()
        slot = [ev, None]
        self._pending[pid] = slot
        try:
            if not await self._send(pkt):
                return None
            await asyncio.wait_for(ev.wait(), self.ack_timeout)
            return slot[1]
        except asyncio.TimeoutError:
            return None
        finally:
            self._pending.pop(pid, None)

    async def _write(self, pkt):
        w = self._w
        w.write(pkt)
        await w.drain()
        self._last_tx = ticks_ms()
        self.stats["tx"] += 1

    async def _send(self, pkt):
        """Write one packet; False (and the connection is failed) if it could not be sent."""
        gen = self._gen
        lock = self._lock
        if self._w is None:
            return False
        async with lock:
            if self._w is None or gen != self._gen:
                return False
            try:
                await self._write(pkt)
                return True
            except Exception as e:
                self._fail(e, gen)
                return False

    async def _send_inflight(self, e):
        gen = self._gen
        if self._w is None:
            return
        async with self._lock:
            if self._w is None or gen != self._gen or e[2] == gen or e[2] < 0:
                return
            try:
                await self._write_entry(e)
            except Exception as x:
                self._fail(x, gen)

    async def _write_entry(self, e):
        if e[3] is not None:
            e[1][0] |= 8  # DUP: it may have reached the broker before
            self.stats["retransmits"] += 1
        else:
            self.stats["pub_tx"] += 1
        e[2] = self._gen
        e[3] = ticks_ms()
        await self._write(e[1])

    async def _fill(self, r, mv):
        if self._mp:
            n = 0
            ln = len(mv)
            while n < ln:
                k = await r.readinto(mv[n:] if n else mv)
                if k is None:
                    continue
                if not k:
                    raise EOFError
                n += k
        else:
            mv[:] = await r.readexactly(len(mv))

    async def _read_packet(self, r):
        b1 = self._b1
        rx = self._rx
        await self._fill(r, b1)
        b0 = rx[0]
        n = 0
        shift = 0
        for _ in range(4):
            await self._fill(r, b1)
            c = rx[0]
            n |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                break
        else:
            raise MalformedPacket("remaining length longer than 4 bytes")
        try:
            check_header(b0, n, self.max_packet)
        except PacketTooLarge:
            self.stats["oversize"] += 1
            if b0 >> 4 != PUBLISH or n > self.discard_max:
                raise
            return await self._discard(r, b0, n)
        if n <= len(rx):
            mv = self._rxmv[:n]
        else:
            mv = memoryview(bytearray(n))
        await self._fill(r, mv)
        return decode_body(b0, mv)

    async def _discard(self, r, b0, n):
        """Read and drop an oversize PUBLISH; returns a packet tuple the handler acks."""
        qos = (b0 >> 1) & 3
        rx = self._rx
        first = min(n, len(rx))
        await self._fill(r, self._rxmv[:first])
        tl = (rx[0] << 8) | rx[1]
        pid = 0
        if qos:
            if tl + 4 > first:
                raise PacketTooLarge("oversize PUBLISH with a long topic")
            pid = (rx[2 + tl] << 8) | rx[3 + tl]
        left = n - first
        while left:
            k = min(left, len(rx))
            await self._fill(r, self._rxmv[:k])
            left -= k
        return (PUBLISH, None, None, qos, 0, 0, pid)

    async def _open(self, timeout=None):
        t = timeout or self.connect_timeout
        r, w = await asyncio.wait_for(asyncio.open_connection(self.server, self.port), t)
        try:
            if self.nodelay:
                _set_nodelay(w)
            w.write(self._cpkt)
            await asyncio.wait_for(w.drain(), t)
            pkt = await asyncio.wait_for(self._read_packet(r), t)
            if pkt[0] != CONNACK:
                raise MalformedPacket("expected CONNACK")
            err = connack_error(pkt[2])
            if err:
                self.stats["refused"] += 1
                raise err
        except BaseException:
            await self._close_streams(w)
            raise
        # connected: new generation, fresh lock (a write stuck on the old socket cannot block us)
        self._gen += 1
        gen = self._gen
        self.session_present = bool(pkt[1])
        self._r, self._w = r, w
        self._lock = asyncio.Lock()
        self._down = asyncio.Event()
        self._since = self._last_rx = self._last_tx = ticks_ms()
        self._ping_out = False
        self.stats["connects"] += 1
        self._tasks = (asyncio.create_task(self._reader(r, gen)),
                       asyncio.create_task(self._keeper(gen)))
        await self._restore(gen)
        if self._w is not None and gen == self._gen:
            self._up.set()
            self._hook(self.on_connect, self.session_present)

    async def _restore(self, gen):
        """Under the write lock: resubscribe everything, then retransmit unacked QoS 1."""
        async with self._lock:
            try:
                fl = list(self._subs.items())
                while fl:
                    chunk, fl = fl[:8], fl[8:]
                    pid = self._new_pid()
                    self._pending[pid] = [None, None]
                    await self._write(subscribe_packet(pid, chunk))
                for e in list(self._inflight):
                    if e[2] >= 0 and e[2] != gen:
                        await self._write_entry(e)
            except Exception as x:
                self._fail(x, gen)

    def _hook(self, fn, *args):
        if fn is None:
            return
        try:
            aw = _call(fn, *args)
            if aw is not None:
                asyncio.create_task(self._ahook(aw))
        except Exception as e:
            self.stats["hook_errors"] += 1
            self.last_error = e

    async def _ahook(self, aw):
        try:
            await aw
        except Exception as e:
            self.stats["hook_errors"] += 1
            self.last_error = e

    def _fail(self, err, gen=None):
        """Mark the current connection dead (once); the supervisor tears it down."""
        if gen is not None and gen != self._gen:
            return
        if self._down.is_set():
            return
        if err is not None:
            self.last_error = err
            if isinstance(err, MalformedPacket):
                self.stats["malformed"] += 1
            elif isinstance(err, DeadConnection):
                self.stats["dead"] += 1
        self._err = err
        self._up.clear()
        self._down.set()

    async def _reader(self, r, gen):
        try:
            while True:
                pkt = await self._read_packet(r)
                self._last_rx = ticks_ms()
                self._ping_out = False
                self.stats["rx"] += 1
                await self._handle(pkt)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._fail(e, gen)

    async def _handle(self, pkt):
        t = pkt[0]
        if t == PUBLISH:
            qos = pkt[3]
            pid = pkt[6]
            if qos == 2:
                # we never subscribe at QoS 2: drop it, but complete the handshake so the
                # broker does not redeliver it forever
                self.stats["qos2_rejected"] += 1
                await self._send(pubrec_packet(pid))
                return
            if pkt[1] is not None:
                self.stats["pub_rx"] += 1
                if self.on_message is not None:
                    try:
                        aw = _call(self.on_message, pkt[1], pkt[2], bool(pkt[4]))
                        if aw is not None:
                            await aw
                    except Exception as e:
                        self.stats["hook_errors"] += 1
                        self.last_error = e
            if qos:
                await self._send(puback_packet(pid))
        elif t == PUBACK:
            for i, e in enumerate(self._inflight):
                if e[0] == pkt[1]:
                    e[2] = -1
                    self._inflight.pop(i)
                    self._slot.set()
                    return
            self.stats["unexpected"] += 1
        elif t == SUBACK or t == UNSUBACK:
            slot = self._pending.get(pkt[1])
            if slot is None:
                self.stats["unexpected"] += 1
                return
            res = pkt[2] if t == SUBACK else b""
            if slot[0] is None:  # a restore SUBSCRIBE
                self._pending.pop(pkt[1], None)
                for c in res:
                    if c == 0x80:
                        self.stats["suback_fail"] += 1
            else:
                slot[1] = res
                slot[0].set()
        elif t == PINGRESP:
            pass
        elif t == PUBREL:
            await self._send(pubcomp_packet(pkt[1]))
        elif t == CONNACK:
            raise MalformedPacket("unexpected CONNACK")
        else:  # PUBREC / PUBCOMP: we never publish at QoS 2
            self.stats["unexpected"] += 1

    async def _keeper(self, gen):
        ka = self.keepalive * 1000
        step = 1000
        if ka:
            step = max(20, min(1000, ka // 4))
        if self.retry:
            step = min(step, max(20, self.retry // 2))
        while gen == self._gen and not self._down.is_set():
            await _sleep_ms(step)
            now = ticks_ms()
            if ka:
                idle_rx = ticks_diff(now, self._last_rx)
                if idle_rx > ka * 3 // 2:
                    self._fail(DeadConnection("no traffic for %d ms" % idle_rx), gen)
                    return
                if ticks_diff(now, self._last_tx) >= ka or (idle_rx >= ka and not self._ping_out):
                    self._ping_out = True
                    self.stats["pings"] += 1
                    await self._send(_PINGREQ)
            if self.retry:
                for e in list(self._inflight):
                    if e[2] == gen and ticks_diff(now, e[3]) >= self.retry:
                        e[2] = 0  # resend (with DUP) on this connection
                        await self._send_inflight(e)

    async def _close_streams(self, w):
        try:
            w.close()
            await asyncio.wait_for(w.wait_closed(), 1)
        except Exception:
            pass

    async def _teardown(self):
        tasks = self._tasks
        self._tasks = ()
        cur = asyncio.current_task()
        for t in tasks:
            if t is not cur:
                t.cancel()
        w = self._w
        self._r = self._w = None
        self._up.clear()
        for slot in self._pending.values():
            if slot[0] is not None:
                slot[0].set()  # waiters see result None
        self._pending = {}
        if w is not None:
            await self._close_streams(w)

    async def _run(self):
        delay = self.backoff_min
        while not self._closing:
            if self._w is None:
                try:
                    await self._open()
                except Exception as e:
                    self.stats["conn_fail"] += 1
                    self.last_error = e
                    if isinstance(e, MalformedPacket):
                        self.stats["malformed"] += 1
                    if self._closing:
                        break
                    await _sleep_ms(delay // 2 + (delay * getrandbits(8) >> 9))
                    delay = min(delay * 2, self.backoff_max)
                    continue
                if self._closing:
                    break
            await self._down.wait()
            err = self._err
            up = ticks_diff(ticks_ms(), self._since)
            await self._teardown()
            self.stats["disconnects"] += 1
            self._hook(self.on_disconnect, err)
            if self._closing:
                break
            if up >= 1000:
                delay = self.backoff_min
            await _sleep_ms(delay // 2 + (delay * getrandbits(8) >> 9))
            delay = min(delay * 2, self.backoff_max)
        if self._w is not None:
            await self._teardown()

