"""ContinuityProof: the 36-byte encoding, strict decoding, and verification that walks every link."""
from netedge.shared import proof as P
from netedge.shared.errors import DecodeError
from netedge.shared.link import CausalLink
from netedge.shared.log import ChainEvent
from golden import unhex, eq


def _events(rows):
    return [ChainEvent(CausalLink.from_bytes(unhex(lb)), unhex(p)) for lb, p in rows]


def check(case):
    kind = case["kind"]
    if kind == "make":
        evs = _events(case["events"])
        sub = [e for e in evs if case["from"] <= e.link.sequence <= case["to"]]
        pr = P.ContinuityProof.from_events(case["origin"], sub)
        eq("proof", pr.to_bytes().hex(), case["proof"])
        eq("len", len(pr.to_bytes()), 36)
        eq("decode", P.ContinuityProof.from_bytes(unhex(case["proof"])), pr)
    elif kind == "verify":
        pr = P.ContinuityProof.from_bytes(unhex(case["proof"]))
        evs = _events(case["events"])
        cap = case.get("cap", P.MAX_PROOF_VERIFY_SPAN)
        sub = [e for e in evs if pr.from_seq <= e.link.sequence <= pr.to_seq]
        try:
            pr.verify_events(case["origin"], sub, cap)
            got = ["ok"]
        except P.ProofError as e:
            got = [type(e).__name__] + list(e.values)
        eq("result", got, case["result"])
    elif kind == "decode_error":
        try:
            P.ContinuityProof.from_bytes(unhex(case["bytes"]))
        except DecodeError:
            return
        raise AssertionError("decoded")
    else:
        raise AssertionError("unknown kind " + kind)


def generate():
    import struct
    from golden import _ref as R
    O = 0xC0FFEE01
    evs, _ = R.chain(O, [("reading=%d" % (i * 7)).encode() for i in range(1, 13)])
    rows = R.ev_json(evs)
    cases = []
    for a, b in [(1, 12), (1, 1), (4, 9), (12, 12)]:
        cases.append({"name": "proof-%d-%d" % (a, b), "kind": "make", "origin": O, "from": a, "to": b,
                      "events": rows, "proof": R.proof(O, evs[a - 1:b]).hex()})

    def verify(name, proof, events, result, cap=None, origin=O):
        c = {"name": name, "kind": "verify", "origin": origin, "proof": proof.hex(), "events": R.ev_json(events),
             "result": result}
        if cap is not None:
            c["cap"] = cap
        cases.append(c)

    full = R.proof(O, evs)
    verify("intact-12", full, evs, ["ok"])
    verify("intact-sub-3-7", R.proof(O, evs[2:7]), evs, ["ok"])
    # a forged middle event: endpoints untouched, the walk catches it at the next link
    forged = list(evs)
    forged[5] = (evs[5][0], b"reading=forged")
    verify("forged-middle-payload", full, forged, ["HashMismatch", 7, R.fwd(forged[5]), R.fwd(evs[5])])
    # forged middle link and payload re-chained up to the end: the endpoint hash catches it
    rechained = list(evs[:5])
    prev = rechained[-1]
    for i in range(5, 12):
        lb = R.link(O, 0, i + 1, R.fwd(prev))
        p = b"rewritten" if i == 5 else evs[i][1]
        rechained.append((lb, p))
        prev = rechained[-1]
    verify("rechained-rewrite", full, rechained, ["HashMismatch", 12, R.fwd(evs[11]), R.fwd(rechained[11])])
    # the middle events are missing from the verifier's log (a forger presenting endpoints only)
    verify("missing-middle", full, [evs[0], evs[11]], ["MissingEvent", 2])
    verify("missing-first", full, evs[1:], ["MissingEvent", 1])
    verify("missing-last", full, evs[:11], ["MissingEvent", 12])
    verify("no-events", full, [], ["MissingEvent", 1])
    verify("endpoint-from-forged", R.proof(O, evs)[:20] + struct.pack("<Q", 1) + full[28:], evs,
           ["HashMismatch", 1, 1, R.fwd(evs[0])])
    verify("wrong-origin", full, evs, ["ProofOriginMismatch", O + 1, O], origin=O + 1)
    inv = struct.pack("<IQQQQ", O, 9, 3, 0, 0)
    verify("invalid-range", inv, evs, ["InvalidRange", 9, 3])
    big = struct.pack("<IQQQQ", O, 1, 100001, 0, 0)
    verify("span-too-large-default-cap", big, [], ["SpanTooLarge", 1, 100001, 100000])
    verify("span-at-cap-small", full, evs, ["SpanTooLarge", 1, 12, 11], cap=11)
    verify("span-below-cap-small", full, evs, ["ok"], cap=12)
    for name, b in [("empty", b""), ("35", full[:35]), ("37", full + b"\0"), ("40-upstream-size", full + b"\0" * 4)]:
        cases.append({"name": name, "kind": "decode_error", "bytes": b.hex()})
    return cases
