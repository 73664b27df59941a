"""The chain event payload (docs/PROTOCOL.md §11): what a daemon's chain hashes for one input,
the canonical CBOR array [sender, counter, H8(input), status, outputs], and its encoder, which
the node's DaemonHost runs.  Deterministic, so replaying the same inputs on another board
rebuilds byte-identical events (one chain).

Its strict decoder, for every reader (gateway, trace, tests), is shared/event_decode.py: apart,
because a node never decodes an event, keeps this module resident, and the decoder would cost it
about 1.4 KB more of heap.
"""
from . import cbor
from .link import h8

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

OK = const(0)      # outputs: the byte strings the daemon's process() returned
FAILED = const(1)  # the input failed; outputs: [its exception's type name]; state unchanged


def encode(sender, counter, payload, status, outputs):
    """The payload of the event that processing input `payload` from (sender, counter) gave."""
    return cbor.dumps([sender, counter, h8(payload), status, outputs], True)
