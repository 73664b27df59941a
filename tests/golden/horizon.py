"""The observed-horizon bloom (32 bits, k = 3) and its snapshot object."""
from netedge.shared import horizon as H
from golden import eq, outcome as _err


def check(case):
    kind = case["kind"]
    if kind == "bits":
        eq("mask", H.origin_bits(case["origin"]), case["mask"])
    elif kind == "observe":
        hz = H.ObservedHorizon(case["cap"])
        for o, s in case["observe"]:
            hz.observe(o, s)
        eq("encoded", hz.encode(), case["encoded"])
        eq("overflowed", hz.overflowed, case["overflowed"])
        eq("origins", [[o, hz.seqs[o]] for o in sorted(hz.seqs)], case["origins"])
        for o, want in case["probes"]:
            eq("might_contain(%d)" % o, H.might_contain(case["encoded"], o), want)
        eq("to_obj", hz.to_obj(), case["obj"])
        eq("from_obj", H.ObservedHorizon.from_obj(case["obj"]), hz)
    elif kind == "from_obj_error":
        eq("error", _err(H.ObservedHorizon.from_obj, case["obj"]), case["error"])
    else:
        raise AssertionError("unknown kind " + kind)


def generate():
    import hashlib
    import struct

    def mask(o):  # DESIGN §4 / docs: written out independently of netedge.shared
        h = int.from_bytes(hashlib.sha256(struct.pack("<I", o)).digest()[:8], "little")
        h1, h2 = h & 0xFFFFFFFF, (h >> 32) | 1
        m = 0
        for i in range(3):
            m |= 1 << (((h1 + i * h2) % 2 ** 32) % 32)
        return m

    cases = []
    for o in (0, 1, 0xDEADBEEF, 0xFFFFFFFF):
        cases.append({"name": "bits-%08x" % o, "kind": "bits", "origin": o, "mask": mask(o)})

    def observe_case(name, cap, obs, probes):
        seqs, enc, over = {}, 0, False
        for o, s in obs:
            enc |= mask(o)
            if o in seqs:
                seqs[o] = max(seqs[o], s)
            elif len(seqs) < cap:
                seqs[o] = s
            else:
                over = True
        origins = [[o, seqs[o]] for o in sorted(seqs)]
        return {"name": name, "kind": "observe", "cap": cap, "observe": [list(p) for p in obs],
                "encoded": enc, "overflowed": over, "origins": origins,
                "probes": [[o, enc & mask(o) == mask(o)] for o in probes],
                "obj": {"cap": cap, "bloom": enc, "overflowed": over, "origins": origins}}

    cases.append(observe_case("empty", 32, [], [0, 1, 7]))
    cases.append(observe_case("one-origin", 32, [(0x1A2B3C4D, 5)], [0x1A2B3C4D, 0, 1, 2]))
    cases.append(observe_case("max-seq-kept", 32, [(7, 10), (7, 3), (9, 1), (7, 11), (9, 0)], [7, 9, 8]))
    cases.append(observe_case("eight-origins", 32, [(0x1000 + i * 77, i) for i in range(8)],
                              [0x1000 + i * 77 for i in range(8)] + list(range(20))))
    cases.append(observe_case("overflow-cap-3", 3, [(i * 1000003, i) for i in range(1, 6)] + [(1000003, 50)],
                              [i * 1000003 for i in range(1, 6)]))
    good = {"cap": 4, "bloom": mask(5) | mask(9), "overflowed": False, "origins": [[5, 1], [9, 2]]}
    bad = [
        ("not-a-map", [1, 2]),
        ("missing-key", {"cap": 4, "bloom": 0, "overflowed": False}),
        ("extra-key", dict(good, extra=1)),
        ("cap-zero", dict(good, cap=0)),
        ("cap-bool", dict(good, cap=True)),
        ("bloom-33-bits", dict(good, bloom=1 << 32)),
        ("bloom-missing-bits", dict(good, bloom=mask(5))),
        ("bloom-extra-bits-no-overflow", dict(good, bloom=0xFFFFFFFF)),
        ("overflow-below-cap", dict(good, bloom=0xFFFFFFFF, overflowed=True)),
        ("unsorted-origins", dict(good, origins=[[9, 2], [5, 1]])),
        ("duplicate-origin", dict(good, origins=[[5, 1], [5, 2]], bloom=mask(5))),
        ("origin-too-big", dict(good, origins=[[1 << 32, 1]])),
        ("negative-seq", dict(good, origins=[[5, -1], [9, 2]])),
        ("seq-too-big", dict(good, origins=[[5, 1 << 64], [9, 2]])),
        ("entry-not-pair", dict(good, origins=[[5, 1, 0], [9, 2]])),
        ("more-than-cap", dict(good, cap=1)),
        ("flag-not-bool", dict(good, overflowed=0)),
    ]
    for name, obj in bad:
        cases.append({"name": name, "kind": "from_obj_error", "obj": obj, "error": "HorizonDecodeError"})
    return cases
