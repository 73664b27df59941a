"""Compact CBOR (RFC 8949) codec, byte-compatible with cbor2, for both interpreters.

Subset: int (-2**64 .. 2**64-1), bytes/bytearray, str, list/tuple, dict, bool, None, float.
No tags, no simple values other than false/true/null: a node needs nothing else.
`dumps(obj, canonical=True)` equals `cbor2.dumps(obj, canonical=True)`: map keys sorted by
(length of encoded key, encoded key bytes) and the smallest float width that keeps the value.
NaN and +-inf are always the 3-byte half forms, in both modes, as cbor2 writes them.
`loads` rejects anything else with a CborError subclass (a DecodeError), never a bare
struct/Index/Unicode error.
"""
import struct

from .errors import DecodeError, NetedgeError

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

MAX_DEPTH = const(16)    # nesting of arrays/maps; bounds recursion on a node's small C stack
MAX_ITEMS = const(1024)  # decoded items per call; a 1024-entry list is ~8 KB of node heap
U64_MAX = 0xFFFFFFFFFFFFFFFF  # a bignum on MicroPython: not a const()
_F32_MAX = 3.4028234663852886e+38


class CborError(DecodeError):
    """Base of every CBOR decoding error."""


class CborTruncated(CborError):
    """Input ends early, or a declared length exceeds the bytes that remain."""


class CborTrailingBytes(CborError):
    """Bytes follow the top-level item."""


class CborMalformed(CborError):
    """Not well-formed: reserved additional info, stray break, bad chunk, invalid UTF-8, ..."""


class CborUnsupported(CborError):
    """Well-formed CBOR outside our subset: tags, undefined, simple values, map as map key."""


class CborLimitExceeded(CborError):
    """Nesting depth or item count beyond the caller's caps."""


class CborEncodeError(NetedgeError):
    """A value outside the subset (type, or int beyond 64 bits) or a cycle."""


# ---- encoding ----

def _head(out, mt, n):
    mt <<= 5
    if n < 24:
        out.append(mt | n)
    elif n < 0x100:
        out.append(mt | 24)
        out.append(n)
    elif n < 0x10000:
        out.append(mt | 25)
        out.extend(struct.pack(">H", n))
    elif n < 0x100000000:
        out.append(mt | 26)
        out.extend(struct.pack(">I", n))
    else:
        out.append(mt | 27)
        out.extend(struct.pack(">Q", n))


def _half(s):
    """The 2 half-float bytes equal to the single `s` (4 bytes BE), or None if not exact."""
    b = struct.unpack(">I", s)[0]
    sign = (b >> 16) & 0x8000
    e = (b >> 23) & 0xFF
    m = b & 0x7FFFFF
    if e == 0:  # zero; single subnormals are far below the half range
        return struct.pack(">H", sign) if m == 0 else None
    e -= 127
    if -14 <= e <= 15:  # half normal: the 13 low mantissa bits must be zero
        return None if m & 0x1FFF else struct.pack(">H", sign | (e + 15) << 10 | m >> 13)
    if -24 <= e < -14:  # half subnormal: value = hm * 2**-24
        m |= 0x800000
        sh = -1 - e
        return None if m & ((1 << sh) - 1) else struct.pack(">H", sign | m >> sh)
    return None


def _float(out, x, canonical):
    if x != x:
        out.extend(b"\xf9\x7e\x00")
    elif x - x != 0:  # inf - inf is nan; finite - itself is 0 (no math module needed)
        out.extend(b"\xf9\x7c\x00" if x > 0 else b"\xf9\xfc\x00")
    else:
        if canonical and -_F32_MAX <= x <= _F32_MAX:
            s = struct.pack(">f", x)
            if struct.unpack(">f", s)[0] == x:
                h = _half(s)
                if h is None:
                    out.append(0xFA)
                    out.extend(s)
                else:
                    out.append(0xF9)
                    out.extend(h)
                return
        out.append(0xFB)
        out.extend(struct.pack(">d", x))


def _enc(out, v, canonical, depth):
    t = type(v)
    if v is None:
        out.append(0xF6)
    elif t is bool:  # before int: on CPython bool is an int
        out.append(0xF5 if v else 0xF4)
    elif t is int:
        if 0 <= v <= U64_MAX:
            _head(out, 0, v)
        elif -U64_MAX - 1 <= v < 0:
            _head(out, 1, -1 - v)
        else:
            raise CborEncodeError("int beyond 64 bits")
    elif t is str:
        try:
            b = v.encode("utf-8")
        except UnicodeError:  # lone surrogates (CPython)
            raise CborEncodeError("str not encodable as UTF-8")
        _head(out, 3, len(b))
        out.extend(b)
    elif t is bytes or t is bytearray:
        _head(out, 2, len(v))
        out.extend(v)
    elif t is float:
        _float(out, v, canonical)
    else:
        if depth >= 64:  # a cycle, or nesting no decoder would accept
            raise CborEncodeError("nesting too deep")
        depth += 1
        if t is list or t is tuple:
            _head(out, 4, len(v))
            for x in v:
                _enc(out, x, canonical, depth)
        elif t is dict:
            _head(out, 5, len(v))
            if canonical:
                kv = []
                for k in v:
                    kb = bytearray()
                    _enc(kb, k, True, depth)
                    kv.append((kb, k))
                kv.sort(key=lambda p: (len(p[0]), p[0]))
                for kb, k in kv:
                    out.extend(kb)
                    _enc(out, v[k], True, depth)
            else:
                for k in v:
                    _enc(out, k, False, depth)
                    _enc(out, v[k], False, depth)
        else:
            raise CborEncodeError("cannot encode %s" % t.__name__)


def head(mt, n):
    """The bytes of a major type `mt` head with argument `n` (frame.py builds envelopes)."""
    out = bytearray()
    _head(out, mt, n)
    return bytes(out)


def dumps(obj, canonical=False):
    out = bytearray()
    _enc(out, obj, canonical, 0)
    return bytes(out)


# ---- decoding ----

def _check_utf8(b):
    """Strict RFC 3629 check. MicroPython's decoder accepts overlong forms, surrogates and
    code points above U+10FFFF; CPython's does not: check ourselves so both agree."""
    i, n = 0, len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        lo, hi = 0x80, 0xBF
        if 0xC2 <= c <= 0xDF:
            k = 1
        elif 0xE0 <= c <= 0xEF:
            k = 2
            if c == 0xE0:
                lo = 0xA0  # no overlong
            elif c == 0xED:
                hi = 0x9F  # no surrogates
        elif 0xF0 <= c <= 0xF4:
            k = 3
            if c == 0xF0:
                lo = 0x90
            elif c == 0xF4:
                hi = 0x8F  # <= U+10FFFF
        else:
            raise CborMalformed("invalid UTF-8")
        if i + k >= n or not lo <= b[i + 1] <= hi:
            raise CborMalformed("invalid UTF-8")
        for j in range(i + 2, i + k + 1):
            if not 0x80 <= b[j] <= 0xBF:
                raise CborMalformed("invalid UTF-8")
        i += k + 1


def _text(b):
    try:
        s = str(b, "utf-8")
    except UnicodeError:
        raise CborMalformed("invalid UTF-8")
    if len(s) != len(b):  # non-ASCII: validate strictly
        _check_utf8(b)
    return s


def _half_to_float(h):
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0:
        v = m * 2.0 ** -24
    elif e == 31:
        v = float("inf") if m == 0 else float("nan")
    else:
        v = (m + 1024) * 2.0 ** (e - 25)
    return -v if h & 0x8000 else v


class _Decoder:
    def __init__(self, b, max_depth, max_items):
        self.b = b
        self.i = 0
        self.n = len(b)
        self.max_depth = max_depth
        self.left = max_items  # items still allowed

    def take(self, k):
        i = self.i
        if k > self.n - i:
            raise CborTruncated("need %d bytes at offset %d" % (k, i))
        self.i = i + k
        return self.b[i:i + k]

    def arg(self, ai):
        if ai < 24:
            return ai
        if ai > 27:
            raise CborMalformed("reserved additional info %d" % ai)
        return int.from_bytes(self.take(1 << (ai - 24)), "big")

    def need(self, k):
        """Guard a declared count before allocating: each item takes at least one byte."""
        if k > self.n - self.i:
            raise CborTruncated("declared length exceeds input")
        if k > self.left:
            raise CborLimitExceeded("more than max_items items")

    def chunks(self, mt):
        """Indefinite-length string: definite chunks of the same major type until break."""
        parts = []
        while True:
            ib = self.take(1)[0]
            if ib == 0xFF:
                break
            if ib >> 5 != mt or ib & 31 == 31:
                raise CborMalformed("bad chunk in indefinite string")
            s = self.take(self.arg(ib & 31))
            parts.append(_text(s) if mt == 3 else s)
        return ("" if mt == 3 else b"").join(parts)

    def item(self, depth, key=False):
        self.left -= 1
        if self.left < 0:
            raise CborLimitExceeded("more than max_items items")
        ib = self.take(1)[0]
        mt = ib >> 5
        ai = ib & 31
        if mt == 7:
            return self.simple(ai)
        if ai == 31:
            if mt == 2 or mt == 3:
                return self.chunks(mt)
            if mt < 4 or mt > 5:
                raise CborMalformed("indefinite length on major type %d" % mt)
            n = -1
        else:
            n = self.arg(ai)
        if mt == 0:
            return n
        if mt == 1:
            return -1 - n
        if mt == 2:
            return self.take(n)
        if mt == 3:
            return _text(self.take(n))
        if mt == 6:
            raise CborUnsupported("tag %d" % n)
        if depth >= self.max_depth:
            raise CborLimitExceeded("nesting deeper than %d" % self.max_depth)
        depth += 1
        if mt == 4:
            out = []
            if n < 0:
                while not self.brk():
                    out.append(self.item(depth, key))
            else:
                self.need(n)
                for _ in range(n):
                    out.append(self.item(depth, key))
            return tuple(out) if key else out  # an array as map key must be hashable, as in cbor2
        if key:
            raise CborUnsupported("map as map key")
        d = {}
        if n >= 0:
            self.need(2 * n)
        while n != 0:
            if n < 0 and self.brk():
                break
            k = self.item(depth, True)
            if k in d:  # note: 1, 1.0 and True are one Python key
                raise CborMalformed("duplicate map key")
            d[k] = self.item(depth)
            n -= 1
        return d

    def brk(self):
        """Consume a break (0xff) if next; truncation is caught here for indefinite items."""
        if self.i >= self.n:
            raise CborTruncated("missing break")
        if self.b[self.i] == 0xFF:
            self.i += 1
            return True
        return False

    def simple(self, ai):
        if ai == 20:
            return False
        if ai == 21:
            return True
        if ai == 22:
            return None
        if ai == 25:
            return _half_to_float(int.from_bytes(self.take(2), "big"))
        if ai == 26:
            return struct.unpack(">f", self.take(4))[0]
        if ai == 27:
            return struct.unpack(">d", self.take(8))[0]
        if ai == 31:
            raise CborMalformed("unexpected break")
        if ai > 27:
            raise CborMalformed("reserved additional info %d" % ai)
        raise CborUnsupported("simple value / undefined")


_STRUCT_ERROR = getattr(struct, "error", ValueError)  # MicroPython raises ValueError


def loads(data, max_depth=MAX_DEPTH, max_items=MAX_ITEMS):
    """Decode exactly one item filling `data`; raise a CborError subclass otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CborMalformed("expected bytes")
    d = _Decoder(data if type(data) is bytes else bytes(data), max_depth, max_items)
    try:
        v = d.item(0)
    except CborError:
        raise
    except (IndexError, KeyError, TypeError, ValueError, RuntimeError, _STRUCT_ERROR) as e:
        # Belt and braces for invariant 5 (RuntimeError: recursion on a tiny stack).
        raise CborMalformed("undecodable: %s" % type(e).__name__)
    if d.i != d.n:
        raise CborTrailingBytes("%d bytes after the item" % (d.n - d.i))
    return v
