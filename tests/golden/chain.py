"""ChainBuilder: the links a daemon emits for a sequence of payloads, and its O(1) head state."""
from netedge.shared import link as L
from golden import unhex, eq


def check(case):
    b = L.ChainBuilder(case["origin"])
    eq("genesis next_parent", b.next_parent, case["genesis_forward"])
    horizons = case.get("horizons")
    for i, (want_link, payload) in enumerate(case["events"]):
        lk = b.append(unhex(payload), horizons[i] if horizons else 0)
        eq("link %d" % (i + 1), lk.to_bytes().hex(), want_link)
    eq("next_parent", b.next_parent, case["next_parent"])
    # resume from the O(1) head reproduces the rest of the chain
    if case["events"]:
        r = L.ChainBuilder.resume(b.head, b.next_parent)
        eq("resumed next", r.append(b"").parent_hash, case["next_parent"])


def generate():
    from golden import _ref as R
    cases = []
    sizes = [0, 1, 31, 32, 33, 63, 64, 65, 1024]
    evs, nxt = R.chain(0x0BADF00D, [bytes([i % 251]) * n for i, n in enumerate(sizes)])
    cases.append({"name": "payload-sizes", "origin": 0x0BADF00D, "genesis_forward": R.h8(R.link(0x0BADF00D, 0, 0, 0)),
                  "events": R.ev_json(evs), "next_parent": nxt})
    payloads = [("count=%d" % i).encode() for i in range(1, 41)]
    evs, nxt = R.chain(0x12345678, payloads)
    cases.append({"name": "counter-40", "origin": 0x12345678, "genesis_forward": R.h8(R.link(0x12345678, 0, 0, 0)),
                  "events": R.ev_json(evs), "next_parent": nxt})
    hz = [0, 1, 0x80000000, 0xFFFFFFFF, 5]
    evs, nxt = R.chain(1, [b"a", b"", b"b", b"c", b""], hz)
    cases.append({"name": "with-horizons", "origin": 1, "genesis_forward": R.h8(R.link(1, 0, 0, 0)),
                  "events": R.ev_json(evs), "horizons": hz, "next_parent": nxt})
    cases.append({"name": "empty", "origin": 0, "genesis_forward": R.h8(R.link(0, 0, 0, 0)),
                  "events": [], "next_parent": R.h8(R.link(0, 0, 0, 0))})
    return cases
