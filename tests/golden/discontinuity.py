"""The 87-byte Discontinuity record and its reasons."""
from netedge.shared import discontinuity as D
from netedge.shared.chain import CHAIN_ERRORS
from netedge.shared.link import CausalLink
from golden import unhex, eq


def _reason(r):
    kind = r[0]
    if kind == "NodeCrash":
        return D.NodeCrash(r[1])
    if kind == "ChainBreak":
        return D.ChainBreak(CHAIN_ERRORS[r[1]](r[2], r[3]))
    if kind == "ConflictingChains":
        return D.ConflictingChains(r[1], r[2], r[3])
    if kind == "Corruption":
        return D.Corruption()
    raise AssertionError("unknown reason " + kind)


def check(case):
    kind = case["kind"]
    if kind == "encode":
        failed = CausalLink.from_bytes(unhex(case["failed_link"])) if case["failed_link"] else None
        d = D.Discontinuity(case["origin"], CausalLink.from_bytes(unhex(case["last_verified"])), failed,
                            _reason(case["reason"]), case["detected_at"])
        eq("bytes", d.to_bytes().hex(), case["bytes"])
        back = D.Discontinuity.from_bytes(unhex(case["bytes"]))
        eq("decode", back, d)
        eq("reason", back.reason, d.reason)
        eq("reason code", back.reason.code, case["reason_code"])
    elif kind == "decode_error":
        try:
            D.Discontinuity.from_bytes(unhex(case["bytes"]))
            got = "ok"
        except Exception as e:
            got = type(e).__name__
        eq("error", got, case["error"])
    else:
        raise AssertionError("unknown kind " + kind)


def generate():
    import struct
    from golden import _ref as R

    U64 = 2 ** 64 - 1
    O = 0x1A2B3C4D
    last = R.link(O, 0x00100028, 41, 0x0123456789ABCDEF)
    failed = R.link(O, 0, 43, 0x1111111111111111)

    def body(origin, lv, fl, code, sub, a, b, c, at):
        return (struct.pack("<I", origin) + lv + (b"\x01" + fl if fl else b"\x00" + bytes(24))
                + struct.pack("<BBQQQQ", code, sub, a, b, c, at))

    cases = []
    for name, fl, reason, wire, at in [
        ("node-crash", None, ["NodeCrash", 40], (1, 0, 40, 0, 0), 1700000000123),
        ("chain-break-seq-gap", failed, ["ChainBreak", 2, 42, 43], (2, 2, 42, 43, 0), 1700000000456),
        ("chain-break-origin", R.link(0x99, 0, 42, 5), ["ChainBreak", 1, O, 0x99], (2, 1, O, 0x99, 0), 1),
        ("chain-break-parent", R.link(O, 0, 42, 7), ["ChainBreak", 3, R.h8(last + b"p"), 7],
         (2, 3, R.h8(last + b"p"), 7, 0), 2),
        ("conflicting-chains", R.link(O, 0, 42, 9), ["ConflictingChains", 42, 0xAAAA, 0xBBBB],
         (3, 0, 42, 0xAAAA, 0xBBBB), 3),
        ("corruption", None, ["Corruption"], (4, 0, 0, 0, 0), 0),
        ("max-fields", R.link(O, 0xFFFFFFFF, U64, U64), ["ConflictingChains", U64, U64, U64 - 1],
         (3, 0, U64, U64, U64 - 1), U64),
    ]:
        code, sub, a, b, c = wire
        data = body(O, last, fl, code, sub, a, b, c, at)
        cases.append({"name": name, "kind": "encode", "origin": O, "last_verified": last.hex(),
                      "failed_link": fl.hex() if fl else None, "reason": reason, "reason_code": code,
                      "detected_at": at, "bytes": data.hex()})
    good = body(O, last, failed, 2, 2, 42, 43, 0, 99)
    bad = [
        ("empty", b"", "DiscontinuityLength"),
        ("short-86", good[:86], "DiscontinuityLength"),
        ("long-88", good + b"\0", "DiscontinuityLength"),
        ("with-signature-151", good + bytes(64), "DiscontinuityLength"),
        ("reason-0", body(O, last, None, 0, 0, 0, 0, 0, 1), "UnknownReasonCode"),
        ("reason-5", body(O, last, None, 5, 0, 0, 0, 0, 1), "UnknownReasonCode"),
        ("chain-error-0", body(O, last, failed, 2, 0, 1, 2, 0, 1), "UnknownReasonCode"),
        ("chain-error-4", body(O, last, failed, 2, 4, 1, 2, 0, 1), "UnknownReasonCode"),
        ("crash-sub", body(O, last, None, 1, 1, 40, 0, 0, 1), "NonZeroUnused"),
        ("crash-b", body(O, last, None, 1, 0, 40, 1, 0, 1), "NonZeroUnused"),
        ("crash-c", body(O, last, None, 1, 0, 40, 0, 1, 1), "NonZeroUnused"),
        ("chain-break-c", body(O, last, failed, 2, 2, 42, 43, 1, 1), "NonZeroUnused"),
        ("conflict-sub", body(O, last, None, 3, 1, 42, 1, 2, 1), "NonZeroUnused"),
        ("corruption-a", body(O, last, None, 4, 0, 1, 0, 0, 1), "NonZeroUnused"),
        ("corruption-sub", body(O, last, None, 4, 9, 0, 0, 0, 1), "NonZeroUnused"),
        ("conflict-equal-hashes", body(O, last, None, 3, 0, 42, 7, 7, 1), "InvalidReason"),
        ("has-failed-2", good[:28] + b"\x02" + good[29:], "FailedLinkMismatch"),
        ("absent-but-nonzero", good[:28] + b"\x00" + good[29:], "FailedLinkMismatch"),
        ("present-but-zero", body(O, last, None, 4, 0, 0, 0, 0, 1)[:28] + b"\x01" + bytes(24)
         + struct.pack("<BBQQQQ", 4, 0, 0, 0, 0, 1), "FailedLinkMismatch"),
        ("last-verified-other-origin", body(O + 1, last, None, 4, 0, 0, 0, 0, 1), "LastVerifiedOriginMismatch"),
    ]
    for name, b, err in bad:
        cases.append({"name": name, "kind": "decode_error", "bytes": b.hex(), "error": err})
    return cases
