"""EntityLog append rules (origin, duplicate, chain), range and prune_through."""
from netedge.shared import log as G
from netedge.shared.chain import ChainError
from netedge.shared.link import CausalLink
from golden import unhex, eq


def _ev(row):
    return G.ChainEvent(CausalLink.from_bytes(unhex(row[0])), unhex(row[1]))


def check(case):
    if case.get("anchor"):
        a = case["anchor"]
        log = G.EntityLog.from_snapshot(case["origin"], a["seq"], CausalLink.from_bytes(unhex(a["link"])), a["forward"])
    else:
        log = G.EntityLog(case["origin"])
    for i, (row, want) in enumerate(case["appends"]):
        before = len(log)
        try:
            log.append(_ev(row))
            got = ["ok"]
        except G.Duplicate as e:
            got = ["Duplicate", e.seq]
        except ChainError as e:
            got = [type(e).__name__, e.expected, e.got]
        eq("append %d" % i, got, want)
        if got != ["ok"]:
            eq("unchanged on error", len(log), before)
    eq("head_seq", log.head_seq(), case["head_seq"])
    for lo, hi, seqs in case.get("ranges", []):
        eq("range %d..%d" % (lo, hi), [e.link.sequence for e in log.range(lo, hi)], seqs)
    if "prune" in case:
        n = log.prune_through(case["prune"])
        eq("pruned", n, case["pruned"])
        eq("snapshot_seq", log.snapshot_seq, case["snapshot_seq"])
        eq("left", [e.link.sequence for e in log.events], case["left"])


def generate():
    from golden import _ref as R
    O = 0x55AA55AA
    evs, _ = R.chain(O, [("v%d" % i).encode() for i in range(1, 9)])
    rows = R.ev_json(evs)
    ok = ["ok"]
    cases = [
        {"name": "append-chain", "origin": O, "appends": [[r, ok] for r in rows], "head_seq": 8,
         "ranges": [[1, 8, list(range(1, 9))], [3, 5, [3, 4, 5]], [7, 20, [7, 8]], [5, 4, []], [0, 0, []]],
         "prune": 3, "pruned": 3, "snapshot_seq": 3, "left": [4, 5, 6, 7, 8]},
        {"name": "duplicate", "origin": O, "appends": [[rows[0], ok], [rows[1], ok], [rows[1], ["Duplicate", 2]],
                                                         [rows[0], ["Duplicate", 1]]], "head_seq": 2},
        {"name": "wrong-origin", "origin": O, "appends": [[[R.link(O + 1, 0, 1, 0).hex(), ""],
                                                           ["OriginMismatch", O, O + 1]]], "head_seq": 0},
        {"name": "gap", "origin": O, "appends": [[rows[0], ok], [rows[2], ["SequenceGap", 2, 3]]], "head_seq": 1},
        {"name": "broken-parent", "origin": O,
         "appends": [[rows[0], ok], [[R.link(O, 0, 2, 77).hex(), ""], ["ParentHashMismatch", R.fwd(evs[0]), 77]]],
         "head_seq": 1},
        {"name": "genesis-then-chain", "origin": O,
         "appends": [[[R.link(O, 0, 0, 0).hex(), ""], ok], [[R.link(O, 0, 0, 0).hex(), ""], ["Duplicate", 0]],
                     [rows[0], ok]], "head_seq": 1},
        {"name": "genesis-with-payload", "origin": O,
         "appends": [[[R.link(O, 0, 0, 0).hex(), "00"], ["ParentHashMismatch", 0, 0]]], "head_seq": 0},
        {"name": "prune-noop", "origin": O, "appends": [[r, ok] for r in rows[3:5]],
         "anchor": {"seq": 3, "link": evs[2][0].hex(), "forward": R.fwd(evs[2])},
         "head_seq": 5, "prune": 2, "pruned": 0, "snapshot_seq": 3, "left": [4, 5]},
        {"name": "from-snapshot-accepts-next", "origin": O,
         "anchor": {"seq": 5, "link": evs[4][0].hex(), "forward": R.fwd(evs[4])},
         "appends": [[rows[4], ["Duplicate", 5]], [rows[6], ["SequenceGap", 6, 7]], [rows[5], ok], [rows[6], ok]],
         "head_seq": 7, "prune": 7, "pruned": 2, "snapshot_seq": 7, "left": []},
    ]
    return cases
