"""The frame envelope of every MQTT message (docs/PROTOCOL.md, "Frames").

A frame is the canonical CBOR array  [version, type, sender, counter, body]:
  version  uint, 1 (the only version; always element 0, so a later version may change the rest)
  type     uint, a code of TYPES below
  sender   text, 1..32 UTF-8 bytes: the node/gateway id
  counter  uint < 2**32, per sender, strictly increasing; what to do before it wraps
           (re-key, new sender id) is the sender's problem: receivers may treat a wrap as replay
  body     byte string holding the canonical CBOR of the body object. Wrapping it keeps its exact
           bytes through any re-encoding, so a later MAC/signature over the 5-element array bytes
           can be appended as a 6th element `auth` without touching any body.
v1 has no auth: a 6-element frame raises AuthNotSupported. The envelope must be canonical
(it is unique for its fields); the body is taken as received, not re-checked.
"""
from . import cbor
from .errors import DecodeError, NetedgeError

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

VERSION = const(1)
# 8 KB: a node holds the frame, its decoded body and the MQTT buffer at once in ~100 KB of heap.
MAX_FRAME = const(8192)
MAX_SENDER = const(32)
U32_MAX = const(0xFFFFFFFF)

# Type registry. A later issue adds a code here (constant + TYPES entry, next free number,
# never reuse one) or calls register_type() from its own module, and documents it in PROTOCOL.md.
INPUT = const(1)          # an input event to a daemon inbox
CHAIN_EVENT = const(2)    # link + payload emitted by a daemon
HEARTBEAT = const(3)
STATUS = const(4)
ERROR = const(5)
PROOF = const(6)
FORK_RECORD = const(7)
DISCONTINUITY = const(8)
CONTROL = const(9)        # a gateway command to one node (activate, stop, ...)

TYPES = {
    INPUT: "INPUT", CHAIN_EVENT: "CHAIN_EVENT", HEARTBEAT: "HEARTBEAT", STATUS: "STATUS",
    ERROR: "ERROR", PROOF: "PROOF", FORK_RECORD: "FORK_RECORD", DISCONTINUITY: "DISCONTINUITY",
    CONTROL: "CONTROL",
}


class FrameError(DecodeError):
    """Base of every frame error."""


class UnsupportedVersion(FrameError):
    pass


class UnknownFrameType(FrameError):
    pass


class MalformedFrame(FrameError):
    """Bad CBOR, wrong arity or field type/range, non-canonical envelope, or a bad body."""


class FrameTooLarge(FrameError):
    pass


class AuthNotSupported(FrameError):
    """A 6th element (auth) arrived; v1 cannot verify it, so the frame is refused."""


def register_type(code, name):
    """Add a frame type; re-registering the same pair is a no-op, a conflict an error."""
    if type(code) is not int or not 0 < code <= 0xFFFF or TYPES.get(code, name) != name:
        raise NetedgeError("frame type %r/%r conflicts or is out of range" % (code, name))
    TYPES[code] = name


class Frame:
    def __init__(self, version, ftype, sender, counter, body_bytes):
        self.version = version
        self.type = ftype
        self.sender = sender
        self.counter = counter
        self.body_bytes = body_bytes

    def body(self, max_depth=cbor.MAX_DEPTH, max_items=cbor.MAX_ITEMS):
        """Decode the body now (not cached: each call returns fresh objects)."""
        try:
            return cbor.loads(self.body_bytes, max_depth, max_items)
        except cbor.CborError as e:
            raise MalformedFrame("body: %s: %s" % (type(e).__name__, e))

    def type_name(self):
        return TYPES.get(self.type, "?")

    def __eq__(self, other):
        return (isinstance(other, Frame) and self.version == other.version
                and self.type == other.type and self.sender == other.sender
                and self.counter == other.counter and self.body_bytes == other.body_bytes)

    def __repr__(self):
        return "Frame(v%d %s from %r #%d, %d body bytes)" % (
            self.version, self.type_name(), self.sender, self.counter, len(self.body_bytes))


def _is_uint(v):
    return type(v) is int and v >= 0  # bool is excluded: not an int on MicroPython either


def _header(ftype, sender, counter, body_len):
    """Validated envelope bytes up to the body's contents (the body is appended as is,
    never copied through the encoder: 8 KB copies matter in a node's heap)."""
    if not _is_uint(ftype):
        raise MalformedFrame("frame type is not a uint")
    if ftype not in TYPES:
        raise UnknownFrameType("frame type %d" % ftype)
    if type(sender) is not str or not 0 < len(sender.encode("utf-8")) <= MAX_SENDER:
        raise MalformedFrame("sender must be text of 1..%d UTF-8 bytes" % MAX_SENDER)
    if not _is_uint(counter) or counter > U32_MAX:
        raise MalformedFrame("counter must be a u32")
    # 0x85: array(5), 0x01: version 1 -- both single bytes in canonical CBOR.
    return (b"\x85\x01" + cbor.dumps(ftype) + cbor.dumps(sender) + cbor.dumps(counter)
            + cbor.head(2, body_len))


def encode(ftype, sender, counter, body_obj):
    """Canonical frame bytes. Raises the decoder's typed errors for bad fields (so a node never
    sends what a peer would refuse) and CborEncodeError for a body outside the CBOR subset."""
    body = cbor.dumps(body_obj, True)
    hdr = _header(ftype, sender, counter, len(body))
    if len(hdr) + len(body) > MAX_FRAME:
        raise FrameTooLarge("%d bytes > %d" % (len(hdr) + len(body), MAX_FRAME))
    return hdr + body


def decode(data, max_size=MAX_FRAME):
    """Parse and validate one frame; raise a FrameError subclass on anything else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedFrame("expected bytes")
    if len(data) > max_size:
        raise FrameTooLarge("%d bytes > %d" % (len(data), max_size))
    try:
        # Small caps: a v1 envelope is one flat array (the body stays opaque bytes); the slack
        # lets a later version's envelope parse far enough to be refused by its version.
        a = cbor.loads(data, 4, 64)
    except cbor.CborError as e:
        raise MalformedFrame("%s: %s" % (type(e).__name__, e))
    if type(a) is not list or not a:
        raise MalformedFrame("not a non-empty array")
    if not _is_uint(a[0]):
        raise MalformedFrame("version is not a uint")
    if a[0] != VERSION:
        raise UnsupportedVersion("version %d" % a[0])
    if len(a) == 6:
        raise AuthNotSupported("authenticated frames need a later version")
    if len(a) != 5:
        raise MalformedFrame("%d elements, want 5" % len(a))
    body = a[4]
    if type(body) is not bytes:
        raise MalformedFrame("body is not a byte string")
    # Validates type, sender and counter. The body is the last item of `data` (loads checked
    # there is nothing after it), so an equal header proves the whole envelope canonical.
    hdr = _header(a[1], a[2], a[3], len(body))
    if len(hdr) + len(body) != len(data) or bytes(data[:len(hdr)]) != hdr:
        raise MalformedFrame("non-canonical encoding")
    return Frame(VERSION, a[1], a[2], a[3], body)
