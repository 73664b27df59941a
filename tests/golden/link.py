"""CausalLink encoding, strict decoding and validate_chain_link."""
from netedge.shared import chain as C
from netedge.shared import link as L
from netedge.shared.errors import DecodeError
from golden import unhex, eq


def check(case):
    kind = case["kind"]
    if kind == "encode":
        lk = L.CausalLink(case["origin"], case["horizon"], case["seq"], case["parent"])
        eq("bytes", lk.to_bytes().hex(), case["bytes"])
        eq("decode", L.CausalLink.from_bytes(unhex(case["bytes"])), lk)
        eq("is_genesis", lk.is_genesis(), case["is_genesis"])
        eq("forward(empty)", lk.forward_hash(b""), case["forward_empty"])
    elif kind == "decode_error":
        try:
            L.CausalLink.from_bytes(unhex(case["bytes"]))
        except DecodeError:
            return
        raise AssertionError("decoded %s" % case["bytes"])
    elif kind == "validate":
        prev = L.CausalLink.from_bytes(unhex(case["prev"]))
        new = L.CausalLink.from_bytes(unhex(case["new"]))
        fwd = L.forward_hash(prev.to_bytes(), unhex(case["prev_payload"]))
        try:
            C.validate_chain_link(prev, fwd, new)
            got = ["ok"]
        except C.ChainError as e:
            got = [type(e).__name__, e.code, e.expected, e.got]
        eq("result", got, case["result"])
    else:
        raise AssertionError("unknown kind " + kind)


def generate():
    from golden import _ref as R
    U64 = 2 ** 64 - 1
    cases = []
    for name, (o, hz, s, p) in [
        ("genesis", (0x1A2B3C4D, 0, 0, 0)),
        ("genesis-with-horizon", (0x1A2B3C4D, 0x00010004, 0, 0)),
        ("typical", (0xDEADBEEF, 0x80000001, 42, 0x0123456789ABCDEF)),
        ("max-fields", (0xFFFFFFFF, 0xFFFFFFFF, U64, U64)),
        ("seq0-nonzero-parent", (7, 0, 0, 99)),
    ]:
        b = R.link(o, hz, s, p)
        cases.append({"name": name, "kind": "encode", "origin": o, "horizon": hz, "seq": s, "parent": p,
                      "bytes": b.hex(), "is_genesis": s == 0 and p == 0, "forward_empty": R.h8(b)})
    good = R.link(5, 0, 10, 1234)
    for name, b in [("empty", b""), ("short-23", good[:23]), ("long-25", good + b"\0"), ("long-48", good * 2)]:
        cases.append({"name": name, "kind": "decode_error", "bytes": b.hex()})
    prev = R.link(5, 0, 10, 1234)
    pp = b"prev-payload"
    parent = R.h8(prev + pp)
    for name, new, result in [
        ("follows", R.link(5, 3, 11, parent), ["ok"]),
        ("origin-mismatch", R.link(6, 0, 11, parent), ["OriginMismatch", 1, 5, 6]),
        ("sequence-gap", R.link(5, 0, 12, parent), ["SequenceGap", 2, 11, 12]),
        ("sequence-repeat", R.link(5, 0, 10, parent), ["SequenceGap", 2, 11, 10]),
        ("parent-mismatch", R.link(5, 0, 11, parent ^ 1), ["ParentHashMismatch", 3, parent, parent ^ 1]),
    ]:
        cases.append({"name": name, "kind": "validate", "prev": prev.hex(), "prev_payload": pp.hex(),
                      "new": new.hex(), "result": result})
    top = R.link(5, 0, U64, 1)
    cases.append({"name": "sequence-overflow", "kind": "validate", "prev": top.hex(), "prev_payload": "",
                  "new": R.link(5, 0, 0, R.h8(top)).hex(), "result": ["SequenceGap", 2, U64, 0]})
    return cases
