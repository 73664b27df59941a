"""First-principles reference for vector generation (CPython only): DESIGN.md §4 written out
directly with hashlib and struct, independent of netedge.shared, so a core bug cannot hide."""
import hashlib
import struct


def h8(b):
    return int.from_bytes(hashlib.sha256(b).digest()[:8], "little")


def link(origin, horizon, seq, parent):
    return struct.pack("<IIQQ", origin, horizon, seq, parent)


def chain(origin, payloads, horizons=None):
    """[(link_bytes, payload)] for events 1..n after the implicit genesis; and the next parent."""
    prev = link(origin, 0, 0, 0)
    prev_payload = b""
    out = []
    for i, p in enumerate(payloads):
        hz = horizons[i] if horizons else 0
        lb = link(origin, hz, i + 1, h8(prev + prev_payload))
        out.append((lb, p))
        prev, prev_payload = lb, p
    return out, h8(prev + prev_payload)


def fwd(ev):
    return h8(ev[0] + ev[1])


def proof(origin, events):
    first, last = events[0], events[-1]
    fseq = struct.unpack_from("<Q", first[0], 8)[0]
    tseq = struct.unpack_from("<Q", last[0], 8)[0]
    return struct.pack("<IQQQQ", origin, fseq, tseq, fwd(first), fwd(last))


def ev_json(events):
    return [[lb.hex(), p.hex()] for lb, p in events]


def struct_seq(ev):
    return struct.unpack_from("<Q", ev[0], 8)[0]
