"""Snapshot transfer: a snapshot in chunks sized for MQTT and the receiver's heap, and their
bounded-memory reassembly (docs/PROTOCOL.md, "Snapshot transfer").  Sans-I/O: chunk maps and
the caller's clock in, snapshot bytes out.

A chunk is a map, and travels as is as the body of one frame (every value a uint but "d"):
  "m" migration id u32  "o" origin u32       "i" index u32      "n" count 1..65535
  "t" total length u32  "c" chunk size u32   "h" H8(snapshot)   "d" data, 1..c bytes
Chunk i holds snapshot[i*c : i*c+c] and n == ceil(t/c): every chunk but the last is full.
The receiver allocates the whole snapshot (t bytes, checked against its cap first) at its first
chunk and copies each chunk into place: one snapshot-sized buffer, no concatenation.

Errors: one class, TransferError (a DecodeError); e.args[0] is the reason, e.args[1:] details
(docs/PROTOCOL.md).  One class per reason would cost a node ~250 bytes of heap each: twelve of
them weigh more than the rest of this module.
"""
from .errors import DecodeError
from .link import h8

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

MIN_CHUNK = const(256)    # chunk_size_for()'s floor
MAX_CHUNK = const(4096)   # its ceiling, and the wire cap on "c": a chunk frame stays < 4.2 KB
MAX_COUNT = const(65535)  # the wire cap on "n"
# Reassembler defaults, a node's (the gateway passes its own); private: each public global
# costs a node heap (read them on an instance: max_bytes, max_chunks, max_age)
_MAX_BYTES = const(16384)
_MAX_CHUNKS = const(64)
_MAX_AGE = const(60)       # idle time before expiry, in the unit of the caller's clock
_MAX_ORIGINS = const(16)   # origins whose latest migration id a Reassembler remembers

TransferError = type("TransferError", (DecodeError,), {})
_KEYS = "mointchd"  # the wire keys, in the order _check reads them


def _check(c, max_count, max_size):
    """Raise the first structural error of chunk map `c` (in the order of the docs)."""
    if type(c) is not dict or len(c) != 8:
        raise TransferError("malformed", "map")
    for k in _KEYS[:7]:
        v = c.get(k)
        if type(v) is not int or v < 0 or v >> (64 if k == "h" else 32):
            raise TransferError("malformed", k)
    d = c.get("d")
    if not isinstance(d, (bytes, bytearray)):
        raise TransferError("malformed", "d")
    n = c["n"]
    s = c["c"]
    i = c["i"]
    if not 0 < n <= max_count:
        raise TransferError("count", n)
    if i >= n:
        raise TransferError("index", i, n)
    k = len(d)
    if not k:
        raise TransferError("empty", i)
    if k > s or s > max_size:
        raise TransferError("oversize", k, s)
    if n != (c["t"] + s - 1) // s:
        raise TransferError("malformed", "n")
    if k != min(s, c["t"] - i * s):
        raise TransferError("malformed", "d")  # a short chunk


def chunk_from_obj(c):
    """Chunk map `c` (a decoded frame body, or one about to be sent) if it is valid on its own;
    else its TransferError.  A sender never sends what a receiver refuses."""
    _check(c, MAX_COUNT, MAX_CHUNK)
    return c


chunk_to_obj = chunk_from_obj  # a chunk is its wire map


def chunk_size_for(free_heap):
    """Chunk size for a receiver advertising `free_heap` bytes: 1/8 of it (about five copies of
    a chunk are alive while it is received), a multiple of 64, within MIN_CHUNK..MAX_CHUNK."""
    return max(MIN_CHUNK, min(MAX_CHUNK, free_heap // 8 & ~63))


def split(mid, origin, data, size):
    """The chunk maps of snapshot `data` (non-empty) for migration `mid` of `origin`."""
    return list(pieces(mid, origin, data, size))


def pieces(mid, origin, data, size):
    """split(), one chunk map at a time (a node sends each before it builds the next)."""
    t = len(data)
    n = max(1, (t + size - 1) // size) if size > 0 else 1
    h = h8(data)
    for i in range(n):
        c = {"m": mid, "o": origin, "i": i, "n": n, "t": t, "c": size, "h": h,
             "d": bytes(data[i * size:i * size + size])}
        if not i:  # the header is checked before n chunks are built
            _check(c, MAX_COUNT, MAX_CHUNK)
        yield c


class Reassembler:
    """One snapshot in progress at a time, in `max_bytes` (+ `max_chunks` flag bytes).

    feed(chunk, now) returns None until the snapshot is complete, then its bytes (a bytearray,
    not copied).  A refusal raises a TransferError and changes nothing, except the documented
    evictions: a newer migration of the origin in progress, an expired transfer, a bad digest.
    """

    def __init__(self, max_bytes=_MAX_BYTES, max_chunks=_MAX_CHUNKS, max_chunk=MAX_CHUNK,
                 max_age=_MAX_AGE):
        self.max_bytes = max_bytes
        self.max_chunks = max_chunks
        self.max_chunk = max_chunk
        self.max_age = max_age
        self.seen = {}  # origin -> [latest migration id, 1 once it completed]
        # the transfer in progress (buf is None when there is none)
        self.buf = self.got = self.origin = self.mid = self.hdr = None
        self.left = self.at = 0

    def cancel(self):
        """Drop the transfer in progress (True if there was one).  Its migration id stays the
        origin's latest: older ones stay refused; its own chunks may start it again."""
        had = self.buf is not None
        self.buf = self.got = None
        return had

    def expire(self, now):
        """Cancel the transfer in progress if it made no progress for more than max_age."""
        return self.buf is not None and now - self.at > self.max_age and self.cancel()

    def feed(self, c, now=0):
        _check(c, self.max_chunks, self.max_chunk)
        t = c["t"]
        if t > self.max_bytes:
            raise TransferError("too large", t, self.max_bytes)  # before any buffering
        self.expire(now)
        o, m, n, i, d = c["o"], c["m"], c["n"], c["i"], c["d"]
        if self.buf is not None and o != self.origin:
            raise TransferError("busy", o, self.origin)
        s = self.seen.get(o)
        if s and (m < s[0] or m == s[0] and s[1]):
            raise TransferError("stale", m, s[0])
        hdr = (n, t, c["c"], c["h"])
        if self.buf is None or m != self.mid:  # a new transfer (evicts an older one of o)
            self.cancel()
            try:
                self.buf = bytearray(t)
                self.got = bytearray(n)
            except MemoryError:
                self.cancel()
                raise TransferError("heap", t)
            self.origin, self.mid, self.hdr, self.left, self.at = o, m, hdr, n, now
            if s is None and len(self.seen) >= _MAX_ORIGINS:
                self.seen.popitem()  # (no other origin is in progress now)
            self.seen[o] = [m, 0]
        elif hdr != self.hdr:
            raise TransferError("mismatch", hdr, self.hdr)
        a = i * hdr[2]
        if self.got[i]:
            if self.buf[a:a + len(d)] != d:
                raise TransferError("duplicate", i)
            return None  # an identical duplicate: a QoS 1 redelivery
        self.buf[a:a + len(d)] = d
        self.got[i] = 1
        self.left -= 1
        self.at = now
        if self.left:
            return None
        b = self.buf
        self.cancel()
        if h8(b) != hdr[3]:
            raise TransferError("digest", m)  # forged or corrupt: refused, the state reset
        s = self.seen[o]
        s[1] = 1
        return b
