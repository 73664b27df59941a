"""Compact CBOR (RFC 8949) codec, byte-compatible with cbor2, for both interpreters.

Subset: int (-2**64 .. 2**64-1), bytes/bytearray, str, list/tuple, dict, bool, None, float,
all with definite lengths. No tags, no simple values other than false/true/null, no indefinite
lengths (cbor2 never writes them): a node needs nothing else.
`dumps(obj, canonical=True)` equals `cbor2.dumps(obj, canonical=True)`: map keys sorted by
(length of encoded key, encoded key bytes) and the smallest float width that keeps the value.
NaN and +-inf are always the 3-byte half forms, in both modes, as cbor2 writes them.
`loads` rejects anything else with a CborError (a DecodeError), never a bare
struct/Index/Unicode/Recursion error.

Written for a node's small heap (importing cbor.mpy + frame.mpy costs ~7 KB on the unix port):
few functions and classes, one decoding error class whose message is the reason.
"""
import struct

from .errors import DecodeError, NetedgeError

MAX_DEPTH = 16    # nesting of arrays/maps; bounds recursion on a node's small C stack
MAX_ITEMS = 1024  # decoded items per call; a 1024-entry list is ~8 KB of node heap


# Every CBOR decoding error is a CborError; its message says why (docs/PROTOCOL.md §5):
# "truncated", "trailing", "reserved", "indef", "utf-8", "dup key", "tag", "simple", "map key",
# "depth", "items", "not bytes", or the name of an unexpected Python error.
# CborEncodeError: a value outside the subset ("int", "str", "depth" or the type's name).
# (type() with one shared empty namespace: a class statement costs a node ~50 bytes more.
# The namespace is shared on MicroPython: never set attributes on these classes.)
_ns = {}
CborError = type("CborError", (DecodeError,), _ns)
CborEncodeError = type("CborEncodeError", (NetedgeError,), _ns)
del _ns


# ---- encoding ----

def head(t, n):
    """The shortest head of major type `t` with argument 0 <= n < 2**64 (frame.py uses it)."""
    t <<= 5
    if n < 24:
        return bytes((t | n,))
    k = 0
    while n >> (8 << k):  # k = 0..3: 1, 2, 4 or 8 argument bytes
        k += 1
    return bytes((t | 24 + k,)) + n.to_bytes(1 << k, "big")


def dumps(v, canonical=False, *r):
    """CBOR bytes of `v`; CborEncodeError outside the subset. (r, in recursive calls only: the
    output bytearray and the depth; dumps then appends to it and returns None.)"""
    out, depth = r or (bytearray(), 0)
    t = type(v)
    if t is int:  # not bool: type(True) is bool on both interpreters
        mt = 0
        if v < 0:
            mt, v = 1, ~v  # -1 - v
        if v >> 64:
            raise CborEncodeError("int")
        out += head(mt, v)
    elif v is None or t is bool:
        out.append(0xF6 if v is None else 0xF4 + v)
    elif t is str or t is bytes or t is bytearray:
        if t is str:
            try:
                v = v.encode()
            except UnicodeError:  # lone surrogates (CPython)
                raise CborEncodeError("str")
        out += head(2 + (t is str), len(v))
        out += v
    elif t is float:
        if v != v:
            out += b"\xf9\x7e\x00"  # cbor2's one NaN, whatever its sign/payload
        else:
            # The smallest exact width (canonical) or a double; +-inf (v - v is nan) is always
            # a half. CPython's struct raises OverflowError beyond a width, MicroPython's gives
            # inf or garbage: either way the round trip fails and the next width is tried.
            for i in range(0 if canonical or v - v else 2, 3):
                f = ">" + "efd"[i]
                try:
                    b = struct.pack(f, v)
                except OverflowError:
                    continue
                if struct.unpack(f, b)[0] == v:
                    out.append(0xF9 + i)
                    out += b
                    break
    elif t is list or t is tuple or t is dict:
        if depth > 63:  # a cycle, or nesting no decoder would accept
            raise CborEncodeError("depth")
        depth += 1
        out += head(4 + (t is dict), len(v))
        if t is dict:
            # canonical: sorted by (length, bytes) of the encoded key. Only keys with equal
            # bytes tie (NaN keys): their comparison is harmless and cannot change the output
            kv = []
            for k in v:
                b = bytearray()
                dumps(k, canonical, b, depth)
                kv.append((len(b), b, k))
            if canonical:
                kv.sort()
            for _, b, k in kv:
                out += b
                dumps(v[k], canonical, out, depth)
        else:
            for x in v:
                dumps(x, canonical, out, depth)
    else:
        raise CborEncodeError(t.__name__)
    if not r:
        return bytes(out)


# ---- decoding ----

def loads(data, max_depth=MAX_DEPTH, max_items=MAX_ITEMS):
    """Decode exactly one item filling `data`; raise CborError otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CborError("not bytes")
    d = bytes(data)
    i = 0  # offset in d
    left = max_items  # items still allowed
    # (nested functions: no module globals, and the state lives in the closure)

    def item(depth, key):
        nonlocal i, left
        left -= 1
        if left < 0:
            raise CborError("items")
        ib = d[i]  # IndexError at the end: "truncated" (see below)
        i += 1
        mt = ib >> 5
        n = ib & 31
        if n > 27:  # 28..30 reserved; 31 indefinite length or break: neither in the subset
            raise CborError("reserved" if n < 31 else "indef")
        if n > 23:
            b = d[i:i + (1 << n - 24)]
            i += len(b)
            if len(b) != 1 << n - 24:
                raise CborError("truncated")
            if ib > 0xF8:
                return struct.unpack(">" + "efd"[ib - 0xF9], b)[0]
            n = int.from_bytes(b, "big")
        if mt < 2:
            return n ^ -mt  # mt 1: -1 - n
        if mt == 6:
            raise CborError("tag")
        if mt == 7:
            if ib == 0xF6:
                return None
            if 0xF3 < ib < 0xF6:
                return ib == 0xF5
            raise CborError("simple")  # undefined, simple values
        if mt < 4:
            if n > len(d) - i:
                raise CborError("truncated")
            b = d[i:i + n]
            i += n
            if mt == 2:
                return b
            try:
                t = str(b, "utf-8")
            except UnicodeError:
                t = ""  # fails the length check below
            if len(t) != len(b):
                # MicroPython checks only the structure of UTF-8: refuse overlong forms,
                # surrogates and code points > U+10FFFF too (strict CPython never gets here)
                n = 0
                for c in t:
                    c = ord(c)
                    if 0xD7FF < c < 0xE000 or c > 0x10FFFF:
                        n = -1
                        break
                    n += 1 + (c > 0x7F) + (c > 0x7FF) + (c > 0xFFFF)
                if n != len(b):
                    raise CborError("utf-8")
            return t
        if depth < 1:
            raise CborError("depth")
        if mt == 5 and key:
            raise CborError("map key")
        # guard a declared count before allocating: an item takes at least a byte
        if n * (mt - 3) > len(d) - i:
            raise CborError("truncated")
        if n * (mt - 3) > left:
            raise CborError("items")
        o = {} if mt == 5 else []
        while n:
            k = item(depth - 1, key or mt == 5)
            if mt == 4:
                o.append(k)
            elif k in o:  # note: 1, 1.0 and True are one Python key
                raise CborError("dup key")
            else:
                o[k] = item(depth - 1, 0)
            n -= 1
        return tuple(o) if key and mt == 4 else o  # an array as map key must be hashable

    try:
        v = item(max_depth, 0)
    except IndexError:
        raise CborError("truncated")
    except (KeyError, TypeError, RuntimeError) as e:
        # belt and braces (no ValueError is possible: UnicodeError is handled above);
        # RecursionError is a RuntimeError
        raise CborError(type(e).__name__)
    if i != len(d):
        raise CborError("trailing")
    return v
