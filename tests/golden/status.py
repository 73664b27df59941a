"""assess_continuity: genesis and snapshot anchoring, forks, gaps."""
from netedge.shared import status as S
from netedge.shared.link import CausalLink
from netedge.shared.log import ChainEvent
from golden import unhex, eq


def check(case):
    evs = [ChainEvent(CausalLink.from_bytes(unhex(lb)), unhex(p)) for lb, p in case["events"]]
    snap = None
    if case.get("snapshot"):
        s = case["snapshot"]
        snap = S.SnapshotAnchor(s["through_seq"], CausalLink.from_bytes(unhex(s["head_link"])), s["head_forward"])
    got = S.assess_continuity(evs, case["origin"], snap)
    eq("status", got.to_obj(), case["status"])


def generate():
    from golden import _ref as R
    O = 0x00ABCDEF
    evs, _ = R.chain(O, [("e%d" % i).encode() for i in range(1, 21)])
    cases = []

    def add(name, events, status, snapshot=None):
        c = {"name": name, "origin": O, "events": R.ev_json(events), "status": status}
        if snapshot:
            c["snapshot"] = snapshot
        cases.append(c)

    cont = lambda first, last: {"kind": "Continuous", "genesis_hash": R.fwd(first),
                                "head_seq": R.struct_seq(last), "head_hash": R.fwd(last)}
    add("empty", [], {"kind": "Continuous", "genesis_hash": 0, "head_seq": 0, "head_hash": 0})
    add("from-genesis", evs, cont(evs[0], evs[-1]))
    add("pruned-no-snapshot", evs[10:], {"kind": "Unverifiable", "last_verified_seq": 0, "gap_start": 0})
    snap10 = {"through_seq": 10, "head_link": evs[9][0].hex(), "head_forward": R.fwd(evs[9])}
    add("snapshot-bridges", evs[10:], cont(evs[10], evs[-1]), snap10)
    add("snapshot-wrong-through", evs[10:], {"kind": "Unverifiable", "last_verified_seq": 0, "gap_start": 0},
        dict(snap10, through_seq=9))
    wrong = dict(snap10, head_forward=R.fwd(evs[8]))
    add("snapshot-wrong-head", evs[10:], {"kind": "Forked", "fork_point": 11, "original_hash": R.fwd(evs[8]),
                                          "fork_hash": R.fwd(evs[9])}, wrong)
    add("seq1-ignores-snapshot", evs, cont(evs[0], evs[-1]), snap10)
    gap = evs[:5] + evs[6:]
    add("gap", gap, {"kind": "Unverifiable", "last_verified_seq": 5, "gap_start": 6})
    tampered = list(evs)
    tampered[7] = (evs[7][0], b"tampered")
    add("fork-mid", tampered, {"kind": "Forked", "fork_point": 9, "original_hash": R.fwd(tampered[7]),
                               "fork_hash": R.fwd(evs[7])})
    bad_first = [(R.link(O, 0, 1, 12345), b"x")]
    add("fork-at-1", bad_first, {"kind": "Forked", "fork_point": 1, "original_hash": R.h8(R.link(O, 0, 0, 0)),
                                 "fork_hash": 12345})
    gen = (R.link(O, 0, 0, 0), b"")
    add("stored-genesis", [gen] + evs[:3], cont(gen, evs[2]))
    return cases
