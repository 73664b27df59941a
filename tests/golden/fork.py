"""Fork sentinel, fork genesis and the 49-byte ForkRecord."""
from netedge.shared import fork as F
from netedge.shared.link import CausalLink
from golden import unhex, eq


def check(case):
    kind = case["kind"]
    if kind == "sentinel":
        eq("sentinel", F.fork_sentinel(case["parent"], case["fork_seq"]), case["sentinel"])
    elif kind == "record":
        g = CausalLink.from_bytes(unhex(case["genesis"]))
        eq("genesis link", F.fork_genesis_link(case["parent"], case["fork_seq"], case["forked"]), g)
        rec = F.ForkRecord(case["parent"], case["forked"], case["fork_seq"], g, case["snapshot_seq"])
        eq("verify", rec.verify(), True)
        eq("bytes", rec.to_bytes().hex(), case["bytes"])
        eq("create", F.ForkRecord.create(case["parent"], case["forked"], case["fork_seq"], case["snapshot_seq"]), rec)
        back = F.ForkRecord.from_bytes(unhex(case["bytes"]))
        eq("decode", back, rec)
        eq("snapshot_seq", back.snapshot_seq, case["snapshot_seq"])
        b = rec.chain_builder()
        eq("first event", b.append(b"first").to_bytes().hex(), case["first_link"])
    elif kind == "decode_error":
        data = unhex(case["bytes"])
        for fn, want in ((F.ForkRecord.from_bytes, case["error"]),
                         (F.ForkRecord.from_bytes_unchecked, case["unchecked"])):
            try:
                fn(data)
                got = "ok"
            except Exception as e:
                got = type(e).__name__
            eq(fn.__name__, got, want)
    else:
        raise AssertionError("unknown kind " + kind)


def generate():
    import struct
    from golden import _ref as R

    def sentinel(parent, seq):
        return R.h8(struct.pack("<IQ", parent, seq) + b"fork")

    U64 = 2 ** 64 - 1
    cases = []
    for name, p, s in [("zero", 0, 0), ("typical", 0x1A2B3C4D, 1000), ("max", 0xFFFFFFFF, U64)]:
        cases.append({"name": "sentinel-" + name, "kind": "sentinel", "parent": p, "fork_seq": s,
                      "sentinel": sentinel(p, s)})

    def record(p, f, s, snap):
        g = R.link(f, 0, 0, sentinel(p, s))
        return (struct.pack("<II", p, f) + struct.pack("<Q", s) + g
                + struct.pack("<BQ", 0 if snap is None else 1, snap or 0)), g

    for name, p, f, s, snap in [("no-snapshot", 0x1A2B3C4D, 0x5E6F7081, 1000, None),
                                ("with-snapshot", 0x1A2B3C4D, 0x5E6F7081, 1000, 990),
                                ("snapshot-zero", 7, 8, 0, 0),
                                ("max-fields", 0xFFFFFFFF, 0xFFFFFFFE, U64, U64)]:
        b, g = record(p, f, s, snap)
        first = R.link(f, 0, 1, R.h8(g))
        cases.append({"name": name, "kind": "record", "parent": p, "forked": f, "fork_seq": s,
                      "snapshot_seq": snap, "genesis": g.hex(), "bytes": b.hex(), "first_link": first.hex()})
    good, g = record(0x1A2B3C4D, 0x5E6F7081, 1000, 990)
    absent, _ = record(0x1A2B3C4D, 0x5E6F7081, 1000, None)
    bad = [
        ("empty", b"", "ForkRecordLength", "ForkRecordLength"),
        ("short-48", good[:48], "ForkRecordLength", "ForkRecordLength"),
        ("long-50", good + b"\0", "ForkRecordLength", "ForkRecordLength"),
        ("upstream-65", good + bytes(16), "ForkRecordLength", "ForkRecordLength"),
        ("flag-2", good[:40] + b"\x02" + good[41:], "ForkRecordFlag", "ForkRecordFlag"),
        ("flag-ff", good[:40] + b"\xff" + good[41:], "ForkRecordFlag", "ForkRecordFlag"),
        ("absent-with-seq", absent[:41] + struct.pack("<Q", 5), "ForkRecordFlag", "ForkRecordFlag"),
        ("tampered-sentinel", good[:16] + R.link(0x5E6F7081, 0, 0, sentinel(0x1A2B3C4D, 1000) ^ 1) + good[40:],
         "ForkRecordInvalid", "ok"),
        ("other-fork-seq", good[:8] + struct.pack("<Q", 1001) + good[16:], "ForkRecordInvalid", "ok"),
        ("genesis-wrong-origin", good[:16] + R.link(0x5E6F7082, 0, 0, sentinel(0x1A2B3C4D, 1000)) + good[40:],
         "ForkRecordInvalid", "ok"),
        ("genesis-seq-1", good[:16] + R.link(0x5E6F7081, 0, 1, sentinel(0x1A2B3C4D, 1000)) + good[40:],
         "ForkRecordInvalid", "ok"),
        ("self-fork", record(0x1A2B3C4D, 0x1A2B3C4D, 1000, None)[0], "ForkRecordInvalid", "ok"),
    ]
    for name, b, err, unchecked in bad:
        cases.append({"name": name, "kind": "decode_error", "bytes": b.hex(), "error": err, "unchecked": unchecked})
    return cases
