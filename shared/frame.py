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
Written for a small heap: every global, class and function costs a node heap bytes.
"""
from . import cbor

VERSION = 1
# 8 KB: a node holds the frame, its decoded body and the MQTT buffer at once in ~100 KB of heap.
MAX_FRAME = 8192

# Type registry. A new frame type adds a code here (constant + TYPES entry, next free number,
# never reuse one) or calls register_type() from its own module, and documents it in PROTOCOL.md.
INPUT = 1          # an input event to a daemon inbox
CHAIN_EVENT = 2    # link + payload emitted by a daemon
HEARTBEAT = 3
STATUS = 4
ERROR = 5
PROOF = 6
FORK_RECORD = 7
DISCONTINUITY = 8
CONTROL = 9        # a gateway command to one node (activate, stop, ...)
MIGRATION = 10     # a node's migration reply (PROTOCOL §16)

TYPES = {
    INPUT: "INPUT", CHAIN_EVENT: "CHAIN_EVENT", HEARTBEAT: "HEARTBEAT", STATUS: "STATUS",
    ERROR: "ERROR", PROOF: "PROOF", FORK_RECORD: "FORK_RECORD", DISCONTINUITY: "DISCONTINUITY",
    CONTROL: "CONTROL", MIGRATION: "MIGRATION",
}


# Errors, all DecodeError (hence ValueError); see docs/PROTOCOL.md §5 for when each is raised.
# (type() with one shared empty namespace: a class statement costs a node ~50 bytes more.
# The namespace is shared on MicroPython: never set attributes on these classes.)
_ns = {}
FrameError = type("FrameError", (cbor.DecodeError,), _ns)
UnsupportedVersion = type("UnsupportedVersion", (FrameError,), _ns)  # version uint other than 1
UnknownFrameType = type("UnknownFrameType", (FrameError,), _ns)  # type uint not in TYPES
MalformedFrame = type("MalformedFrame", (FrameError,), _ns)  # bad CBOR, shape, field or body
FrameTooLarge = type("FrameTooLarge", (FrameError,), _ns)  # over max_size / MAX_FRAME
AuthNotSupported = type("AuthNotSupported", (FrameError,), _ns)  # 6th element: v1 can't verify
del _ns


def register_type(code, name):
    """Add a frame type; re-registering the same pair is a no-op, a conflict an error."""
    if type(code) is not int or not 0 < code <= 0xFFFF or TYPES.get(code, name) != name:
        raise cbor.NetedgeError("type", code, name)
    TYPES[code] = name


class Frame:
    def __init__(self, version, ftype, sender, counter, body_bytes):
        self.version = version
        self.type = ftype
        self.sender = sender
        self.counter = counter
        self.body_bytes = body_bytes

    def body(self, *a, **k):
        """Decode the body now (not cached: each call returns fresh objects); the arguments are
        loads()'s max_depth=16, max_items=1024."""
        try:
            return cbor.loads(self.body_bytes, *a, **k)
        except cbor.CborError as e:
            raise MalformedFrame(*e.args)  # the reason, e.g. "truncated"

    def type_name(self):
        return TYPES.get(self.type, "?")


def _header(t, s, v, n):
    """Validated envelope bytes up to the body's contents (the body is appended as is,
    never copied through the encoder: 8 KB copies matter in a node's heap)."""
    if type(t) is not int or t < 0:  # bool is not int here, on MicroPython either
        raise MalformedFrame("type")
    if t not in TYPES:
        raise UnknownFrameType(t)
    if type(s) is not str or not 0 < len(s.encode()) <= 32:
        raise MalformedFrame("sender")
    if type(v) is not int or not 0 <= v <= 0xFFFFFFFF:
        raise MalformedFrame("counter")
    # 85 01: array(5), version 1; then [t, s, v] without its own array head
    return b"\x85\x01" + cbor.dumps([t, s, v])[1:] + cbor.head(2, n)


def encode(ftype, sender, counter, body):
    """Canonical frame bytes. Raises the decoder's typed errors for bad fields (so a node never
    sends what a peer would refuse) and CborEncodeError for a body outside the CBOR subset."""
    b = cbor.dumps(body, True)
    h = _header(ftype, sender, counter, len(b))
    if len(h) + len(b) > MAX_FRAME:
        raise FrameTooLarge(len(h) + len(b))
    return h + b


def decode(data, max_size=MAX_FRAME):
    """Parse and validate one frame; raise a FrameError subclass on anything else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedFrame("not bytes")
    if len(data) > max_size:
        raise FrameTooLarge(len(data))
    try:
        # Small caps: a v1 envelope is one flat array (the body stays opaque bytes); the slack
        # lets a later version's envelope parse far enough to be refused by its version.
        a = cbor.loads(data, 4, 64)
    except cbor.CborError as e:
        raise MalformedFrame(*e.args)  # the reason, e.g. "truncated"
    if type(a) is not list or not a or type(a[0]) is not int or a[0] < 0:
        raise MalformedFrame("version")
    if a[0] != VERSION:
        raise UnsupportedVersion(a[0])
    if len(a) == 6:
        raise AuthNotSupported("auth")
    if len(a) != 5 or type(a[4]) is not bytes:
        raise MalformedFrame("arity")
    # Validates type, sender and counter. The body is the last item of `data` (loads checked
    # there is nothing after it), so an equal header proves the whole envelope canonical
    # (and len(data) == len(h) + len(body)).
    h = _header(a[1], a[2], a[3], len(a[4]))
    if bytes(data[:len(h)]) != h:
        raise MalformedFrame("canonical")
    return Frame(*a)
