"""The strict decoder of the chain event payload (shared/event.py, docs/PROTOCOL.md §11):

    decode(data) -> (sender, counter, input_h8, status, outputs)

It accepts exactly what event.encode can produce and raises MalformedEvent, a DecodeError whose
message starts with what is wrong ("cbor", "shape", "sender", "counter", "input_h8", "status",
"outputs", "canonical", "size", "type") and a colon when more follows.  Portable like all of
shared/: the golden vectors run it on MicroPython too.
"""
from . import cbor
from .event import FAILED, OK
from .frame import MAX_FRAME

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

MAX_SENDER = const(32)  # UTF-8 bytes: the sender is an INPUT frame's sender (§5)
# An event rides in one CHAIN_EVENT frame, so its payload can never be larger than one.
MAX_SIZE = MAX_FRAME
_DEPTH = const(3)  # the array, its outputs list, one more: a list in outputs is an "outputs" error

MalformedEvent = type("MalformedEvent", (cbor.DecodeError,), {})


def decode(data):
    """(sender, counter, input_h8, status, outputs) of a chain event payload; MalformedEvent
    unless `data` is one that `encode` produces.  (A genesis event's payload is empty: it
    consumed no input, and is refused here like any other truncated payload.)"""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedEvent("type: not bytes")
    if len(data) > MAX_SIZE:
        raise MalformedEvent("size: %d bytes, at most %d" % (len(data), MAX_SIZE))
    try:
        # a byte per item at least: the size cap bounds the items
        ev = cbor.loads(data, _DEPTH, MAX_SIZE)
    except cbor.CborError as e:
        raise MalformedEvent("cbor: %s" % e)
    if type(ev) is not list or len(ev) != 5:
        raise MalformedEvent("shape: not [sender, counter, input_h8, status, outputs]")
    sender, counter, digest, status, outputs = ev
    if type(sender) is not str or not 0 < len(sender.encode()) <= MAX_SENDER:
        raise MalformedEvent("sender")
    if type(counter) is not int or not 0 <= counter <= 0xFFFFFFFF:
        raise MalformedEvent("counter")
    if type(digest) is not int or not 0 <= digest <= 0xFFFFFFFFFFFFFFFF:
        raise MalformedEvent("input_h8")
    if type(status) is not int or status not in (OK, FAILED):
        raise MalformedEvent("status")
    if type(outputs) is not list or any(type(o) is not bytes for o in outputs):
        raise MalformedEvent("outputs")
    if status == FAILED and len(outputs) != 1:
        raise MalformedEvent("outputs: a failed input has exactly one (its error's type name)")
    # only the canonical form: a node hashes what encode() wrote, never another spelling of it
    if cbor.dumps(ev, True) != bytes(data):
        raise MalformedEvent("canonical: another encoding of these values")
    return sender, counter, digest, status, outputs
