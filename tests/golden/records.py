"""Signed records: kind u8 | body (87 B Discontinuity / 49 B ForkRecord) | signer 32 B | signature 64 B.

On MicroPython check() covers what a node can: the envelope layout, the strict body decode and
check_structure (lineage, cross-field rules).  Where PyNaCl is importable (CPython) it also
verifies the ed25519 signature of every case, so the vectors' signatures are real.
"""
from netedge.shared import records as R
from golden import unhex, eq, outcome

try:
    import nacl.signing as _nacl
except ImportError:  # MicroPython: no ed25519 on the node
    _nacl = None


def _sig_valid(signer, message, signature):
    if _nacl is None:
        return None
    try:
        _nacl.VerifyKey(signer).verify(message, signature)
        return True
    except Exception:
        return False


def _cause(data):
    try:
        R.decode_signed(data)
    except R.RecordBodyError as e:
        return type(e.cause).__name__
    except Exception:
        return None
    return None


def check(case):
    kind = case["kind"]
    if kind == "envelope":
        rkind = case["record_kind"]
        body, signer, sig = unhex(case["body"]), unhex(case["signer"]), unhex(case["signature"])
        rec = unhex(case["record"])
        eq("size", len(rec), R.envelope_size(rkind))
        eq("layout", rec, bytes((rkind,)) + body + signer + sig)
        eq("message", R.signed_message(rkind, body).hex(), case["message"])
        eq("encode", R.encode_signed(rkind, body, signer, sig).hex(), case["record"])
        k, obj, who, s, msg = R.decode_signed(rec)
        eq("kind", k, rkind)
        eq("body", obj.to_bytes().hex(), case["body"])
        eq("signer", who, signer)
        eq("signature", s, sig)
        eq("signed message", msg.hex(), case["message"])
        eq("encode object", R.encode_signed(rkind, obj, signer, sig), rec)
        k2, obj2 = R.check_structure(rec)
        eq("structure", (k2, obj2.to_bytes()), (rkind, body))
        if rkind == R.KIND_DISCONTINUITY:
            eq("reason", obj.reason.code, case["reason_code"])
        valid = _sig_valid(signer, msg, sig)
        if valid is not None:
            eq("signature verifies", valid, True)
    elif kind == "decode_error":
        data = unhex(case["bytes"])
        eq("decode", outcome(R.decode_signed, data), case["decode"])
        eq("structure", outcome(R.check_structure, data), case["structure"])
        eq("cause", _cause(data), case["cause"])
        if case["sig_valid"] is not None and _nacl is not None:
            _, _, who, s, msg = R.decode_signed(data)
            eq("signature verifies", _sig_valid(who, msg, s), case["sig_valid"])
    else:
        raise AssertionError("unknown kind " + kind)


SEED = b"netedge test gateway identity 01"      # 32 bytes: the vectors' gateway key
OTHER_SEED = b"netedge test: someone else 02...."[:32]


def generate():
    import struct
    import nacl.signing
    from golden import _ref as R0

    assert len(SEED) == 32 and len(OTHER_SEED) == 32
    key = nacl.signing.SigningKey(SEED)
    other = nacl.signing.SigningKey(OTHER_SEED)
    pub = bytes(key.verify_key)
    domain = b"netedge/record/v1"

    def disc(origin, lv, fl, code, sub, a, b, c, at):
        return (struct.pack("<I", origin) + lv + (b"\x01" + fl if fl else b"\x00" + bytes(24))
                + struct.pack("<BBQQQQ", code, sub, a, b, c, at))

    def fork(p, f, s, snap):
        g = R0.link(f, 0, 0, R0.h8(struct.pack("<IQ", p, s) + b"fork"))
        return struct.pack("<IIQ", p, f, s) + g + struct.pack("<BQ", 0 if snap is None else 1, snap or 0)

    def envelope(kind, body, signer=key):
        msg = domain + bytes((kind,)) + body
        sig = bytes(signer.sign(msg).signature)
        return bytes((kind,)) + body + bytes(signer.verify_key) + sig, msg, sig

    O = 0x1A2B3C4D
    events, _ = R0.chain(O, [b"event %d" % i for i in range(1, 6)])
    fwd = [R0.h8(R0.link(O, 0, 0, 0))] + [R0.fwd(e) for e in events]   # fwd[i] = forward hash of seq i
    e3, e4 = events[2][0], events[3][0]
    bad4 = R0.link(O, 0, 4, fwd[3] ^ 1)                       # event 4 with a wrong parent hash
    gap6 = R0.link(O, 0, 6, fwd[3])                           # seq 6 after head 3
    other4 = (R0.link(O, 0, 4, fwd[3]), b"event 4, other history")
    hb = R0.fwd(other4)
    T = 1700000000456
    bodies = [
        ("chain-break-parent", 1, disc(O, e3, bad4, 2, 3, fwd[3], fwd[3] ^ 1, 0, T), 2),
        ("chain-break-gap", 1, disc(O, e3, gap6, 2, 2, 4, 6, 0, T + 1), 2),
        ("conflicting-chains", 1, disc(O, e3, other4[0], 3, 0, 4, fwd[4], hb, T + 2), 3),
        ("corruption", 1, disc(O, e4, None, 4, 0, 0, 0, 0, T + 3), 4),
        ("corruption-at-genesis", 1, disc(O, R0.link(O, 0, 0, 0), None, 4, 0, 0, 0, 0, T + 4), 4),
        ("node-crash", 1, disc(O, e4, None, 1, 0, 3, 0, 0, T + 5), 1),
        ("fork-with-snapshot", 2, fork(O, 0x5E6F7081, 1000, 990), None),
        ("fork-no-snapshot", 2, fork(O, 0x5E6F7081, 4, None), None),
    ]
    cases = []
    good = {}
    for name, kind, body, code in bodies:
        rec, msg, sig = envelope(kind, body)
        good[name] = rec
        c = {"name": name, "kind": "envelope", "record_kind": kind, "body": body.hex(), "signer": pub.hex(),
             "signature": sig.hex(), "message": msg.hex(), "record": rec.hex()}
        if code is not None:
            c["reason_code"] = code
        cases.append(c)
    g = good["chain-break-parent"]
    f = good["fork-with-snapshot"]

    def flip(b, i, x=1):
        return b[:i] + bytes((b[i] ^ x,)) + b[i + 1:]

    inconsistent = envelope(1, disc(O, e3, other4[0], 3, 0, 5, fwd[4], hb, T))[0]   # seq 5 != failed link seq 4
    gap_wrong = envelope(1, disc(O, e3, gap6, 2, 2, 4, 7, 0, T))[0]                 # got 7 != failed seq 6
    no_failed = envelope(1, disc(O, e3, None, 2, 3, fwd[3], fwd[3] ^ 1, 0, T))[0]
    bad_lineage = envelope(2, f[1:9] + struct.pack("<Q", 1001) + f[17:50])[0]      # fork_seq != sentinel's
    zero_signer = g[:88] + bytes(32) + g[120:]
    bad = [
        # name, bytes, decode, structure, cause, sig_valid
        ("empty", b"", "RecordLength", "RecordLength", None, None),
        ("kind-only", b"\x01", "RecordLength", "RecordLength", None, None),
        ("short-183", g[:-1], "RecordLength", "RecordLength", None, None),
        ("long-185", g + b"\x00", "RecordLength", "RecordLength", None, None),
        ("unsigned-body", g[1:88], "UnknownRecordKind", "UnknownRecordKind", None, None),  # starts 0x4d
        ("kind-0", b"\x00" + g[1:], "UnknownRecordKind", "UnknownRecordKind", None, None),
        ("kind-3", b"\x03" + g[1:], "UnknownRecordKind", "UnknownRecordKind", None, None),
        ("kind-ff", b"\xff" + g[1:], "UnknownRecordKind", "UnknownRecordKind", None, None),
        ("kind-swapped", b"\x02" + g[1:], "RecordLength", "RecordLength", None, None),
        ("fork-kind-swapped", b"\x01" + f[1:], "RecordLength", "RecordLength", None, None),
        ("has-failed-2", flip(g, 29, 3), "RecordBodyError", "RecordBodyError", "FailedLinkMismatch", None),
        ("reason-9", flip(g, 54, 0x0b), "RecordBodyError", "RecordBodyError", "UnknownReasonCode", None),
        ("last-verified-origin", flip(g, 5), "RecordBodyError", "RecordBodyError", "LastVerifiedOriginMismatch", None),
        ("fork-lineage", bad_lineage, "RecordBodyError", "RecordBodyError", "ForkRecordInvalid", None),
        ("fork-flag", flip(f, 41, 2), "RecordBodyError", "RecordBodyError", "ForkRecordFlag", None),
        # well-formed, but a node refuses them (check_structure)
        ("conflict-seq-disagrees", inconsistent, "ok", "RecordBodyError", None, True),
        ("gap-got-disagrees", gap_wrong, "ok", "RecordBodyError", None, True),
        ("break-without-failed-link", no_failed, "ok", "RecordBodyError", None, True),
        ("zero-signer", zero_signer, "ok", "RecordBodyError", None, False),
        # structurally fine: only the signature check (gateway / CLI) catches these
        ("flipped-detected-at", flip(g, 80), "ok", "ok", None, False),
        ("flipped-signature", flip(g, 183, 0x80), "ok", "ok", None, False),
        ("flipped-signer", flip(g, 100), "ok", "ok", None, False),
        ("other-signer", envelope(1, g[1:88], other)[0], "ok", "ok", None, True),
        ("signature-of-other-kind", g[:120] + envelope(2, g[1:88])[2], "ok", "ok", None, False),
    ]
    for name, b, dec, struc, cause, valid in bad:
        cases.append({"name": name, "kind": "decode_error", "bytes": b.hex(), "decode": dec, "structure": struc,
                      "cause": cause, "sig_valid": valid})
    return cases
